package substream

import (
	"sync"

	"github.com/go-primus/primus/internal/pluginkit"
	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/plugin"
)

// Client is the Go-client side of the plugin. Create it with NewClient,
// pass it in primus.ClientOptions.Plugins, and open streams with Stream:
//
//	sc := substream.NewClient()
//	c, err := primus.Dial(ctx, url, &primus.ClientOptions{Plugins: []plugin.Plugin{sc}})
//	…
//	logs, err := sc.Stream("logs", &substream.StreamOptions{OnData: func(m *primus.Message) { … }})
//
// Streams outlive reconnections, as with the npm client; they end when the
// client ends.
//
// All methods are safe for concurrent use.
type Client struct {
	mu  sync.Mutex
	set *set // nil until set up
}

var _ plugin.ClientPlugin = (*Client)(nil)

// NewClient returns the client side of the substream plugin.
func NewClient() *Client { return &Client{} }

// Name is "substream".
func (c *Client) Name() string { return "substream" }

// SetupClient installs the plugin's hooks; the client calls it.
func (c *Client) SetupClient(h plugin.ClientHost) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.set != nil {
		return ErrBound
	}
	// No bound: only the client's own code opens its streams.
	set := newSet(h.Client(), h.Client().Write, pluginkit.NewCodec(h.Parser()), h.Logger(), 0)
	c.set = set
	h.Install(plugin.ClientHooks{
		Incoming: func(_ plugin.Client, m *parser.Message) (bool, error) { return set.incoming(m), nil },
		Close: func(_ plugin.Client, reason error, reconnecting bool) {
			if !reconnecting {
				set.close(reason)
			}
		},
	})
	return nil
}

// Stream returns the stream name, creating it (nothing is sent). When the
// stream is already open, opts' handlers are added to it. It returns
// ErrClosed after the client ended.
func (c *Client) Stream(name string, opts *StreamOptions) (*Stream, error) {
	c.mu.Lock()
	set := c.set
	c.mu.Unlock()
	if set == nil {
		return nil, ErrUnbound
	}
	return set.stream(name, opts)
}
