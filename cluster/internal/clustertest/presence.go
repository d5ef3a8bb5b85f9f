package clustertest

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-primus/primus/cluster"
	"github.com/go-primus/primus/rooms"
)

// TestPresence runs the cluster-wide room membership on three nodes, a
// fresh backend per subtest (newEnv): queries and events agree on every
// node after joins, leaves, disconnections, remote operations and a node's
// death; and a room write reaches only the nodes with members of the room,
// as the broker itself counts.
func TestPresence(t *testing.T, newEnv func(t testing.TB) *Env) {
	t.Run("Agreement", func(t *testing.T) {
		t.Parallel()
		testPresenceAgreement(t, newEnv(t))
	})
	t.Run("NodeDies", func(t *testing.T) {
		t.Parallel()
		testPresenceNodeDies(t, newEnv(t))
	})
	t.Run("TargetedWrites", func(t *testing.T) {
		t.Parallel()
		testTargetedWrites(t, newEnv(t))
	})
	t.Run("BrokerRestarts", func(t *testing.T) {
		t.Parallel()
		testPresenceBrokerRestarts(t, newEnv(t))
	})
}

// testPresenceBrokerRestarts changes memberships while the broker is down:
// their events are lost, and once it is back the other nodes notice the
// gap, read the node again from the directory and deliver the difference,
// so that their events, routes and queries all come to the truth.
func testPresenceBrokerRestarts(t *testing.T, env *Env) {
	nodes := startNodes(t, env, time.Second)
	ev := recordEvents(nodes[0])
	a, b := Dial(t, nodes[2]), Dial(t, nodes[2])
	if err := nodes[2].Rooms.Join(a.Spark, "r"); err != nil {
		t.Fatal(err)
	}
	Settle(t, nodes, "r")
	n2 := nodes[2].C.ID()

	env.StopBroker(t)
	if err := nodes[2].Rooms.Join(b.Spark, "q"); err != nil {
		t.Fatal(err)
	}
	nodes[2].Rooms.Leave(a.Spark, "r")
	env.StartBroker(t)
	restarted := time.Now()

	// Node 0's view, from its events alone.
	seen := map[string]bool{}
	want := map[string]bool{"q " + b.ID + "@" + n2: true}
	Eventually(t, Timeout, "node 0's events, routes and queries agree with node 2", func() bool {
		for {
			select {
			case s := <-ev.ch:
				s = strings.TrimSuffix(s, " gone")
				seen[s[1:]] = s[0] == '+'
				if s[0] == '-' {
					delete(seen, s[1:])
				}
				continue
			default:
			}
			break
		}
		p := nodes[0].Rooms.Presence()
		if !maps.Equal(seen, want) || !slices.Equal(p.NodesOf("q"), []string{n2}) || len(p.NodesOf("r")) > 0 {
			return false
		}
		m, err := nodes[0].Rooms.MembersAll(bg(t), "q")
		return err == nil && slices.Equal(m, []string{b.ID})
	})
	t.Logf("node 0 caught up with the changes made during the outage %v after the broker restarted", time.Since(restarted).Round(time.Millisecond))
}

// events records a node's join and leave events as "+room spark@node",
// "-room spark@node" and, for a node that left, "-room spark@node gone".
type events struct{ ch chan string }

func recordEvents(n *Node) *events {
	e := &events{ch: make(chan string, 1024)}
	n.Rooms.OnJoin(func(ev rooms.Event) { e.ch <- fmt.Sprintf("+%s %s@%s", ev.Room, ev.Spark, ev.Node) })
	n.Rooms.OnLeave(func(ev rooms.Event) {
		s := fmt.Sprintf("-%s %s@%s", ev.Room, ev.Spark, ev.Node)
		if ev.NodeGone {
			s += " gone"
		}
		e.ch <- s
	})
	return e
}

// expect reads len(want) events, in any order, and checks they are want.
func (e *events) expect(t *testing.T, who string, want ...string) {
	t.Helper()
	var got []string
	timeout := time.After(Timeout)
	for len(got) < len(want) {
		select {
		case s := <-e.ch:
			got = append(got, s)
		case <-timeout:
			t.Fatalf("%s: events %q, want %q", who, got, want)
		}
	}
	sort.Strings(got)
	want = slices.Clone(want)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s: events %q, want %q", who, got, want)
	}
}

// none checks that no event is waiting.
func (e *events) none(t *testing.T, who string) {
	t.Helper()
	select {
	case s := <-e.ch:
		t.Errorf("%s: unexpected event %q", who, s)
	default:
	}
}

