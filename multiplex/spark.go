package multiplex

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"

	"github.com/go-primus/primus/internal/pluginkit"
	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/plugin"
)

// Spark is one subscription to a channel on the server: a client's channel
// instance over one connection. It implements plugin.Spark, so that plugins
// used inside the channel (Channel.Use) treat it as a connection.
//
// Its methods are safe for concurrent use. Data handlers run one at a time,
// in order, in the reading goroutine of its connection.
type Spark struct {
	ch     *Channel
	conn   *conn
	key    subKey
	wireID any
	id     string
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	ended bool

	onData pluginkit.Handlers[func(*parser.Message)]
	onEnd  pluginkit.Handlers[func(error)]
}

var (
	_ plugin.Spark        = (*Spark)(nil)
	_ plugin.PanicHandler = (*Spark)(nil)
)

// ID is unique on the server: the connection's id, the subscription's id
// chosen by the client, and the channel's name, joined by colons (the npm
// plugin's form).
func (cs *Spark) ID() string { return cs.id }

// WireID is the id the client chose for the subscription.
func (cs *Spark) WireID() string { return cs.key.id }

// Channel returns the subscription's channel.
func (cs *Spark) Channel() *Channel { return cs.ch }

// Conn returns the connection the subscription lives on (a *primus.Spark).
func (cs *Spark) Conn() plugin.Spark { return cs.conn.spark }

// Query is the connection's handshake query.
func (cs *Spark) Query() url.Values { return cs.conn.spark.Query() }

// Header is the connection's handshake header.
func (cs *Spark) Header() http.Header { return cs.conn.spark.Header() }

// Context is cancelled when the subscription ends; it carries the values of
// the connection's context.
func (cs *Spark) Context() context.Context { return cs.ctx }

// Done is closed when the subscription has ended and its handlers have run.
func (cs *Spark) Done() <-chan struct{} { return cs.done }

// OnData adds a handler for the messages the client writes to its channel.
func (cs *Spark) OnData(f func(*parser.Message)) { cs.onData.Add(f) }

// OnEnd adds a handler run once when the subscription ends: reason is nil
// when either side unsubscribed, and wraps ErrDisconnected when the
// connection ended.
func (cs *Spark) OnEnd(f func(reason error)) { cs.onEnd.Add(f) }

// Write sends v to the client's channel instance, as [0, id, channel, v]:
// the payload is always sent, falsy or not. A parser.Raw is sent as it is.
// It returns ErrClosed after the subscription ended.
func (cs *Spark) Write(v any) error {
	cs.mu.Lock()
	ended := cs.ended
	cs.mu.Unlock()
	if ended {
		return ErrClosed
	}
	for _, h := range cs.ch.getHooks() {
		if h.Outgoing == nil {
			continue
		}
		out, pass, err := h.Outgoing(cs, v)
		if err != nil {
			return fmt.Errorf("multiplex: outgoing transform: %w", err)
		}
		if !pass {
			return nil
		}
		v = out
	}
	payload, err := cs.ch.mx.codec.Embed(v)
	if err != nil {
		return fmt.Errorf("multiplex: failed to encode for channel %q: %w", cs.ch.name, err)
	}
	return cs.conn.spark.Write(message(cs.wireID, cs.ch.name, payload))
}

// End unsubscribes: the client's channel instance ends (one UNSUBSCRIBE is
// sent), then the subscription's handlers run. The connection stays open.
func (cs *Spark) End() error {
	if !cs.end(nil, true) {
		return ErrClosed
	}
	return nil
}

// Close is End: a channel has no reconnection of its own.
func (cs *Spark) Close() error { return cs.End() }

// receive delivers a message from the client.
func (cs *Spark) receive(m *parser.Message) {
	for _, h := range cs.ch.getHooks() {
		if h.Incoming == nil {
			continue
		}
		pass, err := h.Incoming(cs, m)
		if err != nil {
			cs.ch.mx.log.Debug("multiplex: incoming transform", "channel", cs.ch.name, "error", err)
			return
		}
		if !pass {
			return
		}
	}
	for _, f := range cs.onData.Get() {
		f(m)
	}
}

// end ends the subscription once, telling the client when notify is set,
// and reports whether this call ended it.
func (cs *Spark) end(reason error, notify bool) bool {
	cs.mu.Lock()
	if cs.ended {
		cs.mu.Unlock()
		return false
	}
	cs.ended = true
	cs.mu.Unlock()
	if notify {
		_ = cs.conn.spark.Write(control(typeUnsubscribe, cs.wireID, cs.ch.name))
	}
	cs.conn.remove(cs.key, cs)
	cs.ch.mu.Lock()
	if cs.ch.sparks[cs.id] == cs {
		delete(cs.ch.sparks, cs.id)
	}
	cs.ch.mu.Unlock()
	cs.cancel()
	// Every handler runs, and done is closed, even when one panics: the
	// panic ends the connection (see HandlePanic), and the plugins inside
	// the channel still learn that the subscription ended.
	defer close(cs.done)
	for _, f := range cs.onEnd.Get() {
		cs.call(func() { f(reason) })
	}
	for _, h := range cs.ch.getHooks() {
		if h.Close != nil {
			cs.call(func() { h.Close(cs, reason) })
		}
	}
	for _, f := range cs.ch.onDisconnection.Get() {
		cs.call(func() { f(cs) })
	}
	return true
}

// call runs a handler of the subscription under plugin.Recover.
func (cs *Spark) call(f func()) {
	defer plugin.Recover(cs)
	f()
}

// HandlePanic ends the subscription's connection because code run for the
// subscription panicked, as a panic in the connection's own handlers does
// (status 1011, a *primus.PanicError): a plugin set up inside the channel
// that calls plugin.Recover with the subscription reaches the core this
// way. When the connection has no panic handler, the panic goes on.
func (cs *Spark) HandlePanic(v any, stack []byte) {
	ph, ok := cs.conn.spark.(plugin.PanicHandler)
	if !ok {
		panic(v)
	}
	ph.HandlePanic(v, stack)
}
