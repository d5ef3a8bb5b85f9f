package sockjs_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/internal/leakcheck"
	"github.com/go-primus/primus/transport/sockjs"
)

// A session whose client goes away mid-poll is reaped: its spark ends
// (reason nil: the client went away), and once the server has shut down no
// goroutine is left. This test is not parallel, so that the goroutine count
// at its end is its own.
func TestAbandonedSessionsReaped(t *testing.T) {
	const delay = 300 * time.Millisecond
	const heartbeat = 100 * time.Millisecond
	for _, tc := range []struct {
		name string
		// abandon leaves the session, opened at opened; it returns the
		// earliest and the latest time the session may end (zero: no
		// bound).
		abandon func(t *testing.T, s *server, c *session, opened time.Time) (time.Time, time.Time)
	}{
		{"stops polling", func(t *testing.T, s *server, c *session, opened time.Time) (time.Time, time.Time) {
			return opened.Add(delay), time.Time{}
		}},
		{"vanishes during a poll", func(t *testing.T, s *server, c *session, opened time.Time) (time.Time, time.Time) {
			// The poll stays open on a connection that is never read again
			// or closed: the server ends it with a heartbeat, and then
			// waits for a poll that never comes.
			conn, err := net.Dial("tcp", strings.TrimPrefix(s.ts.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = conn.Close() })
			u := strings.TrimPrefix(c.url("xhr"), s.ts.URL)
			begin := time.Now()
			if _, err := io.WriteString(conn, "POST "+u+" HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			return begin.Add(heartbeat + delay), time.Time{}
		}},
		{"closes its connection during a poll", func(t *testing.T, s *server, c *session, opened time.Time) (time.Time, time.Time) {
			// sockjs-go closes an interrupted session at once.
			seen := make(chan struct{}, 1)
			err := s.srv.Use("seen", func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if strings.HasSuffix(r.URL.Path, "/xhr") {
						seen <- struct{}{}
					}
					next.ServeHTTP(w, r)
				})
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.url("xhr"), nil)
			done := make(chan struct{})
			go func() {
				defer close(done)
				if resp, err := s.client.Do(req); err == nil {
					resp.Body.Close()
				}
			}()
			recv(t, seen, "the poll at the server")
			cancel()
			<-done
			return time.Time{}, time.Now().Add(delay)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, &sockjs.Options{DisconnectDelay: delay, HeartbeatDelay: heartbeat}, nil)
			c := s.newSession("")
			opened := time.Now()
			c.open(t)
			sp := s.spark(t)
			earliest, latest := tc.abandon(t, s, c, opened)
			end := s.end(t)
			ended := time.Now()
			if end.sp != sp || end.reason != nil {
				t.Errorf("spark %s ended with %v; want %s with nil (the client went away)", end.sp.ID(), end.reason, sp.ID())
			}
			if ended.Before(earliest) {
				t.Errorf("reaped %v before the disconnect delay was over", earliest.Sub(ended))
			}
			if !latest.IsZero() && ended.After(latest) {
				t.Errorf("reaped %v after the disconnect delay, not at once", ended.Sub(latest))
			}
			select {
			case <-sp.Done():
			case <-time.After(waitTimeout):
				t.Fatal("spark not done")
			}
			if n := s.srv.Count(); n != 0 {
				t.Errorf("server still counts %d sparks", n)
			}
		})
	}
	// Every subtest's server has shut down: nothing may be left running
	// but the paused parallel tests.
	if leaked := leftOver(5 * time.Second); len(leaked) > 0 {
		t.Errorf("%d goroutines left after the sessions were reaped:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
	}
}

// A long poll or a stream outlives the server's HandshakeTimeout: that
// timeout bounds middleware and authorization, not the requests of an open
// session.
func TestLongRequestsOutliveHandshakeTimeout(t *testing.T) {
	t.Parallel()
	const handshake = 200 * time.Millisecond
	s := start(t, nil, &primus.Options{HandshakeTimeout: handshake})

	c := s.newSession("")
	c.open(t)
	sp := s.spark(t)
	polled := make(chan []string, 1)
	go func() {
		resp, err := s.client.Post(c.url("xhr"), "text/plain", nil)
		if err != nil {
			polled <- []string{err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		polled <- strings.Split(strings.TrimSpace(string(b)), "\n")
	}()
	// The duration under test: the poll waits past the handshake timeout.
	<-time.After(3 * handshake)
	if err := sp.Write("late"); err != nil {
		t.Fatal(err)
	}
	if f := recv(t, polled, "the poll"); len(f) != 1 || f[0] != `a["\"late\""]` {
		t.Errorf("poll: %q", f)
	}

	st := s.newSession("").openStream(t, http.MethodPost, "xhr_streaming", "")
	r := xhrStreamReceiver{st}
	r.next(t) // prelude
	expectOpen(t, r)
	sp = s.spark(t)
	<-time.After(3 * handshake)
	if err := sp.Write("streamed"); err != nil {
		t.Fatal(err)
	}
	if m := nextData(t, r); len(m) != 1 || m[0] != `"streamed"` {
		t.Errorf("stream: %q", m)
	}
}

// leftOver waits until no goroutine is left but the tests' own, or timeout
// passes, and returns the stacks of the others.
func leftOver(timeout time.Duration) []string {
	deadline := time.Now().Add(timeout)
	for {
		var others []string
		for _, g := range leakcheck.Current() {
			if !strings.Contains(g, "testing.tRunner(") {
				others = append(others, g)
			}
		}
		if len(others) == 0 || time.Now().After(deadline) {
			return others
		}
		<-time.After(10 * time.Millisecond)
	}
}
