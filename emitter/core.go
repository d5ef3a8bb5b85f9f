package emitter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
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
	// MaxPendingAcks bounds the acknowledgements one connection (a spark on
	// the server, the client on a Go client) waits for at once. Each wait
	// holds its callback, a timer and an entry (about 250 bytes, plus what
	// the callback keeps) until the answer or the timeout, so a peer that
	// never answers, fed events by a handler, would otherwise grow the
	// server's memory without end. Over the bound SendAck and SendAckFunc
	// send nothing and return ErrTooManyPending at once. Zero value means
	// 1024: far above what answered traffic keeps in flight (that is its
	// rate times the round trip: 1024 is 10,000 events a second at 100 ms),
	// and at most a few hundred KiB per connection. Negative means no bound.
	MaxPendingAcks int
}

// defaultMaxPendingAcks is Options.MaxPendingAcks' zero value.
const defaultMaxPendingAcks = 1024

// core is what the server and client sides share: handlers, encoding, and
// the dispatch of received packets.
type core struct {
	ackTimeout time.Duration
	maxPending int // ≤ 0: no bound

	hmu      sync.RWMutex
	handlers map[string][]func(*Event)

	// Set once at set-up.
	codec pluginkit.Codec
	log   *slog.Logger

	acks *ackStats
}

// ackStats count the acknowledgement waits of every connection.
type ackStats struct {
	pending  atomic.Int64
	timedOut atomic.Uint64
}

// Stats are the counters of an Emitter (all its connections) or a Client.
type Stats struct {
	// PendingAcks is the number of acknowledgements waited for now.
	PendingAcks int64
	// AckTimeouts counts the waits that ended with ErrAckTimeout.
	AckTimeouts uint64
}

// Stats returns the counters, for metrics.
func (c *core) Stats() Stats {
	return Stats{PendingAcks: c.acks.pending.Load(), AckTimeouts: c.acks.timedOut.Load()}
}

func newCore(opts *Options) core {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.AckTimeout == 0 {
		o.AckTimeout = defaultAckTimeout
	}
	if o.MaxPendingAcks == 0 {
		o.MaxPendingAcks = defaultMaxPendingAcks
	}
	return core{ackTimeout: o.AckTimeout, maxPending: o.MaxPendingAcks, handlers: map[string][]func(*Event){}, log: slog.New(slog.DiscardHandler), acks: &ackStats{}}
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
	pk, err := c.eventPacket(event, args, 0)
	if err != nil {
		return err
	}
	// f runs once, whatever ends the wait: that is where the wait stops
	// being counted.
	done := func(a Args, err error) {
		c.acks.pending.Add(-1)
		if errors.Is(err, ErrAckTimeout) {
			c.acks.timedOut.Add(1)
		}
		f(a, err)
	}
	c.acks.pending.Add(1)
	id, err := ep.register(done, c.maxPending)
	if err != nil {
		c.acks.pending.Add(-1)
		return err
	}
	pk.ID = id
	// The wait ends with the acknowledgement, ctx's end or the timeout,
	// whichever comes first. The last two run f in a goroutine of their own,
	// where only plugin.Recover stands between a panic in f and the process.
	var timer *time.Timer
	if d := c.ackTimeout; d > 0 {
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > d {
			timer = time.AfterFunc(d, func() { ep.resolveAsync(id, ErrAckTimeout) })
		}
	}
	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { ep.resolveAsync(id, context.Cause(ctx)) })
	}
	ep.arm(id, timer, stop)
	if err := ep.write(pk); err != nil {
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
	conn  any // the plugin.Spark or plugin.Client, for plugin.Recover
	write func(v any) error

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]pendingAck
	closed  bool
}

// pendingAck is one wait, kept by value: the map entry, the callback and
// its timer are all it costs.
type pendingAck struct {
	f     func(Args, error)
	timer *time.Timer // the timeout; nil without one, or until armed
	stop  func() bool // unregisters from the context; nil likewise
}

// release stops the wait's timer and context registration.
func (p pendingAck) release() {
	if p.timer != nil {
		p.timer.Stop()
	}
	if p.stop != nil {
		p.stop()
	}
}

func newEndpoint(conn any, write func(v any) error) *endpoint {
	return &endpoint{conn: conn, write: write, pending: map[uint64]pendingAck{}}
}

// register reserves the next id for f, unless max waits are pending
// already (max ≤ 0: no bound).
func (ep *endpoint) register(f func(Args, error), max int) (uint64, error) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.closed {
		return 0, ErrDisconnected
	}
	if max > 0 && len(ep.pending) >= max {
		return 0, fmt.Errorf("%w (%d)", ErrTooManyPending, max)
	}
	ep.nextID++
	ep.pending[ep.nextID] = pendingAck{f: f}
	return ep.nextID, nil
}

// arm attaches id's timer and context registration, or releases them at
// once when id was already resolved.
func (ep *endpoint) arm(id uint64, timer *time.Timer, stop func() bool) {
	ep.mu.Lock()
	p, ok := ep.pending[id]
	if ok {
		p.timer, p.stop = timer, stop
		ep.pending[id] = p
	}
	ep.mu.Unlock()
	if !ok {
		pendingAck{timer: timer, stop: stop}.release()
	}
}

// count returns the number of pending waits.
func (ep *endpoint) count() int {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return len(ep.pending)
}

// resolve runs id's callback, once.
func (ep *endpoint) resolve(id uint64, args Args, err error) {
	ep.mu.Lock()
	p, ok := ep.pending[id]
	delete(ep.pending, id)
	ep.mu.Unlock()
	if !ok {
		return
	}
	p.release()
	p.f(args, err)
}

// resolveAsync is resolve for the timer's and the context's goroutines: a
// panic in the callback ends the connection, not the process.
func (ep *endpoint) resolveAsync(id uint64, err error) {
	defer plugin.Recover(ep.conn)
	ep.resolve(id, nil, err)
}

// failAll ends every wait with ErrDisconnected; closed refuses new ones.
// Each callback runs under recovery of its own, so that one that panics
// does not leave the others (and their SendAck callers) waiting for ever.
func (ep *endpoint) failAll(closed bool) {
	ep.mu.Lock()
	pending := ep.pending
	ep.pending = map[uint64]pendingAck{}
	ep.closed = ep.closed || closed
	ep.mu.Unlock()
	for _, p := range pending {
		p.release()
		func() {
			defer plugin.Recover(ep.conn)
			p.f(nil, ErrDisconnected)
		}()
	}
}
