package kuberuntime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// restoreTimeout bounds a restore (StartContainer of a container created from a checkpoint) whose
// request has no deadline: CRIU can hang in a restore (a crafted image can make its restorer
// wait for ever), and runc, the shim and StartContainer with it. A variable for the tests.
var restoreTimeout = DefaultCheckpointTimeout

// restoreKillGrace is how long runc has to answer once its CRIU is killed: it sees CRIU's end at
// once, and then cleans up (it kills what CRIU restored, in the container's cgroup).
const restoreKillGrace = 10 * time.Second

// boundRestore runs call, a step of a restore (the task's create or start: the shim runs runc
// restore, which runs CRIU), until ctx ends or, when ctx has no deadline, until restoreTimeout.
// The call itself runs without ctx's deadline: at a deadline the shim would kill runc only, and
// the CRIU under it would be left running for ever (reparented to the shim). At the bound the
// CRIU of the restore of id is killed instead: runc then fails with CRIU's end and cleans up,
// and the call returns its error (with the bound's).
func boundRestore(ctx context.Context, id string, call func(ctx context.Context) error) error {
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- call(cctx) }()
	var bound <-chan time.Time
	if _, ok := ctx.Deadline(); !ok {
		timer := time.NewTimer(restoreTimeout)
		defer timer.Stop()
		bound = timer.C
	}
	var cause error
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		cause = fmt.Errorf("restore did not end by the request's deadline: %w", ctx.Err())
	case <-bound:
		cause = fmt.Errorf("restore did not end within %v: %w", restoreTimeout, context.DeadlineExceeded)
	}
	killed := killRestoreCRIU(id)
	logrus.WithFields(logrus.Fields{"container": id, "criu": killed}).WithError(cause).Warn("restore past its deadline: killed its CRIU")
	if len(killed) == 0 {
		cause = fmt.Errorf("%w (no CRIU of it found)", cause)
	} else {
		cause = fmt.Errorf("%w (its CRIU, pid %v, killed)", cause, killed)
	}
	grace := time.NewTimer(restoreKillGrace)
	defer grace.Stop()
	select {
	case err := <-done:
		if err == nil {
			// Ended in the meantime: the restore is there after all, and kept.
			return nil
		}
		return fmt.Errorf("%w: %w", cause, err)
	case <-grace.C:
		// runc does not answer even so: the call is given up (the shim kills runc); the
		// caller's clean-up deletes the task.
		cancel()
		return cause
	}
}

// killRestoreCRIU kills the CRIU processes under the runc restoring the container id (a runc
// whose command line has the word restore and ends with the id, as the shim runs it) and returns
// their pids.
func killRestoreCRIU(id string) []int {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	var runcs []int
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		if ppid := parentPid(pid); ppid > 0 {
			children[ppid] = append(children[ppid], pid)
		}
		b, err := os.ReadFile("/proc/" + p.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		for _, a := range args {
			if a == "restore" && args[len(args)-1] == id {
				runcs = append(runcs, pid)
				break
			}
		}
	}
	var killed []int
	// Every CRIU under the runc: CRIU's own children (the tasks it restores, before they are
	// restored) are CRIU still.
	for queue := runcs; len(queue) > 0; {
		pid := queue[0]
		queue = append(queue[1:], children[pid]...)
		if pid != 0 && !slices.Contains(runcs, pid) && isCRIU(pid) {
			if err := unix.Kill(pid, unix.SIGKILL); err == nil || errors.Is(err, unix.ESRCH) {
				killed = append(killed, pid)
			}
		}
	}
	return killed
}

// parentPid is the parent of pid, from /proc/<pid>/stat (0: unknown).
func parentPid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces and parentheses: the fields after it.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}
