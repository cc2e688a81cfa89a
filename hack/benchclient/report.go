package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// critestSet is critest's benchmark JSON (LifecycleBenchmarksResultsSet).
type critestSet struct {
	OperationsNames []string `json:"operationsNames"`
	Datapoints      []struct {
		OperationsDurationsNs []int64 `json:"operationsDurationsNs"`
	} `json:"datapoints"`
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

// samples holds every measurement: op -> runtime -> durations in ns, and the op order.
type samples struct {
	order []string
	data  map[string]map[string][]int64
}

func (s *samples) add(op, runtime string, ds ...int64) {
	if s.data == nil {
		s.data = map[string]map[string][]int64{}
	}
	if s.data[op] == nil {
		s.data[op] = map[string][]int64{}
		s.order = append(s.order, op)
	}
	s.data[op][runtime] = append(s.data[op][runtime], ds...)
}

// critestOpNames renames critest's operations after the CRI calls they make.
var critestOpNames = map[string]string{
	"CreatePod": "RunPodSandbox", "StatusPod": "PodSandboxStatus", "StopPod": "StopPodSandbox",
	"RemovePod": "RemovePodSandbox", "StatusContainer": "ContainerStatus", "StatusImage": "ImageStatus",
}

func loadCritest(s *samples, runtime, dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return err
	}
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var rs critestSet
		if err := json.Unmarshal(b, &rs); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		for i, op := range rs.OperationsNames {
			if n, ok := critestOpNames[op]; ok {
				op = n
			}
			var ds []int64
			for _, dp := range rs.Datapoints {
				if i < len(dp.OperationsDurationsNs) && dp.OperationsDurationsNs[i] > 0 {
					ds = append(ds, dp.OperationsDurationsNs[i])
				}
			}
			s.add("critest: "+op, runtime, ds...)
		}
	}
	return nil
}

// percentile returns the nearest-rank p-th percentile of ds (sorted in place).
func percentile(ds []int64, p int) int64 {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(a, b int) bool { return ds[a] < ds[b] })
	rank := (p*len(ds) + 99) / 100
	if rank < 1 {
		rank = 1
	}
	return ds[rank-1]
}

func ms(ns int64) string { return strconv.FormatFloat(float64(ns)/1e6, 'f', 2, 64) }

func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "–"
	}
	return strconv.FormatFloat(a/b, 'f', 2, 64)
}

