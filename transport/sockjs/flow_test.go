package sockjs_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/transport/sockjs"
)

// A polling client that collects slowly gets everything, in order, and no
// poll carries more than SendBufferBytes plus one message: what sockjs-go
// buffers between two polls is bounded.
func TestSendBufferBoundsPolls(t *testing.T) {
	t.Parallel()
	const bound = 4 << 10
	s := start(t, &sockjs.Options{SendBufferBytes: bound}, nil)
	c := s.newSession("")
	c.open(t)
	sp := s.spark(t)

	const n = 200
	msg := func(i int) string { return fmt.Sprintf("%q", fmt.Sprintf("%04d %s", i, strings.Repeat("x", 100))) }
	written := make(chan error, 1)
	go func() {
		for i := range n {
			if err := sp.Write(primus.Raw(msg(i))); err != nil {
				written <- err
				return
			}
		}
		written <- nil
	}()

	var got []string
	polls := 0
	for len(got) < n {
		frames := c.poll(t)
		polls++
		for _, f := range frames {
			if f == "h" {
				continue
			}
			msgs := messages(t, f)
			size := 0
			for _, m := range msgs {
				size += len(m)
			}
			if size > bound+len(msg(0)) {
				t.Errorf("a poll carried %d bytes in %d messages, more than SendBufferBytes (%d) + one message", size, len(msgs), bound)
			}
			got = append(got, msgs...)
		}
	}
	if err := recv(t, written, "the writes"); err != nil {
		t.Fatal(err)
	}
	for i, m := range got {
		if m != msg(i) {
			t.Fatalf("message %d is %q, want %q", i, short(m), short(msg(i)))
		}
	}
	if min := n * len(msg(0)) / (bound + len(msg(0))); polls < min {
		t.Errorf("%d polls for %d bytes; at least %d needed with the bound", polls, n*len(msg(0)), min)
	}
}

// A polling client that stops collecting fills the transformer's bound,
// then the spark's send queue, and the spark is closed as a slow consumer
// long before the session would time out, with a close frame that says so.
func TestSlowPollingConsumer(t *testing.T) {
	t.Parallel()
	s := start(t, &sockjs.Options{SendBufferBytes: 8 << 10, DisconnectDelay: 3 * time.Second},
		&primus.Options{SendQueueBytes: 16 << 10})
	c := s.newSession("")
	c.open(t)
	sp := s.spark(t)
	start := time.Now()
	payload := primus.Raw(fmt.Sprintf("%q", strings.Repeat("y", 1000)))
	// 60 KB at a pace the spark's writer keeps up with: only the bound on
	// what sockjs-go buffers can fill the spark's 16 KiB queue.
	var err error
	written := 0
	for ; written < 60 && err == nil; written++ {
		err = sp.Write(payload)
		<-time.After(time.Millisecond)
	}
	if !errors.Is(err, primus.ErrSlowConsumer) {
		t.Fatalf("writing 60 KB to a client that does not poll: %v, want ErrSlowConsumer", err)
	}
	if max := (8<<10 + 16<<10 + 2*len(payload)) / len(payload); written > max {
		t.Errorf("%d messages of %d bytes accepted before the slow consumer was closed, want at most %d", written, len(payload), max)
	}
	if end := s.end(t); !errors.Is(end.reason, primus.ErrSlowConsumer) {
		t.Errorf("spark ended with %v, want ErrSlowConsumer", end.reason)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the slow consumer was closed after %v", d)
	}
	// The client learns at its next poll why it was closed; the messages
	// it did not collect are dropped.
	if f := c.poll(t); len(f) != 1 || f[0] != `c[1008,"slow consumer"]` {
		t.Errorf("poll after the slow consumer was closed: %q", f)
	}
}

// A streaming client that does not read blocks the write on the network;
// the core's write timeout closes the spark, and CloseNow unblocks the
// writer.
func TestStalledStream(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		open func(t *testing.T, s *server)
	}{
		{"xhr-streaming", func(t *testing.T, s *server) {
			c := s.newSession("")
			c.openStream(t, http.MethodPost, "xhr_streaming", "") // never read
		}},
		{"websocket", func(t *testing.T, s *server) {
			if _, _, err := dial(t, "ws"+strings.TrimPrefix(s.url, "http")+"/1/stalled1/websocket", nil); err != nil {
				t.Fatal(err) // never read
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := start(t, &sockjs.Options{ResponseLimit: 1 << 30},
				&primus.Options{WriteTimeout: 300 * time.Millisecond, SendQueueBytes: 1 << 30})
			tc.open(t, s)
			sp := s.spark(t)
			payload := primus.Raw(fmt.Sprintf("%q", strings.Repeat("z", 64<<10)))
			// Loopback buffers hold a few MB; 256 MB cannot fit. The queue
			// holds the one payload many times over.
			for i := 0; i < 4096; i++ {
				if err := sp.Write(payload); err != nil {
					break
				}
			}
			if end := s.end(t); !errors.Is(end.reason, primus.ErrWriteTimeout) {
				t.Errorf("spark ended with %v, want ErrWriteTimeout", end.reason)
			}
		})
	}
}
