package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// The report's sections that compare every benchclient run name, not only A and B: runs of a
// second runtime handler (bench.sh's "cri-shim+crun", "containerd-CRI+crun") get a column each.

// runNames are A, B, then the other runtimes with benchclient runs: A's other handlers before B's
// ("A+crun", "B+crun"), each sorted.
func runNames(results map[string][]RunResult, a, b string) []string {
	names := []string{a, b}
	var rest []string
	for n := range results {
		if n != a && n != b {
			rest = append(rest, n)
		}
	}
	sort.Slice(rest, func(i, j int) bool {
		ai, aj := strings.HasPrefix(rest[i], a), strings.HasPrefix(rest[j], a)
		if ai != aj {
			return ai
		}
		return rest[i] < rest[j]
	})
	return append(names, rest...)
}

// ociSubcommandOrder puts the lifecycle's subcommands first, in the order a pod start runs them.
var ociSubcommandOrder = []string{"create", "start", "state", "update", "exec", "kill", "delete", "features"}

// ociRunsTables renders the OCI runtime's runs per pod in the throughput phase and in the
// teardown, by subcommand.
func ociRunsTables(w io.Writer, results map[string][]RunResult, a, b string) {
	ociRunsTable(w, results, a, b, "OCI runtime runs per pod started (throughput phase: pod + 1 container; from the runtime wrapper's log, median over rounds)",
		func(r RunResult) map[string]int { return r.OCIRuns })
	ociRunsTable(w, results, a, b, "OCI runtime runs per pod torn down (StopPodSandbox + RemovePodSandbox of a pod with all its containers: see the rounds' containers per pod)",
		func(r RunResult) map[string]int { return r.OCITeardownRuns })
}

// ociRunsTable renders the OCI runtime's runs per pod of one phase (runsOf), by subcommand: the
// median over the rounds of each run name's counts.
func ociRunsTable(w io.Writer, results map[string][]RunResult, a, b, title string, runsOf func(RunResult) map[string]int) {
	seen := map[string]bool{}
	var cols []string
	for _, n := range runNames(results, a, b) {
		for _, r := range results[n] {
			if runsOf(r) == nil {
				continue
			}
			if !seen["\x00"+n] {
				seen["\x00"+n] = true
				cols = append(cols, n)
			}
			for sub := range runsOf(r) {
				seen[sub] = true
			}
		}
	}
	if len(cols) == 0 {
		return
	}
	var subs []string
	for _, sub := range ociSubcommandOrder {
		if seen[sub] {
			subs = append(subs, sub)
			delete(seen, sub)
		}
	}
	var rest []string
	for sub := range seen {
		if !strings.HasPrefix(sub, "\x00") {
			rest = append(rest, sub)
		}
	}
	sort.Strings(rest)
	subs = append(subs, rest...)

	perPod := func(n, sub string) string {
		var v []float64
		for _, r := range results[n] {
			runs := runsOf(r)
			if runs == nil || r.Pods == 0 {
				continue
			}
			c := runs[sub]
			if sub == "" {
				c = 0
				for _, k := range runs {
					c += k
				}
			}
			v = append(v, float64(c)/float64(r.Pods))
		}
		m, ok := median(v)
		if !ok {
			return "–"
		}
		return fmt.Sprintf("%.2f", m)
	}
	fmt.Fprintf(w, "\n### %s\n\n", title)
	fmt.Fprintf(w, "| subcommand | %s |\n|---|%s\n", strings.Join(cols, " | "), strings.Repeat("---|", len(cols)))
	for _, sub := range append(subs, "") {
		label := sub
		if sub == "" {
			label = "**all**"
		}
		cells := make([]string, len(cols))
		for i, n := range cols {
			cells[i] = perPod(n, sub)
		}
		fmt.Fprintf(w, "| %s | %s |\n", label, strings.Join(cells, " | "))
	}
}

