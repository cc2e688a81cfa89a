#!/usr/bin/env bash
# Boots the test-node guest made by hack/guest/build.sh under QEMU (TCG: no KVM here) and collects
# what its test runner wrote. The guest has no network device; its root disk is a throwaway
# snapshot of root.img; a second raw disk receives the results as a tar archive. QEMU is killed by
# its pid when GUEST_TIMEOUT seconds pass.
# Writes $GUEST/last-run/ (console.log, results/) and, for the smoke test, hack/guest/results.txt
# (for the kubelet test, hack/guest/results-kubelet.txt);
# exits non-zero when the guest reported no results or a check failed.
# Env: GUEST_TEST (the in-guest test, default smoke), GUEST_TIMEOUT (seconds, default 1200),
#      GUEST_CPUS (default 2), GUEST_MEMORY (default 3G).
# GUEST_TEST=critest: GUEST_TIMEOUT defaults to 4200, GUEST_CRITEST picks its mode (subset, full,
#      quick: see in-guest/critest.sh), and hack/guest/results-critest.txt gets the ratchet of
#      hack/guest/critest-report.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/hack/guest
CACHE=${CRI_SHIM_CACHE:-/var/cache/cri-shim}
GUEST=${CRI_SHIM_GUEST_DIR:-$CACHE/guest}
TEST=${GUEST_TEST:-smoke}
TIMEOUT=${GUEST_TIMEOUT:-1200}
[ "$TEST" = critest ] && TIMEOUT=${GUEST_TIMEOUT:-4200}
CPUS=${GUEST_CPUS:-2}
MEMORY=${GUEST_MEMORY:-3G}
RUN=$GUEST/last-run

log() { echo "guest-run: $*" >&2; }
for f in vmlinuz initrd.img root.img; do
  [ -f "$GUEST/$f" ] || { log "$GUEST/$f missing: run hack/guest/build.sh"; exit 1; }
done
rm -rf "$RUN" && mkdir -p "$RUN/results"
truncate -s 256M "$RUN/results.disk"

# The runner inside stops its test a little before the host gives up, so results still come out.
cmdline="root=/dev/vda rw console=ttyS0 systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all"
cmdline+=" systemd.firstboot=off systemd.show_status=1 crishim.test=$TEST crishim.timeout=$((TIMEOUT * 3 / 4))"
[ -n "${GUEST_CRITEST:-}" ] && cmdline+=" crishim.critest=$GUEST_CRITEST"
qemu=(qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp "$CPUS" -m "$MEMORY"
  -nodefaults -no-user-config -display none -nic none -no-reboot
  -serial "file:$RUN/console.log"
  -kernel "$GUEST/vmlinuz" -initrd "$GUEST/initrd.img" -append "$cmdline"
  -drive "file=$GUEST/root.img,if=virtio,format=raw,snapshot=on"
  -drive "file=$RUN/results.disk,if=virtio,format=raw"
  -device virtio-rng-pci)
echo "${qemu[*]}" >"$RUN/qemu-command"
log "booting (test $TEST, timeout ${TIMEOUT}s): ${qemu[*]}"
start=$(date +%s.%N)
"${qemu[@]}" >"$RUN/qemu.log" 2>&1 &
QPID=$!
since() { awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
boot= timed_out=
while kill -0 "$QPID" 2>/dev/null; do
  if [ -z "$boot" ] && grep -aq 'guest-test: running' "$RUN/console.log" 2>/dev/null; then
    boot=$(since)
    log "the test runner (ordered after multi-user.target) started ${boot}s after QEMU"
  fi
  if (( $(date +%s) - ${start%.*} >= TIMEOUT )); then
    log "timeout after ${TIMEOUT}s: killing QEMU (pid $QPID)"
    kill "$QPID" 2>/dev/null || true
    timed_out=1
    break
  fi
  sleep 1
done
set +e
wait "$QPID"
qemu_rc=$?
set -e
total=$(since)
log "QEMU exited ($qemu_rc) after ${total}s"

tar -xf "$RUN/results.disk" -C "$RUN/results" 2>/dev/null || true
if [ ! -f "$RUN/results/exit-code" ]; then
  log "the guest wrote no results; last console lines:"
  tail -40 "$RUN/console.log" >&2
  exit 1
fi

out=$RUN/results.txt
[ "$TEST" = smoke ] && out=$HERE/results.txt
[ "$TEST" = critest ] && out=$HERE/results-critest.txt
[ "$TEST" = kubelet ] && out=$HERE/results-kubelet.txt
checks=$RUN/results/checks.txt
passed=$(grep -c '^PASS' "$checks" || true)
failed=$(grep -c '^FAIL' "$checks" || true)
{
  echo "test-node $TEST: passed $passed, failed $failed (guest exit code $(cat "$RUN/results/exit-code"))"
  # (this file itself does not make the tree dirty)
  dirty=$(git -C "$ROOT" status --porcelain -- . ':!hack/guest/results*.txt' 2>/dev/null | head -1)
  # The smoke's checks carry their section: [node], [systemd] and [cgroupfs] (one per cgroup
  # driver), [service] (reload, the driver switch).
  for tag in $(sed -n 's/^\(PASS\|FAIL\) \[\([a-z]*\)\].*/\2/p' "$checks" | awk '!seen[$0]++'); do
    echo "  [$tag]: passed $(grep -c "^PASS \[$tag\]" "$checks"), failed $(grep -c "^FAIL \[$tag\]" "$checks")"
  done
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)${dirty:+ with uncommitted changes}"
  echo "guest: Debian bookworm under $(qemu-system-x86_64 --version | head -1), TCG, $CPUS vCPUs, $MEMORY, no network device"
  echo
  echo "## timings"
  echo "guest build (last hack/guest/build.sh run): $(cat "$GUEST/last-build-seconds" 2>/dev/null || echo '?') s"
  [ "$TEST" = kubelet ] && echo "kubelet build (hack/kubelet/build.sh, when it last built): $(cat "$CACHE/kubelet-${KUBELET_VERSION:-v1.37.2}/build-seconds" 2>/dev/null || echo '?') s"
  echo "host wall clock, QEMU start to the test runner starting (after multi-user.target): ${boot:-not seen} s"
  echo "host wall clock, QEMU start to QEMU exit: $total s${timed_out:+ (TIMED OUT)}"
  cat "$RUN/results/timings.txt"
  echo
  echo "## versions"
  cat "$RUN/results/versions.txt"
  echo
  echo "## checks"
  cat "$checks"
  echo
  echo "## cri-shim warnings and errors ($(wc -l <"$RUN/results/cri-shim-warnings.txt" 2>/dev/null || echo 0) lines; first 40)"
  head -40 "$RUN/results/cri-shim-warnings.txt" 2>/dev/null || true
  echo
  if [ -f "$RUN/results/kubelet-errors.txt" ]; then
    echo "## kubelet error lines ($(wc -l <"$RUN/results/kubelet-errors.txt")), distinct (count, file:line and message, ids and numbers as <id> <uid> N)"
    cat "$RUN/results/kubelet-errors-distinct.txt"
    echo
  fi
  echo "full logs of this run: $RUN (console.log, results/)"
} >"$out"
ratchet=0
if [ "$TEST" = critest ]; then
  { echo; echo "## critest (hack/guest/critest-report.sh)"; } >>"$out"
  "$HERE/critest-report.sh" "$RUN/results" >>"$out" || ratchet=1
fi
cat "$out"
[ -z "$timed_out" ] && [ "$failed" = 0 ] && [ "$ratchet" = 0 ] && [ "$(cat "$RUN/results/exit-code")" = 0 ]
