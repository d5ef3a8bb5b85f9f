package emitter

import (
	"context"
	"sync"

	"github.com/go-primus/primus/internal/pluginkit"
	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/plugin"
)

// Client is the Go-client side of the plugin. Create it with NewClient,
// register handlers with On, and pass it in primus.ClientOptions.Plugins (or
// in a multiplex client channel's plugins, for events on that channel): its
// methods then act on that client, reconnections included.
//
//	events := emitter.NewClient(nil)
//	events.On("news", func(ev *emitter.Event) { … })
//	c, err := primus.Dial(ctx, url, &primus.ClientOptions{Plugins: []plugin.Plugin{events}})
//	…
//	reply, err := events.SendAck(ctx, "question", 42)
//
// All methods are safe for concurrent use. Handlers run in the client's
// reading goroutine, in order; a handler must not wait for an
// acknowledgement with SendAck (use SendAckFunc there). Acknowledgement ids
// count up across reconnections; a wait still open when the connection is
// lost ends with ErrDisconnected.
type Client struct {
	core

	mu sync.Mutex
	ep *endpoint // nil until set up
}

var _ plugin.ClientPlugin = (*Client)(nil)

// NewClient returns the client side of the emitter plugin.
func NewClient(opts *Options) *Client { return &Client{core: newCore(opts)} }

// Name is "emitter".
func (c *Client) Name() string { return "emitter" }

// SetupClient installs the plugin's hooks; the client calls it.
func (c *Client) SetupClient(h plugin.ClientHost) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ep != nil {
		return ErrBound
	}
	c.codec = pluginkit.NewCodec(h.Parser())
	c.log = h.Logger()
	ep := newEndpoint(h.Client(), h.Client().Write)
	c.ep = ep
	h.Install(plugin.ClientHooks{
		Incoming: func(_ plugin.Client, m *parser.Message) (bool, error) {
			return c.incoming(ep, nil, m), nil
		},
		Close: func(plugin.Client, error, bool) { ep.failAll(false) },
	})
	return nil
}

func (c *Client) endpoint() (*endpoint, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ep == nil {
		return nil, ErrUnbound
	}
	return c.ep, nil
}

// On adds a handler for the event; see Emitter.On. Add handlers before
// dialling, so that none misses an event.
func (c *Client) On(event string, h func(*Event)) { c.on(event, h) }

// Send sends the event with its arguments, without asking for an
// acknowledgement. Like the client's Write, it queues while offline.
func (c *Client) Send(event string, args ...any) error {
	ep, err := c.endpoint()
	if err != nil {
		return err
	}
	pk, err := c.eventPacket(event, args, 0)
	if err != nil {
		return err
	}
	return ep.write(pk)
}

// SendAck sends the event and waits for its acknowledgement; see
// Emitter.SendAck.
func (c *Client) SendAck(ctx context.Context, event string, args ...any) (Args, error) {
	ep, err := c.endpoint()
	if err != nil {
		return nil, err
	}
	return c.sendAck(ctx, ep, event, args)
}

// SendAckFunc is SendAck without the wait; see Emitter.SendAckFunc.
func (c *Client) SendAckFunc(ctx context.Context, event string, f func(reply Args, err error), args ...any) error {
	ep, err := c.endpoint()
	if err != nil {
		return err
	}
	return c.sendAckFunc(ctx, ep, event, f, args)
}

// Pending returns the number of acknowledgements the client waits for (at
// most Options.MaxPendingAcks).
func (c *Client) Pending() int {
	ep, err := c.endpoint()
	if err != nil {
		return 0
	}
	return ep.count()
}
