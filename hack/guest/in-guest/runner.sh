#!/bin/bash
# The guest's test runner (guest-test.service): runs /usr/local/lib/cri-shim-guest/<test>.sh for the
# test named by crishim.test= on the kernel command line (default smoke) with its output dir, then
# records versions, boot timings and journals, writes the output dir as a tar archive onto the
# second disk (/dev/vdb, read by hack/guest/run.sh) and powers off.
set -u
OUT=/run/guest-results
rm -rf "$OUT" && mkdir -p "$OUT"
test=smoke limit=1800
for w in $(cat /proc/cmdline); do
  case $w in
    crishim.test=*) test=${w#crishim.test=} ;;
    crishim.timeout=*) limit=${w#crishim.timeout=} ;;
  esac
done

# Monotonic timestamps (microseconds since the kernel started) as seconds.
# mono PROPERTY [UNIT]: the manager's property when no unit is given.
mono() { awk -v u="$(systemctl show -p "$1" --value ${2:+"$2"})" 'BEGIN { printf "%.1f", u / 1e6 }'; }
{
  echo "kernel: $(uname -r) ($(cat /proc/cmdline))"
  echo "systemd: $(systemctl --version | head -1)"
  echo "containerd: $(containerd --version)"
  echo "runc: $(runc --version | head -1)"
  echo "cri-shim: $(cri-shim version | head -1)"
  echo "cgroup root controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
  echo "cpus: $(nproc), memory: $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"
} >"$OUT/versions.txt"
{
  echo "userspace (systemd) started: $(mono UserspaceTimestampMonotonic) s after kernel start"
  echo "multi-user.target reached: $(mono ActiveEnterTimestampMonotonic multi-user.target) s after kernel start"
  for u in systemd-journald.service systemd-udev-trigger.service dbus.service containerd.service guest-images.service cri-shim.service; do
    echo "$u: starting at $(mono InactiveExitTimestampMonotonic "$u") s, active at $(mono ActiveEnterTimestampMonotonic "$u") s"
  done
} >"$OUT/timings.txt"

echo "guest-test: running $test (limit ${limit}s)"
start=$(date +%s.%N)
timeout "$limit" "/usr/local/lib/cri-shim-guest/$test.sh" "$OUT" >"$OUT/$test.log" 2>&1
rc=$?
end=$(date +%s.%N)
echo "test $test: exit $rc after $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s" >>"$OUT/timings.txt"
echo "$rc" >"$OUT/exit-code"
echo "guest-test: $test exited $rc"

journalctl -b -u cri-shim --no-pager -o short-monotonic >"$OUT/cri-shim.journal" 2>&1
journalctl -b -u containerd --no-pager -o short-monotonic >"$OUT/containerd.journal" 2>&1
journalctl -b --no-pager -o short-monotonic >"$OUT/journal.txt" 2>&1
systemctl --failed --no-pager >"$OUT/failed-units.txt" 2>&1
dmesg >"$OUT/dmesg.txt" 2>&1
tar -C "$OUT" -cf /dev/vdb . && sync
echo "guest-test: results written to /dev/vdb"
systemctl poweroff --no-block
