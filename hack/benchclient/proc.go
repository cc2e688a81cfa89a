package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat's utime and stime (100 on Linux everywhere).
const clockTicks = 100

// ProcSample is one process's CPU time and memory at one moment.
type ProcSample struct {
	PID        int     `json:"pid"`
	CPUSeconds float64 `json:"cpu_seconds"`
	RSSKiB     int64   `json:"rss_kib"`
	HWMKiB     int64   `json:"hwm_kib"` // peak RSS since the process started
}

// sampleProc reads /proc/PID/stat and /proc/PID/status.
func sampleProc(pid int) (ProcSample, error) {
	s := ProcSample{PID: pid}
	p, err := readProcStat(pid) // cpusplit.go
	if err != nil {
		return s, err
	}
	s.CPUSeconds = p.cpu
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			s.RSSKiB = n
		case "VmHWM":
			s.HWMKiB = n
		}
	}
	return s, nil
}

// ShimSample sums the containerd shims serving one containerd namespace of one containerd.
type ShimSample struct {
	Count      int     `json:"count"`
	RSSKiB     int64   `json:"rss_kib"`
	CPUSeconds float64 `json:"cpu_seconds"`
}

// sampleShims finds the containerd-shim-runc-v2 processes started with -namespace ns and
// -address address (so other containerds on the machine are not counted).
func sampleShims(address, ns string) ShimSample {
	var out ShimSample
	for _, pid := range shimPIDs(address, ns) {
		s, err := sampleProc(pid)
		if err != nil {
			continue
		}
		out.Count++
		out.RSSKiB += s.RSSKiB
		out.CPUSeconds += s.CPUSeconds
	}
	return out
}

// shimPIDs are the pids of the shims of namespace ns of the containerd at address.
func shimPIDs(address, ns string) []int {
	var pids []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		cmd, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil || !bytes.Contains(cmd, []byte("containerd-shim")) {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00")
		if argValue(args, "-namespace") != ns || argValue(args, "-address") != address {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(d)); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

func argValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// procMain prints one JSON sample per -pid (for bench.sh's per-phase accounting).
func procMain(args []string) error {
	fs := flag.NewFlagSet("proc", flag.ExitOnError)
	var pids intList
	fs.Var(&pids, "pid", "process to sample (repeatable)")
	fs.Parse(args)
	out := map[string]ProcSample{}
	for _, p := range pids {
		s, err := sampleProc(p)
		if err != nil {
			return err
		}
		out[strconv.Itoa(p)] = s
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

type intList []int

func (l *intList) String() string { return fmt.Sprint(*l) }
func (l *intList) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return err
	}
	*l = append(*l, n)
	return nil
}
