package cluster

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/go-primus/primus"
)

// Recovery on any node (Options.Recovery): the node is the server's
// primus.Journal.
//
// Every data message for a spark of the cluster — a spark's own write, a
// server's broadcast, a cluster broadcast, a write to a spark id, a room
// write — is one entry of the journal (one per message, however many sparks
// receive it), and so are the room joins and leaves of the sparks. Each
// node follows the journal and delivers each entry to its own sparks, in
// the journal's order; room entries go to the members as of that point of
// the journal (a join takes effect where its entry is). What a spark
// receives is therefore a function of the journal, from any point on, given
// where it was then: its rooms and its holder. That is the checkpoint a
// node keeps in the SessionStore for each resumable spark, under its resume
// credentials: the count of messages the client confirmed, the journal
// offset of the last of them, the rooms there, the holders from there on,
// and how many messages the spark received from the client.
//
// A client that comes back to another node with its credential: that node
// takes the checkpoint (one node gets it), asks the holder, if it is alive,
// to release the spark (it ends there with primus.ErrSparkMoved and answers
// with a fresher checkpoint, once its own writes are in the journal), reads
// the journal from the checkpoint to where its own delivery is, skips what
// the client has, and hands the rest to the server to write first. Entries
// that a holder stamps (its sparks' own writes, their joins and leaves)
// carry its epoch, which each move raises, so that a former holder that
// still writes (not dead, only slow) is not heard.

// Journal entry kinds.
const (
	jAll   byte = 'a' // to every spark of the cluster
	jNode  byte = 'n' // to every spark of one node: node, payload
	jSpark byte = 'd' // to one spark: spark, epoch (0: any holder), payload
	jRoom  byte = 'r' // to a room's members: room, except count, except ids, payload
	jJoin  byte = 'j' // a spark joined a room: spark, epoch, room
	jLeave byte = 'l' // a spark left a room: spark, epoch, room
	jEnd   byte = 'e' // a spark ends (Spark.End): spark, epoch
)

const jVersion = 1

// jentry is a parsed journal entry.
type jentry struct {
	kind    byte
	name    string // node, spark or room
	epoch   uint64
	room    string
	except  []string
	payload []byte
}

func appendJEntry(kind byte, name string, epoch uint64, room string, except []string, payload []byte) []byte {
	b := make([]byte, 0, 16+len(name)+len(room)+len(payload))
	b = append(b, jVersion, kind)
	b = appendString(b, name)
	switch kind {
	case jSpark, jEnd:
		b = binary.AppendUvarint(b, epoch)
	case jRoom:
		b = binary.AppendUvarint(b, uint64(len(except)))
		for _, id := range except {
			b = appendString(b, id)
		}
	case jJoin, jLeave:
		b = binary.AppendUvarint(b, epoch)
		b = appendString(b, room)
	}
	return append(b, payload...)
}

func parseJEntry(data []byte) (jentry, bool) {
	var e jentry
	if len(data) < 2 || data[0] != jVersion {
		return e, false
	}
	e.kind = data[1]
	r := newReader(data[2:])
	e.name = r.str()
	switch e.kind {
	case jAll, jNode:
	case jSpark, jEnd:
		e.epoch = r.num()
	case jRoom:
		n := r.num()
		if n > uint64(len(r.b)) {
			return e, false
		}
		for range n {
			e.except = append(e.except, r.str())
		}
	case jJoin, jLeave:
		e.epoch = r.num()
		e.room = r.str()
	default:
		return e, false
	}
	if !r.ok {
		return e, false
	}
	e.payload = r.b
	return e, true
}

// era is a holder of a spark from an offset on.
type era struct {
	Epoch uint64 `json:"e"`
	Node  string `json:"n"`
	From  string `json:"f"` // Offset.String()
	from  Offset
}

// checkpoint is a spark's state at a point of the journal, as stored.
type checkpoint struct {
	Spark string            `json:"s"`
	Node  string            `json:"n"`           // holder now
	Count uint64            `json:"c"`           // data messages the client confirmed
	Off   string            `json:"o"`           // the journal offset of the last of them
	Recv  uint64            `json:"r"`           // data messages received from the client
	Rooms []string          `json:"m"`           // at Off
	Eras  []era             `json:"h"`           // the holders from Off on, the last one now
	Kept  map[string]string `json:"k,omitempty"` // the spark's kept values
}

// mark is the journal offset of a spark's data message, by count.
type mark struct {
	count uint64
	off   Offset
}

type roomChange struct {
	off  Offset
	room string
	join bool
}

// jspark is a spark of this node as the journal sees it. Fields are
// guarded by the node's mu.
type jspark struct {
	sp     *primus.Spark
	id     string
	rec    bool // resumable: counts and checkpoints are kept
	broken bool // its checkpoints cannot be trusted any more (a gap)

	eras    []era           // holders, the last one this node
	rooms   map[string]bool // now
	count   uint64          // data messages delivered
	ring    []mark          // delivered, not confirmed
	base    mark            // confirmed
	bRooms  map[string]bool // at base
	changes []roomChange    // after base
	recv    uint64          // received from the client, stored
	recvAt  pendingRecv     // a later count, stored once what its handlers wrote is in the journal
	creds   map[string]bool // credential keys → stored once at least
	fresh   map[string]bool // keys to store with Create
	parting bool            // ended by a shutdown: resumable elsewhere
	// undelivered: a message for it could not be delivered (it ends): its
	// checkpoint does not move past it.
	undelivered bool
	parted      time.Time         // when, for a parting spark
	kept        map[string]string // the spark\'s kept values, as last told
	held        []heldEntry       // while a resume is bound: frames to deliver on Bind
	waiting     *[]rawEntry       // while a resume reads the journal: what came meanwhile
	heldB       int64
}

