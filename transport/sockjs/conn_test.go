package sockjs_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/transport"
	"github.com/go-primus/primus/transport/sockjs"
)

// connServer serves the transformer alone, without the core: each session
// is a tconn the test drives itself.
type connServer struct {
	ts    *httptest.Server
	url   string // http://127.0.0.1:port/primus
	conns chan *tconn
}

// tconn is a session as the transformer hands it over. Its messages are
// read into msgs until Read fails; then err is set and ended closed.
type tconn struct {
	c     transport.Conn
	r     *http.Request
	msgs  chan string
	ended chan struct{}
	err   error
}

// end waits for the session's end and returns Read's error.
func (tc *tconn) end(t *testing.T) error {
	t.Helper()
	recv(t, tc.ended, "the session's end")
	return tc.err
}

func startConns(t *testing.T, so *sockjs.Options) *connServer {
	t.Helper()
	o := sockjs.Options{DisconnectDelay: time.Second}
	if so != nil {
		o = *so
		if o.DisconnectDelay == 0 {
			o.DisconnectDelay = time.Second
		}
	}
	s := &connServer{conns: make(chan *tconn, 16)}
	var mu sync.Mutex
	var all []*tconn
	h, err := sockjs.New(&o).Handler(transport.Options{
		Pathname:         "/primus",
		MaxMessageSize:   1 << 20,
		HandshakeTimeout: waitTimeout,
		BodyTimeout:      waitTimeout,
		HeaderBytes:      32 << 10,
		ClientAddress: func(r *http.Request) netip.Addr {
			ap, _ := netip.ParseAddrPort(r.RemoteAddr)
			return ap.Addr()
		},
		Logger: slog.New(slog.DiscardHandler),
	}, func(r *http.Request, c transport.Conn) {
		tc := &tconn{c: c, r: r, msgs: make(chan string, 100), ended: make(chan struct{})}
		mu.Lock()
		all = append(all, tc)
		mu.Unlock()
		s.conns <- tc
		for {
			_, b, err := c.Read(context.Background())
			if err != nil {
				tc.err = err
				close(tc.ended)
				return
			}
			tc.msgs <- string(b)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	s.ts = httptest.NewServer(h)
	s.url = s.ts.URL + "/primus"
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, tc := range all {
			_ = tc.c.CloseNow()
		}
		for _, tc := range all {
			select {
			case <-tc.ended:
			case <-time.After(waitTimeout):
				t.Errorf("a session did not end")
			}
		}
		s.ts.Close()
	})
	return s
}

func (s *connServer) conn(t *testing.T) *tconn {
	t.Helper()
	return recv(t, s.conns, "a session")
}

// asServer lets the helpers of *server drive a connServer's sessions.
func (s *connServer) asServer() *server {
	return &server{url: s.url, ts: s.ts, client: &http.Client{Transport: &http.Transport{}}}
}

// Close on a polling session drops what the client has not collected and
// sends the close frame with the code and reason at once: the next poll
// gets it.
func TestCloseWithStatusPolling(t *testing.T) {
	t.Parallel()
	s := startConns(t, nil)
	hs := s.asServer()
	defer hs.client.CloseIdleConnections()
	c := hs.newSession("")
	c.open(t)
	tc := s.conn(t)
	for range 3 {
		if err := tc.c.Write(context.Background(), transport.Text, []byte(`"uncollected"`)); err != nil {
			t.Fatal(err)
		}
	}
	began := time.Now()
	if err := tc.c.Close(transport.StatusPolicyViolation, "slow consumer"); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(began); d > 500*time.Millisecond {
		t.Errorf("Close took %v", d)
	}
	if f := c.poll(t); len(f) != 1 || f[0] != `c[1008,"slow consumer"]` {
		t.Errorf("poll after Close: %q", f)
	}
	_ = tc.c.CloseNow()
	if f := c.poll(t); len(f) != 1 || f[0] != `c[1008,"slow consumer"]` {
		t.Errorf("poll after CloseNow: %q, want the same close frame", f)
	}
}

// Close on a WebSocket session that reads delivers c[code,"reason"].
func TestCloseWithStatusWebSocket(t *testing.T) {
	t.Parallel()
	s := startConns(t, nil)
	w := s.asServer().dialWS(t, "")
	tc := s.conn(t)
	if err := tc.c.Close(transport.StatusPolicyViolation, "slow consumer"); err != nil {
		t.Errorf("Close: %v", err)
	}
	if f := w.read(t); f != `c[1008,"slow consumer"]` {
		t.Errorf("frame %q", f)
	}
}

// A client that does not read while a write to it is blocked: Close returns
// within its bound (about a second) and the write fails; CloseNow returns
// at once and the write fails within the same bound. Nothing waits on the
// client.
func TestCloseStuckClient(t *testing.T) {
	t.Parallel()
	const bound = 1500 * time.Millisecond // closeGrace and some
	for _, kind := range []string{"websocket", "xhr_streaming"} {
		for _, how := range []string{"Close", "CloseNow"} {
			t.Run(kind+"/"+how, func(t *testing.T) {
				t.Parallel()
				s := startConns(t, nil)
				br := stuckClient(t, s, kind)
				tc := s.conn(t)
				// 8 MiB cannot fit in the sockets' buffers (4 MiB at
				// most on Linux, and the client's is small): the write
				// blocks on the network, holding sockjs-go's session lock.
				big := []byte(`"` + strings.Repeat("x", 8<<20) + `"`)
				written := make(chan error, 1)
				go func() { written <- tc.c.Write(context.Background(), transport.Text, big) }()
				// The client has the frame's first bytes: the write is
				// under way, and cannot finish.
				if _, err := br.Peek(1); err != nil {
					t.Fatal(err)
				}
				began := time.Now()
				closed := make(chan struct{})
				go func() {
					defer close(closed)
					if how == "Close" {
						_ = tc.c.Close(transport.StatusPolicyViolation, "slow consumer")
					} else {
						_ = tc.c.CloseNow()
					}
				}()
				limit := bound
				if how == "CloseNow" {
					limit = 50 * time.Millisecond
				}
				select {
				case <-closed:
				case <-time.After(limit + waitTimeout):
					t.Fatalf("%s still waits after %v", how, limit+waitTimeout)
				}
				took := time.Since(began)
				if took > limit {
					t.Errorf("%s took %v, want at most %v", how, took, limit)
				}
				select {
				case err := <-written:
					if err == nil {
						t.Error("the blocked write succeeded")
					}
					t.Logf("%s returned after %v; the blocked write failed after %v", how, took, time.Since(began))
				case <-time.After(bound):
					t.Fatalf("the blocked write still waits %v after %s", bound, how)
				}
				tc.end(t)
			})
		}
	}
}

// stuckClient opens a session of the kind by hand with a small receive
// buffer, reads until the session is open, and reads no more.
func stuckClient(t *testing.T, s *connServer, kind string) *bufio.Reader {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(s.ts.URL, "http://"), waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	_ = conn.SetDeadline(time.Now().Add(waitTimeout))
	var req string
	switch kind {
	case "websocket":
		req = "GET /primus/1/stuck001/websocket HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	default:
		req = "POST /primus/1/stuck001/xhr_streaming HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
	}
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReaderSize(conn, 16)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if kind == "websocket" {
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade: %d", resp.StatusCode)
		}
		if f := readServerFrame(t, br); f != "o" {
			t.Fatalf("first frame %q", f)
		}
		return br
	}
	// The streaming body is chunked: the prelude, then "o".
	body := bufio.NewReaderSize(resp.Body, 16)
	for _, want := range []string{strings.Repeat("h", 2048) + "\n", "o\n"} {
		if l, err := body.ReadString('\n'); err != nil || l != want {
			t.Fatalf("stream: %q, %v", short(l), err)
		}
	}
	return body
}

