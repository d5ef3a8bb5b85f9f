package clustertest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-primus/primus/cluster"
)

// TestCluster runs three nodes with clients spread over them on a fresh
// backend per subtest (newEnv): delivery of every kind, a node that dies,
// and a broker that restarts mid-stream.
func TestCluster(t *testing.T, newEnv func(t testing.TB) *Env) {
	t.Run("Delivery", func(t *testing.T) {
		t.Parallel()
		testDelivery(t, newEnv(t))
	})
	t.Run("NodeDies", func(t *testing.T) {
		t.Parallel()
		testNodeDies(t, newEnv(t))
	})
	t.Run("BrokerRestarts", func(t *testing.T) {
		t.Parallel()
		testBrokerRestarts(t, newEnv(t))
	})
	t.Run("BrokerHangs", func(t *testing.T) {
		t.Parallel()
		env := newEnv(t)
		if env.PauseBroker == nil {
			t.Skip("this backend's test server cannot be frozen")
		}
		testBrokerHangs(t, env)
	})
}

func startNodes(t *testing.T, env *Env, expiry time.Duration) []*Node {
	ns := Namespace()
	nodes := make([]*Node, 3)
	for i := range nodes {
		nodes[i] = StartNode(t, env, ns, NodeOptions{Expiry: expiry})
	}
	return nodes
}

func count(t *testing.T, n *Node) int {
	t.Helper()
	c, err := n.C.Count(bg(t))
	if err != nil {
		t.Fatalf("Count: %v", err)
	}
	return c
}

// testDelivery: broadcasts from every node, a room write with an exception,
// an emitter event to a room, writes by spark id, lookups and counts.
func testDelivery(t *testing.T, env *Env) {
	nodes := startNodes(t, env, 3*time.Second)
	var cl []*Client // two per node: cl[2i] and cl[2i+1] on node i
	for i := range 6 {
		cl = append(cl, Dial(t, nodes[i/2]))
	}
	for _, n := range nodes {
		n.Flush(t)
	}

	// The count, from every node.
	for i, n := range nodes {
		if got := count(t, n); got != 6 {
			t.Errorf("node %d counts %d sparks, want 6", i, got)
		}
		list, err := n.C.Nodes(bg(t))
		if err != nil || len(list) != 3 {
			t.Fatalf("node %d: Nodes() = %v, %v; want 3 nodes", i, list, err)
		}
		for _, nd := range list {
			if nd.Sparks != 2 {
				t.Errorf("node %d: Nodes() = %v, want 2 sparks each", i, list)
			}
		}
	}

	// A broadcast from each node reaches every client.
	for i, n := range nodes {
		msg := fmt.Sprintf("all from %d", i)
		if err := n.C.Write(msg); err != nil {
			t.Fatal(err)
		}
		for _, c := range cl {
			c.Expect(t, msg)
		}
	}

	// A room with a member on each node; node 1 writes to it but to its own
	// member, then broadcasts a marker: members elsewhere get both, the
	// others only the marker (one publisher's messages keep their order).
	for _, i := range []int{0, 2, 4} {
		if err := nodes[i/2].Rooms.Join(cl[i].Spark, "gophers"); err != nil {
			t.Fatal(err)
		}
	}
	Settle(t, nodes, "gophers")
	if err := nodes[1].Rooms.Room("gophers").Except(cl[2].ID).Write("room 1"); err != nil {
		t.Fatal(err)
	}
	if err := nodes[1].C.Write("mark 1"); err != nil {
		t.Fatal(err)
	}
	for i, c := range cl {
		if i == 0 || i == 4 {
			c.Expect(t, "room 1")
		}
		c.Expect(t, "mark 1")
	}

	// An emitter event to the room, from node 2.
	if err := nodes[2].Rooms.Room("gophers").Send(nodes[2].Em, "news", "headline"); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 2, 4} {
		select {
		case got := <-cl[i].Events:
			if got != "headline" {
				t.Errorf("client %d got the event %q", i, got)
			}
		case <-time.After(Timeout):
			t.Fatalf("client %d: no news event", i)
		}
	}

	// Writes by id, from node 0: to a spark on node 2, on node 1, on node 0.
	for _, i := range []int{5, 3, 1} {
		msg := fmt.Sprintf("for %d", i)
		if err := nodes[0].C.WriteTo(cl[i].ID, msg); err != nil {
			t.Fatal(err)
		}
		cl[i].Expect(t, msg)
	}
	if err := nodes[0].C.WriteTo("no-such-spark", "lost"); err != nil {
		t.Fatal(err)
	}
	nodes[0].Flush(t)
	if s := nodes[0].C.Stats(); s.Unknown != 1 {
		t.Errorf("Stats().Unknown = %d after a write to an unknown spark, want 1", s.Unknown)
	}
	if err := nodes[0].C.Write("mark 2"); err != nil {
		t.Fatal(err)
	}
	for _, c := range cl {
		c.Expect(t, "mark 2") // nobody got a message meant for another
	}
	if node, err := nodes[0].C.Lookup(bg(t), cl[5].ID); err != nil || node != nodes[2].C.ID() {
		t.Errorf("Lookup(client 5) = %q, %v; want node 2 (%s)", node, err, nodes[2].C.ID())
	}
	if _, err := nodes[0].C.Lookup(bg(t), "no-such-spark"); !errors.Is(err, cluster.ErrNotFound) {
		t.Errorf("Lookup(unknown) = %v, want ErrNotFound", err)
	}

	// A client leaves: the other nodes count one less once its node has
	// updated the registry.
	_ = cl[5].C.Close()
	<-cl[5].Spark.Done()
	nodes[2].Flush(t)
	if got := count(t, nodes[0]); got != 5 {
		t.Errorf("node 0 counts %d sparks after one left, want 5", got)
	}
	for i, n := range nodes {
		if s := n.C.Stats(); s.Dropped != 0 || s.Malformed != 0 {
			t.Errorf("node %d: %+v", i, s)
		}
	}
}