// agree checks that every node answers the same to every query.
func agree(t *testing.T, nodes []*Node, members map[string][]string, roomsOf map[string][]string) {
	t.Helper()
	var all []string
	for room, ids := range members {
		if len(ids) > 0 {
			all = append(all, room)
		}
	}
	all = sorted(all)
	for i, n := range nodes {
		for room, want := range members {
			got, err := n.Rooms.MembersAll(bg(t), room)
			if err != nil || !slices.Equal(got, sorted(want)) {
				t.Errorf("node %d: MembersAll(%s) = %q, %v; want %q", i, room, got, err, sorted(want))
			}
			c, err := n.Rooms.CountAll(bg(t), room)
			if err != nil || c != len(want) {
				t.Errorf("node %d: CountAll(%s) = %d, %v; want %d", i, room, c, err, len(want))
			}
		}
		for id, want := range roomsOf {
			got, err := n.Rooms.RoomsOfAll(bg(t), id)
			if err != nil || !slices.Equal(got, sorted(want)) {
				t.Errorf("node %d: RoomsOfAll(%s) = %q, %v; want %q", i, id, got, err, sorted(want))
			}
		}
		got, err := n.Rooms.RoomsAll(bg(t))
		if err != nil || !slices.Equal(got, all) {
			t.Errorf("node %d: RoomsAll() = %q, %v; want %q", i, got, err, all)
		}
	}
}

func flushAll(t *testing.T, nodes []*Node) {
	t.Helper()
	for _, n := range nodes {
		n.Flush(t)
	}
}

