#!/usr/bin/env bash
# The README's demo: installs what is missing (Debian's containerd, runc, static
# busybox; the imageprune package), then runs hack/demo.py as root.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -ne 0 ]]; then
  echo "demo: needs root (it starts a containerd); try: sudo bash hack/demo.sh" >&2
  exit 2
fi
need=()
for pkg in containerd runc busybox-static; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "demo: installing ${need[*]} from Debian" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
python3 -c "import imageprune, testkit" 2>/dev/null ||
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -e '.[test]'
exec python3 hack/demo.py
