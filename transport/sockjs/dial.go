package sockjs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"

	ws "github.com/coder/websocket"

	"github.com/go-primus/primus/transport"
)

// CloseError is the close frame c[code,"reason"] a server sent. A
// connection's Read returns an error wrapping it when the session ends.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("sockjs: session closed with %d %q", e.Code, e.Reason)
}

// Dial opens a SockJS session to url (http, https, ws or wss; its path is
// the server's pathname, its query the connection's query) over SockJS's
// websocket transport, as sockjs-client does: GET <pathname>/info, then a
// WebSocket to <pathname>/<3 digits>/<8 random characters>/websocket with
// the same query. A refusal of either step with an HTTP status wraps a
// *transport.HandshakeError.
//
// The connection carries text messages only. Its Read skips SockJS
// heartbeats and returns the messages of each frame one by one; a close
// frame from the server ends it with a *CloseError.
func (t *Transformer) Dial(ctx context.Context, rawURL string, opts transport.DialOptions) (transport.Conn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("sockjs: failed to dial: %w", err)
	}
	base := *u
	base.Fragment = ""
	base.Path = strings.TrimSuffix(u.Path, "/")
	base.RawPath = ""
	switch u.Scheme {
	case "http", "https":
	case "ws":
		base.Scheme = "http"
	case "wss":
		base.Scheme = "https"
	default:
		return nil, fmt.Errorf("sockjs: failed to dial %s: scheme must be http, https, ws or wss", rawURL)
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}

	info := base
	info.Path += "/info"
	if err := checkInfo(ctx, hc, info.String(), opts.Header); err != nil {
		return nil, err
	}

	sess := base
	sess.Path += fmt.Sprintf("/%03d/%s/websocket", rand.IntN(1000), sessionID())
	sess.Scheme = strings.Replace(sess.Scheme, "http", "ws", 1)
	mode := ws.CompressionDisabled
	if opts.Compression {
		mode = ws.CompressionContextTakeover
	}
	wc, resp, err := ws.Dial(ctx, sess.String(), &ws.DialOptions{
		HTTPClient:      opts.HTTPClient,
		HTTPHeader:      opts.Header,
		CompressionMode: mode,
	})
	if err != nil {
		if resp != nil && resp.StatusCode != 0 && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, fmt.Errorf("sockjs: failed to dial %s: %w", sess.String(), handshakeError(resp))
		}
		return nil, fmt.Errorf("sockjs: failed to dial %s: %w", sess.String(), err)
	}
	limit := opts.MaxMessageSize
	if limit <= 0 {
		limit = 1 << 20
	}
	wc.SetReadLimit(frameLimit(limit))
	c := &clientConn{c: wc, max: limit}
	// The session is open once the server says "o".
	if _, b, err := wc.Read(ctx); err != nil || string(b) != "o" {
		if err == nil {
			err = c.frameError(b)
		}
		_ = wc.CloseNow()
		return nil, fmt.Errorf("sockjs: failed to open a session at %s: %w", sess.String(), err)
	}
	return c, nil
}

// checkInfo asks the server for its SockJS info: the request the
// authorization runs on first.
func checkInfo(ctx context.Context, hc *http.Client, infoURL string, header http.Header) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, infoURL, nil)
	if err != nil {
		return fmt.Errorf("sockjs: failed to dial: %w", err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("sockjs: failed to get %s: %w", infoURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("sockjs: failed to get %s: %w", infoURL, handshakeError(resp))
	}
	var info struct {
		WebSocket bool `json:"websocket"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&info); err != nil {
		return fmt.Errorf("sockjs: failed to read %s: %w: %w", infoURL, ErrProtocol, err)
	}
	if !info.WebSocket {
		return fmt.Errorf("sockjs: failed to dial: %w", ErrNoWebSocket)
	}
	return nil
}

// handshakeError reads the start of a refusal.
func handshakeError(resp *http.Response) *transport.HandshakeError {
	he := &transport.HandshakeError{StatusCode: resp.StatusCode, Header: resp.Header}
	if resp.Body != nil {
		he.Body, _ = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	}
	return he
}

const sessionChars = "abcdefghijklmnopqrstuvwxyz012345"

// sessionID returns 8 random characters, as sockjs-client's session ids.
func sessionID() string {
	var b [8]byte
	for i := range b {
		b[i] = sessionChars[rand.IntN(len(sessionChars))]
	}
	return string(b[:])
}

// clientConn is a SockJS session over a WebSocket, from the client's side.
// Read is called from one goroutine at a time, and so is Write.
type clientConn struct {
	c       *ws.Conn
	max     int64
	pending []string // messages of the last frame not read yet
}

var _ transport.Conn = (*clientConn)(nil)

func (c *clientConn) Read(ctx context.Context) (transport.MessageType, []byte, error) {
	for len(c.pending) == 0 {
		typ, b, err := c.c.Read(ctx)
		if err != nil {
			if errors.Is(err, ws.ErrMessageTooBig) {
				return 0, nil, fmt.Errorf("sockjs: failed to read: %w: %w", transport.ErrMessageTooBig, err)
			}
			return 0, nil, fmt.Errorf("sockjs: failed to read: %w", err)
		}
		if typ != ws.MessageText {
			_ = c.c.Close(ws.StatusProtocolError, "")
			return 0, nil, fmt.Errorf("sockjs: failed to read: %w: a binary frame", ErrProtocol)
		}
		if len(b) == 0 {
			continue // sockjs-go's close frame when its session ends without one; the close follows
		}
		switch b[0] {
		case 'h': // SockJS heartbeat
		case 'a':
			var msgs []string
			if err := json.Unmarshal(b[1:], &msgs); err != nil {
				_ = c.c.Close(ws.StatusProtocolError, "")
				return 0, nil, fmt.Errorf("sockjs: failed to read: %w: %w", ErrProtocol, err)
			}
			for _, m := range msgs {
				if int64(len(m)) > c.max {
					_ = c.c.Close(ws.StatusMessageTooBig, "")
					return 0, nil, fmt.Errorf("sockjs: failed to read a message of %d bytes: %w", len(m), transport.ErrMessageTooBig)
				}
			}
			c.pending = msgs
		default:
			err := c.frameError(b)
			_ = c.c.CloseNow()
			return 0, nil, fmt.Errorf("sockjs: failed to read: %w", err)
		}
	}
	m := c.pending[0]
	c.pending[0] = ""
	c.pending = c.pending[1:]
	return transport.Text, []byte(m), nil
}

// frameError describes an unexpected frame: a close frame as a *CloseError,
// anything else as a protocol error.
func (c *clientConn) frameError(b []byte) error {
	if len(b) > 0 && b[0] == 'c' {
		var v [2]any
		if err := json.Unmarshal(b[1:], &v); err == nil {
			code, _ := v[0].(float64)
			reason, _ := v[1].(string)
			return &CloseError{Code: int(code), Reason: reason}
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return fmt.Errorf("%w: unexpected frame %q", ErrProtocol, b)
}

func (c *clientConn) Write(ctx context.Context, typ transport.MessageType, data []byte) error {
	if typ != transport.Text {
		return ErrBinary
	}
	frame, err := json.Marshal([1]string{string(data)})
	if err != nil {
		return fmt.Errorf("sockjs: failed to write: %w", err)
	}
	return c.c.Write(ctx, ws.MessageText, frame)
}

func (c *clientConn) Close(code int, reason string) error {
	return c.c.Close(ws.StatusCode(code), reason)
}

func (c *clientConn) CloseNow() error { return c.c.CloseNow() }