// testPresenceAgreement: joins, leaves, a disconnection and remote
// operations, each seen alike by the queries of every node and by the
// events of every node.
func testPresenceAgreement(t *testing.T, env *Env) {
	nodes := startNodes(t, env, 3*time.Second)
	ev := make([]*events, 3)
	for i, n := range nodes {
		ev[i] = recordEvents(n)
	}
	var cl []*Client // two per node: cl[2i] and cl[2i+1] on node i
	for i := range 6 {
		cl = append(cl, Dial(t, nodes[i/2]))
	}
	at := func(i int) string { return cl[i].ID + "@" + nodes[i/2].C.ID() }
	expectAll := func(want ...string) {
		t.Helper()
		for i := range ev {
			ev[i].expect(t, fmt.Sprintf("node %d", i), want...)
		}
	}

	// Joins on every node.
	for _, j := range []struct {
		c    int
		room string
	}{{0, "lobby"}, {2, "lobby"}, {4, "lobby"}, {4, "other"}, {1, "other"}} {
		if err := nodes[j.c/2].Rooms.Join(cl[j.c].Spark, j.room); err != nil {
			t.Fatal(err)
		}
	}
	// A second join is no change: no event.
	if err := nodes[0].Rooms.Join(cl[0].Spark, "lobby"); err != nil {
		t.Fatal(err)
	}
	expectAll("+lobby "+at(0), "+lobby "+at(2), "+lobby "+at(4), "+other "+at(4), "+other "+at(1))
	flushAll(t, nodes)
	agree(t, nodes,
		map[string][]string{"lobby": {cl[0].ID, cl[2].ID, cl[4].ID}, "other": {cl[4].ID, cl[1].ID}, "none": nil},
		map[string][]string{cl[4].ID: {"lobby", "other"}, cl[3].ID: nil, "no-such-spark": nil})

	// A leave, and a spark that ends leaves all its rooms.
	nodes[1].Rooms.Leave(cl[2].Spark, "lobby")
	_ = cl[4].C.Close()
	<-cl[4].Spark.Done()
	expectAll("-lobby "+at(2), "-lobby "+at(4), "-other "+at(4))
	flushAll(t, nodes)
	agree(t, nodes,
		map[string][]string{"lobby": {cl[0].ID}, "other": {cl[1].ID}},
		map[string][]string{cl[4].ID: nil, cl[2].ID: nil})

	// Remote operations from node 0: a spark of node 1 joins "vip", and a
	// room write from node 0 reaches it; a spark of node 2 joins and
	// leaves; unknown sparks are refused.
	if err := nodes[0].Rooms.JoinRemote(bg(t), cl[3].ID, "vip"); err != nil {
		t.Fatalf("JoinRemote: %v", err)
	}
	if got := nodes[1].Rooms.RoomsOf(cl[3].Spark); !slices.Equal(got, []string{"vip"}) {
		t.Errorf("after JoinRemote, node 1 has the spark in %q", got)
	}
	if err := nodes[0].Rooms.JoinRemote(bg(t), cl[5].ID, "vip"); err != nil {
		t.Fatalf("JoinRemote: %v", err)
	}
	if err := nodes[0].Rooms.JoinRemote(bg(t), cl[0].ID, "vip"); err != nil { // its own
		t.Fatalf("JoinRemote: %v", err)
	}
	expectAll("+vip "+at(3), "+vip "+at(5), "+vip "+at(0))
	if err := nodes[0].Rooms.Room("vip").Except(cl[0].ID).Write("to the vips"); err != nil {
		t.Fatal(err)
	}
	cl[3].Expect(t, "to the vips")
	cl[5].Expect(t, "to the vips")
	if err := nodes[0].Rooms.LeaveRemote(bg(t), cl[5].ID, "vip"); err != nil {
		t.Fatalf("LeaveRemote: %v", err)
	}
	if err := nodes[0].Rooms.LeaveRemote(bg(t), cl[5].ID, "vip"); err != nil {
		t.Errorf("LeaveRemote of a room the spark is not in: %v", err)
	}
	expectAll("-vip " + at(5))
	for _, err := range []error{
		nodes[0].Rooms.JoinRemote(bg(t), "no-such-spark", "vip"),
		nodes[0].Rooms.LeaveRemote(bg(t), "no-such-spark", "vip"),
		nodes[0].Rooms.JoinRemote(bg(t), cl[4].ID, "vip"), // ended
	} {
		if !errors.Is(err, rooms.ErrNotFound) {
			t.Errorf("remote operation on an unknown spark = %v, want rooms.ErrNotFound", err)
		}
	}
	flushAll(t, nodes)
	agree(t, nodes,
		map[string][]string{"lobby": {cl[0].ID}, "other": {cl[1].ID}, "vip": {cl[0].ID, cl[3].ID}},
		map[string][]string{cl[3].ID: {"vip"}, cl[5].ID: nil})

	// Disconnect ends a spark of another node (its client is told and does
	// not come back); its rooms lose it everywhere. Reconnect closes one's
	// connection.
	if err := nodes[0].C.Disconnect(bg(t), cl[3].ID); err != nil {
		t.Fatalf("Disconnect: %v", err)
	}
	select {
	case <-cl[3].Spark.Done():
	case <-time.After(Timeout):
		t.Fatal("Disconnect: the spark did not end")
	}
	expectAll("-vip " + at(3))
	if err := nodes[2].C.Reconnect(bg(t), cl[1].ID); err != nil {
		t.Fatalf("Reconnect: %v", err)
	}
	select {
	case <-cl[1].Spark.Done():
	case <-time.After(Timeout):
		t.Fatal("Reconnect: the spark's connection was not closed")
	}
	expectAll("-other " + at(1))
	for _, err := range []error{
		nodes[0].C.Disconnect(bg(t), "no-such-spark"),
		nodes[0].C.Disconnect(bg(t), cl[3].ID),
		nodes[1].C.Reconnect(bg(t), "no-such-spark"),
	} {
		if !errors.Is(err, cluster.ErrNotFound) {
			t.Errorf("Disconnect of an unknown spark = %v, want ErrNotFound", err)
		}
	}
	flushAll(t, nodes)
	agree(t, nodes,
		map[string][]string{"lobby": {cl[0].ID}, "vip": {cl[0].ID}, "other": nil},
		map[string][]string{cl[0].ID: {"lobby", "vip"}, cl[3].ID: nil})
	for i := range ev {
		ev[i].none(t, fmt.Sprintf("node %d", i))
	}
}

