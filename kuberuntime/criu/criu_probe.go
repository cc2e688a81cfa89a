package criu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// The probe of the host's CRIU, once per daemon (started with the daemon, StartCRIUProbe): `criu
// check`, then a real dump and restore of a small process of the probe's own. `criu check` alone
// says "Looks good" on hosts where every dump hangs: CRIU 4.1 stops a dumped task on its way out
// of the parasite code with a hardware breakpoint, and in a VM whose hypervisor does not virtualize
// the debug registers that breakpoint never fires (CRIU 4.2 checks them first).

// criuInfo is what the probe of the host's CRIU found.
type CriuInfo struct {
	Path    string
	Version string
	// Missing: there is no criu at all (hack/setup.sh installs one).
	Missing bool
	// Err says why CRIU cannot checkpoint on this host; nil when it can.
	Err error
	// Took is how long the probe took.
	Took time.Duration
}

var (
	criuOnce   sync.Once
	criuResult CriuInfo
	// checkCRIU is the probe's result, probing on first use (tests replace it).
	CheckCRIU = func() CriuInfo {
		criuOnce.Do(func() { criuResult = ProbeCRIU(context.Background()) })
		return criuResult
	}
)

// StartCRIUProbe probes the host's CRIU in the background, so that the daemon logs at start
// whether checkpoint/restore works here, and why not; the first checkpoint or restore request
// waits for the probe if it is still running. stop ends a probe still running (its processes
// killed) and waits for it.
func StartCRIUProbe(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		criuOnce.Do(func() { criuResult = ProbeCRIU(ctx) })
	}()
	return func() { cancel(); <-done }
}

// DefaultCRIUBinary is where hack/setup.sh installs a CRIU that works on current kernels, next to
// the runc it builds (DefaultRuncBinary); the managed containerd puts that directory first on its
// shims' PATH, where runc looks for criu.
const DefaultCRIUBinary = "/var/cache/cri-shim/bin/criu"

// findCRIU is the criu runc runs: DefaultCRIUBinary when it is there, else criu on PATH.
func findCRIU() (string, error) {
	if st, err := os.Stat(DefaultCRIUBinary); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
		return DefaultCRIUBinary, nil
	}
	return exec.LookPath("criu")
}

// criuProbeStepTimeout bounds each step of the probe: a dump or restore of a sleeping process
// takes well under a second; one that takes this long hangs.
var criuProbeStepTimeout = 20 * time.Second

// criuNoBreakpoints is the environment that makes CRIU go without hardware breakpoints:
// FI_NO_BREAKPOINTS, one of CRIU's non-fatal fault injections (its own tests use it; CRIU 4.2 does
// the same by itself when its breakpoint check fails).
const criuNoBreakpoints = "CRIU_FAULT=130"

// probeCRIU finds criu where runc looks for it, runs `criu check`, and dumps and restores a
// process of its own with it.
func ProbeCRIU(ctx context.Context) CriuInfo {
	start := time.Now()
	path, err := findCRIU()
	if err != nil {
		info := CriuInfo{Missing: true, Err: fmt.Errorf("criu is not installed (neither %s nor on PATH; run hack/setup.sh)", DefaultCRIUBinary)}
		logrus.WithError(info.Err).Warn("CRIU probe: checkpoint/restore will answer FailedPrecondition")
		return info
	}
	info := CriuInfo{Path: path}
	info.Err = probeCRIUAt(ctx, &info)
	info.Took = time.Since(start)
	fields := logrus.Fields{"criu": path, "version": info.Version, "took": info.Took.Round(time.Millisecond)}
	if info.Err != nil {
		logrus.WithFields(fields).WithError(info.Err).Warn("CRIU probe: checkpoint/restore does not work on this host and will answer FailedPrecondition")
	} else {
		logrus.WithFields(fields).Info("CRIU probe: a test process was dumped and restored")
	}
	return info
}

