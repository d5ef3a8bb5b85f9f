package multiplex

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/go-primus/primus/internal/pluginkit"
	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/plugin"
)

// Client is the Go-client side of the plugin. Create it with NewClient,
// pass it in primus.ClientOptions.Plugins, and open channels with Channel:
//
//	mc := multiplex.NewClient()
//	c, err := primus.Dial(ctx, url, &primus.ClientOptions{Plugins: []plugin.Plugin{mc}})
//	…
//	chat, err := mc.Channel("chat", &multiplex.ChannelOptions{
//		OnData: func(m *primus.Message) { … },
//	})
//	err = chat.Write("hello")
//
// After a reconnection every open channel subscribes again with the same
// id, before the writes queued while offline are sent.
//
// All methods are safe for concurrent use.
type Client struct {
	mu     sync.Mutex
	client plugin.Client // nil until set up
	codec  pluginkit.Codec
	log    *slog.Logger
	chans  map[subKey]*ClientChannel
	seq    uint64 // creation order of the channel instances
	online bool
	ended  bool // the client ended for good
}

var _ plugin.ClientPlugin = (*Client)(nil)

// NewClient returns the client side of the multiplex plugin.
func NewClient() *Client {
	return &Client{log: slog.New(slog.DiscardHandler), chans: map[subKey]*ClientChannel{}}
}

// Name is "multiplex".
func (c *Client) Name() string { return "multiplex" }

// SetupClient installs the plugin's hooks; the client calls it.
func (c *Client) SetupClient(h plugin.ClientHost) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client != nil {
		return ErrBound
	}
	c.client = h.Client()
	c.codec = pluginkit.NewCodec(h.Parser())
	c.log = h.Logger()
	h.Install(plugin.ClientHooks{
		Open:     c.open,
		Incoming: c.incoming,
		Close:    c.close,
	})
	return nil
}

// ChannelOptions configure a client channel. A nil *ChannelOptions means
// no handlers and no plugins.
type ChannelOptions struct {
	// OnData runs for each message the server writes to this channel
	// instance, in order, in the client's reading goroutine.
	OnData func(*parser.Message)
	// OnEnd runs once when the channel ends: nil when either side
	// unsubscribed (the server also refuses a channel it does not have this
	// way), ErrDisconnected when the client ended.
	OnEnd func(reason error)
	// Plugins are client plugins set up inside the channel, such as an
	// emitter.Client to send and receive events over it.
	Plugins []plugin.Plugin
}

// Channel subscribes to the channel name and returns the new channel
// instance. Each call is a subscription of its own, with its own id, even
// for one name. Handlers are given here so that none misses a message.
func (c *Client) Channel(name string, opts *ChannelOptions) (*ClientChannel, error) {
	var o ChannelOptions
	if opts != nil {
		o = *opts
	}
	c.mu.Lock()
	client, codec, ended := c.client, c.codec, c.ended
	c.mu.Unlock()
	if client == nil {
		return nil, ErrUnbound
	}
	if ended {
		return nil, ErrClosed
	}
	ch := &ClientChannel{mx: c, name: name, client: client, codec: codec, done: make(chan struct{})}
	if o.OnData != nil {
		ch.onData.Add(o.OnData)
	}
	if o.OnEnd != nil {
		ch.onEnd.Add(o.OnEnd)
	}
	seen := map[string]bool{}
	for _, p := range o.Plugins {
		if p == nil || p.Name() == "" {
			return nil, errors.New("multiplex: nil or unnamed plugin")
		}
		if seen[p.Name()] {
			return nil, fmt.Errorf("multiplex: two plugins named %q on channel %q", p.Name(), name)
		}
		seen[p.Name()] = true
		if cp, ok := p.(plugin.ClientPlugin); ok {
			if err := cp.SetupClient(&clientChannelHost{ch: ch}); err != nil {
				return nil, fmt.Errorf("multiplex: failed to set up plugin %q on channel %q: %w", p.Name(), name, err)
			}
		}
	}
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	for {
		ch.id = randomID()
		if c.chans[subKey{name, ch.id}] == nil {
			break
		}
	}
	c.chans[subKey{name, ch.id}] = ch
	c.seq++
	ch.seq = c.seq
	online := c.online
	c.mu.Unlock()
	if online {
		// Offline, the next Open hook subscribes it.
		if err := ch.subscribe(client); err != nil {
			c.forget(ch)
			return nil, err
		}
	}
	return ch, nil
}

// randomID returns an id like the npm client's: up to 13 base-36 digits.
func randomID() string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	var b [13]byte
	for i := range b {
		b[i] = digits[rand.IntN(len(digits))]
	}
	return string(b[:])
}

func (c *Client) forget(ch *ClientChannel) {
	c.mu.Lock()
	if c.chans[subKey{ch.name, ch.id}] == ch {
		delete(c.chans, subKey{ch.name, ch.id})
	}
	c.mu.Unlock()
}

// snapshot returns the channel instances in the order they were created.
func (c *Client) snapshot() []*ClientChannel {
	all := make([]*ClientChannel, 0, len(c.chans))
	for _, ch := range c.chans {
		all = append(all, ch)
	}
	slices.SortFunc(all, func(a, b *ClientChannel) int { return cmp.Compare(a.seq, b.seq) })
	return all
}

// open subscribes every channel again (with the same id) on a new
// connection; w writes ahead of the offline queue.
func (c *Client) open(w plugin.Client) {
	c.mu.Lock()
	c.online = true
	all := c.snapshot()
	c.mu.Unlock()
	for _, ch := range all {
		_ = ch.subscribe(w)
	}
}

// close tells the channels' plugins that the connection closed, and ends the
// channels when the client ended.
func (c *Client) close(_ plugin.Client, reason error, reconnecting bool) {
	c.mu.Lock()
	c.online = false
	all := c.snapshot()
	if !reconnecting {
		clear(c.chans)
		c.ended = true
	}
	c.mu.Unlock()
	for _, ch := range all {
		ch.closed(reason, reconnecting)
	}
}

// incoming consumes multiplex packets: those for its channel instances, and
// those for instances it no longer has (late messages), which are dropped.
func (c *Client) incoming(_ plugin.Client, m *parser.Message) (bool, error) {
	p, ok := decodePacket(c.codec, m)
	if !ok {
		return true, nil
	}
	c.mu.Lock()
	ch := c.chans[subKey{p.name, p.key}]
	c.mu.Unlock()
	if ch == nil {
		c.log.Debug("multiplex: packet for no channel instance dropped", "channel", p.name)
		return false, nil
	}
	switch p.typ {
	case typeMessage:
		msg, err := payloadMessage(c.codec, p)
		if err != nil {
			c.log.Debug("multiplex: message dropped", "channel", p.name, "error", err)
			return false, nil
		}
		ch.receive(msg)
	case typeUnsubscribe:
		ch.end(nil, false)
	}
	return false, nil
}
