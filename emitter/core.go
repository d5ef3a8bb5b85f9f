package emitter

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/go-primus/primus/internal/pluginkit"
	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/plugin"
)

// defaultAckTimeout is Options.AckTimeout's zero value.
const defaultAckTimeout = 30 * time.Second

// Options configure an Emitter or a Client. A nil *Options means all
// defaults.
type Options struct {
	// AckTimeout bounds the wait for an acknowledgement (SendAck,
	// SendAckFunc) when the context has no earlier deadline; the wait then
	// ends with ErrAckTimeout. Zero value means 30 s; negative means only the
	// context bounds it.
	AckTimeout time.Duration
}

// core is what the server and client sides share: handlers, encoding, and
// the dispatch of received packets.
type core struct {
	ackTimeout time.Duration

	hmu      sync.RWMutex
	handlers map[string][]func(*Event)

	// Set once at set-up.
	codec pluginkit.Codec
	log   *slog.Logger
}

func newCore(opts *Options) core {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.AckTimeout == 0 {
		o.AckTimeout = defaultAckTimeout
	}
	return core{ackTimeout: o.AckTimeout, handlers: map[string][]func(*Event){}, log: slog.New(slog.DiscardHandler)}
}

func (c *core) on(event string, h func(*Event)) {
	if h == nil {
		panic("emitter: nil handler for " + event)
	}
	if reserved(event) {
		panic(fmt.Sprintf("emitter: %q is a reserved event name; no event of that name is ever delivered", event))
	}
	c.hmu.Lock()
	defer c.hmu.Unlock()
	c.handlers[event] = append(c.handlers[event][:len(c.handlers[event]):len(c.handlers[event])], h)
}

// eventPacket builds the packet of an event; id 0 means no acknowledgement.
func (c *core) eventPacket(event string, args []any, id uint64) (eventPacket, error) {
	if reserved(event) {
		return eventPacket{}, fmt.Errorf("%w: %q", ErrReserved, event)
	}
	data := make([]any, 1, len(args)+1)
	data[0] = event
	for _, a := range args {
		e, err := c.codec.Embed(a)
		if err != nil {
			return eventPacket{}, fmt.Errorf("emitter: failed to encode an argument of %q: %w", event, err)
		}
		data = append(data, e)
	}
	return eventPacket{Type: typeEvent, Data: data, ID: id}, nil
}

// incoming handles a received message on ep and reports whether it passes
// on (not an emitter packet).
func (c *core) incoming(ep *endpoint, s plugin.Spark, m *parser.Message) bool {
	p, mine, valid := decodePacket(c.codec, m)
	if !mine {
		return true
	}
	if !valid {
		c.log.Debug("emitter: packet with a bad id dropped")
		return false
	}
	args, err := c.args(p.data)
	if err != nil {
		c.log.Debug("emitter: packet dropped", "error", err)
		return false
	}
	switch p.typ {
	case typeAck:
		if !p.hasID {
			return false
		}
		if key, ok := ackKey(p.id); ok {
			ep.resolve(key, args, nil)
		}
	case typeEvent:
		if len(args) == 0 {
			return false
		}
		name, ok := p.data[0].String()
		if !ok || reserved(name) {
			c.log.Debug("emitter: event without a valid name dropped")
			return false
		}
		ev := &Event{Name: name, Args: args[1:], Spark: s, log: c.log}
		if p.hasID {
			id := wireID(p.id)
			ev.reply = func(args []any) error {
				data, err := c.codec.EmbedAll(args)
				if err != nil {
					return fmt.Errorf("emitter: failed to encode the acknowledgement of %q: %w", name, err)
				}
				return ep.write(ackPacket{ID: id, Type: typeAck, Data: data})
			}
		}
		c.hmu.RLock()
		hs := c.handlers[name]
		c.hmu.RUnlock()
		if len(hs) == 0 {
			c.log.Debug("emitter: event without a handler dropped", "event", name)
		}
		for _, h := range hs {
			h(ev)
		}
	}
	return false
}

// args turns packet parts into messages.
func (c *core) args(parts []pluginkit.Part) (Args, error) {
	args := make(Args, len(parts))
	for i, pt := range parts {
		m, err := pt.Message()
		if err != nil {
			return nil, err
		}
		args[i] = m
	}
	return args, nil
}

// sendAckFunc sends an event that wants an acknowledgement on ep. f runs
// once with the outcome unless an error is returned.
func (c *core) sendAckFunc(ctx context.Context, ep *endpoint, event string, f func(Args, error), args []any) error {
	if f == nil {
		panic("emitter: SendAckFunc with a nil callback")
	}
	if reserved(event) {
		return fmt.Errorf("%w: %q", ErrReserved, event)
	}
	id, ok := ep.register(f)
	if !ok {
		return ErrDisconnected
	}
	cancel := context.CancelFunc(func() {})
	if c.ackTimeout > 0 {
		ctx, cancel = context.WithTimeoutCause(ctx, c.ackTimeout, ErrAckTimeout)
	}
	stop := context.AfterFunc(ctx, func() { ep.resolve(id, nil, context.Cause(ctx)) })
	ep.arm(id, func() {
		stop()
		cancel()
	})
	pk, err := c.eventPacket(event, args, id)
	if err == nil {
		err = ep.write(pk)
	}
	if err != nil {
		ep.resolve(id, nil, err)
	}
	return nil
}

// sendAck is the blocking form of sendAckFunc.
func (c *core) sendAck(ctx context.Context, ep *endpoint, event string, args []any) (Args, error) {
	type result struct {
		args Args
		err  error
	}
	done := make(chan result, 1)
	if err := c.sendAckFunc(ctx, ep, event, func(a Args, err error) { done <- result{a, err} }, args); err != nil {
		return nil, err
	}
	r := <-done
	return r.args, r.err
}

// endpoint is one connection's side of the acknowledgements: the counter of
// the ids it sends and the callbacks waiting for their answer.
type endpoint struct {
	write func(v any) error

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]*pendingAck
	closed  bool
}

type pendingAck struct {
	f       func(Args, error)
	release func() // stops the timer; nil until armed
}

func newEndpoint(write func(v any) error) *endpoint {
	return &endpoint{write: write, pending: map[uint64]*pendingAck{}}
}

// register reserves the next id for f.
func (ep *endpoint) register(f func(Args, error)) (uint64, bool) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.closed {
		return 0, false
	}
	ep.nextID++
	ep.pending[ep.nextID] = &pendingAck{f: f}
	return ep.nextID, true
}

// arm attaches the release of id's timer, or releases it at once when id
// was already resolved.
func (ep *endpoint) arm(id uint64, release func()) {
	ep.mu.Lock()
	p := ep.pending[id]
	if p != nil {
		p.release = release
	}
	ep.mu.Unlock()
	if p == nil {
		release()
	}
}

// resolve runs id's callback, once.
func (ep *endpoint) resolve(id uint64, args Args, err error) {
	ep.mu.Lock()
	p := ep.pending[id]
	delete(ep.pending, id)
	ep.mu.Unlock()
	if p == nil {
		return
	}
	if p.release != nil {
		p.release()
	}
	p.f(args, err)
}

// failAll ends every wait with ErrDisconnected; closed refuses new ones.
func (ep *endpoint) failAll(closed bool) {
	ep.mu.Lock()
	pending := ep.pending
	ep.pending = map[uint64]*pendingAck{}
	ep.closed = ep.closed || closed
	ep.mu.Unlock()
	for _, p := range pending {
		if p.release != nil {
			p.release()
		}
		p.f(nil, ErrDisconnected)
	}
}
