package main

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestOCISubcommand(t *testing.T) {
	for line, want := range map[string]string{
		// as containerd-shim-runc-v2 runs runc (go-runc) and crun
		"--root /run/containerd/runc/k8s.io --log /run/x/log.json --log-format json create --bundle /run/x/b --pid-file /run/x/init.pid abc": "create",
		"--root /run/containerd/runc/k8s.io --log /run/x/log.json --log-format json --systemd-cgroup start abc":                              "start",
		"--root=/run/r --log-format=json kill abc 9":   "kill",
		"--root /run/r delete --force abc":             "delete",
		"--cgroup-manager cgroupfs --root /r state ab": "state",
		"features":  "features",
		"--version": "(none)",
		"":          "(none)",
	} {
		if got := ociSubcommand(line); got != want {
			t.Errorf("%q: %q, want %q", line, got, want)
		}
	}
}

// Only the runs logged after the offset count: the phase's, not the ones before it.
func TestCountOCIRunsFromOffset(t *testing.T) {
	p := filepath.Join(t.TempDir(), "runc.log")
	if n, err := ociLogSize(p); err != nil || n != 0 {
		t.Fatalf("no log yet: %d %v", n, err)
	}
	before := "--root /r create --bundle /b x\n--root /r start x\n"
	if err := os.WriteFile(p, []byte(before), 0o644); err != nil {
		t.Fatal(err)
	}
	off, err := ociLogSize(p)
	if err != nil || off != int64(len(before)) {
		t.Fatalf("%d %v", off, err)
	}
	f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("--root /r create --bundle /b y\n--root /r start y\n--root /r state y\n--root /r start z\n")
	f.Close()
	got, err := countOCIRuns(p, off)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"create": 1, "start": 2, "state": 1}; !reflect.DeepEqual(got, want) {
		t.Fatalf("%v, want %v", got, want)
	}
}

// The report counts the OCI runtime's runs per pod of every run name, and gives a second handler
// its own column with the like-for-like ratios.
func TestReportOCIRunsAndHandlerColumns(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	run := func(secs float64, cpu float64, handler string, runs string, rsMs int) string {
		return fmt.Sprintf(`{"pods":10,"parallel":10,"start_seconds":%g,"handler":%q,"start_cpu":{"machine":%g},
			"ops":{"throughput: RunPodSandbox":[%d000000]},"oci_runs":%s}`, secs, handler, cpu, rsMs, runs)
	}
	// A is named after B alphabetically: its handlers' columns still come first.
	args := []string{"-a", "Z", "-b", "B", "-out", filepath.Join(dir, "r.md"),
		"-run", "Z=" + write("a1", run(2, 3, "", `{"create":20,"start":20,"state":5},"oci_teardown_runs":{"kill":30}`, 100)),
		"-run", "Z=" + write("a2", run(2, 3, "", `{"create":20,"start":20,"state":15}`, 100)),
		"-run", "B=" + write("b", run(4, 6, "", `{"create":20,"start":20,"state":40,"delete":1},"oci_teardown_runs":{"kill":20}`, 200)),
		"-run", "Z+crun=" + write("ac", run(1, 2, "crun", `{"create":20,"start":20}`, 50)),
		"-run", "B+crun=" + write("bc", run(4, 4, "crun", `{"create":20,"start":20,"state":30}`, 100)),
	}
	critest := func(name string, runMs int) string {
		d := filepath.Join(dir, name)
		os.MkdirAll(d, 0o755)
		write(name+"/pod.json", fmt.Sprintf(`{"operationsNames":["CreatePod"],"datapoints":[{"operationsDurationsNs":[%d000000]}]}`, runMs))
		return d
	}
	args = append(args, "-critest", "Z="+critest("cz", 40), "-critest", "B="+critest("cb", 80),
		"-critest", "Z+crun="+critest("czc", 20), "-critest", "B+crun="+critest("cbc", 80))
	if err := reportMain(args); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "r.md"))
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, want := range []string{
		"| subcommand | Z | B | Z+crun | B+crun |",
		"| create | 2.00 | 2.00 | 2.00 | 2.00 |",
		"| state | 1.00 | 4.00 | 0.00 | 3.00 |", // A: the median of 0.5 and 1.5 per pod
		"| delete | 0.00 | 0.10 | 0.00 | 0.00 |",
		"| **all** | 5.00 | 8.10 | 4.00 | 7.00 |",
		"### OCI runtime runs per pod torn down",
		"| subcommand | Z | B |\n|---|---|---|\n| kill | 3.00 | 2.00 |", // only the runs that counted it have a column
		"| | Z | B | Z+crun | B+crun |",
		"| handler | (default: runc) | (default: runc) | crun | crun |",
		"| pods/s | 5.00 | 2.50 | 10.00 | 2.50 |",
		"| RunPodSandbox median ms | 100.00 | 200.00 | 50.00 | 100.00 |",
		"| machine CPU ms per pod started | 300 | 600 | 200 | 400 |",
		"| critest: RunPodSandbox median ms | 40.00 | 80.00 | 20.00 | 80.00 |",
		"Z+crun / B+crun: throughput 4.00×, RunPodSandbox 0.50×, StartContainer –, machine CPU per pod 0.50×, critest RunPodSandbox 0.25×; Z+crun / Z: throughput 2.00×, RunPodSandbox 0.50×, StartContainer –, machine CPU per pod 0.67×, critest RunPodSandbox 0.50×",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
}
