package engineio_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	ws "github.com/coder/websocket"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/cmd/primus-testserver/testserver"
	"github.com/go-primus/primus/internal/leakcheck"
	"github.com/go-primus/primus/transport/engineio"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// waitTimeout bounds every wait; only a broken transformer reaches it.
const waitTimeout = 10 * time.Second

// server is a primus server with the Engine.IO transformer and the test
// server's behaviour (cmd/primus-testserver/testserver) on a loopback
// httptest server.
type server struct {
	tr     *engineio.Transformer
	srv    *primus.Server
	ts     *httptest.Server
	url    string // http://127.0.0.1:port/primus
	sparks chan *primus.Spark
	ends   chan sparkEnd
	client *http.Client
}

type sparkEnd struct {
	sp     *primus.Spark
	reason error
}

// start builds and serves a server; Primus's own heartbeat is off unless
// popts sets it.
func start(t *testing.T, eo *engineio.Options, popts *primus.Options) *server {
	t.Helper()
	var p primus.Options
	if popts != nil {
		p = *popts
	}
	if p.PingInterval == 0 {
		p.PingInterval = -1
	}
	var o engineio.Options
	if eo != nil {
		o = *eo
	}
	if o.WriteTimeout == 0 {
		// Also how long a closing polling session waits for its last
		// poll: tests that do not poll then do not hold up Shutdown.
		o.WriteTimeout = 2 * time.Second
	}
	tr := engineio.New(&o)
	p.Transformer = tr
	srv, err := primus.New(&p)
	if err != nil {
		t.Fatalf("primus.New: %v", err)
	}
	s := &server{
		tr:     tr,
		srv:    srv,
		sparks: make(chan *primus.Spark, 100),
		ends:   make(chan sparkEnd, 100),
		client: &http.Client{Transport: &http.Transport{}},
	}
	srv.OnConnection(func(sp *primus.Spark) {
		sp.OnEnd(func(reason error) { s.ends <- sparkEnd{sp, reason} })
		s.sparks <- sp
	})
	testserver.Setup(srv)
	s.ts = httptest.NewServer(srv)
	s.url = s.ts.URL + srv.Pathname()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		s.client.CloseIdleConnections()
		s.ts.Close()
	})
	return s
}

func (s *server) spark(t *testing.T) *primus.Spark {
	t.Helper()
	return recv(t, s.sparks, "a spark")
}

func (s *server) end(t *testing.T) sparkEnd {
	t.Helper()
	return recv(t, s.ends, "a spark's end")
}

// recv receives from ch, failing the test after waitTimeout.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
	}
	panic("unreachable")
}

// do sends a request and returns the response with its whole body.
func (s *server) do(t *testing.T, method, u, body string, header http.Header) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, u, err)
	}
	return resp, string(b)
}

// eioURL is the Engine.IO URL under the pathname with a query.
func (s *server) eioURL(query string) string {
	return s.url + "/?" + query
}

// open is a decoded open packet.
type open struct {
	SID          string   `json:"sid"`
	Upgrades     []string `json:"upgrades"`
	PingInterval int64    `json:"pingInterval"`
	PingTimeout  int64    `json:"pingTimeout"`
	MaxPayload   int64    `json:"maxPayload"`
}

func parseOpen(t *testing.T, p string) open {
	t.Helper()
	var o open
	if !strings.HasPrefix(p, "0") || json.Unmarshal([]byte(p[1:]), &o) != nil || o.SID == "" {
		t.Fatalf("not an open packet: %q", short(p))
	}
	return o
}

// session is an Engine.IO session driven by hand over HTTP long-polling.
type session struct {
	s      *server
	sid    string
	open   open
	query  string // the handshake's query, without EIO and transport
	header http.Header
}

// handshake opens a polling session with the extra query and header.
func (s *server) handshake(t *testing.T, query string, header http.Header) *session {
	t.Helper()
	q := "EIO=4&transport=polling&t=abc&b64=1"
	if query != "" {
		q += "&" + query
	}
	resp, body := s.do(t, http.MethodGet, s.eioURL(q), "", header)
	if resp.StatusCode != 200 {
		t.Fatalf("handshake: %d %s", resp.StatusCode, body)
	}
	return &session{s: s, sid: parseOpen(t, body).SID, open: parseOpen(t, body), query: query, header: header}
}

// url is the session's polling URL.
func (c *session) url() string {
	q := "EIO=4&transport=polling&t=x&sid=" + url.QueryEscape(c.sid)
	if c.query != "" {
		q += "&" + c.query
	}
	return c.s.eioURL(q)
}

// get makes one poll and returns the response.
func (c *session) get(t *testing.T) (*http.Response, string) {
	t.Helper()
	return c.s.do(t, http.MethodGet, c.url(), "", c.header)
}

