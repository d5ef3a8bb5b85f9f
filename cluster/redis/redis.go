// Package redis is a cluster backend on Redis (github.com/redis/go-redis/v9):
// Redis pub/sub carries the messages between nodes, and keys with an expiry
// hold the registry. One Backend is both the cluster.Broker and the
// cluster.Registry of a node:
//
//	b, err := redis.Connect("redis://127.0.0.1:6379/0", nil)
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer b.Close()
//	c, err := cluster.New(srv, &cluster.Options{Broker: b, Registry: b})
//
// Every node needs its own Backend (its own connections); all the nodes of a
// cluster use the same Redis and Namespace.
//
// # Keys
//
// With the default namespace "primus": channels "primus:all" and
// "primus:node.<id>"; a set "primus:nodes" of node ids; and, per node, a set
// "primus:node:<id>" of its spark ids (plus an empty member that keeps the
// set alive while the node has no spark) with a PEXPIRE of the cluster's
// Expiry, renewed every Expiry/3. A node that stops renewing it vanishes
// with its sparks when the key expires: refreshing costs one command
// whatever the number of sparks. Lookups and counts run as Lua scripts that
// visit the live nodes' sets (a few per cluster), and drop the ids of
// expired nodes from "primus:nodes" as they go.
//
// The Backend is also the cluster.Directory of room membership, under
// "primus:dir:" (a hash per node, a set per node and room and per spark,
// each with the same PEXPIRE; see directory.go).
//
// The scripts touch keys they compute, which a Redis Cluster (sharded)
// deployment refuses: use a single Redis server, or a primary with
// replicas behind Sentinel (redis.NewFailoverClient, passed to New).
//
// # Outages
//
// go-redis reconnects by itself: commands fail while Redis is unreachable,
// and the subscriptions are renewed when it is back (the receiving loop
// pings Redis when it has heard nothing for a while, so that a dead
// connection is noticed). Messages published meanwhile are lost, and the
// registry, empty after a restart without persistence, is filled again by
// each node's next sync (at most Expiry/3 later).
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/go-primus/primus/cluster"
)

// Options configure a Backend. A nil *Options means all defaults.
type Options struct {
	// Namespace prefixes every key and channel, followed by ":". Zero value
	// means "primus". Clusters that share a Redis need different ones.
	Namespace string

	// PingInterval is how long a subscription waits for a message before it
	// pings Redis to check its connection. Zero value means 5 seconds.
	PingInterval time.Duration

	// Durable makes the channels between nodes Redis Streams instead of
	// pub/sub (see durable.go): a node cut off from Redis catches up on
	// what it missed, within the streams' limits. Zero value (nil) means
	// pub/sub: at most once.
	Durable *Durability

	// Logger receives the backend's diagnostics. Zero value means silent.
	Logger *slog.Logger
}

// Backend is a node's cluster.Broker and cluster.Registry on Redis.
type Backend struct {
	rdb    goredis.UniversalClient
	owned  bool
	ns     string
	ping   time.Duration
	log    *slog.Logger
	nodes  string // key of the set of node ids
	prefix string // prefix of the per-node keys

	mu       sync.Mutex
	handlers []func(error)
	subs     map[*subscription]struct{}
	closed   bool

	dur *durable // nil unless Options.Durable
}

var (
	_ cluster.Broker         = (*Backend)(nil)
	_ cluster.BatchPublisher = (*Backend)(nil)
	_ cluster.Registry       = (*Backend)(nil)
	_ cluster.ErrorReporter  = (*Backend)(nil)
)

// Connect returns a Backend with its own client for the Redis at url: a
// redis:// or rediss:// URL (redis://user:password@host:port/db), or a plain
// host:port. The client's calls end with their context
// (ContextTimeoutEnabled), and it does not retry failed commands
// (MaxRetries -1, unless the URL sets max_retries): go-redis would resend a
// PUBLISH that may have been delivered, and the cluster re-syncs the
// registry by itself. It does not wait for Redis to be reachable; Close
// closes the client.
func Connect(url string, opts *Options) (*Backend, error) {
	var ro *goredis.Options
	if strings.Contains(url, "://") {
		var err error
		if ro, err = goredis.ParseURL(url); err != nil {
			return nil, fmt.Errorf("redis: bad URL: %w", err)
		}
	} else {
		ro = &goredis.Options{Addr: url}
	}
	// Calls end with their context (the cluster's timeouts, Close's
	// context), not after the client's own 3 s read timeout.
	ro.ContextTimeoutEnabled = true
	if !strings.Contains(url, "max_retries=") {
		// A retried PUBLISH may have been delivered the first time: no
		// retries keeps delivery at most once. The cluster retries the
		// registry by itself.
		ro.MaxRetries = -1
	}
	b := New(goredis.NewClient(ro), opts)
	b.owned = true
	return b, nil
}

