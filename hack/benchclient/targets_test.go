package main

import (
	"math"
	"strings"
	"testing"
)

func TestTargetEvaluate(t *testing.T) {
	for _, c := range []struct {
		name    string
		limit   float64
		atLeast bool
		r       float64
		ok      bool
		want    targetStatus
	}{
		{"at most, below", 0.5, false, 0.4, true, targetMet},
		{"at most, on the limit", 0.5, false, 0.5, true, targetMet},
		{"at most, above", 0.5, false, 0.51, true, targetNotMet},
		{"at least, above", 1.5, true, 1.6, true, targetMet},
		{"at least, on the limit", 1.5, true, 1.5, true, targetMet},
		{"at least, below", 1.5, true, 1.2, true, targetNotMet},
		{"not measured is neither met nor not", 0.5, false, 0, false, targetMissing},
		{"not measured, at least", 1.5, true, 0, false, targetMissing},
	} {
		tg := target{limit: c.limit, atLeast: c.atLeast}
		if got := tg.evaluate(c.r, c.ok); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// Each target takes its ratio from the right measurement: critest's serial rows, benchclient's
// throughput rows, the runs' CPU split and RSS; what the run did not measure is "not measured".
func TestTargetsOfARun(t *testing.T) {
	var s samples
	s.add("serial: RunPodSandbox", "A", 20e6, 20e6, 20e6)
	s.add("serial: RunPodSandbox", "B", 100e6, 100e6, 100e6) // 0.2: met
	s.add("critest: RunPodSandbox", "A", 90e6)
	s.add("critest: RunPodSandbox", "B", 100e6) // 0.9: not met (≤ 0.8)
	s.add("critest: StartContainer", "A", 90e6)
	s.add("critest: StartContainer", "B", 100e6) // 0.9: not met
	s.add("throughput: StartContainer", "A", 70e6)
	s.add("throughput: StartContainer", "B", 100e6) // 0.7: met
	s.add("throughput: CreateContainer", "A", 70e6) // B has none: not measured
	lc := make([]int64, 100)
	lcB := make([]int64, 100)
	for i := range lc {
		lc[i], lcB[i] = 1e6, 4e6
	}
	lc[98], lc[99] = 10e6, 10e6 // A's p99 10 ms against B's 4 ms; medians 1 and 4 ms
	s.add("ListContainers (500 containers)", "A", lc...)
	s.add("ListContainers (500 containers)", "B", lcB...)
	results := map[string][]RunResult{
		"A": {{Pods: 100, ContainersRunning: 500, StartSeconds: 20,
			StartCPU: CPUSplit{cpuMachine: 60},
			Procs: map[string]map[string]ProcSample{
				"runtime":    {"full": {PID: 1, RSSKiB: 50 << 10}},
				"containerd": {"full": {PID: 2, RSSKiB: 100 << 10}}}}},
		"B": {{Pods: 100, ContainersRunning: 500, StartSeconds: 30,
			StartCPU: CPUSplit{cpuMachine: 100},
			Procs:    map[string]map[string]ProcSample{"runtime": {"full": {PID: 2, RSSKiB: 250 << 10}}}}},
	}
	in := targetInputs{s: &s, results: results, a: "A", b: "B"}
	got := map[string]struct {
		r  float64
		ok bool
		st targetStatus
	}{}
	for _, g := range targetGroups(in) {
		for _, tg := range g.targets {
			r, ok := tg.ratio(in)
			got[tg.label()] = struct {
				r  float64
				ok bool
				st targetStatus
			}{r, ok, tg.evaluate(r, ok)}
		}
	}
	for _, c := range []struct {
		label string
		r     float64
		st    targetStatus
	}{
		{"RunPodSandbox median (kubelet's pods, serial) ≤ 0.3×", 0.2, targetMet},
		{"StopPodSandbox median (kubelet's pods, serial) ≤ 0.5×", 0, targetMissing},
		{"RunPodSandbox median (critest's pods: a shared PID namespace, a pause; serial) ≤ 0.8×", 0.9, targetNotMet},
		{"StartContainer median (critest, serial) ≤ 0.8×", 0.9, targetNotMet},
		{"StartContainer median (under load: throughput phase) ≤ 0.8×", 0.7, targetMet},
		{"CreateContainer median (under load: throughput phase) ≤ 0.8×", 0, targetMissing},
		{"pod start throughput (benchclient) ≥ 1.5×", 1.5, targetMet},
		{"machine CPU per pod started (throughput phase) ≤ 0.65×", 0.6, targetMet},
		{"ListContainers (500 containers) p99 ≤ 0.5×", 2.5, targetNotMet},
		{"ListContainers (500 containers) median ≤ 0.5×", 0.25, targetMet},
		{"ListPodSandbox (N containers) p99 ≤ 0.5×", 0, targetMissing},
		// (50 + 100) MiB for A's runtime and containerd against B's 250 MiB.
		{"RSS of runtime + containerd at 100 pods / 500 containers (median over rounds) ≤ 0.6×", 0.6, targetMet},
		{"RemoveContainer median (critest, serial) ≤ 0.8×", 0, targetMissing},
	} {
		g, found := got[c.label]
		if !found {
			t.Errorf("no target %q; have %v", c.label, got)
			continue
		}
		if g.st != c.st || (c.st != targetMissing && math.Abs(g.r-c.r) > 1e-9) {
			t.Errorf("%s: %.3f (%v), want %.3f (%v)", c.label, g.r, g.st, c.r, c.st)
		}
	}
	for label := range got {
		if strings.Contains(label, " ms") || strings.Contains(label, "MiB") {
			t.Errorf("absolute target left: %q", label)
		}
	}
}

// B's runtime is containerd itself: a -proc containerd with the same pid is not counted twice.
func TestMemoryAtFullCountsContainerdOnce(t *testing.T) {
	rs := []RunResult{{Procs: map[string]map[string]ProcSample{
		"runtime":    {"full": {PID: 7, RSSKiB: 100}},
		"containerd": {"full": {PID: 7, RSSKiB: 100}}}}}
	if m, ok := memoryAtFull(rs); !ok || m != 100 {
		t.Fatalf("%v %v, want 100", m, ok)
	}
	if _, ok := memoryAtFull([]RunResult{{}}); ok {
		t.Fatal("a run without samples measured memory")
	}
}
