package cluster

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-primus/primus"
)

// Channels of the broker, under the backend's namespace.
const (
	channelAll      = "all"   // broadcasts and topics: every node subscribes
	channelNodePref = "node." // + node id: writes to one of the node's sparks
)

// maxBatch bounds the messages handed to the broker in one call.
const maxBatch = 256

// directedQueue bounds the writes to sparks on other nodes that wait for
// their registry lookup.
const directedQueue = 4096

// deltaQueue bounds the registry changes waiting to be sent; past it the
// registry is re-synced whole instead.
const deltaQueue = 4096

// Cluster makes one primus.Server a node of a cluster: writes made through
// it reach the sparks of every node, and the registry knows which node holds
// which spark.
//
// A write delivers to this node's sparks at once, as primus.Server.Write
// does, and queues one message for the other nodes; a goroutine publishes
// the queue. Writes never wait for the broker: when it is slow or
// unreachable, this node's sparks still get every message, the other nodes'
// sparks miss those written meanwhile (delivery across nodes is at most
// once), and failures go to Options.OnError and the logger. The node
// reconnects by itself, and delivery across nodes resumes.
//
// All methods are safe for concurrent use.
type Cluster struct {
	srv     *primus.Server
	id      string
	origin  string        // id, plus an epoch with a durable broker
	durable DurableBroker // nil unless the broker's channels are durable streams
	broker  Broker
	batcher BatchPublisher
	reg     Registry
	expiry  time.Duration
	timeout time.Duration
	log     *slog.Logger
	rep     *reporter

	out      *outbox
	pending  *tracker // messages queued or being published
	directed chan directedWrite
	lookups  *tracker // directed writes waiting for their lookup
	deltas   chan delta
	dirty    chan struct{} // a delta was lost: sync the registry whole
	syncReq  chan chan error

	topicsMu sync.RWMutex
	topics   map[string][]func([]byte)

	subs     []Subscription
	loopCtx  context.Context // for the goroutines' calls; ends when Close's ctx does
	endLoops context.CancelFunc
	closed   atomic.Bool
	closeMu  sync.Mutex
	stop     chan struct{}
	drainCtx context.Context // for the goroutines' last work; set before stop is closed
	wg       sync.WaitGroup
	stopped  chan struct{}
	closeErr error
	retry    time.Duration // the publish loop's back-off with a durable broker

	stats struct {
		published, dropped, received, unknown, malformed, duplicates atomic.Uint64
	}

	// seen is, with a durable broker, the last message number received
	// from each origin on each of the two channels (all, this node's); the
	// broker's delivery goroutines' (one per channel).
	seenMu sync.Mutex
	seen   map[seenKey]uint64

	jn       *jnode                   // nil unless Options.Recovery (resume.go)
	presence atomic.Pointer[Presence] // nil until attached (members.go)
	rpc      rpc                      // requests to other nodes (remote.go)
}

type seenKey struct {
	origin string
	fanout bool
}

type directedWrite struct {
	id   string
	data []byte
}

type delta struct {
	id  string
	add bool
}

