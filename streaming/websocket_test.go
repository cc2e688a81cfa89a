package streaming_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/streaming/streamingtest"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Exec and attach over a websocket with v5.channel.k8s.io: exit codes, stderr, stdin closed by
// the close signal, resize, single-use URLs.
func TestExecWebSocketV5(t *testing.T) {
	s := newServer(t, newFake())
	ctx := context.Background()
	run := streamingtest.StreamWebSocketV5

	var out, errb bytes.Buffer
	u := execURL(t, s, &runtime.ExecRequest{ContainerId: "c1", Cmd: []string{"fail", "3"}, Stdout: true, Stderr: true})
	res, err := run(ctx, u, streamingtest.Options{Stdout: &out, Stderr: &errb})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 3 || errb.String() != "failing in c1" {
		t.Fatalf("result %+v, stderr %q", res, errb.String())
	}
	if _, err := run(ctx, u, streamingtest.Options{Stdout: &out}); err == nil {
		t.Fatal("URL used twice")
	}
	// Nor over SPDY once used over a websocket.
	if _, err := streamingtest.Stream(ctx, u, streamingtest.Options{Stdout: &out}); err == nil {
		t.Fatal("URL used twice (SPDY after websocket)")
	}

	// stdin reaches its end: v5's close signal.
	out.Reset()
	u = execURL(t, s, &runtime.ExecRequest{ContainerId: "c1", Cmd: []string{"upper"}, Stdin: true, Stdout: true})
	res, err = run(ctx, u, streamingtest.Options{Stdin: strings.NewReader("hello"), Stdout: &out})
	if err != nil || res.ExitCode != 0 || res.Failure != "" || out.String() != "HELLO" {
		t.Fatalf("upper: %+v %v %q", res, err, out.String())
	}

	out.Reset()
	sizes := make(chan streamingtest.Size, 1)
	sizes <- streamingtest.Size{Width: 120, Height: 40}
	u = execURL(t, s, &runtime.ExecRequest{ContainerId: "c1", Cmd: []string{"size"}, Stdout: true, Tty: true})
	res, err = run(ctx, u, streamingtest.Options{Stdout: &out, TTY: true, Resize: sizes})
	if err != nil || res.ExitCode != 0 || out.String() != "120x40" {
		t.Fatalf("size: %+v %v %q", res, err, out.String())
	}

	// A runtime error that is no exit code is a failure.
	u = execURL(t, s, &runtime.ExecRequest{ContainerId: "c1", Cmd: []string{"nope"}, Stdout: true})
	res, err = run(ctx, u, streamingtest.Options{Stdout: &out})
	if err != nil || !strings.Contains(res.Failure, "unknown command") {
		t.Fatalf("unknown command: %+v %v", res, err)
	}

	// An exec token is no attach token.
	u = execURL(t, s, &runtime.ExecRequest{ContainerId: "c1", Cmd: []string{"upper"}, Stdin: true, Stdout: true})
	if _, err := run(ctx, strings.Replace(u, "/exec/", "/attach/", 1), streamingtest.Options{Stdout: &out}); err == nil {
		t.Fatal("exec token accepted for attach")
	}
	out.Reset()
	if res, err := run(ctx, u, streamingtest.Options{Stdout: &out, Stdin: strings.NewReader("x")}); err != nil || res.Failure != "" || out.String() != "X" {
		t.Fatalf("exec URL after its misuse for attach: %+v %v", res, err)
	}

	// Attach.
	resp, err := s.GetAttach(&runtime.AttachRequest{ContainerId: "c3", Stdout: true, Stdin: true})
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	res, err = run(ctx, resp.Url, streamingtest.Options{Stdout: &out, Stdin: strings.NewReader("")})
	if err != nil || res.Failure != "" || out.String() != "attached to c3" {
		t.Fatalf("attach: %+v %v %q", res, err, out.String())
	}
	if _, err := run(ctx, resp.Url, streamingtest.Options{Stdout: &out}); err == nil {
		t.Fatal("attach URL used twice")
	}
}

