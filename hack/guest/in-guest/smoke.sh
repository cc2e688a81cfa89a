#!/bin/bash
# The smoke test of the test-node guest: the node is what a production node looks like (cgroup v2
# only, systemd as PID 1, containerd and cri-shim as systemd services, cri-shim installed by `make
# install` with its own unit and config), and pods run through cri-shim there under each cgroup
# driver in turn: first systemd (the default when systemd is PID 1: pods in the kubelet's slices,
# a scope per container), then cgroupfs (a config.d drop-in and a restart; pods in cgroup paths).
# Each driver's section: create, exec, cgroup v2 limits and stats, a resource update, an OOM kill,
# a restart with the pod running (adopted), stop and remove, nothing left behind. Between the two,
# systemctl reload applies a log level from config.d.
# Writes one PASS or FAIL line per check to OUT/checks.txt, each tagged with its section ([node],
# [systemd], [service], [cgroupfs]); exits 1 on any FAIL.
#   smoke.sh OUT
set -u
OUT=$1
CHECKS=$OUT/checks.txt
: >"$CHECKS"
fails=0
TAG=node
. "$(dirname "$0")/checks.sh" # pass, fail, note, expect, positive, yesno, waitfor, since, crictl
mainpid() { systemctl show -p MainPID --value cri-shim.service; }
CONFD=/etc/cri-shim/config.d

echo "== node"
expect "cgroup v2 only: /sys/fs/cgroup is cgroup2fs" cgroup2fs "$(stat -fc %T /sys/fs/cgroup)"
expect "no cgroup v1 hierarchy mounted" 0 "$(awk '$3 == "cgroup"' /proc/mounts | wc -l)"
expect "systemd is PID 1" systemd "$(cat /proc/1/comm)"
expect "dbus.service active (runc's systemd driver talks to systemd over it)" active "$(systemctl is-active dbus.service)"
expect "containerd.service active" active "$(systemctl is-active containerd.service)"
expect "cri-shim.service active" active "$(systemctl is-active cri-shim.service)"
expect "cri-shim.service is the unit make install wrote" /usr/local/lib/systemd/system/cri-shim.service \
  "$(systemctl show -p FragmentPath --value cri-shim.service)"
expect "cri-shim.service Type=notify" notify "$(systemctl show -p Type --value cri-shim.service)"
expect "cri-shim's config is the one make install wrote (containerd_mode external)" 1 \
  "$(grep -c '^containerd_mode = "external"' /etc/cri-shim/config.toml)"
expect "cri-shim runs in its service's cgroup" "0::/system.slice/cri-shim.service" "$(cat "/proc/$(mainpid)/cgroup" 2>&1)"
expect "containerd runs in its service's cgroup" "0::/system.slice/containerd.service" \
  "$(cat "/proc/$(systemctl show -p MainPID --value containerd.service)/cgroup" 2>&1)"
if waitfor 120 crictl version; then pass "cri-shim answers on /run/cri-shim/cri-shim.sock"; else fail "cri-shim answers" "$(crictl version 2>&1)"; fi
expect "cri-shim connected to the system containerd (mode=external started=false)" 1 \
  "$(journalctl -b -u cri-shim.service -o cat | grep -c 'connected to containerd.*mode=external.*started=false')"
expect "cri-shim started no containerd of its own" "" "$(pgrep -a -P "$(mainpid)" containerd)"
crictl info >"$OUT/crictl-info.json" 2>&1
expect "crictl info: RuntimeReady" true "$(jq -r '.status.conditions[] | select(.type == "RuntimeReady") | .status' "$OUT/crictl-info.json" 2>&1)"
expect "crictl info: NetworkReady" true "$(jq -r '.status.conditions[] | select(.type == "NetworkReady") | .status' "$OUT/crictl-info.json" 2>&1)"
crictl images >"$OUT/images.txt" 2>&1
expect "imported images listed" 2 "$(grep -cE 'busybox +guest|pause +3.10' "$OUT/images.txt")"

cat >/tmp/box.json <<'JSON'
{"metadata": {"name": "box"}, "image": {"image": "docker.io/library/busybox:guest"},
 "command": ["sh", "-c", "while true; do sleep 1; done"], "log_path": "box.log",
 "linux": {"resources": {"memory_limit_in_bytes": 67108864, "cpu_period": 100000, "cpu_quota": 50000, "cpu_shares": 512}}}
