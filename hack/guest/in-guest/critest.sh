#!/bin/bash
# critest in the test-node guest: critest v1.37.0 against the cri-shim *service* (the unit and
# config `make install` wrote, the system containerd), with the conformance images served by the
# project's test registry on 127.0.0.1 (the guest has no network; the registry takes the images'
# programs prebuilt, as the guest has no Go), under each cgroup driver in turn: systemd (the
# default with systemd as PID 1), then cgroupfs (a config.d drop-in and a restart).
# The mode comes from crishim.critest= on the kernel command line (hack/guest/run.sh sets it from
# GUEST_CRITEST):
#   subset (default) both drivers: the pod, container, stats and OOM specs (SUBSET below). Under
#                   TCG on 2 shared cores a spec takes ~15-30 s, so the full suite (142 specs) does
#                   not fit the default GUEST_TIMEOUT; this is what the guest adds over the host run:
#                   the cgroup drivers' paths under a systemd PID 1 and the service's config.
#   full            systemd: every spec, then the Streaming specs again over websockets;
#                   cgroupfs: SUBSET (needs GUEST_TIMEOUT=8400 or so)
#   quick           both drivers: one spec (checks the plumbing)
# Writes OUT/checks.txt (PASS/FAIL lines of the plumbing, tagged [node], [systemd], [cgroupfs]),
# OUT/junit-<driver>.xml, OUT/critest-<driver>.log, OUT/critest-runs.txt (one line per critest run:
# driver, mode, focus, exit code, seconds) and timings; hack/guest/run.sh turns the JUnit reports
# into hack/guest/results-critest.txt with test/critest/report and the baseline.
#   critest.sh OUT
set -u
OUT=$1
CHECKS=$OUT/checks.txt
: >"$CHECKS"
fails=0
TAG=node
. "$(dirname "$0")/checks.sh" # pass, fail, note, expect, positive, yesno, waitfor, since, crictl

TOOLS=/usr/local/lib/cri-shim-guest/critest
CONFD=/etc/cri-shim/config.d
SOCK=/run/cri-shim/cri-shim.sock
WORK=/run/critest
PARALLEL=4
# The pod, container, stats and OOM specs: Container runtime holds the stats specs; critest v1.37.0
# has no resource-update spec (the smoke test covers UpdateContainerResources under both drivers).
SUBSET='\[k8s.io\] (PodSandbox|Container runtime|Container OOM|Multiple Containers|Idempotence)'
mode=subset
for w in $(cat /proc/cmdline); do
  case $w in crishim.critest=*) mode=${w#crishim.critest=} ;; esac
done
case $mode in
  full) systemd_focus= systemd_timeout=75m cgroupfs_focus=$SUBSET ;;
  subset) systemd_focus=$SUBSET systemd_timeout=20m cgroupfs_focus=$SUBSET ;;
  quick) systemd_focus='should support creating container \[Conformance\]' systemd_timeout=10m cgroupfs_focus=$systemd_focus ;;
  *) echo "critest.sh: unknown crishim.critest=$mode" >&2; exit 2 ;;
esac
export PATH=$TOOLS:$PATH # ginkgo, which critest -parallel runs
mkdir -p "$WORK"
chmod 0711 "$WORK"

echo "critest: $("$TOOLS/critest" -version 2>&1 | head -1)" >>"$OUT/versions.txt"

echo "== registry"
t0=$(date +%s.%N)
TESTREGISTRY_STATIC_BUSYBOX=$TOOLS/busybox TESTREGISTRY_DYNAMIC_BUSYBOX=$TOOLS/busybox-dyn/bin/busybox \
  "$TOOLS/testregistry" --programs-dir "$TOOLS/programs" --listen 127.0.0.1:0 \
  --hosts-dir "$WORK/certs.d" --ready-file "$WORK/registry.addr" >"$OUT/registry.log" 2>&1 &
REG_PID=$!
trap 'kill -TERM $REG_PID 2>/dev/null; wait $REG_PID 2>/dev/null' EXIT
if waitfor 600 test -s "$WORK/registry.addr"; then
  pass "test registry serves on $(cat "$WORK/registry.addr") ($(since "$t0") s to build and push the images)"
else
  fail "test registry starts" "$(tail -5 "$OUT/registry.log")"
  exit 1
fi
echo "registry start: $(since "$t0") s" >>"$OUT/timings.txt"

