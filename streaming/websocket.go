package streaming

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

// What cri-streaming does not serve and this file does, as the Kubernetes API server translates
// them for the kubelet:
//
//   - exec and attach over a websocket with the v5.channel.k8s.io subprotocol (v4 plus the
//     close-stdin signal on channel 255), which kubectl and critest's -websocket-exec /
//     -websocket-attach ask for alone;
//   - port-forward over SPDY tunnelled in a websocket (subprotocol SPDY/3.1+portforward.k8s.io),
//     critest's -websocket-portforward.
//
// Everything else (SPDY, websockets with the older channel protocols) goes to cri-streaming.
const (
	v5ChannelProtocol   = "v5.channel.k8s.io"
	v4ChannelProtocol   = "v4.channel.k8s.io"
	tunnelingPrefix     = "SPDY/3.1+"
	portForwardProtocol = "portforward.k8s.io"

	// tokenTTL bounds how long a URL's request is kept here; cri-streaming's own cache expires
	// tokens after a minute, and a token it no longer knows is refused anyway.
	tokenTTL = 2 * time.Minute
)

// channel numbers of the remote command protocols.
const (
	chStdin = iota
	chStdout
	chStderr
	chError
	chResize
)

// requests keeps the requests behind the URLs handed out, by token, for the websocket protocols
// served here. cri-streaming's token cache stays the authority on whether a token is valid: a
// token is consumed there (see consume) before it is served here, so each URL still serves once.
type requests struct {
	mu sync.Mutex
	m  map[string]tokenEntry
}

type tokenEntry struct {
	req   any
	added time.Time
}

func (r *requests) add(rawURL string, req any) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = make(map[string]tokenEntry)
	}
	for k, e := range r.m {
		if now.Sub(e.added) > tokenTTL {
			delete(r.m, k)
		}
	}
	r.m[path.Base(u.Path)] = tokenEntry{req: req, added: now}
}

// take removes and returns the request of token if it is of the kind ("exec", "attach").
func (r *requests) take(kind, token string) any {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.m[token]
	if !ok {
		return nil
	}
	switch e.req.(type) {
	case *runtime.ExecRequest:
		ok = kind == "exec"
	case *runtime.AttachRequest:
		ok = kind == "attach"
	default:
		ok = false
	}
	if !ok {
		return nil
	}
	delete(r.m, token)
	if time.Since(e.added) > tokenTTL {
		return nil
	}
	return e.req
}

// ServeHTTP serves the websocket protocols cri-streaming does not know, and hands the rest to it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case wsstream.IsWebSocketRequestWithTunnelingProtocol(r):
		s.servePortForwardTunnel(w, r)
	case wsstream.IsWebSocketRequestWithStreamCloseProtocol(r):
		s.serveRemoteCommandV5(w, r)
	default:
		s.cri.ServeHTTP(w, r)
	}
}

// consume uses up the token of r's URL in cri-streaming's cache with a request that is no upgrade
// (cri-streaming refuses it once it has taken the token): it tells whether the token was valid.
func (s *Server) consume(r *http.Request) bool {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, r.URL.RequestURI(), nil)
	if err != nil {
		return false
	}
	req.RequestURI = r.URL.RequestURI()
	rec := &statusRecorder{header: http.Header{}, code: http.StatusOK}
	s.cri.ServeHTTP(rec, req)
	return rec.code != http.StatusNotFound
}

// statusRecorder is a response writer that keeps the status code only.
type statusRecorder struct {
	header http.Header
	code   int
	wrote  bool
}

func (w *statusRecorder) Header() http.Header { return w.header }

func (w *statusRecorder) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return len(b), nil
}

