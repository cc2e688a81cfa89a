// Package testutil holds helpers shared by cri-shim's integration tests.
package testutil

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/cmd/cri-shim/managed"
	"golang.org/x/sys/unix"
)

// StartContainerd starts a containerd of the test's own (root, state and socket under a short
// /tmp dir, the built-in CRI and NRI off) and stops it when the test ends. It fails the test, never
// skips it, when containerd cannot be started (binaries missing: run hack/setup.sh).
func StartContainerd(t testing.TB) (address string) {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "ctd")
	if err != nil {
		t.Fatal(err)
	}
	// Searchable by all (as /run is): pods in a user namespace run as unprivileged host uids,
	// which must reach their rootfs under containerd's state dir.
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	m, err := managed.Start(ctx, managed.Config{
		Root:     filepath.Join(dir, "root"),
		State:    filepath.Join(dir, "state"),
		Address:  filepath.Join(dir, "c.sock"),
		LogPath:  filepath.Join(dir, "containerd.log"),
		LogLevel: "info",
	})
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("start containerd (run hack/setup.sh if binaries are missing): %v", err)
	}
	t.Cleanup(func() {
		if err := m.Stop(15 * time.Second); err != nil {
			t.Logf("stop containerd: %v", err)
		}
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "containerd.log")); err == nil {
				lines := strings.Split(string(b), "\n")
				if len(lines) > 40 {
					lines = lines[len(lines)-40:]
				}
				t.Logf("containerd log (tail):\n%s", strings.Join(lines, "\n"))
			}
		}
		UnmountAll(dir)
		os.RemoveAll(dir)
	})
	return m.Address()
}

// UnmountAll lazily unmounts every mount at or below dir, deepest first.
func UnmountAll(dir string) {
	for _, m := range MountsUnder(dir) {
		_ = unix.Unmount(m, unix.MNT_DETACH)
	}
}

// MountsUnder lists the mount points at or below dir, deepest first.
func MountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		if p := fields[1]; p == dir || strings.HasPrefix(p, dir+"/") {
			out = append(out, p)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(out)))
	return out
}
