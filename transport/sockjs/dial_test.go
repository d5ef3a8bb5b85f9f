package sockjs_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/transport"
	"github.com/go-primus/primus/transport/sockjs"
)

// dialT dials the server with the SockJS dialer at the transport level.
func dialT(t *testing.T, s *server, query string, opts transport.DialOptions) (transport.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if opts.HTTPClient == nil {
		opts.HTTPClient = s.client
	}
	c, err := sockjs.New(nil).Dial(ctx, s.url+queryOf(query), opts)
	if err == nil {
		t.Cleanup(func() { _ = c.CloseNow() })
	}
	return c, err
}

func read(t *testing.T, c transport.Conn) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	typ, b, err := c.Read(ctx)
	if err == nil && typ != transport.Text {
		t.Errorf("read a %v message", typ)
	}
	return string(b), err
}

func write(t *testing.T, c transport.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := c.Write(ctx, transport.Text, []byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// The Go client works over SockJS like over WebSocket: same options, same
// application code.
func TestGoClient(t *testing.T) {
	t.Parallel()
	s := start(t, nil, &primus.Options{PingInterval: 300 * time.Millisecond})
	got := make(chan *primus.Message, 10)
	beats := make(chan struct{}, 10)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	client, err := primus.Dial(ctx, s.url+"?token=abc", &primus.ClientOptions{
		Dialer:      sockjs.New(nil),
		HTTPClient:  s.client,
		PingTimeout: waitTimeout, // the server's side of the heartbeat is under test
		OnData:      func(m *primus.Message) { got <- m },
		OnHeartbeat: func() { beats <- struct{}{} },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	sp := s.spark(t)
	id, err := client.ID(ctx)
	if err != nil || id != sp.ID() {
		t.Errorf("client ID %q, %v; spark %s", id, err, sp.ID())
	}
	if err := client.Write(map[string]string{"hello": "sockjs"}); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, got, "the echo"); string(m.Bytes()) != `{"hello":"sockjs"}` {
		t.Errorf("echo %s", m.Bytes())
	}
	// Primus heartbeats ride as data and are answered.
	for range 3 {
		recv(t, beats, "a heartbeat")
	}
	select {
	case end := <-s.ends:
		t.Errorf("spark ended (%v) although the client answers pings", end.reason)
	default:
	}
}

func TestDialHandshakeErrors(t *testing.T) {
	t.Parallel()
	t.Run("info refused", func(t *testing.T) {
		t.Parallel()
		s := start(t, nil, nil)
		_, err := dialT(t, s, "token=bad", transport.DialOptions{})
		var he *transport.HandshakeError
		if !errors.As(err, &he) || he.StatusCode != 401 || string(he.Body) != `{"error":"invalid token"}` {
			t.Errorf("Dial with token=bad: %v, want a 401 HandshakeError", err)
		}
	})
	t.Run("upgrade refused", func(t *testing.T) {
		t.Parallel()
		s := start(t, nil, nil)
		err := s.srv.Use("no-websockets", func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, "/websocket") {
					primus.Refuse(w, &primus.HTTPError{Status: http.StatusForbidden, Message: "no websockets here"})
					return
				}
				next.ServeHTTP(w, r)
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = dialT(t, s, "", transport.DialOptions{})
		var he *transport.HandshakeError
		if !errors.As(err, &he) || he.StatusCode != 403 || string(he.Body) != `{"error":"no websockets here"}` {
			t.Errorf("Dial: %v, want a 403 HandshakeError", err)
		}
	})
	t.Run("websocket off", func(t *testing.T) {
		t.Parallel()
		s := start(t, &sockjs.Options{DisableWebSocket: true}, nil)
		if _, err := dialT(t, s, "", transport.DialOptions{}); !errors.Is(err, sockjs.ErrNoWebSocket) {
			t.Errorf("Dial: %v, want ErrNoWebSocket", err)
		}
	})
	t.Run("bad scheme", func(t *testing.T) {
		t.Parallel()
		if _, err := sockjs.New(nil).Dial(context.Background(), "ftp://127.0.0.1/primus", transport.DialOptions{}); err == nil {
			t.Error("Dial of ftp:// succeeded")
		}
	})
}

// The dialer's connection: query and headers reach the spark, several
// messages in one frame are read one by one, a close frame ends it with a
// *CloseError, binary writes are refused.
func TestDialerConn(t *testing.T) {
	t.Parallel()
	s := start(t, nil, nil)
	c, err := dialT(t, s, "foo=bar", transport.DialOptions{Header: http.Header{"X-Test": {"dialer"}}})
	if err != nil {
		t.Fatal(err)
	}
	sp := s.spark(t)
	if sp.Query().Get("foo") != "bar" || sp.Header().Get("X-Test") != "dialer" {
		t.Errorf("spark query %v, X-Test %q", sp.Query(), sp.Header().Get("X-Test"))
	}
	if err := c.Write(context.Background(), transport.Binary, []byte{1}); !errors.Is(err, sockjs.ErrBinary) {
		t.Errorf("binary write: %v, want ErrBinary", err)
	}
	write(t, c, `"one"`)
	write(t, c, `["two",2]`)
	for _, want := range []string{`"one"`, `["two",2]`} {
		if m, err := read(t, c); err != nil || m != want {
			t.Errorf("read %q, %v; want %q", m, err, want)
		}
	}
	write(t, c, `{"cmd":"drop"}`)
	_, err = read(t, c)
	var ce *sockjs.CloseError
	if !errors.As(err, &ce) || ce.Code != 3000 || ce.Reason != "dropped" {
		t.Errorf("read after drop: %v, want CloseError 3000 dropped", err)
	}
}

func TestDialerMessageTooBig(t *testing.T) {
	t.Parallel()
	s := start(t, nil, nil)
	c, err := dialT(t, s, "", transport.DialOptions{MaxMessageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	sp := s.spark(t)
	if err := sp.Write(strings.Repeat("x", 100)); err != nil {
		t.Fatal(err)
	}
	if _, err := read(t, c); !errors.Is(err, transport.ErrMessageTooBig) {
		t.Errorf("read of 102 bytes with a 100-byte limit: %v, want ErrMessageTooBig", err)
	}
}

// SockJS heartbeats ("h") are skipped by the dialer's Read.
func TestDialerSkipsHeartbeats(t *testing.T) {
	t.Parallel()
	s := start(t, &sockjs.Options{HeartbeatDelay: 20 * time.Millisecond}, nil)
	tap := &heartbeatTap{seen: make(chan struct{}, 100)}
	hc := &http.Client{Transport: &http.Transport{DialContext: tap.dial}}
	defer hc.CloseIdleConnections()
	c, err := dialT(t, s, "", transport.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	sp := s.spark(t)
	type result struct {
		m   string
		err error
	}
	got := make(chan result, 1)
	go func() {
		m, err := read(t, c) // reads through the heartbeats
		got <- result{m, err}
	}()
	for range 3 {
		recv(t, tap.seen, "a SockJS heartbeat")
	}
	if err := sp.Write("after heartbeats"); err != nil {
		t.Fatal(err)
	}
	if r := recv(t, got, "the message"); r.err != nil || r.m != `"after heartbeats"` {
		t.Errorf("read %q, %v", r.m, r.err)
	}
}

// heartbeatTap sees the bytes the client reads and reports each SockJS
// heartbeat frame: an unmasked text frame of one byte, "h".
type heartbeatTap struct {
	seen chan struct{}
}

func (h *heartbeatTap) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &tapConn{Conn: c, h: h}, nil
}

type tapConn struct {
	net.Conn
	h    *heartbeatTap
	tail []byte
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	buf := append(c.tail, p[:n]...)
	for {
		i := bytes.Index(buf, []byte{0x81, 0x01, 'h'})
		if i < 0 {
			break
		}
		c.h.seen <- struct{}{}
		buf = buf[i+3:]
	}
	c.tail = append([]byte(nil), buf[max(0, len(buf)-2):]...)
	return n, err
}

// A client that does not answer Primus pings is closed by the server's
// heartbeat, on a WebSocket and on polling: the spark ends with
// ErrHeartbeatTimeout and the client gets c[3000,"dropped"], without
// primus::server::close.
func TestHeartbeatSilentClient(t *testing.T) {
	t.Parallel()
	for _, tr := range transports {
		if tr.name != "websocket" && tr.name != "xhr-polling" {
			continue
		}
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			s := start(t, nil, &primus.Options{PingInterval: 100 * time.Millisecond})
			r, _ := tr.open(t, s, "")
			pings := 0
			for {
				f := r.next(t)
				if strings.HasPrefix(f, "c") {
					if f != `c[3000,"dropped"]` {
						t.Errorf("close frame %q", f)
					}
					break
				}
				for _, m := range messages(t, f) {
					if !strings.HasPrefix(m, `"primus::ping::`) {
						t.Fatalf("unexpected message %q", m)
					}
					pings++
				}
			}
			if pings == 0 {
				t.Error("closed before any ping")
			}
			if end := s.end(t); !errors.Is(end.reason, primus.ErrHeartbeatTimeout) {
				t.Errorf("spark ended with %v, want ErrHeartbeatTimeout", end.reason)
			}
		})
	}
}
