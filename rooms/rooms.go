package rooms

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/cluster"
	"github.com/go-primus/primus/plugin"
)

// topic is the cluster topic room writes travel on.
const topic = "primus.rooms"

// Relay carries room writes to the other nodes of a cluster;
// *cluster.Cluster is one. Publish reaches the handlers of the topic on
// every other node, never this one.
type Relay interface {
	Publish(topic string, data []byte) error
	Handle(topic string, f func(data []byte))
}

// Options configure Rooms. A nil *Options means all defaults.
type Options struct {
	// Relay, when set, makes room writes reach the members on every node
	// of a cluster: pass the node's *cluster.Cluster. With a cluster whose
	// registry keeps a room directory (the NATS and Redis backends), room
	// membership is cluster-wide too: see Rooms. Zero value means this
	// server alone.
	Relay Relay

	// Logger receives the diagnostics of the membership event handlers (a
	// panic, events dropped). Zero value means silent.
	Logger *slog.Logger
}

// roomJournal is a Relay that journals room writes: *cluster.Cluster with
// its Recovery option, whose journal delivers them to the members that are
// the server's sparks, on every node.
type roomJournal interface {
	WriteRoom(room string, except []string, data []byte) (journaled bool, err error)
}

// presenceRelay is a Relay that keeps room membership cluster-wide:
// *cluster.Cluster.
type presenceRelay interface {
	Relay
	ID() string
	Presence(h cluster.PresenceHandler) (*cluster.Presence, error)
}

// Rooms groups the sparks of a server into named rooms, so that one write
// reaches every member of a room. A spark joins and leaves rooms by name,
// is in any number of them, and leaves them all when it ends. A room exists
// while it has members.
//
// Membership lives in this process's memory, and Members, RoomsOf and
// Rooms answer from it, for this server's sparks. With Options.Relay (a
// cluster), a write to a room reaches its members on every node; with a
// cluster whose backend keeps a room directory, membership is cluster-wide
// as well: MembersAll, CountAll, RoomsOfAll and RoomsAll answer for every
// node, OnJoin and OnLeave handlers hear of every node's changes,
// JoinRemote and LeaveRemote reach a spark wherever it is, and a room
// write goes only to the nodes that have members of the room.
//
// All methods are safe for concurrent use.
type Rooms struct {
	srv      *primus.Server
	relay    Relay
	presence *cluster.Presence // nil without a cluster directory
	node     string            // this node's id in a cluster
	events   events

	mu    sync.RWMutex
	rooms map[string]map[string]plugin.Spark // room → spark id → spark
	of    map[string]*member                 // spark id → its rooms
}

type member struct {
	spark plugin.Spark
	rooms map[string]struct{}
	stop  func() bool // unregisters the leave-on-end callback
}

// New returns the rooms of srv. Sparks may be the server's own
// (*primus.Spark) or any plugin.Spark of it, such as a multiplex channel's.
func New(srv *primus.Server, opts *Options) *Rooms {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Rooms{
		srv:    srv,
		relay:  o.Relay,
		rooms:  map[string]map[string]plugin.Spark{},
		of:     map[string]*member{},
		events: events{log: o.Logger},
	}
	if r.relay != nil {
		r.relay.Handle(topic, r.receive)
		if pr, ok := r.relay.(presenceRelay); ok {
			// Without a directory (or when another Rooms has the
			// cluster's), room writes go to every node and the queries
			// say so.
			if p, err := pr.Presence(presenceHandler{r}); err == nil {
				r.presence, r.node = p, pr.ID()
			}
		}
	}
	// The server's sparks leave their rooms in a disconnection handler,
	// before Done is closed; other sparks when their context ends.
	srv.OnDisconnection(func(sp *primus.Spark) { r.LeaveAll(sp) })
	return r
}

// Join adds the spark to the room; joining a room twice is one membership.
// It returns primus.ErrClosed for a spark that has ended.
func (r *Rooms) Join(s plugin.Spark, room string) error {
	ctx := s.Context()
	id := s.ID()
	r.mu.Lock()
	// Checked under the lock: a spark's context ends before its
	// disconnection handler takes it out of its rooms (with the lock), so
	// either that sees this membership or this sees the end.
	if ctx.Err() != nil {
		r.mu.Unlock()
		return primus.ErrClosed
	}
	m := r.of[id]
	if m == nil {
		m = &member{spark: s, rooms: map[string]struct{}{}, stop: func() bool { return true }}
		r.of[id] = m
		if _, ok := s.(*primus.Spark); !ok {
			// Leave every room when the spark ends: its context ends
			// then. If it ended since the check above, this runs at once.
			m.stop = context.AfterFunc(ctx, func() { r.leaveAll(id, m) })
		}
	}
	if _, in := m.rooms[room]; in {
		r.rooms[room][id] = s
		r.mu.Unlock()
		return nil
	}
	m.rooms[room] = struct{}{}
	members := r.rooms[room]
	if members == nil {
		members = map[string]plugin.Spark{}
		r.rooms[room] = members
	}
	members[id] = s
	r.changed(id, room, true)
	r.mu.Unlock()
	return nil
}

