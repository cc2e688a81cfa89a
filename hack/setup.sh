#!/usr/bin/env bash
# Installs everything cri-shim and its tests need on a Debian machine, idempotently.
#   - apt packages: runc, CNI plugins, iptables, iproute2, busybox-static (+ the dynamic busybox .deb,
#     extracted, for the e2e test images), criu (checkpoint/restore; Debian 12's 3.17.1 works only on
#     kernels before 6.13 — the daemon checks it with `criu check` and says so)
#   - into $CRI_SHIM_CACHE/bin: containerd + containerd-shim-runc-v2 (the version go.mod pins),
#     runc $RUNC_VERSION (built with seccomp; Debian's runc 1.1 cannot do user namespaces),
#     crictl + critest (cri-tools), ginkgo (the version cri-tools pins)
#   - a default CNI config when the conf dir has none
# Quick when everything is already there.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${CRI_SHIM_CACHE:-/var/cache/cri-shim}
BIN=$CACHE/bin
CRI_TOOLS_VERSION=${CRI_TOOLS_VERSION:-v1.37.0}
# runc built from the Go module proxy: the newest release that builds with our Go. cri-shim's default
# runtime handler runs $BIN/runc when it is there (config key runc_binary).
RUNC_VERSION=${RUNC_VERSION:-v1.5.2}
CNI_CONF_DIR=${CNI_CONF_DIR:-/etc/cni/net.d}
CNI_BIN_DIR=${CNI_BIN_DIR:-/usr/lib/cni}
export GOFLAGS=${GOFLAGS:--buildvcs=false}
export PATH=/usr/local/go/bin:$PATH

log() { echo "setup: $*" >&2; }

mkdir -p "$BIN"

# --- Debian packages -------------------------------------------------------------------------
pkgs=(runc containernetworking-plugins iptables iproute2 busybox-static ca-certificates criu libseccomp-dev pkg-config)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The dynamically linked busybox (conflicts with busybox-static as a package, so it is only
# extracted): the e2e test images need applets that exec real binaries.
if [ ! -x "$CACHE/busybox-dyn/bin/busybox" ]; then
  log "fetching Debian's dynamic busybox"
  tmp=$(mktemp -d)
  ( cd "$tmp" && apt-get download busybox >/dev/null 2>&1 ) || { apt-get update -qq; ( cd "$tmp" && apt-get download busybox >/dev/null ); }
  rm -rf "$CACHE/busybox-dyn"
  dpkg-deb -x "$tmp"/busybox_*.deb "$CACHE/busybox-dyn"
  rm -rf "$tmp"
fi

# --- containerd, at the version go.mod pins ----------------------------------------------------
CONTAINERD_VERSION=$(cd "$ROOT" && go list -m -f '{{.Version}}' github.com/containerd/containerd/v2)
stamp=$BIN/.containerd-$CONTAINERD_VERSION
if [ ! -f "$stamp" ] || [ ! -x "$BIN/containerd" ] || [ ! -x "$BIN/containerd-shim-runc-v2" ]; then
  log "building containerd $CONTAINERD_VERSION (a few minutes)"
  GOBIN=$BIN CGO_ENABLED=1 go install -tags no_btrfs,no_devmapper,no_zfs \
    "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION"
  rm -f "$BIN"/.containerd-*
  touch "$stamp"
fi

# --- runc, at RUNC_VERSION (cgo + libseccomp: the seccomp build tag) -------------------------------
stamp=$BIN/.runc-$RUNC_VERSION
if [ ! -f "$stamp" ] || [ ! -x "$BIN/runc" ] || ! "$BIN/runc" --version 2>/dev/null | grep -qx "runc version ${RUNC_VERSION#v}"; then
  log "building runc $RUNC_VERSION (one to a few minutes)"
  tmpbin=$(mktemp -d)
  GOBIN=$tmpbin CGO_ENABLED=1 go install -trimpath -buildmode=pie -tags "seccomp urfave_cli_no_docs" \
    -ldflags "-X main.gitCommit=$RUNC_VERSION" "github.com/opencontainers/runc@$RUNC_VERSION"
  # Replace atomically: running shims may be executing the old binary.
  install -m 0755 "$tmpbin/runc" "$BIN/runc.new"
  mv -f "$BIN/runc.new" "$BIN/runc"
  rm -rf "$tmpbin"
  rm -f "$BIN"/.runc-*
  touch "$stamp"
fi

# --- cri-tools: crictl, critest, and the ginkgo CLI critest -parallel needs ----------------------
stamp=$BIN/.cri-tools-$CRI_TOOLS_VERSION
if [ ! -f "$stamp" ] || [ ! -x "$BIN/critest" ] || [ ! -x "$BIN/crictl" ] || [ ! -x "$BIN/ginkgo" ]; then
  log "building crictl and critest $CRI_TOOLS_VERSION"
  src=$(cd /tmp && GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/cri-tools@$CRI_TOOLS_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  work=$(mktemp -d)
  cp -r "$src"/. "$work"/
  chmod -R u+w "$work"
  (
    cd "$work"
    GOFLAGS=-mod=mod go build -o "$BIN/crictl" ./cmd/crictl
    GOFLAGS=-mod=mod go test -c -o "$BIN/critest" ./cmd/critest
    ginkgo_version=$(GOFLAGS=-mod=mod go list -m -f '{{.Version}}' github.com/onsi/ginkgo/v2)
    GOBIN=$BIN go install "github.com/onsi/ginkgo/v2/ginkgo@$ginkgo_version"
  )
  rm -rf "$work"
  rm -f "$BIN"/.cri-tools-*
  touch "$stamp"
fi

# --- a default CNI config ------------------------------------------------------------------------
if [ -z "$(find "$CNI_CONF_DIR" -maxdepth 1 \( -name '*.conf' -o -name '*.conflist' -o -name '*.json' \) 2>/dev/null)" ]; then
  log "writing $CNI_CONF_DIR/10-cri-shim.conflist"
  mkdir -p "$CNI_CONF_DIR"
  cat >"$CNI_CONF_DIR/10-cri-shim.conflist" <<'JSON'
{
  "cniVersion": "1.0.0",
  "name": "cri-shim",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "crishim0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "10.88.0.0/16"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
fi

log "ready: $BIN"
