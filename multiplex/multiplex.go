package multiplex

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/go-primus/primus/internal/pluginkit"
	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/plugin"
)

// Multiplex is the server side of the plugin: named channels over each
// connection. Create it with New, pass it in primus.Options.Plugins, and
// declare channels with Channel.
//
// All methods are safe for concurrent use.
type Multiplex struct {
	maxSubs  int
	maxIDLen int

	mu       sync.RWMutex
	host     plugin.ServerHost
	codec    pluginkit.Codec
	log      *slog.Logger
	channels map[string]*Channel
	conns    sync.Map // plugin.Spark → *conn
}

// Zero values of Options.
const (
	defaultMaxSubscriptions = 1024
	defaultMaxIDBytes       = 128
)

// Options configure a Multiplex. A nil *Options means all defaults.
type Options struct {
	// MaxSubscriptions bounds the subscriptions one connection may hold at
	// once, so that a client cannot grow the server's memory without end;
	// a subscription over it is refused with an UNSUBSCRIBE. Zero value
	// means 1024; negative means no bound.
	MaxSubscriptions int
	// MaxIDBytes bounds the length of the id a client gives a
	// subscription. The server keeps the id (three times over, in the
	// subscription's key, its ID and its packets), so without this bound
	// MaxSubscriptions would bound a connection's subscriptions in number
	// but not in bytes: a client could hold 1024 ids of a whole message each.
	// A subscription with a longer id is refused with an UNSUBSCRIBE. Zero
	// value means 128 (the npm client's ids have 13 characters); negative
	// means no bound.
	MaxIDBytes int
}

var _ plugin.ServerPlugin = (*Multiplex)(nil)

// conn is one connection's subscriptions.
type conn struct {
	spark plugin.Spark
	mu    sync.Mutex
	subs  map[subKey]*Spark
}

// subKey names a subscription on a connection: one connection may hold
// several subscriptions to one channel, each with its own id, and one id
// under several channel names.
type subKey struct{ name, id string }

// New returns the server side of the multiplex plugin.
func New(opts *Options) *Multiplex {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.MaxSubscriptions == 0 {
		o.MaxSubscriptions = defaultMaxSubscriptions
	}
	if o.MaxIDBytes == 0 {
		o.MaxIDBytes = defaultMaxIDBytes
	}
	return &Multiplex{
		maxSubs:  o.MaxSubscriptions,
		maxIDLen: o.MaxIDBytes,
		log:      slog.New(slog.DiscardHandler),
		channels: map[string]*Channel{},
	}
}

// Name is "multiplex".
func (mx *Multiplex) Name() string { return "multiplex" }

// SetupServer installs the plugin's hooks; the core calls it.
func (mx *Multiplex) SetupServer(h plugin.ServerHost) error {
	mx.mu.Lock()
	defer mx.mu.Unlock()
	if mx.host != nil {
		return ErrBound
	}
	mx.host = h
	mx.codec = pluginkit.NewCodec(h.Parser())
	mx.log = h.Logger()
	h.Install(plugin.ServerHooks{
		Connection: func(s plugin.Spark) { mx.conns.Store(s, &conn{spark: s, subs: map[subKey]*Spark{}}) },
		Incoming:   mx.incoming,
		Close: func(s plugin.Spark, reason error) {
			v, ok := mx.conns.LoadAndDelete(s)
			if !ok {
				return
			}
			c := v.(*conn)
			c.mu.Lock()
			subs := make([]*Spark, 0, len(c.subs))
			for _, cs := range c.subs {
				subs = append(subs, cs)
			}
			c.mu.Unlock()
			why := ErrDisconnected
			if reason != nil {
				why = fmt.Errorf("%w: %w", ErrDisconnected, reason)
			}
			for _, cs := range subs {
				cs.end(why, false)
			}
		},
	})
	return nil
}

// Channel returns the channel with the name, creating it on first use. Set
// its handlers before the server accepts connections. A subscription to a
// name that has no channel is refused: the server answers with an
// UNSUBSCRIBE, which ends the client's channel.
func (mx *Multiplex) Channel(name string) *Channel {
	mx.mu.Lock()
	defer mx.mu.Unlock()
	ch := mx.channels[name]
	if ch == nil {
		ch = newChannel(mx, name)
		mx.channels[name] = ch
	}
	return ch
}

// parser returns the server's parser, nil before set-up.
func (mx *Multiplex) parser() parser.Parser {
	mx.mu.RLock()
	defer mx.mu.RUnlock()
	return mx.codec.Parser()
}

func (mx *Multiplex) lookup(s plugin.Spark, name string) (*conn, *Channel) {
	v, ok := mx.conns.Load(s)
	if !ok {
		return nil, nil
	}
	mx.mu.RLock()
	defer mx.mu.RUnlock()
	return v.(*conn), mx.channels[name]
}

// incoming consumes multiplex packets.
func (mx *Multiplex) incoming(s plugin.Spark, m *parser.Message) (bool, error) {
	p, ok := decodePacket(mx.codec, m)
	if !ok {
		return true, nil
	}
	c, ch := mx.lookup(s, p.name)
	if c == nil {
		return false, nil
	}
	key := subKey{p.name, p.key}
	c.mu.Lock()
	cs := c.subs[key]
	c.mu.Unlock()
	switch p.typ {
	case typeSubscribe:
		switch {
		case cs != nil:
			// Already subscribed under this id: a duplicate.
		case ch == nil:
			mx.log.Debug("multiplex: subscription to an unknown channel refused", "channel", p.name)
			_ = s.Write(control(typeUnsubscribe, p.id, p.name))
		case mx.maxSubs > 0 && c.count() >= mx.maxSubs:
			mx.log.Debug("multiplex: subscription over the limit refused", "channel", p.name, "limit", mx.maxSubs)
			_ = s.Write(control(typeUnsubscribe, p.id, p.name))
		case mx.maxIDLen > 0 && len(p.key) > mx.maxIDLen:
			mx.log.Debug("multiplex: subscription with an over-long id refused", "channel", p.name, "bytes", len(p.key), "limit", mx.maxIDLen)
			_ = s.Write(control(typeUnsubscribe, p.id, p.name))
		default:
			ch.subscribe(c, key, p.id)
		}
	case typeMessage:
		if cs == nil {
			mx.log.Debug("multiplex: message for no subscription dropped", "channel", p.name)
			return false, nil
		}
		msg, err := payloadMessage(mx.codec, p)
		if err != nil {
			mx.log.Debug("multiplex: message dropped", "channel", p.name, "error", err)
			return false, nil
		}
		cs.receive(msg)
	case typeUnsubscribe:
		if cs != nil {
			cs.end(nil, false)
		}
	}
	return false, nil
}

func (c *conn) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.subs)
}

// remove forgets cs on its connection, if it is still the subscription
// under its key.
func (c *conn) remove(key subKey, cs *Spark) {
	c.mu.Lock()
	if c.subs[key] == cs {
		delete(c.subs, key)
	}
	c.mu.Unlock()
}