// pendingRecv is a count of messages received from a client, and the
// number of the last journal entry this node had queued when it was made:
// the messages' handlers have run, and their writes are in once that entry
// is.
type pendingRecv struct {
	recv, seq uint64
}

type heldEntry struct {
	off  Offset
	data []byte
}

type rawEntry struct {
	off Offset
	e   jentry
}

func (s *jspark) epoch() uint64 { return s.eras[len(s.eras)-1].Epoch }

// accepts reports whether an entry stamped with epoch at off is the
// spark's holder's.
func accepts(eras []era, epoch uint64, off Offset) bool {
	if epoch == 0 {
		return true
	}
	h := eras[0]
	for _, e := range eras[1:] {
		if !off.Less(e.from) {
			h = e
		}
	}
	return h.Epoch == epoch
}

// holderAt is the node that held a spark at off.
func holderAt(eras []era, off Offset) string {
	h := eras[0]
	for _, e := range eras[1:] {
		if !off.Less(e.from) {
			h = e
		}
	}
	return h.Node
}

// targets reports whether entry e at off is a message for a spark with
// the eras and rooms.
func targets(e *jentry, id string, eras []era, rooms map[string]bool, off Offset) bool {
	switch e.kind {
	case jAll:
		return true
	case jNode:
		return e.name == holderAt(eras, off)
	case jSpark:
		return e.name == id && accepts(eras, e.epoch, off)
	case jRoom:
		return rooms[e.name] && !slices.Contains(e.except, id)
	}
	return false
}

// jnode is this node's journal side.
type jnode struct {
	c         *Cluster
	j         Journal
	store     SessionStore
	host      *primus.JournalHost
	cfg       primus.Recovery
	ttl       time.Duration
	publisher string
	q         *jqueue

	mu         sync.Mutex
	last       Offset // the last entry the follower read
	settled    Offset // the last entry the follower has delivered
	sparks     map[string]*jspark
	byRoom     map[string]map[*jspark]bool
	waiting    map[string]*jspark // resumes reading the journal
	replayQ    []*replayReq       // resumes waiting for the replayer
	replayWake chan struct{}
	storeNow   chan struct{}        // a new credential to store
	silent     map[string]time.Time // nodes that did not answer a release, until when they are taken for dead
	parting    map[string]*jspark   // ended by a shutdown
	deleted    []string             // credential keys to delete
	dirty      map[*jspark]bool
	buf        []*jspark // the follower's
	deliver    []*jspark // the follower's
	sub        Subscription
	closing    bool     // Close has begun: no new resume
	resuming   *tracker // resumes under way
}

// releaseWait bounds the wait for a holder's answer to a release.
const releaseWait = time.Second

// checkpointEvery is how often changed checkpoints are stored.
const checkpointEvery = 200 * time.Millisecond

func newJNode(c *Cluster, o *Options) (*jnode, error) {
	j, ok := o.Broker.(Journal)
	if !ok {
		return nil, errors.New("cluster: Options.Recovery needs a Broker that is a Journal (cluster/nats or cluster/redis with their Durable option)")
	}
	st, ok := o.Registry.(SessionStore)
	if !ok {
		return nil, errors.New("cluster: Options.Recovery needs a Registry that is a SessionStore")
	}
	cfg, ok := c.srv.RecoveryOptions()
	if !ok {
		return nil, errors.New("cluster: Options.Recovery needs primus.Options.Recovery")
	}
	n := &jnode{
		c: c, j: j, store: st, cfg: cfg,
		ttl:        cfg.Window + c.expiry,
		publisher:  c.id + "." + rand.Text()[:10],
		sparks:     map[string]*jspark{},
		byRoom:     map[string]map[*jspark]bool{},
		waiting:    map[string]*jspark{},
		parting:    map[string]*jspark{},
		replayWake: make(chan struct{}, 1),
		storeNow:   make(chan struct{}, 1),
		silent:     map[string]time.Time{},
		dirty:      map[*jspark]bool{},
		resuming:   newTracker(),
	}
	n.q = newJQueue(c.timeout, o.QueueBytes)
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	last, err := j.Tail(ctx)
	if err != nil {
		return nil, fmt.Errorf("cluster: failed to read the journal: %w", err)
	}
	n.last, n.settled = last, last
	n.sub, err = j.Follow(last, n.entry, n.gap)
	if err != nil {
		return nil, fmt.Errorf("cluster: failed to follow the journal: %w", err)
	}
	if n.host, err = c.srv.SetJournal(n); err != nil {
		_ = n.sub.Close()
		return nil, fmt.Errorf("cluster: Options.Recovery: %w (make the cluster before the server serves)", err)
	}
	return n, nil
}

// credKey is the store's key for a credential: not the credential itself,
// so that reading the store does not give one.
func credKey(cred string) string {
	h := sha256.Sum256([]byte("primus-resume:" + cred))
	return base64.RawURLEncoding.EncodeToString(h[:24])
}

// append queues a journal entry.
func (n *jnode) append(data []byte) error {
	if n.c.closed.Load() {
		return ErrClosed
	}
	if !n.q.push(n.publisher, data) {
		n.c.stats.dropped.Add(1)
		err := fmt.Errorf("%w: the journal is slower than the writes, or unreachable", ErrQueueFull)
		n.c.rep.fail("journal", err, 1)
		return err
	}
	return nil
}

// Opened (primus.Journal) indexes a new spark.
func (n *jnode) Opened(sp *primus.Spark) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.spark(sp)
	s.rec = sp.Resumable()
	s.base = mark{0, n.last}
	s.eras = []era{{Epoch: 1, Node: n.c.id, From: n.last.String(), from: n.last}}
	n.sparks[s.id] = s
}

