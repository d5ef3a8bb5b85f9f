package primus_test

// The write path (write.go): messages are written inline by the goroutine
// that writes them when the kernel has room, and by a writer goroutine that
// exists only while a queue waits. These tests pin down what that must not
// change: order, isolation of a stalled client, and an idle spark holding no
// writer.

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-primus/primus"
)

// writerGoroutines counts the spark writer goroutines in the process.
func writerGoroutines() int {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "primus.(*Spark).writeLoop")
}

// smallServerBuffers gives the server's side of every connection a small
// kernel send buffer, so that its writes to a client that does not read
// back up in the server, not in the kernel. (The client's receive buffer is
// left alone: a tiny one on loopback makes TCP crawl.)
func smallServerBuffers(ts *httptest.Server) {
	ts.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetWriteBuffer(16 << 10)
		}
		return ctx
	}
}

// TestIdleSparkHasNoWriter: a spark whose messages went out has no writer
// goroutine; one appears while a queue waits for a client that does not
// read, and is gone once the client has caught up, and the next write works.
func TestIdleSparkHasNoWriter(t *testing.T) {
	// Not parallel: it counts the process's goroutines.
	h := startServer(t, wsJSON, &primus.Options{SendQueueBytes: 64 << 20, WriteTimeout: time.Minute}, smallServerBuffers)
	sparks := make(chan *primus.Spark, 1)
	h.srv.OnConnection(func(sp *primus.Spark) {
		sparks <- sp
		sp.OnData(func(m *primus.Message) { _ = sp.Write(m.Raw()) })
	})
	c := h.rawDial(t, nil)
	sp := waitFor(t, sparks, "the spark")
	for i := range 10 {
		h.rawWrite(t, c, i)
		if b, err := rawRead(c); err != nil || string(b) != fmt.Sprint(i) {
			t.Fatalf("echo %d: %q, %v", i, b, err)
		}
	}
	eventually(t, "no writer goroutine for an idle spark", func() bool { return writerGoroutines() == 0 })

	// The client stops reading: writes back up, and a writer holds them.
	pad := strings.Repeat("w", 4<<10)
	const n = 2000 // 8 MiB: far more than the kernel buffers hold
	for i := range n {
		if err := sp.Write(fmt.Sprintf("%d %s", i, pad)); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if got := writerGoroutines(); got != 1 {
		t.Errorf("%d writer goroutines while a queue waits, want 1", got)
	}
	for i := range n {
		b, err := rawRead(c)
		if err != nil || !strings.HasPrefix(string(b), fmt.Sprintf(`"%d `, i)) {
			t.Fatalf("message %d: %q, %v", i, short(b), err)
		}
	}
	eventually(t, "the writer gone once the queue is written", func() bool { return writerGoroutines() == 0 })
	h.rawWrite(t, c, "again")
	if b, err := rawRead(c); err != nil || string(b) != `"again"` {
		t.Fatalf("echo after the writer left: %q, %v", b, err)
	}
}

// TestInlineAndQueuedKeepOrder: several goroutines write to one spark while
// its client reads in bursts, so that some messages go out inline and some
// through the queue: each goroutine's messages arrive in its order.
func TestInlineAndQueuedKeepOrder(t *testing.T) {
	t.Parallel()
	h := startServer(t, wsJSON, &primus.Options{SendQueueBytes: 256 << 20, WriteTimeout: time.Minute}, smallServerBuffers)
	sparks := make(chan *primus.Spark, 1)
	h.srv.OnConnection(func(sp *primus.Spark) { sparks <- sp })
	c := h.rawDial(t, nil)
	sp := waitFor(t, sparks, "the spark")

	const writers, each = 4, 3000
	type msg struct {
		W, N int
		Pad  string
	}
	pad := strings.Repeat("o", 200)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range each {
				if err := sp.Write(msg{w, n, pad}); err != nil {
					t.Errorf("writer %d, message %d: %v", w, n, err)
					return
				}
				if n%500 == 0 {
					runtime.Gosched()
				}
			}
		}()
	}
	next := make([]int, writers)
	for range writers * each {
		b, err := rawRead(c)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		var m msg
		if err := wsJSON.parser.Decode(b, &m); err != nil {
			t.Fatalf("decode %q: %v", short(b), err)
		}
		if m.N != next[m.W] {
			t.Fatalf("writer %d: got message %d, want %d", m.W, m.N, next[m.W])
		}
		next[m.W]++
	}
	wg.Wait()
}

