package clustertest

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-primus/primus/internal/tcpproxy"
)

// TestDurable runs the suite's durable-channel cases (Env.ConnectDurable):
// a node cut off from the broker catches up on everything published
// meanwhile, and a broker that restarts costs nothing: every client gets
// every message exactly once, in order.
func TestDurable(t *testing.T, newEnv func(t testing.TB) *Env) {
	t.Run("CatchUp", func(t *testing.T) {
		t.Parallel()
		testDurableCatchUp(t, newEnv(t))
	})
	t.Run("BrokerRestarts", func(t *testing.T) {
		t.Parallel()
		testDurableBrokerRestarts(t, newEnv(t))
	})
}

// durableNodes starts three nodes with durable channels; node i connects
// to the broker at addrs[i].
func durableNodes(t *testing.T, env *Env, addrs ...string) []*Node {
	ns := Namespace()
	nodes := make([]*Node, len(addrs))
	for i, a := range addrs {
		dur := *env
		dur.Connect = func(t testing.TB, ns string) Backend { return env.ConnectDurable(t, ns, a) }
		nodes[i] = StartNode(t, &dur, ns, NodeOptions{Expiry: time.Second})
	}
	return nodes
}

// sequence writes "0", "1", … from node w every couple of milliseconds
// until stopped, and returns a function that stops it and says how many it
// wrote.
func sequence(t *testing.T, w *Node) (stop func() int64) {
	var n int64
	var mu sync.Mutex
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			mu.Lock()
			err := w.C.Write(strconv.FormatInt(n, 10))
			if err == nil {
				n++
			}
			mu.Unlock()
			if err != nil {
				t.Errorf("Write: %v", err)
				return
			}
			select {
			case <-tick.C:
			case <-done:
				return
			}
		}
	}()
	return func() int64 {
		close(done)
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}

// expectAll checks that the client gets "0" … "total-1", each once, in
// order.
func expectAll(t *testing.T, c *Client, total int64) {
	t.Helper()
	for want := int64(0); want < total; want++ {
		got := c.Next(t)
		if got != strconv.FormatInt(want, 10) {
			t.Fatalf("client got %q, want %d: a message was lost, repeated or reordered", got, want)
		}
	}
}

// testDurableCatchUp cuts node 2 off the broker (a proxy between them stops
// carrying anything) while node 0 writes: when the link is back, node 2's
// client gets every message written meanwhile, once, in order.
func testDurableCatchUp(t *testing.T, env *Env) {
	proxy := tcpproxy.New(t, env.Addr)
	nodes := durableNodes(t, env, env.Addr, env.Addr, proxy.Addr())
	cl := []*Client{Dial(t, nodes[0]), Dial(t, nodes[1]), Dial(t, nodes[2])}
	for _, n := range nodes {
		n.Flush(t)
	}
	stop := sequence(t, nodes[0])
	time.Sleep(100 * time.Millisecond) // some traffic before the cut
	proxy.Cut()
	time.Sleep(1500 * time.Millisecond) // the link stays down a while
	proxy.Restore()
	time.Sleep(100 * time.Millisecond) // and some traffic after
	total := stop()
	for i, c := range cl {
		expectAll(t, c, total)
		t.Logf("client %d: all %d messages, in order", i, total)
	}
	st := nodes[2].C.Stats()
	t.Logf("node 2: %+v", st)
	if st.Gaps != 0 {
		t.Errorf("node 2 reports %d gaps: the stream kept everything", st.Gaps)
	}
	if !st.Durable || st.Lag <= 0 {
		t.Errorf("node 2 reports durable %v, lag %v after reading the stream", st.Durable, st.Lag)
	}
	if d := nodes[0].C.Stats().Dropped; d != 0 {
		t.Errorf("node 0 dropped %d messages", d)
	}
}

// testDurableBrokerRestarts restarts the broker while node 0 writes: the
// writes made while it is down wait in node 0's queue and are published
// when it is back; every client gets every message, once, in order.
func testDurableBrokerRestarts(t *testing.T, env *Env) {
	nodes := durableNodes(t, env, env.Addr, env.Addr, env.Addr)
	cl := []*Client{Dial(t, nodes[0]), Dial(t, nodes[1]), Dial(t, nodes[2])}
	for _, n := range nodes {
		n.Flush(t)
	}
	stop := sequence(t, nodes[0])
	time.Sleep(100 * time.Millisecond)
	env.StopBroker(t)
	time.Sleep(time.Second) // writes go on meanwhile
	env.StartBroker(t)
	time.Sleep(200 * time.Millisecond)
	total := stop()
	for i, c := range cl {
		expectAll(t, c, total)
		t.Logf("client %d: all %d messages, in order", i, total)
	}
	for i, n := range nodes {
		st := n.C.Stats()
		t.Logf("node %d: %+v", i, st)
		if st.Dropped != 0 || st.Gaps != 0 {
			t.Errorf("node %d: %d dropped, %d gaps, want none", i, st.Dropped, st.Gaps)
		}
	}
}