// testNodeDies cuts a node's connections as a crash would: its sparks leave
// the registry within the expiry, the node reports the failure through its
// error hook, and the others go on.
func testNodeDies(t *testing.T, env *Env) {
	const expiry = time.Second
	nodes := startNodes(t, env, expiry)
	cl := []*Client{Dial(t, nodes[0]), Dial(t, nodes[1]), Dial(t, nodes[2])}
	for _, n := range nodes {
		n.Flush(t)
	}
	if got := count(t, nodes[0]); got != 3 {
		t.Fatalf("count %d, want 3", got)
	}

	env.Kill(nodes[2].B)
	killed := time.Now()
	Eventually(t, expiry+2*time.Second, "the dead node's spark gone from the registry", func() bool {
		n, err := nodes[0].C.Count(bg(t))
		if err != nil || n != 2 {
			return false
		}
		_, err = nodes[1].C.Lookup(bg(t), cl[2].ID)
		return errors.Is(err, cluster.ErrNotFound)
	})
	gone := time.Since(killed)
	t.Logf("the dead node left the registry %v after it died (expiry %v)", gone.Round(time.Millisecond), expiry)
	if gone > expiry+time.Second {
		t.Errorf("the dead node's entries lasted %v, over the expiry of %v", gone, expiry)
	}
	list, err := nodes[0].C.Nodes(bg(t))
	if err != nil || len(list) != 2 {
		t.Errorf("Nodes() = %v, %v; want the 2 live nodes", list, err)
	}

	select {
	case err := <-nodes[2].Errs:
		t.Logf("the dead node reported: %v", err)
	case <-time.After(Timeout):
		t.Error("the dead node reported no error through Options.OnError")
	}

	if err := nodes[0].C.Write("still here"); err != nil {
		t.Fatal(err)
	}
	cl[0].Expect(t, "still here")
	cl[1].Expect(t, "still here")
}

// testBrokerRestarts stops the broker while node 0 writes a numbered stream
// every 2 ms, and starts it again: writes never block, node 0's own client
// gets every message, the failure reaches the error hook, and once the
// broker is back the other nodes receive the stream again, the registry is
// whole again and writes by id work. What is lost: the messages published
// while the broker was away (counted in Stats.Dropped).
func testBrokerRestarts(t *testing.T, env *Env) {
	nodes := startNodes(t, env, time.Second)
	cl := []*Client{Dial(t, nodes[0]), Dial(t, nodes[1]), Dial(t, nodes[2])}
	for _, n := range nodes {
		n.Flush(t)
	}

	var seq atomic.Int64 // the next number to write
	var slowest atomic.Int64
	stop := make(chan struct{})
	var writer sync.WaitGroup
	writer.Add(1)
	go func() {
		defer writer.Done()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			n := seq.Load()
			start := time.Now()
			err := nodes[0].C.Write(strconv.FormatInt(n, 10))
			if d := int64(time.Since(start)); d > slowest.Load() {
				slowest.Store(d)
			}
			if err != nil && !errors.Is(err, cluster.ErrQueueFull) {
				t.Errorf("Write: %v", err)
				return
			}
			seq.Add(1)
			select {
			case <-tick.C:
			case <-stop:
				return
			}
		}
	}()
	defer func() {
		close(stop)
		writer.Wait()
	}()

	// Client 0, on the writing node, must see every number in order.
	next0 := int64(0)
	local := func(atLeast int64) {
		t.Helper()
		for next0 <= atLeast {
			got := cl[0].Next(t)
			if got != strconv.FormatInt(next0, 10) {
				t.Fatalf("node 0's own client got %q, want %d: local delivery lost a message", got, next0)
			}
			next0++
		}
	}
	// remote waits until the client has seen a number of at least atLeast
	// and returns how many it saw, and whether skip returned true for a
	// message that is not a number.
	remote := func(c *Client, atLeast int64, skip func(string) bool) int {
		t.Helper()
		seen := 0
		for {
			got := c.Next(t)
			n, err := strconv.ParseInt(got, 10, 64)
			if err != nil {
				if skip == nil || !skip(got) {
					t.Fatalf("unexpected message %q", got)
				}
				continue
			}
			seen++
			if n >= atLeast {
				return seen
			}
		}
	}

	local(20)
	remote(cl[1], 20, nil)
	remote(cl[2], 20, nil)

	env.StopBroker(t)
	stoppedAt := seq.Load()
	select {
	case err := <-nodes[0].Errs:
		t.Logf("node 0 reported: %v", err)
	case <-time.After(Timeout):
		t.Fatal("node 0 reported no error through Options.OnError while the broker was down")
	}
	// A second of writes with the broker down: longer than the clients'
	// own retries (go-redis retries a failed dial for half a second).
	local(stoppedAt + 500)
	env.StartBroker(t)
	restartedAt := seq.Load()

	// The stream reaches the other nodes again.
	before := time.Now()
	for i := 1; i <= 2; i++ {
		remote(cl[i], restartedAt, nil)
	}
	t.Logf("the other nodes receive the stream again %v after the broker restarted", time.Since(before).Round(time.Millisecond))

	// The registry is whole again: every node counts 3 sparks, and a write
	// by id crosses nodes.
	Eventually(t, Timeout, "the registry refilled after the restart", func() bool {
		n, err := nodes[1].C.Count(bg(t))
		return err == nil && n == 3
	})
	var got bool
	skip := func(s string) bool {
		got = got || s == "direct"
		return s == "direct"
	}
	if err := nodes[0].C.WriteTo(cl[2].ID, "direct"); err != nil {
		t.Fatal(err)
	}
	for !got {
		remote(cl[2], seq.Load(), skip)
	}
	local(seq.Load() - 1)

	close(stop)
	writer.Wait()
	stop = make(chan struct{})
	st := nodes[0].C.Stats()
	t.Logf("node 0: %+v; the slowest Write took %v", st, time.Duration(slowest.Load()))
	if st.Dropped == 0 {
		t.Error("Stats().Dropped = 0: the messages written while the broker was down cannot have reached the other nodes")
	}
	if d := time.Duration(slowest.Load()); d > 250*time.Millisecond {
		t.Errorf("a Write took %v with the broker down: the write path blocked", d)
	}
}

