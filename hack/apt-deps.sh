#!/usr/bin/env bash
# The Debian packages the tests and the demo need, installed if missing (root; Debian 12).
# One list for both: .ci/run and hack/demo.sh call this script.
#   containerd (1.6), runc, busybox-static: the test containerd and test images
#   buildah, mmdebstrap, binutils: our container image (hack/build-image.sh)
#   containernetworking-plugins, iptables, iproute2: the real node's pod network
set -euo pipefail
PACKAGES=(containerd runc busybox-static buildah mmdebstrap binutils containernetworking-plugins iptables iproute2)
if ! command -v apt-get >/dev/null || ! command -v dpkg-query >/dev/null; then
  echo "apt-deps: needs Debian (apt-get, dpkg-query); install by hand: ${PACKAGES[*]}" >&2
  exit 2
fi
need=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "apt-deps: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
