package engineio_test

import (
	"strings"
	"testing"
	"time"

	"github.com/go-primus/primus/internal/leakcheck"
	"github.com/go-primus/primus/transport/engineio"
)

// Sessions that never upgrade and are abandoned leave nothing behind: a
// client that stops polling, one that vanishes in the middle of a poll, one
// whose upgrade probe never completes and who stops polling too. Each spark
// ends, the transformer forgets every sid, and once the server has shut
// down no goroutine is left. This test is not parallel, so that the
// goroutine count at its end is its own.
func TestAbandonedSessionsLeaveNothing(t *testing.T) {
	const interval, timeout, upgrade = 150 * time.Millisecond, 150 * time.Millisecond, 200 * time.Millisecond
	for _, tc := range []struct {
		name    string
		abandon func(t *testing.T, s *server, c *session)
	}{
		{"stops polling", func(t *testing.T, s *server, c *session) {}},
		{"vanishes mid-poll", func(t *testing.T, s *server, c *session) {
			rawRequest(t, s, "GET", strings.TrimPrefix(c.url(), s.ts.URL), "", "")
		}},
		{"closes mid-poll", func(t *testing.T, s *server, c *session) {
			conn := rawRequest(t, s, "GET", strings.TrimPrefix(c.url(), s.ts.URL), "", "")
			waitPolling(t, s, c)
			_ = conn.Close()
		}},
		{"probes and leaves", func(t *testing.T, s *server, c *session) {
			w, _, err := s.dialWS(t, "EIO=4&transport=websocket&sid="+c.sid, nil)
			if err != nil {
				t.Fatal(err)
			}
			w.write(t, "2probe")
			if p := w.read(t); p != "3probe" {
				t.Fatalf("probe answer %q", p)
			}
		}},
		{"drops mid-send", func(t *testing.T, s *server, c *session) {
			conn := rawRequest(t, s, "POST", strings.TrimPrefix(c.url(), s.ts.URL), "Content-Length: 100\r\n", `4"half`)
			waitPosting(t, s, c)
			_ = conn.Close()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, &engineio.Options{PingInterval: interval, PingTimeout: timeout, UpgradeTimeout: upgrade}, nil)
			c := s.handshake(t, "", nil)
			sp := s.spark(t)
			tc.abandon(t, s, c)
			if end := s.end(t); end.sp != sp || end.reason != nil {
				t.Errorf("spark %s ended with %v; want %s with nil (the client went away)", end.sp.ID(), end.reason, sp.ID())
			}
			select {
			case <-sp.Done():
			case <-time.After(waitTimeout):
				t.Fatal("spark not done")
			}
			waitFor(t, "the sessions to go", func() bool { return engineio.Sessions(s.tr) == 0 })
			if n := s.srv.Count(); n != 0 {
				t.Errorf("server still counts %d sparks", n)
			}
		})
	}
	if leaked := leftOver(5 * time.Second); len(leaked) > 0 {
		t.Errorf("%d goroutines left after the sessions were reaped:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
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
