#!/bin/bash
# The kubelet test of the test-node guest: a real kubelet (standalone: no API server, static pods
# only, cgroupDriver systemd) on cri-shim's socket, as a systemd unit next to cri-shim.service.
# A static pod (the imported busybox image, never pulled) reaches Running; its cgroups are systemd
# units under kubepods.slice (cri-shim-<id>.scope in the kubelet's pod slice); crictl logs shows its
# line; a cri-shim restart with the pod running is adopted (the kubelet keeps the container);
# removing the manifest tears the pod down. Measures the kubelet's start, the pod's start (manifest
# written -> container running) and the teardown, and summarises the kubelet's error lines.
# Writes one PASS or FAIL line per check to OUT/checks.txt, tagged [node], [kubelet], [pod],
# [restart], [teardown], [log]; timings to OUT/timings.txt; the kubelet's error lines to
# OUT/kubelet-errors.txt (distinct ones, counted, in OUT/kubelet-errors-distinct.txt).
#   kubelet.sh OUT
set -u
OUT=$1
CHECKS=$OUT/checks.txt
: >"$CHECKS"
fails=0
TAG=node
. "$(dirname "$0")/checks.sh" # pass, fail, note, expect, positive, yesno, waitfor, since, crictl
now() { date +%s.%N; }
# between A B: B - A in seconds, one decimal.
between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
timing() { echo "kubelet test: $1" | tee -a "$OUT/timings.txt"; }
mainpid() { systemctl show -p MainPID --value "$1"; }
# klog: the kubelet's log since the unit started, one line per entry, each prefixed with the
# journal's time (unix seconds with microseconds).
klog() { journalctl -b -u kubelet.service -o short-unix --no-pager | grep -v '^-- '; }
# first_at PATTERN: the journal time of the kubelet's first log line matching PATTERN (ERE).
first_at() { klog | grep -E -m1 -- "$1" | awk '{ print $1 }'; }

KUBELET=/usr/local/bin/kubelet
NODE=$(hostname)
MANIFESTS=/etc/kubernetes/manifests
POD_NAME=web-$NODE # a static pod's name gets the node name appended
SOCK=/run/cri-shim/cri-shim.sock

echo "== node"
if [ ! -x "$KUBELET" ]; then
  fail "the kubelet is in the guest image" "$KUBELET missing: run hack/kubelet/build.sh, then hack/guest/build.sh"
  exit 1
fi
kver=$("$KUBELET" --version 2>&1)
echo "kubelet: $kver ($(file -b "$KUBELET" 2>/dev/null || echo binary))" >>"$OUT/versions.txt"
pass "the kubelet is in the guest image ($kver)"
expect "cri-shim.service active" active "$(systemctl is-active cri-shim.service)"
if waitfor 120 crictl version; then pass "cri-shim answers on $SOCK"; else fail "cri-shim answers" "$(crictl version 2>&1)"; fi
expect "cri-shim reports cgroup driver SYSTEMD" 1 "$(crictl runtime-config 2>&1 | grep -c SYSTEMD)"
expect "no pods before the kubelet starts" "" "$(crictl pods -q 2>&1)"

