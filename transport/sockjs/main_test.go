package sockjs_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	ws "github.com/coder/websocket"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/cmd/primus-testserver/testserver"
	"github.com/go-primus/primus/internal/leakcheck"
	"github.com/go-primus/primus/transport/sockjs"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// waitTimeout bounds every wait; only a broken transformer reaches it.
const waitTimeout = 10 * time.Second

// server is a primus server with the SockJS transformer and the test
// server's behaviour (cmd/primus-testserver/testserver) on a loopback httptest server.
type server struct {
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

// start builds and serves a server. A zero DisconnectDelay in so becomes
// 1 s, so that closed sessions go soon after the tests (and a loaded
// machine does not reap a session between two polls); pings are off unless
// popts sets them.
func start(t *testing.T, so *sockjs.Options, popts *primus.Options) *server {
	t.Helper()
	var o sockjs.Options
	if so != nil {
		o = *so
	}
	if o.DisconnectDelay == 0 {
		o.DisconnectDelay = time.Second
	}
	var p primus.Options
	if popts != nil {
		p = *popts
	}
	if p.PingInterval == 0 {
		p.PingInterval = -1
	}
	p.Transformer = sockjs.New(&o)
	srv, err := primus.New(&p)
	if err != nil {
		t.Fatalf("primus.New: %v", err)
	}
	s := &server{
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
func (s *server) do(t *testing.T, method, url, body string, header http.Header) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return resp, string(b)
}

// session is a SockJS session driven by hand over HTTP.
type session struct {
	s    *server
	base string // <url>/<server>/<session>
}

// newSession names a new session; nothing is sent yet.
func (s *server) newSession(query string) *session {
	return &session{s: s, base: s.url + "/000/" + rand.Text()[:8] + queryOf(query)}
}

// queryOf is "" or "?query" (the SockJS client repeats the base URL's
// query on every request).
func queryOf(q string) string {
	if q == "" {
		return ""
	}
	return "?" + q
}

// url returns the session's URL for a transport.
func (c *session) url(kind string) string {
	base, q, _ := strings.Cut(c.base, "?")
	if q != "" {
		q = "?" + q
	}
	return base + "/" + kind + q
}

// poll makes one xhr poll and returns its frames.
func (c *session) poll(t *testing.T) []string {
	t.Helper()
	resp, body := c.s.do(t, http.MethodPost, c.url("xhr"), "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("poll: %d %s", resp.StatusCode, body)
	}
	return frames(t, body)
}

// send posts messages with xhr_send.
func (c *session) send(t *testing.T, msgs ...string) {
	t.Helper()
	b, _ := json.Marshal(msgs)
	resp, body := c.s.do(t, http.MethodPost, c.url("xhr_send"), string(b), nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("xhr_send: %d %s", resp.StatusCode, body)
	}
}

// open polls until the session is open.
func (c *session) open(t *testing.T) {
	t.Helper()
	if f := c.poll(t); len(f) != 1 || f[0] != "o" {
		t.Fatalf("first poll: %q, want [o]", f)
	}
}

// frames splits an xhr body into its frames.
func frames(t *testing.T, body string) []string {
	t.Helper()
	if !strings.HasSuffix(body, "\n") {
		t.Fatalf("xhr body %q does not end with a newline", short(body))
	}
	return strings.Split(strings.TrimSuffix(body, "\n"), "\n")
}

// messages decodes a["...", ...] frames.
func messages(t *testing.T, frame string) []string {
	t.Helper()
	if !strings.HasPrefix(frame, "a") {
		t.Fatalf("frame %q is not a data frame", short(frame))
	}
	var msgs []string
	if err := json.Unmarshal([]byte(frame[1:]), &msgs); err != nil {
		t.Fatalf("frame %q: %v", short(frame), err)
	}
	return msgs
}

// collect polls until it has n messages (skipping heartbeats) and returns
// them.
func (c *session) collect(t *testing.T, n int) []string {
	t.Helper()
	var got []string
	for len(got) < n {
		for _, f := range c.poll(t) {
			switch {
			case f == "h":
			case strings.HasPrefix(f, "a"):
				got = append(got, messages(t, f)...)
			default:
				t.Fatalf("unexpected frame %q after %d of %d messages", short(f), len(got), n)
			}
		}
	}
	return got
}

// dial opens a plain WebSocket, closed when the test ends. On a refused
// handshake it returns the HTTP status.
func dial(t *testing.T, url string, header http.Header) (*ws.Conn, int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, resp, err := ws.Dial(ctx, url, &ws.DialOptions{HTTPHeader: header})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		return nil, status, err
	}
	c.SetReadLimit(-1)
	t.Cleanup(func() { _ = c.CloseNow() })
	return c, resp.StatusCode, nil
}

// wsSession is a SockJS session over a plain WebSocket, framed by hand.
type wsSession struct {
	c *ws.Conn
}

func (s *server) dialWS(t *testing.T, query string) *wsSession {
	t.Helper()
	u := "ws" + strings.TrimPrefix(s.url, "http") + "/123/wsession/websocket" + queryOf(query)
	c, _, err := dial(t, u, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	w := &wsSession{c: c}
	if f := w.read(t); f != "o" {
		t.Fatalf("first frame %q, want o", f)
	}
	return w
}

func (w *wsSession) read(t *testing.T) string {
	t.Helper()
	f, err := w.readErr()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return f
}

func (w *wsSession) readErr() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	_, b, err := w.c.Read(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return "", errors.New("read timed out")
	}
	return string(b), err
}

func (w *wsSession) send(t *testing.T, msgs ...string) {
	t.Helper()
	b, _ := json.Marshal(msgs)
	w.sendRaw(t, string(b))
}

func (w *wsSession) sendRaw(t *testing.T, frame string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := w.c.Write(ctx, ws.MessageText, []byte(frame)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// next returns the next data frame's messages, skipping heartbeats.
func (w *wsSession) next(t *testing.T) []string {
	t.Helper()
	for {
		f := w.read(t)
		if f != "h" {
			return messages(t, f)
		}
	}
}

// stream reads a streaming response line by line.
type stream struct {
	resp   *http.Response
	r      *bufio.Reader
	cancel context.CancelFunc
}

// openStream starts a streaming request (xhr_streaming, eventsource,
// htmlfile) and returns it once the headers have arrived.
func (c *session) openStream(t *testing.T, method, kind string, query string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	u := c.url(kind)
	if query != "" {
		if strings.Contains(u, "?") {
			u += "&" + query
		} else {
			u += "?" + query
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	resp, err := c.s.client.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("%s %s: %v", method, u, err)
	}
	st := &stream{resp: resp, r: bufio.NewReader(resp.Body), cancel: cancel}
	t.Cleanup(st.close)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: status %d", method, u, resp.StatusCode)
	}
	return st
}

func (st *stream) close() {
	st.cancel()
	_ = st.resp.Body.Close()
}

// line reads up to and including the next "\n".
func (st *stream) line(t *testing.T) string {
	t.Helper()
	type result struct {
		s   string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := st.r.ReadString('\n')
		ch <- result{s, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("reading the stream: %v (got %q)", r.err, r.s)
		}
		return r.s
	case <-time.After(waitTimeout):
		st.close()
		<-ch
		t.Fatalf("timed out reading the stream")
	}
	return ""
}

// short shortens s for a failure message.
func short(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