// testPresenceNodeDies cuts a node's connections as a crash would: within
// the expiry its memberships leave every other node's queries, and those
// nodes deliver their leaves (NodeGone).
func testPresenceNodeDies(t *testing.T, env *Env) {
	const expiry = time.Second
	nodes := startNodes(t, env, expiry)
	ev := make([]*events, 3)
	for i, n := range nodes {
		ev[i] = recordEvents(n)
	}
	cl := []*Client{Dial(t, nodes[0]), Dial(t, nodes[1]), Dial(t, nodes[2]), Dial(t, nodes[2])}
	join := func(c *Client, n *Node, room string) {
		if err := n.Rooms.Join(c.Spark, room); err != nil {
			t.Fatal(err)
		}
	}
	join(cl[0], nodes[0], "r")
	join(cl[1], nodes[1], "r")
	join(cl[2], nodes[2], "r")
	join(cl[3], nodes[2], "s")
	at := func(c *Client, n *Node) string { return c.ID + "@" + n.C.ID() }
	want := []string{"+r " + at(cl[0], nodes[0]), "+r " + at(cl[1], nodes[1]), "+r " + at(cl[2], nodes[2]), "+s " + at(cl[3], nodes[2])}
	for i := range ev {
		ev[i].expect(t, fmt.Sprintf("node %d", i), want...)
	}
	flushAll(t, nodes)
	live := nodes[:2]
	agree(t, live, map[string][]string{"r": {cl[0].ID, cl[1].ID, cl[2].ID}, "s": {cl[3].ID}}, nil)

	env.Kill(nodes[2].B)
	killed := time.Now()
	Eventually(t, expiry+2*time.Second, "the dead node's members gone from the directory", func() bool {
		for _, n := range live {
			if c, err := n.Rooms.CountAll(bg(t), "r"); err != nil || c != 2 {
				return false
			}
			if c, err := n.Rooms.CountAll(bg(t), "s"); err != nil || c != 0 {
				return false
			}
		}
		return true
	})
	gone := time.Since(killed)
	t.Logf("the dead node's members left the directory %v after it died (expiry %v)", gone.Round(time.Millisecond), expiry)
	if gone > expiry+time.Second {
		t.Errorf("the dead node's memberships lasted %v, over the expiry of %v", gone, expiry)
	}
	agree(t, live, map[string][]string{"r": {cl[0].ID, cl[1].ID}, "s": nil}, map[string][]string{cl[3].ID: nil})
	for i, n := range live {
		ev[i].expect(t, fmt.Sprintf("node %d", i), "-r "+at(cl[2], nodes[2])+" gone", "-s "+at(cl[3], nodes[2])+" gone")
		if got := n.Rooms.Room("r").Members(); len(got) != 1 {
			t.Errorf("node %d: local members %q", i, got)
		}
	}
	t.Logf("the other nodes delivered the dead node's leaves %v after it died", time.Since(killed).Round(time.Millisecond))
	// A room write from node 0 no longer goes to the dead node.
	if got := nodes[0].Rooms.Presence().NodesOf("r"); !slices.Equal(got, []string{nodes[1].C.ID()}) {
		t.Errorf("node 0 sends room r's writes to %q, want node 1 alone", got)
	}
}

// spy counts, on a connection of its own to the broker, the messages of
// each node's channel and of the channel of every node that contain a
// marker.
type spy struct {
	mu   sync.Mutex
	seen map[string][][]byte // channel → messages
	got  chan struct{}
}