// spark returns sp's jspark, made when needed; n.mu is held.
func (n *jnode) spark(sp *primus.Spark) *jspark {
	// s.sp is set once, from nil, before the spark is delivered to (a
	// resumed spark's deliveries are held until it is bound): the
	// follower reads it without the lock.
	if s := n.sparks[sp.ID()]; s != nil && (s.sp == sp || s.sp == nil) {
		if s.sp == nil {
			s.sp = sp
		}
		return s
	}
	if s := n.waiting[sp.ID()]; s != nil {
		if s.sp == nil {
			s.sp = sp
		}
		return s
	}
	return &jspark{sp: sp, id: sp.ID(), rooms: map[string]bool{}, bRooms: map[string]bool{}, creds: map[string]bool{}, fresh: map[string]bool{}}
}

// epochOf is the epoch sp's entries carry, 0 when sp is not (or no longer)
// this node's.
func (n *jnode) epochOf(sp *primus.Spark) uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	if s := n.sparks[sp.ID()]; s != nil && s.sp == sp {
		return s.epoch()
	}
	return 0
}

// Append (primus.Journal) journals a write.
func (n *jnode) Append(sp *primus.Spark, data []byte) error {
	if sp == nil {
		return n.append(appendJEntry(jNode, n.c.id, 0, "", nil, data))
	}
	epoch := n.epochOf(sp)
	if epoch == 0 {
		return primus.ErrClosed // not (or no longer) this node's
	}
	return n.append(appendJEntry(jSpark, sp.ID(), epoch, "", nil, data))
}

// AppendEnd (primus.Journal) journals a spark's End, after its writes.
func (n *jnode) AppendEnd(sp *primus.Spark) error {
	epoch := n.epochOf(sp)
	if epoch == 0 {
		return n.host.End(sp) // not journaled: nothing to wait for
	}
	return n.append(appendJEntry(jEnd, sp.ID(), epoch, "", nil, nil))
}

// member journals a room join or leave of a spark of this node.
func (n *jnode) member(id, room string, join bool) {
	n.mu.Lock()
	s := n.sparks[id]
	var epoch uint64
	if s != nil {
		epoch = s.epoch()
	}
	n.mu.Unlock()
	if epoch == 0 {
		return
	}
	kind := jLeave
	if join {
		kind = jJoin
	}
	_ = n.append(appendJEntry(kind, id, epoch, room, nil, nil))
}

// Issued (primus.Journal) stores a checkpoint under a new credential.
func (n *jnode) Issued(sp *primus.Spark, cred string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.spark(sp)
	k := credKey(cred)
	s.creds[k] = true
	s.fresh[k] = true
	n.dirty[s] = true
	select {
	case n.storeNow <- struct{}{}: // the client may need it elsewhere at once
	default:
	}
}

// Revoked (primus.Journal) deletes the checkpoints stored under credentials.
func (n *jnode) Revoked(sp *primus.Spark, creds []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.spark(sp)
	for _, c := range creds {
		k := credKey(c)
		delete(s.creds, k)
		delete(s.fresh, k)
		n.deleted = append(n.deleted, k)
	}
}

// Confirmed (primus.Journal) moves the spark's checkpoint.
func (n *jnode) Confirmed(sp *primus.Spark, acked, recv uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.sparks[sp.ID()]
	if s == nil || s.sp != sp || !s.rec {
		return
	}
	moved := s.confirm(acked)
	if recv != s.recv {
		s.recvAt = pendingRecv{recv, n.q.last()}
		moved = true
	}
	if moved {
		n.dirty[s] = true
	}
}

// confirm moves the base to the message numbered acked; n.mu is held.
func (s *jspark) confirm(acked uint64) bool {
	if acked <= s.base.count {
		return false
	}
	i, ok := slices.BinarySearchFunc(s.ring, acked, func(m mark, c uint64) int {
		switch {
		case m.count < c:
			return -1
		case m.count > c:
			return 1
		}
		return 0
	})
	if !ok {
		return false
	}
	s.base = s.ring[i]
	s.ring = slices.Delete(s.ring, 0, i+1)
	s.fold()
	return true
}

// fold applies the room changes and drops the eras up to the base.
func (s *jspark) fold() {
	k := 0
	for _, ch := range s.changes {
		if s.base.off.Less(ch.off) {
			s.changes[k] = ch
			k++
			continue
		}
		if ch.join {
			s.bRooms[ch.room] = true
		} else {
			delete(s.bRooms, ch.room)
		}
	}
	clear(s.changes[k:])
	s.changes = s.changes[:k]
	for len(s.eras) > 1 && !s.base.off.Less(s.eras[1].from) {
		s.eras = s.eras[1:]
	}
}

// checkpoint is the spark's stored state; n.mu is held.
func (n *jnode) checkpoint(s *jspark) checkpoint {
	if p := s.recvAt; p.recv > s.recv && n.q.inUpTo() >= p.seq {
		s.recv = p.recv
	}
	if s.count == s.base.count && s.held == nil && s.waiting == nil && !s.undelivered && s.base.off.Less(n.settled) && !s.parting {
		// The client has everything delivered so far, and every entry up
		// to settled was delivered: nothing for it in between, so the
		// checkpoint moves there (a quiet spark's replay stays short). Not
		// past a message that could not be delivered (the spark ends).
		s.base.off = n.settled
		s.fold()
	}
	cp := checkpoint{Spark: s.id, Node: n.c.id, Count: s.base.count, Off: s.base.off.String(), Recv: s.recv, Eras: slices.Clone(s.eras), Kept: s.kept}
	for r := range s.bRooms {
		cp.Rooms = append(cp.Rooms, r)
	}
	slices.Sort(cp.Rooms)
	return cp
}