func probeCRIUAt(ctx context.Context, info *CriuInfo) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(cctx, info.Path, "--version").CombinedOutput(); err == nil {
		info.Version = parseCRIUVersion(string(out))
	}
	out, err := exec.CommandContext(cctx, info.Path, "check").CombinedOutput()
	if err != nil {
		return fmt.Errorf("criu %s check failed: %s", info.Version, CriuErrors(string(out), err))
	}
	err = criuDumpRestore(ctx, info.Path, nil)
	var hang *criuHangError
	if err == nil || !errors.As(err, &hang) || os.Getenv("CRIU_FAULT") != "" {
		return err
	}
	// A hang: is it the hardware breakpoints? Then say so, and how to do without them.
	if criuDumpRestore(ctx, info.Path, []string{criuNoBreakpoints}) != nil {
		return err
	}
	fix := "use CRIU 4.2 or later, or give CRIU " + criuNoBreakpoints + " in its environment (runc's, so containerd's)"
	if info.Path == DefaultCRIUBinary {
		fix = "run hack/setup.sh again: its " + DefaultCRIUBinary + " sets " + criuNoBreakpoints
	}
	return fmt.Errorf("%w; with %s (no hardware breakpoints) it works: the hardware breakpoints of this host do not fire "+
		"(a VM whose hypervisor does not virtualize the debug registers), which CRIU %s does not check; %s",
		err, criuNoBreakpoints, info.Version, fix)
}

// probeDirPrefix names the probe's work dirs, followed by the pid of the process probing.
const probeDirPrefix = "cri-shim-criu-probe-"

// staleUnownedProbeDir is the age past which a probe dir that names no pid (an older layout) is
// taken for a leftover.
const staleUnownedProbeDir = time.Hour

// sweepProbeDirs removes the probe dirs under tmp left by processes that are gone (a daemon killed
// while it probed): the dir names its owner's pid, and a live owner's dir is left alone.
func sweepProbeDirs(tmp string) {
	dirs, _ := filepath.Glob(filepath.Join(tmp, probeDirPrefix+"*"))
	for _, d := range dirs {
		// The temp dir is every local user's: only a dir of this user's is the probe's.
		st, err := os.Lstat(d)
		if err != nil || !st.IsDir() || st.Sys().(*syscall.Stat_t).Uid != uint32(os.Geteuid()) {
			continue
		}
		owner, _, named := strings.Cut(strings.TrimPrefix(filepath.Base(d), probeDirPrefix), "-")
		pid, err := strconv.Atoi(owner)
		switch {
		case named && err == nil && pid > 0:
			if unix.Kill(pid, 0) != unix.ESRCH {
				continue // alive (or not ours to signal)
			}
		default:
			if time.Since(st.ModTime()) < staleUnownedProbeDir {
				continue
			}
		}
		if err := os.RemoveAll(d); err == nil {
			logrus.WithField("dir", d).Info("CRIU probe: removed the work dir of a probe that did not finish")
		}
	}
}

// criuHangError is a probe step that did not end in time.
type criuHangError struct{ msg string }

func (e *criuHangError) Error() string { return e.msg }

