package multiplex

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/go-primus/primus/internal/pluginkit"
	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/plugin"
)

// Channel is one named channel on the server: its connection and
// disconnection handlers, its subscriptions, and the plugins that run inside
// it.
//
// All methods are safe for concurrent use.
type Channel struct {
	mx   *Multiplex
	name string

	hooks       atomic.Pointer[[]plugin.ServerHooks]
	hasOutgoing atomic.Bool
	hookMu      sync.Mutex
	plugins     map[string]bool

	onConnection    pluginkit.Handlers[func(*Spark)]
	onDisconnection pluginkit.Handlers[func(*Spark)]

	mu     sync.Mutex
	sparks map[string]*Spark // by ID
}

func newChannel(mx *Multiplex, name string) *Channel {
	return &Channel{mx: mx, name: name, plugins: map[string]bool{}, sparks: map[string]*Spark{}}
}

// Name returns the channel's name.
func (ch *Channel) Name() string { return ch.name }

// OnConnection adds a handler run for each new subscription, in the reading
// goroutine of its connection, before any of its messages is read: set the
// subscription's handlers there.
func (ch *Channel) OnConnection(f func(*Spark)) { ch.onConnection.Add(f) }

// OnDisconnection adds a handler run once for each subscription that has
// ended, after its own end handlers.
func (ch *Channel) OnDisconnection(f func(*Spark)) { ch.onDisconnection.Add(f) }

// Write writes v to every subscription of the channel; see Spark.Write.
// Subscriptions that end meanwhile are skipped.
func (ch *Channel) Write(v any) error {
	var first error
	if _, raw := v.(parser.Raw); !raw && !ch.hasOutgoing.Load() && ch.Count() > 1 {
		// Without outgoing hooks the payload is the same for everyone:
		// encode it once.
		if p := ch.mx.parser(); p != nil {
			b, err := p.Encode(v)
			if err != nil {
				return fmt.Errorf("multiplex: failed to encode for channel %q: %w", ch.name, err)
			}
			v = parser.Raw(b)
		}
	}
	ch.ForEach(func(cs *Spark) bool {
		if err := cs.Write(v); err != nil && first == nil && !errors.Is(err, ErrClosed) {
			first = err
		}
		return true
	})
	return first
}

// ForEach calls f for every subscription of the channel when it is called,
// until f returns false.
func (ch *Channel) ForEach(f func(*Spark) bool) {
	ch.mu.Lock()
	all := make([]*Spark, 0, len(ch.sparks))
	for _, cs := range ch.sparks {
		all = append(all, cs)
	}
	ch.mu.Unlock()
	for _, cs := range all {
		if !f(cs) {
			return
		}
	}
}

// Count returns the number of subscriptions to the channel.
func (ch *Channel) Count() int {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return len(ch.sparks)
}

// Spark returns the subscription with the id (see Spark.ID).
func (ch *Channel) Spark(id string) (*Spark, bool) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	cs, ok := ch.sparks[id]
	return cs, ok
}

// Use sets up server plugins inside the channel: the channel is their host
// and each subscription one of their sparks, so that an emitter.Emitter
// added here sends and receives events over the channel (its payloads are
// emitter packets inside multiplex packets, as with the npm plugins). Call
// it after the multiplex plugin is set up (primus.New) and before clients
// subscribe: subscriptions already open do not see the plugins.
func (ch *Channel) Use(plugins ...plugin.Plugin) error {
	bound := ch.mx.parser() != nil
	if !bound {
		return ErrUnbound
	}
	for _, p := range plugins {
		if p == nil || p.Name() == "" {
			return errors.New("multiplex: nil or unnamed plugin")
		}
		ch.hookMu.Lock()
		dup := ch.plugins[p.Name()]
		ch.plugins[p.Name()] = true
		ch.hookMu.Unlock()
		if dup {
			return fmt.Errorf("multiplex: two plugins named %q on channel %q", p.Name(), ch.name)
		}
		sp, ok := p.(plugin.ServerPlugin)
		if !ok {
			continue
		}
		h := &channelHost{ch: ch}
		err := sp.SetupServer(h)
		h.done.Store(true)
		if err != nil {
			return fmt.Errorf("multiplex: failed to set up plugin %q on channel %q: %w", p.Name(), ch.name, err)
		}
	}
	return nil
}

func (ch *Channel) getHooks() []plugin.ServerHooks {
	if h := ch.hooks.Load(); h != nil {
		return *h
	}
	return nil
}

// subscribe creates the subscription key on c.
func (ch *Channel) subscribe(c *conn, key subKey, wireID any) {
	ctx, cancel := context.WithCancel(c.spark.Context())
	cs := &Spark{
		ch:     ch,
		conn:   c,
		key:    key,
		wireID: wireID,
		id:     c.spark.ID() + ":" + key.id + ":" + ch.name,
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
	}
	c.mu.Lock()
	c.subs[key] = cs
	c.mu.Unlock()
	ch.mu.Lock()
	ch.sparks[cs.id] = cs
	ch.mu.Unlock()
	for _, h := range ch.getHooks() {
		if h.Connection != nil {
			h.Connection(cs)
		}
	}
	for _, f := range ch.onConnection.Get() {
		f(cs)
	}
}

// channelHost is what plugins set up inside a channel see.
type channelHost struct {
	ch   *Channel
	done atomic.Bool
}

func (h *channelHost) Install(hooks plugin.ServerHooks) {
	if h.done.Load() {
		panic("multiplex: plugin hooks installed after the plugin's set-up")
	}
	h.ch.hookMu.Lock()
	defer h.ch.hookMu.Unlock()
	next := append(append([]plugin.ServerHooks(nil), h.ch.getHooks()...), hooks)
	h.ch.hooks.Store(&next)
	if hooks.Outgoing != nil {
		h.ch.hasOutgoing.Store(true)
	}
}
func (h *channelHost) Parser() parser.Parser { return h.ch.mx.parser() }
func (h *channelHost) Logger() *slog.Logger  { return h.ch.mx.log }
func (h *channelHost) Write(v any) error     { return h.ch.Write(v) }
func (h *channelHost) Spark(id string) (plugin.Spark, bool) {
	cs, ok := h.ch.Spark(id)
	if !ok {
		return nil, false
	}
	return cs, true
}
func (h *channelHost) ForEach(f func(plugin.Spark) bool) {
	h.ch.ForEach(func(cs *Spark) bool { return f(cs) })
}