// testBrokerHangs freezes the broker, so that publishing hangs instead of
// failing: writes still return at once, the bounded queue fills and
// refuses with ErrQueueFull (reported through the error hook), this node's
// client gets every message, and when the broker thaws delivery resumes.
func testBrokerHangs(t *testing.T, env *Env) {
	ns := Namespace()
	const queue = 16 << 10
	a := StartNode(t, env, ns, NodeOptions{Expiry: time.Second, QueueBytes: queue})
	b := StartNode(t, env, ns, NodeOptions{Expiry: time.Second})
	leaving := StartNode(t, env, ns, NodeOptions{Expiry: time.Second})
	ca, cb := Dial(t, a), Dial(t, b)
	a.Flush(t)
	b.Flush(t)

	env.PauseBroker()
	paused := true
	defer func() {
		if paused {
			env.ResumeBroker()
		}
	}()
	const writes = 1000
	text := strings.Repeat("x", 100)
	start := time.Now()
	var full int
	for i := range writes {
		err := a.C.Write(fmt.Sprintf("%d %s", i, text))
		switch {
		case errors.Is(err, cluster.ErrQueueFull):
			full++
		case err != nil:
			t.Fatal(err)
		}
	}
	took := time.Since(start)
	t.Logf("%d writes with the broker frozen took %v; %d refused by the full queue", writes, took.Round(time.Millisecond), full)
	if took > time.Second {
		t.Errorf("%d writes took %v with the broker frozen: the write path blocked", writes, took)
	}
	if full == 0 {
		t.Errorf("no write returned ErrQueueFull: %d writes of 100 bytes fit in a %d-byte queue", writes, queue)
	}
	for i := range writes {
		if got := ca.Next(t); !strings.HasPrefix(got, fmt.Sprintf("%d ", i)) {
			t.Fatalf("node a's own client got %.10q, want message %d", got, i)
		}
	}
	// A node that closes while the broker hangs gives up with Close's
	// context instead of waiting for each call's timeout.
	if err := leaving.C.Write("stuck"); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	start = time.Now()
	err := leaving.C.Close(cctx)
	cancel()
	if took := time.Since(start); took > time.Second {
		t.Errorf("Close with the broker frozen took %v, with a 200 ms context", took)
	}
	t.Logf("Close with the broker frozen: %v", err)

	var reported bool
	for !reported {
		select {
		case err := <-a.Errs:
			reported = errors.Is(err, cluster.ErrQueueFull)
		case <-time.After(Timeout):
			t.Fatal("ErrQueueFull did not reach Options.OnError")
		}
	}

	env.ResumeBroker()
	paused = false
	if err := a.C.Flush(bg(t)); err != nil {
		t.Fatal(err)
	}
	if err := a.C.Write("after"); err != nil {
		t.Fatal(err)
	}
	for {
		if got := cb.Next(t); got == "after" {
			break
		}
	}
	t.Logf("node a: %+v", a.C.Stats())
}
