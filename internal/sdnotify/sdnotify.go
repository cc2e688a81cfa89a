// Package sdnotify tells the service manager (systemd) the daemon's state, as sd_notify(3) does: one
// datagram to the unix socket named by $NOTIFY_SOCKET ("@name" for an abstract one).
package sdnotify

import (
	"net"
	"os"
	"strconv"
	"time"
)

// The states a daemon reports.
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
	Watchdog = "WATCHDOG=1"
)

// Notifier sends state changes to the service manager. A nil Notifier sends nothing: the daemon was
// not started by one.
type Notifier struct {
	socket   string
	watchdog time.Duration
}

// FromEnv returns the notifier of $NOTIFY_SOCKET, nil when it is not set, and takes NOTIFY_SOCKET,
// WATCHDOG_USEC and WATCHDOG_PID out of the environment: the processes the daemon starts must not
// notify for it (a containerd child would report READY=1 as soon as it serves itself).
func FromEnv() *Notifier {
	socket := os.Getenv("NOTIFY_SOCKET")
	usec, pid := os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID")
	for _, k := range []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} {
		os.Unsetenv(k)
	}
	if socket == "" {
		return nil
	}
	n := &Notifier{socket: socket}
	// The watchdog is ours when WATCHDOG_PID is unset or names this process.
	if us, err := strconv.ParseInt(usec, 10, 64); err == nil && us > 0 && (pid == "" || pid == strconv.Itoa(os.Getpid())) {
		n.watchdog = time.Duration(us) * time.Microsecond
	}
	return n
}

// Notify sends state, one or more newline-separated VAR=value assignments such as Ready.
func (n *Notifier) Notify(state string) error {
	if n == nil {
		return nil
	}
	// Go's net package maps a leading '@' to the abstract namespace's NUL byte.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.socket, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write([]byte(state))
	return err
}

// WatchdogInterval is the service manager's watchdog timeout (WatchdogSec=): the daemon must send
// Watchdog more often than that. Zero: no watchdog.
func (n *Notifier) WatchdogInterval() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog
}
