#!/usr/bin/env bash
# Regenerate the committed CRI stubs from cri/imageprune_cri/_pb/api.proto.
# The proto sits at its Python package path, so protoc writes correct imports
# (imageprune_cri._pb.api_pb2) with no post-processing.
# Usage: hack/gen-proto.sh [OUTDIR]   (OUTDIR defaults to cri/, i.e. in place)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/cri}
mkdir -p "$out"
cd "$root/cri"
python -m grpc_tools.protoc -I . \
  --python_out="$out" --grpc_python_out="$out" \
  --mypy_out="$out" --mypy_grpc_out="$out" \
  imageprune_cri/_pb/api.proto