// handlerTable renders the throughput phase of every run name side by side when there are more
// than A and B (a second runtime handler), and the like-for-like ratios of each handler.
func handlerTable(w io.Writer, s *samples, results map[string][]RunResult, a, b string) {
	names := runNames(results, a, b)
	if len(names) <= 2 {
		return
	}
	fmt.Fprintf(w, "\n### Per runtime handler (benchclient throughput phase, medians over rounds)\n\n")
	fmt.Fprintf(w, "| | %s |\n|---|%s\n", strings.Join(names, " | "), strings.Repeat("---|", len(names)))
	row := func(label string, cell func(n string) string) {
		cells := make([]string, len(names))
		for i, n := range names {
			cells[i] = cell(n)
		}
		fmt.Fprintf(w, "| %s | %s |\n", label, strings.Join(cells, " | "))
	}
	row("handler", func(n string) string {
		if rs := results[n]; len(rs) > 0 && rs[0].Handler != "" {
			return rs[0].Handler
		}
		return "(default: runc)"
	})
	row("rounds × pods", func(n string) string {
		if rs := results[n]; len(rs) > 0 {
			return fmt.Sprintf("%d × %d", len(rs), rs[0].Pods)
		}
		return "–"
	})
	row("pods/s", func(n string) string {
		if t := medianStart(results[n]); t > 0 {
			return fmt.Sprintf("%.2f", float64(results[n][0].Pods)/t)
		}
		return "–"
	})
	for _, op := range []string{"RunPodSandbox", "CreateContainer", "StartContainer", "pod start (pod + 1 container)"} {
		row(op+" median ms", func(n string) string {
			if d := s.data["throughput: "+op][n]; len(d) > 0 {
				return ms(percentile(d, 50))
			}
			return "–"
		})
	}
	// critest's serial figures, when the run had critest on the other handlers too.
	for _, op := range []string{"RunPodSandbox", "StopPodSandbox", "CreateContainer", "StartContainer"} {
		d := s.data["critest: "+op]
		if len(d[names[2]]) == 0 && (len(names) < 4 || len(d[names[3]]) == 0) {
			continue
		}
		row("critest: "+op+" median ms", func(n string) string {
			if len(d[n]) > 0 {
				return ms(percentile(d[n], 50))
			}
			return "–"
		})
	}
	row("machine CPU ms per pod started", func(n string) string {
		if v, ok := cpuPerPod(results[n], cpuMachine); ok {
			return fmt.Sprintf("%.0f", v)
		}
		return "–"
	})
	row("errors", func(n string) string {
		e := 0
		for _, r := range results[n] {
			e += len(r.Errors)
		}
		return fmt.Sprint(e)
	})

	// like for like: each handler's A / B, and each handler's A against A's default.
	for _, n := range names[2:] {
		suffix, ok := strings.CutPrefix(n, a)
		if !ok {
			continue
		}
		fmt.Fprintf(w, "\n%s", n)
		if _, ok := results[b+suffix]; ok {
			fmt.Fprintf(w, " / %s: %s", b+suffix, handlerRatios(s, results, n, b+suffix))
		}
		fmt.Fprintf(w, "; %s / %s: %s\n", n, a, handlerRatios(s, results, n, a))
	}
}

// handlerRatios are the throughput, RunPodSandbox, StartContainer and machine CPU ratios of two
// run names, x / y (throughput: above 1 is better).
func handlerRatios(s *samples, results map[string][]RunResult, x, y string) string {
	in := targetInputs{s: s, results: results, a: x, b: y}
	var parts []string
	add := func(label string, r float64, ok bool) {
		if ok {
			parts = append(parts, fmt.Sprintf("%s %.2f×", label, r))
		} else {
			parts = append(parts, label+" –")
		}
	}
	r, ok := throughputRatio(in)
	add("throughput", r, ok)
	r, ok = opRatio("throughput: RunPodSandbox", 50)(in)
	add("RunPodSandbox", r, ok)
	r, ok = opRatio("throughput: StartContainer", 50)(in)
	add("StartContainer", r, ok)
	r, ok = machineCPURatio(in)
	add("machine CPU per pod", r, ok)
	if r, ok = opRatio("critest: RunPodSandbox", 50)(in); ok {
		add("critest RunPodSandbox", r, ok)
	}
	return strings.Join(parts, ", ")
}