// What the transformer refuses, the connection's Read reports: a frame
// that is not valid text with an error wrapping parser.ErrInvalidUTF8.
func TestReadReportsRefusedText(t *testing.T) {
	t.Parallel()
	s := startConns(t, nil)
	hs := s.asServer()
	defer hs.client.CloseIdleConnections()

	w := hs.dialWS(t, "")
	tc := s.conn(t)
	w.sendRaw(t, "[\"\xff\"]")
	if f := w.read(t); f != `c[1007,"invalid UTF-8"]` {
		t.Errorf("websocket: frame %q", f)
	}
	if err := tc.end(t); !errors.Is(err, parser.ErrInvalidUTF8) {
		t.Errorf("websocket: Read failed with %v, want parser.ErrInvalidUTF8", err)
	}

	c := hs.newSession("")
	c.open(t)
	tc = s.conn(t)
	resp, _ := hs.do(t, http.MethodPost, c.url("xhr_send"), `["\udc00"]`, nil)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("xhr_send: %d, want 400", resp.StatusCode)
	}
	if err := tc.end(t); !errors.Is(err, parser.ErrInvalidUTF8) {
		t.Errorf("xhr_send: Read failed with %v, want parser.ErrInvalidUTF8", err)
	}
	select {
	case m := <-tc.msgs:
		t.Errorf("the refused message reached Read: %q", m)
	default:
	}
}
