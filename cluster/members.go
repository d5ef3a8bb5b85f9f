package cluster

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrNoDirectory is returned by Cluster.Presence when the cluster's
// Registry is not also a Directory, and by Presence's queries then.
var ErrNoDirectory = errors.New("cluster: the registry keeps no room directory")

// MemberEvent is a change of a room's membership on another node: a spark
// joined (Join) or left a room. NodeGone marks the leaves of a node that
// left the cluster with its sparks still in their rooms: it closed, or it
// stopped refreshing its records and they expired.
type MemberEvent struct {
	Room     string
	Spark    string
	Node     string
	Join     bool
	NodeGone bool
}

// PresenceHandler is what a node's room membership (package rooms) gives
// the cluster: a sink for the other nodes' membership changes, and the
// local side of another node's JoinRemote and LeaveRemote.
type PresenceHandler interface {
	// MemberEvent is called with each change of another node's
	// memberships, in order for each node, from the cluster's goroutines
	// and with its presence lock held: it must only queue the event.
	MemberEvent(ev MemberEvent)
	// JoinByID and LeaveByID apply another node's request to a spark of
	// this node; they return ErrNotFound when this node has no spark with
	// the id.
	JoinByID(spark, room string) error
	LeaveByID(spark, room string) error
}

// Presence is the cluster-wide side of room membership; package rooms
// makes one with Cluster.Presence and reports its members' joins and
// leaves to it. It
//
//   - records this node's memberships in the Directory, with the
//     registry's expiry discipline, so that the queries (MembersAll,
//     CountAll, RoomsOfAll, RoomsAll) answer for the whole cluster;
//   - sends each change to the other nodes as an event, and delivers
//     theirs to the PresenceHandler: a node learns of joins and leaves on
//     every node, and of the leaves of a node that died once its records
//     expire;
//   - keeps, from those events, which nodes have members of which room, so
//     that Publish sends a room's messages only to the nodes with members.
//
// Events travel like the cluster's other messages, at most once; each
// node numbers its changes, so that a node that missed some (a broker
// outage) notices the gap, at the next change or within Expiry/3 at most,
// reads that node's memberships whole from the Directory, and delivers the
// difference as events. Until then it sends that node every room write.
//
// All methods are safe for concurrent use.
type Presence struct {
	c     *Cluster
	dir   Directory
	h     PresenceHandler
	epoch string

	wake       chan struct{} // local changes to send
	digestSoon chan struct{} // a new peer: tell it where we are
	resync     chan struct{} // a peer to read from the directory

	mu           sync.Mutex
	local        map[string]map[string]struct{} // room → this node's members
	seq          uint64                         // number of the last local change
	pending      []change                       // changes not sent yet, numbered pendingFrom…
	pendingFrom  uint64
	pendingBytes int
	overflow     bool   // changes were dropped: sync whole
	written      uint64 // the directory has every change up to it
	progress     chan struct{}
	peers        map[string]*peer
	ready        bool // the first list of nodes is in
}

// maxPendingBytes bounds the local changes waiting to be sent; past it
// they are dropped and the directory is synced whole instead (the other
// nodes then notice the gap and read it).
const maxPendingBytes = 256 << 10

// Presence attaches h, the node's room membership, to the cluster, which
// from then on keeps it cluster-wide. It can be called once; it returns
// ErrNoDirectory when the cluster's Registry is not a Directory, and
// ErrClosed after Close.
func (c *Cluster) Presence(h PresenceHandler) (*Presence, error) {
	dir, ok := c.reg.(Directory)
	if !ok {
		return nil, ErrNoDirectory
	}
	if h == nil {
		return nil, errors.New("cluster: nil PresenceHandler")
	}
	p := &Presence{
		c:          c,
		dir:        dir,
		h:          h,
		epoch:      rand.Text()[:10],
		wake:       make(chan struct{}, 1),
		digestSoon: make(chan struct{}, 1),
		resync:     make(chan struct{}, 1),
		local:      map[string]map[string]struct{}{},
		progress:   make(chan struct{}),
		peers:      map[string]*peer{},
	}
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	if c.closed.Load() {
		return nil, ErrClosed
	}
	if !c.presence.CompareAndSwap(nil, p) {
		return nil, errors.New("cluster: Presence already attached")
	}
	c.Handle(presenceTopic, p.receive)
	c.wg.Add(2)
	go p.loop()
	go p.peersLoop()
	return p, nil
}

// Joined records that a spark of this node joined the room. Calls for one
// spark and room must be made in the order of the changes (package rooms
// makes them under its lock); a join of a member is ignored. It never
// waits for the broker.
func (p *Presence) Joined(spark, room string) {
	if p.c.jn != nil {
		p.c.jn.member(spark, room, true)
	}
	p.change(opJoin, room, spark)
}

// Left records that a spark of this node left the room.
func (p *Presence) Left(spark, room string) {
	if p.c.jn != nil {
		p.c.jn.member(spark, room, false)
	}
	p.change(opLeave, room, spark)
}

