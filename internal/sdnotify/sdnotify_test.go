package sdnotify

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// listen opens a notify socket like the service manager's and returns it with its name.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func receive(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

// TestNotify: a message reaches the socket of $NOTIFY_SOCKET, a path or an abstract "@name", and the
// variables are taken out of the environment the daemon's children inherit.
func TestNotify(t *testing.T) {
	for _, name := range []string{filepath.Join(t.TempDir(), "notify.sock"), fmt.Sprintf("@cri-shim-sdnotify-test-%d", os.Getpid())} {
		conn := listen(t, name)
		t.Setenv("NOTIFY_SOCKET", name)
		t.Setenv("WATCHDOG_USEC", "3000000")
		t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
		n := FromEnv()
		for _, k := range []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} {
			if v, ok := os.LookupEnv(k); ok {
				t.Errorf("%s=%q left in the environment", k, v)
			}
		}
		if err := n.Notify(Ready + "\nSTATUS=serving"); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := receive(t, conn); got != "READY=1\nSTATUS=serving" {
			t.Errorf("%s: received %q", name, got)
		}
		if n.WatchdogInterval() != 3*time.Second {
			t.Errorf("watchdog interval %s, want 3s", n.WatchdogInterval())
		}
	}
}

// TestNoServiceManager: without $NOTIFY_SOCKET nothing is sent and there is no watchdog; a watchdog
// meant for another process is not ours.
func TestNoServiceManager(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := FromEnv()
	if n != nil || n.Notify(Ready) != nil || n.WatchdogInterval() != 0 {
		t.Fatalf("notifier %v without NOTIFY_SOCKET", n)
	}
	name := filepath.Join(t.TempDir(), "notify.sock")
	listen(t, name)
	t.Setenv("NOTIFY_SOCKET", name)
	t.Setenv("WATCHDOG_USEC", "3000000")
	t.Setenv("WATCHDOG_PID", "1")
	if d := FromEnv().WatchdogInterval(); d != 0 {
		t.Fatalf("watchdog of pid 1 taken: %s", d)
	}
}