func startSpy(t *testing.T, env *Env, ns string, nodes []*Node) *spy {
	s := &spy{seen: map[string][][]byte{}, got: make(chan struct{}, 1)}
	b := env.connect(t, ns)
	channels := []string{"all"}
	for _, n := range nodes {
		channels = append(channels, "node."+n.C.ID())
	}
	for _, ch := range channels {
		sub, err := b.Subscribe(bg(t), ch, func(data []byte) {
			s.mu.Lock()
			s.seen[ch] = append(s.seen[ch], data)
			s.mu.Unlock()
			select {
			case s.got <- struct{}{}:
			default:
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Close() })
	}
	return s
}

// count returns how many messages of the channel contain marker.
func (s *spy) count(channel, marker string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.seen[channel] {
		if bytes.Contains(m, []byte(marker)) {
			n++
		}
	}
	return n
}

// wait waits until the channel has had a message containing marker.
func (s *spy) wait(t *testing.T, channel, marker string) {
	t.Helper()
	timeout := time.After(Timeout)
	for s.count(channel, marker) == 0 {
		select {
		case <-s.got:
		case <-timeout:
			t.Fatalf("the spy saw no %q on %s", marker, channel)
		}
	}
}

// testTargetedWrites: a room with members on one node of three gets its
// writes on that node's channel alone; the broker carries none to the
// others (a subscriber of its own on every channel counts them), and they
// deliver none. With members on every node, a write goes once on the
// channel of every node.
func testTargetedWrites(t *testing.T, env *Env) {
	ns := Namespace()
	var nodes []*Node
	for range 3 {
		nodes = append(nodes, StartNode(t, env, ns, NodeOptions{Expiry: 3 * time.Second}))
	}
	sp := startSpy(t, env, ns, nodes)
	// What each node's room handler gets from the others.
	var mu sync.Mutex
	delivered := make([]int, 3)
	for i, n := range nodes {
		n.C.Handle("primus.rooms", func([]byte) {
			mu.Lock()
			delivered[i]++
			mu.Unlock()
		})
	}
	a, b := Dial(t, nodes[1]), Dial(t, nodes[1])
	for _, c := range []*Client{a, b} {
		if err := nodes[1].Rooms.Join(c.Spark, "solo"); err != nil {
			t.Fatal(err)
		}
	}
	id := func(i int) string { return nodes[i].C.ID() }
	// Each node knows of the others (it has heard from them) and that only
	// node 1 has members.
	Eventually(t, Timeout, "routes settled", func() bool {
		return slices.Equal(nodes[0].Rooms.Presence().NodesOf("solo"), []string{id(1)}) &&
			slices.Equal(nodes[2].Rooms.Presence().NodesOf("solo"), []string{id(1)}) &&
			len(nodes[1].Rooms.Presence().NodesOf("solo")) == 0
	})

	// probe publishes, from node w, a marker on the channel of every node
	// and on each node's channel, and waits for the spy to see them: the
	// broker has then carried everything w published before.
	probe := func(w int, marker string) {
		t.Helper()
		if err := nodes[w].C.Publish("probe", []byte(marker)); err != nil {
			t.Fatal(err)
		}
		for i := range nodes {
			if i != w {
				if err := nodes[w].C.PublishTo(id(i), "probe", []byte(marker)); err != nil {
					t.Fatal(err)
				}
			}
		}
		sp.wait(t, "all", marker)
		for i := range nodes {
			if i != w {
				sp.wait(t, "node."+id(i), marker)
			}
		}
	}
	check := func(marker string, want map[string]int) {
		t.Helper()
		for _, ch := range []string{"all", "node." + id(0), "node." + id(1), "node." + id(2)} {
			if got := sp.count(ch, marker); got != want[ch] {
				t.Errorf("%s: the broker carried %d message(s) with %q, want %d", ch, got, marker, want[ch])
			}
		}
	}

	// From node 0: one message, on node 1's channel.
	if err := nodes[0].Rooms.Room("solo").Write("w1 from 0"); err != nil {
		t.Fatal(err)
	}
	a.Expect(t, "w1 from 0")
	b.Expect(t, "w1 from 0")
	probe(0, "probe 1")
	check("w1 from 0", map[string]int{"node." + id(1): 1})
	// From node 1, where the members are: nothing at all.
	if err := nodes[1].Rooms.Room("solo").Write("w2 from 1"); err != nil {
		t.Fatal(err)
	}
	a.Expect(t, "w2 from 1")
	b.Expect(t, "w2 from 1")
	probe(1, "probe 2")
	check("w2 from 1", nil)
	// From node 2: one message, on node 1's channel.
	if err := nodes[2].Rooms.Room("solo").Write("w3 from 2"); err != nil {
		t.Fatal(err)
	}
	a.Expect(t, "w3 from 2")
	b.Expect(t, "w3 from 2")
	probe(2, "probe 3")
	check("w3 from 2", map[string]int{"node." + id(1): 1})
	// Node 1's handlers run one after the other: its clients may have the
	// message before the counting handler has run.
	Eventually(t, Timeout, "node 1's two room messages counted", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return delivered[1] >= 2
	})
	mu.Lock()
	if delivered[0] != 0 || delivered[2] != 0 || delivered[1] != 2 {
		t.Errorf("room messages delivered by nodes 0, 1, 2: %v, want [0 2 0]", delivered)
	}
	mu.Unlock()

	// Members on every node: a write from node 0 goes once, to every node.
	c0, c2 := Dial(t, nodes[0]), Dial(t, nodes[2])
	for i, c := range map[int]*Client{0: c0, 2: c2} {
		if err := nodes[i].Rooms.Join(c.Spark, "solo"); err != nil {
			t.Fatal(err)
		}
	}
	Eventually(t, Timeout, "node 0 knows node 2's member", func() bool {
		return slices.Equal(nodes[0].Rooms.Presence().NodesOf("solo"), sorted([]string{id(1), id(2)}))
	})
	if err := nodes[0].Rooms.Room("solo").Write("w4 from 0"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Client{a, b, c0, c2} {
		c.Expect(t, "w4 from 0")
	}
	probe(0, "probe 4")
	check("w4 from 0", map[string]int{"all": 1})
}
