package main

import (
	"fmt"
	"io"
	"strings"
)

// The performance goals, every one a ratio of runtime A's figure (cri-shim) to runtime B's
// (containerd's CRI plugin) measured in the same interleaved run: an absolute time on a shared
// machine says more about the neighbours than about the runtime.

// targetStatus is what a run says of one target.
type targetStatus int

const (
	targetMissing targetStatus = iota // the run did not measure it (e.g. BENCH_CRITEST=0)
	targetMet
	targetNotMet
)

func (s targetStatus) String() string {
	switch s {
	case targetMet:
		return "yes"
	case targetNotMet:
		return "**no**"
	}
	return "not measured"
}

// targetInputs is what a report measured: every operation's samples and the benchclient runs,
// by runtime name.
type targetInputs struct {
	s       *samples
	results map[string][]RunResult
	a, b    string
}

// target is one goal: the ratio A / B at most limit (at least, for atLeast).
type target struct {
	what    string
	limit   float64
	atLeast bool
	ratio   func(in targetInputs) (float64, bool)
}

// evaluate says whether a measured ratio meets the target; ok false is a ratio not measured.
func (t target) evaluate(r float64, ok bool) targetStatus {
	switch {
	case !ok:
		return targetMissing
	case t.atLeast && r >= t.limit, !t.atLeast && r <= t.limit:
		return targetMet
	}
	return targetNotMet
}

func (t target) label() string {
	op := "≤"
	if t.atLeast {
		op = "≥"
	}
	return fmt.Sprintf("%s %s %.2g×", t.what, op, t.limit)
}

// opRatio is the ratio of the p-th percentiles of operation op (A / B).
func opRatio(op string, p int) func(targetInputs) (float64, bool) {
	return func(in targetInputs) (float64, bool) {
		d := in.s.data[op]
		if len(d[in.a]) == 0 || len(d[in.b]) == 0 {
			return 0, false
		}
		x, y := percentile(d[in.a], p), percentile(d[in.b], p)
		if x == 0 || y == 0 {
			return 0, false
		}
		return float64(x) / float64(y), true
	}
}

// scaleOp is the name of the list measurement of op at the runs' scale ("ListContainers (500
// containers)"): the first of the report's operations with that prefix.
func scaleOp(s *samples, op string) string {
	for _, o := range s.order {
		if strings.HasPrefix(o, op+" (") && strings.HasSuffix(o, " containers)") {
			return o
		}
	}
	return op + " (N containers)"
}

// throughputRatio is how many more pods per second A started than B (B's time to all running
// over A's, medians over the rounds).
func throughputRatio(in targetInputs) (float64, bool) {
	ta, tb := medianStart(in.results[in.a]), medianStart(in.results[in.b])
	if ta <= 0 || tb <= 0 {
		return 0, false
	}
	return tb / ta, true
}

// machineCPURatio is the machine's CPU per pod started in the throughput phase, A / B.
func machineCPURatio(in targetInputs) (float64, bool) {
	ma, okA := cpuPerPod(in.results[in.a], cpuMachine)
	mb, okB := cpuPerPod(in.results[in.b], cpuMachine)
	if !okA || !okB || mb == 0 {
		return 0, false
	}
	return ma / mb, true
}

// memoryAtFull is the RSS, at the node's fullest, of what serves the CRI with runtime rt: the
// runtime process plus containerd when they are apart, the runtime alone when it is containerd
// (its -proc runtime; no -proc containerd). Median over the rounds, in KiB.
func memoryAtFull(rs []RunResult) (float64, bool) {
	var v []float64
	for _, r := range rs {
		rt, ok := r.Procs["runtime"]["full"]
		if !ok {
			continue
		}
		kib := rt.RSSKiB
		if c, ok := r.Procs["containerd"]["full"]; ok && c.PID != rt.PID {
			kib += c.RSSKiB
		}
		v = append(v, float64(kib))
	}
	return median(v)
}

func memoryRatio(in targetInputs) (float64, bool) {
	ma, okA := memoryAtFull(in.results[in.a])
	mb, okB := memoryAtFull(in.results[in.b])
	if !okA || !okB || mb == 0 {
		return 0, false
	}
	return ma / mb, true
}

