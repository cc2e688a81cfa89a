#!/usr/bin/env bash
# The Kubernetes node e2e suite (k8s.io/kubernetes test/e2e_node) against cri-shim on this host:
# e2e_node.test runs its own etcd, API server and namespace controller, starts the kubelet beside it
# on cri-shim's socket, and drives pods through the API. hack/node-e2e/build.sh builds (or reuses)
# the binaries; this script starts the node e2e image registry (test/e2e_node/registry) and cri-shim
# (a managed containerd in a temp dir, the registry through its hosts dir, a runtime handler
# test-handler for the RuntimeClass specs), runs the suite, stops all it started, and writes
# test/e2e_node/results.txt (the ratchet: test/e2e_node/baseline.txt must pass).
#
# The host stays as it was:
#  - everything runs in a mount namespace of its own (slave: the host's mounts reach it, none of its
#    mounts reach the host), where systemd-run is hidden (the suite would start the kubelet as a
#    systemd unit whenever it is on PATH) and /var/lib/kubelet, /var/log/pods and
#    /var/log/containers are the run's own directories (the mount points are made, and removed
#    after, only where the host has none);
#  - the kubelet uses cgroupfs under a cgroup root of the run's own (/crishim-e2e-PID in every v1
#    hierarchy), moves no process it did not start (--system-cgroups empty), sits in
#    /crishim-e2e-PID/kubelet and finds cri-shim in /crishim-e2e-PID/runtime;
#  - the kernel settings the kubelet sets at start (vm.*, kernel.panic*, kernel.keys.*) are put back;
#  - every process the run started is ended, its cgroups and state dirs removed.
#
# Env: NODE_E2E_FOCUS (ginkgo focus, default \[NodeConformance\]), NODE_E2E_SKIP (default
#      \[Flaky\]|\[Slow\]|\[Serial\]), NODE_E2E_PROCS (ginkgo processes, default 4),
#      NODE_E2E_TIMEOUT (ginkgo --timeout, default 80m), NODE_E2E_RUNTIME=containerd (the suite
#      against containerd's own CRI plugin instead: results-containerd.txt, no ratchet),
#      NODE_E2E_NO_RATCHET=1, NODE_E2E_LOGS (default test/e2e_node/last-run),
#      NODE_E2E_BIN (the binaries, default $CRI_SHIM_CACHE/node-e2e-$KUBELET_VERSION),
#      KUBELET_VERSION (default v1.37.2), CRI_SHIM_CACHE (default /var/cache/cri-shim).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/test/e2e_node
VERSION=${KUBELET_VERSION:-v1.37.2}
CACHE=${CRI_SHIM_CACHE:-/var/cache/cri-shim}
BIN=${NODE_E2E_BIN:-$CACHE/node-e2e-$VERSION}
export PATH=$CACHE/bin:/usr/local/go/bin:$PATH
export GOFLAGS=${GOFLAGS:--buildvcs=false}
RUNTIME=${NODE_E2E_RUNTIME:-cri-shim}
FOCUS=${NODE_E2E_FOCUS:-'\[NodeConformance\]'}
SKIP=${NODE_E2E_SKIP:-'\[Flaky\]|\[Slow\]|\[Serial\]'}
PROCS=${NODE_E2E_PROCS:-4}
TIMEOUT=${NODE_E2E_TIMEOUT:-80m}
LOGS=${NODE_E2E_LOGS:-$HERE/last-run}
# The kernel settings the kubelet's setupKernelTunables writes when protectKernelDefaults is false.
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
         kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
# Host paths the kubelet writes to whatever its flags say: each is a directory of the run's own.
HOST_DIRS=(/var/lib/kubelet /var/log/pods /var/log/containers)
# Ports the kubelet and the API server take (healthz, server, read-only; API server).
PORTS=(10248 10250 10255 6443)

log() { echo "node-e2e: $*" >&2; }

