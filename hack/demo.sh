#!/usr/bin/env bash
# The README's demo: the whole system on this machine (see hack/demo.py, or --help).
# Sets up what is missing first: the Debian packages (hack/apt-deps.sh), the imageprune
# package, the test binaries (hack/testbin.sh: about 20 min the first time) and the
# image (hack/build-image.sh); then runs hack/demo.py as root.
#   bash hack/demo.sh [--short] [--simulated-nodes N] [--keep]
#   bash hack/demo.sh --stop      # stop a demo left running by --keep
set -euo pipefail
cd "$(dirname "$0")/.."

for arg in "$@"; do
  case $arg in -h|--help) exec python3 hack/demo.py --help ;; esac
done
if [[ $(id -u) -ne 0 ]]; then
  echo "demo: needs root (it starts containerd and a kubelet); try: sudo bash hack/demo.sh" >&2
  exit 2
fi
if [[ " $* " == *" --stop "* ]]; then
  # SIGTERM to the demo left running, which cleans up and exits; wait for that.
  state=/run/imageprune-demo.json
  pid=$(sed -n 's/.*"pid": \([0-9]*\).*/\1/p' "$state" 2>/dev/null || true)
  if [[ -z $pid ]] || ! kill -TERM "$pid" 2>/dev/null; then
    echo "demo: none is running" >&2
    exit 1
  fi
  echo "demo: stopping pid $pid and cleaning up..."
  for _ in $(seq 300); do
    [[ -e /proc/$pid ]] || { echo "demo: stopped; everything it started is gone"; exit 0; }
    sleep 1
  done
  echo "demo: pid $pid still runs after 300s; its log: $(sed -n 's/.*"workdir": "\([^"]*\)".*/\1/p' "$state")/demo.log" >&2
  exit 1
fi
if [[ ! -e /etc/debian_version ]]; then
  echo "demo: needs Debian 12 (apt packages, hack/build-image.sh's mmdebstrap)" >&2
  exit 2
fi

started=$SECONDS
step() { echo "==> [$((SECONDS - started))s] $*"; }

step "Debian packages (hack/apt-deps.sh)"
hack/apt-deps.sh
step "The imageprune package"
python3 -c "import imageprune, kopf, pytest" 2>/dev/null ||
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -e '.[test]'

# Prefix each line of a long build with the time since it began, and say every
# 30 s that it still runs (a Go build can be silent for minutes).
timed() {
  local name=$1 t0=$SECONDS; shift
  local beat
  # Its stdout away from $(...), which would wait for it.
  ( while sleep 30; do echo "   [$((SECONDS - t0))s] $name: still building..." >&2; done ) >/dev/null &
  beat=$!
  local rc=0
  "$@" 2> >(while IFS= read -r line; do echo "   [$((SECONDS - t0))s] $line" >&2; done) || rc=$?
  kill "$beat" 2>/dev/null; wait "$beat" 2>/dev/null || true
  return "$rc"
}
step "Test binaries: kube-apiserver, kubelet, helm... (hack/testbin.sh; about 20 min once, then cached)"
testbin=$(timed testbin hack/testbin.sh | tail -n 1)
export IMAGEPRUNE_TESTBIN_DIR=$testbin
step "The imageprune image (hack/build-image.sh; cached in ~/.cache/imageprune/image)"
timed image hack/build-image.sh >/dev/null

if [[ " $* " != *" --keep "* ]]; then
  exec python3 hack/demo.py "$@"
fi
# --keep: the demo runs on in its own session once it has shown everything; this
# script returns then. Ctrl-C before that stops and cleans it up.
setsid python3 hack/demo.py "$@" </dev/null &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid"; exit 130' INT TERM
while kill -0 "$pid" 2>/dev/null; do
  [[ -e /run/imageprune-demo.ready ]] && exit 0
  sleep 0.5
done
wait "$pid"
