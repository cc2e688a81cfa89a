package streaming

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// DialTimeout bounds the connection to a pod's port.
var DialTimeout = 10 * time.Second

// HalfCloseTimeout is how long the answer of a pod's port may take after the client closed its
// side of the stream; then the connection is closed.
var HalfCloseTimeout = 30 * time.Second

// DialPort connects to port on the loopback of the network namespace at netnsPath ("" is the
// daemon's own, for pods on the host network): IPv4 first, then IPv6.
func DialPort(ctx context.Context, netnsPath string, port int32) (net.Conn, error) {
	if port <= 0 || port > 65535 {
		return nil, fmt.Errorf("invalid port %d", port)
	}
	dial := func() (net.Conn, error) {
		d := net.Dialer{Timeout: DialTimeout}
		p := strconv.Itoa(int(port))
		conn, err4 := d.DialContext(ctx, "tcp4", net.JoinHostPort("127.0.0.1", p))
		if err4 == nil {
			return conn, nil
		}
		conn, err6 := d.DialContext(ctx, "tcp6", net.JoinHostPort("::1", p))
		if err6 == nil {
			return conn, nil
		}
		return nil, fmt.Errorf("connect to port %d: IPv4: %v; IPv6: %v", port, err4, err6)
	}
	if netnsPath == "" {
		return dial()
	}
	var conn net.Conn
	err := InNetNS(netnsPath, func() error {
		var err error
		conn, err = dial()
		return err
	})
	return conn, err
}

// InNetNS runs fn on a goroutine whose OS thread is in the network namespace at path. The thread
// goes back to the caller's namespace afterwards; when it cannot, it is never unlocked, and so it
// dies with the goroutine instead of running other Go code in the pod's namespace. Sockets fn
// creates stay in the pod's namespace.
func InNetNS(path string, fn func() error) error {
	target, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", path, err)
	}
	defer target.Close()
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(target.Fd()), &st); err != nil {
		return fmt.Errorf("network namespace %s: %w", path, err)
	}
	if st.Type != unix.NSFS_MAGIC && st.Type != unix.PROC_SUPER_MAGIC {
		return fmt.Errorf("%s is not a network namespace", path)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			// Still in the original namespace.
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter network namespace %s: %w", path, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: it exits with this goroutine.
			if ferr == nil {
				ferr = fmt.Errorf("return from network namespace %s: %w", path, err)
			}
			errc <- ferr
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Forward copies between stream and conn until conn's side ends, or the client's side ended and
// conn answered (within HalfCloseTimeout), or ctx ends. It closes conn, not stream.
func Forward(ctx context.Context, stream io.ReadWriter, conn net.Conn) error {
	defer conn.Close()
	fromPod := make(chan error, 1)
	toPod := make(chan error, 1)
	go func() {
		_, err := io.Copy(stream, conn)
		fromPod <- err
	}()
	go func() {
		_, err := io.Copy(conn, stream)
		toPod <- err
	}()
	select {
	case err := <-fromPod:
		// The pod's side is done: nothing more will reach the client.
		return ignoreClosed(err)
	case err := <-toPod:
		if err != nil && !isClosed(err) {
			return err
		}
		// The client closed its side: tell the pod, and let its answer through.
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		t := time.NewTimer(HalfCloseTimeout)
		defer t.Stop()
		select {
		case err := <-fromPod:
			return ignoreClosed(err)
		case <-t.C:
			return nil
		case <-ctx.Done():
			return nil
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

func isClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe) || errors.Is(err, unix.EPIPE) || errors.Is(err, unix.ECONNRESET)
}

func ignoreClosed(err error) error {
	if err == nil || isClosed(err) {
		return nil
	}
	return err
}

// PortForwardIn forwards stream to port in the network namespace netnsPath ("": the host's).
func PortForwardIn(ctx context.Context, netnsPath string, port int32, stream io.ReadWriteCloser) error {
	conn, err := DialPort(ctx, netnsPath, port)
	if err != nil {
		return err
	}
	return Forward(ctx, stream, conn)
}
