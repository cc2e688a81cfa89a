# The check helpers of the in-guest tests, sourced by each (smoke.sh, kubelet.sh, critest.sh).
# Each check writes one line to $CHECKS tagged with the current section $TAG; fail counts into
# $fails.
pass() { echo "PASS [$TAG] $1" | tee -a "$CHECKS"; }
fail() { echo "FAIL [$TAG] $1 -- $2" | tee -a "$CHECKS"; fails=$((fails + 1)); }
note() { echo "NOTE [$TAG] $1" | tee -a "$CHECKS"; }
# expect NAME WANT GOT
expect() { if [ "$3" = "$2" ]; then pass "$1 ($3)"; else fail "$1" "want '$2', got '$3'"; fi; }
# positive NAME VALUE: VALUE is an integer above zero.
positive() { if [[ $2 =~ ^[0-9]+$ ]] && (($2 > 0)); then pass "$1 ($2)"; else fail "$1" "got '$2'"; fi; }
# yesno CMD...: yes when CMD succeeds.
yesno() { if "$@" >/dev/null 2>&1; then echo yes; else echo no; fi; }
# waitfor SECONDS CMD...: runs CMD every second until it succeeds or SECONDS pass.
waitfor() {
  local n=$1
  shift
  for ((i = 0; i < n; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  return 1
}
# since START: seconds from START (date +%s.%N) to now, one decimal.
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
crictl() { /usr/local/bin/crictl "$@"; }
