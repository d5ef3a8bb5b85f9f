package primus_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	ws "github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/metrics"
)

// The cost of operations: metrics and limits on against off, in the same
// run. Each benchmark runs two servers, one with a metrics.Metrics observer
// and every limit set (high enough never to refuse), one without, and
// alternates rounds between them so that both see the same machine; it
// reports the process's CPU time per message for each and their ratio
// (on/off, target ≤ 1.05). The clients run in the same process, so the
// figures include their work: the ratio understates the server's own
// overhead, never overstates it.

// opsOptions are the options of the "on" server.
func opsOptions(b *testing.B) *primus.Options {
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	return &primus.Options{
		PingInterval: -1,
		Observer:     m,
		Limits: &primus.Limits{
			MaxConnections:           1 << 20,
			MaxConnectionsPerAddress: 1 << 20,
			NewConnectionsPerSecond:  1e6,
			MessagesPerSecond:        1e9,
			BytesPerSecond:           1e12,
		},
	}
}

// cpuTime is the process's user and system time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// opsServer serves opts (with an echo handler) on loopback and returns its
// WebSocket URL.
func opsServer(b *testing.B, opts *primus.Options) (*primus.Server, string) {
	b.Helper()
	srv, err := primus.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	srv.OnConnection(func(sp *primus.Spark) {
		sp.OnData(func(m *primus.Message) { _ = sp.Write(m.Raw()) })
	})
	hs := httptest.NewServer(srv)
	b.Cleanup(func() {
		_ = srv.Shutdown(context.Background())
		hs.Close()
	})
	return srv, "ws" + strings.TrimPrefix(hs.URL, "http") + "/primus"
}

// compare runs round(server) alternately for off and on until b.N
// messages went through each, and reports CPU per message.
func compare(b *testing.B, perRound int, round func(i int)) {
	b.Helper()
	var cpu [2]time.Duration
	done := 0
	b.ResetTimer()
	for done < b.N {
		for i := range 2 {
			start := cpuTime()
			round(i)
			cpu[i] += cpuTime() - start
		}
		done += perRound
	}
	b.StopTimer()
	off := float64(cpu[0].Nanoseconds()) / float64(done)
	on := float64(cpu[1].Nanoseconds()) / float64(done)
	b.ReportMetric(off, "off-cpu-ns/msg")
	b.ReportMetric(on, "on-cpu-ns/msg")
	b.ReportMetric(on/off, "on/off")
}

// BenchmarkOpsEcho: closed-loop echo on 8 connections per server.
func BenchmarkOpsEcho(b *testing.B) {
	const conns, perConn = 8, 250
	var clients [2][]*ws.Conn
	for i, opts := range []*primus.Options{{PingInterval: -1}, opsOptions(b)} {
		_, url := opsServer(b, opts)
		for range conns {
			c, _, err := ws.Dial(context.Background(), url, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = c.CloseNow() })
			clients[i] = append(clients[i], c)
		}
	}
	msg := []byte(`{"type":"message","text":"hello, world, 64 bytes of a chat message","seq":1}`)
	ctx := context.Background()
	compare(b, conns*perConn, func(i int) {
		var wg sync.WaitGroup
		for _, c := range clients[i] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range perConn {
					if err := c.Write(ctx, ws.MessageText, msg); err != nil {
						b.Error(err)
						return
					}
					if _, _, err := c.Read(ctx); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
	})
}