func reportMain(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	var critest, runs, phases multiFlag
	fs.Var(&critest, "critest", "RUNTIME=DIR of critest -benchmark JSON (repeatable; rounds are pooled)")
	fs.Var(&runs, "run", "RUNTIME=FILE of a benchclient run result (repeatable)")
	fs.Var(&phases, "phases", "TSV of bench.sh's per-phase process samples")
	header := fs.String("header", "", "Markdown put before the table (machine, versions, load)")
	a := fs.String("a", "cri-shim", "runtime A (the numerator of the ratios)")
	b := fs.String("b", "containerd-CRI", "runtime B")
	out := fs.String("out", "", "also write the report here")
	shared := fs.Bool("shared-containerd", false, "both runtimes ran on one containerd (bench.sh BENCH_SHARED_CONTAINERD=1)")
	fs.Parse(args)

	var s samples
	for _, c := range critest {
		rt, dir, ok := strings.Cut(c, "=")
		if !ok {
			return fmt.Errorf("-critest %q: want RUNTIME=DIR", c)
		}
		if err := loadCritest(&s, rt, dir); err != nil {
			return err
		}
	}
	results := map[string][]RunResult{}
	for _, r := range runs {
		rt, file, ok := strings.Cut(r, "=")
		if !ok {
			return fmt.Errorf("-run %q: want RUNTIME=FILE", r)
		}
		bs, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		var res RunResult
		if err := json.Unmarshal(bs, &res); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		results[rt] = append(results[rt], res)
		ops := make([]string, 0, len(res.Ops))
		for op := range res.Ops {
			ops = append(ops, op)
		}
		sort.Strings(ops)
		for _, op := range ops {
			s.add(op, rt, res.Ops[op]...)
		}
	}

	var w strings.Builder
	if *header != "" {
		h, err := os.ReadFile(*header)
		if err != nil {
			return err
		}
		w.Write(h)
		w.WriteString("\n")
	}
	fmt.Fprintf(&w, "| operation | n | %[1]s median ms | %[1]s p95 | %[1]s p99 | %[2]s median ms | %[2]s p95 | %[2]s p99 | ratio median (%[1]s / %[2]s) | ratio p95 |\n", *a, *b)
	w.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, op := range s.order {
		da, db := s.data[op][*a], s.data[op][*b]
		ma, mb := percentile(da, 50), percentile(db, 50)
		pa, pb := percentile(da, 95), percentile(db, 95)
		fmt.Fprintf(&w, "| %s | %d / %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", op, len(da), len(db),
			ms(ma), ms(pa), ms(percentile(da, 99)), ms(mb), ms(pb), ms(percentile(db, 99)),
			ratio(float64(ma), float64(mb)), ratio(float64(pa), float64(pb)))
	}
	w.WriteString("\n(the \"CPU ms per call\" row is CPU time of the runtime process plus containerd per call, not latency)\n")

	// throughput and resources, per round.
	if len(results) > 0 {
		fmt.Fprintf(&w, "\n### Pod start throughput and resources (benchclient, per round)\n\n")
		w.WriteString("| runtime | round | pods | time to all running s | pods/s | containers running at full | teardown s | runtime RSS at full MiB | containerd RSS at full MiB | shims at full (count, RSS MiB) | errors |\n")
		w.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, rt := range []string{*a, *b} {
			for i, r := range results[rt] {
				rss := "–"
				if p, ok := r.Procs["runtime"]["full"]; ok {
					rss = fmt.Sprintf("%.1f", float64(p.RSSKiB)/1024)
				}
				crss := "–"
				if p, ok := r.Procs["containerd"]["full"]; ok {
					crss = fmt.Sprintf("%.1f", float64(p.RSSKiB)/1024)
				} else if p, ok := r.Procs["runtime"]["full"]; ok && rt == *b {
					crss = fmt.Sprintf("%.1f", float64(p.RSSKiB)/1024)
				}
				fmt.Fprintf(&w, "| %s | %d | %d | %.2f | %.2f | %d | %.2f | %s | %s | %d, %.0f | %d |\n", rt, i+1, r.Pods,
					r.StartSeconds, float64(r.Pods)/r.StartSeconds, r.ContainersRunning, r.TeardownSeconds,
					rss, crss, r.Shims.Count, float64(r.Shims.RSSKiB)/1024, len(r.Errors))
			}
		}
		ta, tb := medianStart(results[*a]), medianStart(results[*b])
		if ta > 0 && tb > 0 {
			fmt.Fprintf(&w, "\nPod start throughput (median over rounds): %s %.2f pods/s, %s %.2f pods/s: ratio %s / %s = **%.2f×**\n",
				*a, float64(results[*a][0].Pods)/ta, *b, float64(results[*b][0].Pods)/tb, *a, *b, tb/ta)
		}
	}
	cpuSplitTable(&w, results, *a, *b)
	ociRunsTables(&w, results, *a, *b)
	handlerTable(&w, &s, results, *a, *b)
	for _, p := range phases {
		if err := phaseTable(&w, p, *shared); err != nil {
			return err
		}
	}
	targets(&w, &s, results, *a, *b, *shared)

	fmt.Print(w.String())
	if *out != "" {
		if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(*out, []byte(w.String()), 0o644)
	}
	return nil
}

// medianStart is the median of the rounds' times to all running (with an even number of rounds,
// the mean of the middle two: with two rounds, not the faster one).
func medianStart(rs []RunResult) float64 {
	var v []float64
	for _, r := range rs {
		v = append(v, r.StartSeconds)
	}
	m, _ := median(v)
	return m
}

// median is the middle of v (the mean of the two middle ones for an even count); false when v is
// empty. It sorts v.
func median(v []float64) (float64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	sort.Float64s(v)
	if n := len(v); n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2, true
	}
	return v[len(v)/2], true
}