// Kept (primus.Journal) stores the spark's kept values with its checkpoint.
func (n *jnode) Kept(sp *primus.Spark) {
	kept := sp.KeptValues()
	n.mu.Lock()
	defer n.mu.Unlock()
	if s := n.sparks[sp.ID()]; s != nil && s.sp == sp && s.rec {
		s.kept = kept
		n.dirty[s] = true
	}
}

// Ended (primus.Journal) forgets a spark.
func (n *jnode) Ended(sp *primus.Spark, reason error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.sparks[sp.ID()]
	if s == nil || s.sp != sp {
		return
	}
	n.unindex(s)
	switch {
	case errors.Is(reason, primus.ErrSparkMoved):
		delete(n.dirty, s)
	case errors.Is(reason, primus.ErrServerClosed) && s.rec:
		// Closed for a restart (or a shutdown): its client may resume it
		// on another node, which asks this one for it while it can, and
		// otherwise finds its last checkpoint, stored at once.
		s.parting, s.parted = true, time.Now()
		n.parting[s.id] = s
		n.dirty[s] = true
		select {
		case n.storeNow <- struct{}{}:
		default:
		}
	default:
		for k := range s.creds {
			n.deleted = append(n.deleted, k)
		}
		delete(n.dirty, s)
	}
}

func (n *jnode) unindex(s *jspark) {
	delete(n.sparks, s.id)
	for r := range s.rooms {
		if m := n.byRoom[r]; m != nil {
			delete(m, s)
			if len(m) == 0 {
				delete(n.byRoom, r)
			}
		}
	}
}

// gap is the follower's report of entries trimmed before this node read
// them: the sparks' counts no longer match the journal.
func (n *jnode) gap(next Offset) {
	n.mu.Lock()
	for _, s := range n.sparks {
		s.broken = true
	}
	n.mu.Unlock()
	n.c.rep.fail("journal", fmt.Errorf("cluster: the journal trimmed entries this node had not read (up to %s): its sparks missed messages and cannot resume on other nodes", next), 0)
}

// entry is the follower's: one journal entry, delivered to this node's
// sparks.
func (n *jnode) entry(off Offset, data []byte) {
	e, ok := parseJEntry(data)
	n.mu.Lock()
	n.last = off
	if !ok {
		n.settled = off
		n.mu.Unlock()
		n.c.stats.malformed.Add(1)
		return
	}
	for _, s := range n.waiting {
		if len(*s.waiting) < n.cfg.MaxMessages*4 {
			*s.waiting = append(*s.waiting, rawEntry{off, e}) // the entry's bytes are its own (Journal.Follow)
		}
	}
	to := n.buf[:0]
	switch e.kind {
	case jAll, jNode:
		if e.kind == jAll || e.name == n.c.id {
			for _, s := range n.sparks {
				to = append(to, s)
			}
		}
	case jSpark:
		if s := n.sparks[e.name]; s != nil && accepts(s.eras, e.epoch, off) {
			to = append(to, s)
		}
	case jRoom:
		for s := range n.byRoom[e.name] {
			if !slices.Contains(e.except, s.id) {
				to = append(to, s)
			}
		}
	case jJoin, jLeave:
		if s := n.sparks[e.name]; s != nil && accepts(s.eras, e.epoch, off) {
			n.setRoom(s, off, e.room, e.kind == jJoin)
		}
	case jEnd:
		// Ends the spark after what was delivered to it before; one held
		// for a resume is not this node's to end (its new holder's entries
		// carry a newer epoch).
		var end *primus.Spark
		if s := n.sparks[e.name]; s != nil && s.sp != nil && s.held == nil && accepts(s.eras, e.epoch, off) {
			end = s.sp
		}
		n.mu.Unlock()
		if end != nil {
			_ = n.host.End(end)
		}
		n.mu.Lock()
		n.settled = off
		n.mu.Unlock()
		return
	}
	n.c.stats.received.Add(1)
	deliver := n.deliver[:0]
	for _, s := range to {
		if s.held != nil {
			s.held = append(s.held, heldEntry{off, e.payload})
			continue
		}
		deliver = append(deliver, s)
	}
	clear(to)
	n.buf = to[:0]
	n.mu.Unlock()
	// Delivered outside the lock (a delivery may end a spark, whose end
	// takes it), then counted under it once for the entry.
	var missed []*jspark
	got := deliver[:0]
	for _, s := range deliver {
		if n.host.Deliver(s.sp, e.payload) == nil {
			got = append(got, s)
		} else {
			missed = append(missed, s)
		}
	}
	n.mu.Lock()
	for _, s := range got {
		n.count(s, off)
	}
	for _, s := range missed {
		s.undelivered = true
	}
	n.settled = off
	n.mu.Unlock()
	clear(deliver)
	n.deliver = deliver[:0]
}

// count records a message delivered to a spark at off; n.mu is held.
func (n *jnode) count(s *jspark, off Offset) {
	s.count++
	if s.rec && !s.broken {
		if len(s.ring) >= n.cfg.MaxMessages {
			// The client does not confirm: the server gives up resuming
			// it as well.
			s.broken = true
			s.ring = nil
		} else {
			s.ring = append(s.ring, mark{s.count, off})
		}
	}
}

// give delivers one message to a spark and records it.
func (n *jnode) give(s *jspark, off Offset, data []byte) {
	err := n.host.Deliver(s.sp, data)
	n.mu.Lock()
	if err != nil {
		s.undelivered = true
	} else {
		n.count(s, off)
	}
	n.mu.Unlock()
}

