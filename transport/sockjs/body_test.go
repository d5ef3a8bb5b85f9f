package sockjs_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-primus/primus"
)

// A client that trickles a request body (a byte at a time, never finishing)
// has its request failed with 408 and its connection closed once BodyTimeout
// has passed, on every kind of request under the pathname, while other
// clients go on. Nothing is left behind: no session opens, no message
// arrives.
func TestTrickledBodiesCut(t *testing.T) {
	t.Parallel()
	const bodyTimeout = 300 * time.Millisecond
	s := start(t, nil, &primus.Options{BodyTimeout: bodyTimeout})
	c := s.newSession("")
	c.open(t)
	sp := s.spark(t)

	victim := strings.TrimPrefix(c.url("xhr_send"), s.ts.URL)
	paths := []string{
		victim,                          // a send to a running session
		"/primus/000/trickle1/xhr_send", // a send to no session
		"/primus/000/trickle2/xhr",      // a poll that would open a session
		"/primus/000/trickle3/xhr_streaming",
		"/primus/000/trickle4/jsonp_send",
		"/primus/info",
	}
	const perPath = 8
	type result struct {
		path   string
		status string
		took   time.Duration
		err    error
	}
	results := make(chan result, len(paths)*perPath)
	var wg sync.WaitGroup
	for _, p := range paths {
		for range perPath {
			wg.Add(1)
			go func() {
				defer wg.Done()
				status, took, err := trickle(s, p)
				results <- result{p, status, took, err}
			}()
		}
	}

	// Meanwhile the session works as usual.
	for i := range 3 {
		msg := `"` + strings.Repeat("m", i+1) + `"`
		c.send(t, msg)
		if got := c.collect(t, 1); got[0] != msg {
			t.Errorf("echo %q, want %q", got, msg)
		}
	}

	wg.Wait()
	close(results)
	var slowest time.Duration
	for r := range results {
		slowest = max(slowest, r.took)
		switch {
		case r.err != nil:
			t.Errorf("%s: %v", r.path, r.err)
		case r.status != "HTTP/1.1 408 Request Timeout":
			t.Errorf("%s: %q, want 408", r.path, r.status)
		case r.took < bodyTimeout-50*time.Millisecond || r.took > bodyTimeout+2*time.Second:
			t.Errorf("%s: cut after %v, want about %v", r.path, r.took, bodyTimeout)
		}
	}
	t.Logf("%d trickling requests cut, the last %v after its headers (BodyTimeout %v)", len(paths)*perPath, slowest, bodyTimeout)
	// No session opened, and the victim's spark received nothing but its
	// own client's messages.
	select {
	case other := <-s.sparks:
		t.Errorf("a trickled request opened spark %s", other.ID())
	default:
	}
	c.send(t, `"last"`)
	if got := c.collect(t, 1); got[0] != `"last"` {
		t.Errorf("echo %q after the trickles", got)
	}
	select {
	case <-sp.Done():
		t.Error("the session's spark ended")
	default:
	}
}

// trickle sends a POST whose body never finishes, a byte every 50 ms, and
// returns the status line the server answers with, and how long after the
// headers the server closed the connection.
func trickle(s *server, path string) (string, time.Duration, error) {
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.ts.URL, "http://"))
	if err != nil {
		return "", 0, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(waitTimeout))
	head := "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n["
	if _, err := io.WriteString(conn, head); err != nil {
		return "", 0, err
	}
	began := time.Now()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := conn.Write([]byte(" ")); err != nil {
					return
				}
			}
		}
	}()
	br := bufio.NewReader(conn)
	status, err := br.ReadString('\n')
	if err != nil {
		return "", 0, err
	}
	// The rest of the answer, then the end of the connection (a reset when
	// the server closed it with trickled bytes unread).
	if _, err := io.Copy(io.Discard, br); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		return "", 0, err
	}
	return strings.TrimSpace(status), time.Since(began), nil
}

// No read deadline outlives the reading of a body: a poll that carried a
// body, and a stream that carried none, stay open for as long as they have
// to, well past BodyTimeout (net/http's background read on the connection
// would cancel them if a deadline were left).
func TestBodyDeadlineLeavesReceivingRequests(t *testing.T) {
	t.Parallel()
	const bodyTimeout = 200 * time.Millisecond
	s := start(t, nil, &primus.Options{BodyTimeout: bodyTimeout})
	c := s.newSession("")
	c.open(t)
	polling := s.spark(t)
	polled := make(chan string, 1)
	go func() {
		resp, err := s.client.Post(c.url("xhr"), "text/plain", strings.NewReader("a body SockJS does not need"))
		if err != nil {
			polled <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		polled <- resp.Status + " " + string(b)
	}()
	st := s.newSession("").openStream(t, http.MethodPost, "xhr_streaming", "")
	r := xhrStreamReceiver{st}
	r.next(t) // prelude
	expectOpen(t, r)
	streaming := s.spark(t)

	// The duration under test: the requests wait past the body deadline.
	<-time.After(4 * bodyTimeout)
	if err := polling.Write("late"); err != nil {
		t.Fatal(err)
	}
	if got, want := recv(t, polled, "the poll"), "200 OK a[\"\\\"late\\\"\"]\n"; got != want {
		t.Errorf("poll: %q, want %q", got, want)
	}
	if err := streaming.Write("streamed"); err != nil {
		t.Fatal(err)
	}
	if m := nextData(t, r); len(m) != 1 || m[0] != `"streamed"` {
		t.Errorf("stream: %q", m)
	}
}

// A send whose body is over MaxFrameBytes by its Content-Length is refused
// before any of it is read.
func TestSendBodyTooBigByLength(t *testing.T) {
	t.Parallel()
	s := start(t, nil, nil)
	c := s.newSession("")
	c.open(t)
	s.spark(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(waitTimeout))
	path := strings.TrimPrefix(c.url("xhr_send"), s.ts.URL)
	if _, err := io.WriteString(conn, "POST "+path+" HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d, want 413", resp.StatusCode)
	}
	if f := c.poll(t); len(f) != 1 || f[0] != `c[1009,"Message too big"]` {
		t.Errorf("poll after the refusal: %q", f)
	}
}
