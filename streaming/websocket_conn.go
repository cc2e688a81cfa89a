package streaming

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// WebSocketConn is a websocket as a net.Conn: what is written goes out as binary messages, and
// reading returns the payloads of the binary messages received, one after the other (the
// framing of SPDY tunnelled in a websocket, as client-go's TunnelingConnection does it).
type WebSocketConn struct {
	ws *websocket.Conn

	rmu sync.Mutex
	cur io.Reader

	wmu       sync.Mutex
	closeOnce sync.Once
	closeErr  error
}

// NewWebSocketConn wraps ws.
func NewWebSocketConn(ws *websocket.Conn) *WebSocketConn { return &WebSocketConn{ws: ws} }

var _ net.Conn = (*WebSocketConn)(nil)

// Read reads from the binary messages received; a close from the peer is io.EOF.
func (c *WebSocketConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		if c.cur == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) && (ce.Code == websocket.CloseNormalClosure || ce.Code == websocket.CloseGoingAway) {
					return 0, io.EOF
				}
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				continue
			}
			c.cur = r
		}
		n, err := c.cur.Read(p)
		if errors.Is(err, io.EOF) {
			c.cur = nil
			err = nil
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
}

// Write sends p as one binary message.
func (c *WebSocketConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close sends a normal close and closes the connection.
func (c *WebSocketConn) Close() error {
	c.closeOnce.Do(func() {
		msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
		c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		c.closeErr = c.ws.Close()
	})
	return c.closeErr
}

// LocalAddr is the websocket's local address.
func (c *WebSocketConn) LocalAddr() net.Addr { return c.ws.LocalAddr() }

// RemoteAddr is the websocket's remote address.
func (c *WebSocketConn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }

// SetDeadline sets both deadlines.
func (c *WebSocketConn) SetDeadline(t time.Time) error {
	if err := c.ws.SetReadDeadline(t); err != nil {
		return err
	}
	return c.ws.SetWriteDeadline(t)
}

// SetReadDeadline sets the read deadline.
func (c *WebSocketConn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline.
func (c *WebSocketConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }
