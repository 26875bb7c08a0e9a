#!/usr/bin/env bash
# Build the imageprune container image without a Docker engine or a registry
# (docs/image.md): mmdebstrap makes a minimal Debian 12 root filesystem, the pinned base;
# buildah builds the Dockerfile on it with no network, from wheels downloaded here; the
# result is an OCI archive named docker.io/library/imageprune:<version>, which
# `ctr -n k8s.io images import` takes. Prints the archive's path as its last line.
#
# Everything lands in $IMAGEPRUNE_IMAGE_CACHE (default ~/.cache/imageprune/image), keyed
# by its inputs, so an unchanged tree costs nothing and a code change rebuilds only the
# image. Several checkouts may share the cache: builds take turns (a lock), and an entry
# goes only after a day unused. buildah's storage is a temp dir (CONTAINERS_STORAGE_CONF):
# nothing global is touched. Needs root, buildah, mmdebstrap and network access for apt
# and pip.
set -euo pipefail
cd "$(dirname "$0")/.."

cache=${IMAGEPRUNE_IMAGE_CACHE:-$HOME/.cache/imageprune/image}
sources=${IMAGEPRUNE_APT_SOURCES:-/etc/apt/sources.list.d/debian.sources}
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' operator/imageprune/__init__.py)
ref=docker.io/library/imageprune:$version
python_version=3.11 # Debian 12's python3: the wheels must match it, not the host's Python
arch=$(uname -m)

# The base: Debian's essential set (no apt), python3 and what the wheels need. Left out,
# to stay under 150 MB (docs/image.md): documentation and glibc's iconv modules (Python
# has its own codecs). merged-usr as a hook: the usrmerge package would pull in all of
# perl.
base_args=(
  --variant=essential
  --include=python3,python3-venv,libstdc++6
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt="path-exclude=/usr/lib/$arch-linux-gnu/gconv/*"
  --format=tar
  bookworm
)

log() { echo "build-image: $*" >&2; }
key() { sha256sum | cut -c1-16; }
for tool in buildah mmdebstrap flock strip; do
  command -v "$tool" >/dev/null || { log "$tool is missing: apt-get install buildah mmdebstrap binutils"; exit 2; }
done
[[ -r $sources ]] || { log "no apt sources at $sources: set IMAGEPRUNE_APT_SOURCES"; exit 2; }
# A hash of the files under the given paths (bytecode left out).
tree_key() {
  find "$@" -type f -not -path '*/__pycache__/*' -not -name '*.pyc' -print0 \
    | sort -z | xargs -0 sha256sum | key
}

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
tmp=$(mktemp -d /tmp/imageprune-image.XXXXXX)
wheelhouse_link=.wheelhouse
cleanup() {
  rm -rf "$wheelhouse_link" "$tmp"
}
trap cleanup EXIT

# ---- 1. base root filesystem (mmdebstrap; ~1 min, cached) ---------------------------
base_key=$({ printf '%s\n' "${base_args[@]}"; cat "$sources"; } | key)
rootfs=$cache/base-$base_key.tar
if [[ ! -s $rootfs ]]; then
  log "base root filesystem (mmdebstrap ${base_args[*]})"
  if ! mmdebstrap "${base_args[@]}" "$tmp/rootfs.tar" "$sources" >"$tmp/mmdebstrap.log" 2>&1; then
    tail -n 30 "$tmp/mmdebstrap.log" >&2
    exit 1
  fi
  mv "$tmp/rootfs.tar" "$rootfs"
fi

# ---- 2. wheelhouse: our dependencies and the build backend, as wheels (cached) ------
requirements=$(python3 -c '
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))
print("\n".join([*project["build-system"]["requires"], *project["project"]["dependencies"]]))')
wheels_key=$({ printf '%s\n' "$requirements" "$python_version" "$arch"; cat hack/strip_wheels.py; } | key)
wheels=$cache/wheelhouse-$wheels_key
if [[ ! -d $wheels ]]; then
  log "wheelhouse for Python $python_version on $arch"
  mapfile -t reqs <<<"$requirements"
  # pip takes the platforms literally: name every glibc up to Debian 12's 2.36.
  platforms=()
  for minor in $(seq 5 36); do platforms+=(--platform "manylinux_2_${minor}_$arch"); done
  python3 -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
    --python-version "$python_version" --implementation cp --abi "cp${python_version/./}" \
    "${platforms[@]}" --dest "$tmp/wheels" "${reqs[@]}" >&2
  python3 hack/strip_wheels.py "$tmp/wheels"/*.whl
  mv "$tmp/wheels" "$wheels"
fi

# ---- 3. the image (buildah, offline; cached by every input) -------------------------
image_key=$({ echo "$base_key $wheels_key"; tree_key hack/build-image.sh Dockerfile .dockerignore pyproject.toml \
  README.md cri/imageprune_cri operator/imageprune; } | key)
archive=$cache/imageprune-$version-$image_key.oci.tar
touch "$rootfs" "$wheels"
if [[ -s $archive ]]; then
  touch "$archive"
  log "up to date: $archive"
  echo "$archive"
  exit 0
fi

cat >"$tmp/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$tmp/storage"
runroot = "$tmp/run"
EOF
export CONTAINERS_STORAGE_CONF=$tmp/storage.conf
# Each build is a fresh store in $tmp: nothing to remove afterwards but the directory.

log "base image"
container=$(buildah from scratch)
buildah add --quiet "$container" "$rootfs" / >/dev/null
buildah config --env PATH=/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 "$container"
base_id=$(buildah commit --quiet --rm "$container" "localhost/imageprune-base:$base_key")

log "image $ref (base $base_id)"
rm -rf "$wheelhouse_link"
cp -r "$wheels" "$wheelhouse_link"
buildah bud --quiet --network none --layers=false --pull=never \
  --build-arg "BASE=$base_id" \
  --build-arg "PIP_ARGS=--no-index --find-links /src/.wheelhouse" \
  --tag "$ref" . >/dev/null
buildah push --quiet "$ref" "oci-archive:$tmp/image.tar:$ref" >&2
mv "$tmp/image.tar" "$archive"

# Entries of other inputs that no build used for a day are dead weight.
find "$cache" -mindepth 1 -maxdepth 1 -mtime +0 -not -name .lock -exec rm -rf {} +
log "built: $archive"
echo "$archive"
