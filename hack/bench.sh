#!/usr/bin/env bash
# Runs critest's benchmarks against cri-shim (managed containerd, local test registry) and leaves
# critest's JSON results in bench/critest/. The side-by-side comparison with containerd's own CRI
# plugin is a later step (issue "Performance").
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$ROOT/bench/critest
rm -rf "$out"
CRITEST_BENCHMARK_DIR=$out "$ROOT/test/critest/run.sh"
ls -l "$out"