// New makes srv a node of the cluster that opts.Broker and opts.Registry
// connect to: it subscribes to the node's channels, registers the node, and
// from then on carries writes made through it to the other nodes and
// delivers theirs. It fails only on invalid options; a broker that is
// unreachable now is retried in the background. Close it before shutting
// srv down.
func New(srv *primus.Server, opts *Options) (*Cluster, error) {
	if srv == nil {
		return nil, errors.New("cluster: nil server")
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Broker == nil || o.Registry == nil {
		return nil, errors.New("cluster: Options.Broker and Options.Registry are required")
	}
	if o.NodeID == "" {
		o.NodeID = rand.Text()[:16]
	}
	if strings.Trim(o.NodeID, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != "" {
		return nil, fmt.Errorf("cluster: NodeID %q: use letters, digits, - and _ only", o.NodeID)
	}
	if o.Expiry == 0 {
		o.Expiry = defaultExpiry
	}
	o.Expiry = max(o.Expiry, minExpiry)
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = defaultQueueBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	log := o.Logger.With("node", o.NodeID)
	c := &Cluster{
		srv:      srv,
		id:       o.NodeID,
		broker:   o.Broker,
		reg:      o.Registry,
		expiry:   o.Expiry,
		timeout:  o.Timeout,
		log:      log,
		rep:      newReporter(log, o.OnError),
		out:      newOutbox(o.QueueBytes),
		pending:  newTracker(),
		directed: make(chan directedWrite, directedQueue),
		lookups:  newTracker(),
		deltas:   make(chan delta, deltaQueue),
		dirty:    make(chan struct{}, 1),
		syncReq:  make(chan chan error),
		topics:   map[string][]func([]byte){},
		stop:     make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	c.loopCtx, c.endLoops = context.WithCancel(context.Background())
	c.batcher, _ = o.Broker.(BatchPublisher)
	c.origin = c.id
	if d, ok := o.Broker.(DurableBroker); ok && d.Durable() {
		c.durable = d
		c.origin = c.id + "~" + rand.Text()[:8] // a new epoch: numbers start again
		c.out.stamped, c.out.numbers = true, map[string]uint64{}
		c.seen = map[seenKey]uint64{}
	}
	// A backend that is both gets two handlers; the reporter folds the
	// duplicate reports into one.
	for _, v := range []any{o.Broker, o.Registry} {
		if r, ok := v.(ErrorReporter); ok {
			r.OnError(func(err error) {
				switch {
				case c.closed.Load():
				case err == nil:
					c.rep.ok("broker connection")
				default:
					c.rep.fail("broker connection", err, 0)
				}
			})
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	for _, ch := range []string{channelAll, channelNodePref + c.id} {
		fanout := ch == channelAll
		sub, err := c.broker.Subscribe(ctx, ch, func(data []byte) { c.receive(data, fanout) })
		if err != nil {
			for _, s := range c.subs {
				_ = s.Close()
			}
			c.endLoops()
			return nil, fmt.Errorf("cluster: failed to subscribe to %q: %w", ch, err)
		}
		c.subs = append(c.subs, sub)
	}

	if o.Recovery {
		jn, err := newJNode(c, &o)
		if err != nil {
			for _, s := range c.subs {
				_ = s.Close()
			}
			c.endLoops()
			return nil, err
		}
		c.jn = jn
	}

	c.Handle(rpcTopic, c.handleRPC)
	srv.OnConnection(func(sp *primus.Spark) { c.track(sp.ID(), true) })
	srv.OnDisconnection(func(sp *primus.Spark) { c.track(sp.ID(), false) })

	c.wg.Add(3)
	go c.publishLoop()
	go c.directedLoop()
	go c.registryLoop()
	if c.jn != nil {
		c.wg.Add(3)
		go c.jn.appendLoop()
		go c.jn.checkpointLoop()
		go c.jn.replayLoop()
	}
	return c, nil
}

// ID returns the node's id.
func (c *Cluster) ID() string { return c.id }

// Server returns the node's server.
func (c *Cluster) Server() *primus.Server { return c.srv }

// encode is primus.Server's encoding: a primus.Raw is sent as it is.
func (c *Cluster) encode(v any) ([]byte, error) {
	if r, ok := v.(primus.Raw); ok {
		return r, nil
	}
	b, err := c.srv.Parser().Encode(v)
	if err != nil {
		return nil, fmt.Errorf("cluster: failed to encode outgoing data: %w", err)
	}
	return b, nil
}

// Write broadcasts v to every spark of every node. v is encoded once; this
// node's sparks get it at once (primus.Server.Write), the other nodes get
// the encoded bytes through the broker and pass them on without encoding
// again. It returns an encoding error, primus.ErrServerClosed, ErrClosed, or
// ErrQueueFull when the message reached this node's sparks but not the
// queue for the others. It never waits for the broker.
func (c *Cluster) Write(v any) error {
	if c.closed.Load() {
		return ErrClosed
	}
	data, err := c.encode(v)
	if err != nil {
		return err
	}
	if c.jn != nil {
		return c.jn.append(appendJEntry(jAll, "", 0, "", nil, data))
	}
	if err := c.srv.Write(primus.Raw(data)); err != nil {
		return err
	}
	return c.enqueue(channelAll, newEnvelope(kindBroadcast, c.origin, "", data))
}

// WriteTo writes v to the spark with the id, on whichever node holds it.
// A spark of this node gets it at once; for another, the node is looked up
// in the registry and the message published to that node alone, in the
// background. When the registry does not know the spark — it connected a
// moment ago and its node has not registered it yet, it has left, or the
// registry cannot be asked — the message goes to every node, and the one
// holding the spark, if any, delivers it (Stats.Unknown counts these). It
// returns an encoding error, the spark's write error (for a spark of this
// node), ErrClosed, or ErrQueueFull; it never waits for the broker or the
// registry.
func (c *Cluster) WriteTo(id string, v any) error {
	if c.closed.Load() {
		return ErrClosed
	}
	data, err := c.encode(v)
	if err != nil {
		return err
	}
	if c.jn != nil {
		return c.jn.append(appendJEntry(jSpark, id, 0, "", nil, data))
	}
	if sp, ok := c.srv.Spark(id); ok {
		return sp.Write(primus.Raw(data))
	}
	c.lookups.add(1)
	select {
	case c.directed <- directedWrite{id: id, data: data}:
		return nil
	default:
		c.lookups.done(1)
		c.stats.dropped.Add(1)
		err := fmt.Errorf("%w: %d writes to sparks of other nodes wait for their lookup", ErrQueueFull, directedQueue)
		c.rep.fail("queue", err, 1)
		return err
	}
}

// Publish sends data to the handlers of topic (see Handle) on every other
// node. This node's handlers are not called: handle the message here
// directly, which never waits for the broker. It returns ErrClosed or
// ErrQueueFull.
func (c *Cluster) Publish(topic string, data []byte) error {
	if c.closed.Load() {
		return ErrClosed
	}
	return c.enqueue(channelAll, newEnvelope(kindTopic, c.origin, topic, data))
}

// Handle adds f as a handler of the messages other nodes Publish on topic.
// Handlers run one at a time, in the order of arrival, in the broker's
// delivery goroutine: f owns data and must not block. Packages built on the
// cluster (rooms) use a topic each; applications can add their own.
func (c *Cluster) Handle(topic string, f func(data []byte)) {
	c.topicsMu.Lock()
	defer c.topicsMu.Unlock()
	hs := c.topics[topic]
	c.topics[topic] = append(hs[:len(hs):len(hs)], f)
}

func (c *Cluster) enqueue(channel string, data []byte) error {
	c.pending.add(1)
	if c.out.push(Message{Channel: channel, Data: data}) {
		return nil
	}
	c.pending.done(1)
	c.stats.dropped.Add(1)
	err := fmt.Errorf("%w: the broker is slower than the writes, or unreachable", ErrQueueFull)
	c.rep.fail("queue", err, 1)
	return err
}

// receive handles a message from the broker; fanout tells that it came on
// the channel of every node.
func (c *Cluster) receive(data []byte, fanout bool) {
	if c.closed.Load() {
		return
	}
	n, data, stamped := unstamp(data)
	e, err := parseEnvelope(data)
	if err != nil {
		c.stats.malformed.Add(1)
		c.log.Debug("cluster: message dropped", "error", err)
		return
	}
	if string(e.origin) == c.origin {
		return // our own broadcast, already delivered here
	}
	if stamped && c.seen != nil {
		// A durable broker may carry a message twice (a publish retried
		// after a reply lost): numbers per origin and channel tell.
		k := seenKey{string(e.origin), fanout}
		c.seenMu.Lock()
		dup := n <= c.seen[k]
		if !dup {
			c.seen[k] = n
		}
		c.seenMu.Unlock()
		if dup {
			c.stats.duplicates.Add(1)
			return
		}
	}
	switch e.kind {
	case kindBroadcast, kindSpark, kindTopic:
		c.stats.received.Add(1)
	default:
		c.stats.malformed.Add(1)
		return
	}
	switch e.kind {
	case kindBroadcast:
		_ = c.srv.Write(primus.Raw(e.payload))
	case kindSpark:
		if sp, ok := c.srv.Spark(string(e.key)); ok {
			_ = sp.Write(primus.Raw(e.payload))
		} else if !fanout {
			c.stats.unknown.Add(1) // it left since the sender's lookup
		}
	case kindTopic:
		c.topicsMu.RLock()
		hs := c.topics[string(e.key)]
		c.topicsMu.RUnlock()
		for _, f := range hs {
			f(e.payload)
		}
	}
}

// publishLoop publishes the outbox, batch by batch.
func (c *Cluster) publishLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.out.wake:
			c.publishQueued(c.loopCtx, false)
		case <-c.stop:
			c.publishQueued(c.drainCtx, true)
			return
		}
	}
}

// publishQueued publishes the outbox until it is empty. Draining (on
// Close), the first failure drops the rest: a broker that hangs must not
// hold Close for one timeout per batch.
func (c *Cluster) publishQueued(base context.Context, draining bool) {
	failed := false
	for {
		batch := c.out.take()
		if len(batch) == 0 {
			return
		}
		for i := 0; i < len(batch); i += maxBatch {
			msgs := batch[i:min(i+maxBatch, len(batch))]
			if failed {
				c.stats.dropped.Add(uint64(len(msgs)))
				c.pending.done(len(msgs))
				continue
			}
			if c.durable != nil && !draining {
				if !c.publishDurable(base, msgs) {
					// Kept, in order, for the next attempt.
					rest := batch[i:]
					if lost := c.out.unshift(rest); lost > 0 {
						c.stats.dropped.Add(uint64(lost))
						c.pending.done(lost)
						c.rep.fail("queue", fmt.Errorf("%w: %d message(s) for the other nodes dropped while the broker was unreachable", ErrQueueFull, lost), lost)
					}
					return
				}
				continue
			}
			failed = !c.publish(base, msgs) && draining
		}
		c.out.release(batch)
	}
}

// publishDurable hands msgs to a durable broker; on failure they stay
// pending (the caller queues them again) and the loop waits before the next
// attempt.
func (c *Cluster) publishDurable(base context.Context, msgs []Message) bool {
	ctx, cancel := context.WithTimeout(base, c.timeout)
	defer cancel()
	var err error
	if c.batcher != nil {
		err = c.batcher.PublishBatch(ctx, msgs)
	} else {
		for _, m := range msgs {
			if err = c.broker.Publish(ctx, m.Channel, m.Data); err != nil {
				break
			}
		}
	}
	if err != nil {
		c.rep.fail("publish", fmt.Errorf("cluster: failed to publish %d message(s) to the other nodes' stream; kept to retry: %w", len(msgs), err), 0)
		c.retryWait(base)
		return false
	}
	c.pending.done(len(msgs))
	c.stats.published.Add(uint64(len(msgs)))
	c.rep.ok("publish")
	c.retry = 0
	return true
}

// retryWait waits before publishing again to a durable broker that failed:
// 50 ms, doubling up to a second.
func (c *Cluster) retryWait(base context.Context) {
	c.retry = min(max(2*c.retry, 50*time.Millisecond), time.Second)
	t := time.NewTimer(c.retry)
	defer t.Stop()
	select {
	case <-t.C:
	case <-base.Done():
	case <-c.stop:
	}
	// The messages are queued again: come back for them.
	select {
	case c.out.wake <- struct{}{}:
	default:
	}
}

// publish hands msgs to the broker and reports whether it took them.
func (c *Cluster) publish(base context.Context, msgs []Message) bool {
	defer c.pending.done(len(msgs))
	if base.Err() != nil {
		c.stats.dropped.Add(uint64(len(msgs)))
		return false
	}
	ctx, cancel := context.WithTimeout(base, c.timeout)
	defer cancel()
	sent := 0
	var err error
	if c.batcher != nil {
		if err = c.batcher.PublishBatch(ctx, msgs); err == nil {
			sent = len(msgs)
		}
	} else {
		for _, m := range msgs {
			if err = c.broker.Publish(ctx, m.Channel, m.Data); err != nil {
				break
			}
			sent++
		}
	}
	c.stats.published.Add(uint64(sent))
	if err != nil {
		lost := len(msgs) - sent
		c.stats.dropped.Add(uint64(lost))
		c.rep.fail("publish", fmt.Errorf("cluster: failed to publish %d message(s) to the other nodes: %w", lost, err), lost)
		return false
	}
	c.rep.ok("publish")
	return true
}

// directedLoop looks up the node of each spark written to by id and
// queues the message for it.
func (c *Cluster) directedLoop() {
	defer c.wg.Done()
	for {
		select {
		case w := <-c.directed:
			c.resolve(c.loopCtx, w)
		case <-c.stop:
			// Draining (on Close): the first failed lookup drops the rest.
			base := c.drainCtx
			for {
				select {
				case w := <-c.directed:
					if !c.resolve(base, w) {
						base = canceled
					}
				default:
					return
				}
			}
		}
	}
}

// canceled is a context that has ended.
var canceled = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// resolve looks up the node of w's spark and sends w there; it reports
// false when the registry failed.
func (c *Cluster) resolve(base context.Context, w directedWrite) bool {
	defer c.lookups.done(1)
	if base.Err() != nil {
		c.stats.dropped.Add(1)
		return false
	}
	ctx, cancel := context.WithTimeout(base, c.timeout)
	node, err := c.reg.Lookup(ctx, w.id)
	cancel()
	switch {
	case errors.Is(err, ErrNotFound), err != nil:
		// The registry does not know the spark yet (its node registers it
		// a moment after it connects), not any more, or cannot be asked:
		// every node gets the message, and the one that holds the spark
		// delivers it.
		if err == nil || errors.Is(err, ErrNotFound) {
			c.rep.ok("registry lookup")
			c.stats.unknown.Add(1)
		} else {
			c.rep.fail("registry lookup", fmt.Errorf("cluster: failed to look up spark %s (sent to every node instead): %w", w.id, err), 0)
		}
		_ = c.enqueue(channelAll, newEnvelope(kindSpark, c.origin, w.id, w.data))
		return err == nil || errors.Is(err, ErrNotFound)
	case node == c.id:
		c.rep.ok("registry lookup")
		if sp, ok := c.srv.Spark(w.id); ok {
			_ = sp.Write(primus.Raw(w.data))
		} else {
			c.stats.unknown.Add(1)
		}
	default:
		c.rep.ok("registry lookup")
		_ = c.enqueue(channelNodePref+node, newEnvelope(kindSpark, c.origin, w.id, w.data))
	}
	return true
}

// Flush waits until the messages written so far are published (or dropped)
// and the registry holds this node's sparks as they are now. It is for
// tests and orderly shutdowns: under a steady stream of writes the queue is
// never empty, and Flush waits for ctx.
func (c *Cluster) Flush(ctx context.Context) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if err := c.lookups.wait(ctx); err != nil {
		return err
	}
	if p := c.presence.Load(); p != nil {
		if err := p.flush(ctx); err != nil {
			return err
		}
	}
	if err := c.pending.wait(ctx); err != nil {
		return err
	}
	if c.jn != nil {
		if err := c.jn.q.flush(ctx); err != nil {
			return err
		}
	}
	reply := make(chan error, 1)
	select {
	case c.syncReq <- reply:
	case <-c.stopped:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Count returns the number of sparks in the cluster: this node's, plus
// those the registry holds for the other live nodes. On a registry error it
// returns this node's count and the error.
func (c *Cluster) Count(ctx context.Context) (int, error) {
	local := c.srv.Count()
	nodes, err := c.Nodes(ctx)
	if err != nil {
		return local, err
	}
	total := local
	for _, n := range nodes {
		if n.ID != c.id {
			total += n.Sparks
		}
	}
	return total, nil
}

// Nodes returns the live nodes, as the registry has them.
func (c *Cluster) Nodes(ctx context.Context) ([]Node, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	nodes, err := c.reg.Nodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("cluster: failed to list the nodes: %w", err)
	}
	return nodes, nil
}

// Lookup returns the id of the node holding the spark, or ErrNotFound.
func (c *Cluster) Lookup(ctx context.Context, spark string) (string, error) {
	if c.closed.Load() {
		return "", ErrClosed
	}
	if _, ok := c.srv.Spark(spark); ok {
		return c.id, nil
	}
	node, err := c.reg.Lookup(ctx, spark)
	if err != nil && !errors.Is(err, ErrNotFound) {
		err = fmt.Errorf("cluster: failed to look up spark %s: %w", spark, err)
	}
	return node, err
}

// Stats are a node's counters since New.
type Stats struct {
	// Published counts messages handed to the broker.
	Published uint64
	// Dropped counts messages for other nodes that were lost: the queue
	// was full, or the broker or the registry failed.
	Dropped uint64
	// Received counts messages from other nodes.
	Received uint64
	// Unknown counts writes by id to sparks the registry did not know
	// (sent to every node instead), and messages for a spark that had
	// left this node by the time they arrived.
	Unknown uint64
	// Malformed counts messages from the broker that were not the
	// cluster's.
	Malformed uint64
	// Duplicates counts, with a durable broker, the copies of messages that
	// a retried publish made, dropped on arrival.
	Duplicates uint64
	// Gaps counts, with a durable broker, the times this node found that
	// the stream had trimmed messages it had not read (DurableBroker.Gaps).
	Gaps uint64
	// Durable tells that the broker's channels are durable streams
	// (DurableBroker); Duplicates, Gaps and Lag are about them.
	Durable bool
	// Lag is, with a durable broker, how far behind the stream this node's
	// reading is (LagReporter): the age of the last entry it delivered.
	Lag time.Duration
	// QueueBytes is what waits to be published now (bounded by
	// Options.QueueBytes).
	QueueBytes int64
	// BrokerUp is false while the broker connection is lost or publishing
	// fails, true otherwise.
	BrokerUp bool
}

// Stats returns the node's counters.
func (c *Cluster) Stats() Stats {
	st := Stats{
		Published:  c.stats.published.Load(),
		Dropped:    c.stats.dropped.Load(),
		Received:   c.stats.received.Load(),
		Unknown:    c.stats.unknown.Load(),
		Malformed:  c.stats.malformed.Load(),
		Duplicates: c.stats.duplicates.Load(),
		QueueBytes: c.out.size(),
		BrokerUp:   !c.rep.down("broker connection", "publish"),
	}
	if c.durable != nil {
		st.Durable = true
		st.Gaps = c.durable.Gaps()
		if lr, ok := c.durable.(LagReporter); ok {
			st.Lag = lr.Lag()
		}
	}
	return st
}

// Close takes the node out of the cluster: it stops delivering messages
// from other nodes, publishes what is queued and removes the node and its
// sparks from the registry, within ctx. When ctx ends first, what is left
// is dropped, Close returns ctx's error with the others, and a backend call
// in progress ends within Options.Timeout by itself. Close neither closes
// the server nor the Broker and Registry, which belong to the caller. Later
// writes through the cluster return ErrClosed.
func (c *Cluster) Close(ctx context.Context) error {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	if c.closed.Swap(true) {
		<-c.stopped
		return c.closeErr
	}
	var errs []error
	for _, s := range c.subs {
		if err := s.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	c.drainCtx = ctx
	if c.jn != nil {
		if err := c.jn.close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	p := c.presence.Load()
	if p != nil {
		p.closing() // before the outbox is drained
	}
	// A call in progress (a broker that hangs) ends with ctx, not with its
	// own timeout.
	stopAfter := context.AfterFunc(ctx, c.endLoops)
	close(c.stop)
	loopsDone := make(chan struct{})
	go func() {
		c.wg.Wait()
		stopAfter()
		c.endLoops()
		close(loopsDone)
	}()
	select {
	case <-loopsDone:
	case <-ctx.Done():
		// A backend call that cannot be interrupted (go-redis waits for
		// its socket deadline) ends within Options.Timeout, on its own.
		errs = append(errs, fmt.Errorf("cluster: close: %w", ctx.Err()))
	}
	lctx, cancel := context.WithTimeout(ctx, c.timeout)
	if err := c.reg.Leave(lctx, c.id); err != nil {
		errs = append(errs, fmt.Errorf("cluster: failed to leave the registry: %w", err))
	}
	if p != nil {
		if err := p.dir.LeaveRooms(lctx, c.id); err != nil {
			errs = append(errs, fmt.Errorf("cluster: failed to leave the room directory: %w", err))
		}
	}
	cancel()
	close(c.stopped)
	c.closeErr = errors.Join(errs...)
	return c.closeErr
}