JSON
cat >/tmp/oom.json <<'JSON'
{"metadata": {"name": "oom"}, "image": {"image": "docker.io/library/busybox:guest"},
 "command": ["sh", "-c", "tail /dev/zero"], "log_path": "oom.log",
 "linux": {"resources": {"memory_limit_in_bytes": 33554432}}}
JSON
cat >/tmp/plain.json <<'JSON'
{"metadata": {"name": "plain"}, "image": {"image": "docker.io/library/busybox:guest"},
 "command": ["sh", "-c", "while true; do sleep 1; done"], "log_path": "plain.log"}
JSON

# podjson NAME UID PARENT: a pod config (no cgroup_parent when PARENT is empty).
podjson() {
  local linux=
  [ -n "$3" ] && linux=", \"linux\": {\"cgroup_parent\": \"$3\"}"
  printf '{"metadata": {"name": "%s", "namespace": "default", "uid": "%s", "attempt": 0}, "log_directory": "/var/log/pods/default_%s_%s"%s}\n' \
    "$1" "$2" "$1" "$2" "$linux"
}

# pods DRIVER: the pod section under cgroup driver DRIVER, which cri-shim runs with now.
#   systemd: the pod's parent is its slice's path as the kubelet sends it, the kubelet having made
#   the slice through systemd first; a container's cgroup is the scope cri-shim-<id>.scope in it.
#   cgroupfs: the parent is a path; a container's cgroup is <parent>/<id>.
pods() {
  local driver=$1 t0 tsec POD CTR OOM out cg oldpid
  TAG=$driver
  tsec=$(date +%s.%N)
  echo "== [$driver] runtime config"
  crictl runtime-config >"$OUT/runtime-config-$driver.txt" 2>&1
  local want=CGROUPFS
  [ "$driver" = systemd ] && want=SYSTEMD
  expect "RuntimeConfig reports cgroup driver $want" 1 "$(grep -c "$want" "$OUT/runtime-config-$driver.txt")"
  journalctl -b -u cri-shim.service -o cat | grep 'msg="cgroup driver"' | tail -1 >"$OUT/driver-$driver.txt"
  expect "cri-shim logged cgroup_driver=$driver at its start" 1 "$(grep -c "cgroup_driver=$driver" "$OUT/driver-$driver.txt")"

  echo "== [$driver] pod"
  local parent podcg slice=
  if [ "$driver" = systemd ]; then
    # The kubelet's pod slice for uid smoke-uid-1 ('-' in a uid becomes '_' in a slice name).
    slice=kubepods-burstable-podsmoke_uid_1.slice
    parent=/kubepods.slice/kubepods-burstable.slice/$slice
    # What the kubelet does (StartTransientUnit of the slice over dbus): a slice unit needs no unit
    # file, and starting it starts its parent slices (kubepods.slice, kubepods-burstable.slice).
    out=$(systemctl start "$slice" 2>&1) && pass "systemctl start $slice (the kubelet makes the pod slice)" || fail "systemctl start $slice" "$out"
    expect "the pod slice's cgroup exists" yes "$(yesno test -d "/sys/fs/cgroup$parent")"
  else
    parent=/kubepods/burstable/podsmoke-uid-1
  fi
  podcg=/sys/fs/cgroup$parent
  podjson smoke smoke-uid-1 "$parent" >/tmp/pod.json
  t0=$(date +%s.%N)
  POD=$(crictl runp /tmp/pod.json 2>"$OUT/runp-$driver.err")
  if [ -n "$POD" ]; then pass "RunPodSandbox ($(since "$t0") s)"; else fail RunPodSandbox "$(cat "$OUT/runp-$driver.err")"; fi
  CTR=$(crictl create "$POD" /tmp/box.json /tmp/pod.json 2>"$OUT/create-$driver.err")
  if [ -n "$CTR" ]; then pass CreateContainer; else fail CreateContainer "$(cat "$OUT/create-$driver.err")"; fi
  out=$(crictl start "$CTR" 2>&1) && pass StartContainer || fail StartContainer "$out"
  expect "container running" CONTAINER_RUNNING "$(crictl inspect "$CTR" 2>&1 | jq -r .status.state 2>&1)"
  crictl inspectp "$POD" >"$OUT/inspectp-$driver.json" 2>&1
  crictl inspect "$CTR" >"$OUT/inspect-$driver.json" 2>&1
  expect "pod IP from the CNI bridge" 10.88 "$(jq -r .status.network.ip "$OUT/inspectp-$driver.json" 2>&1 | cut -d. -f1,2)"

  echo "== [$driver] exec"
  expect "ExecSync" hello "$(crictl exec -s "$CTR" echo hello 2>&1)"
  expect "Exec (streaming)" hello "$(crictl exec "$CTR" echo hello 2>&1)"
  expect "container sees cgroup v2 in its namespace" "0::/" "$(crictl exec -s "$CTR" cat /proc/self/cgroup 2>&1)"

  echo "== [$driver] cgroup v2 files"
  if [ "$driver" = systemd ]; then
    cg=$podcg/cri-shim-$CTR.scope
    expect "scope unit cri-shim-<ctr>.scope active" active "$(systemctl is-active "cri-shim-$CTR.scope")"
    expect "the scope is in the pod slice" "$slice" "$(systemctl show -p Slice --value "cri-shim-$CTR.scope")"
    expect "the sandbox's scope cri-shim-<pod>.scope in the pod slice" yes "$(yesno test -d "$podcg/cri-shim-$POD.scope")"
  else
    cg=$podcg/$CTR
  fi
  echo "container cgroup: $cg" | tee -a "$CHECKS"
  expect "container cgroup where $driver puts it" yes "$(yesno test -d "$cg")"
  expect "container's processes in its cgroup" "0::${cg#/sys/fs/cgroup}" \
    "$(cat "/proc/$(jq -r .info.pid "$OUT/inspect-$driver.json")/cgroup" 2>&1)"
  expect "memory.max (64 MiB)" 67108864 "$(cat "$cg/memory.max" 2>&1)"
  expect "cpu.max (quota 50000, period 100000)" "50000 100000" "$(cat "$cg/cpu.max" 2>&1)"
  local w
  w=$(cat "$cg/cpu.weight" 2>&1)
  if [[ $w =~ ^[0-9]+$ ]] && [ "$w" != 100 ]; then pass "cpu.weight set from cpu_shares 512 ($w)"; else fail "cpu.weight from cpu_shares 512" "got '$w' (100 is the default)"; fi

  echo "== [$driver] stats"
  sleep 2
  crictl stats -o json --id "$CTR" >"$OUT/stats-$driver.json" 2>&1
  positive "ContainerStats memory.workingSetBytes" "$(jq -r '.stats[0].memory.workingSetBytes.value' "$OUT/stats-$driver.json" 2>&1)"
  positive "ContainerStats cpu.usageCoreNanoSeconds" "$(jq -r '.stats[0].cpu.usageCoreNanoSeconds.value' "$OUT/stats-$driver.json" 2>&1)"
  crictl statsp -o json --id "$POD" >"$OUT/statsp-$driver.json" 2>&1
  positive "PodSandboxStats memory.workingSetBytes" "$(jq -r '.stats[0].linux.memory.workingSetBytes.value' "$OUT/statsp-$driver.json" 2>&1)"
  positive "PodSandboxStats cpu.usageCoreNanoSeconds" "$(jq -r '.stats[0].linux.cpu.usageCoreNanoSeconds.value' "$OUT/statsp-$driver.json" 2>&1)"
  positive "memory.current" "$(cat "$cg/memory.current" 2>&1)"

  echo "== [$driver] update"
  out=$(crictl update --memory 100663296 --cpu-quota 25000 "$CTR" 2>&1) && pass UpdateContainerResources || fail UpdateContainerResources "$out"
  expect "memory.max after update (96 MiB)" 100663296 "$(cat "$cg/memory.max" 2>&1)"
  expect "cpu.max after update (quota 25000)" "25000 100000" "$(cat "$cg/cpu.max" 2>&1)"
  if [ "$driver" = systemd ]; then
    expect "systemd's view of the scope follows the update (MemoryMax)" 100663296 "$(systemctl show -p MemoryMax --value "cri-shim-$CTR.scope")"
  fi

  echo "== [$driver] OOM"
  # containerd's events, to see its OOM event (what sets the reason when the cgroup is gone).
  /usr/local/bin/ctr -n cri-shim events >"$OUT/events-$driver.txt" 2>&1 &
  local evpid=$!
  OOM=$(crictl create "$POD" /tmp/oom.json /tmp/pod.json 2>"$OUT/oom-$driver.err")
  out=$(crictl start "$OOM" 2>&1) || fail "start the OOM container" "$out"
  exited() { [ "$(crictl inspect "$OOM" | jq -r .status.state)" = CONTAINER_EXITED ]; }
  if waitfor 120 exited; then pass "OOM container exited"; else fail "OOM container exited" "state $(crictl inspect "$OOM" 2>&1 | jq -r .status.state)"; fi
  # The reason may come a moment after the exit: under systemd the scope's cgroup (memory.events)
  # is gone with its last process, and the kernel's log or containerd's OOM event tells it (logged
  # when so).
  oomreason() { [ "$(crictl inspect "$OOM" | jq -r .status.reason)" = OOMKilled ]; }
  waitfor 5 oomreason
  crictl inspect "$OOM" >"$OUT/inspect-oom-$driver.json" 2>&1
  sleep 1
  kill "$evpid" 2>/dev/null
  wait "$evpid" 2>/dev/null
  # containerd's own event is lost when systemd removes the scope first (its shim reads
  # memory.events too late): recorded, not required; the kernel's log names the kill either way.
  note "containerd published /tasks/oom for the OOM container: $(grep -c "/tasks/oom.*$OOM" "$OUT/events-$driver.txt") time(s)"
  note "exit reasons set by an OOM kill known after the exit so far: $(journalctl -b -u cri-shim.service -o cat | grep 'OOM kill known after the exit' | sed -n 's/.*source="\{0,1\}\([a-z ]*\).*/\1/p' | sort | uniq -c | tr -s ' ' | paste -sd, -)"
  expect "OOM: reason" OOMKilled "$(jq -r .status.reason "$OUT/inspect-oom-$driver.json" 2>&1)"
  expect "OOM: exit code" 137 "$(jq -r .status.exitCode "$OUT/inspect-oom-$driver.json" 2>&1)"
  expect "the box container still running after its neighbour's OOM kill" CONTAINER_RUNNING "$(crictl inspect "$CTR" 2>&1 | jq -r .status.state 2>&1)"

  echo "== [$driver] a pod without a cgroup parent"
  local POD2 CTR2 cg2
  podjson plain plain-uid-1 "" >/tmp/pod2.json
  POD2=$(crictl runp /tmp/pod2.json 2>"$OUT/runp2-$driver.err")
  if [ -n "$POD2" ]; then pass "RunPodSandbox without a parent"; else fail "RunPodSandbox without a parent" "$(cat "$OUT/runp2-$driver.err")"; fi
  CTR2=$(crictl create "$POD2" /tmp/plain.json /tmp/pod2.json 2>"$OUT/create2-$driver.err")
  out=$(crictl start "$CTR2" 2>&1) && pass "StartContainer without a parent" || fail "StartContainer without a parent" "$out $(cat "$OUT/create2-$driver.err")"
  if [ "$driver" = systemd ]; then cg2=/sys/fs/cgroup/system.slice/cri-shim-$CTR2.scope; else cg2=/sys/fs/cgroup/cri-shim/$CTR2; fi
  expect "its container's cgroup is ${cg2%/*}/<id>" yes "$(yesno test -d "$cg2")"
  crictl inspect "$CTR2" >"$OUT/inspect2-$driver.json" 2>&1
  expect "its container's process is there" "0::${cg2#/sys/fs/cgroup}" \
    "$(cat "/proc/$(jq -r .info.pid "$OUT/inspect2-$driver.json")/cgroup" 2>&1)"
  out=$( (crictl stopp "$POD2" && crictl rmp "$POD2") 2>&1) && pass "stop and remove the pod without a parent" || fail "stop and remove the pod without a parent" "$out"
  expect "its container's cgroup removed" no "$(yesno test -d "$cg2")"

  echo "== [$driver] restart with the pod running"
  oldpid=$(mainpid)
  t0=$(date +%s.%N)
  out=$(systemctl restart cri-shim.service 2>&1) && pass "systemctl restart cri-shim" || fail "systemctl restart cri-shim" "$out"
  if waitfor 120 crictl version; then
    pass "cri-shim answers again ($(since "$t0") s after the restart)"
  else
    fail "cri-shim answers after the restart" "$(crictl version 2>&1)"
  fi
  expect "a new cri-shim process" yes "$( [ "$(mainpid)" != "$oldpid" ] && echo yes || echo no)"
  expect "pod adopted: still ready" SANDBOX_READY "$(crictl inspectp "$POD" 2>&1 | jq -r .status.state 2>&1)"
  expect "container adopted: still running" CONTAINER_RUNNING "$(crictl inspect "$CTR" 2>&1 | jq -r .status.state 2>&1)"
  expect "ExecSync after the restart" hello "$(crictl exec -s "$CTR" echo hello 2>&1)"
  crictl stats -o json --id "$CTR" >"$OUT/stats-after-restart-$driver.json" 2>&1
  positive "ContainerStats memory after the restart" "$(jq -r '.stats[0].memory.workingSetBytes.value' "$OUT/stats-after-restart-$driver.json" 2>&1)"
  expect "OOMKilled reason kept across the restart" OOMKilled "$(crictl inspect "$OOM" 2>&1 | jq -r .status.reason 2>&1)"
  expect "one containerd on the node (the system one)" 1 "$(pgrep -xc containerd)"

  echo "== [$driver] stop and remove"
  out=$(crictl stopp "$POD" 2>&1) && pass StopPodSandbox || fail StopPodSandbox "$out"
  expect "container exited after StopPodSandbox" CONTAINER_EXITED "$(crictl inspect "$CTR" 2>&1 | jq -r .status.state 2>&1)"
  out=$(crictl rmp "$POD" 2>&1) && pass RemovePodSandbox || fail RemovePodSandbox "$out"
  expect "no pod left" "" "$(crictl pods -q 2>&1)"
  expect "no container left" "" "$(crictl ps -aq 2>&1)"
  if [ "$driver" = systemd ]; then
    expect "no cri-shim-* units left (systemctl list-units --all)" "" \
      "$(systemctl list-units --all --plain --no-legend 'cri-shim-*' 2>&1)"
    expect "no scope left in the pod slice" "" "$(find "$podcg" -mindepth 1 -type d 2>&1)"
    out=$(systemctl stop "$slice" 2>&1) && pass "systemctl stop $slice (the kubelet removes the pod slice)" || fail "systemctl stop $slice" "$out"
  else
    expect "container cgroups removed" "" "$(find "$podcg" -mindepth 1 -type d 2>&1)"
  fi
  echo "smoke [$driver] section: $(since "$tsec") s" >>"$OUT/timings.txt"
}

