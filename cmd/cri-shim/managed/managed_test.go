package managed

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// TestLiveTasks: a task counts as live when its bundle's init.pid names a running process; bundles
// of exited processes, without init.pid, or of another namespace do not count.
func TestLiveTasks(t *testing.T) {
	state := t.TempDir()
	if live, err := LiveTasks(state, "cri-shim"); err != nil || len(live) != 0 {
		t.Fatalf("empty state dir: %q %v", live, err)
	}
	exited := exec.Command("true")
	if err := exited.Run(); err != nil {
		t.Fatal(err)
	}
	bundles := map[string]string{
		"cri-shim/running":   strconv.Itoa(os.Getpid()),
		"cri-shim/running2":  strconv.Itoa(os.Getppid()) + "\n",
		"cri-shim/exited":    strconv.Itoa(exited.Process.Pid),
		"cri-shim/garbage":   "not a pid",
		"cri-shim/nopidfile": "",
		"k8s.io/other":       strconv.Itoa(os.Getpid()),
	}
	for b, pid := range bundles {
		dir := filepath.Join(state, taskDir, b)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if pid != "" {
			if err := os.WriteFile(filepath.Join(dir, "init.pid"), []byte(pid), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	live, err := LiveTasks(state, "cri-shim")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(live)
	if strings.Join(live, ",") != "running,running2" {
		t.Fatalf("live tasks %q, want running,running2", live)
	}
}
