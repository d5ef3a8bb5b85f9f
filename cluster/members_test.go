package cluster

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeDir answers NodeRooms from what the test puts in it.
type fakeDir struct {
	Directory // the rest is not used here
	mu        sync.Mutex
	rooms     map[string]map[string][]string
	versions  map[string]string
}

func (d *fakeDir) set(node, version string, rooms map[string][]string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rooms[node], d.versions[node] = rooms, version
}

func (d *fakeDir) NodeRooms(_ context.Context, node string) (map[string][]string, string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.rooms[node]), d.versions[node], nil
}

// recorder is a PresenceHandler that records the events.
type recorder struct{ got []string }

func (r *recorder) MemberEvent(ev MemberEvent) {
	s := fmt.Sprintf("-%s %s@%s", ev.Room, ev.Spark, ev.Node)
	if ev.Join {
		s = "+" + s[1:]
	}
	if ev.NodeGone {
		s += " gone"
	}
	r.got = append(r.got, s)
}
func (r *recorder) JoinByID(string, string) error  { return nil }
func (r *recorder) LeaveByID(string, string) error { return nil }

func (r *recorder) take(t *testing.T, want ...string) {
	t.Helper()
	got := r.got
	r.got = nil
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
}

// newTestPresence is a Presence on no broker: the test feeds it the other
// nodes' messages.
func newTestPresence() (*Presence, *fakeDir, *recorder) {
	c := &Cluster{id: "me", timeout: time.Second, expiry: 3 * time.Second, loopCtx: context.Background(), rep: newReporter(discard(), nil)}
	d := &fakeDir{rooms: map[string]map[string][]string{}, versions: map[string]string{}}
	r := &recorder{}
	p := &Presence{
		c: c, dir: d, h: r, epoch: "mine",
		wake: make(chan struct{}, 1), digestSoon: make(chan struct{}, 1), resync: make(chan struct{}, 1),
		local: map[string]map[string]struct{}{}, progress: make(chan struct{}), peers: map[string]*peer{},
		ready: true,
	}
	return p, d, r
}

func join(room, spark string) change  { return change{op: opJoin, room: room, spark: spark} }
func leave(room, spark string) change { return change{op: opLeave, room: room, spark: spark} }