// setRoom applies a join or leave at off; n.mu is held.
func (n *jnode) setRoom(s *jspark, off Offset, room string, join bool) {
	if s.rooms[room] == join {
		return
	}
	if join {
		s.rooms[room] = true
		m := n.byRoom[room]
		if m == nil {
			m = map[*jspark]bool{}
			n.byRoom[room] = m
		}
		m[s] = true
	} else {
		delete(s.rooms, room)
		if m := n.byRoom[room]; m != nil {
			delete(m, s)
			if len(m) == 0 {
				delete(n.byRoom, room)
			}
		}
	}
	if s.rec {
		s.changes = append(s.changes, roomChange{off, room, join})
		n.dirty[s] = true
	}
}

// Resume (primus.Journal) resumes on this node a spark held by another,
// or by a node that died.
func (n *jnode) Resume(ctx context.Context, cred string, received uint64) (h primus.Handoff, err error) {
	// Counted until the server binds or cancels the spark (or the resume
	// fails): Close waits for that, so that a checkpoint taken is put
	// back while the store can still be reached.
	n.mu.Lock()
	if n.closing {
		n.mu.Unlock()
		return h, ErrClosed
	}
	n.resuming.add(1)
	n.mu.Unlock()
	handed := false
	defer func() {
		if !handed {
			n.resuming.done(1)
		}
	}()
	data, err := n.take(ctx, credKey(cred))
	if errors.Is(err, ErrNotFound) {
		n.c.log.Debug("cluster: no checkpoint for a resume credential")
		return h, primus.ErrRecoveryUnknown
	}
	if err != nil {
		return h, fmt.Errorf("cluster: failed to read the resume checkpoint: %w", err)
	}
	var cp checkpoint
	if err := json.Unmarshal(data, &cp); err != nil || len(cp.Eras) == 0 {
		return h, fmt.Errorf("cluster: malformed resume checkpoint: %v", err)
	}
	if fresh, ok := n.release(ctx, &cp); ok {
		cp = fresh
	} else if cp.Node != n.c.id {
		// No answer: the holder died, or it is closing and stored its
		// last checkpoint of the spark instead of answering (it stores it
		// once its writes are in the journal, under the same key, which
		// was empty since this take): that one is exact.
		if again, err := n.store.TakeSession(ctx, credKey(cred)); err == nil {
			var last checkpoint
			if json.Unmarshal(again, &last) == nil && last.Spark == cp.Spark && last.Node == cp.Node &&
				len(last.Eras) > 0 && last.Eras[len(last.Eras)-1].Epoch == cp.Eras[len(cp.Eras)-1].Epoch {
				cp = last
			}
		}
	}
	from, err := ParseOffset(cp.Off)
	if err != nil {
		return h, err
	}
	for i := range cp.Eras {
		if cp.Eras[i].from, err = ParseOffset(cp.Eras[i].From); err != nil {
			return h, err
		}
	}
	if received < cp.Count {
		n.c.log.Debug("cluster: a client resumes with fewer messages than it confirmed", "spark", cp.Spark, "received", received, "confirmed", cp.Count)
		return h, primus.ErrRecoveryUnknown
	}

	s := &jspark{id: cp.Spark, rec: true, rooms: map[string]bool{}, creds: map[string]bool{}, fresh: map[string]bool{}}
	fail := func(err error) (primus.Handoff, error) {
		n.mu.Lock()
		if n.waiting[s.id] == s {
			delete(n.waiting, s.id)
		}
		n.mu.Unlock()
		if !errors.Is(err, primus.ErrRecoveryUnknown) && !errors.Is(err, primus.ErrRecoveryOverflow) {
			// Not the spark's fault (this node closes, the broker is
			// slow): the checkpoint goes back, for the client's next try.
			n.putBack(credKey(cred), &cp)
		}
		return primus.Handoff{}, err
	}
	rooms := map[string]bool{}
	for _, r := range cp.Rooms {
		rooms[r] = true
	}
	// Replay: count the spark's messages after the checkpoint, skip those
	// the client has, keep the others.
	count := cp.Count
	base := mark{cp.Count, from}
	bRooms := maps.Clone(rooms)
	var changes []roomChange
	var ring []mark
	var missed [][]byte
	var missedBytes int64
	var ended bool
	apply := func(off Offset, e *jentry) bool {
		switch e.kind {
		case jEnd:
			if e.name == s.id && accepts(cp.Eras, e.epoch, off) {
				ended = true // the application ended it: nothing to resume
				return false
			}
			return true
		case jJoin, jLeave:
			if e.name == s.id && accepts(cp.Eras, e.epoch, off) && rooms[e.room] != (e.kind == jJoin) {
				if e.kind == jJoin {
					rooms[e.room] = true
				} else {
					delete(rooms, e.room)
				}
				if count <= received {
					bRooms = maps.Clone(rooms)
				} else {
					changes = append(changes, roomChange{off, e.room, e.kind == jJoin})
				}
			}
			return true
		}
		if !targets(e, s.id, cp.Eras, rooms, off) {
			return true
		}
		count++
		if count <= received {
			base = mark{count, off}
			bRooms = maps.Clone(rooms)
			return true
		}
		p := slices.Clone(e.payload)
		missed = append(missed, p)
		ring = append(ring, mark{count, off})
		missedBytes += int64(cap(p)) + 64
		return len(missed) <= n.cfg.MaxMessages && missedBytes <= n.cfg.MaxBytes
	}
	// The replayer reads the journal for every resume under way at once,
	// up to where this node's delivery is; from there on what the
	// journal gets waits in s.waiting.
	req := &replayReq{s: s, from: from, apply: apply, done: make(chan struct{})}
	if err := n.replay(ctx, req); err != nil {
		return fail(err)
	}
	upto := req.upto
	switch {
	case errors.Is(req.err, ErrTrimmed):
		n.c.log.Warn("cluster: a spark cannot resume: the journal no longer holds what its client missed", "spark", s.id)
		return fail(primus.ErrRecoveryUnknown)
	case req.err != nil:
		return fail(fmt.Errorf("cluster: failed to read the journal: %w", req.err))
	case ended:
		n.c.log.Debug("cluster: a resumed spark was ended meanwhile", "spark", s.id)
		return fail(primus.ErrRecoveryUnknown)
	case req.overflow:
		n.c.log.Debug("cluster: a resumed spark missed too much", "spark", s.id)
		return fail(primus.ErrRecoveryOverflow)
	case count < received:
		// The client has more than the journal holds for it.
		n.c.log.Debug("cluster: a client resumes with more messages than the journal holds for it", "spark", s.id, "received", received, "journal", count)
		return fail(primus.ErrRecoveryUnknown)
	}
	epoch := cp.Eras[len(cp.Eras)-1].Epoch + 1
	eras := append(cp.Eras, era{Epoch: epoch, Node: n.c.id, From: upto.String(), from: upto})

	// Live from upto on: what came meanwhile, then the index.
	n.mu.Lock()
	if n.waiting[s.id] == s {
		delete(n.waiting, s.id)
	}
	s.eras = eras
	s.held = []heldEntry{}
	for _, re := range *s.waiting {
		if !upto.Less(re.off) {
			continue // read by the replayer already
		}
		if re.e.kind == jJoin || re.e.kind == jLeave {
			if re.e.name == s.id && accepts(eras, re.e.epoch, re.off) && rooms[re.e.room] != (re.e.kind == jJoin) {
				if re.e.kind == jJoin {
					rooms[re.e.room] = true
				} else {
					delete(rooms, re.e.room)
				}
				changes = append(changes, roomChange{re.off, re.e.room, re.e.kind == jJoin})
			}
			continue
		}
		if targets(&re.e, s.id, eras, rooms, re.off) {
			s.held = append(s.held, heldEntry{re.off, re.e.payload})
		}
	}
	s.waiting = nil
	s.count, s.base, s.ring, s.bRooms, s.changes, s.recv, s.kept = count, base, ring, bRooms, changes, cp.Recv, cp.Kept
	if _, dup := n.sparks[s.id]; dup {
		n.mu.Unlock()
		return primus.Handoff{}, fmt.Errorf("cluster: spark %s is already on this node", s.id)
	}
	n.sparks[s.id] = s
	for r := range rooms {
		n.setRoom(s, upto, r, true)
	}
	s.changes = changes // setRoom's are not changes: the rooms were there
	n.mu.Unlock()

	h = primus.Handoff{ID: s.id, Received: cp.Recv, Missed: missed, Kept: cp.Kept}
	handed = true
	h.Bind = func(sp *primus.Spark) {
		defer n.resuming.done(1)
		n.bind(s, sp, rooms)
	}
	h.Cancel = func() {
		defer n.resuming.done(1)
		// The server did not take the spark after all (it closes, a limit):
		// nothing reached the client, and nothing was stamped with the new
		// epoch, so the checkpoint goes back as it was taken, for the
		// client's next try on any node.
		n.mu.Lock()
		if n.sparks[s.id] == s {
			n.unindex(s)
		}
		n.mu.Unlock()
		n.putBack(credKey(cred), &cp)
	}
	return h, nil
}

