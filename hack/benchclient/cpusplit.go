package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Where a pod start's CPU goes: the machine's busy CPU time over the throughput phase, and the
// part of it used by each kind of process. Short-lived processes are counted through the process
// that reaped them (the kernel adds a reaped child's CPU to its parent's): the CNI plugins through
// the runtime that ran them, runc through the shim, `containerd-shim-runc-v2 start` through
// containerd; the containers' processes carry the CPU of their runc init before the exec.

// CPUSplit is CPU seconds by kind of process; "machine" is everything the machine's CPUs did.
type CPUSplit map[string]float64

// Kinds of process in a CPUSplit.
const (
	cpuMachine    = "machine"
	cpuRuntime    = "runtime"    // the endpoint's process and the processes it ran
	cpuContainerd = "containerd" // when it is not the endpoint itself
	cpuShims      = "shims"      // the namespace's shims and the runc runs they reaped
	cpuContainers = "containers" // the shims' children: containers' processes
)

// machineBusySeconds is the CPU time the machine's CPUs spent busy since boot (user, nice,
// system, irq, softirq of /proc/stat's cpu line; idle, iowait and steal are not).
func machineBusySeconds() (float64, error) {
	return machineSeconds(1, 2, 3, 6, 7) // user nice system irq softirq
}

// machineStealSeconds is the time the hypervisor ran something else while the machine's CPUs
// had work (steal of /proc/stat's cpu line).
func machineStealSeconds() (float64, error) {
	return machineSeconds(8)
}

// machineSeconds sums the given fields of /proc/stat's cpu line, in seconds.
func machineSeconds(fieldIdx ...int) (float64, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 9 || fields[0] != "cpu" {
			continue
		}
		var ticks int64
		for _, i := range fieldIdx {
			n, _ := strconv.ParseInt(fields[i], 10, 64)
			ticks += n
		}
		return float64(ticks) / clockTicks, nil
	}
	return 0, fmt.Errorf("/proc/stat: no cpu line")
}

// procStat is one process's parent and CPU seconds, its own and its reaped children's.
type procStat struct {
	ppid       int
	cpu, child float64
}

func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	n := func(k int) int64 { v, _ := strconv.ParseInt(f[k], 10, 64); return v }
	// f[0] is field 3 (state): ppid is field 4, utime 14, stime 15, cutime 16, cstime 17.
	return procStat{ppid: int(n(1)), cpu: float64(n(11)+n(12)) / clockTicks, child: float64(n(13)+n(14)) / clockTicks}, nil
}

// sampleCPUSplit reads the machine's busy time and the CPU of the endpoint's processes (runtime,
// and containerd when apart), of the shims of namespace ns of the containerd at address, and of
// the shims' children.
func sampleCPUSplit(runtimePID, containerdPID int, address, ns string) (CPUSplit, error) {
	busy, err := machineBusySeconds()
	if err != nil {
		return nil, err
	}
	s := CPUSplit{cpuMachine: busy}
	own := func(pid int) float64 {
		p, err := readProcStat(pid)
		if err != nil {
			return 0
		}
		return p.cpu + p.child
	}
	if runtimePID > 0 {
		s[cpuRuntime] = own(runtimePID)
	}
	if containerdPID > 0 && containerdPID != runtimePID {
		s[cpuContainerd] = own(containerdPID)
	}
	if address == "" || ns == "" {
		return s, nil
	}
	shims := map[int]bool{}
	for _, pid := range shimPIDs(address, ns) {
		shims[pid] = true
		s[cpuShims] += own(pid)
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || shims[pid] {
			continue
		}
		if p, err := readProcStat(pid); err == nil && shims[p.ppid] {
			s[cpuContainers] += p.cpu + p.child
		}
	}
	return s, nil
}

// sub is the CPU used between two samples, per kind; kinds absent from either are left out.
func (s CPUSplit) sub(before CPUSplit) CPUSplit {
	d := CPUSplit{}
	for k, v := range s {
		if b, ok := before[k]; ok || k == cpuShims || k == cpuContainers {
			d[k] = v - b // shims and containers of the phase are new: none before is 0
		}
	}
	return d
}

// other is the machine's CPU not in any kind counted (kernel threads, the client, other
// processes of the machine).
func (s CPUSplit) other() float64 {
	o := s[cpuMachine]
	for k, v := range s {
		if k != cpuMachine {
			o -= v
		}
	}
	return o
}
