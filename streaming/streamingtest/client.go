// Package streamingtest is a small client of the streaming server (exec / attach over SPDY and
// websockets, port-forward over SPDY and over SPDY tunnelled in a websocket), for tests.
package streamingtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cri-shim/cri-shim/streaming"
	"github.com/gorilla/websocket"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
)

// Options are the client's streams (nil: not wanted).
type Options struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	TTY            bool
	// Resize, when set with TTY, sends terminal sizes.
	Resize <-chan Size
}

// Size is a terminal size.
type Size struct{ Width, Height uint16 }

// Result is what the server reported at the end of the stream.
type Result struct {
	// ExitCode of the command (0 on success).
	ExitCode int
	// Failure is the message of a failure that is no exit code ("" on success).
	Failure string
}

type status struct {
	Status  string `json:"status"`
	Message string `json:"message"`
	Reason  string `json:"reason"`
	Details struct {
		Causes []struct {
			Type    string `json:"reason"`
			Message string `json:"message"`
		} `json:"causes"`
	} `json:"details"`
}

func parseStatus(b []byte) (Result, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return Result{}, nil
	}
	var st status
	if err := json.Unmarshal(b, &st); err != nil {
		return Result{Failure: string(b)}, nil
	}
	if st.Status == "Success" {
		return Result{}, nil
	}
	if st.Reason == "NonZeroExitCode" {
		for _, c := range st.Details.Causes {
			if c.Type == "ExitCode" {
				n, err := strconv.Atoi(c.Message)
				if err != nil {
					return Result{}, err
				}
				return Result{ExitCode: n}, nil
			}
		}
	}
	return Result{Failure: st.Message}, nil
}

// DialSPDY upgrades a connection to rawURL with the given subprotocol.
func DialSPDY(ctx context.Context, rawURL, protocol string) (httpstream.Connection, error) {
	rt, err := spdy.NewRoundTripper(nil)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(httpstream.HeaderConnection, httpstream.HeaderUpgrade)
	req.Header.Set(httpstream.HeaderUpgrade, "SPDY/3.1")
	req.Header.Set(httpstream.HeaderProtocolVersion, protocol)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	conn, err := rt.NewConnection(resp)
	if err != nil {
		resp.Body.Close()
		return nil, err
	}
	return conn, nil
}

// Stream runs an exec or attach URL over SPDY (v4.channel.k8s.io) until the server ends it.
func Stream(ctx context.Context, rawURL string, o Options) (Result, error) {
	conn, err := DialSPDY(ctx, rawURL, "v4.channel.k8s.io")
	if err != nil {
		return Result{}, err
	}
	defer conn.Close()
	return StreamOn(conn, o)
}

// StreamOn runs the exec or attach protocol on an upgraded SPDY connection.
func StreamOn(conn httpstream.Connection, o Options) (Result, error) {
	mk := func(typ string) (httpstream.Stream, error) {
		h := http.Header{}
		h.Set("streamType", typ)
		return conn.CreateStream(h)
	}
	errStream, err := mk("error")
	if err != nil {
		return Result{}, err
	}
	errc := make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(errStream); errc <- b }()
	if o.Stdin != nil {
		s, err := mk("stdin")
		if err != nil {
			return Result{}, err
		}
		go func() { io.Copy(s, o.Stdin); s.Close() }()
	}
	var wg sync.WaitGroup
	for _, p := range []struct {
		typ string
		w   io.Writer
	}{{"stdout", o.Stdout}, {"stderr", o.Stderr}} {
		if p.w == nil || (p.typ == "stderr" && o.TTY) {
			continue
		}
		s, err := mk(p.typ)
		if err != nil {
			return Result{}, err
		}
		wg.Add(1)
		go func() { defer wg.Done(); io.Copy(p.w, s) }()
	}
	if o.TTY {
		s, err := mk("resize")
		if err != nil {
			return Result{}, err
		}
		if o.Resize != nil {
			go func() {
				for sz := range o.Resize {
					b, _ := json.Marshal(map[string]uint16{"Width": sz.Width, "Height": sz.Height})
					if _, err := s.Write(b); err != nil {
						return
					}
				}
			}()
		}
	}
	b := <-errc
	wg.Wait()
	return parseStatus(b)
}

// StreamWebSocket runs an exec or attach URL over a websocket (v4.channel.k8s.io) until the
// server ends it. With stdin, the client's stdin is sent and never closed (v4 cannot).
func StreamWebSocket(ctx context.Context, rawURL string, o Options) (Result, error) {
	return StreamWebSocketProtocol(ctx, rawURL, "v4.channel.k8s.io", o)
}

// StreamWebSocketV5 runs an exec or attach URL over a websocket with v5.channel.k8s.io, the
// protocol kubectl and critest ask for: at the end of the client's stdin, stdin is closed.
func StreamWebSocketV5(ctx context.Context, rawURL string, o Options) (Result, error) {
	return StreamWebSocketProtocol(ctx, rawURL, "v5.channel.k8s.io", o)
}