// changed reports a membership change to the cluster and the event
// handlers; r.mu is held, so that they see the changes in their order.
func (r *Rooms) changed(id, room string, join bool) {
	if r.presence != nil {
		if join {
			r.presence.Joined(id, room)
		} else {
			r.presence.Left(id, room)
		}
	}
	r.events.emit(Event{Room: room, Spark: id, Node: r.node}, join)
}

// Leave takes the spark out of the room.
func (r *Rooms) Leave(s plugin.Spark, room string) { r.leave(s.ID(), room) }

// leave takes the spark with the id out of the room, and reports whether
// it was in it.
func (r *Rooms) leave(id, room string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.of[id]
	if m == nil {
		return false
	}
	if _, ok := m.rooms[room]; !ok {
		return false
	}
	r.remove(id, room)
	delete(m.rooms, room)
	if len(m.rooms) == 0 {
		m.stop()
		delete(r.of, id)
	}
	return true
}

// LeaveAll takes the spark out of every room; a spark that ends does so by
// itself.
func (r *Rooms) LeaveAll(s plugin.Spark) {
	id := s.ID()
	r.mu.RLock()
	m := r.of[id]
	r.mu.RUnlock()
	if m != nil {
		m.stop()
		r.leaveAll(id, m)
	}
}

func (r *Rooms) leaveAll(id string, m *member) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.of[id] != m {
		return // already gone, or a new membership of the id
	}
	for room := range m.rooms {
		r.remove(id, room)
	}
	delete(r.of, id)
}

// remove deletes the spark from the room's members; r.mu is held.
func (r *Rooms) remove(id, room string) {
	members := r.rooms[room]
	delete(members, id)
	if len(members) == 0 {
		delete(r.rooms, room)
	}
	r.changed(id, room, false)
}

// RoomsOf returns the rooms the spark is in, sorted.
func (r *Rooms) RoomsOf(s plugin.Spark) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	m := r.of[s.ID()]
	if m == nil {
		return nil
	}
	out := make([]string, 0, len(m.rooms))
	for room := range m.rooms {
		out = append(out, room)
	}
	slices.Sort(out)
	return out
}

// Rooms returns the rooms that have members on this server, sorted.
func (r *Rooms) Rooms() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.rooms))
	for room := range r.rooms {
		out = append(out, room)
	}
	slices.Sort(out)
	return out
}

// Room returns a handle on the room, to write to its members. It is cheap:
// make one per write.
func (r *Rooms) Room(name string) Room { return Room{r: r, name: name} }

// encode is primus.Server's encoding: a primus.Raw is sent as it is.
func (r *Rooms) encode(v any) ([]byte, error) {
	if raw, ok := v.(primus.Raw); ok {
		return raw, nil
	}
	b, err := r.srv.Parser().Encode(v)
	if err != nil {
		return nil, fmt.Errorf("rooms: failed to encode outgoing data: %w", err)
	}
	return b, nil
}

// write encodes v once and sends the bytes to the room's members here and,
// with a relay, on the other nodes.
func (r *Rooms) write(room string, except []string, v any) error {
	data, err := r.encode(v)
	if err != nil {
		return err
	}
	if j, ok := r.relay.(roomJournal); ok {
		if journaled, err := j.WriteRoom(room, except, data); journaled {
			// The journal delivers to the server's sparks, on every node;
			// other members (a multiplex channel's) are this node's.
			r.deliver(room, except, data, true)
			return err
		}
	}
	r.deliver(room, except, data, false)
	var err2 error
	switch {
	case r.presence != nil:
		err2 = r.presence.Publish(room, topic, appendRoomMessage(nil, room, except, data))
	case r.relay != nil:
		err2 = r.relay.Publish(topic, appendRoomMessage(nil, room, except, data))
	}
	if err2 != nil {
		return fmt.Errorf("rooms: delivered on this node only: %w", err2)
	}
	return nil
}

// deliver writes data to this node's members of the room, but those in
// except, and the server's own sparks when pluginsOnly. A member that is
// slow is disconnected by its own queue limit; a member that has ended is
// skipped.
func (r *Rooms) deliver(room string, except []string, data []byte, pluginsOnly bool) {
	r.mu.RLock()
	members := r.rooms[room]
	to := make([]plugin.Spark, 0, len(members))
	for id, s := range members {
		if _, own := s.(*primus.Spark); own && pluginsOnly {
			continue
		}
		if !slices.Contains(except, id) {
			to = append(to, s)
		}
	}
	r.mu.RUnlock()
	raw := primus.Raw(data)
	for _, s := range to {
		// Outside the lock: an outgoing plugin hook may join or leave
		// rooms. An error is the member's own business (it has ended, or
		// its queue overflowed and it is being closed).
		_ = s.Write(raw)
	}
}

// members returns the ids of this node's members of the room, sorted.
func (r *Rooms) members(room string) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.rooms[room]))
	for id := range r.rooms[room] {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// receive delivers a room write from another node.
func (r *Rooms) receive(data []byte) {
	room, except, payload, ok := parseRoomMessage(data)
	if !ok {
		return
	}
	r.deliver(room, except, payload, false)
}
