package streaming_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/streaming"
	"github.com/cri-shim/cri-shim/streaming/streamingtest"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeRuntime: exec of "upper" copies stdin upper-cased to stdout; "fail N" writes to stderr and
// exits with N; "block" waits for the client to go away; "size" reports the first resize.
type fakeRuntime struct {
	mu        sync.Mutex
	cancelled chan string
	netns     string
}

func newFake() *fakeRuntime { return &fakeRuntime{cancelled: make(chan string, 10)} }

func (f *fakeRuntime) RunInContainer(ctx context.Context, id string, cmd []string, timeout time.Duration) ([]byte, error) {
	return nil, errors.New("not used")
}

func (f *fakeRuntime) ExecInContainer(ctx context.Context, id string, cmd []string, stdin io.Reader, stdout, stderr io.WriteCloser, tty bool, resize <-chan streaming.TerminalSize) error {
	switch cmd[0] {
	case "upper":
		b, err := io.ReadAll(stdin)
		if err != nil {
			return err
		}
		_, err = stdout.Write(bytes.ToUpper(b))
		return err
	case "fail":
		fmt.Fprintf(stderr, "failing in %s", id)
		var n int
		fmt.Sscan(cmd[1], &n)
		return streaming.NewExitError(cmd, n)
	case "block":
		fmt.Fprintln(stdout, "started")
		<-ctx.Done()
		f.cancelled <- id
		return ctx.Err()
	case "size":
		sz := <-resize
		fmt.Fprintf(stdout, "%dx%d", sz.Width, sz.Height)
		return nil
	}
	return fmt.Errorf("unknown command %q", cmd)
}

func (f *fakeRuntime) AttachContainer(ctx context.Context, id string, stdin io.Reader, stdout, stderr io.WriteCloser, tty bool, resize <-chan streaming.TerminalSize) error {
	fmt.Fprintf(stdout, "attached to %s", id)
	return nil
}

func (f *fakeRuntime) PortForward(ctx context.Context, podSandboxID string, port int32, stream io.ReadWriteCloser) error {
	return streaming.PortForwardIn(ctx, f.netns, port, stream)
}

func newServer(t *testing.T, rt streaming.Runtime) *streaming.Server {
	t.Helper()
	s, err := streaming.NewServer(streaming.Config{}, rt)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() { s.Stop() })
	return s
}