func TestPresencePeers(t *testing.T) {
	p, dir, ev := newTestPresence()
	batch := func(node, epoch string, first uint64, ops ...change) {
		p.receive(appendBatch(node, epoch, first, ops))
	}
	route := func(room string, want ...string) {
		t.Helper()
		if got := p.NodesOf(room); !slices.Equal(got, want) {
			t.Errorf("NodesOf(%s) = %q, want %q", room, got, want)
		}
	}
	stale := func(node string, want bool) {
		t.Helper()
		p.mu.Lock()
		defer p.mu.Unlock()
		if pr := p.peers[node]; pr == nil || pr.stale != want {
			t.Errorf("peer %s stale: %v, want %v", node, pr != nil && pr.stale, want)
		}
	}

	// In order: applied, events delivered; a copy changes nothing.
	batch("a", "A1", 1, join("r", "x"), join("r", "y"))
	batch("a", "A1", 3, leave("r", "y"), join("s", "y"))
	batch("a", "A1", 3, leave("r", "y"), join("s", "y"))
	ev.take(t, "+r x@a", "+r y@a", "-r y@a", "+s y@a")
	route("r", "a")
	route("nobody")
	if <-p.digestSoon; true {
		// a new peer asks for a digest at once
	}

	// A lost batch (5): stale, every write goes there meanwhile; batch 6
	// waits. The directory is behind (version 4): not applied yet.
	batch("a", "A1", 6, join("u", "z"))
	stale("a", true)
	route("nobody", "a")
	ev.take(t)
	dir.set("a", "A1:4", map[string][]string{"r": {"x"}, "s": {"y"}})
	if p.resyncStale() {
		t.Error("a version older than the gap was applied")
	}
	// Now at 5: the missed join, then the waiting batch.
	dir.set("a", "A1:5", map[string][]string{"r": {"x"}, "s": {"y"}, "t": {"w"}})
	if !p.resyncStale() {
		t.Error("resync failed")
	}
	stale("a", false)
	ev.take(t, "+t w@a", "+u z@a")
	route("nobody")
	route("u", "a")

	// A version past the waiting batches: they are not applied twice.
	batch("a", "A1", 8, leave("u", "z"))
	dir.set("a", "A1:9", map[string][]string{"r": {"x"}, "s": {"y"}, "t": {"w"}, "v": {"q"}})
	if !p.resyncStale() {
		t.Error("resync failed")
	}
	ev.take(t, "-u z@a", "+v q@a")
	batch("a", "A1", 10, join("v", "q2"))
	ev.take(t, "+v q2@a")
	stale("a", false)

	// A digest tells of changes that never came.
	p.receive(appendDigest("a", "A1", 12))
	stale("a", true)
	dir.set("a", "A1:12", map[string][]string{"r": {"x"}})
	if !p.resyncStale() {
		t.Error("resync failed")
	}
	ev.take(t, "-s y@a", "-t w@a", "-v q@a", "-v q2@a")

	// The node restarts with the same id: its former memberships leave.
	batch("a", "A2", 1, join("n", "x2"))
	ev.take(t, "-r x@a gone", "+n x2@a")

	// A node known from the registry only: every write goes there until
	// it is heard from and read.
	p.mu.Lock()
	p.peers["b"] = newPeer("")
	p.markStale(p.peers["b"], 0)
	p.mu.Unlock()
	route("nobody", "b")
	dir.set("b", "B1:3", map[string][]string{"r": {"k"}})
	if !p.resyncStale() {
		t.Error("resync failed")
	}
	ev.take(t, "+r k@b")
	route("nobody", "b") // not heard from yet
	p.receive(appendDigest("b", "B1", 3))
	stale("b", false)
	route("nobody")
	route("r", "b")
	route("n", "a")

	// Every other node has members: one message for all.
	batch("b", "B1", 4, join("n", "k"))
	if nodes, all := p.route("n"); !all || nodes == nil {
		t.Errorf("route(n) = %q, %v; want every node", nodes, all)
	}

	// Leaving: the members leave with the node.
	p.receive(appendBye("b", "B1"))
	ev.take(t, "+n k@b", "-r k@b gone", "-n k@b gone")
	route("r")

	// Batches beyond the buffer's bound: the version to read moves past
	// them.
	batch("a", "A2", 3, join("big", "0"))
	stale("a", true)
	for i := range maxBufferedOps/1000 + 1 {
		ops := make([]change, 1000)
		for j := range ops {
			ops[j] = join("big", fmt.Sprint(4+i*1000+j))
		}
		batch("a", "A2", uint64(4+i*1000), ops...)
	}
	p.mu.Lock()
	need := p.peers["a"].need
	p.mu.Unlock()
	if want := uint64(3 + (maxBufferedOps/1000+1)*1000); need != want {
		t.Errorf("need %d after the buffer overflowed, want %d", need, want)
	}
	dir.set("a", "A2:10", nil)
	if p.resyncStale() {
		t.Error("a version older than the dropped batches was applied")
	}
}

func TestPresenceWire(t *testing.T) {
	ops := []change{join("r", "x"), leave("", "y.z")}
	for _, b := range [][]byte{
		appendBatch("n", "e", 7, ops),
		appendDigest("n", "e", 9),
		appendBye("n", "e"),
	} {
		m, ok := parsePresence(b)
		if !ok || m.node != "n" || m.epoch != "e" {
			t.Errorf("parsePresence(%q) = %+v, %v", b, m, ok)
		}
		for i := range b {
			if _, ok := parsePresence(b[:i]); ok {
				t.Errorf("parsePresence accepted %q, a prefix of %q", b[:i], b)
			}
		}
	}
	m, _ := parsePresence(appendBatch("n", "e", 7, ops))
	if m.seq != 7 || !slices.Equal(m.ops, ops) {
		t.Errorf("batch round trip: %+v", m)
	}
	if _, ok := parsePresence(appendBatch("n", "e", 0, ops)); ok {
		t.Error("a batch numbered 0 was accepted")
	}
}

// FuzzParsePresence feeds the decoder of presence messages from other
// nodes.
func FuzzParsePresence(f *testing.F) {
	f.Add(appendBatch("n", "e", 1, []change{join("r", "x")}))
	f.Add(appendDigest("n", "e", 3))
	f.Add(appendBye("n", "e"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, ok := parsePresence(b)
		if !ok || m.kind != msgBatch {
			return
		}
		m2, ok := parsePresence(appendBatch(m.node, m.epoch, m.seq, m.ops))
		if !ok || m2.seq != m.seq || !slices.Equal(m2.ops, m.ops) {
			t.Fatalf("re-encoding %x does not round-trip", b)
		}
	})
}
