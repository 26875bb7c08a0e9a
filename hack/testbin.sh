#!/usr/bin/env bash
# Build (once) and cache the real binaries the integration/e2e tests need:
#   kube-apiserver, kubectl, etcd, helm, crictl, containerd (2.x), ctr,
#   containerd-shim-runc-v2, and for a real node kubelet, kube-controller-manager,
#   kube-scheduler
# from pinned Go module versions through the Go module proxy.
#
# Usage:
#   BIN=$(hack/testbin.sh)          # build if needed; last stdout line = bin dir
#   hack/testbin.sh --print-dir     # print the bin dir, build nothing
#   hack/testbin.sh --check         # build if needed, then smoke-test the binaries
#
# Environment:
#   IMAGEPRUNE_TESTBIN_CACHE  cache root (default $HOME/.cache/imageprune/testbin)
#   IMAGEPRUNE_TESTBIN_DIR    a complete prebuilt bin dir: used as-is, nothing built
#   KUBEBUILDER_ASSETS        dir with kube-apiserver, etcd, kubectl: those three are
#                             taken from there (symlinked), the rest built/cached
#
# Progress and per-binary timings go to stderr. See docs/testbin.md.
# shellcheck disable=SC2317  # build_* functions are called indirectly via step()
set -euo pipefail

main() {
  # ---- pinned versions (bump RECIPE when build flags change) -----------------
  local RECIPE=1
  local K8S_VERSION=v1.36.3          # k8s.io/kubernetes; staging modules are v0.36.3
  local ETCD_VERSION=v3.6.13         # go.etcd.io/etcd/server/v3
  local HELM_VERSION=v3.21.4         # helm.sh/helm/v3
  local CRICTL_VERSION=v1.37.0       # sigs.k8s.io/cri-tools
  local CONTAINERD_VERSION=v2.3.7    # github.com/containerd/containerd/v2

  local mode=build
  case "${1:-}" in
    "") ;;
    --print-dir) mode=print ;;
    --check) mode=check ;;
    -h|--help) sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; return 0 ;;
    *) echo "testbin: unknown argument: $1" >&2; return 2 ;;
  esac

  # NODE_BINS came later than the rest: a cache dir holding every other binary is
  # completed in place (see fill_node) instead of rebuilt, so RECIPE stays 1.
  local NODE_BINS=(kubelet kube-controller-manager kube-scheduler)
  local BASE_BINS=(kube-apiserver kubectl etcd helm crictl containerd ctr containerd-shim-runc-v2)
  local ALL_BINS=("${BASE_BINS[@]}" "${NODE_BINS[@]}")
  local KBA_BINS=(kube-apiserver etcd kubectl)

  # ---- prebuilt full dir -----------------------------------------------------
  if [[ -n "${IMAGEPRUNE_TESTBIN_DIR:-}" ]]; then
    local d b
    d=$(cd "$IMAGEPRUNE_TESTBIN_DIR" && pwd -P)
    for b in "${ALL_BINS[@]}"; do
      [[ -x "$d/$b" ]] || { echo "testbin: IMAGEPRUNE_TESTBIN_DIR=$d lacks $b" >&2; return 1; }
    done
    [[ $mode == check ]] && smoke "$d"
    echo "$d"
    return 0
  fi

  command -v go >/dev/null || { echo "testbin: go not found on PATH" >&2; return 1; }
  export GOWORK=off GOFLAGS='' GO111MODULE=on
  local goversion goos goarch
  { read -r goversion; read -r goos; read -r goarch; } < <(go env GOVERSION GOOS GOARCH)

  local cache_root="${IMAGEPRUNE_TESTBIN_CACHE:-$HOME/.cache/imageprune/testbin}"
  mkdir -p "$cache_root"
  cache_root=$(cd "$cache_root" && pwd -P)

  local kba=""
  local key="r${RECIPE}_${goversion}_${goos}-${goarch}"
  if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
    kba=$(cd "$KUBEBUILDER_ASSETS" && pwd -P)
    local b
    for b in "${KBA_BINS[@]}"; do
      [[ -x "$kba/$b" ]] || { echo "testbin: KUBEBUILDER_ASSETS=$kba lacks $b" >&2; return 1; }
    done
    # The node binaries are always built, from K8S_VERSION.
    key+="_kba-$(printf %s "$kba" | sha256sum | cut -c1-10)_node-${K8S_VERSION}"
  else
    key+="_k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}"
  fi
  key+="_helm-${HELM_VERSION}_crictl-${CRICTL_VERSION}_containerd-${CONTAINERD_VERSION}"

  local bindir="$cache_root/$key"
  if [[ $mode == print ]]; then echo "$bindir"; return 0; fi

  if ! complete "$bindir"; then
    # serialize concurrent runs for the same key
    exec 9>"$cache_root/.lock-$key"
    flock 9
    if complete "$bindir"; then
      :
    elif complete "$bindir" "${BASE_BINS[@]}"; then
      fill_node
    else
      build_all
    fi
    exec 9>&-
  else
    log "cache hit: $bindir"
  fi

  [[ $mode == check ]] && smoke "$bindir"
  echo "$bindir"
}

