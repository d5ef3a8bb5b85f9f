package rooms

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
)

// Event is a spark joining or leaving a room.
type Event struct {
	// Room is the room's name.
	Room string
	// Spark is the spark's id.
	Spark string
	// Node is the id of the cluster node that holds the spark; "" without
	// a cluster.
	Node string
	// NodeGone marks, in a leave, a spark that left with its node: the
	// node closed, or died and its records expired, with the spark still
	// in the room.
	NodeGone bool
}

// maxQueuedEvents bounds the events waiting for the handlers; past it
// events are dropped, and logged.
const maxQueuedEvents = 1 << 16

// events runs the join and leave handlers, one event at a time, in order,
// on a goroutine of their own that lives while there are events to deliver:
// membership changes (made under the rooms' lock, or in the cluster's
// delivery goroutine) only queue them.
type events struct {
	log *slog.Logger

	mu      sync.Mutex
	onJoin  []func(Event)
	onLeave []func(Event)
	queue   []queuedEvent
	running bool
	dropped int
}

type queuedEvent struct {
	ev   Event
	join bool
}

func (e *events) add(join bool, f func(Event)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if join {
		e.onJoin = append(e.onJoin[:len(e.onJoin):len(e.onJoin)], f)
	} else {
		e.onLeave = append(e.onLeave[:len(e.onLeave):len(e.onLeave)], f)
	}
}

// emit queues ev for the handlers, if there are any.
func (e *events) emit(ev Event, join bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if (join && len(e.onJoin) == 0) || (!join && len(e.onLeave) == 0) {
		return
	}
	if len(e.queue) >= maxQueuedEvents {
		if e.dropped++; e.dropped == 1 {
			e.log.Warn("rooms: membership events dropped: the OnJoin/OnLeave handlers are slower than the changes")
		}
		return
	}
	e.queue = append(e.queue, queuedEvent{ev, join})
	if !e.running {
		e.running = true
		go e.run()
	}
}

func (e *events) run() {
	for {
		e.mu.Lock()
		batch := e.queue
		e.queue = nil
		if len(batch) == 0 {
			e.running = false
			if e.dropped > 0 {
				e.log.Warn("rooms: membership events were dropped", "count", e.dropped)
				e.dropped = 0
			}
			e.mu.Unlock()
			return
		}
		onJoin, onLeave := e.onJoin, e.onLeave
		e.mu.Unlock()
		for _, q := range batch {
			hs := onLeave
			if q.join {
				hs = onJoin
			}
			for _, f := range hs {
				e.call(f, q.ev)
			}
		}
	}
}

// call runs a handler; a panic is logged, and the next handlers run.
func (e *events) call(f func(Event), ev Event) {
	defer func() {
		if v := recover(); v != nil {
			e.log.Error("rooms: panic in a membership event handler", "panic", fmt.Sprint(v), "room", ev.Room, "spark", ev.Spark, "stack", string(debug.Stack()))
		}
	}()
	f(ev)
}
