#!/usr/bin/env bash
# The conformance harness: starts the local test registry, then cri-shim (with a managed containerd)
# in a temp dir, runs critest over every spec, stops all it started, writes test/critest/results.txt
# and fails when a spec listed in test/critest/baseline.txt did not pass (the ratchet).
#
# Env: CRITEST_PARALLEL (ginkgo nodes, default 4: specs mostly wait on containers, not on CPU),
#      CRITEST_FOCUS (a ginkgo focus regexp), CRITEST_ARGS (extra critest flags),
#      CRITEST_NO_RATCHET=1 (record results without enforcing the baseline),
#      CRITEST_BENCHMARK_DIR=DIR (run critest -benchmark instead, writing its JSON results to DIR),
#      CRITEST_LOGS=DIR (where logs and JUnit reports go, default test/critest/last-run).
# When crun is installed it is configured as a second runtime handler, crun, beside the default runc,
# and the specs run a second time on it after runc's: their results are a section of their own
# (spec names with a " [crun]" suffix, in results.txt, notes.txt and baseline.txt alike).
# CRITEST_CRUN=0 leaves that run out; CRITEST_ARGS=-runtime-handler crun runs the main one on crun.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/test/critest
CACHE=${CRI_SHIM_CACHE:-/var/cache/cri-shim}
export PATH=$CACHE/bin:/usr/local/go/bin:$PATH
export GOFLAGS=${GOFLAGS:--buildvcs=false}
PARALLEL=${CRITEST_PARALLEL:-4}
CRITEST_VERSION=v1.37.0

for b in critest ginkgo containerd crictl; do
  command -v "$b" >/dev/null || { echo "run.sh: $b missing: run hack/setup.sh (make setup)" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/crishim-critest.XXXXXX)
# critest's own temp dirs (cri-tools makes some and leaves them) go with the run's dir.
mkdir -p "$WORK/tmp"
# Searchable by all (as /run is): a pod in a user namespace runs as unprivileged host uids, which
# must reach its rootfs under containerd's state dir.
chmod 0711 "$WORK"
LOGS=${CRITEST_LOGS:-$HERE/last-run}
rm -rf "$LOGS" && mkdir -p "$LOGS"
REG_PID= SHIM_PID=