// bind gives a resumed spark what the journal held for it meanwhile, and
// its rooms to package rooms.
func (n *jnode) bind(s *jspark, sp *primus.Spark, rooms map[string]bool) {
	for {
		n.mu.Lock()
		if s.sp == nil {
			s.sp = sp
		}
		held := s.held
		if len(held) == 0 {
			s.held = nil
			n.mu.Unlock()
			break
		}
		s.held = []heldEntry{}
		n.mu.Unlock()
		for _, he := range held {
			n.give(s, he.off, he.data)
		}
	}
	if p := n.c.presence.Load(); p != nil {
		for r := range rooms {
			if err := p.h.JoinByID(s.id, r); err != nil {
				n.c.log.Warn("cluster: a resumed spark could not rejoin its room", "spark", s.id, "room", r, "error", err)
			}
		}
	}
}

// close stops following the journal and appends what is queued, within
// ctx.
func (n *jnode) close(ctx context.Context) error {
	// The resumes under way end first (each within its context): one that
	// fails puts its checkpoint back, for the client's next try elsewhere.
	n.mu.Lock()
	n.closing = true
	n.mu.Unlock()
	var err error
	if werr := n.resuming.wait(ctx); werr != nil {
		err = fmt.Errorf("cluster: close: resumes under way: %w", werr)
	}
	err = errors.Join(err, n.q.close(ctx))
	// The last checkpoints, those of sparks closed by a shutdown among
	// them, once what they count is in the journal.
	err = errors.Join(err, n.store1(ctx))
	if n.sub != nil {
		err = errors.Join(err, n.sub.Close())
	}
	return err
}

// appendLoop appends the queued entries, in order, retrying until they are
// in.
func (n *jnode) appendLoop() {
	defer n.c.wg.Done()
	n.q.run(n.c.loopCtx, n.j, n.c.rep)
}

// WriteRoom journals a write to a room's members on every node (package
// rooms calls it with Options.Recovery); it reports false, doing nothing,
// without Recovery.
func (c *Cluster) WriteRoom(room string, except []string, data []byte) (bool, error) {
	if c.jn == nil {
		return false, nil
	}
	return true, c.jn.append(appendJEntry(jRoom, room, 0, "", except, data))
}

