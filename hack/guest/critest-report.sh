#!/usr/bin/env bash
# The ratchet of the guest's critest runs (GUEST_TEST=critest), on the host: each JUnit report the
# guest wrote goes through test/critest/report (as test/critest/run.sh's does), and every spec of
# test/critest/baseline.txt within the run's focus must pass, or have its reason in
# hack/guest/critest-notes.txt ("<full spec name> -- <reason>", for what cannot pass in the guest).
# Prints the summary and the per-spec lists of each run; exits 1 when a baseline spec did not pass
# and has no written reason.
#   critest-report.sh RESULTS-DIR   (the guest's output dir: junit-<run>.xml, focus-<run>.txt)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
R=$1
export PATH=/usr/local/go/bin:$PATH
export GOFLAGS=${GOFLAGS:--buildvcs=false}
NOTES=$ROOT/hack/guest/critest-notes.txt
BASELINE=$ROOT/test/critest/baseline.txt
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# test/critest's notes (what cannot pass on any host here) and the guest's.
cat "$ROOT/test/critest/notes.txt" "$NOTES" >"$tmp/notes.txt" 2>/dev/null || true
go build -o "$tmp/report" "$ROOT/test/critest/report"

unexplained=0
lists=()
# run NAME [WEBSOCKET-NAME]: one driver's report; the websocket run's specs join the systemd one.
run() {
  local name=$1 ws=${2:-} j=$R/junit-$1.xml out=$tmp/$1.txt wsargs=()
  echo "### critest [$name] ($(grep "^$name " "$R/critest-runs.txt" 2>/dev/null | cut -d' ' -f2- || echo 'no record'))"
  [ -n "$ws" ] && echo "    + $(grep "^$ws " "$R/critest-runs.txt" 2>/dev/null || echo "$ws: no record")"
  if [ ! -s "$j" ]; then
    echo "no JUnit report: critest did not run or did not finish"
    unexplained=$((unexplained + 1))
    return
  fi
  [ -n "$ws" ] && [ -s "$R/junit-$ws.xml" ] && wsargs=(--junit-websocket "$R/junit-$ws.xml")
  "$tmp/report" --junit "$j" "${wsargs[@]}" --out "$out" --notes "$tmp/notes.txt" --critest-version v1.37.0 >/dev/null
  echo "$(sed -n 's/^passed: //p' "$out") passed, $(sed -n 's/^failed: //p' "$out") failed, $(sed -n 's/^skipped: //p' "$out") skipped"
  # The baseline within this run's focus (the websocket specs when the websocket run happened),
  # without the specs of the host's crun handler: the guest has runc only.
  local focus
  focus=$(cat "$R/focus-$name.txt" 2>/dev/null || echo .)
  grep -v '^#' "$BASELINE" | grep -E -e "$focus" | grep -v -e ' \[websocket\]$' -e ' \[crun\]$' >"$tmp/want-$name" || true
  [ ${#wsargs[@]} -gt 0 ] && grep ' \[websocket\]$' "$BASELINE" >>"$tmp/want-$name"
  local total missing=0 reasoned=0 spec reason
  total=$(wc -l <"$tmp/want-$name")
  while IFS= read -r spec; do
    grep -qxF "PASS $spec" "$out" && continue
    missing=$((missing + 1))
    reason=$(grep -F "$spec -- " "$NOTES" 2>/dev/null | head -1 | sed 's/^.* -- //' || true)
    if [ -n "$reason" ]; then
      reasoned=$((reasoned + 1))
      echo "  baseline spec not passing, reason: $spec -- $reason"
    else
      unexplained=$((unexplained + 1))
      reason=$(grep -F " $spec -- " "$out" | head -1 || true)
      echo "  BASELINE SPEC NOT PASSING, NO REASON: ${reason:-$spec -- did not run (filtered out, or the suite timeout came first)}"
    fi
  done <"$tmp/want-$name"
  echo "ratchet: $total baseline specs in this run's focus, $((total - missing)) passed, $reasoned with a reason, $((missing - reasoned)) without"
  lists+=("$name")
}
run systemd websocket
run cgroupfs
for n in "${lists[@]}"; do
  echo
  echo "### all specs [$n] (test/critest/report's list)"
  sed -n '/^\(PASS\|FAIL\|SKIP\) /p' "$tmp/$n.txt"
done
[ "$unexplained" = 0 ]