// criuDumpRestore dumps a sleeping process (its own session and PID namespace, as a container's
// init has) with criu and restores it, with env added to criu's environment. The restored process
// is the probe's child (--restore-sibling, as runc restores): it is killed and reaped.
func criuDumpRestore(ctx context.Context, criu string, env []string) error {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		return fmt.Errorf("no sleep binary for a test process to dump: %w", err)
	}
	sweepProbeDirs(os.TempDir())
	dir, err := os.MkdirTemp("", probeDirPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	images := filepath.Join(dir, "images")
	if err := os.Mkdir(images, 0o700); err != nil {
		return err
	}
	// It ends by itself in a minute should anything below fail to end it.
	p := exec.Command(sleep, "60")
	p.Dir = "/"
	p.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Cloneflags: syscall.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL}
	if err := p.Start(); err != nil {
		return fmt.Errorf("start a test process to dump: %w", err)
	}
	err = runCRIUStep(ctx, criu, env, dir, "dump.log", "dump", "-t", strconv.Itoa(p.Process.Pid),
		"-D", images, "-W", dir, "-o", "dump.log", "-v4")
	// A dump kills the process (a failed or hung one leaves it to us).
	_ = p.Process.Kill()
	_ = p.Wait()
	if err != nil {
		return err
	}
	pidfile := filepath.Join(dir, "restored.pid")
	err = runCRIUStep(ctx, criu, env, dir, "restore.log", "restore", "-D", images, "-W", dir, "-o", "restore.log", "-v4",
		"-d", "--restore-sibling", "--pidfile", pidfile)
	// CRIU writes the pid file before the restored process runs: it is there (and the probe's
	// child) even when the restore failed or hung half-way.
	alive := false
	if b, rerr := os.ReadFile(pidfile); rerr == nil {
		if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 {
			var ws unix.WaitStatus
			// Our child and not yet exited: wait4 with WNOHANG answers 0.
			if got, werr := unix.Wait4(pid, &ws, unix.WNOHANG, nil); werr == nil {
				alive = got == 0
				if alive {
					_ = unix.Kill(pid, unix.SIGKILL)
					_, _ = unix.Wait4(pid, &ws, 0, nil)
				}
			}
		}
	}
	if err != nil {
		return err
	}
	if !alive {
		return errors.New("criu restore of a test process succeeded but the process is not running")
	}
	return nil
}

// runCRIUStep runs criu with args (bounded by criuProbeStepTimeout) and turns its failure into an
// error with the Error lines of its log (dir/log).
func runCRIUStep(ctx context.Context, criu string, env []string, dir, log string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, criuProbeStepTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, criu, args...)
	cmd.Env = append(os.Environ(), env...)
	// Its own process group, all of it killed on timeout; killed too if the daemon dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return unix.Kill(-cmd.Process.Pid, unix.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err == nil {
		return nil
	}
	b, _ := os.ReadFile(filepath.Join(dir, log))
	if ctx.Err() == context.Canceled {
		return fmt.Errorf("criu %s of a test process: %w", args[0], ctx.Err())
	}
	if ctx.Err() != nil {
		return &criuHangError{fmt.Sprintf("criu %s of a test process did not end within %v (%s)", args[0], criuProbeStepTimeout, CriuLogSummary(string(b)))}
	}
	if len(b) == 0 {
		b = out
	}
	return fmt.Errorf("criu %s of a test process failed: %s", args[0], CriuErrors(string(b), err))
}

// criuUsable is nil when checkpoints can be taken, else a FailedPrecondition saying why not.
func CriuUsable() (CriuInfo, error) {
	info := CheckCRIU()
	if info.Err != nil {
		return info, fmt.Errorf("checkpoint/restore needs a working CRIU on the host: %v: %w", info.Err, errdefs.ErrFailedPrecondition)
	}
	return info, nil
}

// parseCRIUVersion reads "Version: 3.17.1" from `criu --version`.
func parseCRIUVersion(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "Version:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// criuBenignErrors are Error lines that CRIU logs and goes on: never the reason it failed. CRIU
// raises its open-files limit to fs.nr_open, which a root without CAP_SYS_RESOURCE whose hard
// limit is lower cannot; it then works within the limit it has.
var criuBenignErrors = []string{"rlimit: Can't setup RLIMIT_NOFILE for self"}

// criuErrors are the Error lines of CRIU's output or log (the benign ones left out); without any,
// its last line.
func CriuErrors(out string, err error) string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "Error") && !strings.Contains(l, " Error ") {
			continue
		}
		benign := false
		for _, b := range criuBenignErrors {
			benign = benign || strings.Contains(l, b)
		}
		if !benign {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		if last := lastLine(out); last != "" {
			return last
		}
		return err.Error()
	}
	return strings.Join(lines, "; ")
}

// criuLogSummary is what a log of CRIU's that ended nowhere says: its Error lines, else where it
// stopped.
func CriuLogSummary(log string) string {
	if msg := CriuErrors(log, errors.New("")); msg != lastLine(log) {
		return msg
	}
	if last := lastLine(log); last != "" {
		return "its log ends with: " + last
	}
	return "no log"
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