log() { echo "testbin: $*" >&2; }

# complete DIR [BIN...]: DIR holds every BIN (default: all of them).
complete() {
  local d=$1 b; shift
  (($#)) || set -- "${ALL_BINS[@]}"
  [[ -d "$d" ]] || return 1
  for b in "$@"; do [[ -x "$d/$b" ]] || return 1; done
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }

# Uses main's locals (bash dynamic scoping).
build_all() {
  local work="$cache_root/.work/$key"
  local stage="$work/bin.partial"
  mkdir -p "$stage"
  # A stale complete-looking dir (e.g. a binary deleted by hand) is rebuilt.
  if [[ -e "$bindir" ]]; then
    log "incomplete $bindir: rebuilding"
    rm -rf "$bindir"
  fi
  local t_all
  t_all=$(now)
  log "building into $stage (Go $goversion; module cache $(go env GOMODCACHE))"

  if [[ -n "$kba" ]]; then
    local b
    for b in "${KBA_BINS[@]}"; do ln -sfn "$kba/$b" "$stage/$b"; done
    log "kube-apiserver, etcd, kubectl: from KUBEBUILDER_ASSETS=$kba"
  else
    step kube-apiserver build_k8s kube-apiserver
    step kubectl        build_k8s kubectl
    step etcd           build_etcd
  fi
  step helm       build_helm
  step crictl     build_crictl
  step containerd build_containerd   # also ctr and containerd-shim-runc-v2
  node_steps

  verify "$stage"
  verify_node "$stage"
  {
    echo "key=$key"
    echo "go=$goversion"
    if [[ -n "$kba" ]]; then
      echo "kube-apiserver/etcd/kubectl: KUBEBUILDER_ASSETS=$kba"
    else
      echo "kubernetes=$K8S_VERSION etcd=$ETCD_VERSION"
    fi
    echo "helm=$HELM_VERSION crictl=$CRICTL_VERSION containerd=$CONTAINERD_VERSION"
    cat "$work/timings" 2>/dev/null || true
  } >"$stage/VERSIONS"
  # Atomic publish: the final dir appears only once everything is built.
  mv -T "$stage" "$bindir"
  rm -f "$work/timings"
  log "done in $(elapsed "$t_all")s: $bindir"
}

node_steps() {
  local b
  for b in "${NODE_BINS[@]}"; do step "$b" build_k8s "$b"; done
}

# A published dir from before NODE_BINS existed: build those into it. Each binary
# is renamed into place only when built (gobuild), so no half-written file is ever
# seen; the dir counts as complete once the last one lands.
fill_node() {
  local work="$cache_root/.work/$key"
  local stage="$bindir"
  mkdir -p "$work"
  local t_all
  t_all=$(now)
  log "adding ${NODE_BINS[*]} to $bindir"
  rm -f "$work/timings"
  node_steps
  verify_node "$stage"
  cat "$work/timings" >>"$stage/VERSIONS"
  rm -f "$work/timings"
  log "done in $(elapsed "$t_all")s: $bindir"
}

# step NAME FUNC ARGS...: skip if NAME is already staged (resumed build), else time FUNC.
step() {
  local name=$1; shift
  if [[ -x "$stage/$name" ]]; then
    log "$name: already built (resumed)"
    return 0
  fi
  local t
  t=$(now)
  log "$name: building..."
  "$@"
  local s
  s=$(elapsed "$t")
  log "$name: built in ${s}s"
  echo "build_seconds.$name=$s" >>"$work/timings"
}

# go build into a temp name, then rename into the stage dir.
gobuild() { # gobuild MODDIR OUTNAME LDFLAGS TAGS PKG
  local moddir=$1 out=$2 ldflags=$3 tags=$4 pkg=$5
  (cd "$moddir" && go build -mod=mod -trimpath -buildvcs=false -tags "$tags" \
      -ldflags "$ldflags" -o "$stage/.$out.tmp" "$pkg")
  mv -f "$stage/.$out.tmp" "$stage/$out"
}

# ---- kubernetes: wrapper module replacing every ./staging/ module ------------
k8s_wrapper() {
  local dir="$work/k8s"
  [[ -f "$dir/.ready" ]] && return 0
  rm -rf "$dir"; mkdir -p "$dir"
  local gomod staging_ver godebug
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  [[ -f "$gomod" ]] || { log "cannot download k8s.io/kubernetes@$K8S_VERSION"; return 1; }
  staging_ver="v0.${K8S_VERSION#v1.}"
  godebug=$(grep -E '^godebug[[:space:]]' "$gomod" || true)
  {
    echo "module imageprune.local/testbin/k8s"
    echo
    echo "go $(sed -n 's/^go //p' "$gomod")"
    [[ -n "$godebug" ]] && { echo; echo "$godebug"; }
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    go mod edit -json "$gomod" | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    if r["New"]["Path"].startswith("./staging/"):
        print(r["Old"]["Path"])' | sort -u | sed "s|.*|\t& => & $staging_ver|"
    echo ")"
  } >"$dir/go.mod"
  log "k8s wrapper: $(grep -c '=>' "$dir/go.mod") staging replaces -> $staging_ver"
  local c cmds=()
  for c in kube-apiserver kubectl "${NODE_BINS[@]}"; do
    cmds+=("k8s.io/kubernetes/cmd/$c@$K8S_VERSION")
  done
  (cd "$dir" && go get "${cmds[@]}") >&2
  touch "$dir/.ready"
}

build_k8s() {
  local cmd=$1
  k8s_wrapper
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local ld="-s -w" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  CGO_ENABLED=0 gobuild "$work/k8s" "$cmd" "$ld" "" "k8s.io/kubernetes/cmd/$cmd"
}

# ---- etcd: server/v3 is package main but has replace lines -> wrapper --------
build_etcd() {
  local dir="$work/etcd"
  if [[ ! -f "$dir/.ready" ]]; then
    rm -rf "$dir"; mkdir -p "$dir"
    (cd "$dir" && go mod init imageprune.local/testbin/etcd &&
       go get -tool "go.etcd.io/etcd/server/v3@$ETCD_VERSION") >&2
    touch "$dir/.ready"
  fi
  CGO_ENABLED=0 gobuild "$dir" etcd "-s -w" "" go.etcd.io/etcd/server/v3
}

# ---- modules without replace lines: go install pkg@version -------------------
goinstall() { # goinstall OUTNAMES LDFLAGS TAGS PKG@VER...
  local outs=$1 ldflags=$2 tags=$3; shift 3
  local tmp="$stage/.gobin.tmp"
  rm -rf "$tmp"; mkdir -p "$tmp"
  GOBIN="$tmp" go install -trimpath -buildvcs=false -tags "$tags" -ldflags "$ldflags" "$@"
  local o
  for o in $outs; do mv -f "$tmp/$o" "$stage/$o"; done
  rm -rf "$tmp"
}

build_helm() {
  # helm's own client-go minor gives the default .Capabilities.KubeVersion,
  # like helm's Makefile does for release builds.
  local gomod cg minor
  gomod=$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  cg=$(awk '$1=="k8s.io/client-go"{print $2; exit}' "$gomod")   # v0.36.2
  minor=${cg#v0.}; minor=${minor%%.*}
  local ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  ld+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  ld+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
  ld+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor"
  CGO_ENABLED=0 goinstall helm "$ld" "" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
}

build_crictl() {
  CGO_ENABLED=0 goinstall crictl \
    "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" "" \
    "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
}

build_containerd() {
  # containerd 2.x go.mod has no replace lines. Static (CGO off) build; the btrfs
  # snapshotter needs cgo + libbtrfs headers, so it is excluded with no_btrfs.
  local m=github.com/containerd/containerd/v2
  local ld="-s -w -X $m/version.Version=$CONTAINERD_VERSION"
  # containerd is moved into place last: step() treats it as "all three done".
  CGO_ENABLED=0 goinstall "ctr containerd-shim-runc-v2 containerd" "$ld" \
    "no_btrfs urfave_cli_no_docs" \
    "$m/cmd/containerd@$CONTAINERD_VERSION" "$m/cmd/ctr@$CONTAINERD_VERSION" \
    "$m/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION"
}

# ---- quick version checks before publishing -----------------------------------
verify() {
  local d=$1 out
  if [[ -z "$kba" ]]; then
    out=$("$d/kube-apiserver" --version)
    [[ "$out" == "Kubernetes $K8S_VERSION" ]] || { log "kube-apiserver --version: $out"; return 1; }
    out=$("$d/kubectl" version --client 2>&1)
    [[ "$out" == *"$K8S_VERSION"* ]] || { log "kubectl version: $out"; return 1; }
    out=$("$d/etcd" --version)
    [[ "$out" == *"${ETCD_VERSION#v}"* ]] || { log "etcd --version: $out"; return 1; }
  fi
  out=$("$d/helm" version --short)
  [[ "$out" == "$HELM_VERSION"* ]] || { log "helm version: $out"; return 1; }
  out=$("$d/crictl" --version)
  [[ "$out" == *"$CRICTL_VERSION"* ]] || { log "crictl --version: $out"; return 1; }
  out=$("$d/containerd" --version)
  [[ "$out" == *"$CONTAINERD_VERSION"* ]] || { log "containerd --version: $out"; return 1; }
  out=$("$d/ctr" --version)
  [[ "$out" == *"$CONTAINERD_VERSION"* ]] || { log "ctr --version: $out"; return 1; }
  log "versions verified"
}

verify_node() {
  local d=$1 b out
  for b in "${NODE_BINS[@]}"; do
    out=$("$d/$b" --version 2>&1)
    [[ "$out" == "Kubernetes $K8S_VERSION" ]] || { log "$b --version: $out"; return 1; }
  done
}

# ---- optional smoke test (--check) ---------------------------------------------
smoke() {
  local d=$1
  local tmp
  tmp=$(mktemp -d)
  # shellcheck disable=SC2064
  trap "smoke_cleanup '$tmp'" EXIT
  log "smoke: versions"
  "$d/kube-apiserver" --version >&2
  "$d/kubectl" version --client >&2
  "$d/etcd" --version >&2
  "$d/helm" version --short >&2
  "$d/crictl" --version >&2
  "$d/containerd" --version >&2

  log "smoke: helm template with kubeVersion >=1.30"
  mkdir -p "$tmp/chart/templates"
  cat >"$tmp/chart/Chart.yaml" <<'EOF'
apiVersion: v2
name: smoke
version: 0.1.0
kubeVersion: ">=1.30.0-0"
EOF
  echo 'kind: ConfigMap
apiVersion: v1
metadata: {name: smoke}
data: {kube: "{{ .Capabilities.KubeVersion.Version }}"}' >"$tmp/chart/templates/cm.yaml"
  "$d/helm" template smoke "$tmp/chart" | grep 'kube:' >&2

  log "smoke: containerd daemon (temp root/state/socket), ctr + crictl, image import/rmi"
  mkdir -p "$tmp/root" "$tmp/state"
  # containerd 2.x: config "version = 3" (2.3 migrates it to 4 in memory); the CRI
  # runtime options live under io.containerd.cri.v1.runtime.
  cat >"$tmp/config.toml" <<EOF
version = 3
root = "$tmp/root"
state = "$tmp/state"
[grpc]
  address = "$tmp/containerd.sock"
[ttrpc]
  address = "$tmp/containerd.sock.ttrpc"
[debug]
  address = "$tmp/debug.sock"
[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
EOF
  local sock="$tmp/containerd.sock"
  printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\n' "$sock" "$sock" >"$tmp/crictl.yaml"
  PATH="$d:$PATH" "$d/containerd" --config "$tmp/config.toml" >"$tmp/containerd.log" 2>&1 &
  echo $! >"$tmp/pid"
  local _
  for _ in $(seq 1 100); do
    [[ -S "$sock" ]] && break
    sleep 0.1
  done
  mk_oci_tar "$tmp/img.tar" docker.io/library/testbin-smoke:v1
  if ! { "$d/ctr" --address "$sock" version >&2 &&
         "$d/crictl" --config "$tmp/crictl.yaml" version >&2 &&
         "$d/ctr" --address "$sock" -n k8s.io images import "$tmp/img.tar" >&2 &&
         "$d/crictl" --config "$tmp/crictl.yaml" images | grep testbin-smoke >/dev/null &&
         "$d/crictl" --config "$tmp/crictl.yaml" rmi docker.io/library/testbin-smoke:v1 >&2; }; then
    log "smoke: containerd check failed; containerd log:"
    cat "$tmp/containerd.log" >&2
    return 1
  fi
  smoke_cleanup "$tmp"
  trap - EXIT
  log "smoke: OK"
}

# mk_oci_tar FILE NAME: an image archive made by the tests' own builder
# (tests/testkit/oci.py, standard library only; needs /bin/busybox from busybox-static).
mk_oci_tar() {
  local tests
  tests="$(cd "$(dirname "${BASH_SOURCE[0]}")/../tests" && pwd)"
  PYTHONPATH="$tests" python3 -c '
import pathlib, sys
from testkit import oci
oci.build_archive(pathlib.Path(sys.argv[1]), [oci.ImageSpec(repo_tags=(sys.argv[2],))])
' "$1" "$2"
}

smoke_cleanup() {
  local tmp=$1
  if [[ -f "$tmp/pid" ]]; then
    kill "$(cat "$tmp/pid")" 2>/dev/null || true
    wait "$(cat "$tmp/pid")" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}

main "$@"; exit