func execURL(t *testing.T, s *streaming.Server, req *runtime.ExecRequest) string {
	t.Helper()
	resp, err := s.GetExec(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Url
}

func TestServerDefaultsToLoopback(t *testing.T) {
	s := newServer(t, newFake())
	host, port, _ := net.SplitHostPort(s.Addr().String())
	if host != "127.0.0.1" || port == "0" {
		t.Fatalf("listening on %s", s.Addr())
	}
	u := execURL(t, s, &runtime.ExecRequest{ContainerId: "c", Cmd: []string{"x"}, Stdout: true})
	if !strings.HasPrefix(u, "http://"+s.Addr().String()+"/exec/") {
		t.Fatalf("url %s", u)
	}
	if _, err := s.GetExec(&runtime.ExecRequest{ContainerId: "c", Cmd: []string{"x"}}); err == nil {
		t.Fatal("exec without streams accepted")
	}
}

func TestExec(t *testing.T) {
	for _, ws := range []bool{false, true} {
		t.Run(fmt.Sprintf("websocket=%v", ws), func(t *testing.T) {
			s := newServer(t, newFake())
			ctx := context.Background()
			run := streamingtest.Stream
			if ws {
				run = streamingtest.StreamWebSocket
			}
			var out, errb bytes.Buffer
			u := execURL(t, s, &runtime.ExecRequest{ContainerId: "c1", Cmd: []string{"fail", "3"}, Stdout: true, Stderr: true})
			res, err := run(ctx, u, streamingtest.Options{Stdout: &out, Stderr: &errb})
			if err != nil {
				t.Fatal(err)
			}
			if res.ExitCode != 3 || errb.String() != "failing in c1" {
				t.Fatalf("result %+v, stderr %q", res, errb.String())
			}
			// A URL is single-use.
			if _, err := run(ctx, u, streamingtest.Options{Stdout: &out}); err == nil {
				t.Fatal("URL used twice")
			}
			if !ws {
				out.Reset()
				u = execURL(t, s, &runtime.ExecRequest{ContainerId: "c1", Cmd: []string{"upper"}, Stdin: true, Stdout: true})
				res, err = run(ctx, u, streamingtest.Options{Stdin: strings.NewReader("hello"), Stdout: &out})
				if err != nil || res.ExitCode != 0 || res.Failure != "" || out.String() != "HELLO" {
					t.Fatalf("upper: %+v %v %q", res, err, out.String())
				}
			}
			out.Reset()
			sizes := make(chan streamingtest.Size, 1)
			sizes <- streamingtest.Size{Width: 120, Height: 40}
			u = execURL(t, s, &runtime.ExecRequest{ContainerId: "c1", Cmd: []string{"size"}, Stdout: true, Tty: true})
			res, err = run(ctx, u, streamingtest.Options{Stdout: &out, TTY: true, Resize: sizes})
			if err != nil || res.ExitCode != 0 || out.String() != "120x40" {
				t.Fatalf("size: %+v %v %q", res, err, out.String())
			}
		})
	}
}

// A client that goes away ends the exec's context (the runtime then kills the process), over
// SPDY and websockets.
func TestExecClientGoesAway(t *testing.T) {
	for _, ws := range []bool{false, true} {
		t.Run(fmt.Sprintf("websocket=%v", ws), func(t *testing.T) {
			f := newFake()
			s := newServer(t, f)
			u := execURL(t, s, &runtime.ExecRequest{ContainerId: "c2", Cmd: []string{"block"}, Stdout: true})
			ctx := context.Background()
			if ws {
				conn, err := streamingtest.DialWebSocket(ctx, u, "v4.channel.k8s.io")
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
				conn, err := streamingtest.DialSPDY(ctx, u, "v4.channel.k8s.io")
				if err != nil {
					t.Fatal(err)
				}
				pr, pw := io.Pipe()
				go streamingtest.StreamOn(conn, streamingtest.Options{Stdout: pw})
				buf := make([]byte, 7)
				if _, err := io.ReadFull(pr, buf); err != nil {
					t.Fatal(err)
				}
				conn.Close()
			}
			select {
			case id := <-f.cancelled:
				if id != "c2" {
					t.Fatalf("cancelled %s", id)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the exec's context did not end when the client went away")
			}
		})
	}
}

func TestAttachURL(t *testing.T) {
	s := newServer(t, newFake())
	resp, err := s.GetAttach(&runtime.AttachRequest{ContainerId: "c3", Stdout: true})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	res, err := streamingtest.Stream(context.Background(), resp.Url, streamingtest.Options{Stdout: &out})
	if err != nil || res.Failure != "" || out.String() != "attached to c3" {
		t.Fatalf("%+v %v %q", res, err, out.String())
	}
}

// echoServer accepts connections on l and answers each line with "port <p>: <line>".
func echoServer(t *testing.T, l net.Listener) {
	t.Helper()
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, _ := io.ReadAll(c)
				fmt.Fprintf(c, "%s says %s", l.Addr(), b)
			}()
		}
	}()
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func forwardOnce(t *testing.T, pf *streamingtest.PortForward, port int, msg string) (string, string) {
	t.Helper()
	f, err := pf.Dial(port)
	if err != nil {
		// Toward a refused port the server may reset the pair while the client is still
		// creating its data stream; the reset is then the client's whole answer.
		return "", err.Error()
	}
	// Toward a refused port the server may reset the data stream before this write: the error
	// stream says why, so a failed write is not the test's failure.
	_, _ = f.Data.Write([]byte(msg))
	f.Data.Close()
	b, _ := io.ReadAll(f.Data)
	select {
	case e := <-f.Err:
		return string(b), e
	case <-time.After(10 * time.Second):
		t.Fatal("error stream not closed")
	}
	return "", ""
}

func TestPortForwardHost(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	echoServer(t, l)
	port := l.Addr().(*net.TCPAddr).Port
	s := newServer(t, newFake())
	resp, err := s.GetPortForward(&runtime.PortForwardRequest{PodSandboxId: "p"})
	if err != nil {
		t.Fatal(err)
	}
	pf, err := streamingtest.NewPortForward(context.Background(), resp.Url)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, e := forwardOnce(t, pf, port, fmt.Sprintf("hello %d", i))
			if want := fmt.Sprintf("%s says hello %d", l.Addr(), i); got != want || e != "" {
				t.Errorf("got %q (error %q), want %q", got, e, want)
			}
		}()
	}
	wg.Wait()
	// A refused port: an error on the error stream, and the connection stays usable.
	_, e := forwardOnce(t, pf, freePort(t), "x")
	if !strings.Contains(e, "refused") && e != "Stream reset" {
		t.Fatalf("refused port: error %q", e)
	}
	got, e := forwardOnce(t, pf, port, "again")
	if !strings.HasSuffix(got, "says again") || e != "" {
		t.Fatalf("after a refused port: %q %q", got, e)
	}
}
