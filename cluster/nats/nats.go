// Package nats is a cluster backend on NATS (github.com/nats-io/nats.go):
// core NATS subjects carry the messages between nodes, and a JetStream
// stream with per-message TTLs holds the registry. One Backend is both the
// cluster.Broker and the cluster.Registry of a node:
//
//	b, err := nats.Connect("nats://127.0.0.1:4222", nil)
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer b.Close()
//	c, err := cluster.New(srv, &cluster.Options{Broker: b, Registry: b})
//
// The NATS server must run JetStream (nats-server -js, version 2.11 or
// later for per-message TTLs). Every node needs its own Backend (its own
// connection); all the nodes of a cluster use the same NATS and Namespace.
//
// # Subjects
//
// With the default namespace "primus": messages on "primus.all" and
// "primus.node.<id>"; the registry in the memory stream "primus-registry"
// on "primus.registry.>", one message per subject: "primus.registry.node.<id>"
// holds a node's number of sparks and "primus.registry.spark.<id>" the node
// of a spark, each with a TTL of the cluster's Expiry, renewed every
// Expiry/3 — so a node that dies vanishes with its sparks within Expiry
// (plus up to a few hundred milliseconds: the server's expiry timer),
// removed by the server. Refreshing republishes every spark of the node,
// which JetStream does at well over ten thousand messages a second. Ids
// that are not plain subject tokens are base64url-encoded after a "=".
//
// The Backend is also the cluster.Directory of room membership, in the same
// stream: "primus.registry.room.<room>.<node>.<spark>" per membership, with
// the same TTL and refresh, purged on leave, and "primus.registry.rver.<node>"
// (see directory.go).
//
// # Outages
//
// A Backend made by Connect reconnects forever and resubscribes by itself;
// it does not buffer publications while disconnected (ReconnectBufSize -1):
// messages published during an outage fail at once and are lost, as with
// Redis, rather than some of them arriving late. The registry stream lives
// in the server's memory: after a server restart each node re-creates it
// and syncs again (at most Expiry/3 later, sooner after a failed sync).
package nats

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/go-primus/primus/cluster"
)

// Options configure a Backend. A nil *Options means all defaults.
type Options struct {
	// Namespace prefixes every subject, followed by ".", and names the
	// registry stream (<namespace>-registry). Zero value means "primus".
	// Clusters that share a NATS need different ones. It must be a valid
	// subject token and stream name: letters, digits, "-" and "_".
	Namespace string

	// ConnectOptions are added after Connect's own (see Connect), so they
	// can override them. New ignores them.
	ConnectOptions []natsgo.Option

	// Durable makes the channels between nodes a JetStream stream instead
	// of core NATS subjects (see durable.go): a node cut off from the
	// server catches up on what it missed, within the stream's limits.
	// Zero value (nil) means core NATS: at most once.
	Durable *Durability

	// Logger receives the backend's diagnostics. Zero value means silent.
	Logger *slog.Logger
}

// Backend is a node's cluster.Broker and cluster.Registry on NATS.
type Backend struct {
	nc     *natsgo.Conn
	owned  bool
	js     jetstream.JetStream
	ns     string
	stream string
	log    *slog.Logger

	connOpts []natsgo.Option

	mu       sync.Mutex
	handlers []func(error)

	regMu  sync.Mutex
	st     jetstream.Stream // nil until created, and again after a failure
	sparks map[string]map[string]struct{}
	// members holds, per node, the subjects of the memberships it
	// published (directory.go).
	members map[string]map[string]struct{}

	dur *durable // nil unless Options.Durable
}

var (
	_ cluster.Broker        = (*Backend)(nil)
	_ cluster.Registry      = (*Backend)(nil)
	_ cluster.ErrorReporter = (*Backend)(nil)
)

