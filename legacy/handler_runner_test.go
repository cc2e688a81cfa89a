package legacy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

type stubExec struct {
	res     *ExecSyncResult
	err     error
	timeout time.Duration
}

func (s *stubExec) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) (*ExecSyncResult, error) {
	s.timeout = timeout
	return s.res, s.err
}

func TestHandlerRunnerExec(t *testing.T) {
	ok := &stubExec{res: &ExecSyncResult{Stdout: []byte("fine")}}
	r := NewHandlerRunner(ok, nil, nil)
	if msg, err := r.Run(context.Background(), "c1", nil, nil, &LifecycleHandler{Exec: &ExecAction{Command: []string{"true"}}}); err != nil {
		t.Fatalf("exec ok: %v %s", err, msg)
	}
	if ok.timeout != DefaultExecHookTimeout {
		t.Errorf("exec timeout %v, want %v", ok.timeout, DefaultExecHookTimeout)
	}
	// Within a shorter deadline the command gets what is left of it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	r.Run(ctx, "c1", nil, nil, &LifecycleHandler{Exec: &ExecAction{Command: []string{"true"}}})
	if ok.timeout > time.Second || ok.timeout <= 0 {
		t.Errorf("exec timeout %v within a 1s deadline", ok.timeout)
	}
	big := strings.Repeat("x", 64<<10)
	fail := NewHandlerRunner(&stubExec{res: &ExecSyncResult{Stderr: []byte(big), ExitCode: 2}}, nil, nil)
	msg, err := fail.Run(context.Background(), "c1", nil, nil, &LifecycleHandler{Exec: &ExecAction{Command: []string{"false"}}})
	if err == nil || !strings.Contains(msg, "exit code 2") || len(msg) > maxHookOutput+512 {
		t.Fatalf("exec failure: err %v, message of %d bytes", err, len(msg))
	}
	gone := NewHandlerRunner(&stubExec{err: errors.New("container gone")}, nil, nil)
	if msg, err := gone.Run(context.Background(), "c1", nil, nil, &LifecycleHandler{Exec: &ExecAction{Command: []string{"x"}}}); err == nil || !strings.Contains(msg, "container gone") {
		t.Fatalf("exec error: %v %q", err, msg)
	}
	if _, err := r.Run(context.Background(), "c1", nil, nil, &LifecycleHandler{}); err == nil {
		t.Fatal("a handler without action succeeded")
	}
}

// httpHook is an httpGet hook on the server's port, the host left to the pod IP getter.
func httpHook(t *testing.T, srv *httptest.Server, path string) (*LifecycleHandler, PodIPGetter) {
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(u.Host)
	p, _ := strconv.Atoi(port)
	return &LifecycleHandler{HTTPGet: &HTTPGetAction{Port: p, Path: path, Headers: map[string]string{"X-Hook": "yes"}}},
		func(context.Context, string) (string, error) { return host, nil }
}

func TestHandlerRunnerHTTPGet(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			if r.Header.Get("X-Hook") != "yes" {
				w.WriteHeader(http.StatusBadRequest)
			}
		case "/fail":
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte("broken " + strings.Repeat("y", 64<<10)))
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		case "/slowbody":
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		}
	}))
	defer srv.Close()

	h, ip := httpHook(t, srv, "/ok")
	if msg, err := NewHandlerRunner(nil, nil, ip).Run(context.Background(), "c1", nil, nil, h); err != nil {
		t.Fatalf("200: %v %s", err, msg)
	}
	h, ip = httpHook(t, srv, "/fail")
	msg, err := NewHandlerRunner(nil, nil, ip).Run(context.Background(), "c1", nil, nil, h)
	if err == nil || !strings.Contains(msg, "status 500") || !strings.Contains(msg, "broken") || len(msg) > maxHookOutput+512 {
		t.Fatalf("500: err %v, message %.200q (%d bytes)", err, msg, len(msg))
	}
	for _, path := range []string{"/slow", "/slowbody"} {
		h, ip = httpHook(t, srv, path)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		start := time.Now()
		_, err = NewHandlerRunner(nil, nil, ip).Run(ctx, "c1", nil, nil, h)
		cancel()
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("%s: the hook waited %v past a 300ms deadline", path, d)
		}
		if path == "/slow" && err == nil {
			t.Fatalf("%s: a server that never answers passed", path)
		}
	}
	// Without a deadline the default bound applies.
	old := DefaultHTTPHookTimeout
	DefaultHTTPHookTimeout = 200 * time.Millisecond
	defer func() { DefaultHTTPHookTimeout = old }()
	h, ip = httpHook(t, srv, "/slow")
	start := time.Now()
	if _, err := NewHandlerRunner(nil, nil, ip).Run(context.Background(), "c1", nil, nil, h); err == nil || time.Since(start) > 3*time.Second {
		t.Fatalf("slow server without deadline: err %v after %v", err, time.Since(start))
	}
	noIP := func(context.Context, string) (string, error) { return "", nil }
	if _, err := NewHandlerRunner(nil, nil, noIP).Run(context.Background(), "c1", nil, nil, h); err == nil {
		t.Fatal("httpGet to a pod without IP succeeded")
	}
}

func TestHandlerRunnerSleep(t *testing.T) {
	r := NewHandlerRunner(nil, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := r.Run(ctx, "c1", nil, nil, &LifecycleHandler{Sleep: &SleepAction{Seconds: 30}}); err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("sleep did not end with its context: %v after %v", err, time.Since(start))
	}
	if _, err := r.Run(context.Background(), "c1", nil, nil, &LifecycleHandler{Sleep: &SleepAction{Seconds: 0}}); err != nil {
		t.Fatal(err)
	}
}