// poll makes one poll and returns its packets.
func (c *session) poll(t *testing.T) []string {
	t.Helper()
	resp, body := c.get(t)
	if resp.StatusCode != 200 {
		t.Fatalf("poll: %d %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=UTF-8" {
		t.Errorf("poll Content-Type %q", ct)
	}
	return strings.Split(body, "\x1e")
}

// post sends a payload and returns the response.
func (c *session) post(t *testing.T, payload string) (*http.Response, string) {
	t.Helper()
	h := http.Header{"Content-Type": {"text/plain;charset=UTF-8"}}
	for k, v := range c.header {
		h[k] = v
	}
	return c.s.do(t, http.MethodPost, c.url(), payload, h)
}

// send posts packets in one payload and expects "ok".
func (c *session) send(t *testing.T, packets ...string) {
	t.Helper()
	resp, body := c.post(t, strings.Join(packets, "\x1e"))
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("POST %q: %d %q", short(strings.Join(packets, "|")), resp.StatusCode, body)
	}
}

// collect polls until it has n message packets (answering pings) and
// returns them.
func (c *session) collect(t *testing.T, n int) []string {
	t.Helper()
	var got []string
	for len(got) < n {
		for _, p := range c.poll(t) {
			switch {
			case p == "2":
				c.send(t, "3")
			case p == "6":
			case strings.HasPrefix(p, "4"), strings.HasPrefix(p, "b"):
				got = append(got, p)
			default:
				t.Fatalf("unexpected packet %q after %d of %d messages", short(p), len(got), n)
			}
		}
	}
	return got
}

// wsConn is an Engine.IO WebSocket driven by hand.
type wsConn struct {
	c *ws.Conn
}

// dialWS opens a WebSocket with the query; on a refused handshake it
// returns the HTTP status.
func (s *server) dialWS(t *testing.T, query string, header http.Header) (*wsConn, int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	u := "ws" + strings.TrimPrefix(s.url, "http") + "/?" + query
	c, resp, err := ws.Dial(ctx, u, &ws.DialOptions{HTTPHeader: header})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		return nil, status, err
	}
	c.SetReadLimit(-1)
	t.Cleanup(func() { _ = c.CloseNow() })
	return &wsConn{c: c}, resp.StatusCode, nil
}

// openWS opens a WebSocket session and returns it with its open packet.
func (s *server) openWS(t *testing.T, query string) (*wsConn, open) {
	t.Helper()
	q := "EIO=4&transport=websocket"
	if query != "" {
		q += "&" + query
	}
	w, _, err := s.dialWS(t, q, nil)
	if err != nil {
		t.Fatal(err)
	}
	return w, parseOpen(t, w.read(t))
}

func (w *wsConn) readFrame(t *testing.T) (ws.MessageType, []byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	typ, b, err := w.c.Read(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatal("read timed out")
	}
	return typ, b, err
}

// read reads a text frame.
func (w *wsConn) read(t *testing.T) string {
	t.Helper()
	typ, b, err := w.readFrame(t)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if typ != ws.MessageText {
		t.Fatalf("a binary frame %x, want text", short(string(b)))
	}
	return string(b)
}

// next reads the next message packet, answering pings.
func (w *wsConn) next(t *testing.T) string {
	t.Helper()
	for {
		p := w.read(t)
		switch {
		case p == "2":
			w.write(t, "3")
		case p == "6":
		default:
			return p
		}
	}
}

func (w *wsConn) write(t *testing.T, p string) {
	t.Helper()
	w.writeType(t, ws.MessageText, []byte(p))
}

func (w *wsConn) writeType(t *testing.T, typ ws.MessageType, b []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := w.c.Write(ctx, typ, b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// closed reads until the WebSocket closes and returns the close error.
func (w *wsConn) closed(t *testing.T) error {
	t.Helper()
	for {
		_, _, err := w.readFrame(t)
		if err != nil {
			return err
		}
	}
}

// short shortens s for a failure message.
func short(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// waitPolling waits until the server holds a poll of the session.
func waitPolling(t *testing.T, s *server, c *session) {
	t.Helper()
	waitFor(t, "the server to hold the poll", func() bool { return engineio.Waiting(s.tr, c.sid, false) })
}

// waitPosting waits until the server reads a POST of the session.
func waitPosting(t *testing.T, s *server, c *session) {
	t.Helper()
	waitFor(t, "the server to read the POST", func() bool { return engineio.Waiting(s.tr, c.sid, true) })
}

// waitFor checks cond every millisecond until it holds, failing the test
// after waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-time.After(time.Millisecond)
	}
}

// pollAsync makes one poll in a goroutine; the channel gets its packets,
// or the error.
func (c *session) pollAsync() <-chan []string {
	ch := make(chan []string, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, c.url(), nil)
		resp, err := c.s.client.Do(req)
		if err != nil {
			ch <- []string{"error: " + err.Error()}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			ch <- []string{fmt.Sprintf("error: %d %s %v", resp.StatusCode, b, err)}
			return
		}
		ch <- strings.Split(string(b), "\x1e")
	}()
	return ch
}

// rawRequest sends a request on a TCP connection of its own: the request
// line, the extra header lines and body, which may stop short of the
// Content-Length; the connection is closed when the test ends.
func rawRequest(t *testing.T, s *server, method, path, headers, body string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if _, err := io.WriteString(conn, method+" "+path+" HTTP/1.1\r\nHost: x\r\n"+headers+"\r\n"+body); err != nil {
		t.Fatal(err)
	}
	return conn
}