// Connect returns a Backend with its own connection to the NATS server(s)
// at url (comma-separated URLs for several). The connection retries the
// first connect and every reconnect forever (RetryOnFailedConnect,
// MaxReconnects -1, ReconnectWait 250 ms), does not buffer while
// disconnected (ReconnectBufSize -1), and reports disconnections,
// reconnections and asynchronous errors (a slow subscription) to the
// OnError handlers. It does not wait for the server; Close closes the
// connection.
func Connect(url string, opts *Options) (*Backend, error) {
	b, err := newBackend(opts)
	if err != nil {
		return nil, err
	}
	nopts := []natsgo.Option{
		natsgo.Name("primus cluster node"),
		natsgo.RetryOnFailedConnect(true),
		natsgo.MaxReconnects(-1),
		natsgo.ReconnectWait(250 * time.Millisecond),
		natsgo.ReconnectBufSize(-1),
		natsgo.DisconnectErrHandler(func(nc *natsgo.Conn, err error) {
			if nc.IsClosed() {
				return // Close, not an outage
			}
			if err == nil {
				err = natsgo.ErrDisconnected
			}
			b.log.Warn("nats: disconnected; reconnecting", "error", err)
			b.report(fmt.Errorf("nats: connection lost: %w", err))
		}),
		natsgo.ReconnectHandler(func(nc *natsgo.Conn) {
			b.log.Info("nats: reconnected", "server", nc.ConnectedUrlRedacted())
			b.report(nil)
		}),
		natsgo.ErrorHandler(func(_ *natsgo.Conn, _ *natsgo.Subscription, err error) {
			b.log.Warn("nats: asynchronous error", "error", err)
			b.report(fmt.Errorf("nats: %w", err))
		}),
	}
	nc, err := natsgo.Connect(url, append(nopts, b.connOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("nats: failed to connect: %w", err)
	}
	if err := b.bind(nc); err != nil {
		nc.Close()
		return nil, err
	}
	b.owned = true
	return b, nil
}

// New returns a Backend on an existing connection, which stays the
// caller's: Close does not close it, and its handlers are left alone (so
// connection errors reach only the caller's).
func New(nc *natsgo.Conn, opts *Options) (*Backend, error) {
	b, err := newBackend(opts)
	if err != nil {
		return nil, err
	}
	if err := b.bind(nc); err != nil {
		return nil, err
	}
	return b, nil
}

func newBackend(opts *Options) (*Backend, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Namespace == "" {
		o.Namespace = "primus"
	}
	if strings.Trim(o.Namespace, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != "" {
		return nil, fmt.Errorf("nats: namespace %q: use letters, digits, - and _ only", o.Namespace)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	b := &Backend{
		ns:       o.Namespace,
		stream:   o.Namespace + "-registry",
		log:      o.Logger,
		connOpts: o.ConnectOptions,
		sparks:   map[string]map[string]struct{}{},
		members:  map[string]map[string]struct{}{},
	}
	if o.Durable != nil {
		b.dur = newDurable(b, *o.Durable)
	}
	return b, nil
}

func (b *Backend) bind(nc *natsgo.Conn) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("nats: failed to use JetStream: %w", err)
	}
	b.nc, b.js = nc, js
	return nil
}

// Conn returns the backend's connection.
func (b *Backend) Conn() *natsgo.Conn { return b.nc }

// OnError adds a handler for the connection's errors, called with nil on
// reconnection. Only a Backend made by Connect reports them.
func (b *Backend) OnError(f func(error)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.handlers = append(b.handlers, f)
}

func (b *Backend) report(err error) {
	b.mu.Lock()
	hs := b.handlers
	b.mu.Unlock()
	for _, f := range hs {
		f(err)
	}
}

func (b *Backend) subject(channel string) string { return b.ns + "." + channel }

// Publish publishes data on the channel's subject. It does not wait: NATS
// sends it from its buffer.
func (b *Backend) Publish(ctx context.Context, channel string, data []byte) error {
	if b.dur != nil {
		return b.dur.publish(ctx, []cluster.Message{{Channel: channel, Data: data}})
	}
	if err := b.nc.Publish(b.subject(channel), data); err != nil {
		return fmt.Errorf("nats: failed to publish: %w", err)
	}
	return nil
}

// Subscribe subscribes to the channel's subject; the subscription is
// renewed by the connection after each reconnection. When connected it
// returns once the server has the subscription (or ctx ends), so that
// messages published from then on reach it.
func (b *Backend) Subscribe(ctx context.Context, channel string, f func(data []byte)) (cluster.Subscription, error) {
	if b.dur != nil {
		return b.dur.subscribe(ctx, channel, f)
	}
	s := &subscription{f: f}
	sub, err := b.nc.Subscribe(b.subject(channel), s.deliver)
	if err != nil {
		return nil, fmt.Errorf("nats: failed to subscribe to %q: %w", channel, err)
	}
	s.sub = sub
	if b.nc.IsConnected() {
		if err := b.nc.FlushWithContext(ctx); err != nil {
			b.log.Debug("nats: subscription not confirmed yet", "channel", channel, "error", err)
		}
	}
	return s, nil
}

// Close closes the connection of a Backend made by Connect.
func (b *Backend) Close() error {
	if b.dur != nil {
		b.dur.close()
	}
	if b.owned {
		b.nc.Close()
	}
	return nil
}

// subscription guards its handler so that none runs once Close returns:
// the connection's delivery goroutine may still hold a message then.
type subscription struct {
	sub    *natsgo.Subscription
	f      func([]byte)
	mu     sync.RWMutex
	closed bool
}

func (s *subscription) deliver(m *natsgo.Msg) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.closed {
		s.f(m.Data)
	}
}

func (s *subscription) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	if err := s.sub.Unsubscribe(); err != nil && !errors.Is(err, natsgo.ErrConnectionClosed) && !errors.Is(err, natsgo.ErrBadSubscription) {
		return fmt.Errorf("nats: failed to unsubscribe: %w", err)
	}
	return nil
}

// token makes an id a subject token: as it is when it can be one,
// base64url-encoded after "=" otherwise.
func token(id string) string {
	if id != "" && !strings.HasPrefix(id, "=") && !strings.ContainsAny(id, ".*> \t\r\n") {
		return id
	}
	return "=" + base64.RawURLEncoding.EncodeToString([]byte(id))
}

// untoken reverses token.
func untoken(t string) string {
	if rest, ok := strings.CutPrefix(t, "="); ok {
		if b, err := base64.RawURLEncoding.DecodeString(rest); err == nil {
			return string(b)
		}
	}
	return t
}
