package emitter

import (
	"log/slog"
	"sync/atomic"

	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/plugin"
)

// Args are the arguments of an event or of an acknowledgement, in order,
// each a message decoded on demand (with the built-in JSON parser, the exact
// JSON text the peer sent). Write an argument on unchanged with
// args[i].Raw().
type Args []*parser.Message

// Decode decodes the arguments into the values pointed to by v, in order: a
// nil element of v skips that argument, and a target whose argument is
// missing (a JavaScript sender passes fewer arguments than expected) is left
// unchanged.
func (a Args) Decode(v ...any) error {
	for i, dst := range v {
		if dst == nil || i >= len(a) {
			continue
		}
		if err := a[i].Decode(dst); err != nil {
			return err
		}
	}
	return nil
}

// Raw returns the arguments as parser.Raw values, to send them on unchanged:
// ev.Ack(ev.Args.Raw()...) echoes an event's arguments.
func (a Args) Raw() []any {
	out := make([]any, len(a))
	for i, m := range a {
		out[i] = m.Raw()
	}
	return out
}

// Event is one event received.
//
// It may be kept after the handler returns, to acknowledge it later from
// any goroutine.
type Event struct {
	// Name is the event's name.
	Name string
	// Args are the arguments after the name.
	Args Args
	// Spark is the connection the event came in on, on a server: a
	// *primus.Spark, or a *multiplex.Spark for an emitter on a channel. It
	// is nil on a client.
	Spark plugin.Spark

	reply func(args []any) error // nil when no acknowledgement is wanted
	acked atomic.Bool
	log   *slog.Logger
}

// AckRequested reports whether the sender asked for an acknowledgement.
func (ev *Event) AckRequested() bool { return ev.reply != nil }

// Ack sends the acknowledgement with args as its arguments. It does nothing
// when none was requested, and returns ErrAcked after the first call: the
// sender's callback runs once.
func (ev *Event) Ack(args ...any) error {
	if ev.reply == nil {
		return nil
	}
	if !ev.acked.CompareAndSwap(false, true) {
		return ErrAcked
	}
	return ev.reply(args)
}

// Registrar is what the generic On registers a handler on: an *Emitter or a
// *Client.
type Registrar interface {
	On(event string, h func(*Event))
}

// On registers f for event on r, with the event's first argument decoded
// into a T (the zero T when the sender passed none). An event whose first
// argument does not decode into a T is dropped and logged at debug level.
//
//	emitter.On(em, "chat", func(ev *emitter.Event, msg ChatMessage) { … })
func On[T any](r Registrar, event string, f func(ev *Event, v T)) {
	r.On(event, func(ev *Event) {
		var v T
		if len(ev.Args) > 0 {
			if err := ev.Args[0].Decode(&v); err != nil {
				ev.log.Debug("emitter: event dropped: its argument does not decode", "event", ev.Name, "error", err)
				return
			}
		}
		f(ev, v)
	})
}

// Result decodes the first argument of an acknowledgement into an R; it
// takes SendAck's results as they are:
//
//	n, err := emitter.Result[int](em.SendAck(ctx, spark, "count"))
//
// An acknowledgement without arguments is the zero R.
func Result[R any](args Args, err error) (R, error) {
	var r R
	if err != nil {
		return r, err
	}
	if len(args) > 0 {
		err = args[0].Decode(&r)
	}
	return r, err
}