// putBack stores a checkpoint taken for a resume that could not finish.
func (n *jnode) putBack(key string, cp *checkpoint) {
	b, err := json.Marshal(cp)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.c.timeout)
	defer cancel()
	if _, err := n.store.SaveSessions(ctx, []SessionRecord{{Key: key, Data: b, Create: true}}, n.ttl); err != nil {
		n.c.log.Warn("cluster: a resume checkpoint could not be put back", "spark", cp.Spark, "error", err)
	}
}

// takeRetry is how long a resume looks for a checkpoint that is not in
// the store: its credential may have been issued a moment ago, on a node
// that has not stored it yet.
const takeRetry = time.Second

// take takes the checkpoint stored under key.
func (n *jnode) take(ctx context.Context, key string) ([]byte, error) {
	deadline := time.Now().Add(takeRetry)
	wait := 20 * time.Millisecond
	for {
		data, err := n.store.TakeSession(ctx, key)
		if !errors.Is(err, ErrNotFound) || time.Now().After(deadline) {
			return data, err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, err
		}
		wait *= 2
	}
}

// release asks the spark's holder, when it is another live node, to give
// it up, and returns its fresher checkpoint.
func (n *jnode) release(ctx context.Context, cp *checkpoint) (checkpoint, bool) {
	if cp.Node == n.c.id {
		n.mu.Lock()
		s := n.sparks[cp.Spark]
		n.mu.Unlock()
		if s == nil || s.sp == nil {
			return checkpoint{}, false
		}
		return n.releaseLocal(s)
	}
	n.mu.Lock()
	silent := time.Now().Before(n.silent[cp.Node])
	n.mu.Unlock()
	if silent {
		return checkpoint{}, false // it did not answer a moment ago: dead
	}
	ctx, cancel := context.WithTimeout(ctx, releaseWait)
	defer cancel()
	text, err := n.c.ask(ctx, cp.Node, opRelease, cp.Spark)
	if errors.Is(err, context.DeadlineExceeded) {
		n.mu.Lock()
		n.silent[cp.Node] = time.Now().Add(n.c.expiry)
		n.mu.Unlock()
	}
	if err != nil {
		n.c.log.Debug("cluster: no release from the former holder; resuming from its last checkpoint", "spark", cp.Spark, "node", cp.Node, "error", err)
		return checkpoint{}, false
	}
	var fresh checkpoint
	if json.Unmarshal([]byte(text), &fresh) != nil || fresh.Spark != cp.Spark || len(fresh.Eras) == 0 {
		return checkpoint{}, false
	}
	return fresh, true
}

