package streaming

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	cristreaming "k8s.io/cri-streaming/pkg/streaming"
)

// DefaultAddress is where the server listens when Config.Addr is empty: loopback, a free port.
const DefaultAddress = "127.0.0.1:0"

// Config configures the streaming server.
type Config struct {
	// Addr is the host:port to listen on; empty: DefaultAddress. Port 0 picks a free port, which
	// the URLs then carry.
	Addr string
	// BaseURL, when set, is the base of the URLs handed out (behind a proxy); else they are built
	// from the address the server listens on.
	BaseURL *url.URL
	// TLSConfig, when set, serves https with it.
	TLSConfig *tls.Config
	// StreamIdleTimeout closes a connection idle that long; 0: 4 hours.
	StreamIdleTimeout time.Duration
	// StreamCreationTimeout bounds the wait for a SPDY client's streams; 0: 30 s.
	StreamCreationTimeout time.Duration
}

// Server is the streaming server: single-use URLs for Exec, Attach and PortForward, and the HTTP
// server that serves them over SPDY and websockets.
type Server struct {
	cri  cristreaming.Server
	lis  net.Listener
	http *http.Server
	url  *url.URL

	// for the websocket protocols served in websocket.go
	rt          Runtime
	reqs        requests
	idleTimeout time.Duration

	mu      sync.Mutex
	started bool
	done    chan struct{}
	err     error
}

// NewServer listens on cfg.Addr and returns the server on rt; Start serves it.
func NewServer(cfg Config, rt Runtime) (*Server, error) {
	if rt == nil {
		return nil, errors.New("streaming: no runtime")
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddress
	}
	lis, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("streaming server: %w", err)
	}
	base := cfg.BaseURL
	if base == nil {
		base = &url.URL{Scheme: "http", Host: lis.Addr().String()}
		if cfg.TLSConfig != nil {
			base.Scheme = "https"
		}
	}
	cc := cristreaming.DefaultConfig
	cc.Addr = lis.Addr().String()
	cc.BaseURL = base
	cc.TLSConfig = cfg.TLSConfig
	if cfg.StreamIdleTimeout > 0 {
		cc.StreamIdleTimeout = cfg.StreamIdleTimeout
	}
	if cfg.StreamCreationTimeout > 0 {
		cc.StreamCreationTimeout = cfg.StreamCreationTimeout
	}
	cri, err := cristreaming.NewServer(cc, &adapter{rt})
	if err != nil {
		lis.Close()
		return nil, err
	}
	s := &Server{
		cri:         cri,
		url:         base,
		rt:          rt,
		idleTimeout: cc.StreamIdleTimeout,
		http: &http.Server{
			TLSConfig:         cfg.TLSConfig,
			ReadHeaderTimeout: 30 * time.Second,
			ConnContext:       connContext,
		},
		done: make(chan struct{}),
	}
	s.http.Handler = s
	s.lis = &trackingListener{Listener: lis}
	if cfg.TLSConfig != nil {
		s.lis = tls.NewListener(s.lis, cfg.TLSConfig)
	}
	return s, nil
}

// Start serves in the background until Stop.
func (s *Server) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return
	}
	s.started = true
	go func() {
		err := s.http.Serve(s.lis)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		close(s.done)
	}()
}

// Done is closed when the server stopped serving; Err tells why.
func (s *Server) Done() <-chan struct{} { return s.done }

// Err is the error that stopped the server (nil after Stop).
func (s *Server) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Stop closes the listener and every connection, streams in progress included (their clients see
// the connection end; the runtime kills their exec processes).
func (s *Server) Stop() error {
	err := s.http.Close()
	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	if !started {
		s.lis.Close()
		return err
	}
	<-s.done
	return err
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.lis.Addr() }

// URL is the base of the URLs the server hands out.
func (s *Server) URL() *url.URL { u := *s.url; return &u }

// GetExec validates req and returns the single-use URL that runs it.
func (s *Server) GetExec(req *runtime.ExecRequest) (*runtime.ExecResponse, error) {
	resp, err := s.cri.GetExec(req)
	if err == nil {
		s.reqs.add(resp.GetUrl(), req)
	}
	return resp, err
}

// GetAttach validates req and returns the single-use URL that attaches.
func (s *Server) GetAttach(req *runtime.AttachRequest) (*runtime.AttachResponse, error) {
	resp, err := s.cri.GetAttach(req)
	if err == nil {
		s.reqs.add(resp.GetUrl(), req)
	}
	return resp, err
}

// GetPortForward validates req and returns the single-use URL that forwards ports.
func (s *Server) GetPortForward(req *runtime.PortForwardRequest) (*runtime.PortForwardResponse, error) {
	return s.cri.GetPortForward(req)
}

// adapter is the cri-streaming runtime on ours.
type adapter struct{ rt Runtime }

func (a *adapter) Exec(ctx context.Context, id string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan TerminalSize) error {
	return a.rt.ExecInContainer(ctx, id, cmd, in, out, errw, tty, resize)
}

func (a *adapter) Attach(ctx context.Context, id string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan TerminalSize) error {
	return a.rt.AttachContainer(ctx, id, in, out, errw, tty, resize)
}

func (a *adapter) PortForward(ctx context.Context, podSandboxID string, port int32, stream io.ReadWriteCloser) error {
	if port <= 0 || port > 65535 {
		return fmt.Errorf("invalid port %d", port)
	}
	return a.rt.PortForward(ctx, podSandboxID, port, stream)
}

// A hijacked connection (SPDY, websocket) is no longer watched by net/http: its request's context
// is not cancelled when the client goes away. trackingListener's connections cancel the context
// of their requests when a read fails for any other reason than a deadline (EOF, reset) or when
// they are closed, so that an exec whose client disconnected ends and its process is killed.
type trackingListener struct{ net.Listener }

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &trackedConn{Conn: c}, nil
}

type trackedConn struct {
	net.Conn
	mu     sync.Mutex
	gone   bool
	cancel context.CancelFunc
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		var ne net.Error
		if !(errors.As(err, &ne) && ne.Timeout()) {
			c.markGone()
		}
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.markGone()
	return c.Conn.Close()
}

func (c *trackedConn) markGone() {
	c.mu.Lock()
	c.gone = true
	cancel := c.cancel
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// connContext gives each connection a context that ends when the connection is gone.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	tc, ok := c.(*trackedConn)
	if !ok {
		return ctx
	}
	ctx, cancel := context.WithCancel(ctx)
	tc.mu.Lock()
	tc.cancel = cancel
	gone := tc.gone
	tc.mu.Unlock()
	if gone {
		cancel()
	}
	return ctx
}
