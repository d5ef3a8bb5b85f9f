package cluster

import (
	"context"
	"fmt"
	"time"
)

// peer is what this node knows of another node's memberships.
type peer struct {
	epoch string // its Presence's; "" until known
	seq   uint64 // its changes up to seq are in rooms
	rooms map[string]map[string]struct{}
	heard bool // a presence message came from it
	// stale: changes were missed; rooms is being read again from the
	// directory, from a version of at least need, and the batches that
	// came since (from need+1 on, in order) wait in buf.
	stale  bool
	need   uint64
	buf    []presenceMsg
	bufOps int

	lastHeard time.Time // or when it was added
}

// maxBufferedOps bounds the changes kept for a peer being read again; past
// it they are dropped, and a later version is read instead.
const maxBufferedOps = 1 << 16

func newPeer(epoch string) *peer {
	return &peer{epoch: epoch, rooms: map[string]map[string]struct{}{}, lastHeard: time.Now()}
}

// receive handles a presence message from another node (the broker's
// delivery goroutine).
func (p *Presence) receive(data []byte) {
	m, ok := parsePresence(data)
	if !ok || m.node == p.c.id || p.c.closed.Load() {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pr := p.peers[m.node]
	if m.kind == msgBye {
		if pr != nil && (pr.epoch == m.epoch || pr.epoch == "") {
			p.dropPeer(m.node, pr)
		}
		return
	}
	switch {
	case pr == nil:
		pr = newPeer(m.epoch)
		p.peers[m.node] = pr
		signal(p.digestSoon) // let it know of this node at once
	case pr.epoch == "":
		// Known from the registry only: whatever was read of it must be
		// checked against its messages.
		pr.epoch = m.epoch
		p.markStale(pr, 0)
	case pr.epoch != m.epoch:
		// The node restarted with the same id: its former memberships are
		// gone.
		p.dropPeer(m.node, pr)
		pr = newPeer(m.epoch)
		p.peers[m.node] = pr
	}
	pr.heard = true
	pr.lastHeard = time.Now()
	switch m.kind {
	case msgBatch:
		p.offer(m.node, pr, m)
	case msgDigest:
		p.digest(pr, m.seq)
	}
}

// offer applies a batch of a peer's changes, or keeps it while the peer is
// read again; p.mu is held.
func (p *Presence) offer(node string, pr *peer, m presenceMsg) {
	last := m.seq + uint64(len(m.ops)) - 1
	if !pr.stale {
		switch {
		case last <= pr.seq:
			// a copy
		case m.seq == pr.seq+1:
			p.apply(node, pr, m.ops)
			pr.seq = last
		default:
			p.markStale(pr, m.seq-1)
			pr.buf, pr.bufOps = []presenceMsg{m}, len(m.ops)
		}
		return
	}
	end := pr.need
	if n := len(pr.buf); n > 0 {
		end = pr.buf[n-1].seq + uint64(len(pr.buf[n-1].ops)) - 1
	}
	switch {
	case last <= end:
		// a copy, or covered by the version to read
	case m.seq > end+1:
		// more were missed: the version to read must cover them
		pr.need, pr.buf, pr.bufOps = m.seq-1, []presenceMsg{m}, len(m.ops)
	case pr.bufOps+len(m.ops) > maxBufferedOps:
		pr.need, pr.buf, pr.bufOps = last, nil, 0
	default:
		pr.buf = append(pr.buf, m)
		pr.bufOps += len(m.ops)
	}
}

// digest handles a peer's statement that it sent its changes up to seq;
// p.mu is held.
func (p *Presence) digest(pr *peer, seq uint64) {
	if !pr.stale {
		if seq > pr.seq {
			p.markStale(pr, seq) // some were missed
		}
		return
	}
	end := pr.need
	if n := len(pr.buf); n > 0 {
		end = pr.buf[n-1].seq + uint64(len(pr.buf[n-1].ops)) - 1
	}
	if seq > end {
		pr.need, pr.buf, pr.bufOps = seq, nil, 0
	}
}

func (p *Presence) markStale(pr *peer, need uint64) {
	pr.stale, pr.need, pr.buf, pr.bufOps = true, need, nil, 0
	signal(p.resync)
}

// apply applies a peer's changes and delivers the events; p.mu is held.
func (p *Presence) apply(node string, pr *peer, ops []change) {
	for _, o := range ops {
		members := pr.rooms[o.room]
		_, in := members[o.spark]
		switch {
		case o.op == opJoin && !in:
			if members == nil {
				members = map[string]struct{}{}
				pr.rooms[o.room] = members
			}
			members[o.spark] = struct{}{}
			p.h.MemberEvent(MemberEvent{Room: o.room, Spark: o.spark, Node: node, Join: true})
		case o.op == opLeave && in:
			delete(members, o.spark)
			if len(members) == 0 {
				delete(pr.rooms, o.room)
			}
			p.h.MemberEvent(MemberEvent{Room: o.room, Spark: o.spark, Node: node})
		}
	}
}

// dropPeer forgets a peer that left, and delivers the leaves of its
// members; p.mu is held.
func (p *Presence) dropPeer(node string, pr *peer) {
	delete(p.peers, node)
	for room, members := range pr.rooms {
		for id := range members {
			p.h.MemberEvent(MemberEvent{Room: room, Spark: id, Node: node, NodeGone: true})
		}
	}
}

// replace makes rooms, read from the directory at version seq, the peer's
// memberships, delivering the difference as events, then applies the
// batches that came since; p.mu is held.
func (p *Presence) replace(node string, pr *peer, rooms map[string][]string, seq uint64) {
	var ops []change
	for room, members := range pr.rooms {
		for id := range members {
			if !contains(rooms[room], id) {
				ops = append(ops, change{op: opLeave, room: room, spark: id})
			}
		}
	}
	for room, ids := range rooms {
		for _, id := range ids {
			ops = append(ops, change{op: opJoin, room: room, spark: id})
		}
	}
	p.apply(node, pr, ops)
	pr.seq, pr.stale = seq, false
	buf := pr.buf
	pr.buf, pr.bufOps = nil, 0
	for _, m := range buf {
		last := m.seq + uint64(len(m.ops)) - 1
		if last <= pr.seq {
			continue
		}
		if m.seq > pr.seq+1 { // cannot happen: buf runs on from need ≤ seq
			p.markStale(pr, m.seq-1)
			return
		}
		p.apply(node, pr, m.ops[pr.seq+1-m.seq:])
		pr.seq = last
	}
}

func contains(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// peersLoop reads again the peers whose changes were missed, and every
// Expiry/3 lists the live nodes: a node it did not know is read from the
// directory, and one that has left the registry (and has not been heard
// from for Expiry) is dropped, with the leaves of its members.
func (p *Presence) peersLoop() {
	defer p.c.wg.Done()
	c := p.c
	interval := c.expiry / 3
	check := time.NewTimer(0)
	defer check.Stop()
	again := time.NewTimer(time.Hour)
	again.Stop()
	defer again.Stop()
	retry := firstRetry
	resync := func() {
		if p.resyncStale() {
			retry = firstRetry
			return
		}
		again.Reset(retry)
		retry = min(2*retry, interval)
	}
	for {
		select {
		case <-check.C:
			p.checkNodes()
			check.Reset(interval)
			resync()
		case <-p.resync:
			resync()
		case <-again.C:
			resync()
		case <-c.stop:
			return
		}
	}
}

// checkNodes compares the peers with the registry's live nodes.
func (p *Presence) checkNodes() {
	c := p.c
	ctx, cancel := context.WithTimeout(c.loopCtx, c.timeout)
	nodes, err := c.reg.Nodes(ctx)
	cancel()
	if err != nil {
		c.rep.fail("directory", fmt.Errorf("cluster: failed to list the nodes for presence: %w", err), 0)
		return
	}
	live := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		live[n.ID] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ready = true
	for id := range live {
		if id != c.id && p.peers[id] == nil {
			pr := newPeer("")
			p.peers[id] = pr
			p.markStale(pr, 0)
		}
	}
	for id, pr := range p.peers {
		// A node that has not registered yet may already send events: it
		// is dropped only once it has been silent for Expiry as well.
		if !live[id] && time.Since(pr.lastHeard) > c.expiry {
			p.dropPeer(id, pr)
		}
	}
}

// resyncStale reads the stale peers from the directory and reports
// whether all of them are whole again.
func (p *Presence) resyncStale() bool {
	c := p.c
	p.mu.Lock()
	var stale []string
	for id, pr := range p.peers {
		if pr.stale {
			stale = append(stale, id)
		}
	}
	p.mu.Unlock()
	whole := true
	for _, id := range stale {
		ctx, cancel := context.WithTimeout(c.loopCtx, c.timeout)
		rooms, version, err := p.dir.NodeRooms(ctx, id)
		cancel()
		if err != nil {
			c.rep.fail("directory", fmt.Errorf("cluster: failed to read the memberships of node %s: %w", id, err), 0)
			whole = false
			continue
		}
		epoch, seq, ok := parseVersion(version)
		if version == "" {
			ok = true // nothing recorded (yet)
		}
		p.mu.Lock()
		pr := p.peers[id]
		switch {
		case pr == nil || !pr.stale:
		case !ok, pr.epoch != "" && epoch != pr.epoch, seq < pr.need:
			whole = false // the directory is behind the node's messages: later
		default:
			if pr.epoch == "" {
				pr.epoch = epoch
			}
			p.replace(id, pr, rooms, seq)
			whole = whole && !pr.stale
		}
		p.mu.Unlock()
	}
	return whole
}
