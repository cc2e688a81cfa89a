#!/usr/bin/env bash
# Side-by-side benchmark of cri-shim and containerd's built-in CRI plugin, each as a node runs it.
#
# Starts, in a temp dir: the local test registry; containerd (the one of hack/setup.sh, v2.2.9) with
# its CRI plugin enabled (namespace k8s.io; same CNI conf dir and plugins, same registry hosts dir and
# sandbox image as cri-shim, cgroupfs); cri-shim with its managed containerd (the same binary, the
# CRI plugin off: what a cri-shim node runs), so that each runtime's containerd holds only its own
# pods' memory and CPU (BENCH_SHARED_CONTAINERD=1: cri-shim on the CRI plugin's containerd instead,
# namespace cri-shim). Then, BENCH_ROUNDS times (A B A B ...):
#   critest -benchmark (hack/bench-params.yaml) against cri-shim, then against containerd's CRI;
#   hack/benchclient run against cri-shim, then against containerd's CRI: pod start throughput
#   (BENCH_PODS pods with one container, BENCH_PARALLEL at a time), then BENCH_CONTAINERS_PER_POD
#   containers per pod and the List* / status latencies at that scale, RSS of the processes, teardown.
# With BENCH_CRUN=1 each round then runs the benchclient throughput phase (pods of one container,
# no fill, no list calls) on the runtime handler crun too, for cri-shim and for containerd's CRI
# (each has a crun handler), as their own columns.
# With BENCH_COUNT_RUNC=1 both runtimes run runc (and crun) through a wrapper that appends its
# arguments to a log and execs the real binary; benchclient counts the runs of the throughput phase
# by subcommand (create, start, state, kill, delete, ...), reported per pod started. The header
# gives the wrapper's own cost per run (runc --version direct and wrapped).
# The CPU seconds of cri-shim and of each runtime's containerd are sampled at each phase's start and
# end (a shared containerd's CPU goes to the runtime whose phase was running).
# Prints one table and writes it to bench/results.md (with machine, load and versions); critest's
# and benchclient's raw JSON, and the OCI runtime wrappers' logs, stay in bench/raw/.
#
# Env: BENCH_ROUNDS (2), BENCH_PODS (100), BENCH_PARALLEL (10), BENCH_CONTAINERS_PER_POD (5),
#      BENCH_LIST_N (300), BENCH_STATS_N (10), BENCH_CRITEST (1; 0 skips critest),
#      BENCH_COUNT_RUNC (1; 0 runs runc unwrapped), BENCH_CRUN (1 when crun is installed; 0 skips the
#      crun handler's runs), BENCH_CRUN_CRITEST (0; 1 runs critest on the crun handlers too: ~2 × 4 min
#      a round more), BENCH_CRUN_OCI_VERSION (1.0.2: the ociVersion the crun wrappers give the
#      bundles; empty leaves them),
#      BENCH_SHARED_CONTAINERD (0; 1 runs cri-shim on containerd-CRI's containerd),
#      BENCH_PROFILE=DIR (save cri-shim CPU and heap profiles of each benchclient phase there),
#      BENCH_OUT (bench/results.md), BENCH_CRISHIM_BIN (a cri-shim binary to use instead of building one),
#      BENCH_PARAMS (critest's parameters file), BENCH_LOG_LEVEL (cri-shim's, info),
#      BENCH_HOLD=FILE (start everything, write the endpoints to FILE as shell variables, and wait
#      until killed instead of measuring: for profiling by hand; cleanup still runs on exit).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${CRI_SHIM_CACHE:-/var/cache/cri-shim}
export PATH=$CACHE/bin:/usr/local/go/bin:$PATH
export GOFLAGS=${GOFLAGS:--buildvcs=false}
ROUNDS=${BENCH_ROUNDS:-2}
PODS=${BENCH_PODS:-100}
PARALLEL=${BENCH_PARALLEL:-10}
PER_POD=${BENCH_CONTAINERS_PER_POD:-5}
LIST_N=${BENCH_LIST_N:-300}
STATS_N=${BENCH_STATS_N:-10}
OUT=${BENCH_OUT:-$ROOT/bench/results.md}
PARAMS=${BENCH_PARAMS:-$ROOT/hack/bench-params.yaml}
CNI_CONF_DIR=${CNI_CONF_DIR:-/etc/cni/net.d}
CNI_BIN_DIR=${CNI_BIN_DIR:-/usr/lib/cni}
SANDBOX_IMAGE=registry.k8s.io/pause:3.10 # served by the test registry through the hosts dir
COUNT_RUNC=${BENCH_COUNT_RUNC:-1}
CRUN_BIN=$(command -v crun || true)
CRUN=${BENCH_CRUN:-$([ -n "$CRUN_BIN" ] && echo 1 || echo 0)}
SHARED_CTRD=${BENCH_SHARED_CONTAINERD:-0}