// phaseTable sums the CPU seconds each process used while each runtime's phases ran. The file has
// lines "PHASE-RUNTIME<TAB>PHASE<TAB>PROCESS<TAB>CPU-SECONDS-USED<TAB>RSS-KIB-AT-END<TAB>SECONDS".
func phaseTable(w io.Writer, file string, sharedContainerd bool) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	type key struct{ rt, proc string }
	cpu := map[key]float64{}
	rss := map[key]int64{}
	wall := map[string]float64{}
	seenWall := map[string]bool{}
	var keys []key
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Split(sc.Text(), "\t")
		if len(fl) < 6 {
			continue
		}
		k := key{fl[0], fl[2]}
		if _, ok := cpu[k]; !ok {
			keys = append(keys, k)
		}
		c, _ := strconv.ParseFloat(fl[3], 64)
		r, _ := strconv.ParseInt(fl[4], 10, 64)
		secs, _ := strconv.ParseFloat(fl[5], 64)
		cpu[k] += c
		if r > rss[k] {
			rss[k] = r
		}
		pk := fl[0] + "\t" + fl[1]
		if !seenWall[pk] {
			seenWall[pk] = true
			wall[fl[0]] += secs
		}
	}
	if sharedContainerd {
		fmt.Fprintf(w, "\n### CPU seconds by phase (bench.sh; one containerd serves both, so its CPU is attributed by which runtime's phase was running)\n\n")
	} else {
		fmt.Fprintf(w, "\n### CPU seconds by phase (bench.sh; each runtime's own containerd)\n\n")
	}
	fmt.Fprintln(w, "| phases of | process | CPU s used | max RSS at a phase end MiB | wall s of those phases |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, k := range keys {
		fmt.Fprintf(w, "| %s | %s | %.1f | %.1f | %.0f |\n", k.rt, k.proc, cpu[k], float64(rss[k])/1024, wall[k.rt])
	}
	return sc.Err()
}

// cpuSplitTable renders where a pod start's CPU went in the throughput phase (cpusplit.go): ms of
// CPU per pod started, each kind's median over the rounds, and the ratio of the machine totals.
func cpuSplitTable(w io.Writer, results map[string][]RunResult, a, b string) {
	kinds := []struct{ key, title string }{
		{cpuMachine, "machine, all processes"},
		{cpuRuntime, "runtime process (+ the CNI plugins it ran)"},
		{cpuContainerd, "containerd (+ shim start commands)"},
		{cpuShims, "shims (+ the runc runs they reaped)"},
		{cpuContainers, "container processes (runc init + pause / sleep)"},
		{"other", "other (kernel threads, the client, the rest of the machine)"},
	}
	perPod := func(rt, key string) (float64, bool) { return cpuPerPod(results[rt], key) }
	if _, ok := perPod(a, cpuMachine); !ok {
		return
	}
	fmt.Fprintf(w, "\n### Where a pod start's CPU goes (throughput phase; CPU ms per pod started, median over rounds)\n\n")
	fmt.Fprintf(w, "| CPU of | %s | %s |\n|---|---|---|\n", a, b)
	cell := func(rt, key string) string {
		if v, ok := perPod(rt, key); ok {
			return fmt.Sprintf("%.0f", v)
		}
		return "–"
	}
	for _, k := range kinds {
		if k.key == cpuContainerd {
			fmt.Fprintf(w, "| %s | %s | (in the runtime) |\n", k.title, cell(a, k.key))
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", k.title, cell(a, k.key), cell(b, k.key))
	}
	ma, okA := perPod(a, cpuMachine)
	mb, okB := perPod(b, cpuMachine)
	if okA && okB && ma > 0 {
		fmt.Fprintf(w, "\nMachine CPU per pod started: %s / %s = **%.2f×** (with %d pods starting at a time the machine's CPUs are saturated: this bounds the throughput)\n", a, b, ma/mb, results[a][0].Parallel)
	}
}

// cpuPerPod is the CPU ms per pod started of one kind of process (or "other") in the throughput
// phase, the median over the rounds; false when no round sampled it.
func cpuPerPod(rs []RunResult, key string) (float64, bool) {
	var v []float64
	for _, r := range rs {
		if r.StartCPU == nil || r.Pods == 0 {
			continue
		}
		x, ok := r.StartCPU[key]
		if key == "other" {
			x, ok = r.StartCPU.other(), true
		}
		if ok {
			v = append(v, x*1000/float64(r.Pods))
		}
	}
	return median(v)
}