// New returns a Backend on an existing client, which stays the caller's:
// Close does not close it. Set the client's ContextTimeoutEnabled, so that
// a Redis that hangs cannot hold a call past the cluster's timeouts, and
// MaxRetries to -1 to keep delivery at most once (see Connect).
func New(rdb goredis.UniversalClient, opts *Options) *Backend {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Namespace == "" {
		o.Namespace = "primus"
	}
	if o.PingInterval <= 0 {
		o.PingInterval = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	b := &Backend{
		rdb:    rdb,
		ns:     o.Namespace,
		ping:   o.PingInterval,
		log:    o.Logger,
		nodes:  o.Namespace + ":nodes",
		prefix: o.Namespace + ":node:",
		subs:   map[*subscription]struct{}{},
	}
	if o.Durable != nil {
		b.dur = newDurable(b, *o.Durable)
	}
	return b
}

// Client returns the backend's Redis client.
func (b *Backend) Client() goredis.UniversalClient { return b.rdb }

// OnError adds a handler for connection errors of the subscriptions, called
// with nil when a subscription is renewed after one.
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

func (b *Backend) channel(name string) string { return b.ns + ":" + name }

// Publish publishes data on the channel.
func (b *Backend) Publish(ctx context.Context, channel string, data []byte) error {
	if b.dur != nil {
		return b.dur.publish(ctx, []cluster.Message{{Channel: channel, Data: data}})
	}
	if err := b.rdb.Publish(ctx, b.channel(channel), data).Err(); err != nil {
		return fmt.Errorf("redis: failed to publish: %w", err)
	}
	return nil
}

// PublishBatch publishes the messages in one pipeline.
func (b *Backend) PublishBatch(ctx context.Context, msgs []cluster.Message) error {
	if b.dur != nil {
		return b.dur.publish(ctx, msgs)
	}
	_, err := b.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, m := range msgs {
			p.Publish(ctx, b.channel(m.Channel), m.Data)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis: failed to publish %d messages: %w", len(msgs), err)
	}
	return nil
}

// Subscribe subscribes to the channel on a connection of its own. When Redis
// is unreachable the subscription is made when it is back.
func (b *Backend) Subscribe(ctx context.Context, channel string, f func(data []byte)) (cluster.Subscription, error) {
	if b.dur != nil {
		return b.dur.subscribe(ctx, channel, f)
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, errors.New("redis: backend closed")
	}
	s := &subscription{
		b: b, ps: b.rdb.Subscribe(ctx), f: f,
		ready: make(chan struct{}), done: make(chan struct{}), exited: make(chan struct{}),
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	err := s.ps.Subscribe(ctx, b.channel(channel))
	go s.receive()
	if err != nil {
		// The channel is recorded: the receiving loop subscribes when Redis
		// answers again.
		b.log.Warn("redis: subscription deferred: Redis unreachable", "channel", channel, "error", err)
		return s, nil
	}
	// Wait for Redis's confirmation, so that messages published from now
	// on reach the subscription.
	select {
	case <-s.ready:
	case <-ctx.Done():
	}
	return s, nil
}

// Close ends the subscriptions and, for a Backend made by Connect, closes
// the client.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	subs := b.subs
	b.subs = nil
	b.mu.Unlock()
	// Outside the lock: a durable subscription's reader reports errors
	// under it.
	if b.dur != nil {
		b.dur.close()
	}
	for s := range subs {
		_ = s.close()
	}
	if b.owned {
		return b.rdb.Close()
	}
	return nil
}

// subscription is one channel's PubSub and its receiving goroutine.
type subscription struct {
	b      *Backend
	ps     *goredis.PubSub
	f      func([]byte)
	ready  chan struct{} // closed on the first confirmation
	done   chan struct{}
	exited chan struct{}
	once   sync.Once
}

// Close ends the subscription and waits for its goroutine.
func (s *subscription) Close() error {
	s.b.mu.Lock()
	delete(s.b.subs, s)
	s.b.mu.Unlock()
	return s.close()
}

func (s *subscription) close() error {
	var err error
	s.once.Do(func() {
		close(s.done)
		err = s.ps.Close()
	})
	<-s.exited
	if errors.Is(err, goredis.ErrClosed) {
		err = nil
	}
	return err
}

// receive reads the subscription's messages until it is closed. go-redis
// reconnects and resubscribes after an error; this loop reports the outage,
// waits a little between attempts, and pings when the connection has been
// quiet for the ping interval.
func (s *subscription) receive() {
	defer close(s.exited)
	ctx := context.Background()
	down, confirmed := false, false
	wait := 50 * time.Millisecond
	for {
		msg, err := s.ps.ReceiveTimeout(ctx, s.b.ping)
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			if errors.Is(err, goredis.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !down {
				pctx, cancel := context.WithTimeout(ctx, s.b.ping)
				_ = s.ps.Ping(pctx) // a dead connection fails here and is replaced
				cancel()
				continue
			}
			if !down {
				down = true
				s.b.log.Warn("redis: subscription lost its connection; reconnecting", "error", err)
				s.b.report(fmt.Errorf("redis: subscription connection lost: %w", err))
			}
			select {
			case <-s.done:
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, time.Second)
			continue
		}
		switch m := msg.(type) {
		case *goredis.Message:
			s.f([]byte(m.Payload))
		case *goredis.Subscription:
			if m.Kind == "subscribe" && !confirmed {
				confirmed = true
				close(s.ready)
			}
			if down && m.Kind == "subscribe" {
				down, wait = false, 50*time.Millisecond
				s.b.log.Info("redis: subscription renewed", "channel", m.Channel)
				s.b.report(nil)
			}
		}
	}
}