for b in critest containerd containerd-shim-runc-v2 crictl runc; do
  command -v "$b" >/dev/null || { echo "bench.sh: $b missing: run hack/setup.sh (make setup)" >&2; exit 1; }
done
if [ "$CRUN" = 1 ] && [ -z "$CRUN_BIN" ]; then echo "bench.sh: BENCH_CRUN=1 but crun is not installed (hack/setup.sh installs it)" >&2; exit 1; fi
RUNC_BIN=$(command -v runc)

T0=$(date +%s)
WORK=$(mktemp -d /tmp/crishim-bench.XXXXXX)
RAW=$ROOT/bench/raw
rm -rf "$RAW" && mkdir -p "$RAW"
uptime >"$RAW/uptime-start"
CTRD_SOCK=$WORK/containerd.sock
SHIM_SOCK=$WORK/cri-shim.sock
REG_PID= CTRD_PID= SHIM_PID=
# cri-shim's containerd: its managed one, or containerd-CRI's (BENCH_SHARED_CONTAINERD=1).
SHIM_CTRD_SOCK= SHIM_CTRD_PID=
log() { echo "bench.sh [$(( $(date +%s) - T0 ))s]: $*" >&2; }

cleanup() {
  set +e
  for sock in "$SHIM_SOCK" "$CTRD_SOCK"; do
    [ -S "$sock" ] || continue
    timeout 300 crictl --timeout 60s -r "unix://$sock" -i "unix://$sock" rmp -a -f >/dev/null 2>&1
  done
  # cri-shim stops its managed containerd as it exits.
  if [ -n "$SHIM_PID" ] && kill -0 "$SHIM_PID" 2>/dev/null; then kill -TERM "$SHIM_PID"; wait "$SHIM_PID"; fi
  if [ -n "$CTRD_PID" ] && kill -0 "$CTRD_PID" 2>/dev/null; then kill -TERM "$CTRD_PID"; wait "$CTRD_PID"; fi
  # shims outlive containerd: kill the ones of these containerds (by pid, found by their -address).
  for p in /proc/[0-9]*; do
    for sock in "$CTRD_SOCK" $SHIM_CTRD_SOCK; do
      if { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q -- "containerd-shim.*-address $sock "; then
        kill -KILL "${p#/proc/}" 2>/dev/null
      fi
    done
  done
  if [ -n "$REG_PID" ] && kill -0 "$REG_PID" 2>/dev/null; then kill -TERM "$REG_PID"; wait "$REG_PID"; fi
  # unmount whatever is still mounted below the work dir (netns, rootfs, shm), deepest first.
  grep -o " $WORK[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

# The OCI runtimes the two runtimes run, per runtime and handler: the binaries themselves, or
# wrappers that log each run's arguments (one printf, then exec) for benchclient -oci-log. crun
# refuses a hybrid cgroup host whose v2 hierarchy holds controllers: there its wrapper hides the v2
# hierarchy in a mount namespace of its own (as internal/testutil.Crun), for both runtimes alike.
# Debian 12's crun 1.8.1 refuses specs past ociVersion 1.0.x, and containerd's CRI builds the pause
# container's spec without its handler's base_runtime_spec: the crun wrappers of both runtimes set
# the bundle's ociVersion to BENCH_CRUN_OCI_VERSION (1.0.2; empty: leave it) before crun reads it.
OCI=$WORK/oci
mkdir -p "$OCI"
HYBRID=0
[ -r /sys/fs/cgroup/unified/cgroup.controllers ] && [ -n "$(tr -d ' \n' </sys/fs/cgroup/unified/cgroup.controllers)" ] && HYBRID=1
CRUN_OCI_VERSION=${BENCH_CRUN_OCI_VERSION-1.0.2}
oci_runtime() { # NAME REAL [hybrid] [OCI-VERSION]: prints the binary a runtime is to run for NAME
  local name=$1 real=$2 hybrid=${3:-} ociv=${4:-}
  if [ "$COUNT_RUNC" != 1 ] && [ -z "$hybrid" ] && [ -z "$ociv" ]; then echo "$real"; return; fi
  {
    echo '#!/bin/sh'
    [ "$COUNT_RUNC" = 1 ] && echo "printf '%s\n' \"\$*\" >>$OCI/$name.log"
    [ -n "$ociv" ] && echo "prev=; for a; do [ \"\$prev\" = --bundle ] && sed -i -E 's/\"ociVersion\": ?\"[^\"]*\"/\"ociVersion\":\"$ociv\"/' \"\$a/config.json\"; prev=\$a; done"
    if [ -n "$hybrid" ]; then
      echo "exec unshare -m --propagation slave sh -c 'umount /sys/fs/cgroup/unified && exec $real \"\$@\"' $name \"\$@\""
    else
      echo "exec $real \"\$@\""
    fi
  } >"$OCI/$name"
  chmod 0755 "$OCI/$name"
  echo "$OCI/$name"
}
oci_log() { [ "$COUNT_RUNC" = 1 ] && echo "$OCI/$1.log" || true; } # NAME: the -oci-log of its runs
SHIM_RUNC=$(oci_runtime runc-cri-shim "$RUNC_BIN")
CTRD_RUNC=$(oci_runtime runc-containerd "$RUNC_BIN")
SHIM_CRUN= CTRD_CRUN=
if [ "$CRUN" = 1 ]; then
  hy=; [ "$HYBRID" = 1 ] && hy=hybrid
  SHIM_CRUN=$(oci_runtime crun-cri-shim "$CRUN_BIN" "$hy" "$CRUN_OCI_VERSION")
  CTRD_CRUN=$(oci_runtime crun-containerd "$CRUN_BIN" "$hy" "$CRUN_OCI_VERSION")
fi
# What the wrapper adds to a run: a wrapper like the ones above around true(1), against true
# alone, alternating (true costs next to nothing, so the difference is the wrapper's own exec,
# printf and exec again; runc's own start is tens of ms).
WRAP_COST=
if [ "$COUNT_RUNC" = 1 ]; then
  probe=$(OCI=$OCI/probe; mkdir -p "$OCI"; oci_runtime probe "$(command -v true)")
  us_per_run() { local t0; t0=$(date +%s%N); for _ in $(seq 200); do "$1" --version >/dev/null; done; echo $(( ($(date +%s%N) - t0) / 200000 )); }
  d1=$(us_per_run "$(command -v true)"); w1=$(us_per_run "$probe"); d2=$(us_per_run "$(command -v true)"); w2=$(us_per_run "$probe")
  WRAP_COST="$(( (w1 + w2 - d1 - d2) / 2 )) µs a run (true(1) 2 × 200 times direct, $(( (d1 + d2) / 2 )) µs a run, and wrapped, $(( (w1 + w2) / 2 )) µs, alternating)"
  rm -rf "$OCI/probe"
fi

log "building cri-shim, the test registry and benchclient"
if [ -n "${BENCH_CRISHIM_BIN:-}" ]; then cp "$BENCH_CRISHIM_BIN" "$WORK/cri-shim"; else go build -o "$WORK/cri-shim" "$ROOT/cmd/cri-shim"; fi
go build -o "$WORK/testregistry" "$ROOT/test/critest/testregistry/cmd/testregistry"
go build -o "$WORK/benchclient" "$ROOT/hack/benchclient"

"$WORK/testregistry" --listen 127.0.0.1:0 --hosts-dir "$WORK/certs.d" --ready-file "$WORK/registry.addr" \
  >"$RAW/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 600); do [ -s "$WORK/registry.addr" ] && break; kill -0 "$REG_PID" || break; sleep 0.1; done
[ -s "$WORK/registry.addr" ] || { echo "bench.sh: test registry did not start" >&2; cat "$RAW/registry.log" >&2; exit 1; }

CTRD_CRUN_TOML=
if [ "$CRUN" = 1 ]; then
  CTRD_CRUN_TOML="    [plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.crun]
      runtime_type = \"io.containerd.runc.v2\"
      [plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.crun.options]
        SystemdCgroup = false
        BinaryName = \"$CTRD_CRUN\""
fi
# containerd with its CRI plugin (NRI off: its socket is machine-wide; netns below our state dir).
cat >"$WORK/containerd.toml" <<EOF
version = 3
root = "$WORK/containerd-root"
state = "$WORK/containerd-state"
disabled_plugins = ["io.containerd.nri.v1.nri"]
[grpc]
  address = "$CTRD_SOCK"
[ttrpc]
  address = "$CTRD_SOCK.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$WORK/containerd-root/opt"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "$WORK/certs.d"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "$SANDBOX_IMAGE"
[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  enable_selinux = false
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["$CNI_BIN_DIR"]
    conf_dir = "$CNI_CONF_DIR"
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "$CTRD_RUNC"
$CTRD_CRUN_TOML
[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
EOF
containerd --config "$WORK/containerd.toml" >"$RAW/containerd.log" 2>&1 &
CTRD_PID=$!
for _ in $(seq 600); do [ -S "$CTRD_SOCK" ] && crictl -r "unix://$CTRD_SOCK" version >/dev/null 2>&1 && break; kill -0 "$CTRD_PID" || break; sleep 0.1; done
crictl -r "unix://$CTRD_SOCK" version >/dev/null 2>&1 || { echo "bench.sh: containerd did not start" >&2; tail -30 "$RAW/containerd.log" >&2; exit 1; }
CTRD_IDLE_RSS=$(awk '/VmRSS/{print $2}' "/proc/$CTRD_PID/status")

{
  echo "runc_binary = \"$SHIM_RUNC\""
  if [ "$CRUN" = 1 ]; then
    echo "[runtimes.crun]"
    echo "binary_name = \"$SHIM_CRUN\""
  fi
} >"$WORK/cri-shim.toml"
if [ "$SHARED_CTRD" = 1 ]; then
  ctrd_flags=(--containerd-mode external --containerd-address "$CTRD_SOCK")
else
  ctrd_flags=(--containerd-mode managed)
fi
"$WORK/cri-shim" --config "$WORK/cri-shim.toml" "${ctrd_flags[@]}" --root "$WORK/cri-shim-root" --state "$WORK/cri-shim-state" \
  --socket "$SHIM_SOCK" --registry-config-path "$WORK/certs.d" --sandbox-image "$SANDBOX_IMAGE" \
  --cni-conf-dir "$CNI_CONF_DIR" --cni-bin-dir "$CNI_BIN_DIR" \
  --metrics-address 127.0.0.1:0 --enable-pprof --log-level "${BENCH_LOG_LEVEL:-info}" >"$RAW/cri-shim.log" 2>&1 &
SHIM_PID=$!
for _ in $(seq 600); do [ -S "$SHIM_SOCK" ] && break; kill -0 "$SHIM_PID" || break; sleep 0.1; done
[ -S "$SHIM_SOCK" ] || { echo "bench.sh: cri-shim did not start" >&2; cat "$RAW/cri-shim.log" >&2; exit 1; }
METRICS=
for _ in $(seq 100); do
  METRICS=$(sed -n 's/.*msg="serving metrics" address="\([^"]*\)".*/\1/p' "$RAW/cri-shim.log" | head -1)
  [ -n "$METRICS" ] && break; sleep 0.1
done
SHIM_IDLE_RSS=$(awk '/VmRSS/{print $2}' "/proc/$SHIM_PID/status")
if [ "$SHARED_CTRD" = 1 ]; then
  SHIM_CTRD_SOCK=$CTRD_SOCK SHIM_CTRD_PID=$CTRD_PID
else
  line=$(grep -m1 'msg="started managed containerd"' "$RAW/cri-shim.log" || true)
  SHIM_CTRD_SOCK=$(sed -n 's/.* address=\([^ ]*\).*/\1/p' <<<"$line")
  SHIM_CTRD_PID=$(sed -n 's/.* pid=\([0-9]*\).*/\1/p' <<<"$line")
  [ -S "$SHIM_CTRD_SOCK" ] && kill -0 "$SHIM_CTRD_PID" 2>/dev/null ||
    { echo "bench.sh: cri-shim's managed containerd not found in its log" >&2; cat "$RAW/cri-shim.log" >&2; exit 1; }
fi
SHIM_CTRD_IDLE_RSS=$(awk '/VmRSS/{print $2}' "/proc/$SHIM_CTRD_PID/status")
log "registry $(cat "$WORK/registry.addr"), containerd pid $CTRD_PID, cri-shim pid $SHIM_PID (metrics $METRICS), its containerd pid $SHIM_CTRD_PID"

if [ -n "${BENCH_HOLD:-}" ]; then
  cat >"$BENCH_HOLD" <<EOF2
SHIM_SOCK=$SHIM_SOCK
CTRD_SOCK=$CTRD_SOCK
SHIM_PID=$SHIM_PID
CTRD_PID=$CTRD_PID
SHIM_CTRD_SOCK=$SHIM_CTRD_SOCK
SHIM_CTRD_PID=$SHIM_CTRD_PID
METRICS=$METRICS
WORK=$WORK
BENCHCLIENT=$WORK/benchclient
EOF2
  log "holding (endpoints in $BENCH_HOLD); kill $$ to end"
  trap 'exit 0' TERM INT
  while kill -0 "$SHIM_PID" 2>/dev/null; do sleep 1; done
  exit 0
fi

cpu() { awk '{print ($14+$15)/100}' "/proc/$1/stat"; }
rss() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
# ctrd_pid RUNTIME: the pid of the runtime's containerd.
ctrd_pid() { case $1 in cri-shim*) echo "$SHIM_CTRD_PID" ;; *) echo "$CTRD_PID" ;; esac; }
# phase RUNTIME NAME CMD...: runs CMD, appends each process's CPU seconds used to phases.tsv.
phase() {
  local rt=$1 name=$2; shift 2
  local s0 c0 t0 rc=0 cp
  cp=$(ctrd_pid "$rt")
  s0=$(cpu "$SHIM_PID"); c0=$(cpu "$cp"); t0=$(date +%s.%N)
  log "$name against $rt"
  "$@" || rc=$?
  local secs
  secs=$(echo "$(date +%s.%N) - $t0" | bc)
  printf '%s\t%s\tcri-shim\t%s\t%s\t%s\n' "$rt" "$name" "$(echo "$(cpu "$SHIM_PID") - $s0" | bc)" "$(rss "$SHIM_PID")" "$secs" >>"$RAW/phases.tsv"
  printf '%s\t%s\tcontainerd\t%s\t%s\t%s\n' "$rt" "$name" "$(echo "$(cpu "$cp") - $c0" | bc)" "$(rss "$cp")" "$secs" >>"$RAW/phases.tsv"
  [ "$rc" = 0 ] || log "$name against $rt exited $rc"
}

run_critest() { # ENDPOINT DIR [CRITEST-FLAGS...]
  local ep=$1 dir=$2; shift 2
  mkdir -p "$dir"
  (cd "$WORK" && critest -runtime-endpoint "unix://$ep" -image-endpoint "unix://$ep" -benchmark "$@" \
    -benchmarking-output-dir "$dir" -benchmarking-params-file "$PARAMS" -ginkgo.no-color -ginkgo.timeout 30m) \
    >"$dir.log" 2>&1
}
run_client() { # ENDPOINT RUNTIME NAMESPACE OUT PROCS...
  local ep=$1 rt=$2 ns=$3 out=$4 csock=$CTRD_SOCK; shift 4
  case $rt in cri-shim*) csock=$SHIM_CTRD_SOCK ;; esac
  local prof= hook=() curl_pid=
  if [ -n "${BENCH_PROFILE:-}" ] && [ "$rt" = cri-shim ] && [ -n "$METRICS" ]; then
    mkdir -p "$BENCH_PROFILE"
    prof=$BENCH_PROFILE/$(basename "$out" .json)
    curl -s -o "$prof.cpu.pprof" "http://$METRICS/debug/pprof/profile?seconds=45" &
    curl_pid=$!
    hook=(-at-full "curl -s -o $prof.heap-full.pprof http://$METRICS/debug/pprof/heap; curl -s -o $prof.goroutine-full.txt 'http://$METRICS/debug/pprof/goroutine?debug=1'")
  fi
  "$WORK/benchclient" run "${hook[@]}" -endpoint "unix://$ep" -name "$rt" -out "$out" -pods "$PODS" -parallel "$PARALLEL" \
    -containers-per-pod "$PER_POD" -list-n "$LIST_N" -stats-n "$STATS_N" -log-dir "$WORK/logs" \
    -containerd-address "$csock" -namespace "$ns" "$@"
  if [ -n "$prof" ]; then
    curl -s -o "$prof.heap.pprof" "http://$METRICS/debug/pprof/heap"
    wait "$curl_pid"
  fi
}

critest_args=() client_args=()
for r in $(seq "$ROUNDS"); do
  if [ "${BENCH_CRITEST:-1}" = 1 ]; then
    phase cri-shim "critest-$r" run_critest "$SHIM_SOCK" "$RAW/critest-cri-shim-$r"
    phase containerd-CRI "critest-$r" run_critest "$CTRD_SOCK" "$RAW/critest-containerd-$r"
    critest_args+=(-critest "cri-shim=$RAW/critest-cri-shim-$r" -critest "containerd-CRI=$RAW/critest-containerd-$r")
    if [ "$CRUN" = 1 ] && [ "${BENCH_CRUN_CRITEST:-0}" = 1 ]; then
      phase cri-shim+crun "critest-crun-$r" run_critest "$SHIM_SOCK" "$RAW/critest-cri-shim+crun-$r" -runtime-handler crun
      phase containerd-CRI+crun "critest-crun-$r" run_critest "$CTRD_SOCK" "$RAW/critest-containerd+crun-$r" -runtime-handler crun
      critest_args+=(-critest "cri-shim+crun=$RAW/critest-cri-shim+crun-$r" -critest "containerd-CRI+crun=$RAW/critest-containerd+crun-$r")
    fi
  fi
  phase cri-shim "client-$r" run_client "$SHIM_SOCK" cri-shim cri-shim "$RAW/client-cri-shim-$r.json" \
    -proc "runtime=$SHIM_PID" -proc "containerd=$SHIM_CTRD_PID" -oci-log "$(oci_log runc-cri-shim)"
  phase containerd-CRI "client-$r" run_client "$CTRD_SOCK" containerd-CRI k8s.io "$RAW/client-containerd-$r.json" \
    -proc "runtime=$CTRD_PID" -oci-log "$(oci_log runc-containerd)"
  if [ "$CRUN" = 1 ]; then
    # the crun handler: the throughput phase and teardown only (one container a pod, no list calls).
    crun_only=(-runtime-handler crun -containers-per-pod 1 -list-n 0 -stats-n 0)
    phase cri-shim+crun "client-crun-$r" run_client "$SHIM_SOCK" cri-shim+crun cri-shim "$RAW/client-cri-shim+crun-$r.json" \
      -proc "runtime=$SHIM_PID" -proc "containerd=$SHIM_CTRD_PID" -oci-log "$(oci_log crun-cri-shim)" "${crun_only[@]}"
    phase containerd-CRI+crun "client-crun-$r" run_client "$CTRD_SOCK" containerd-CRI+crun k8s.io "$RAW/client-containerd+crun-$r.json" \
      -proc "runtime=$CTRD_PID" -oci-log "$(oci_log crun-containerd)" "${crun_only[@]}"
  fi
  for name in cri-shim containerd-CRI cri-shim+crun containerd-CRI+crun; do
    f=$RAW/client-${name/containerd-CRI/containerd}-$r.json
    [ -s "$f" ] && client_args+=(-run "$name=$f")
  done
done

# the wrappers' logs (a line of arguments per OCI runtime run, critest's runs too) stay with the raw results.
[ "$COUNT_RUNC" = 1 ] && cp "$OCI"/*.log "$RAW/" 2>/dev/null || true
mib() { echo "$(( $1 / 1024 )) MiB"; }
{
  if [ "$SHARED_CTRD" = 1 ]; then echo "# cri-shim vs containerd's CRI plugin on one containerd"; else echo "# cri-shim vs containerd's CRI plugin"; fi
  echo
  echo "Generated by \`make bench\` (hack/bench.sh) on $(date -u '+%Y-%m-%d %H:%M UTC'), $(( $(date +%s) - T0 )) s wall."
  echo
  echo "- machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -m | awk '/Mem:/{print $2}') MiB memory, kernel $(uname -r), cgroup v1 (cgroupfs)"
  echo "- load: at start \`$(cat "$RAW/uptime-start" 2>/dev/null)\`; at end \`$(uptime)\` (the machine is shared: the A B A B interleaving is there for that)"
  [ -n "${BENCH_CRISHIM_BIN:-}" ] && echo "- cri-shim binary: $BENCH_CRISHIM_BIN"
  echo "- containerd $(containerd --version | awk '{print $3}'), $(runc --version | head -1), critest v1.37.0, cri-shim $(git -C "$ROOT" describe --tags --always --dirty 2>/dev/null), $(go version | awk '{print $3}')"
  if [ "$SHARED_CTRD" = 1 ]; then
    echo "- one containerd (CRI plugin on, namespace k8s.io) serving both; cri-shim in namespace cri-shim on the same socket (BENCH_SHARED_CONTAINERD=1)"
  else
    echo "- containerd-CRI: containerd with its CRI plugin (namespace k8s.io); cri-shim: its managed containerd, the same binary with the CRI plugin off (namespace cri-shim), as a cri-shim node runs it; each runtime's memory and CPU rows count its own containerd"
  fi
  echo "- CNI $CNI_CONF_DIR (bridge + portmap) and $CNI_BIN_DIR for both; sandbox image $SANDBOX_IMAGE from the local test registry"
  echo "- rounds (A B A B): $ROUNDS; critest params: $(grep -v '^#' "$PARAMS" | tr '\n' ' ')"
  echo "- benchclient: $PODS pods × 1 container started $PARALLEL at a time (the \"throughput:\" rows are those calls under that concurrency), then filled to $PER_POD containers per pod (\"fill:\"), then, once the machine is under 15 % busy, 5 unrecorded calls and $LIST_N measured of each List/status and $STATS_N of ListContainerStats at that scale, then teardown $PARALLEL at a time"
  if [ "$COUNT_RUNC" = 1 ]; then
    echo "- runc (and crun) run through a wrapper logging each run's arguments (BENCH_COUNT_RUNC=1) for both runtimes; the wrapper adds $WRAP_COST"
  else
    echo "- runc runs unwrapped (BENCH_COUNT_RUNC=0)"
  fi
  if [ "$CRUN" = 1 ]; then
    echo "- crun handler (BENCH_CRUN=1): $($CRUN_BIN --version | head -1), the same pods on the handler crun of each runtime (cri-shim [runtimes.crun], containerd runtimes.crun with BinaryName), throughput phase and teardown only$([ -n "$CRUN_OCI_VERSION" ] && echo "; the crun wrapper of both sets each bundle's ociVersion to $CRUN_OCI_VERSION before create (crun 1.8.1 refuses later ones; one sed a create)")$([ "$HYBRID" = 1 ] && echo "; this host's cgroups are hybrid with controllers in v2, which crun refuses, so crun runs through unshare -m + umount of /sys/fs/cgroup/unified for both (three more execs a run)")"
  fi
  echo "- idle RSS after start: containerd (CRI plugin loaded) $(mib "$CTRD_IDLE_RSS"), cri-shim $(mib "$SHIM_IDLE_RSS")$([ "$SHARED_CTRD" = 1 ] || echo ", cri-shim's containerd $(mib "$SHIM_CTRD_IDLE_RSS")")"
  echo "- ratios are cri-shim / containerd-CRI; below 1 means cri-shim is faster (for the throughput line: above 1 is better)"
} >"$WORK/header.md"
go run "$ROOT/hack/benchclient" report -header "$WORK/header.md" -out "$OUT" "${critest_args[@]}" "${client_args[@]}" \
  -phases "$RAW/phases.tsv" $([ "$SHARED_CTRD" = 1 ] && echo -shared-containerd)
log "done in $(( $(date +%s) - T0 ))s; table in $OUT"
