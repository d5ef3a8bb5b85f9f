package rooms

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/go-primus/primus/emitter"
	"github.com/go-primus/primus/plugin"
)

// Room is a handle on one room, for writing to its members. The zero Room
// is not usable; get one from Rooms.Room.
type Room struct {
	r      *Rooms
	name   string
	except []string
}

// Name returns the room's name.
func (rm Room) Name() string { return rm.name }

// Except returns the room without the sparks with these ids: writes through
// it skip them (on every node). The usual use is the sender of a message:
// room.Except(spark.ID()).Write(msg).
func (rm Room) Except(ids ...string) Room {
	rm.except = append(rm.except[:len(rm.except):len(rm.except)], ids...)
	return rm
}

// Write sends v to every member of the room. v is encoded once, and the
// same bytes are queued for every member; with a relay they also go to the
// other nodes, which deliver them without encoding again. A write to a room
// without members does nothing. It returns an encoding error, or the
// relay's error (ErrQueueFull, say) when the members on this node got the
// message and the others did not.
func (rm Room) Write(v any) error { return rm.r.write(rm.name, rm.except, v) }

// Send sends an emitter event to every member of the room, on every node
// with a relay; the packet is encoded once. em must be the server's emitter
// plugin. Events to a room cannot ask for acknowledgements.
func (rm Room) Send(em *emitter.Emitter, event string, args ...any) error {
	return em.Send(roomTarget{rm}, event, args...)
}

// Members returns the ids of the room's members on this node, sorted.
func (rm Room) Members() []string { return rm.r.members(rm.name) }

// roomTarget lets the emitter address a room: Emitter.Send builds its
// packet and writes it to the spark it is given, which here writes it to
// the room. Nothing else of the spark is used.
type roomTarget struct{ rm Room }

var errNotSpark = errors.New("rooms: a room is not a connection")

func (t roomTarget) ID() string               { return "room:" + t.rm.name }
func (t roomTarget) Query() url.Values        { return nil }
func (t roomTarget) Header() http.Header      { return nil }
func (t roomTarget) Context() context.Context { return context.Background() }
func (t roomTarget) Write(v any) error        { return t.rm.Write(v) }
func (t roomTarget) End() error               { return errNotSpark }
func (t roomTarget) Close() error             { return errNotSpark }

var _ plugin.Spark = roomTarget{}
