#!/usr/bin/env bash
# Builds, from the Go module proxy, what the Kubernetes node e2e suite needs, cached under
#   $CRI_SHIM_CACHE/node-e2e-$KUBELET_VERSION/   (default /var/cache/cri-shim/node-e2e-v1.37.2)
#     e2e_node.test   go test -c k8s.io/kubernetes/test/e2e_node (runs its own etcd, API server and
#                     namespace controller with --run-services-mode)
#     kubelet         hack/kubelet/build.sh's kubelet, copied beside it (where the suite looks for it)
#     ginkgo          the ginkgo CLI of the version k8s.io/kubernetes pins
#     agnhost, nonewprivs   test/images/{agnhost,nonewprivs}, static, for the test registry
# Each is skipped when it is there. The wrapper module is hack/kubelet/build.sh's: k8s.io/kubernetes
# required, each staging module replaced with its published v0.N.x release; `go get -t` adds the
# test-only requirements of test/e2e_node.
#   Env: KUBELET_VERSION (default v1.37.2), CRI_SHIM_CACHE (default /var/cache/cri-shim).
set -euo pipefail

# shellcheck source=../lib/k8s-wrapper-module.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/k8s-wrapper-module.sh"

VERSION=${KUBELET_VERSION:-v1.37.2}
CACHE=${CRI_SHIM_CACHE:-/var/cache/cri-shim}
OUTDIR=$CACHE/node-e2e-$VERSION
here=$(cd "$(dirname "$0")" && pwd)
export PATH=/usr/local/go/bin:$PATH
export GOFLAGS=-buildvcs=false GOTOOLCHAIN=local

log() { echo "node-e2e-build: $*" >&2; }
mkdir -p "$OUTDIR"

# The kubelet: hack/kubelet/build.sh builds it once for the guest and for this suite.
if [ ! -x "$OUTDIR/kubelet" ]; then
  KUBELET_VERSION=$VERSION CRI_SHIM_CACHE=$CACHE "$here/../kubelet/build.sh"
  cp "$CACHE/kubelet-$VERSION/kubelet" "$OUTDIR/kubelet"
fi

want=(ginkgo agnhost nonewprivs e2e_node.test)
missing=()
for b in "${want[@]}"; do [ -x "$OUTDIR/$b" ] || missing+=("$b"); done
if ((${#missing[@]} == 0)); then
  log "all of ${want[*]} are in $OUTDIR: not rebuilt"
  exit 0
fi
log "to build: ${missing[*]}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

k8s_wrapper_module nodee2ebuild "$VERSION" || exit 1
ginkgo_version=$(awk '$1 == "github.com/onsi/ginkgo/v2" { print $2; exit }' "$K8S_GOMOD")
cat >tools.go <<'GO'
//go:build tools

package main

import (
	_ "github.com/onsi/ginkgo/v2/ginkgo"
	_ "k8s.io/kubernetes/test/images/agnhost"
	_ "k8s.io/kubernetes/test/images/nonewprivs"
)
GO
log "resolving the requirements of test/e2e_node, agnhost, nonewprivs and ginkgo (go get -t)"
go get -t k8s.io/kubernetes/test/e2e_node k8s.io/kubernetes/test/images/agnhost \
  k8s.io/kubernetes/test/images/nonewprivs "github.com/onsi/ginkgo/v2/ginkgo@$ginkgo_version" \
  >"$work/get.log" 2>&1 || { log "go get failed:"; tail -30 "$work/get.log" >&2; exit 1; }
ver=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
[ "$ver" = "$VERSION" ] || { log "resolved k8s.io/kubernetes $ver, want $VERSION"; exit 1; }

vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$VERSION -X $vpkg.gitTreeState=clean"
ldflags+=" -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$(echo "$VERSION" | cut -d. -f2)"
timed() { # name, command...: runs it, records its seconds in $OUTDIR/build-seconds
  local name=$1 t0; shift
  t0=$(date +%s)
  "$@"
  echo "$name $(( $(date +%s) - t0 ))" >>"$OUTDIR/build-seconds"
  log "built $name in $(( $(date +%s) - t0 ))s"
}
for b in "${missing[@]}"; do
  case $b in
    ginkgo)
      timed ginkgo env CGO_ENABLED=0 go build -trimpath -o "$OUTDIR/ginkgo.tmp" github.com/onsi/ginkgo/v2/ginkgo ;;
    agnhost|nonewprivs)
      timed "$b" env CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$OUTDIR/$b.tmp" "k8s.io/kubernetes/test/images/$b" ;;
    e2e_node.test)
      log "go test -c k8s.io/kubernetes/test/e2e_node (long: tens of minutes on 2 shared cores)"
      timed e2e_node.test env CGO_ENABLED=0 go test -c -vet=off -trimpath -tags providerless -ldflags "$ldflags" \
        -o "$OUTDIR/e2e_node.test.tmp" k8s.io/kubernetes/test/e2e_node ;;
  esac
  mv "$OUTDIR/$b.tmp" "$OUTDIR/$b"
done
log "done: $(ls "$OUTDIR" | tr '\n' ' ')"
