package emitter

import (
	"context"
	"sync"

	"github.com/go-primus/primus/internal/pluginkit"
	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/plugin"
)

// Emitter is the server side of the plugin. Create it with New, pass it in
// primus.Options.Plugins (or in a multiplex channel's plugins, for events on
// that channel) and register handlers with On before the server accepts
// connections.
//
// All methods are safe for concurrent use. Handlers run in the reading
// goroutine of the connection the event came in on, one at a time and in
// order, like data handlers: a handler must not wait for an acknowledgement
// from its own connection with SendAck (the acknowledgement would be read
// by the goroutine that waits); use SendAckFunc there.
type Emitter struct {
	core

	mu    sync.Mutex
	host  plugin.ServerHost
	conns sync.Map // plugin.Spark → *endpoint
}

var _ plugin.ServerPlugin = (*Emitter)(nil)

// New returns the server side of the emitter plugin.
func New(opts *Options) *Emitter {
	return &Emitter{core: newCore(opts)}
}

// Name is "emitter".
func (e *Emitter) Name() string { return "emitter" }

// SetupServer installs the plugin's hooks; the core calls it.
func (e *Emitter) SetupServer(h plugin.ServerHost) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.host != nil {
		return ErrBound
	}
	e.host = h
	e.codec = pluginkit.NewCodec(h.Parser())
	e.log = h.Logger()
	h.Install(plugin.ServerHooks{
		Connection: func(s plugin.Spark) { e.conns.Store(s, newEndpoint(s, s.Write)) },
		Incoming: func(s plugin.Spark, m *parser.Message) (bool, error) {
			ep := e.endpoint(s)
			if ep == nil {
				return true, nil
			}
			return e.incoming(ep, s, m), nil
		},
		Close: func(s plugin.Spark, _ error) {
			if ep, ok := e.conns.LoadAndDelete(s); ok {
				ep.(*endpoint).failAll(true)
			}
		},
	})
	return nil
}

func (e *Emitter) endpoint(s plugin.Spark) *endpoint {
	if ep, ok := e.conns.Load(s); ok {
		return ep.(*endpoint)
	}
	return nil
}

// On adds a handler for the event. Handlers of one event run in the order
// they were added and share its Event (the first Ack answers). On panics for
// a reserved name (see ErrReserved), which no peer could deliver.
func (e *Emitter) On(event string, h func(*Event)) { e.on(event, h) }

// Send sends the event with its arguments to one connection, without
// asking for an acknowledgement. An argument that is a parser.Raw (such as
// a received argument's Raw()) is sent as it is.
func (e *Emitter) Send(s plugin.Spark, event string, args ...any) error {
	if err := e.ready(); err != nil {
		return err
	}
	pk, err := e.eventPacket(event, args, 0)
	if err != nil {
		return err
	}
	return s.Write(pk)
}

// SendAck sends the event to one connection and waits for its
// acknowledgement, whose arguments it returns. The wait ends early with
// ctx's error, with ErrAckTimeout after Options.AckTimeout, or with
// ErrDisconnected when the connection ends first.
func (e *Emitter) SendAck(ctx context.Context, s plugin.Spark, event string, args ...any) (Args, error) {
	if err := e.ready(); err != nil {
		return nil, err
	}
	ep := e.endpoint(s)
	if ep == nil {
		return nil, ErrDisconnected
	}
	return e.sendAck(ctx, ep, event, args)
}

// SendAckFunc is SendAck without the wait: f runs once with the
// acknowledgement's arguments or the error that ended the wait (ctx's,
// ErrAckTimeout, ErrDisconnected, or the write's), unless SendAckFunc
// itself returns an error. f runs in the goroutine that reads the
// acknowledgement, or of the timer, and must not block. Wherever it runs, a
// panic in f ends the connection as a panic in a handler does (status 1011,
// a *primus.PanicError), and the server goes on.
func (e *Emitter) SendAckFunc(ctx context.Context, s plugin.Spark, event string, f func(reply Args, err error), args ...any) error {
	if err := e.ready(); err != nil {
		return err
	}
	ep := e.endpoint(s)
	if ep == nil {
		return ErrDisconnected
	}
	return e.sendAckFunc(ctx, ep, event, f, args)
}

// Pending returns the number of acknowledgements the emitter waits for on
// the connection s (at most Options.MaxPendingAcks).
func (e *Emitter) Pending(s plugin.Spark) int {
	if ep := e.endpoint(s); ep != nil {
		return ep.count()
	}
	return 0
}

// Broadcast sends the event to every connection of the server (of the
// channel, for an emitter on a multiplex channel); the packet is encoded
// once. Broadcasts cannot ask for acknowledgements.
func (e *Emitter) Broadcast(event string, args ...any) error {
	if err := e.ready(); err != nil {
		return err
	}
	pk, err := e.eventPacket(event, args, 0)
	if err != nil {
		return err
	}
	return e.host.Write(pk)
}

func (e *Emitter) ready() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.host == nil {
		return ErrUnbound
	}
	return nil
}