# ---------------------------------------------------------------------------------------------
# The part inside the mount namespace ($0 --inner): hides systemd-run, binds the run's own
# directories over the kubelet's host paths, starts the registry and the runtime, runs the suite.
# Its processes are ended by its own trap; cgroups, kernel settings and dirs by the outer one.
inner() {
  # Every process of the run in the run's cgroups, so the outer cleanup finds what outlives it.
  into_cgroup harness "$BASHPID"
  if sr=$(command -v systemd-run); then
    # A non-executable file over it: exec.LookPath skips it.
    : >"$WORK/no-systemd-run"; chmod 0644 "$WORK/no-systemd-run"
    mount --bind "$WORK/no-systemd-run" "$sr"
  fi
  for d in "${HOST_DIRS[@]}"; do
    own=$WORK/host$(echo "$d" | tr / _)
    mkdir -p "$own"
    mount --bind "$own" "$d"
  done
  # containerd's CRI refuses a Bidirectional volume whose source is not on a shared mount (on a
  # systemd host every mount is): the run's /var/lib/kubelet is made shared, a peer group inside
  # this namespace only (it stays the host's slave, so nothing propagates out).
  [ "$RUNTIME" = containerd ] && mount --make-shared /var/lib/kubelet

  reg_pid= rt_pid=
  stop_inner() {
    set +e
    if [ -n "$rt_pid" ] && kill -0 "$rt_pid" 2>/dev/null; then
      # Leave nothing running: remove every pod the suite left behind.
      crictl -r "unix://$SOCK" rmp -a -f >/dev/null 2>&1
      kill -TERM "$rt_pid"; timeout 60 tail --pid "$rt_pid" -f /dev/null
    fi
    [ "$RUNTIME" = containerd ] && kill_shims
    if [ -n "$reg_pid" ] && kill -0 "$reg_pid" 2>/dev/null; then kill -TERM "$reg_pid"; wait "$reg_pid"; fi
  }
  trap stop_inner EXIT
  trap 'exit 143' TERM INT

  "$WORK/registry" --bin-dir "$BIN" --netutil "$WORK/netutil" --hosts-dir "$WORK/certs.d" --ready-file "$WORK/registry.addr" \
    >"$LOGS/registry.log" 2>&1 &
  reg_pid=$!
  for _ in $(seq 1200); do [ -s "$WORK/registry.addr" ] && break; kill -0 "$reg_pid" || break; sleep 0.1; done
  [ -s "$WORK/registry.addr" ] || { log "the registry did not start"; cat "$LOGS/registry.log" >&2; return 1; }
  log "registry on $(cat "$WORK/registry.addr")"
  # The suite's unpullable reference must fail here, without a DNS query leaving the machine:
  # its registry host goes to a closed port on loopback.
  mkdir -p "$WORK/certs.d/invalid.registry.k8s.io"
  printf 'server = "http://127.0.0.1:9"\ncapabilities = ["pull", "resolve"]\n' >"$WORK/certs.d/invalid.registry.k8s.io/hosts.toml"

  if [ "$RUNTIME" = containerd ]; then
    SOCK=$WORK/containerd.sock
    write_containerd_config
    (into_cgroup runtime "$BASHPID"; exec containerd --config "$WORK/containerd.toml") >"$LOGS/containerd.log" 2>&1 &
  else
    SOCK=$WORK/cri.sock
    # The RuntimeClass specs name the handler test-handler (the suite's preconfigured one): runc.
    printf '[runtimes.test-handler]\nruntime_type = "io.containerd.runc.v2"\n' >"$WORK/config.toml"
    (into_cgroup runtime "$BASHPID"; exec "$WORK/cri-shim" --config "$WORK/config.toml" --containerd-mode managed \
      --root "$WORK/root" --state "$WORK/state" --socket "$SOCK" --cgroup-driver cgroupfs \
      --registry-config-path "$WORK/certs.d" --log-level debug) >"$LOGS/cri-shim.log" 2>&1 &
  fi
  rt_pid=$!
  for _ in $(seq 600); do [ -S "$SOCK" ] && crictl -r "unix://$SOCK" version >/dev/null 2>&1 && break; kill -0 "$rt_pid" || break; sleep 0.1; done
  crictl -r "unix://$SOCK" version >/dev/null 2>&1 || { log "$RUNTIME did not start"; tail -30 "$LOGS"/c*.log >&2; return 1; }
  log "$RUNTIME on $SOCK (pid $rt_pid)"

  # Flags the kubelet takes over the suite's defaults (later flags win): cgroupfs under the run's
  # own root; no system cgroup (its default moves every process of the root cgroup into it).
  local kflags="--cgroup-driver=cgroupfs --cgroup-root=/$CG --kubelet-cgroups=/$CG/kubelet"
  kflags+=" --runtime-cgroups=/$CG/runtime --system-cgroups= --fail-cgroupv1=false --fail-swap-on=false --v=2"
  # The suite writes its kubeconfig, kubelet config and static-pod dirs into its working dir,
  # which ginkgo makes the test binary's own, and runs the kubelet found beside it: both run from
  # the run's dir (hard links, or copies across file systems), not from the cache.
  mkdir -p "$WORK/run"
  cd "$WORK/run"
  local b
  for b in e2e_node.test kubelet; do ln -f "$BIN/$b" "$b" 2>/dev/null || cp "$BIN/$b" "$b"; done
  local args=(--container-runtime-endpoint "unix://$SOCK" --image-service-endpoint "unix://$SOCK"
    --node-name "$NODE" --prepull-images=false --report-dir "$LOGS"
    "--kubelet-flags=$kflags")
  log "ginkgo --procs $PROCS --focus '$FOCUS' --skip '$SKIP' e2e_node.test -- ${args[*]}"
  local start rc=0
  start=$(date +%s)
  "$BIN/ginkgo" --procs "$PROCS" --focus "$FOCUS" --skip "$SKIP" --timeout "$TIMEOUT" --no-color \
    --junit-report junit.xml --output-dir "$LOGS" "$WORK/run/e2e_node.test" -- "${args[@]}" >"$LOGS/e2e.log" 2>&1 || rc=$?
  echo "$(( $(date +%s) - start ))" >"$LOGS/run-seconds"
  log "the suite exited $rc after $(cat "$LOGS/run-seconds")s (log: $LOGS/e2e.log)"
  return 0
}

