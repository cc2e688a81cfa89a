package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"testing"

	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// loFlags reads the flags of lo in the network namespace at path.
func loFlags(t *testing.T, path string) uint16 {
	t.Helper()
	ch := make(chan uint16, 1)
	errCh := make(chan error, 1)
	go func() {
		goruntime.LockOSThread() // never unlocked: the thread ends with the goroutine
		ns, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errCh <- err
			return
		}
		defer unix.Close(ns)
		if err := unix.Setns(ns, unix.CLONE_NEWNET); err != nil {
			errCh <- err
			return
		}
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			errCh <- err
			return
		}
		defer unix.Close(fd)
		ifr, _ := unix.NewIfreq("lo")
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
			errCh <- err
			return
		}
		ch <- ifr.Uint16()
	}()
	select {
	case f := <-ch:
		return f
	case err := <-errCh:
		t.Fatalf("read lo flags in %s: %v", path, err)
	}
	return 0
}

func TestNewNetNSHasLoopbackUp(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	p, err := NewNetNS(dir, "lo-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { RemoveNetNS(p) })
	if f := loFlags(t, p); f&unix.IFF_UP == 0 {
		t.Fatalf("lo flags %#x: not up", f)
	}
	// SetLoopbackUp is idempotent and leaves the daemon's own namespace as it was.
	own, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", os.Getpid()))
	if err := SetLoopbackUp(p); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", os.Getpid())); after != own {
		t.Fatalf("process netns changed: %s -> %s", own, after)
	}
}

func TestSetLoopbackUpInUserns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	m := runtimespec.LinuxIDMapping{ContainerID: 0, HostID: 400000, Size: 65536}
	p, err := NewNetNSInUserns(filepath.Join(dir, "netns"), "lo-userns", m, m)
	if err != nil {
		t.Fatalf("network namespace in a user namespace: %v", err)
	}
	t.Cleanup(func() { RemoveNetNS(p) })
	if f := loFlags(t, p); f&unix.IFF_UP != 0 {
		t.Fatalf("lo is up before SetLoopbackUp (flags %#x): the test proves nothing", f)
	}
	if err := SetLoopbackUp(p); err != nil {
		t.Fatal(err)
	}
	if f := loFlags(t, p); f&unix.IFF_UP == 0 {
		t.Fatalf("lo flags %#x after SetLoopbackUp: not up", f)
	}
}
