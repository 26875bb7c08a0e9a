#!/usr/bin/env bash
# Every benchmark at a tiny size (`--smoke`), so that none of them rots unnoticed:
# each must run to the end; its figures are printed, never checked. Every
# bench/*.py is a benchmark (helpers start with `_`), so a new one is picked up by
# itself and must accept --smoke. Needs root and the binaries from hack/testbin.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${IMAGEPRUNE_TESTBIN_DIR:-}" ]]; then
  IMAGEPRUNE_TESTBIN_DIR=$(hack/testbin.sh | tail -n 1)
  export IMAGEPRUNE_TESTBIN_DIR
fi

for bench in bench/[!_]*.py; do
  echo "--> $bench --smoke"
  started=$SECONDS
  python3 "$bench" --smoke
  echo "    ($((SECONDS - started))s)"
done
