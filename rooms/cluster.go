package rooms

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/cluster"
)

// ErrNotFound is returned by JoinRemote and LeaveRemote for a spark that no
// node holds.
var ErrNotFound = errors.New("rooms: spark not found")

// Presence returns the cluster's presence these rooms keep their members
// in, or nil: without a cluster, or with one whose registry keeps no room
// directory.
func (r *Rooms) Presence() *cluster.Presence { return r.presence }

// OnJoin adds f as a handler of joins: a spark of this server joined a
// room, or, with a cluster directory, a spark of any node. Handlers run one
// event at a time, in order (for each node), on a goroutine of the rooms'
// own, never in the code that made the change; they may use the rooms.
// Events before the handler was added are not replayed; but a node that
// joins a cluster hears of the other nodes' members as it learns of them,
// as joins.
func (r *Rooms) OnJoin(f func(Event)) { r.events.add(true, f) }

// OnLeave adds f as a handler of leaves, as OnJoin: a spark left a room,
// ended, or, with a cluster directory, left with its node (Event.NodeGone:
// the node closed, or died and its records expired, within
// cluster.Options.Expiry plus a third of it).
func (r *Rooms) OnLeave(f func(Event)) { r.events.add(false, f) }

// MembersAll returns the ids of the room's members on every node of the
// cluster, sorted. With a cluster it asks the cluster's directory, within
// ctx and cluster.Options.Timeout, and returns its error when the
// directory cannot be reached; this node's own changes are in the answer,
// the other nodes' within milliseconds of theirs, and the members of a
// node that died leave it within cluster.Options.Expiry. Without a cluster
// it is Room(room).Members(); with a relay that keeps no directory it
// returns cluster.ErrNoDirectory.
func (r *Rooms) MembersAll(ctx context.Context, room string) ([]string, error) {
	if err := r.canAskAll(ctx); err != nil {
		return nil, err
	}
	if r.presence != nil {
		return r.presence.MembersAll(ctx, room)
	}
	return r.members(room), nil
}

// CountAll returns the number of the room's members on every node, as
// MembersAll does.
func (r *Rooms) CountAll(ctx context.Context, room string) (int, error) {
	if err := r.canAskAll(ctx); err != nil {
		return 0, err
	}
	if r.presence != nil {
		return r.presence.CountAll(ctx, room)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.rooms[room]), nil
}

// RoomsOfAll returns the rooms of the spark with the id, sorted, on
// whichever node holds it, as MembersAll does.
func (r *Rooms) RoomsOfAll(ctx context.Context, id string) ([]string, error) {
	if err := r.canAskAll(ctx); err != nil {
		return nil, err
	}
	if r.presence != nil {
		return r.presence.RoomsOfAll(ctx, id)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := []string{}
	if m := r.of[id]; m != nil {
		for room := range m.rooms {
			out = append(out, room)
		}
	}
	slices.Sort(out)
	return out, nil
}

// RoomsAll returns the rooms that have members on any node, sorted, as
// MembersAll does.
func (r *Rooms) RoomsAll(ctx context.Context) ([]string, error) {
	if err := r.canAskAll(ctx); err != nil {
		return nil, err
	}
	if r.presence != nil {
		return r.presence.RoomsAll(ctx)
	}
	return r.Rooms(), nil
}

func (r *Rooms) canAskAll(ctx context.Context) error {
	if r.presence == nil && r.relay != nil {
		return fmt.Errorf("rooms: cannot answer for the cluster: %w", cluster.ErrNoDirectory)
	}
	return ctx.Err()
}

// JoinRemote makes the spark with the id join the room, on whichever node
// of the cluster holds it: at once for a spark of this server; otherwise
// the registry is asked for its node, and the node for the join, within
// ctx and cluster.Options.Timeout. It returns ErrNotFound when no node
// holds a spark with the id (one that connected a moment ago may not be
// registered yet), and cluster.ErrNoDirectory for a spark of another node
// when the relay keeps no directory. Only a server's own sparks
// (*primus.Spark) can be found by id.
func (r *Rooms) JoinRemote(ctx context.Context, id, room string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if sp, ok := r.srv.Spark(id); ok {
		return r.Join(sp, room)
	}
	return r.remote(ctx, id, room, true)
}

// LeaveRemote takes the spark with the id out of the room, on whichever
// node holds it, as JoinRemote does. Leaving a room it is not in is not an
// error.
func (r *Rooms) LeaveRemote(ctx context.Context, id, room string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := (presenceHandler{r}).LeaveByID(id, room); !errors.Is(err, cluster.ErrNotFound) {
		return err
	}
	return r.remote(ctx, id, room, false)
}

func (r *Rooms) remote(ctx context.Context, id, room string, join bool) error {
	switch {
	case r.presence != nil:
	case r.relay != nil:
		return fmt.Errorf("rooms: spark %s is not on this node: %w", id, cluster.ErrNoDirectory)
	default:
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	var err error
	if join {
		err = r.presence.JoinRemote(ctx, id, room)
	} else {
		err = r.presence.LeaveRemote(ctx, id, room)
	}
	if errors.Is(err, cluster.ErrNotFound) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

// presenceHandler is the rooms' side of the cluster's presence.
type presenceHandler struct{ r *Rooms }

func (h presenceHandler) MemberEvent(ev cluster.MemberEvent) {
	h.r.events.emit(Event{Room: ev.Room, Spark: ev.Spark, Node: ev.Node, NodeGone: ev.NodeGone}, ev.Join)
}

func (h presenceHandler) JoinByID(id, room string) error {
	sp, ok := h.r.srv.Spark(id)
	if !ok {
		return cluster.ErrNotFound
	}
	if err := h.r.Join(sp, room); errors.Is(err, primus.ErrClosed) {
		return cluster.ErrNotFound
	} else if err != nil {
		return err
	}
	return nil
}

func (h presenceHandler) LeaveByID(id, room string) error {
	if h.r.leave(id, room) {
		return nil
	}
	if _, ok := h.r.srv.Spark(id); ok {
		return nil // not in the room
	}
	h.r.mu.RLock()
	_, member := h.r.of[id]
	h.r.mu.RUnlock()
	if member {
		return nil // a spark of a plugin (a multiplex channel), not in the room
	}
	return cluster.ErrNotFound
}
