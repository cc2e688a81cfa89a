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
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

// A dump log of CRIU 4.1.1 run by a root without CAP_SYS_RESOURCE whose open-files limit is 20000
// soft and hard, hung where the hardware breakpoint did not fire.
const hungDumpLog = `(00.000000) Version: 4.1.1 (gitid 0)
(00.306548) Error (criu/util.c:1533): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted
(00.342045) Waiting for 22572 to trap
(00.342052) Daemon 22572 exited trapping
(00.342063) Sent msg to daemon 3 0 0
pie: 22572: 22572: new_sp=0x7ff548947348 ip 0x7ff548a82503
`

func TestCRIUErrorsLeaveOutBenignOnes(t *testing.T) {
	// The rlimit line is all the Error there is in a hung dump's log: not its reason.
	if got := CriuErrors(hungDumpLog, errors.New("exit status 1")); strings.Contains(got, "rlimit") || got != "pie: 22572: 22572: new_sp=0x7ff548947348 ip 0x7ff548a82503" {
		t.Errorf("hung dump: %q", got)
	}
	if got := CriuLogSummary(hungDumpLog); got != "its log ends with: pie: 22572: 22572: new_sp=0x7ff548947348 ip 0x7ff548a82503" {
		t.Errorf("summary of a hung dump: %q", got)
	}
	failed := hungDumpLog + "(00.4) Error (criu/cr-dump.c:2111): Dumping FAILED.\n(00.5) Unlock network\n"
	if got := CriuLogSummary(failed); got != "(00.4) Error (criu/cr-dump.c:2111): Dumping FAILED." {
		t.Errorf("summary of a failed dump: %q", got)
	}
	if got := CriuLogSummary(""); got != "no log" {
		t.Errorf("summary of no log: %q", got)
	}
}

// fakeCRIU writes a criu stand-in: --version and check answer as CRIU does (check runs checkBody),
// dump and restore run dumpBody and restoreBody with $dir (-W) and $log (-o) set.
func fakeCRIU(t *testing.T, checkBody, dumpBody, restoreBody string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "criu")
	script := `#!/bin/sh
cmd=$1; shift
while [ $# -gt 0 ]; do case $1 in -W) dir=$2; shift;; -o) log=$2; shift;; esac; shift; done
case $cmd in
--version) echo "Version: 4.1.1"; exit 0;;
check) ` + checkBody + `;;
dump) ` + dumpBody + `;;
restore) ` + restoreBody + `;;
esac
exit 3
`
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// children lists the processes whose parent is this one.
func children(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "PPid:"); ok && strings.TrimSpace(v) == strconv.Itoa(os.Getpid()) {
				cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
				out = append(out, e.Name()+" "+strings.ReplaceAll(string(cmd), "\x00", " "))
			}
		}
	}
	return out
}

// TestCRIUProbeFailures runs the probe against CRIU stand-ins: a failing check, a dump that fails,
// a dump that hangs. Each ends with CRIU's own words (not the benign rlimit error), a hang within
// the step's bound, and nothing left running.
func TestCRIUProbeFailures(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the probe's test process has a PID namespace of its own")
	}
	saved := criuProbeStepTimeout
	t.Cleanup(func() { criuProbeStepTimeout = saved })
	criuProbeStepTimeout = time.Second
	t.Setenv("CRIU_FAULT", "")
	os.Unsetenv("CRIU_FAULT")
	const rlimit = `echo "(00.3) Error (criu/util.c:1533): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted" >> "$dir/$log"; `
	for name, tc := range map[string]struct {
		criu string
		want string
		hang bool
	}{
		"check fails": {
			criu: fakeCRIU(t, `echo "Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds"; exit 1`, "exit 0", "exit 0"),
			want: "criu 4.1.1 check failed: Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds",
		},
		"dump fails": {
			criu: fakeCRIU(t, `echo "Looks good."; exit 0`,
				rlimit+`echo "(00.4) Error (criu/cr-dump.c:1664): A session leader of 1(1) is outside of its pid namespace" >> "$dir/$log"; exit 1`, "exit 0"),
			want: "criu dump of a test process failed: (00.4) Error (criu/cr-dump.c:1664): A session leader of 1(1) is outside of its pid namespace",
		},
		// Hangs with breakpoints, and without them dumps but restores nothing: no breakpoint
		// diagnosis, the hang is the reason.
		"dump hangs": {
			criu: fakeCRIU(t, `echo "Looks good."; exit 0`,
				rlimit+`[ "$CRIU_FAULT" = 130 ] && exit 0; echo "(00.34) Waiting for 7 to trap" >> "$dir/$log"; exec sleep 600`, "exit 0"),
			want: "criu dump of a test process did not end within 1s (its log ends with: (00.34) Waiting for 7 to trap)",
			hang: true,
		},
		"restore hangs": {
			criu: fakeCRIU(t, `echo "Looks good."; exit 0`, "exit 0", `echo "(00.2) pie: 1: seccomp: mode 0 on tid 1" >> "$dir/$log"; sleep 600`),
			want: "criu restore of a test process did not end within 1s (its log ends with: (00.2) pie: 1: seccomp: mode 0 on tid 1)",
			hang: true,
		},
		"restores nothing": {
			criu: fakeCRIU(t, `echo "Looks good."; exit 0`, "exit 0", "exit 0"),
			want: "criu restore of a test process succeeded but the process is not running",
		},
	} {
		t.Run(name, func(t *testing.T) {
			t0 := time.Now()
			info := CriuInfo{Path: tc.criu}
			err := probeCRIUAt(context.Background(), &info)
			took := time.Since(t0)
			t.Logf("%v after %v", err, took)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("probe: %v\nwant:  %s", err, tc.want)
			}
			var hang *criuHangError
			if errors.As(err, &hang) != tc.hang {
				t.Errorf("a hang: %v, want %v", !tc.hang, tc.hang)
			}
			if took > 10*time.Second {
				t.Errorf("the probe took %v", took)
			}
			if c := children(t); len(c) != 0 {
				t.Errorf("left running: %v", c)
			}
		})
	}
}

