//go:build integration

package kuberuntime

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/streaming"
	"github.com/cri-shim/cri-shim/streaming/streamingtest"
	"github.com/cri-shim/cri-shim/test/critest/testregistry"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// streamEnv is the test env with a streaming server on its runtime.
func (e *env) streamServer() *streaming.Server {
	e.t.Helper()
	s, err := streaming.NewServer(streaming.Config{}, e.rt)
	if err != nil {
		e.t.Fatal(err)
	}
	s.Start()
	e.t.Cleanup(func() { s.Stop() })
	return s
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func eventually(t *testing.T, what string, d time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStreaming(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	sb, _ := e.podWithLogs("streams")
	s := e.streamServer()
	exec := func(t *testing.T, req *runtime.ExecRequest, o streamingtest.Options) streamingtest.Result {
		t.Helper()
		resp, err := s.GetExec(req)
		if err != nil {
			t.Fatal(err)
		}
		res, err := streamingtest.Stream(ctx, resp.Url, o)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	sleeper := e.createStart(sb.ID, ctrCfg("sleeper", "sleep", "100000"))

	t.Run("exec without tty", func(t *testing.T) {
		var out, errb bytes.Buffer
		res := exec(t, &runtime.ExecRequest{ContainerId: sleeper, Cmd: []string{"sh", "-c", "cat; echo err >&2; exit 3"}, Stdin: true, Stdout: true, Stderr: true},
			streamingtest.Options{Stdin: strings.NewReader("hello\n"), Stdout: &out, Stderr: &errb})
		if res.ExitCode != 3 || out.String() != "hello\n" || errb.String() != "err\n" {
			t.Fatalf("result %+v, stdout %q, stderr %q", res, out.String(), errb.String())
		}
		out.Reset()
		res = exec(t, &runtime.ExecRequest{ContainerId: sleeper, Cmd: []string{"sh", "-c", "test -t 1 || echo notty; echo $TERM"}, Stdout: true},
			streamingtest.Options{Stdout: &out})
		if res.ExitCode != 0 || res.Failure != "" || out.String() != "notty\n\n" {
			t.Fatalf("result %+v, stdout %q", res, out.String())
		}
		// Websocket.
		out.Reset()
		resp, err := s.GetExec(&runtime.ExecRequest{ContainerId: sleeper, Cmd: []string{"sh", "-c", "echo ws; exit 4"}, Stdout: true})
		if err != nil {
			t.Fatal(err)
		}
		res, err = streamingtest.StreamWebSocket(ctx, resp.Url, streamingtest.Options{Stdout: &out})
		if err != nil || res.ExitCode != 4 || out.String() != "ws\n" {
			t.Fatalf("websocket: %+v %v %q", res, err, out.String())
		}
		// Websocket with v5.channel.k8s.io: the end of stdin is the close signal.
		out.Reset()
		var errb2 bytes.Buffer
		resp, err = s.GetExec(&runtime.ExecRequest{ContainerId: sleeper, Cmd: []string{"sh", "-c", "cat; echo err >&2; exit 3"}, Stdin: true, Stdout: true, Stderr: true})
		if err != nil {
			t.Fatal(err)
		}
		res, err = streamingtest.StreamWebSocketV5(ctx, resp.Url, streamingtest.Options{Stdin: strings.NewReader("hello v5\n"), Stdout: &out, Stderr: &errb2})
		if err != nil || res.ExitCode != 3 || out.String() != "hello v5\n" || errb2.String() != "err\n" {
			t.Fatalf("websocket v5: %+v %v stdout %q stderr %q", res, err, out.String(), errb2.String())
		}
	})

	t.Run("websocket v5 exec with tty and resize", func(t *testing.T) {
		var out lockedBuffer
		sizes := make(chan streamingtest.Size, 1)
		sizes <- streamingtest.Size{Width: 101, Height: 31}
		inR, inW := io.Pipe()
		resp, err := s.GetExec(&runtime.ExecRequest{ContainerId: sleeper, Cmd: []string{"sh", "-c", "test -t 0 && echo TTY $TERM; read x; stty size"}, Stdin: true, Stdout: true, Tty: true})
		if err != nil {
			t.Fatal(err)
		}
		type result struct {
			res streamingtest.Result
			err error
		}
		done := make(chan result, 1)
		go func() {
			res, err := streamingtest.StreamWebSocketV5(ctx, resp.Url, streamingtest.Options{Stdin: inR, Stdout: &out, TTY: true, Resize: sizes})
			done <- result{res, err}
		}()
		eventually(t, "the tty", 10*time.Second, func() bool { return strings.Contains(out.String(), "TTY xterm") })
		time.Sleep(200 * time.Millisecond)
		fmt.Fprintln(inW, "go")
		r := <-done
		inW.Close()
		if r.err != nil || r.res.ExitCode != 0 || !strings.Contains(out.String(), "31 101") {
			t.Fatalf("result %+v %v, output %q", r.res, r.err, out.String())
		}
	})

	t.Run("exec with tty and resize", func(t *testing.T) {
		var out lockedBuffer
		sizes := make(chan streamingtest.Size, 1)
		sizes <- streamingtest.Size{Width: 100, Height: 30}
		inR, inW := io.Pipe()
		done := make(chan streamingtest.Result, 1)
		go func() {
			done <- exec(t, &runtime.ExecRequest{ContainerId: sleeper, Cmd: []string{"sh", "-c", "test -t 0 && echo TTY $TERM; read x; stty size"}, Stdin: true, Stdout: true, Tty: true},
				streamingtest.Options{Stdin: inR, Stdout: &out, TTY: true, Resize: sizes})
		}()
		eventually(t, "the tty", 10*time.Second, func() bool { return strings.Contains(out.String(), "TTY xterm") })
		time.Sleep(200 * time.Millisecond) // the resize is sent at once; let it land
		fmt.Fprintln(inW, "go")
		res := <-done
		inW.Close()
		if res.ExitCode != 0 || !strings.Contains(out.String(), "30 100") {
			t.Fatalf("result %+v, output %q", res, out.String())
		}
	})

	t.Run("client that goes away", func(t *testing.T) {
		task, err := e.rt.loadTask(e.rt.withNS(ctx), sleeper)
		if err != nil {
			t.Fatal(err)
		}
		before := goruntime.NumGoroutine()
		for _, proto := range []string{"", "v4.channel.k8s.io", "v5.channel.k8s.io"} {
			resp, err := s.GetExec(&runtime.ExecRequest{ContainerId: sleeper, Cmd: []string{"sh", "-c", "echo started; exec sleep 100001"}, Stdout: true, Stdin: true})
			if err != nil {
				t.Fatal(err)
			}
			if proto != "" {
				conn, err := streamingtest.DialWebSocket(ctx, resp.Url, proto)
				if err != nil {
					t.Fatal(err)
				}
				for {
					_, msg, err := conn.ReadMessage()
					if err != nil {
						t.Fatal(err)
					}
					if strings.Contains(string(msg), "started") {
						break
					}
				}
				conn.UnderlyingConn().Close()
			} else {
				conn, err := streamingtest.DialSPDY(ctx, resp.Url, "v4.channel.k8s.io")
				if err != nil {
					t.Fatal(err)
				}
				pr, pw := io.Pipe()
				inR, _ := io.Pipe()
				go streamingtest.StreamOn(conn, streamingtest.Options{Stdout: pw, Stdin: inR})
				if _, err := bufio.NewReader(pr).ReadString('\n'); err != nil {
					t.Fatal(err)
				}
				conn.Close()
				pr.Close()
			}
			// The exec'd process is killed and reaped: only the container's own is left.
			eventually(t, "the exec'd process to go", 15*time.Second, func() bool {
				pids, err := task.Pids(e.rt.withNS(ctx))
				return err == nil && len(pids) == 1
			})
		}
		eventually(t, "goroutines to end", 15*time.Second, func() bool { return goruntime.NumGoroutine() <= before+2 })
	})

	t.Run("exec in a stopped container", func(t *testing.T) {
		id := e.createStart(sb.ID, ctrCfg("quick", "true"))
		e.waitExited(e.rt, id)
		err := e.rt.ExecInContainer(ctx, id, []string{"true"}, nil, nil, nil, false, nil)
		if err == nil || !strings.Contains(err.Error(), "not running") {
			t.Fatalf("exec in an exited container: %v", err)
		}
	})

	t.Run("port-forward to nginx", func(t *testing.T) {
		if _, err := e.rt.images.PullImage(ctx, legacy.ImageSpec{Image: testregistry.E2ENginx}, nil, nil); err != nil {
			t.Fatal(err)
		}
		cfg := ctrCfg("nginx")
		cfg.Image.Image = testregistry.E2ENginx
		e.createStart(sb.ID, cfg)
		// The container runs before nginx listens: forwarding before that is refused.
		waitListening(t, sb.NetNSPath, "127.0.0.1:80")
		// An IPv6-only listener of the test's own in the pod.
		var l6 net.Listener
		if err := inNetNS(sb.NetNSPath, func() (err error) { l6, err = net.Listen("tcp6", "[::1]:8086"); return }); err != nil {
			t.Fatal(err)
		}
		defer l6.Close()
		go func() {
			for {
				c, err := l6.Accept()
				if err != nil {
					return
				}
				fmt.Fprint(c, "v6 here")
				c.Close()
			}
		}()
		for _, ws := range []bool{false, true} {
			t.Run(fmt.Sprintf("websocket=%v", ws), func(t *testing.T) { portForwardNginx(t, s, sb.ID, ws) })
		}
	})

	t.Run("websocket v5 attach", func(t *testing.T) {
		// stdin_once over v5.channel.k8s.io: the close signal closes the container's stdin.
		cfg := ctrCfg("cat5", "cat")
		cfg.Stdin, cfg.StdinOnce = true, true
		id := e.createStart(sb.ID, cfg)
		resp, err := s.GetAttach(&runtime.AttachRequest{ContainerId: id, Stdin: true, Stdout: true, Stderr: true})
		if err != nil {
			t.Fatal(err)
		}
		var out lockedBuffer
		inR, inW := io.Pipe()
		done := make(chan error, 1)
		go func() {
			res, err := streamingtest.StreamWebSocketV5(ctx, resp.Url, streamingtest.Options{Stdin: inR, Stdout: &out, Stderr: io.Discard})
			if err == nil && res.Failure != "" {
				err = fmt.Errorf("%s", res.Failure)
			}
			done <- err
		}()
		fmt.Fprintln(inW, "hello v5 attach")
		eventually(t, "the echo", 10*time.Second, func() bool { return out.String() == "hello v5 attach\n" })
		inW.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		st := e.waitExited(e.rt, id)
		if got := readCRILog(t, st.LogPath); len(got) != 1 || got[0] != "stdout F hello v5 attach" {
			t.Fatalf("log %q", got)
		}
		if _, err := streamingtest.StreamWebSocketV5(ctx, resp.Url, streamingtest.Options{Stdout: io.Discard}); err == nil {
			t.Fatal("attach URL used twice")
		}
	})

	t.Run("attach", func(t *testing.T) {
		// Not on a terminal, stdin_once: the client's input reaches cat, whose output reaches the
		// client and the log; the end of the client's stdin closes the container's.
		cfg := ctrCfg("cat", "cat")
		cfg.Stdin, cfg.StdinOnce = true, true
		id := e.createStart(sb.ID, cfg)
		resp, err := s.GetAttach(&runtime.AttachRequest{ContainerId: id, Stdin: true, Stdout: true, Stderr: true})
		if err != nil {
			t.Fatal(err)
		}
		var out lockedBuffer
		inR, inW := io.Pipe()
		done := make(chan error, 1)
		go func() {
			res, err := streamingtest.Stream(ctx, resp.Url, streamingtest.Options{Stdin: inR, Stdout: &out, Stderr: io.Discard})
			if err == nil && res.Failure != "" {
				err = fmt.Errorf("%s", res.Failure)
			}
			done <- err
		}()
		fmt.Fprintln(inW, "hello attach")
		eventually(t, "the echo", 10*time.Second, func() bool { return out.String() == "hello attach\n" })
		inW.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		st := e.waitExited(e.rt, id)
		if got := readCRILog(t, st.LogPath); len(got) != 1 || got[0] != "stdout F hello attach" {
			t.Fatalf("log %q", got)
		}

		// On a terminal: a shell.
		cfg = ctrCfg("tty", "sh")
		cfg.Stdin, cfg.Tty = true, true
		id = e.createStart(sb.ID, cfg)
		resp, err = s.GetAttach(&runtime.AttachRequest{ContainerId: id, Stdin: true, Stdout: true, Tty: true})
		if err != nil {
			t.Fatal(err)
		}
		var tout lockedBuffer
		inR, inW = io.Pipe()
		sizes := make(chan streamingtest.Size, 1)
		sizes <- streamingtest.Size{Width: 90, Height: 20}
		go func() {
			_, err := streamingtest.Stream(ctx, resp.Url, streamingtest.Options{Stdin: inR, Stdout: &tout, TTY: true, Resize: sizes})
			done <- err
		}()
		time.Sleep(200 * time.Millisecond)
		fmt.Fprintln(inW, "stty size; echo X$((6*7))")
		eventually(t, "the shell's answer", 10*time.Second, func() bool { return strings.Contains(tout.String(), "X42") })
		if !strings.Contains(tout.String(), "20 90") {
			t.Fatalf("tty output %q", tout.String())
		}
		fmt.Fprintln(inW, "exit")
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		e.waitExited(e.rt, id)
	})
}

// waitListening waits (bounded) until something listens on addr in the network namespace.
func waitListening(t *testing.T, netns, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := inNetNS(netns, func() error {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s in the pod: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// portForwardNginx forwards to the nginx (port 80) and the IPv6 listener (8086) of the pod, over
// SPDY or over SPDY tunnelled in a websocket.
func portForwardNginx(t *testing.T, s *streaming.Server, podID string, ws bool) {
	ctx := context.Background()
	resp, err := s.GetPortForward(&runtime.PortForwardRequest{PodSandboxId: podID, Port: []int32{80}})
	if err != nil {
		t.Fatal(err)
	}
	dial := streamingtest.NewPortForward
	if ws {
		dial = streamingtest.NewPortForwardWebSocket
	}
	pf, err := dial(ctx, resp.Url)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	get := func(port int, req string) (string, string) {
		f, err := pf.Dial(port)
		if err != nil {
			t.Error(err)
			return "", ""
		}
		if req != "" {
			f.Data.Write([]byte(req))
		}
		f.Data.Close()
		b, _ := io.ReadAll(f.Data)
		return string(b), <-f.Err
	}
	eventually(t, "nginx to serve", 10*time.Second, func() bool {
		out, _ := get(80, "GET / HTTP/1.0\r\n\r\n")
		return strings.HasPrefix(out, "HTTP/1.")
	})
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, e := get(80, "GET / HTTP/1.0\r\n\r\n")
			if !strings.Contains(out, " 200 ") || e != "" {
				t.Errorf("GET through the forward: %q, error %q", out, e)
			}
		}()
	}
	wg.Wait()
	if _, e := get(81, ""); !strings.Contains(e, "refused") {
		t.Fatalf("refused port: error %q", e)
	}
	if out, e := get(8086, ""); out != "v6 here" || e != "" {
		t.Fatalf("IPv6 port: %q %q", out, e)
	}
	if out, _ := get(80, "GET / HTTP/1.0\r\n\r\n"); !strings.Contains(out, " 200 ") {
		t.Fatalf("after a refused port: %q", out)
	}
	// The URL served once.
	if _, err := dial(ctx, resp.Url); err == nil {
		t.Fatal("port-forward URL used twice")
	}
}
