#!/usr/bin/env bash
# The project's test command (README: "Running the tests"): static checks, then
# every test against real containerd and a real kube-apiserver. Needs root (it
# starts containerd) and the binaries from hack/testbin.sh (built on first use).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${IMAGEPRUNE_TESTBIN_DIR:-}" ]]; then
  IMAGEPRUNE_TESTBIN_DIR=$(hack/testbin.sh | tail -n 1)
  export IMAGEPRUNE_TESTBIN_DIR
fi

echo "--> ruff"
ruff check .
ruff format --check .
echo "--> mypy --strict"
mypy
echo "--> import-linter"
lint-imports
echo "--> pytest"
python3 -m pytest "$@"
