package multiplex

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/go-primus/primus/internal/pluginkit"
	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/plugin"
)

// ClientChannel is one channel instance on a Go client. It implements
// plugin.Client, so that plugins set up inside it (ChannelOptions.Plugins)
// write over the channel.
//
// Its methods are safe for concurrent use.
type ClientChannel struct {
	mx     *Client
	name   string
	id     string
	seq    uint64
	client plugin.Client
	codec  pluginkit.Codec
	done   chan struct{}

	hooks  []plugin.ClientHooks // installed at creation, read-only after
	onData pluginkit.Handlers[func(*parser.Message)]
	onEnd  pluginkit.Handlers[func(error)]

	mu    sync.Mutex
	ended bool
}

var (
	_ plugin.Client       = (*ClientChannel)(nil)
	_ plugin.PanicHandler = (*ClientChannel)(nil)
)

// Name returns the channel's name.
func (ch *ClientChannel) Name() string { return ch.name }

// ID returns the instance's id, sent with each of its packets.
func (ch *ClientChannel) ID() string { return ch.id }

// Done is closed when the channel has ended and its handlers have run.
func (ch *ClientChannel) Done() <-chan struct{} { return ch.done }

// OnData adds a handler for the server's messages; prefer
// ChannelOptions.OnData, which no message can precede.
func (ch *ClientChannel) OnData(f func(*parser.Message)) { ch.onData.Add(f) }

// OnEnd adds a handler run once when the channel ends; see
// ChannelOptions.OnEnd.
func (ch *ClientChannel) OnEnd(f func(reason error)) { ch.onEnd.Add(f) }

// Write sends v over the channel, as [0, id, name, v]: the payload is always
// sent, falsy or not. A parser.Raw is sent as it is. Like the client's Write,
// it queues while offline; it returns ErrClosed after the channel ended.
func (ch *ClientChannel) Write(v any) error { return ch.writeVia(ch.client, v) }

func (ch *ClientChannel) writeVia(w plugin.Client, v any) error {
	ch.mu.Lock()
	ended := ch.ended
	ch.mu.Unlock()
	if ended {
		return ErrClosed
	}
	for _, h := range ch.hooks {
		if h.Outgoing == nil {
			continue
		}
		out, pass, err := h.Outgoing(ch, v)
		if err != nil {
			return fmt.Errorf("multiplex: outgoing transform: %w", err)
		}
		if !pass {
			return nil
		}
		v = out
	}
	payload, err := ch.codec.Embed(v)
	if err != nil {
		return fmt.Errorf("multiplex: failed to encode for channel %q: %w", ch.name, err)
	}
	return w.Write(message(ch.id, ch.name, payload))
}

// End unsubscribes (one UNSUBSCRIBE is sent) and ends the channel.
func (ch *ClientChannel) End() error {
	if !ch.end(nil, true) {
		return ErrClosed
	}
	return nil
}

// subscribe sends SUBSCRIBE with w and tells the channel's plugins that the
// channel is open.
func (ch *ClientChannel) subscribe(w plugin.Client) error {
	if err := w.Write(control(typeSubscribe, ch.id, ch.name)); err != nil {
		return err
	}
	ow := &channelWriter{ch: ch, w: w}
	for _, h := range ch.hooks {
		if h.Open != nil {
			h.Open(ow)
		}
	}
	ow.done.Store(true)
	return nil
}

// receive delivers a message from the server.
func (ch *ClientChannel) receive(m *parser.Message) {
	for _, h := range ch.hooks {
		if h.Incoming == nil {
			continue
		}
		pass, err := h.Incoming(ch, m)
		if err != nil {
			ch.mx.log.Debug("multiplex: incoming transform", "channel", ch.name, "error", err)
			return
		}
		if !pass {
			return
		}
	}
	for _, f := range ch.onData.Get() {
		f(m)
	}
}

// closed tells the channel's plugins that the connection closed; the
// channel ends with it when the client will not reconnect.
func (ch *ClientChannel) closed(reason error, reconnecting bool) {
	if reconnecting {
		for _, h := range ch.hooks {
			if h.Close != nil {
				ch.call(func() { h.Close(ch, reason, true) })
			}
		}
		return
	}
	why := ErrDisconnected
	if reason != nil {
		why = fmt.Errorf("%w: %w", ErrDisconnected, reason)
	}
	ch.end(why, false)
}

// end ends the channel once, sending UNSUBSCRIBE when notify is set, and
// reports whether this call ended it.
func (ch *ClientChannel) end(reason error, notify bool) bool {
	ch.mu.Lock()
	if ch.ended {
		ch.mu.Unlock()
		return false
	}
	ch.ended = true
	ch.mu.Unlock()
	ch.mx.forget(ch)
	if notify {
		_ = ch.client.Write(control(typeUnsubscribe, ch.id, ch.name))
	}
	// Every handler runs, and done is closed, even when one panics: the
	// panic ends the client (see HandlePanic).
	defer close(ch.done)
	for _, h := range ch.hooks {
		if h.Close != nil {
			ch.call(func() { h.Close(ch, reason, false) })
		}
	}
	for _, f := range ch.onEnd.Get() {
		ch.call(func() { f(reason) })
	}
	return true
}

// call runs a handler of the channel under plugin.Recover.
func (ch *ClientChannel) call(f func()) {
	defer plugin.Recover(ch)
	f()
}

// HandlePanic ends the client because code run for the channel panicked, as
// a panic in the client's own handlers does (a *primus.PanicError): a
// plugin set up inside the channel that calls plugin.Recover with the
// channel reaches the core this way. When the client has no panic handler,
// the panic goes on.
func (ch *ClientChannel) HandlePanic(v any, stack []byte) {
	ph, ok := ch.client.(plugin.PanicHandler)
	if !ok {
		panic(v)
	}
	ph.HandlePanic(v, stack)
}

// channelWriter is the plugin.Client that the Open hooks of a channel's
// plugins get: during the hook it writes the way the subscription was
// written (ahead of the offline queue on a reconnection), then like the
// channel.
type channelWriter struct {
	ch   *ClientChannel
	w    plugin.Client
	done atomic.Bool
}

func (cw *channelWriter) Write(v any) error {
	if cw.done.Load() {
		return cw.ch.Write(v)
	}
	return cw.ch.writeVia(cw.w, v)
}

// clientChannelHost is what plugins set up inside a client channel see.
type clientChannelHost struct{ ch *ClientChannel }

func (h *clientChannelHost) Install(hooks plugin.ClientHooks) {
	h.ch.hooks = append(h.ch.hooks, hooks)
}
func (h *clientChannelHost) Parser() parser.Parser { return h.ch.codec.Parser() }
func (h *clientChannelHost) Logger() *slog.Logger  { return h.ch.mx.log }
func (h *clientChannelHost) Client() plugin.Client { return h.ch }
