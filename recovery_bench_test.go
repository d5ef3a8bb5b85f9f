package primus_test

import (
	"context"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/go-primus/primus"
)

// Recovery's cost, measured: the same echo and broadcast with recovery off
// and on, in one run (go test -run '^$' -bench Recovery). The clients are
// raw WebSockets that, with recovery on, ask for it and confirm what they
// receive every 64 messages, as the Go and browser clients do. Each
// benchmark reports the process's CPU time per message ("cpu-ns/msg",
// server and clients together: the clients' work is the same either way
// but for the confirmations) besides the wall time.

// recoveryBenchServer starts a server (recovery on or off) that echoes, and
// n clients that count what they receive; ack makes them confirm.
type recoveryBench struct {
	srv    *primus.Server
	conns  []*websocket.Conn
	sparks []*primus.Spark
	total  atomic.Int64
	target atomic.Int64
	signal chan struct{}
}

func startRecoveryBench(b *testing.B, n int, recovery bool) *recoveryBench {
	b.Helper()
	opts := &primus.Options{PingInterval: -1, SendQueueBytes: 64 << 20}
	if recovery {
		opts.Recovery = &primus.Recovery{Window: time.Minute, MaxBytes: 64 << 20, MaxMessages: 1 << 20}
	}
	srv, err := primus.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	connected := make(chan *primus.Spark, n)
	srv.OnConnection(func(sp *primus.Spark) {
		sp.OnData(func(m *primus.Message) { _ = sp.Write(m.Raw()) })
		connected <- sp
	})
	hs := httptest.NewServer(srv)
	rb := &recoveryBench{srv: srv, signal: make(chan struct{}, 1)}
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/primus"
	if recovery {
		url += "?_primus_recover=1"
	}
	var wg sync.WaitGroup
	for range n {
		c, _, err := websocket.Dial(context.Background(), url, nil)
		if err != nil {
			b.Fatal(err)
		}
		c.SetReadLimit(-1)
		rb.conns = append(rb.conns, c)
		if recovery {
			if _, _, err := c.Read(context.Background()); err != nil { // the greeting
				b.Fatal(err)
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			received := 0
			for {
				if _, _, err := c.Read(context.Background()); err != nil {
					return
				}
				received++
				if recovery && received%64 == 0 {
					_ = c.Write(context.Background(), websocket.MessageText, []byte(`"primus::ack::`+strconv.Itoa(received)+`"`))
				}
				if rb.total.Add(1) >= rb.target.Load() {
					select {
					case rb.signal <- struct{}{}:
					default:
					}
				}
			}
		}()
	}
	for range n {
		rb.sparks = append(rb.sparks, <-connected)
	}
	b.Cleanup(func() {
		for _, c := range rb.conns {
			_ = c.CloseNow()
		}
		_ = srv.Shutdown(context.Background())
		wg.Wait()
		hs.Close()
	})
	return rb
}

// wait waits until the clients have received want messages in all.
func (rb *recoveryBench) wait(want int64) {
	rb.target.Store(want)
	for rb.total.Load() < want {
		<-rb.signal
	}
}

func onOff(b *testing.B, f func(b *testing.B, recovery bool)) {
	b.Run("off", func(b *testing.B) { f(b, false) })
	b.Run("on", func(b *testing.B) { f(b, true) })
}

// BenchmarkRecoveryEcho: 100 clients each echoing, 8 messages in flight.
func BenchmarkRecoveryEcho(b *testing.B) {
	onOff(b, func(b *testing.B, recovery bool) {
		rb := startRecoveryBench(b, 100, recovery)
		msg := []byte(`{"type":"message","text":"hello, world, this is an echo"}`)
		b.ReportAllocs()
		cpu0 := cpuTime()
		b.ResetTimer()
		n := int64(0)
		for b.Loop() {
			for _, c := range rb.conns {
				for range 8 {
					if err := c.Write(context.Background(), websocket.MessageText, msg); err != nil {
						b.Fatal(err)
					}
				}
			}
			n += int64(8 * len(rb.conns))
			rb.wait(n)
		}
		b.StopTimer()
		b.ReportMetric(float64(cpuTime()-cpu0)/float64(n), "cpu-ns/msg")
	})
}

// BenchmarkRecoveryBroadcast: a broadcast to 1000 sparks, delivered.
func BenchmarkRecoveryBroadcast(b *testing.B) {
	onOff(b, func(b *testing.B, recovery bool) {
		rb := startRecoveryBench(b, 1000, recovery)
		msg := benchMsg{Type: "message", Text: "hello, everyone"}
		b.ReportAllocs()
		cpu0 := cpuTime()
		b.ResetTimer()
		n := int64(0)
		for b.Loop() {
			if err := rb.srv.Write(msg); err != nil {
				b.Fatal(err)
			}
			n += 1000
			rb.wait(n)
		}
		b.StopTimer()
		b.ReportMetric(float64(cpuTime()-cpu0)/float64(n), "cpu-ns/delivery")
	})
}

// BenchmarkRecoveryIdleSpark: the live heap per idle spark (clients
// included: they run in this process) that has had 100 messages, all
// confirmed (as they are at the client's next pong), with recovery off and
// on.
func BenchmarkRecoveryIdleSpark(b *testing.B) {
	onOff(b, func(b *testing.B, recovery bool) {
		for range b.N {
			base := liveHeap()
			rb := startRecoveryBench(b, 1000, recovery)
			for i := range 100 {
				if err := rb.srv.Write(benchMsg{Type: "m", Seq: i}); err != nil {
					b.Fatal(err)
				}
			}
			rb.wait(100 * 1000)
			// Each client confirms everything, then asks for its id: once
			// every reply is in, every confirmation has been handled.
			for _, c := range rb.conns {
				if recovery {
					_ = c.Write(context.Background(), websocket.MessageText, []byte(`"primus::ack::100"`))
				}
				_ = c.Write(context.Background(), websocket.MessageText, []byte(`"primus::id::"`))
			}
			rb.wait(101 * 1000)
			b.ReportMetric(float64(liveHeap()-base)/1000, "heap-B/spark")
		}
	})
}
