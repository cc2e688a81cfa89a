#!/usr/bin/env bash
# Installs everything cri-shim and its tests need on a Debian machine, idempotently.
#   - apt packages: runc, crun (a second runtime handler), CNI plugins, iptables, iproute2, busybox-static (+ the dynamic busybox .deb,
#     extracted, for the e2e test images), criu (Debian 12's 3.17.1; it works only on kernels before
#     6.13, so see below)
#   - CRIU $CRIU_VERSION from Debian trixie (kernels from 6.13 on need CRIU >= 4.1), with trixie's
#     libc and the libraries it links, extracted under $CRI_SHIM_CACHE/criu/ with a private apt
#     state (the system's apt sources and libc are not touched); $CRI_SHIM_CACHE/bin/criu runs it
#     without hardware breakpoints (CRIU_FAULT=130: they do not fire in some VMs, see below)
#   - into $CRI_SHIM_CACHE/bin: containerd + containerd-shim-runc-v2 (the version go.mod pins),
#     runc $RUNC_VERSION (built with seccomp; Debian's runc 1.1 cannot do user namespaces),
#     crictl + critest (cri-tools), ginkgo (the version cri-tools pins)
#   - a default CNI config when the conf dir has none
# Quick when everything is already there.
# SETUP_PROFILE=bench installs only what `make bench` needs (no runc build, no CRIU, no ginkgo): on a
# fresh machine that saves the longest builds; the benchmark then runs Debian's runc for both
# runtimes (or the built one for both when an earlier full setup made it).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${CRI_SHIM_CACHE:-/var/cache/cri-shim}
BIN=$CACHE/bin
CRI_TOOLS_VERSION=${CRI_TOOLS_VERSION:-v1.37.0}
# runc built from the Go module proxy: the newest release that builds with our Go. cri-shim's default
# runtime handler runs $BIN/runc when it is there (config key runc_binary).
RUNC_VERSION=${RUNC_VERSION:-v1.5.2}
# CRIU for checkpoint/restore: runc runs `criu` from its PATH, which for the managed containerd starts
# with $BIN; the daemon checks $BIN/criu first too.
CRIU_VERSION=${CRIU_VERSION:-4.1.1-1}
CRIU_SUITE=${CRIU_SUITE:-trixie}
CRIU_MIRROR=${CRIU_MIRROR:-http://deb.debian.org/debian}
CNI_CONF_DIR=${CNI_CONF_DIR:-/etc/cni/net.d}
CNI_BIN_DIR=${CNI_BIN_DIR:-/usr/lib/cni}
export GOFLAGS=${GOFLAGS:--buildvcs=false}
export PATH=/usr/local/go/bin:$PATH
PROFILE=${SETUP_PROFILE:-full}
full() { [ "$PROFILE" != bench ]; }

log() { echo "setup: $*" >&2; }

mkdir -p "$BIN"

# --- Debian packages -------------------------------------------------------------------------
pkgs=(runc crun containernetworking-plugins iptables iproute2 busybox-static ca-certificates criu libseccomp-dev pkg-config)
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
if full && { [ ! -f "$stamp" ] || [ ! -x "$BIN/runc" ] || ! "$BIN/runc" --version 2>/dev/null | grep -qx "runc version ${RUNC_VERSION#v}"; }; then
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

# --- CRIU $CRIU_VERSION from Debian $CRIU_SUITE, with its own libc ----------------------------------
# Debian 12's CRIU 3.17.1 fails `criu check` on kernels >= 6.13 (vDSO split into [vvar] and
# [vvar_vclock]; fixed in CRIU 4.1). Trixie's criu needs libc6 >= 2.38, so the packages are only
# extracted into a private root and $BIN/criu runs the binary with that root's dynamic loader.
criu_root=$CACHE/criu/$CRIU_VERSION
if full && [ ! -x "$criu_root/usr/sbin/criu" ]; then
  log "fetching CRIU $CRIU_VERSION from Debian $CRIU_SUITE (about 8 MB)"
  # A failure here is a warning, not the end of the setup: without CRIU only checkpoint/restore
  # is unavailable (FailedPrecondition). The subshell stops at the first failing step.
  set +e
  (
  set -e
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/debs"
  echo "deb $CRIU_MIRROR $CRIU_SUITE main" >"$tmp/sources.list"
  : >"$tmp/status"
  aptopts=(-o "Dir::Etc::sourcelist=$tmp/sources.list" -o Dir::Etc::sourceparts=/dev/null
    -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache" -o "Dir::State::status=$tmp/status"
    -o APT::Architecture=amd64 -o APT::Sandbox::User=root -qq)
  apt-get "${aptopts[@]}" update
  # criu and everything it needs at run time (an empty status: nothing counts as installed).
  deps=$(apt-cache "${aptopts[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances "criu=$CRIU_VERSION" | grep -v '^[ <]' | sort -u | grep -vx 'criu\|libcompel1')
  # shellcheck disable=SC2086
  (cd "$tmp/debs" && apt-get "${aptopts[@]}" download "criu=$CRIU_VERSION" "libcompel1=$CRIU_VERSION" $deps)
  rm -rf "$criu_root.new"
  mkdir -p "$criu_root.new"
  for d in "$tmp"/debs/*.deb; do dpkg-deb -x "$d" "$criu_root.new"; done
  rm -rf "$tmp" "$criu_root"
  mv "$criu_root.new" "$criu_root"
  # Older CRIU roots go.
  for d in "$CACHE"/criu/*; do [ "$d" = "$criu_root" ] || rm -rf "$d"; done
  )
  rc=$?
  set -e
  ((rc == 0)) || log "warning: fetching CRIU $CRIU_VERSION failed (exit $rc); checkpoint/restore needs it"
fi
# $BIN/criu runs it; rewritten whenever its text changes. exec keeps the process and its
# descriptors: runc talks to `criu swrk 3` over an inherited socket.
# CRIU_FAULT=130 (FI_NO_BREAKPOINTS, one of CRIU's non-fatal fault injections): CRIU 4.1 stops a
# dumped or restored task on its way out of the parasite code with a hardware breakpoint without
# checking that those work; in a VM whose hypervisor does not virtualize the debug registers the
# breakpoint never fires and every dump and restore hangs ("Waiting for N to trap"; `criu check`
# still says "Looks good"). Without breakpoints CRIU steps that way out with PTRACE_SYSCALL, a few
# more context switches; CRIU 4.2 checks its breakpoints and does the same when they fail.
if full && [ -x "$criu_root/usr/sbin/criu" ]; then
  criu_wrapper=$(
    echo '#!/bin/sh'
    echo "# CRIU $CRIU_VERSION (Debian $CRIU_SUITE) with its own libc, installed by cri-shim's hack/setup.sh."
    echo '# No hardware breakpoints (they do not fire in some VMs; see hack/setup.sh): CRIU_FAULT=130'
    echo '# unless CRIU_FAULT is set; set and empty keeps them.'
    echo 'if [ -z "${CRIU_FAULT+set}" ]; then export CRIU_FAULT=130; elif [ -z "$CRIU_FAULT" ]; then unset CRIU_FAULT; fi'
    echo "R=$criu_root"
    echo 'exec "$R/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" --library-path "$R/usr/lib/x86_64-linux-gnu" --argv0 criu "$R/usr/sbin/criu" "$@"'
  )
  if [ "$(cat "$BIN/criu" 2>/dev/null)" != "$criu_wrapper" ]; then
    printf '%s\n' "$criu_wrapper" >"$BIN/criu.new"
    chmod 0755 "$BIN/criu.new"
    mv -f "$BIN/criu.new" "$BIN/criu"
  fi
fi
if full && [ -x "$BIN/criu" ] && ! "$BIN/criu" check >/dev/null 2>&1; then
  log "warning: $BIN/criu check fails on this host; checkpoint/restore will answer FailedPrecondition:"
  "$BIN/criu" check 2>&1 | sed 's/^/setup:   /' >&2 || true
fi

# --- cri-tools: crictl, critest, and the ginkgo CLI critest -parallel needs ----------------------
stamp=$BIN/.cri-tools-$CRI_TOOLS_VERSION
if [ ! -f "$stamp" ] || [ ! -x "$BIN/critest" ] || [ ! -x "$BIN/crictl" ] || { full && [ ! -x "$BIN/ginkgo" ]; }; then
  log "building crictl and critest $CRI_TOOLS_VERSION"
  src=$(cd /tmp && GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/cri-tools@$CRI_TOOLS_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  work=$(mktemp -d)
  cp -r "$src"/. "$work"/
  chmod -R u+w "$work"
  (
    cd "$work"
    GOFLAGS=-mod=mod go build -o "$BIN/crictl" ./cmd/crictl
    GOFLAGS=-mod=mod go test -c -o "$BIN/critest" ./cmd/critest
    if full; then
      ginkgo_version=$(GOFLAGS=-mod=mod go list -m -f '{{.Version}}' github.com/onsi/ginkgo/v2)
      GOBIN=$BIN go install "github.com/onsi/ginkgo/v2/ginkgo@$ginkgo_version"
    fi
  )
  rm -rf "$work"
  rm -f "$BIN"/.cri-tools-*
  if full || [ -x "$BIN/ginkgo" ]; then touch "$stamp"; fi
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