// releaseLocal ends a spark of this node that resumes elsewhere, once this
// node's writes are in the journal, and returns its checkpoint.
func (n *jnode) releaseLocal(s *jspark) (checkpoint, bool) {
	acked, recv, ok := n.host.Release(s.sp)
	if !ok {
		return checkpoint{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.c.timeout)
	defer cancel()
	if n.q.flush(ctx) != nil {
		return checkpoint{}, false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if s.broken {
		return checkpoint{}, false
	}
	s.confirm(acked)
	s.recv = recv // the queue is flushed: what its handlers wrote is in
	return n.checkpoint(s), true
}

// answerRelease is a holder's side of a release.
func (n *jnode) answerRelease(spark string) (string, error) {
	n.mu.Lock()
	s := n.sparks[spark]
	p := n.parting[spark]
	delete(n.parting, spark)
	n.mu.Unlock()
	if p != nil {
		// Ended by this node's shutdown: its checkpoint is final once this
		// node's writes are in.
		ctx, cancel := context.WithTimeout(context.Background(), n.c.timeout)
		defer cancel()
		if err := n.q.flush(ctx); err != nil {
			return "", err
		}
		n.mu.Lock()
		cp := n.checkpoint(p)
		broken := p.broken
		// The asker answers for the spark from now on: its checkpoints
		// are not this node's to store any more.
		p.parting = false
		delete(n.dirty, p)
		n.mu.Unlock()
		if broken {
			return "", fmt.Errorf("%w: spark %s", ErrNotFound, spark)
		}
		b, err := json.Marshal(cp)
		return string(b), err
	}
	if s == nil || s.sp == nil || !s.rec {
		return "", fmt.Errorf("%w: spark %s", ErrNotFound, spark)
	}
	cp, ok := n.releaseLocal(s)
	if !ok {
		return "", fmt.Errorf("%w: spark %s", ErrNotFound, spark)
	}
	b, err := json.Marshal(cp)
	return string(b), err
}

// checkpointLoop stores the checkpoints that changed, refreshes the others
// before they expire, and deletes those of ended sparks.
func (n *jnode) checkpointLoop() {
	defer n.c.wg.Done()
	tick := time.NewTicker(checkpointEvery)
	defer tick.Stop()
	refresh := time.Now()
	for {
		select {
		case <-tick.C:
		case <-n.storeNow:
		case <-n.c.stop:
			return
		}
		if time.Since(refresh) > n.ttl/3 {
			refresh = time.Now()
			n.mu.Lock()
			for _, s := range n.sparks {
				if s.rec && len(s.creds) > 0 {
					n.dirty[s] = true
				}
			}
			// A spark closed by a shutdown is asked for by the node its
			// client reaches; one never asked for is forgotten once its
			// checkpoint has expired (a server that shut down and runs on).
			for id, s := range n.parting {
				if time.Since(s.parted) > n.ttl {
					delete(n.parting, id)
				}
			}
			n.mu.Unlock()
		}
		ctx, cancel := context.WithTimeout(n.c.loopCtx, n.c.timeout)
		n.store1(ctx)
		cancel()
	}
}

// store1 stores the checkpoints that changed and deletes those of ended
// sparks.
func (n *jnode) store1(ctx context.Context) error {
	n.mu.Lock()
	var recs []SessionRecord
	var again, saved []*jspark
	type made struct {
		s   *jspark
		key string
	}
	var created []made
	for s := range n.dirty {
		delete(n.dirty, s)
		if !s.rec || s.broken || s.waiting != nil || n.sparks[s.id] != s && !s.parting {
			continue
		}
		cp := n.checkpoint(s)
		if s.parting && s.recvAt.recv > s.recv {
			// Its last checkpoint once what its handlers wrote is in the
			// journal, not before: a node that resumes the spark without
			// an answer from this one takes it as exact.
			again = append(again, s)
			continue
		}
		b, err := json.Marshal(cp)
		if err != nil {
			continue
		}
		for k := range s.creds {
			// Stored whether or not the record is there: one that another
			// node took meanwhile is written again only until this node
			// releases the spark, and that node then answers for its
			// credentials (an update that checks first would cost a read
			// per record).
			recs = append(recs, SessionRecord{Key: k, Data: b, Create: true})
			if s.fresh[k] {
				created = append(created, made{s, k})
			}
		}
		saved = append(saved, s)
		if s.recvAt.recv > s.recv {
			again = append(again, s) // once its handlers' writes are in
		}
	}
	for _, s := range again {
		n.dirty[s] = true
	}
	del := n.deleted
	n.deleted = nil
	n.mu.Unlock()
	var errs []error
	var failed bool
	for len(recs) > 0 {
		k := min(len(recs), maxBatch)
		if _, err := n.store.SaveSessions(ctx, recs[:k], n.ttl); err != nil {
			err = fmt.Errorf("cluster: failed to store resume checkpoints: %w", err)
			n.c.rep.fail("sessions", err, 0)
			errs = append(errs, err)
			failed = true
			break
		}
		n.c.rep.ok("sessions")
		recs = recs[k:]
	}
	// Deletions after the saves (a client may need a new checkpoint at once;
	// an old one left over expires), each with a time of its own.
	if len(del) > 0 {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.c.timeout)
		if err := n.store.DeleteSessions(dctx, del); err != nil {
			err = fmt.Errorf("cluster: failed to delete resume checkpoints: %w", err)
			n.c.rep.fail("sessions", err, 0)
			errs = append(errs, err)
		}
		cancel()
	}
	n.mu.Lock()
	if failed {
		for _, s := range saved {
			n.dirty[s] = true // again, at the next tick; new keys still new
		}
	} else {
		for _, m := range created {
			delete(m.s.fresh, m.key)
		}
	}
	n.mu.Unlock()
	return errors.Join(errs...)
}

// replayReq is one resume's read of the journal: entries after from, up
// to upto, which the replayer sets.
type replayReq struct {
	s        *jspark
	from     Offset
	apply    func(Offset, *jentry) bool // false: stop, overflow
	upto     Offset
	err      error
	overflow bool
	done     chan struct{}
}

// replayGather is how long the replayer waits for more resumes to read
// with the first: the clients of a node that died come back together.
const replayGather = 20 * time.Millisecond

// replay has req read by the replayer and waits for it.
func (n *jnode) replay(ctx context.Context, req *replayReq) error {
	n.mu.Lock()
	if _, dup := n.sparks[req.s.id]; dup || n.waiting[req.s.id] != nil {
		n.mu.Unlock()
		return fmt.Errorf("cluster: spark %s is already on this node", req.s.id)
	}
	n.waiting[req.s.id] = req.s // no entry for it is missed from now on
	raw := []rawEntry{}
	req.s.waiting = &raw
	n.replayQ = append(n.replayQ, req)
	n.mu.Unlock()
	select {
	case n.replayWake <- struct{}{}:
	default:
	}
	select {
	case <-req.done:
		return nil
	case <-ctx.Done():
		// The replayer finishes with it and drops it.
		return ctx.Err()
	case <-n.c.stop:
		return ErrClosed
	}
}

// replayLoop reads the journal for the resumes under way, batch by batch:
// once from the earliest checkpoint to where this node's delivery is,
// handing each entry to the resumes it comes after.
func (n *jnode) replayLoop() {
	defer n.c.wg.Done()
	for {
		select {
		case <-n.replayWake:
		case <-n.c.stop:
			return
		}
		t := time.NewTimer(replayGather)
		select {
		case <-t.C:
		case <-n.c.stop:
			t.Stop()
			return
		}
		n.mu.Lock()
		batch := n.replayQ
		n.replayQ = nil
		upto := n.last
		n.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		from := batch[0].from
		for _, r := range batch {
			r.upto = upto
			if r.from.Less(from) {
				from = r.from
			}
		}
		read := func(from Offset, rs []*replayReq) error {
			ctx, cancel := context.WithTimeout(n.c.loopCtx, 2*n.c.timeout)
			defer cancel()
			return n.j.Read(ctx, from, upto, func(off Offset, data []byte) bool {
				e, ok := parseJEntry(data)
				if !ok {
					return true
				}
				for _, r := range rs {
					if !r.overflow && r.from.Less(off) && !r.apply(off, &e) {
						r.overflow = true
					}
				}
				return true
			})
		}
		err := read(from, batch)
		if errors.Is(err, ErrTrimmed) && len(batch) > 1 {
			// Some checkpoints are too old: read for each alone.
			for _, r := range batch {
				r.err = read(r.from, []*replayReq{r})
			}
		} else {
			for _, r := range batch {
				r.err = err
			}
		}
		for _, r := range batch {
			close(r.done)
		}
	}
}