// A v5 websocket client that goes away ends the exec's context.
func TestExecWebSocketV5ClientGoesAway(t *testing.T) {
	f := newFake()
	s := newServer(t, f)
	u := execURL(t, s, &runtime.ExecRequest{ContainerId: "c9", Cmd: []string{"block"}, Stdout: true})
	ws, err := streamingtest.DialWebSocket(context.Background(), u, "v5.channel.k8s.io")
	if err != nil {
		t.Fatal(err)
	}
	if ws.Subprotocol() != "v5.channel.k8s.io" {
		t.Fatalf("subprotocol %q", ws.Subprotocol())
	}
	// Wait for "started" on stdout, then drop the connection.
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if len(msg) > 1 && msg[0] == 1 && strings.Contains(string(msg[1:]), "started") {
			break
		}
	}
	ws.NetConn().Close()
	select {
	case id := <-f.cancelled:
		if id != "c9" {
			t.Fatalf("cancelled %s", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("exec not cancelled after the client went away")
	}
}

// Port-forward over SPDY tunnelled in a websocket (SPDY/3.1+portforward.k8s.io).
func TestPortForwardWebSocketTunnel(t *testing.T) {
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
	ctx := context.Background()
	pf, err := streamingtest.NewPortForwardWebSocket(ctx, resp.Url)
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
	_, e := forwardOnce(t, pf, freePort(t), "x")
	if !strings.Contains(e, "refused") && e != "Stream reset" {
		t.Fatalf("refused port: error %q", e)
	}
	got, e := forwardOnce(t, pf, port, "again")
	if !strings.HasSuffix(got, "says again") || e != "" {
		t.Fatalf("after a refused port: %q %q", got, e)
	}

	// Single use, both ways.
	if _, err := streamingtest.NewPortForwardWebSocket(ctx, resp.Url); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("URL used twice: %v", err)
	}
	if _, err := streamingtest.NewPortForward(ctx, resp.Url); err == nil {
		t.Fatal("URL used twice (SPDY after websocket)")
	}
	resp, err = s.GetPortForward(&runtime.PortForwardRequest{PodSandboxId: "p"})
	if err != nil {
		t.Fatal(err)
	}
	spdy, err := streamingtest.NewPortForward(ctx, resp.Url)
	if err != nil {
		t.Fatal(err)
	}
	spdy.Close()
	if _, err := streamingtest.NewPortForwardWebSocket(ctx, resp.Url); err == nil {
		t.Fatal("URL used twice (websocket after SPDY)")
	}

	// The client closing the tunnel ends the connection on the server too.
	resp, err = s.GetPortForward(&runtime.PortForwardRequest{PodSandboxId: "p"})
	if err != nil {
		t.Fatal(err)
	}
	pf2, err := streamingtest.NewPortForwardWebSocket(ctx, resp.Url)
	if err != nil {
		t.Fatal(err)
	}
	if got, e := forwardOnce(t, pf2, port, "once"); !strings.HasSuffix(got, "says once") || e != "" {
		t.Fatalf("second tunnel: %q %q", got, e)
	}
	pf2.Close()
	select {
	case <-pf2.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("tunnel not closed")
	}
}

// A tunnelling request for another protocol, or on an exec URL, is refused.
func TestWebSocketTunnelRefused(t *testing.T) {
	s := newServer(t, newFake())
	u := execURL(t, s, &runtime.ExecRequest{ContainerId: "c1", Cmd: []string{"upper"}, Stdin: true, Stdout: true})
	if _, err := streamingtest.NewPortForwardWebSocket(context.Background(), u); err == nil || !strings.Contains(err.Error(), fmt.Sprint(http.StatusForbidden)) {
		t.Fatalf("tunnel on an exec URL: %v", err)
	}
	// The exec URL was not used up.
	var out bytes.Buffer
	if _, err := streamingtest.StreamWebSocketV5(context.Background(), u, streamingtest.Options{Stdout: &out, Stdin: strings.NewReader("")}); err != nil {
		t.Fatal(err)
	}
}