echo "== kubelet"
TAG=kubelet
mkdir -p "$MANIFESTS" /var/lib/kubelet
# Standalone: no kubeconfig, so no API server; anonymous authentication and AlwaysAllow on its
# server (no webhook to ask); the server on localhost only. The guest has no swap, but the kubelet
# must not refuse to start if a node has some. The kubelet asks cri-shim for the cgroup driver
# (RuntimeConfig); cgroupDriver here says the same for a kubelet that would not ask.
cat >/etc/kubernetes/kubelet.yaml <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
containerRuntimeEndpoint: unix://$SOCK
staticPodPath: $MANIFESTS
address: 127.0.0.1
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
failSwapOn: false
resolvConf: /etc/resolv.conf
EOF
cp /etc/kubernetes/kubelet.yaml "$OUT/kubelet.yaml"
# healthz: the kubelet's /healthz on localhost (no curl in the guest: bash's /dev/tcp).
healthz() {
  local r
  r=$(timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/10248 && printf "GET /healthz HTTP/1.0\r\n\r\n" >&3 && cat <&3' 2>/dev/null)
  [ "${r##*$'\n'}" = ok ]
}
t0=$(now)
# As a node runs it: a service after cri-shim, in system.slice; no Restart= so a crash shows.
out=$(systemd-run --unit=kubelet.service --description="kubelet (standalone, static pods)" \
  -p After=cri-shim.service -p Wants=cri-shim.service \
  "$KUBELET" --config=/etc/kubernetes/kubelet.yaml --v=2 2>&1) && pass "systemd-run kubelet.service" || fail "systemd-run kubelet.service" "$out"
if waitfor 180 healthz; then
  pass "kubelet /healthz ok"
  timing "kubelet start (systemd-run -> /healthz ok): $(between "$t0" "$(now)") s"
else
  fail "kubelet /healthz ok within 180 s" "$(systemctl is-active kubelet.service); $(klog | tail -5)"
fi
expect "kubelet.service active" active "$(systemctl is-active kubelet.service)"
expect "the kubelet runs in its service's cgroup" "0::/system.slice/kubelet.service" "$(cat "/proc/$(mainpid kubelet.service)/cgroup" 2>&1)"
expect "the kubelet took the cgroup driver from cri-shim (RuntimeConfig): systemd" 1 \
  "$(klog | grep 'Using cgroup driver setting received from the CRI runtime' | grep -c 'cgroupDriver="systemd"')"
expect "kubepods.slice active (the kubelet's QoS root)" active "$(systemctl is-active kubepods.slice)"
expect "kubepods-burstable.slice active" active "$(systemctl is-active kubepods-burstable.slice)"
expect "kubepods-besteffort.slice active" active "$(systemctl is-active kubepods-besteffort.slice)"

echo "== pod"
TAG=pod
# Guaranteed QoS (requests = limits): the pod slice is kubepods-pod<uid>.slice right under
# kubepods.slice, and the limits show in the scope's cgroup files. A whole CPU: runc init and the
# pause process run under the pod's CPU quota, and under TCG a 100m quota made RunPodSandbox and
# StartContainer take 20 s and 11 s in runc create alone.
# Written next to the manifest dir and renamed into it: the kubelet reads every file in the dir,
# a half-written one too.
t_manifest=$(now)
cat >/etc/kubernetes/web.yaml.tmp <<'EOF'
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
spec:
  terminationGracePeriodSeconds: 5
  dnsPolicy: Default
  containers:
  - name: box
    image: docker.io/library/busybox:guest
    imagePullPolicy: Never
    command: ["sh", "-c", "echo kubelet-guest: box started; while true; do sleep 1; done"]
    resources:
      requests: {cpu: "1", memory: 64Mi}
      limits: {cpu: "1", memory: 64Mi}
EOF
mv /etc/kubernetes/web.yaml.tmp "$MANIFESTS/web.yaml"
cp "$MANIFESTS/web.yaml" "$OUT/web.yaml"
running() { [ -n "$(crictl ps -q --state Running --name '^box$' --label "io.kubernetes.pod.name=$POD_NAME" 2>/dev/null)" ]; }
if waitfor 300 running; then
  t_seen=$(now)
  pass "the static pod's container is running ($(between "$t_manifest" "$t_seen") s after the manifest was written)"
else
  fail "the static pod's container running within 300 s" "$(crictl ps -a 2>&1 | tail -3); $(klog | grep -E '^[0-9.]+ [^ ]+ [^ ]+ E' | tail -3)"
fi
CTR=$(crictl ps -q --name '^box$' --label "io.kubernetes.pod.name=$POD_NAME" 2>/dev/null | head -1)
POD=$(crictl pods -q --name "^$POD_NAME\$" 2>/dev/null | head -1)
crictl inspect "$CTR" >"$OUT/inspect-box.json" 2>&1
crictl inspectp "$POD" >"$OUT/inspectp-web.json" 2>&1
expect "one pod (crictl pods)" 1 "$(crictl pods -q 2>/dev/null | wc -l)"
expect "the pod is $POD_NAME in namespace default, ready" "$POD_NAME default SANDBOX_READY" \
  "$(jq -r '[.status.metadata.name, .status.metadata.namespace, .status.state] | join(" ")' "$OUT/inspectp-web.json" 2>&1)"
expect "one container (crictl ps -a), attempt 0" "1 0" \
  "$(crictl ps -aq 2>/dev/null | wc -l) $(jq -r .status.metadata.attempt "$OUT/inspect-box.json" 2>&1)"
started=$(date -d "$(jq -r .status.startedAt "$OUT/inspect-box.json")" +%s.%N 2>/dev/null)
created=$(date -d "$(jq -r .status.createdAt "$OUT/inspect-box.json")" +%s.%N 2>/dev/null)
podcreated=$(date -d "$(jq -r .status.createdAt "$OUT/inspectp-web.json")" +%s.%N 2>/dev/null)
if [ -n "$started" ]; then
  timing "pod start (manifest written -> container started, its StartedAt): $(between "$t_manifest" "$started") s"
  timing "  manifest written -> sandbox created (its CreatedAt): $(between "$t_manifest" "$podcreated") s"
  timing "  sandbox created -> container created: $(between "$podcreated" "$created") s"
  timing "  container created -> container started: $(between "$created" "$started") s"
fi
# The kubelet's own view: the file source's ADD, then PLEG's ContainerStarted for the container.
t_add=$(first_at "SyncLoop ADD.*source=\"file\".*$POD_NAME")
t_started=$(first_at "SyncLoop \(PLEG\): event for pod.*$POD_NAME.*ContainerStarted.*${CTR:-none}")
if [ -n "$t_add" ]; then pass "the kubelet logged SyncLoop ADD (source file) for $POD_NAME"; else fail "the kubelet logged SyncLoop ADD for $POD_NAME" "no such line"; fi
if [ -n "$t_started" ]; then pass "the kubelet logged PLEG ContainerStarted for the box container"; else fail "the kubelet logged PLEG ContainerStarted for the box container" "no such line"; fi
if [ -n "$t_add" ] && [ -n "$t_started" ]; then
  timing "pod start as the kubelet logs it (SyncLoop ADD -> PLEG ContainerStarted of the container): $(between "$t_add" "$t_started") s"
  timing "  manifest written -> SyncLoop ADD: $(between "$t_manifest" "$t_add") s"
fi
note "the kubelet logs no 'Observed pod startup duration' for static pods (its startup latency tracker skips them)"

echo "== pod cgroups"
uid=$(jq -r .status.metadata.uid "$OUT/inspectp-web.json")
slice=kubepods-pod${uid//-/_}.slice
podcg=/sys/fs/cgroup/kubepods.slice/$slice
echo "pod uid $uid, pod slice $slice" | tee -a "$CHECKS"
expect "the kubelet's pod slice $slice active" active "$(systemctl is-active "$slice")"
expect "the pod slice is in kubepods.slice" kubepods.slice "$(systemctl show -p Slice --value "$slice")"
expect "the pod slice's MemoryMax (the pod's limit, 64 MiB)" 67108864 "$(systemctl show -p MemoryMax --value "$slice")"
expect "container scope cri-shim-<ctr>.scope active" active "$(systemctl is-active "cri-shim-$CTR.scope")"
expect "the container scope is in the pod slice" "$slice" "$(systemctl show -p Slice --value "cri-shim-$CTR.scope")"
expect "sandbox scope cri-shim-<pod>.scope in the pod slice" "$slice" "$(systemctl show -p Slice --value "cri-shim-$POD.scope")"
expect "the container's process is in its scope" "0::/kubepods.slice/$slice/cri-shim-$CTR.scope" \
  "$(cat "/proc/$(jq -r .info.pid "$OUT/inspect-box.json")/cgroup" 2>&1)"
expect "memory.max of the container scope (64 MiB)" 67108864 "$(cat "$podcg/cri-shim-$CTR.scope/memory.max" 2>&1)"
expect "cpu.max of the container scope (1 CPU)" "100000 100000" "$(cat "$podcg/cri-shim-$CTR.scope/cpu.max" 2>&1)"
expect "only the two scopes in the pod slice" 2 "$(find "$podcg" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | wc -l)"

echo "== pod log"
expect "crictl logs shows the container's line" 1 "$(crictl logs "$CTR" 2>&1 | grep -c 'kubelet-guest: box started')"
logfile=$(jq -r .status.logPath "$OUT/inspect-box.json")
expect "its log file is where the kubelet asked (/var/log/pods/default_${POD_NAME}_<uid>/box/0.log)" \
  "/var/log/pods/default_${POD_NAME}_$uid/box/0.log" "$logfile"
expect "the log file has the line" 1 "$(grep -c 'kubelet-guest: box started' "$logfile" 2>&1)"

echo "== restart cri-shim with the pod running"
TAG=restart
oldpid=$(mainpid cri-shim.service)
t_restart=$(now)
out=$(systemctl restart cri-shim.service 2>&1) && pass "systemctl restart cri-shim" || fail "systemctl restart cri-shim" "$out"
if waitfor 120 crictl version; then pass "cri-shim answers again ($(between "$t_restart" "$(now)") s)"; else fail "cri-shim answers after the restart" "$(crictl version 2>&1)"; fi
t_back=$(now)
expect "a new cri-shim process" yes "$([ "$(mainpid cri-shim.service)" != "$oldpid" ] && echo yes || echo no)"
# Let the kubelet relist (PLEG: every second) and sync the pod a few times against the new process.
sleep 30
expect "the same pod, ready" "$POD SANDBOX_READY" "$(crictl pods -q 2>&1 | tr '\n' ' ' | sed 's/ $//') $(crictl inspectp "$POD" 2>&1 | jq -r .status.state 2>&1)"
expect "the same container, running" "$CTR CONTAINER_RUNNING" "$(crictl ps -aq 2>&1 | tr '\n' ' ' | sed 's/ $//') $(crictl inspect "$CTR" 2>&1 | jq -r .status.state 2>&1)"
expect "attempt still 0 (the kubelet did not restart it)" 0 "$(crictl inspect "$CTR" 2>&1 | jq -r .status.metadata.attempt 2>&1)"
expect "the kubelet logged no kill or restart of the pod since" 0 \
  "$(journalctl -u kubelet.service -o cat --since "@${t_restart%.*}" | grep -cE 'Killing container|ContainerDied|Back-off restarting|SyncLoop (REMOVE|DELETE)')"
expect "kubelet.service still active, never restarted" "active 0" \
  "$(systemctl is-active kubelet.service) $(systemctl show -p NRestarts --value kubelet.service)"
expect "crictl logs still shows the line" 1 "$(crictl logs "$CTR" 2>&1 | grep -c 'kubelet-guest: box started')"

echo "== kubelet log"
TAG=log
# klog's error lines (E<mmdd> <time> <pid> <file:line>] <message>), with the journal's time.
klog | grep -E '^[^ ]+ [^ ]+ [^ ]+ E[0-9]{4} ' >"$OUT/kubelet-errors.txt"
# distinct: the file:line and the message's quoted text only (ids, times and numbers vary).
distinct() {
  sed -E 's/^[^ ]+ [^ ]+ [^ ]+ E[0-9]{4} [0-9:.]+ +[0-9]+ //; s/[0-9a-f]{64}/<id>/g; s/[0-9a-f]{32}/<uid>/g; s/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/<uid>/g; s/[0-9]+(\.[0-9]+)?(ms|s|µs)?/N/g' |
    cut -c1-220 | sort | uniq -c | sort -rn
}
distinct <"$OUT/kubelet-errors.txt" >"$OUT/kubelet-errors-distinct.txt"
# The restart window: from systemctl restart until cri-shim answered again, plus 5 s for the
# kubelet's calls in flight (its connection to the old process breaks).
awk -v a="$t_restart" -v b="$t_back" '$1 >= a && $1 <= b + 5' "$OUT/kubelet-errors.txt" >"$OUT/kubelet-errors-restart.txt"
awk -v a="$t_restart" -v b="$t_back" '!($1 >= a && $1 <= b + 5)' "$OUT/kubelet-errors.txt" >"$OUT/kubelet-errors-outside.txt"
# Expected on this guest: it has no network device, so no default route for the kubelet's node
# address (it logs that at every node status update, every 10 s).
expected_err='can.t get ip address of node .*no default routes found'
grep -vE "$expected_err" "$OUT/kubelet-errors-outside.txt" >"$OUT/kubelet-errors-unexpected.txt"
note "kubelet error lines: $(wc -l <"$OUT/kubelet-errors.txt") ($(wc -l <"$OUT/kubelet-errors-restart.txt") in the cri-shim restart window, $(grep -cE "$expected_err" "$OUT/kubelet-errors.txt") the expected no-default-route one), $(wc -l <"$OUT/kubelet-errors-distinct.txt") distinct"
expect "no cgroup driver mismatch in the kubelet log" 0 "$(klog | grep -ciE 'cgroup driver.*(mismatch|misconfiguration|does not match)|misconfiguration: kubelet cgroup driver')"
expect "no kubelet error outside the restart window (but the expected one) repeated more than 3 times" "" \
  "$(distinct <"$OUT/kubelet-errors-unexpected.txt" | awk '$1 > 3')"
expect "no kubelet error outside the restart window about the runtime (rpc error)" 0 "$(grep -c 'rpc error' "$OUT/kubelet-errors-unexpected.txt")"

echo "== teardown"
TAG=teardown
t_rm=$(now)
rm -f "$MANIFESTS/web.yaml"
nonerunning() { [ -z "$(crictl ps -q 2>/dev/null)" ]; }
if waitfor 120 nonerunning; then
  timing "teardown: manifest removed -> no container running: $(between "$t_rm" "$(now)") s"
  pass "no container running after the manifest was removed"
else
  fail "no container running within 120 s of removing the manifest" "$(crictl ps 2>&1 | tail -2)"
fi
t_rm_seen=$(first_at "SyncLoop REMOVE.*source=\"file\".*$POD_NAME")
if [ -n "$t_rm_seen" ]; then pass "the kubelet logged SyncLoop REMOVE (source file) for $POD_NAME"; else fail "the kubelet logged SyncLoop REMOVE for $POD_NAME" "no such line"; fi
# The kubelet stops the sandbox at once; its container GC (every minute) removes the stopped
# sandbox and containers of a pod that is gone.
nopods() { [ -z "$(crictl pods -q 2>/dev/null)" ] && [ -z "$(crictl ps -aq 2>/dev/null)" ]; }
if waitfor 240 nopods; then
  timing "teardown: manifest removed -> no pod and no container left (the kubelet's GC): $(between "$t_rm" "$(now)") s"
  pass "no pod and no container left (crictl pods, crictl ps -a)"
else
  fail "no pod and no container left within 240 s" "$(crictl pods 2>&1 | tail -2); $(crictl ps -a 2>&1 | tail -2)"
fi
expect "no cri-shim-* units left (systemctl list-units --all)" "" "$(systemctl list-units --all --plain --no-legend 'cri-shim-*' 2>&1)"
gone() { [ ! -d "$podcg" ]; }
waitfor 60 gone
expect "the pod slice's cgroup removed (the kubelet's pod cgroup cleanup)" no "$(yesno test -d "$podcg")"
expect "kubelet.service still active, never restarted" "active 0" \
  "$(systemctl is-active kubelet.service) $(systemctl show -p NRestarts --value kubelet.service)"

echo "== stop the kubelet"
out=$(systemctl stop kubelet.service 2>&1) && pass "systemctl stop kubelet" || fail "systemctl stop kubelet" "$out"
journalctl -b -u kubelet.service -o short-monotonic --no-pager >"$OUT/kubelet.journal" 2>&1
journalctl -b -u cri-shim --no-pager -o cat | grep -E 'level=(warning|error|fatal)' >"$OUT/cri-shim-warnings.txt"
expected='msg="CRIU probe: checkpoint/restore will answer FailedPrecondition" error="criu is not installed'
TAG=node
note "cri-shim warnings and errors but the expected CRIU one: $(grep -vcF "$expected" "$OUT/cri-shim-warnings.txt")"
expect "cri-shim.service still active" active "$(systemctl is-active cri-shim.service)"

echo "kubelet: $fails failed"
((fails == 0))