# containerd's CRI plugin as hack/bench.sh runs it. restrict_oom_score_adj: a process here may not
# lower its oom_score_adj (runc init gets EPERM for the pause container's -998, and every sandbox
# fails), so requests below containerd's own are raised to it, as cri-shim does.
write_containerd_config() {
  cat >"$WORK/containerd.toml" <<EOF
version = 3
root = "$WORK/containerd-root"
state = "$WORK/containerd-state"
disabled_plugins = ["io.containerd.nri.v1.nri"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$WORK/containerd-root/opt"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "$WORK/certs.d"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "registry.k8s.io/pause:3.10"
[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  enable_selinux = false
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        SystemdCgroup = false
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.test-handler]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.test-handler.options]
        SystemdCgroup = false
[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
EOF
}

# Shims outlive containerd: end the ones of this run's containerd (found by their -address).
kill_shims() {
  local p
  for p in /proc/[0-9]*; do
    if { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q -- "containerd-shim.*-address $SOCK "; then
      kill -KILL "${p#/proc/}" 2>/dev/null
    fi
  done
}

cgroup_mounts() { awk '$3 == "cgroup" { print $2 }' /proc/self/mounts; }
into_cgroup() { local m; for m in $(cgroup_mounts); do echo "$2" >"$m/$CG/$1/cgroup.procs"; done; }

if [ "${1:-}" = --inner ]; then
  inner
  exit $?
fi

# ---------------------------------------------------------------------------------------------
for b in e2e_node.test kubelet ginkgo agnhost nonewprivs; do
  [ -x "$BIN/$b" ] || { log "$BIN/$b missing: run hack/node-e2e/build.sh"; exit 1; }
done
for b in containerd containerd-shim-runc-v2 runc crictl unshare; do
  command -v "$b" >/dev/null || { log "$b missing: run hack/setup.sh (make setup)"; exit 1; }
done
[ "$(id -u)" = 0 ] || { log "needs root (a kubelet, cgroups, mounts)"; exit 1; }
for p in "${PORTS[@]}"; do
  if ss -Hltn "sport = :$p" | grep -q .; then log "port $p is in use: another kubelet or API server runs here"; exit 1; fi
done

WORK=$(mktemp -d /tmp/crishim-node-e2e.XXXXXX)
chmod 0711 "$WORK"
rm -rf "$LOGS" && mkdir -p "$LOGS"
CG=crishim-e2e-$$
NODE=$(hostname | tr '[:upper:]' '[:lower:]')
CG_DIRS=() MADE_DIRS=() NS_PID=
declare -A SYSCTL_BEFORE=()
# Every kernel setting but counters and the per-interface ones (other runs add and remove interfaces).
sysctl_snapshot() {
  sysctl -a 2>/dev/null | grep -Ev '^(fs\.(dentry|inode|file-nr|aio-nr|quota)|kernel\.(random|ns_last_pid|pty\.nr)|net\.netfilter\.nf_conntrack_count)' |
    awk -F. '!($1 == "net" && ($3 == "conf" || $3 == "neigh") && $4 != "all" && $4 != "default")'
}

cleanup() {
  set +e
  if [ -n "$NS_PID" ] && kill -0 "$NS_PID" 2>/dev/null; then
    # An interrupted run: the suite (ginkgo, whose processes stop their kubelet and services on
    # SIGTERM) and the namespace's shell, which then stops the runtime and the registry.
    # shellcheck disable=SC2046
    kill -TERM $(for m in $(cgroup_mounts); do cat "$m/$CG/harness/cgroup.procs"; done 2>/dev/null | sort -u) "$NS_PID" 2>/dev/null
    timeout 90 tail --pid "$NS_PID" -f /dev/null
  fi
  # Whatever is left in the run's cgroups (a kubelet after an interrupted run, containers) is
  # the run's own: end it, then remove the cgroups, deepest first. The kubelet makes its cgroup
  # root in the v2 hierarchy of a hybrid host too (the run itself uses only the v1 ones).
  local d k now pids
  for d in $(awk '$3 == "cgroup2" { print $2 }' /proc/self/mounts); do CG_DIRS+=("$d/$CG"); done
  for d in "${CG_DIRS[@]}"; do
    [ -d "$d" ] || continue
    for _ in 1 2 3; do
      pids=$(find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)
      [ -z "$pids" ] && break
      # shellcheck disable=SC2086
      kill -KILL $pids 2>/dev/null; sleep 1
    done
  done
  for d in "${CG_DIRS[@]}"; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null; done
  for d in "${CG_DIRS[@]}"; do [ -d "$d" ] && log "left cgroup $d (busy)"; done
  for k in "${!SYSCTL_BEFORE[@]}"; do
    now=$(sysctl -n "$k" 2>/dev/null)
    if [ "$now" != "${SYSCTL_BEFORE[$k]}" ]; then
      sysctl -q -w "$k=${SYSCTL_BEFORE[$k]}" && log "restored $k=${SYSCTL_BEFORE[$k]} (the kubelet had set $now)"
    fi
  done
  if [ -s "$WORK/sysctl-before" ]; then
    sysctl_snapshot >"$WORK/sysctl-after"
    diff "$WORK/sysctl-before" "$WORK/sysctl-after" >"$LOGS/sysctl-diff.txt" || log "kernel settings that differ after the run: $LOGS/sysctl-diff.txt"
  fi
  for d in "${MADE_DIRS[@]}"; do rmdir "$d" 2>/dev/null || log "could not remove $d"; done
  grep -o " $WORK[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

for k in "${SYSCTLS[@]}"; do SYSCTL_BEFORE[$k]=$(sysctl -n "$k"); done
sysctl_snapshot >"$WORK/sysctl-before"

# Mount points for the run's own kubelet directories, where the host has none.
for d in "${HOST_DIRS[@]}"; do
  [ -e "$d" ] && continue
  mkdir -p "$d"; MADE_DIRS=("$d" "${MADE_DIRS[@]}")
done

# The run's cgroup root in every v1 hierarchy: kubelet/, runtime/ (cri-shim or containerd) and
# harness/ (the registry, the suite, its API server) below it.
for m in $(cgroup_mounts); do
  d=$m/$CG
  mkdir -p "$d/kubelet" "$d/runtime" "$d/harness"; CG_DIRS+=("$d")
  if [ -e "$m/cpuset.cpus" ]; then
    for c in "$d" "$d/kubelet" "$d/runtime" "$d/harness"; do
      cat "$m/cpuset.cpus" >"$c/cpuset.cpus"; cat "$m/cpuset.mems" >"$c/cpuset.mems"
    done
  fi
done

log "building cri-shim and the node e2e registry"
go build -o "$WORK/cri-shim" "$ROOT/cmd/cri-shim"
go build -o "$WORK/registry" "$ROOT/test/e2e_node/registry"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$WORK/netutil" "$ROOT/test/e2e_node/registry/netutil"

export WORK LOGS CG NODE BIN RUNTIME FOCUS SKIP PROCS TIMEOUT
unshare -m --propagation slave "$0" --inner &
NS_PID=$!
wait "$NS_PID" || { log "the run failed"; exit 1; }
NS_PID=

[ -s "$LOGS/junit.xml" ] || { log "the suite wrote no report"; tail -50 "$LOGS/e2e.log" >&2; exit 1; }

# Results: test/critest/report's format (counts, then PASS / FAIL -- reason / SKIP -- reason per
# spec), its header naming the suite instead of critest. A focused run does not replace the full
# results; containerd's run has no ratchet.
out=$HERE/results.txt
ratchet=(--baseline "$HERE/baseline.txt")
if [ "$RUNTIME" = containerd ]; then
  out=$HERE/results-containerd.txt ratchet=()
fi
if [ "$FOCUS" != '\[NodeConformance\]' ] || [ "$SKIP" != '\[Flaky\]|\[Slow\]|\[Serial\]' ]; then
  # A part of the suite: its results beside its logs, and the baseline's specs that ran must pass.
  out=$LOGS/results.txt
  [ "$RUNTIME" = containerd ] || ratchet=(--baseline "$HERE/baseline.txt" --baseline-ran-only)
fi
[ "${NODE_E2E_NO_RATCHET:-}" = 1 ] && ratchet=()
set +e
go run "$ROOT/test/critest/report" --junit "$LOGS/junit.xml" --out "$out" --notes "$HERE/notes.txt" \
  --critest-version "$VERSION" "${ratchet[@]}" 2>&1 | sed 's/^critest: /node e2e ('"$RUNTIME"'): /'
rc=${PIPESTATUS[0]}
set -e
sed -i "s/^critest: $VERSION\$/e2e_node: $VERSION on $RUNTIME, $(cat "$LOGS/run-seconds" 2>/dev/null || echo '?')s, $PROCS ginkgo processes/" "$out"
log "results: $out"
exit "$rc"
