// Command benchclient measures what critest -benchmark does not, against one CRI endpoint:
//
//	benchclient run -endpoint unix:///path.sock -name cri-shim -out scale.json [-pid PID]...
//
// (1) pod start throughput: -pods pods with one container each, -parallel at a time, the time until
// all run; (2) -containers-per-pod containers per pod in all (500 by default), then the latency of
// ListContainers, ListPodSandbox, ListContainerStats, ContainerStatus and PodSandboxStatus on that
// node; (3) the RSS and CPU seconds of the given processes (the runtime) over the run, and the RSS of
// the containerd shims of the run's containerd namespace at the node's fullest; then the teardown
// (StopPodSandbox, RemovePodSandbox of every pod, -parallel at a time).
//
//	benchclient report -out bench/results.md -critest NAME=DIR... -scale NAME=FILE... -proc NAME=FILE...
//
// merges critest's JSON results, the run JSON files and the per-phase process samples of bench.sh
// into one Markdown table (median and p95 of every operation per runtime, and their ratio).
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchclient run|report [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runMain(os.Args[2:])
	case "report":
		err = reportMain(os.Args[2:])
	case "proc":
		err = procMain(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchclient:", err)
		os.Exit(1)
	}
}