// The output of Debian's CRIU 3.17.1 on a 6.18 kernel.
const criuCheckOutput = `Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds
Error (criu/vdso.c:613): vdso: Failed to fill self vdso symtable
Error (criu/kerndat.c:1615): kerndat_vdso_fill_symtable failed when initializing kerndat.
Error (criu/crtools.c:260): Could not initialize kernel features detection.
`

func TestCRIUOutput(t *testing.T) {
	if v := parseCRIUVersion("Version: 3.17.1\n"); v != "3.17.1" {
		t.Errorf("version %q", v)
	}
	if v := parseCRIUVersion("Version: 4.1\nGitID: v4.1\n"); v != "4.1" {
		t.Errorf("version %q", v)
	}
	got := CriuErrors("Warn (criu/x.c:1): something\n"+criuCheckOutput, errors.New("exit status 1"))
	if !strings.HasPrefix(got, "Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds; ") || strings.Contains(got, "Warn") {
		t.Errorf("errors %q", got)
	}
	if got := CriuErrors("Looks good.\n", errors.New("exit status 1")); got != "Looks good." {
		t.Errorf("no error lines: %q", got)
	}
	if got := CriuErrors("", errors.New("exit status 1")); got != "exit status 1" {
		t.Errorf("no output: %q", got)
	}
}

func TestCRIUUsable(t *testing.T) {
	saved := CheckCRIU
	t.Cleanup(func() { CheckCRIU = saved })
	CheckCRIU = func() CriuInfo {
		return CriuInfo{Path: "/usr/sbin/criu", Err: errors.New("criu 3.17.1 check failed: vdso")}
	}
	if _, err := CriuUsable(); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "vdso") {
		t.Fatalf("broken CRIU: %v", err)
	}
	CheckCRIU = func() CriuInfo { return CriuInfo{Path: "/usr/sbin/criu", Version: "4.1"} }
	if info, err := CriuUsable(); err != nil || info.Version != "4.1" {
		t.Fatalf("working CRIU: %+v %v", info, err)
	}
}

// A probe's work dir left by a process that is gone is removed; a live process's, and a recent
// dir of the older layout (no pid), are left.
func TestSweepProbeDirs(t *testing.T) {
	tmp := t.TempDir()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	mk := func(name string) string {
		p := filepath.Join(tmp, name)
		if err := os.MkdirAll(filepath.Join(p, "images"), 0o700); err != nil {
			t.Fatal(err)
		}
		return p
	}
	gone := mk(fmt.Sprintf("%s%d-123", probeDirPrefix, dead.Process.Pid))
	live := mk(fmt.Sprintf("%s%d-456", probeDirPrefix, os.Getpid()))
	oldRecent := mk(probeDirPrefix + "789")
	oldStale := mk(probeDirPrefix + "790")
	past := time.Now().Add(-2 * staleUnownedProbeDir)
	if err := os.Chtimes(oldStale, past, past); err != nil {
		t.Fatal(err)
	}
	other := mk("something-else")
	// Another user's dir of the probe's name, and a link of that name: not the probe's to remove.
	foreign := mk(fmt.Sprintf("%s%d-789", probeDirPrefix, dead.Process.Pid))
	foreignOK := os.Getuid() == 0 && os.Chown(foreign, 65534, 65534) == nil
	link := filepath.Join(tmp, fmt.Sprintf("%s%d-790", probeDirPrefix, dead.Process.Pid))
	if err := os.Symlink(other, link); err != nil {
		t.Fatal(err)
	}
	sweepProbeDirs(tmp)
	want := map[string]bool{gone: false, live: true, oldRecent: true, oldStale: false, other: true, link: true}
	if foreignOK {
		want[foreign] = true
	}
	for p, want := range want {
		_, err := os.Lstat(p)
		if got := err == nil; got != want {
			t.Errorf("%s there: %v, want %v", filepath.Base(p), got, want)
		}
	}
}