func (p *Presence) change(op byte, room, spark string) {
	if p.c.closed.Load() {
		return
	}
	p.mu.Lock()
	members := p.local[room]
	_, in := members[spark]
	switch {
	case op == opJoin && in, op == opLeave && !in:
		p.mu.Unlock()
		return
	case op == opJoin:
		if members == nil {
			members = map[string]struct{}{}
			p.local[room] = members
		}
		members[spark] = struct{}{}
	default:
		delete(members, spark)
		if len(members) == 0 {
			delete(p.local, room)
		}
	}
	p.seq++
	if !p.overflow {
		if len(p.pending) == 0 {
			p.pendingFrom = p.seq
		}
		p.pending = append(p.pending, change{op: op, room: room, spark: spark})
		p.pendingBytes += 8 + len(room) + len(spark)
		if p.pendingBytes > maxPendingBytes {
			p.pending, p.pendingBytes, p.overflow = nil, 0, true
		}
	}
	p.mu.Unlock()
	signal(p.wake)
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// take returns the changes not sent yet; p.mu is held.
func (p *Presence) take() (ops []change, first uint64, overflow bool) {
	ops, first, overflow = p.pending, p.pendingFrom, p.overflow
	p.pending, p.pendingBytes, p.overflow = nil, 0, false
	return ops, first, overflow
}

// version is the directory's tag of this node's state at seq.
func (p *Presence) version(seq uint64) string {
	return p.epoch + ":" + strconv.FormatUint(seq, 10)
}

func parseVersion(v string) (epoch string, seq uint64, ok bool) {
	i := strings.LastIndexByte(v, ':')
	if i <= 0 {
		return "", 0, false
	}
	seq, err := strconv.ParseUint(v[i+1:], 10, 64)
	return v[:i], seq, err == nil
}

// setWritten records that the directory has every change up to seq.
func (p *Presence) setWritten(seq uint64) {
	p.mu.Lock()
	if seq > p.written {
		p.written = seq
		close(p.progress)
		p.progress = make(chan struct{})
	}
	p.mu.Unlock()
}

// loop sends this node's changes: each batch as an event to every node and
// an update of the directory; the whole state to the directory at start
// and every Expiry/3 (sooner after a failure), followed by a digest.
func (p *Presence) loop() {
	defer p.c.wg.Done()
	c := p.c
	interval := c.expiry / 3
	timer := time.NewTimer(0)
	defer timer.Stop()
	retry := firstRetry
	var sent uint64 // every change up to it was sent (or dropped)
	fail := func(what string, err error) {
		c.rep.fail("directory", fmt.Errorf("cluster: failed to %s: %w", what, err), 0)
		timer.Reset(retry)
		retry = min(2*retry, interval)
	}
	publish := func(ops []change, first uint64) {
		_ = c.Publish(presenceTopic, appendBatch(c.id, p.epoch, first, ops))
		sent = first + uint64(len(ops)) - 1
	}
	sync := func() {
		p.mu.Lock()
		ops, first, _ := p.take()
		seq := p.seq
		rooms := make(map[string][]string, len(p.local))
		for room, members := range p.local {
			ids := make([]string, 0, len(members))
			for id := range members {
				ids = append(ids, id)
			}
			rooms[room] = ids
		}
		p.mu.Unlock()
		if len(ops) > 0 {
			publish(ops, first)
		}
		sent = seq
		ctx, cancel := context.WithTimeout(c.loopCtx, c.timeout)
		err := p.dir.SyncRooms(ctx, c.id, rooms, p.version(seq), c.expiry)
		cancel()
		if err != nil {
			fail(fmt.Sprintf("record the node's memberships in %d rooms", len(rooms)), err)
		} else {
			c.rep.ok("directory")
			p.setWritten(seq)
			retry = firstRetry
			timer.Reset(interval)
		}
		_ = c.Publish(presenceTopic, appendDigest(c.id, p.epoch, sent))
	}
	for {
		select {
		case <-p.wake:
			p.mu.Lock()
			ops, first, overflow := p.take()
			p.mu.Unlock()
			if overflow {
				sync()
				continue
			}
			if len(ops) == 0 {
				continue
			}
			publish(ops, first)
			changes := make([]RoomChange, len(ops))
			for i, o := range ops {
				changes[i] = RoomChange{Room: o.room, Spark: o.spark, Join: o.op == opJoin}
			}
			ctx, cancel := context.WithTimeout(c.loopCtx, c.timeout)
			err := p.dir.UpdateRooms(ctx, c.id, changes, p.version(sent), c.expiry)
			cancel()
			if err != nil {
				fail("update the room directory", err) // the next sync repairs it
				continue
			}
			c.rep.ok("directory")
			p.setWritten(sent)
		case <-timer.C:
			sync()
		case <-p.digestSoon:
			_ = c.Publish(presenceTopic, appendDigest(c.id, p.epoch, sent))
		case <-c.stop:
			return
		}
	}
}

// closing tells the other nodes that this node leaves: they drop its
// memberships at once. Close calls it before the outbox is drained.
func (p *Presence) closing() {
	_ = p.c.enqueue(channelAll, newEnvelope(kindTopic, p.c.origin, presenceTopic, appendBye(p.c.id, p.epoch)))
}

// flush waits until the directory has this node's changes made so far.
func (p *Presence) flush(ctx context.Context) error {
	p.mu.Lock()
	target := p.seq
	p.mu.Unlock()
	for {
		p.mu.Lock()
		done, progress := p.written >= target, p.progress
		p.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-progress:
		case <-p.c.stopped:
			return ErrClosed
		case <-ctx.Done():
			return fmt.Errorf("cluster: this node's memberships are not in the directory yet: %w", ctx.Err())
		}
	}
}

