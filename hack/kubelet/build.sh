#!/usr/bin/env bash
# Builds the kubelet (k8s.io/kubernetes/cmd/kubelet) from the Go module proxy into
#   $CRI_SHIM_CACHE/kubelet-$KUBELET_VERSION/kubelet   (default /var/cache/cri-shim/kubelet-v1.37.2)
# for hack/guest/build.sh to put into the test-node guest. Skipped when that binary is there.
# k8s.io/kubernetes cannot be built as a plain module: its go.mod replaces the k8s.io staging
# modules (k8s.io/api, k8s.io/client-go, ...) with ./staging/src paths that its module zip lacks.
# So a throwaway wrapper module requires k8s.io/kubernetes and replaces each staging module with
# its published release of the same minor (v1.37.2 -> v0.37.2), the list read from that go.mod.
# Static: CGO_ENABLED=0. Network: the Go module proxy only.
#   Env: KUBELET_VERSION (default v1.37.2), CRI_SHIM_CACHE (default /var/cache/cri-shim).
set -euo pipefail

# shellcheck source=../lib/k8s-wrapper-module.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/k8s-wrapper-module.sh"

VERSION=${KUBELET_VERSION:-v1.37.2}
CACHE=${CRI_SHIM_CACHE:-/var/cache/cri-shim}
OUTDIR=$CACHE/kubelet-$VERSION
export PATH=/usr/local/go/bin:$PATH
export GOFLAGS=-buildvcs=false GOTOOLCHAIN=local

log() { echo "kubelet-build: $*" >&2; }
if [ -x "$OUTDIR/kubelet" ]; then
  log "$OUTDIR/kubelet is there ($("$OUTDIR/kubelet" --version 2>/dev/null || echo '?')): not rebuilt"
  exit 0
fi
start=$(date +%s)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

log "reading k8s.io/kubernetes@$VERSION's go.mod from the module proxy"
k8s_wrapper_module kubeletbuild "$VERSION" || exit 1
log "each k8s.io staging module replaced with its v0.${VERSION#v1.} release"
printf 'package main\n\nimport _ "k8s.io/kubernetes/cmd/kubelet"\n' >tools.go
# go mod tidy pulls in every requirement the kubelet's import graph needs, at the versions
# k8s.io/kubernetes pins (minimal version selection keeps them).
go mod tidy >"$work/tidy.log" 2>&1 || { log "go mod tidy failed:"; tail -30 "$work/tidy.log" >&2; exit 1; }
ver=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
[ "$ver" = "$VERSION" ] || { log "resolved k8s.io/kubernetes $ver, want $VERSION"; exit 1; }

log "go build k8s.io/kubernetes/cmd/kubelet (CGO_ENABLED=0; several minutes on 2 cores)"
mkdir -p "$OUTDIR"
# The version the kubelet reports (--version, its node status) comes from these linker variables,
# as the Kubernetes release build sets them.
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$VERSION -X $vpkg.gitTreeState=clean"
ldflags+=" -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$(echo "$VERSION" | cut -d. -f2)"
CGO_ENABLED=0 go build -trimpath -tags providerless -ldflags "$ldflags" -o "$OUTDIR/kubelet.tmp" k8s.io/kubernetes/cmd/kubelet
mv "$OUTDIR/kubelet.tmp" "$OUTDIR/kubelet"
secs=$(( $(date +%s) - start ))
echo "$secs" >"$OUTDIR/build-seconds"
log "built $("$OUTDIR/kubelet" --version) in ${secs}s: $OUTDIR/kubelet ($(du -h "$OUTDIR/kubelet" | cut -f1))"
