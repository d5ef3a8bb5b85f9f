package clustertest

import (
	"context"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/cluster"
)

// benchClients is the number of clients per node.
const benchClients = 1000

// benchWindow is how many broadcasts the benchmark writes before it waits
// for their delivery: enough to keep the pipeline full, few enough that the
// queues stay small.
const benchWindow = 64

type benchMsg struct {
	Type string `json:"type"`
	Seq  int    `json:"seq"`
	Text string `json:"text"`
}

// counter counts the frames every raw WebSocket client reads and tells a
// waiter when the total reaches its target.
type counter struct {
	total, target atomic.Int64
	reached       chan struct{}
}

func (c *counter) add() {
	if c.total.Add(1) >= c.target.Load() {
		select {
		case c.reached <- struct{}{}:
		default:
		}
	}
}

func (c *counter) wait(want int64) {
	c.target.Store(want)
	for c.total.Load() < want {
		<-c.reached
	}
}

// benchServer makes a server for benchNode (heartbeats off).
func benchServer(b *testing.B, recovery bool) *primus.Server {
	b.Helper()
	var rec *primus.Recovery
	if recovery {
		rec = &primus.Recovery{}
	}
	srv, err := primus.New(&primus.Options{PingInterval: -1, SendQueueBytes: 64 << 20, Recovery: rec})
	if err != nil {
		b.Fatal(err)
	}
	return srv
}

// benchNode serves srv with benchClients raw WebSocket clients that count
// what they read, all stopped when the benchmark ends.
func benchNode(b *testing.B, cnt *counter, srv *primus.Server) {
	b.Helper()
	connected := make(chan struct{}, benchClients)
	srv.OnConnection(func(*primus.Spark) { connected <- struct{}{} })
	hs := httptest.NewServer(srv)
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + srv.Pathname()
	var readers sync.WaitGroup
	conns := make([]*websocket.Conn, 0, benchClients)
	b.Cleanup(func() {
		for _, c := range conns {
			_ = c.CloseNow()
		}
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		_ = srv.Shutdown(ctx)
		readers.Wait()
		hs.Close()
	})
	for range benchClients {
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		c, _, err := websocket.Dial(ctx, url, nil)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		c.SetReadLimit(-1)
		conns = append(conns, c)
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				if _, _, err := c.Read(context.Background()); err != nil {
					return
				}
				cnt.add()
			}
		}()
	}
	for range benchClients {
		<-connected
	}
}

// BenchmarkBroadcast measures broadcast deliveries per second: one node
// with 1000 clients and Server.Write, then three nodes with 1000 clients
// each and Cluster.Write on the first, through the backend (newEnv), over
// its pub/sub channels and over its durable ones (a stream entry per
// broadcast, read by every node), in the same run. Each op is one
// broadcast; the clock stops when every client has read every message.
func BenchmarkBroadcast(b *testing.B, newEnv func(t testing.TB) *Env) {
	b.Run("1node", func(b *testing.B) {
		cnt := &counter{reached: make(chan struct{}, 1)}
		srv := benchServer(b, false)
		benchNode(b, cnt, srv)
		run(b, cnt, benchClients, func(m benchMsg) error { return srv.Write(m) })
	})
	b.Run("3nodes", func(b *testing.B) {
		env := newEnv(b)
		benchNodes(b, func(ns string) Backend { return env.connect(b, ns) }, false)
	})
	durable := func(b *testing.B, recovery bool) {
		env := newEnv(b)
		if env.ConnectDurable == nil {
			b.Skip("this backend has no durable channels")
		}
		benchNodes(b, func(ns string) Backend {
			be := env.ConnectDurable(b, ns, env.Addr)
			b.Cleanup(func() { _ = be.Close() })
			return be
		}, recovery)
	}
	b.Run("3nodes-durable", func(b *testing.B) { durable(b, false) })
	// Recovery on any node: every delivery, this node's too, through the
	// journal.
	b.Run("3nodes-journal", func(b *testing.B) { durable(b, true) })
}

