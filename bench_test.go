package primus_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/coder/websocket"

	"github.com/go-primus/primus"
)

// benchServer starts a server with n raw WebSocket clients that read and
// count data frames (pings are not sent: heartbeats are off). It returns
// the server's sparks and a function that waits until every client has
// received total frames.
func benchServer(b *testing.B, n int) (*primus.Server, []*primus.Spark, func(total int)) {
	b.Helper()
	srv, err := primus.New(&primus.Options{PingInterval: -1, SendQueueBytes: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	connected := make(chan *primus.Spark, n)
	srv.OnConnection(func(sp *primus.Spark) { connected <- sp })
	hs := httptest.NewServer(srv)
	// Readers add to one counter; the waiter is told when it reaches the
	// target (every client has every message, as each client gets them in
	// order and the benchmark waits before the next round where it must).
	var total, target atomic.Int64
	reached := make(chan struct{}, 1)
	var wg sync.WaitGroup
	var conns []*websocket.Conn
	ctx, cancel := context.WithCancel(context.Background())
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/primus"
	for range n {
		c, _, err := websocket.Dial(ctx, url, nil)
		if err != nil {
			b.Fatal(err)
		}
		c.SetReadLimit(-1)
		conns = append(conns, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.CloseNow()
			for {
				if _, _, err := c.Read(context.Background()); err != nil {
					return
				}
				if total.Add(1) >= target.Load() {
					select {
					case reached <- struct{}{}:
					default:
					}
				}
			}
		}()
	}
	sparks := make([]*primus.Spark, n)
	for i := range n {
		sparks[i] = <-connected
	}
	b.Cleanup(func() {
		cancel()
		for _, c := range conns {
			_ = c.CloseNow()
		}
		_ = srv.Shutdown(context.Background())
		wg.Wait()
		hs.Close()
	})
	wait := func(perClient int) {
		want := int64(perClient * n)
		target.Store(want)
		for total.Load() < want {
			<-reached
		}
	}
	return srv, sparks, wait
}

type benchMsg struct {
	Type string `json:"type"`
	Seq  int    `json:"seq"`
	Text string `json:"text"`
}

// BenchmarkSparkWrite measures Spark.Write of a small struct through the
// send queue and writer goroutine to a real socket, until the client has
// read every message.
func BenchmarkSparkWrite(b *testing.B) {
	_, sparks, wait := benchServer(b, 1)
	sp := sparks[0]
	msg := benchMsg{Type: "message", Text: "hello, world"}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		msg.Seq = n
		if err := sp.Write(msg); err != nil {
			b.Fatal(err)
		}
		n++
	}
	wait(n)
}

// BenchmarkBroadcast1000 measures one broadcast to 1000 sparks, delivered:
// each op is a Server.Write, and the clock stops when all 1000 clients have
// read every message.
func BenchmarkBroadcast1000(b *testing.B) {
	srv, _, wait := benchServer(b, 1000)
	msg := benchMsg{Type: "message", Text: "hello, everyone"}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		msg.Seq = n
		if err := srv.Write(msg); err != nil {
			b.Fatal(err)
		}
		n++
		wait(n)
	}
	b.ReportMetric(float64(n*1000)/b.Elapsed().Seconds(), "deliveries/s")
}