// targetGroups are the goals, the performance issue's first; then the ratio goals of before that
// the do not replace, so a regression in what is already met still shows.
func targetGroups(in targetInputs) []struct {
	title   string
	targets []target
} {
	scale := "the run's scale"
	if rs := in.results[in.a]; len(rs) > 0 {
		scale = fmt.Sprintf("%d pods / %d containers", rs[0].Pods, rs[0].ContainersRunning)
	}
	lc, lp := scaleOp(in.s, "ListContainers"), scaleOp(in.s, "ListPodSandbox")
	return []struct {
		title   string
		targets []target
	}{
		{"the issue's targets", []target{
			// The kubelet's pods, one at a time ("serial:"): critest's benchmark pods set no
			// namespace options, which means one PID namespace for the pod, and keep a pause.
			{what: "RunPodSandbox median (kubelet's pods, serial)", limit: 0.3, ratio: opRatio("serial: RunPodSandbox", 50)},
			{what: "StopPodSandbox median (kubelet's pods, serial)", limit: 0.5, ratio: opRatio("serial: StopPodSandbox (1 container)", 50)},
			{what: "pod start throughput (benchclient)", limit: 1.5, atLeast: true, ratio: throughputRatio},
			{what: "machine CPU per pod started (throughput phase)", limit: 0.65, ratio: machineCPURatio},
			{what: "CreateContainer median (critest, serial)", limit: 0.8, ratio: opRatio("critest: CreateContainer", 50)},
			{what: "CreateContainer median (under load: throughput phase)", limit: 0.8, ratio: opRatio("throughput: CreateContainer", 50)},
			{what: "StartContainer median (critest, serial)", limit: 0.8, ratio: opRatio("critest: StartContainer", 50)},
			{what: "StartContainer median (under load: throughput phase)", limit: 0.8, ratio: opRatio("throughput: StartContainer", 50)},
			{what: lc + " p99", limit: 0.5, ratio: opRatio(lc, 99)},
			{what: lp + " p99", limit: 0.5, ratio: opRatio(lp, 99)},
			{what: "RSS of runtime + containerd at " + scale + " (median over rounds)", limit: 0.6, ratio: memoryRatio},
		}},
		{"kept from before (ratios the issue's do not replace)", []target{
			{what: "RunPodSandbox median (critest's pods: a shared PID namespace, a pause; serial)", limit: 0.8, ratio: opRatio("critest: RunPodSandbox", 50)},
			{what: "StopPodSandbox median (critest's pods, serial)", limit: 0.8, ratio: opRatio("critest: StopPodSandbox", 50)},
			{what: "RemovePodSandbox median (critest, serial)", limit: 0.8, ratio: opRatio("critest: RemovePodSandbox", 50)},
			{what: "StopContainer median (critest, serial)", limit: 0.8, ratio: opRatio("critest: StopContainer", 50)},
			{what: "RemoveContainer median (critest, serial)", limit: 0.8, ratio: opRatio("critest: RemoveContainer", 50)},
			{what: lc + " median", limit: 0.5, ratio: opRatio(lc, 50)},
			{what: lp + " median", limit: 0.5, ratio: opRatio(lp, 50)},
			{what: scaleOp(in.s, "ListContainerStats") + " median", limit: 0.5, ratio: opRatio(scaleOp(in.s, "ListContainerStats"), 50)},
		}},
	}
}

// targets renders the goals against this run, one table with a row per goal.
func targets(w io.Writer, s *samples, results map[string][]RunResult, a, b string, sharedContainerd bool) {
	in := targetInputs{s: s, results: results, a: a, b: b}
	fmt.Fprintf(w, "\n### Targets (this run; ratios %s / %s)\n\n| target | measured | met |\n|---|---|---|\n", a, b)
	for _, g := range targetGroups(in) {
		fmt.Fprintf(w, "| *%s* | | |\n", g.title)
		for _, t := range g.targets {
			r, ok := t.ratio(in)
			measured := "–"
			if ok {
				measured = fmt.Sprintf("%.2f×", r)
			}
			fmt.Fprintf(w, "| %s | %s | %s |\n", t.label(), measured, t.evaluate(r, ok))
		}
	}
	fmt.Fprintf(w, "\nMedians unless a target says p99; \"not measured\": the run had no such samples (critest rows with BENCH_CRITEST=0). ")
	if sharedContainerd {
		fmt.Fprintf(w, "The RSS target compares %[1]s + containerd at the node's fullest in %[1]s's throughput run with containerd alone at its fullest in %[2]s's: "+
			"one containerd serves both, so its RSS in %[1]s's phase also holds its CRI plugin (loaded, idle) and what the Go heap kept from %[2]s's earlier phases, "+
			"and its RSS in %[2]s's phase what it kept from %[1]s's; round 1's %[1]s phase runs first on a fresh containerd and is the least burdened. ", a, b)
	} else {
		fmt.Fprintf(w, "The RSS target compares %[1]s + its containerd (the CRI plugin off) at the node's fullest in %[1]s's throughput run with "+
			"containerd (its CRI plugin serving) at its fullest in %[2]s's: each runtime has a containerd of its own. ", a, b)
	}
	fmt.Fprintf(w, "The shims (the same count and size for both) are not in it. The issue's targets replace the absolute ones of before (List* p99 ≤ 2 ms, %[1]s RSS ≤ 60 MiB): "+
		"on a shared machine an absolute figure measures the neighbours.\n", a)
}