# restart_shim NAME: restarts cri-shim.service (config.d changed) and waits for it to answer.
restart_shim() {
  local t0 out
  t0=$(date +%s.%N)
  if out=$(systemctl restart cri-shim.service 2>&1) && waitfor 120 crictl version; then
    pass "$1: cri-shim restarted and answers ($(since "$t0") s)"
  else
    fail "$1: cri-shim restarts" "$out $(crictl version 2>&1)"
    return 1
  fi
}

# What test/critest/run.sh gives its cri-shim: the registry's hosts dir, and a 10s NRI request
# timeout (critest's NRI plugins hold Synchronize for 2s on purpose, NRI's default timeout).
printf 'registry_config_path = "%s"\nnri_plugin_request_timeout = "10s"\n' "$WORK/certs.d" >"$CONFD/50-critest.toml"
restart_shim "registry_config_path and nri_plugin_request_timeout in config.d" || exit 1
if crictl pull registry.k8s.io/e2e-test-images/busybox:1.29-2 >"$OUT/pull.log" 2>&1; then
  pass "crictl pull through the registry mirror"
else
  fail "crictl pull through the registry mirror" "$(cat "$OUT/pull.log")"
fi

# critest_run DRIVER NAME TIMEOUT FOCUS [ARGS...]: one critest run, its JUnit report in
# OUT/junit-NAME.xml; its line in critest-runs.txt.
critest_run() {
  local driver=$1 name=$2 timeout=$3 focus=$4 t0 rc
  shift 4
  local args=(-runtime-endpoint "unix://$SOCK" -image-endpoint "unix://$SOCK"
    -ginkgo.junit-report "$OUT/junit-$name.xml" -ginkgo.no-color -ginkgo.timeout "$timeout" "$@")
  [ -n "$focus" ] && args+=(-ginkgo.focus "$focus")
  echo "${focus:-.}" >"$OUT/focus-$name.txt"
  echo "== [$driver] critest $name ${args[*]}"
  t0=$(date +%s.%N)
  (cd "$WORK" && timeout --kill-after=30 "$(( ${timeout%m} * 60 + 120 ))" "$TOOLS/critest" "${args[@]}") >"$OUT/critest-$name.log" 2>&1
  rc=$?
  echo "$name driver=$driver mode=$mode exit=$rc seconds=$(since "$t0") focus=${focus:-all} ($(grep -ao 'Ran [0-9]* of [0-9]* Specs in [0-9.]* seconds' "$OUT/critest-$name.log" | tail -1))" >>"$OUT/critest-runs.txt"
  echo "critest $name ($driver): $(since "$t0") s, exit $rc" >>"$OUT/timings.txt"
  if [ -s "$OUT/junit-$name.xml" ]; then pass "critest $name wrote its report (exit $rc)"; else fail "critest $name wrote its report" "exit $rc: $(tail -5 "$OUT/critest-$name.log")"; fi
}

# cleanup_pods: removes whatever critest left behind.
cleanup_pods() {
  crictl rmp -a -f >/dev/null 2>&1
  crictl rm -a -f >/dev/null 2>&1
  local left
  left=$(crictl pods -q 2>/dev/null | wc -l)
  if [ "$left" = 0 ]; then pass "no pod left after critest"; else fail "no pod left after critest" "$left pods"; fi
}

TAG=systemd
# expect_driver WANT: RuntimeConfig reports the cgroup driver WANT.
expect_driver() {
  crictl runtime-config >"$OUT/runtime-config-$TAG.txt" 2>&1
  if grep -qi "$1" "$OUT/runtime-config-$TAG.txt"; then pass "RuntimeConfig reports cgroup driver $1"; else fail "RuntimeConfig reports cgroup driver $1" "$(cat "$OUT/runtime-config-$TAG.txt")"; fi
}
expect_driver systemd
critest_run systemd systemd "$systemd_timeout" "$systemd_focus" -parallel "$PARALLEL" -nri-socket /run/cri-shim/nri/nri.sock
if [ "$mode" = full ]; then
  critest_run systemd websocket 5m Streaming -websocket-exec -websocket-attach -websocket-portforward
fi
cleanup_pods

TAG=cgroupfs
printf 'cgroup_driver = "cgroupfs"\n' >"$CONFD/60-cgroupfs.toml"
if restart_shim "cgroup_driver = cgroupfs in config.d"; then
  expect_driver cgroupfs
  critest_run cgroupfs cgroupfs 20m "$cgroupfs_focus" -parallel "$PARALLEL" -nri-socket /run/cri-shim/nri/nri.sock
  cleanup_pods
fi
journalctl -b -u cri-shim.service -o cat | grep -E 'level=(warning|error|fatal)' >"$OUT/cri-shim-warnings.txt"
[ "$fails" = 0 ]