// BenchmarkOpsBroadcast: broadcasts to 200 connections per server; a
// message is one delivery.
func BenchmarkOpsBroadcast(b *testing.B) {
	const conns, perRound = 200, 20
	var srvs [2]*primus.Server
	var got [2]atomic.Int64
	var reached [2]chan struct{}
	var target [2]atomic.Int64
	for i, opts := range []*primus.Options{{PingInterval: -1}, opsOptions(b)} {
		srv, url := opsServer(b, opts)
		srvs[i] = srv
		reached[i] = make(chan struct{}, 1)
		for range conns {
			c, _, err := ws.Dial(context.Background(), url, nil)
			if err != nil {
				b.Fatal(err)
			}
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					if _, _, err := c.Read(context.Background()); err != nil {
						return
					}
					if got[i].Add(1) >= target[i].Load() {
						select {
						case reached[i] <- struct{}{}:
						default:
						}
					}
				}
			}()
			b.Cleanup(func() { _ = c.CloseNow(); wg.Wait() })
		}
		for srv.Count() < conns {
			time.Sleep(time.Millisecond) // the last handshakes finishing
		}
	}
	msg := primus.Raw(`{"type":"message","text":"hello, everyone, a broadcast of about 64 bytes","seq":1}`)
	compare(b, conns*perRound, func(i int) {
		for range perRound {
			want := got[i].Load() + conns
			target[i].Store(want)
			if err := srvs[i].Write(msg); err != nil {
				b.Fatal(err)
			}
			for got[i].Load() < want {
				<-reached[i]
			}
		}
	})
}

// BenchmarkLimitsEchoUnderAbuse: the echo round trip of a well-behaved
// client, alone and while another address floods the server (connecting
// as fast as it is let, writing as fast as it can until it is closed for
// its rate). Reported: the mean round trip in each phase and their ratio
// (target ≤ 2).
func BenchmarkLimitsEchoUnderAbuse(b *testing.B) {
	opts := opsOptions(b)
	opts.Limits = &primus.Limits{
		MaxConnectionsPerAddress: 10,
		NewConnectionsPerSecond:  5,
		NewConnectionsBurst:      10,
		MessagesPerSecond:        1000,
		MessagesBurst:            2000,
		BytesPerSecond:           256 << 10,
	}
	_, url := opsServer(b, opts)
	ctx := context.Background()
	dial := func(ip string) (*ws.Conn, error) {
		c, _, err := ws.Dial(ctx, url, &ws.DialOptions{HTTPClient: fromAddr(ip)})
		return c, err
	}
	good, err := dial("127.0.0.2")
	if err != nil {
		b.Fatal(err)
	}
	defer good.CloseNow()
	msg := []byte(`"ping"`)
	echo := func(n int) time.Duration {
		start := time.Now()
		for range n {
			if err := good.Write(ctx, ws.MessageText, msg); err != nil {
				b.Fatal(err)
			}
			if _, _, err := good.Read(ctx); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	// The well-behaved client stays within its own rate (1000 messages a
	// second, 2000 at once): rounds of 100 with a pause.
	const perRound = 50
	var idle, abused time.Duration
	rounds := 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	abuse := func() {
		defer wg.Done()
		flood := []byte(`"` + strings.Repeat("x", 1000) + `"`)
		for {
			select {
			case <-stop:
				return
			default:
			}
			c, err := dial("127.0.0.3")
			if err != nil {
				time.Sleep(10 * time.Millisecond) // refused (429): a real abuser retries at once; this one spares the CPU it shares
				continue
			}
			for c.Write(ctx, ws.MessageText, flood) == nil {
				select {
				case <-stop:
					_ = c.CloseNow()
					return
				default:
				}
			}
			_ = c.CloseNow()
		}
	}
	b.ResetTimer()
	for done := 0; done < b.N; done += 2 * perRound {
		idle += echo(perRound)
		stop = make(chan struct{})
		wg.Add(1)
		go abuse()
		abused += echo(perRound)
		close(stop)
		wg.Wait()
		rounds++
		time.Sleep(100 * time.Millisecond) // the client's bucket refills
	}
	b.StopTimer()
	n := float64(rounds * perRound)
	b.ReportMetric(float64(idle.Microseconds())/n, "idle-µs/echo")
	b.ReportMetric(float64(abused.Microseconds())/n, "abused-µs/echo")
	b.ReportMetric(float64(abused)/float64(idle), "abused/idle")
}