// TestStalledSocketDoesNotDelayBroadcast: a client that stops reading while
// broadcasts go on costs the others nothing: every broadcast returns at once,
// the others get every message, and only the stalled spark has a writer
// goroutine waiting on its socket.
func TestStalledSocketDoesNotDelayBroadcast(t *testing.T) {
	// Not parallel: it counts the process's goroutines.
	h := startServer(t, wsJSON, &primus.Options{SendQueueBytes: 64 << 20, WriteTimeout: time.Minute}, smallServerBuffers)
	const healthy = 10
	clients := make([]*testClient, healthy)
	for i := range clients {
		clients[i] = h.dial(t, "", nil)
		clients[i].id()
	}
	stalled := h.rawDial(t, nil) // never reads
	eventually(t, "all sparks", func() bool { return h.srv.Count() == healthy+1 })

	pad := strings.Repeat("b", 1<<10)
	const total = 3000 // 3 MiB to the stalled client: far more than its kernel buffers hold
	for seq := range total {
		start := time.Now()
		if err := h.srv.Write(fmt.Sprintf("%d %s", seq, pad)); err != nil {
			t.Fatalf("broadcast %d: %v", seq, err)
		}
		// Generous: a broadcast that waited for the stalled socket would
		// wait for the minute of WriteTimeout.
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("broadcast %d took %v", seq, d)
		}
	}
	for i, c := range clients {
		for seq := range total {
			got := decodeAs[string](t, c.data.next(t, fmt.Sprintf("client %d: broadcast %d", i, seq)))
			if !strings.HasPrefix(got, fmt.Sprintf("%d ", seq)) {
				t.Fatalf("client %d: got %q, want broadcast %d", i, short(got), seq)
			}
		}
	}
	if got := writerGoroutines(); got != 1 {
		t.Errorf("%d writer goroutines, want 1 (the stalled spark's)", got)
	}
	_ = stalled
}

// readers returns the "created by" lines of the sparks' reading
// goroutines: a move to a fresh goroutine changes a spark's line.
func readers() []string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var lines []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.Contains(g, "primus.(*Spark).readLoop(") {
			continue
		}
		for _, l := range strings.Split(g, "\n") {
			if strings.HasPrefix(l, "created by ") {
				lines = append(lines, l)
			}
		}
	}
	return lines
}

// TestIdleReadingMoves: a spark idle for a second or two has its reading
// moved to a fresh goroutine (a small stack instead of the one its messages
// grew); messages before, across and after the move arrive, in order, and
// the spark still ends normally.
func TestIdleReadingMoves(t *testing.T) {
	// Not parallel: it counts the process's goroutines.
	h := startServer(t, wsJSON, nil)
	se := watchSparks(h.srv)
	h.srv.OnConnection(func(sp *primus.Spark) {
		sp.OnData(func(m *primus.Message) { _ = sp.Write(m.Raw()) })
	})
	c := h.rawDial(t, nil)
	se.conns.next(t, "the spark")
	next := 0
	echo := func(n int) {
		t.Helper()
		for range n {
			h.rawWrite(t, c, next)
			if b, err := rawRead(c); err != nil || string(b) != fmt.Sprint(next) {
				t.Fatalf("echo %d: %q, %v", next, b, err)
			}
			next++
		}
	}
	echo(3)
	for range 2 {
		before := readers()
		if len(before) != 1 {
			t.Fatalf("reading goroutines: %q, want one", before)
		}
		eventually(t, "the idle spark's reading moved", func() bool {
			now := readers()
			return len(now) == 1 && now[0] != before[0] && strings.Contains(now[0], "(*Spark).readLoop")
		})
		// Straight after a move, then a burst written at once.
		echo(1)
		for i := range 50 {
			h.rawWrite(t, c, next+i)
		}
		for i := range 50 {
			if b, err := rawRead(c); err != nil || string(b) != fmt.Sprint(next+i) {
				t.Fatalf("burst %d: %q, %v", next+i, b, err)
			}
		}
		next += 50
	}
	_ = c.Close(1000, "")
	if end := se.ends.next(t, "the spark's end"); end.reason != nil {
		t.Errorf("OnEnd(%v), want nil", end.reason)
	}
	eventually(t, "no reading goroutine left", func() bool { return len(readers()) == 0 })
}