pods systemd

echo "== [service] reload"
TAG=service
debuglines() { journalctl -b -u cri-shim.service -o cat | grep -c 'level=debug msg="cri call"'; }
crictl version >/dev/null 2>&1
expect "no debug lines at the installed log_level (info)" 0 "$(debuglines)"
printf 'log_level = "debug"\n' >"$CONFD/50-debug.toml"
oldpid=$(mainpid)
out=$(systemctl reload cri-shim.service 2>&1) && pass "systemctl reload cri-shim" || fail "systemctl reload cri-shim" "$out"
waitfor 30 sh -c "journalctl -b -u cri-shim.service -o cat | grep -q 'config reloaded'"
expect "reload applied log_level from config.d" 1 \
  "$(journalctl -b -u cri-shim.service -o cat | grep 'msg="config reloaded"' | grep -c 'applied=log_level')"
expect "the same process after the reload (MainPID)" "$oldpid" "$(mainpid)"
expect "cri-shim.service active after the reload" active "$(systemctl is-active cri-shim.service)"
crictl version >/dev/null 2>&1
if waitfor 10 sh -c '[ "$(journalctl -b -u cri-shim.service -o cat | grep -c "level=debug msg=\"cri call\"")" -gt 0 ]'; then
  pass "debug lines after the reload ($(debuglines))"