cleanup() {
  set +e
  if [ -n "$SHIM_PID" ] && kill -0 "$SHIM_PID" 2>/dev/null; then
    # Leave nothing running: remove every pod and container critest left behind.
    crictl -r "unix://$WORK/cri.sock" rmp -a -f >/dev/null 2>&1
    crictl -r "unix://$WORK/cri.sock" rm -a -f >/dev/null 2>&1
    kill -TERM "$SHIM_PID"; wait "$SHIM_PID"
  fi
  if [ -n "$REG_PID" ] && kill -0 "$REG_PID" 2>/dev/null; then kill -TERM "$REG_PID"; wait "$REG_PID"; fi
  # Unmount whatever is still mounted below the work dir, deepest first, then remove it.
  grep -o " $WORK[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "run.sh: building cri-shim and the test registry" >&2
go build -o "$WORK/cri-shim" "$ROOT/cmd/cri-shim"
go build -o "$WORK/testregistry" "$ROOT/test/critest/testregistry/cmd/testregistry"

"$WORK/testregistry" --listen 127.0.0.1:0 --hosts-dir "$WORK/certs.d" --ready-file "$WORK/registry.addr" \
  >"$LOGS/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 600); do [ -s "$WORK/registry.addr" ] && break; kill -0 "$REG_PID" || break; sleep 0.1; done
[ -s "$WORK/registry.addr" ] || { echo "run.sh: test registry did not start" >&2; cat "$LOGS/registry.log" >&2; exit 1; }
echo "run.sh: test registry on $(cat "$WORK/registry.addr")" >&2

# crun as the handler crun: Debian 12's crun 1.8.1 runs specs of ociVersion 1.0.x alone, so its
# specs start from containerd's default at 1.0.2. On a hybrid cgroup host whose v2 hierarchy holds
# controllers crun refuses every container, whatever its cgroup manager: there it runs through a
# wrapper that unmounts the v2 hierarchy in a mount namespace of its own (crun then sees cgroup v1).
config=() crun_handler=
if crun=$(command -v crun); then
  crun_handler=crun
  "$WORK/cri-shim" config oci-spec --oci-version 1.0.2 >"$WORK/crun-base.json"
  if [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)" ]; then
    printf '#!/bin/sh\nexec unshare -m --propagation slave sh -c '"'"'umount /sys/fs/cgroup/unified && exec %s "$@"'"'"' crun "$@"\n' "$crun" >"$WORK/crun"
    chmod 0755 "$WORK/crun"
    crun=$WORK/crun
  fi
  printf '[runtimes.crun]\nbinary_name = "%s"\nbase_runtime_spec = "%s"\n' "$crun" "$WORK/crun-base.json" >"$WORK/config.toml"
  config=(--config "$WORK/config.toml")
fi

# NRI on the daemon's default socket (<state>/nri/nri.sock), which critest's NRI specs connect to.
# Their plugins hold Synchronize open for 2s on purpose (a container created meanwhile must not be
# lost), longer than NRI's default 2s request timeout: the run allows 10s.
"$WORK/cri-shim" "${config[@]}" --managed-containerd --root "$WORK/root" --state "$WORK/state" --socket "$WORK/cri.sock" \
  --static-pods-dir "$WORK/manifests" --static-pods-log-dir "$WORK/pod-logs" \
  --registry-config-path "$WORK/certs.d" --log-level debug --nri-plugin-request-timeout 10s \
  >"$LOGS/cri-shim.log" 2>&1 &
SHIM_PID=$!
for _ in $(seq 600); do [ -S "$WORK/cri.sock" ] && break; kill -0 "$SHIM_PID" || break; sleep 0.1; done
[ -S "$WORK/cri.sock" ] || { echo "run.sh: cri-shim did not start" >&2; cat "$LOGS/cri-shim.log" >&2; exit 1; }

args=(-runtime-endpoint "unix://$WORK/cri.sock" -image-endpoint "unix://$WORK/cri.sock"
      -nri-socket "$WORK/state/nri/nri.sock"
      -ginkgo.junit-report "$LOGS/junit.xml" -ginkgo.no-color -ginkgo.timeout 60m)
if [ -n "${CRITEST_BENCHMARK_DIR:-}" ]; then
  mkdir -p "$CRITEST_BENCHMARK_DIR"
  args+=(-benchmark -benchmarking-output-dir "$CRITEST_BENCHMARK_DIR")
elif [ "$PARALLEL" -gt 1 ]; then
  args+=(-parallel "$PARALLEL")
fi
[ -n "${CRITEST_FOCUS:-}" ] && args+=(-ginkgo.focus "$CRITEST_FOCUS")
# shellcheck disable=SC2206
[ -n "${CRITEST_ARGS:-}" ] && args+=($CRITEST_ARGS)

echo "run.sh: critest ${args[*]}" >&2
start=$(date +%s)
set +e
(cd "$WORK" && TMPDIR="$WORK/tmp" critest "${args[@]}") >"$LOGS/critest.log" 2>&1
critest_rc=$?
set -e
echo "run.sh: critest exited $critest_rc after $(( $(date +%s) - start ))s (log: $LOGS/critest.log)" >&2

# The Streaming specs again, over websockets instead of SPDY (critest's websocket flags); their
# results are recorded with a " [websocket]" suffix.
ws=()
if [ -z "${CRITEST_BENCHMARK_DIR:-}" ] && [ -z "${CRITEST_FOCUS:-}" ] && [ "${CRITEST_WEBSOCKET:-1}" = 1 ]; then
  wsargs=(-runtime-endpoint "unix://$WORK/cri.sock" -image-endpoint "unix://$WORK/cri.sock"
          -ginkgo.junit-report "$LOGS/junit-websocket.xml" -ginkgo.no-color -ginkgo.timeout 20m
          -ginkgo.focus Streaming -websocket-exec -websocket-attach -websocket-portforward)
  set +e
  (cd "$WORK" && TMPDIR="$WORK/tmp" critest "${wsargs[@]}") >"$LOGS/critest-websocket.log" 2>&1
  echo "run.sh: critest (websocket streaming) exited $? (log: $LOGS/critest-websocket.log)" >&2
  set -e
  [ -s "$LOGS/junit-websocket.xml" ] && ws=(--junit-websocket "$LOGS/junit-websocket.xml")
fi
# The specs again on the crun handler.
hs=()
if [ -n "$crun_handler" ] && [ -z "${CRITEST_BENCHMARK_DIR:-}" ] && [ -z "${CRITEST_FOCUS:-}" ] && [ "${CRITEST_CRUN:-1}" = 1 ]; then
  crunargs=(-runtime-endpoint "unix://$WORK/cri.sock" -image-endpoint "unix://$WORK/cri.sock"
            -nri-socket "$WORK/state/nri/nri.sock" -runtime-handler "$crun_handler"
            -ginkgo.junit-report "$LOGS/junit-crun.xml" -ginkgo.no-color -ginkgo.timeout 60m)
  [ "$PARALLEL" -gt 1 ] && crunargs+=(-parallel "$PARALLEL")
  cstart=$(date +%s)
  set +e
  (cd "$WORK" && TMPDIR="$WORK/tmp" critest "${crunargs[@]}") >"$LOGS/critest-crun.log" 2>&1
  echo "run.sh: critest (handler crun) exited $? after $(( $(date +%s) - cstart ))s (log: $LOGS/critest-crun.log)" >&2
  set -e
  [ -s "$LOGS/junit-crun.xml" ] && hs=(--junit-handler "crun=$LOGS/junit-crun.xml")
fi
if [ -n "${CRITEST_BENCHMARK_DIR:-}" ]; then
  echo "run.sh: benchmark results in $CRITEST_BENCHMARK_DIR" >&2
  exit "$critest_rc"
fi
[ -s "$LOGS/junit.xml" ] || { echo "run.sh: critest wrote no report" >&2; tail -50 "$LOGS/critest.log" >&2; exit 1; }

ratchet=(--baseline "$HERE/baseline.txt")
if [ ${#hs[@]} -eq 0 ]; then
  # No crun run (CRITEST_CRUN=0, or no crun): its section of the baseline does not apply.
  grep -v ' \[crun\]$' "$HERE/baseline.txt" >"$WORK/baseline.txt"
  ratchet=(--baseline "$WORK/baseline.txt")
  echo "run.sh: no crun run: the ratchet leaves out the baseline's [crun] specs" >&2
fi
[ "${CRITEST_NO_RATCHET:-}" = 1 ] && ratchet=()
out=$HERE/results.txt
[ -n "${CRITEST_FOCUS:-}" ] && out=$LOGS/results.txt   # a focused run does not replace the full results
go run "$ROOT/test/critest/report" --junit "$LOGS/junit.xml" "${ws[@]}" "${hs[@]}" --out "$out" --notes "$HERE/notes.txt" \
  --critest-version "$CRITEST_VERSION" "${ratchet[@]}"
