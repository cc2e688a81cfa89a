#!/usr/bin/env bash
# Runs critest's benchmarks against cri-shim (managed containerd, local test registry) with the
# parameters of hack/bench-params.yaml, leaves critest's JSON in bench/critest/ and prints each
# operation's median and p95. The side-by-side comparison with containerd's own CRI plugin comes
# with the performance issue.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$ROOT/bench/critest
rm -rf "$out"
CRITEST_BENCHMARK_DIR=$out CRITEST_ARGS="-benchmarking-params-file $ROOT/hack/bench-params.yaml" \
  "$ROOT/test/critest/run.sh"
go run "$ROOT/hack/benchsummary" "$out"/*.json