else
  fail "debug lines after the reload" "none"
fi

echo "== [service] switch to the cgroupfs driver"
printf 'cgroup_driver = "cgroupfs"\n' >"$CONFD/60-cgroupfs.toml"
t0=$(date +%s.%N)
out=$(systemctl restart cri-shim.service 2>&1) && pass "systemctl restart cri-shim with cgroup_driver = cgroupfs in config.d" || fail "restart with cgroupfs" "$out"
if waitfor 120 crictl version; then pass "cri-shim answers ($(since "$t0") s after the restart)"; else fail "cri-shim answers after the switch" "$(crictl version 2>&1)"; fi

pods cgroupfs

echo "== cri-shim log"
TAG=node
journalctl -b -u cri-shim --no-pager -o cat | grep -E 'level=(warning|error|fatal)' >"$OUT/cri-shim-warnings.txt"
# Expected here: the guest has no CRIU (checkpoint/restore is not part of this test).
expected='msg="CRIU probe: checkpoint/restore will answer FailedPrecondition" error="criu is not installed'
expect "cri-shim logged no warning or error but the expected CRIU one" 0 "$(grep -vcF "$expected" "$OUT/cri-shim-warnings.txt")"
expect "cri-shim.service still active" active "$(systemctl is-active cri-shim.service)"

echo "smoke: $fails failed"
((fails == 0))
