// Package websocket is the WebSocket transformer, built on
// github.com/coder/websocket. It speaks plain RFC 6455 exactly as Primus's
// "websockets" transformer does: one message per frame, no sub-protocol, any
// path under the server's pathname, and 426 Upgrade Required for plain HTTP.
//
// Use it with the server (it is the default) and with the Go client:
//
//	srv, err := primus.New(&primus.Options{Transformer: websocket.New()})
//	client, err := primus.Dial(ctx, "http://127.0.0.1:8080/primus", &primus.ClientOptions{Dialer: websocket.New()})
package websocket

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	ws "github.com/coder/websocket"

	"github.com/go-primus/primus/transport"
)

// Transformer is the WebSocket transformer and dialer. The zero value is
// ready to use; New returns one.
type Transformer struct{}

// New returns the WebSocket transformer.
func New() *Transformer { return &Transformer{} }

var (
	_ transport.Transformer = (*Transformer)(nil)
	_ transport.Dialer      = (*Transformer)(nil)
	_ transport.Opener      = (*Transformer)(nil)
)

// Opens reports whether r is a WebSocket upgrade: every one opens a
// connection.
func (*Transformer) Opens(r *http.Request) bool { return isUpgrade(r) }

// Name returns "websockets", Primus's name for this transformer.
func (*Transformer) Name() string { return "websockets" }

// Capabilities: WebSocket carries binary frames.
func (*Transformer) Capabilities() transport.Capabilities {
	return transport.Capabilities{Binary: true}
}

// Handler returns the handler that upgrades every WebSocket request under
// the pathname (any path below it, as Primus does), answers plain HTTP
// requests for the pathname itself with 426 Upgrade Required, and others
// with 404.
func (*Transformer) Handler(opts transport.Options, accept transport.AcceptFunc) (http.Handler, error) {
	if accept == nil {
		return nil, errors.New("websocket: nil accept function")
	}
	mode := ws.CompressionDisabled
	if opts.Compression {
		mode = ws.CompressionContextTakeover
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isUpgrade(r) {
			if p := r.URL.Path; p != opts.Pathname && p != opts.Pathname+"/" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Connection", "Upgrade")
			w.Header().Set("Upgrade", "websocket")
			w.WriteHeader(http.StatusUpgradeRequired)
			_, _ = w.Write([]byte("Upgrade Required"))
			return
		}
		c := &conn{}
		hw := &hijackRecorder{ResponseWriter: w}
		wc, err := ws.Accept(hw, r, &ws.AcceptOptions{
			InsecureSkipVerify: opts.InsecureSkipOriginCheck,
			OriginPatterns:     opts.OriginPatterns,
			CompressionMode:    mode,
			OnPingReceived: func(context.Context, []byte) bool {
				if f := c.onPing.Load(); f != nil {
					(*f)()
				}
				return true
			},
		})
		if err != nil {
			opts.Logger.Debug("websocket: handshake failed", "remote", r.RemoteAddr, "error", err)
			return // Accept has answered the request
		}
		wc.SetReadLimit(opts.MaxMessageSize)
		c.c, c.raw, c.br = wc, hw.conn, hw.br
		if hw.br != nil {
			c.space = newSendSpace(hw.conn)
		}
		// The core detaches the connection (transport.IdleReader) and reads
		// it from a goroutine of its own, so accept returns once the
		// connection is set up, and net/http's serving goroutine (with its
		// grown stack), its conn, response and request buffers are freed
		// instead of kept for the connection's life.
		accept(r, serverConn{c})
		if !c.wait.detached.Load() {
			_ = c.CloseNow()
		}
	}), nil
}

func isUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// Dial opens a WebSocket to url (http, https, ws or wss).
func (*Transformer) Dial(ctx context.Context, url string, opts transport.DialOptions) (transport.Conn, error) {
	url = toWS(url)
	mode := ws.CompressionDisabled
	if opts.Compression {
		mode = ws.CompressionContextTakeover
	}
	c := &conn{}
	wc, resp, err := ws.Dial(ctx, url, &ws.DialOptions{
		HTTPClient:      opts.HTTPClient,
		HTTPHeader:      opts.Header,
		CompressionMode: mode,
		OnPingReceived: func(context.Context, []byte) bool {
			if f := c.onPing.Load(); f != nil {
				(*f)()
			}
			return true
		},
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols && resp.StatusCode != 0 {
			he := &transport.HandshakeError{StatusCode: resp.StatusCode, Header: resp.Header}
			if resp.Body != nil {
				buf := make([]byte, 64<<10)
				n, _ := readFull(resp.Body, buf)
				he.Body = buf[:n]
			}
			return nil, fmt.Errorf("websocket: failed to dial %s: %w", url, he)
		}
		return nil, fmt.Errorf("websocket: failed to dial %s: %w", url, err)
	}
	if opts.MaxMessageSize > 0 {
		wc.SetReadLimit(opts.MaxMessageSize)
	}
	c.c = wc
	return c, nil
}

func toWS(u string) string {
	switch {
	case strings.HasPrefix(u, "http://"):
		return "ws://" + u[len("http://"):]
	case strings.HasPrefix(u, "https://"):
		return "wss://" + u[len("https://"):]
	}
	return u
}

func readFull(r interface{ Read([]byte) (int, error) }, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// hijackRecorder keeps the connection that ws.Accept hijacks, so that
// CloseNow can close it at once, and the reader it gives the library.
type hijackRecorder struct {
	http.ResponseWriter
	conn net.Conn
	br   *bufio.Reader // nil when the library reads net/http's own reader
}

// connBufferSize is the size of the read and write buffers the WebSocket
// library keeps for the connection's life: net/http's are 4 KiB each, which
// is most of an idle connection's memory. Frames larger than the buffer are
// read and written without it.
const connBufferSize = 512

func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	h.conn = c
	if err != nil || brw.Reader.Buffered() > connBufferSize || brw.Writer.Buffered() > 0 {
		return c, brw, err
	}
	// Bytes the client sent after its handshake are already buffered: move
	// them into the new reader's buffer (the library takes what is buffered).
	var src io.Reader = c
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		src = &carryReader{carry: bytes.Clone(b), Reader: c}
	}
	r := bufio.NewReaderSize(src, connBufferSize)
	if cr, ok := src.(*carryReader); ok {
		if _, err := r.Peek(len(cr.carry)); err != nil {
			return c, brw, nil
		}
	}
	h.br = r
	return c, bufio.NewReadWriter(r, bufio.NewWriterSize(c, connBufferSize)), nil
}

// carryReader reads carry, then its Reader.
type carryReader struct {
	carry []byte
	io.Reader
}

func (r *carryReader) Read(p []byte) (int, error) {
	if len(r.carry) == 0 {
		return r.Reader.Read(p)
	}
	n := copy(p, r.carry)
	r.carry = r.carry[n:]
	if len(r.carry) == 0 {
		r.carry = nil
	}
	return n, nil
}

func (h *hijackRecorder) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// conn adapts a *ws.Conn to transport.Conn.
type conn struct {
	c      *ws.Conn
	raw    net.Conn      // the hijacked connection (server side only)
	br     *bufio.Reader // the library's reader, when it is ours (server side)
	wait   waitState     // the server side's wait for the next message (idle.go)
	space  *sendSpace    // nil unless raw is a TCP connection on Linux
	onPing atomic.Pointer[func()]
}

// serverConn is the server side's conn, with what the core uses to write
// from the calling goroutine and to bound writes without a timer.
type serverConn struct{ *conn }

// Writable reports whether a message of n bytes fits in the socket's send
// buffer now, so that writing it cannot wait for the peer.
func (c serverConn) Writable(n int) bool {
	return c.space != nil && c.space.writable(n)
}

// SetWriteDeadline bounds the writes on the hijacked connection.
func (c serverConn) SetWriteDeadline(t time.Time) error { return c.raw.SetWriteDeadline(t) }

var (
	_ transport.WriteSpace     = serverConn{}
	_ transport.WriteDeadliner = serverConn{}
	_ transport.IdleReader     = serverConn{}
)

// OnPing registers f to run when the peer sends a WebSocket ping frame; the
// core counts such a ping as a sign of life, as Primus does.
func (c *conn) OnPing(f func()) { c.onPing.Store(&f) }

func (c *conn) Read(ctx context.Context) (transport.MessageType, []byte, error) {
	if c.br != nil {
		if err := c.waitMessage(); err != nil {
			return 0, nil, err
		}
		if ch := c.closingChan(); ch != nil {
			// Let Close's handshake read the peer's answer itself; read
			// what is left (the error) once it is done.
			<-ch
		}
	}
	typ, b, err := c.c.Read(ctx)
	if err != nil {
		if errors.Is(err, ws.ErrMessageTooBig) {
			return 0, nil, fmt.Errorf("%w: %w", transport.ErrMessageTooBig, err)
		}
		return 0, nil, err
	}
	if typ == ws.MessageBinary {
		return transport.Binary, b, nil
	}
	return transport.Text, b, nil
}

func (c *conn) Write(ctx context.Context, typ transport.MessageType, data []byte) error {
	mt := ws.MessageText
	if typ == transport.Binary {
		mt = ws.MessageBinary
	}
	if c.space != nil {
		c.space.wrote(len(data))
	}
	return c.c.Write(ctx, mt, data)
}

func (c *conn) Close(code int, reason string) error {
	if c.br != nil {
		if done := c.beginClose(); done != nil {
			defer done()
		}
	}
	return c.c.Close(ws.StatusCode(code), reason)
}

// CloseNow closes the connection at once. ws.Conn.CloseNow alone does not
// when a Close is in progress: it then waits for that close handshake (up to
// 5 s for a peer that does not answer), so the server side closes the
// hijacked connection first, which ends the handshake.
func (c *conn) CloseNow() error {
	if c.raw != nil {
		_ = c.raw.Close()
	}
	return c.c.CloseNow()
}