// serveRemoteCommandV5 serves exec and attach over a websocket with the v5 (or v4) channel
// protocol: channels 0 stdin, 1 stdout, 2 stderr, 3 the status (JSON, with the exit code),
// 4 resize; v5's close signal (255, channel) closes stdin.
func (s *Server) serveRemoteCommandV5(w http.ResponseWriter, r *http.Request) {
	kind := path.Base(path.Dir(r.URL.Path))
	if kind != "exec" && kind != "attach" {
		http.NotFound(w, r)
		return
	}
	cached := s.reqs.take(kind, path.Base(r.URL.Path))
	var (
		containerID                string
		cmd                        []string
		stdin, stdout, stderr, tty bool
	)
	switch req := cached.(type) {
	case *runtime.ExecRequest:
		containerID, cmd = req.ContainerId, req.Cmd
		stdin, stdout, stderr, tty = req.Stdin, req.Stdout, req.Stderr, req.Tty
	case *runtime.AttachRequest:
		containerID = req.ContainerId
		stdin, stdout, stderr, tty = req.Stdin, req.Stdout, req.Stderr, req.Tty
	}
	if cached == nil || !s.consume(r) {
		http.NotFound(w, r)
		return
	}
	if tty {
		stderr = false
	}

	channels := []wsstream.ChannelType{
		chStdin:  readOrIgnore(stdin),
		chStdout: writeOrIgnore(stdout),
		chStderr: writeOrIgnore(stderr),
		chError:  wsstream.WriteChannel,
		chResize: wsstream.ReadChannel,
	}
	conn := wsstream.NewConn(map[string]wsstream.ChannelProtocolConfig{
		v5ChannelProtocol: {Binary: true, Channels: channels},
		v4ChannelProtocol: {Binary: true, Channels: channels},
	})
	conn.SetIdleTimeout(s.idleTimeout)
	_, streams, err := conn.Open(w, r)
	if err != nil {
		klog.ErrorS(err, "streaming: websocket upgrade failed", "kind", kind)
		return
	}
	defer conn.Close()

	// An empty message on the first channel written tells the client the stream is up.
	switch {
	case stdout:
		streams[chStdout].Write(nil)
	case stderr:
		streams[chStderr].Write(nil)
	default:
		streams[chError].Write(nil)
	}

	var (
		in      io.Reader
		out, eo io.WriteCloser
		resize  chan TerminalSize
	)
	if stdin {
		in = streams[chStdin]
	}
	if stdout {
		out = streams[chStdout]
	}
	if stderr {
		eo = streams[chStderr]
	}
	ctx := r.Context()
	if tty {
		resize = make(chan TerminalSize)
		go func() {
			defer close(resize)
			dec := json.NewDecoder(streams[chResize])
			for {
				var sz TerminalSize
				if err := dec.Decode(&sz); err != nil {
					return
				}
				select {
				case resize <- sz:
				case <-ctx.Done():
					return
				}
			}
		}()
	}

	a := &adapter{s.rt}
	if kind == "exec" {
		err = a.Exec(ctx, containerID, cmd, in, out, eo, tty, resize)
	} else {
		err = a.Attach(ctx, containerID, in, out, eo, tty, resize)
		if err != nil {
			err = fmt.Errorf("error attaching to container: %w", err)
		}
	}
	b, _ := json.Marshal(statusOf(err))
	streams[chError].Write(b)
}

func readOrIgnore(on bool) wsstream.ChannelType {
	if on {
		return wsstream.ReadChannel
	}
	return wsstream.IgnoreChannel
}

func writeOrIgnore(on bool) wsstream.ChannelType {
	if on {
		return wsstream.WriteChannel
	}
	return wsstream.IgnoreChannel
}

// wsStatus is the metav1.Status written on the error channel, as cri-streaming writes it for v4.
type wsStatus struct {
	Status  string           `json:"status,omitempty"`
	Message string           `json:"message,omitempty"`
	Reason  string           `json:"reason,omitempty"`
	Details *wsStatusDetails `json:"details,omitempty"`
	Code    int32            `json:"code,omitempty"`
}

type wsStatusDetails struct {
	Causes []wsStatusCause `json:"causes,omitempty"`
}

type wsStatusCause struct {
	Type    string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

func statusOf(err error) wsStatus {
	if err == nil {
		return wsStatus{Status: "Success"}
	}
	var ee ExitError
	if errors.As(err, &ee) && ee.Exited() {
		return wsStatus{
			Status:  "Failure",
			Reason:  "NonZeroExitCode",
			Details: &wsStatusDetails{Causes: []wsStatusCause{{Type: "ExitCode", Message: fmt.Sprint(ee.ExitStatus())}}},
			Message: fmt.Sprintf("command terminated with non-zero exit code: %v", ee),
		}
	}
	return wsStatus{
		Status:  "Failure",
		Reason:  "InternalError",
		Message: fmt.Sprintf("Internal error occurred: %v", err),
		Code:    http.StatusInternalServerError,
	}
}

// servePortForwardTunnel serves port-forward over SPDY tunnelled in a websocket: cri-streaming's
// SPDY port-forward handler gets the request as a SPDY upgrade (which uses up the token there),
// and its upgrade, once it answers 101, becomes the websocket's, the SPDY connection running on
// the websocket's binary messages.
func (s *Server) servePortForwardTunnel(w http.ResponseWriter, r *http.Request) {
	var sub string
	for _, p := range strings.Split(r.Header.Get(wsstream.WebSocketProtocolHeader), ",") {
		p = strings.TrimSpace(p)
		if strings.HasPrefix(p, tunnelingPrefix) {
			sub = p
			break
		}
	}
	if path.Base(path.Dir(r.URL.Path)) != "portforward" || strings.TrimPrefix(sub, tunnelingPrefix) != portForwardProtocol {
		http.Error(w, "unable to upgrade: no supported tunnelled protocol", http.StatusForbidden)
		return
	}
	req := r.Clone(r.Context())
	for _, h := range []string{"Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Extensions", "Sec-Websocket-Protocol"} {
		req.Header.Del(h)
	}
	req.Header.Set(httpstream.HeaderConnection, httpstream.HeaderUpgrade)
	req.Header.Set(httpstream.HeaderUpgrade, "SPDY/3.1")
	req.Header.Set(httpstream.HeaderProtocolVersion, portForwardProtocol)
	tw := &tunnelWriter{w: w, r: r, sub: sub, header: http.Header{}}
	s.cri.ServeHTTP(tw, req)
	if tw.conn != nil {
		tw.conn.Close()
	}
}

// tunnelWriter is the response writer cri-streaming's SPDY upgrade gets: any answer but 101
// goes to the client as is; 101 upgrades the client's connection to the websocket, and Hijack
// returns the websocket as the connection.
type tunnelWriter struct {
	w      http.ResponseWriter
	r      *http.Request
	sub    string
	header http.Header
	wrote  bool
	conn   *WebSocketConn
	err    error
}

func (t *tunnelWriter) Header() http.Header { return t.header }

func (t *tunnelWriter) WriteHeader(code int) {
	if t.wrote {
		return
	}
	t.wrote = true
	if code != http.StatusSwitchingProtocols {
		for k, v := range t.header {
			t.w.Header()[k] = v
		}
		t.w.WriteHeader(code)
		return
	}
	up := websocket.Upgrader{
		Subprotocols:    []string{t.sub},
		CheckOrigin:     func(*http.Request) bool { return true },
		ReadBufferSize:  32 << 10,
		WriteBufferSize: 32 << 10,
	}
	ws, err := up.Upgrade(t.w, t.r, nil)
	if err != nil {
		t.err = err
		return
	}
	t.conn = NewWebSocketConn(ws)
}

func (t *tunnelWriter) Write(b []byte) (int, error) {
	if !t.wrote {
		t.WriteHeader(http.StatusOK)
	}
	if t.conn != nil || t.err != nil {
		return 0, http.ErrHijacked
	}
	return t.w.Write(b)
}

func (t *tunnelWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if t.conn == nil {
		if t.err != nil {
			return nil, nil, t.err
		}
		return nil, nil, errors.New("streaming: no websocket to hijack")
	}
	return t.conn, bufio.NewReadWriter(bufio.NewReader(t.conn), bufio.NewWriter(t.conn)), nil
}