// StreamWebSocketProtocol runs an exec or attach URL over a websocket with the given channel
// protocol; with v5.channel.k8s.io the end of stdin is sent as the close signal.
func StreamWebSocketProtocol(ctx context.Context, rawURL, protocol string, o Options) (Result, error) {
	conn, err := DialWebSocket(ctx, rawURL, protocol)
	if err != nil {
		return Result{}, err
	}
	defer conn.Close()
	if got := conn.Subprotocol(); got != protocol {
		return Result{}, fmt.Errorf("server chose subprotocol %q, not %q", got, protocol)
	}
	var wmu sync.Mutex
	write := func(ch byte, b []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		return conn.WriteMessage(websocket.BinaryMessage, append([]byte{ch}, b...))
	}
	if o.Stdin != nil {
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := o.Stdin.Read(buf)
				if n > 0 {
					if werr := write(0, buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					if protocol == "v5.channel.k8s.io" {
						write(255, []byte{0})
					}
					return
				}
			}
		}()
	}
	if o.TTY && o.Resize != nil {
		go func() {
			for sz := range o.Resize {
				b, _ := json.Marshal(map[string]uint16{"Width": sz.Width, "Height": sz.Height})
				if err := write(4, b); err != nil {
					return
				}
			}
		}()
	}
	var errBuf bytes.Buffer
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				break
			}
			return Result{}, err
		}
		if len(msg) == 0 {
			continue
		}
		data := msg[1:]
		switch msg[0] {
		case 1:
			if o.Stdout != nil {
				o.Stdout.Write(data)
			}
		case 2:
			if o.Stderr != nil {
				o.Stderr.Write(data)
			}
		case 3:
			errBuf.Write(data)
		}
	}
	return parseStatus(errBuf.Bytes())
}

// DialWebSocket opens a websocket on rawURL (http[s] becomes ws[s]) with the subprotocol.
func DialWebSocket(ctx context.Context, rawURL, protocol string) (*websocket.Conn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	d := websocket.Dialer{Subprotocols: []string{protocol}, HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.DialContext(ctx, u.String(), nil)
	if err != nil {
		if resp != nil {
			b, _ := io.ReadAll(resp.Body)
			return nil, fmt.Errorf("websocket %s: %v (%s): %s", u, err, resp.Status, b)
		}
		return nil, err
	}
	return conn, nil
}

// PortForward is a port-forward connection over SPDY: each Dial is a new stream pair on it.
type PortForward struct {
	conn httpstream.Connection
	mu   sync.Mutex
	next int
}

// NewPortForward connects to a port-forward URL.
func NewPortForward(ctx context.Context, rawURL string) (*PortForward, error) {
	conn, err := DialSPDY(ctx, rawURL, "portforward.k8s.io")
	if err != nil {
		return nil, err
	}
	return &PortForward{conn: conn}, nil
}

// NewPortForwardWebSocket connects to a port-forward URL with SPDY tunnelled in a websocket
// (subprotocol SPDY/3.1+portforward.k8s.io), as critest's -websocket-portforward does.
func NewPortForwardWebSocket(ctx context.Context, rawURL string) (*PortForward, error) {
	ws, err := DialWebSocket(ctx, rawURL, "SPDY/3.1+portforward.k8s.io")
	if err != nil {
		return nil, err
	}
	conn, err := spdy.NewClientConnection(streaming.NewWebSocketConn(ws))
	if err != nil {
		ws.Close()
		return nil, err
	}
	return &PortForward{conn: conn}, nil
}

// Close closes the connection.
func (p *PortForward) Close() error { return p.conn.Close() }

// Done is closed when the connection ended.
func (p *PortForward) Done() <-chan bool { return p.conn.CloseChan() }

// Forwarded is one forwarded connection: Data is the byte stream; Err yields what the server
// reported on the error stream once it closed ("" for none).
type Forwarded struct {
	Data httpstream.Stream
	Err  <-chan string
}

// Dial opens a stream pair to port.
func (p *PortForward) Dial(port int) (*Forwarded, error) {
	p.mu.Lock()
	id := p.next
	p.next++
	p.mu.Unlock()
	h := http.Header{}
	h.Set("streamType", "error")
	h.Set("port", strconv.Itoa(port))
	h.Set("requestID", strconv.Itoa(id))
	es, err := p.conn.CreateStream(h)
	if err != nil {
		return nil, err
	}
	es.Close() // the client writes nothing on it
	errc := make(chan string, 1)
	go func() { b, _ := io.ReadAll(es); errc <- string(b) }()
	h.Set("streamType", "data")
	ds, err := p.conn.CreateStream(h)
	if err != nil {
		return nil, err
	}
	return &Forwarded{Data: ds, Err: errc}, nil
}