// query bounds ctx by Options.Timeout and waits, within it, until the
// directory has this node's changes made so far, so that a query sees
// them.
func (p *Presence) query(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if p.c.closed.Load() {
		return nil, nil, ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, p.c.timeout)
	if err := p.flush(ctx); err != nil {
		cancel()
		return nil, nil, err
	}
	return ctx, cancel, nil
}

// MembersAll returns the ids of the room's members on every node, sorted.
// It asks the Directory, within ctx and Options.Timeout, after this node's
// own changes have reached it; other nodes' changes reach it within
// milliseconds, and the members of a node that died leave it within
// Options.Expiry.
func (p *Presence) MembersAll(ctx context.Context, room string) ([]string, error) {
	ctx, cancel, err := p.query(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	ids, err := p.dir.Members(ctx, room)
	if err != nil {
		return nil, fmt.Errorf("cluster: failed to list the members of room %q: %w", room, err)
	}
	return sortedUnique(ids), nil
}

// CountAll returns the number of the room's members on every node, as
// MembersAll does.
func (p *Presence) CountAll(ctx context.Context, room string) (int, error) {
	ctx, cancel, err := p.query(ctx)
	if err != nil {
		return 0, err
	}
	defer cancel()
	n, err := p.dir.Count(ctx, room)
	if err != nil {
		return 0, fmt.Errorf("cluster: failed to count the members of room %q: %w", room, err)
	}
	return n, nil
}

// RoomsOfAll returns the rooms the spark is in, sorted, wherever it is.
func (p *Presence) RoomsOfAll(ctx context.Context, spark string) ([]string, error) {
	ctx, cancel, err := p.query(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	rooms, err := p.dir.RoomsOf(ctx, spark)
	if err != nil {
		return nil, fmt.Errorf("cluster: failed to list the rooms of spark %s: %w", spark, err)
	}
	return sortedUnique(rooms), nil
}

// RoomsAll returns the rooms that have members on any node, sorted.
func (p *Presence) RoomsAll(ctx context.Context) ([]string, error) {
	ctx, cancel, err := p.query(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	rooms, err := p.dir.Rooms(ctx)
	if err != nil {
		return nil, fmt.Errorf("cluster: failed to list the rooms: %w", err)
	}
	return sortedUnique(rooms), nil
}

func sortedUnique(s []string) []string {
	if s == nil {
		return []string{}
	}
	slices.Sort(s)
	return slices.Compact(s)
}

// Publish sends data to the handlers of topic (see Cluster.Handle) on the
// other nodes that have members of room: one message on each of their
// channels, or one for every node when every other node has members. A
// node that has none gets nothing. A node this node knows too little about
// — it has not heard from it yet, or missed some of its events and is
// reading its memberships again — gets the message too. It never waits for
// the broker, and returns ErrClosed or ErrQueueFull.
func (p *Presence) Publish(room, topic string, data []byte) error {
	if p.c.closed.Load() {
		return ErrClosed
	}
	nodes, all := p.route(room)
	if all {
		return p.c.Publish(topic, data)
	}
	var errs []error
	for _, n := range nodes {
		if err := p.c.PublishTo(n, topic, data); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// NodesOf returns the other nodes that a write to the room goes to (see
// Publish), sorted: those with members, as this node knows them, and
// those it knows too little about.
func (p *Presence) NodesOf(room string) []string {
	nodes, all := p.route(room)
	if all {
		p.mu.Lock()
		nodes = nodes[:0]
		for id := range p.peers {
			nodes = append(nodes, id)
		}
		p.mu.Unlock()
	}
	slices.Sort(nodes)
	return nodes
}

// route returns the nodes a write to the room goes to, or all when it goes
// on the channel of every node.
func (p *Presence) route(room string) (nodes []string, all bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.ready {
		return nil, true // which nodes there are is not known yet
	}
	for id, pr := range p.peers {
		if !pr.heard || pr.stale || len(pr.rooms[room]) > 0 {
			nodes = append(nodes, id)
		}
	}
	return nodes, len(nodes) > 1 && len(nodes) == len(p.peers)
}

// JoinRemote makes the spark join the room, on whichever node holds it
// (found in the registry): at once for a spark of this node, otherwise by
// a request to its node, answered within ctx and Options.Timeout. It
// returns ErrNotFound when no node holds the spark.
func (p *Presence) JoinRemote(ctx context.Context, spark, room string) error {
	return p.c.remote(ctx, opJoin, spark, room)
}

// LeaveRemote takes the spark out of the room, as JoinRemote does.
func (p *Presence) LeaveRemote(ctx context.Context, spark, room string) error {
	return p.c.remote(ctx, opLeave, spark, room)
}
