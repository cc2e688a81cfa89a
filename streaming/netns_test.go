package streaming_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"

	"github.com/cri-shim/cri-shim/sandbox"
	"github.com/cri-shim/cri-shim/streaming"
	"golang.org/x/sys/unix"
)

// newNetNS makes a network namespace with its loopback up; it fails (never skips) without root.
func newNetNS(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	path, err := sandbox.NewNetNS(dir, "ns")
	if err != nil {
		t.Fatalf("network namespace (needs root): %v", err)
	}
	t.Cleanup(func() { sandbox.RemoveNetNS(path) })
	err = streaming.InNetNS(path, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		ifr, err := unix.NewIfreq("lo")
		if err != nil {
			return err
		}
		ifr.SetUint16(unix.IFF_UP)
		return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
	})
	if err != nil {
		t.Fatalf("loopback up: %v", err)
	}
	_ = filepath.Join
	return path
}

func listenIn(t *testing.T, ns, network, addr string) net.Listener {
	t.Helper()
	var l net.Listener
	err := streaming.InNetNS(ns, func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	echoServer(t, l)
	return l
}

func netnsInode(t *testing.T, path string) uint64 {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// DialPort reaches IPv4 and IPv6-only listeners inside the namespace and never leaves a thread
// of the process in it.
func TestDialPortInNetNS(t *testing.T) {
	ns := newNetNS(t)
	l4 := listenIn(t, ns, "tcp4", "127.0.0.1:0")
	l6 := listenIn(t, ns, "tcp6", "[::1]:0")
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := l4
			if i%2 == 1 {
				l = l6
			}
			conn, err := streaming.DialPort(ctx, ns, int32(l.Addr().(*net.TCPAddr).Port))
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			fmt.Fprintf(conn, "hi %d", i)
			conn.(*net.TCPConn).CloseWrite()
			b, _ := io.ReadAll(conn)
			if !strings.HasSuffix(string(b), fmt.Sprintf("says hi %d", i)) {
				t.Errorf("got %q", b)
			}
		}()
	}
	wg.Wait()
	// The port is not reachable from the host's namespace.
	if c, err := streaming.DialPort(ctx, "", int32(l4.Addr().(*net.TCPAddr).Port)); err == nil {
		c.Close()
		// Only an error if nothing on the host listens on the same port by chance.
		t.Log("the host has a listener on the same port")
	}
	// No thread of the process is in the pod's namespace.
	podIno := netnsInode(t, ns)
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", os.Getpid()))
	for _, task := range tasks {
		if netnsInode(t, fmt.Sprintf("/proc/%d/task/%s/ns/net", os.Getpid(), task.Name())) == podIno {
			t.Errorf("thread %s is in the pod's network namespace", task.Name())
		}
	}
	goruntime.GC()
	if _, err := streaming.DialPort(ctx, ns, 1); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("closed port: %v", err)
	}
	if err := streaming.InNetNS(filepath.Join(t.TempDir()), func() error { return nil }); err == nil {
		t.Fatal("a directory taken for a network namespace")
	}
}