// benchNodes runs the broadcast benchmark on three nodes whose backends
// connect makes.
func benchNodes(b *testing.B, connect func(ns string) Backend, recovery bool) {
	ns := Namespace()
	cnt := &counter{reached: make(chan struct{}, 1)}
	var first *cluster.Cluster
	for i := range 3 {
		srv := benchServer(b, recovery)
		be := connect(ns)
		// The cluster first: with Recovery it must see every spark.
		c, err := cluster.New(srv, &cluster.Options{Broker: be, Registry: be, Recovery: recovery})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), Timeout)
			defer cancel()
			_ = c.Close(ctx)
		})
		benchNode(b, cnt, srv)
		if i == 0 {
			first = c
		}
	}
	run(b, cnt, 3*benchClients, func(m benchMsg) error { return first.Write(m) })
	if s := first.Stats(); s.Dropped > 0 {
		b.Errorf("%d messages dropped", s.Dropped)
	}
}

func run(b *testing.B, cnt *counter, clients int, write func(benchMsg) error) {
	// One message first, so that every subscription is known to work
	// before the clock starts.
	if err := write(benchMsg{Type: "warmup"}); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cnt.wait(int64(clients)); close(done) }()
	select {
	case <-done:
	case <-time.After(Timeout):
		b.Fatalf("the warm-up message reached %d of %d clients", cnt.total.Load(), clients)
	}
	base := cnt.total.Load()
	msg := benchMsg{Type: "message", Text: "hello, everyone"}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		msg.Seq = n
		if err := write(msg); err != nil {
			b.Fatal(err)
		}
		n++
		if n%benchWindow == 0 {
			cnt.wait(base + int64(n*clients))
		}
	}
	cnt.wait(base + int64(n*clients))
	b.ReportMetric(float64(n*clients)/b.Elapsed().Seconds(), "deliveries/s")
}

// BenchmarkRecovery measures how long the clients of a node that is killed
// take to resume elsewhere: three nodes with Options.Recovery behind a load
// balancer, clients on the first node, broadcasts, room writes, writes by
// id and the clients' pings flowing; then the first node loses its broker
// connection and its clients' connections at once (no shutdown). An op is
// one kill; its time runs from the kill to the moment the last client has
// resumed (ResumeEvent, its missed messages written to it). Reported too:
// when the first, the median and the 99th percentile client resumed.
// Every client is then checked to have every message once and in order, as
// in TestRecoveryAcrossNodes.
func BenchmarkRecovery(b *testing.B, newEnv func(t testing.TB) *Env, clients int) {
	var first, p50, p99 []time.Duration
	for range b.N {
		b.StopTimer()
		rc := newRecoveryCluster(b, newEnv(b))
		// Every client on node 0.
		rc.lb.SetTargetAt(1, "")
		rc.lb.SetTargetAt(2, "")
		cl := rc.dialAll(clients)
		for i, n := range rc.nodes[1:] {
			rc.lb.SetTargetAt(i+1, n.proxy.Addr())
		}
		tr := rc.flow(cl)
		time.Sleep(500 * time.Millisecond) // traffic before the kill, not a synchronisation
		victim := rc.nodes[0]
		if got := len(onNode(victim, cl)); got != clients {
			b.Fatalf("%d of %d clients on node 0", got, clients)
		}
		before := resumes(cl)
		b.StartTimer()
		killed := time.Now()
		rc.stop(victim, false)
		rc.lb.SetTargetAt(0, "")
		rc.env.Kill(victim.b)
		victim.proxy.Cut()
		waitResumed(b, cl, before)
		b.StopTimer()
		var at []time.Duration
		for _, c := range cl {
			c.mu.Lock()
			at = append(at, c.at[before[c]].Sub(killed))
			c.mu.Unlock()
		}
		slices.Sort(at)
		first = append(first, at[0])
		p50 = append(p50, at[len(at)/2])
		p99 = append(p99, at[len(at)*99/100])
		rc.check(cl, tr, true)
	}
	mean := func(ds []time.Duration) float64 {
		var sum time.Duration
		for _, d := range ds {
			sum += d
		}
		return (sum / time.Duration(len(ds))).Seconds()
	}
	b.ReportMetric(mean(first), "s-first")
	b.ReportMetric(mean(p50), "s-p50")
	b.ReportMetric(mean(p99), "s-p99")
	b.ReportMetric(float64(clients), "clients")
}
