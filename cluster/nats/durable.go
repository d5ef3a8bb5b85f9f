package nats

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/go-primus/primus/cluster"
)

// Durability configures the durable channels (Options.Durable): one
// JetStream stream, "<namespace>-log" on the subjects "<namespace>.log.>",
// holds every message between nodes, one entry per message (a broadcast is
// one entry, read by every node), and each node reads its channels with an
// ordered consumer that resumes after the last message it delivered when
// the connection comes back. A node cut off from the server, or a server
// that restarts (the stream is on disk by default), thus costs no message,
// within the stream's limits: what they trim before a node has read it is
// lost for that node, and counted (cluster.Stats.Gaps). The zero value of
// every field means its documented default.
type Durability struct {
	// MaxAge bounds how long the stream keeps a message: a node cut off
	// longer than this catches up only on younger messages. Zero value
	// means an hour.
	MaxAge time.Duration
	// MaxBytes bounds the stream's size; the oldest messages go first.
	// Zero value means 1 GiB.
	MaxBytes int64
	// Memory keeps the stream in the server's memory instead of on disk:
	// faster, but a server restart loses it. Zero value means on disk.
	Memory bool
}

const (
	// gapCheckAfter is the pause in a subscription's deliveries after
	// which it asks the stream whether it trimmed what came in between.
	gapCheckAfter = 500 * time.Millisecond

	defaultDurableMaxAge   = time.Hour
	defaultDurableMaxBytes = 1 << 30
	// durableAckWait bounds the wait for the server's acknowledgements of a
	// batch when the caller's context has no deadline.
	durableAckWait = 5 * time.Second
)

// durable is a Backend's durable channels.
type durable struct {
	b    *Backend
	cfg  Durability
	name string

	mu     sync.Mutex
	st     jetstream.Stream // nil until made, and again after a failure
	closed bool
	subs   []*durableSub

	gaps atomic.Uint64
	lag  atomic.Int64 // the age of the entry delivered last, in nanoseconds
}

var (
	_ cluster.DurableBroker  = (*Backend)(nil)
	_ cluster.BatchPublisher = (*Backend)(nil)
	_ cluster.LagReporter    = (*Backend)(nil)
)

func newDurable(b *Backend, cfg Durability) *durable {
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = defaultDurableMaxAge
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = defaultDurableMaxBytes
	}
	return &durable{b: b, cfg: cfg, name: b.ns + "-log"}
}

// Lag is the age of the stream entry delivered last (cluster.LagReporter),
// from the time JetStream stored it.
func (b *Backend) Lag() time.Duration {
	if b.dur == nil {
		return 0
	}
	return time.Duration(b.dur.lag.Load())
}

// Durable reports whether the channels are a durable stream.
func (b *Backend) Durable() bool { return b.dur != nil }

// Gaps counts the times a subscription found messages trimmed before it
// read them.
func (b *Backend) Gaps() uint64 {
	if b.dur == nil {
		return 0
	}
	return b.dur.gaps.Load()
}

// PublishBatch publishes msgs in order. With durable channels it waits for
// the server's acknowledgement of every one (within ctx); without, it
// publishes each on core NATS.
func (b *Backend) PublishBatch(ctx context.Context, msgs []cluster.Message) error {
	if b.dur != nil {
		return b.dur.publish(ctx, msgs)
	}
	for _, m := range msgs {
		if err := b.Publish(ctx, m.Channel, m.Data); err != nil {
			return err
		}
	}
	return nil
}

func (d *durable) subject(channel string) string { return d.b.ns + ".log." + channel }

// stream makes the stream when needed.
func (d *durable) stream(ctx context.Context) (jetstream.Stream, error) {
	d.mu.Lock()
	st := d.st
	d.mu.Unlock()
	if st != nil {
		return st, nil
	}
	storage := jetstream.FileStorage
	if d.cfg.Memory {
		storage = jetstream.MemoryStorage
	}
	st, err := d.b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:      d.name,
		Subjects:  []string{d.b.ns + ".log.>"},
		Storage:   storage,
		Retention: jetstream.LimitsPolicy,
		Discard:   jetstream.DiscardOld,
		MaxAge:    d.cfg.MaxAge,
		MaxBytes:  d.cfg.MaxBytes,
	})
	if err != nil {
		return nil, fmt.Errorf("nats: failed to make the stream %q: %w", d.name, err)
	}
	d.mu.Lock()
	d.st = st
	d.mu.Unlock()
	return st, nil
}

// forget drops the stream handle after a failure that may mean the stream
// is gone (a server restarted with the stream in memory).
func (d *durable) forget() {
	d.mu.Lock()
	d.st = nil
	d.mu.Unlock()
}

// publish stores msgs in the stream, in order, and waits for the server's
// acknowledgements. On error, some may be stored: the cluster numbers its
// messages, so a retry's copies are dropped by the subscribers.
func (d *durable) publish(ctx context.Context, msgs []cluster.Message) error {
	if _, err := d.stream(ctx); err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, durableAckWait)
		defer cancel()
	}
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, m := range msgs {
		f, err := d.b.js.PublishAsync(d.subject(m.Channel), m.Data, jetstream.WithExpectStream(d.name))
		if err != nil {
			d.forget()
			return fmt.Errorf("nats: failed to publish to the stream: %w", err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			d.forget()
			return fmt.Errorf("nats: the stream did not take a message: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("nats: no acknowledgement from the stream: %w", ctx.Err())
		}
	}
	return nil
}

// subscribe reads the channel from the stream, from now on, with an
// ordered consumer that resumes after its last message when the connection
// comes back. When the server cannot be reached now, the subscription is
// made in the background as soon as it can be.
func (d *durable) subscribe(ctx context.Context, channel string, f func([]byte)) (cluster.Subscription, error) {
	s := &durableSub{d: d, channel: channel, f: f, done: make(chan struct{})}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, errors.New("nats: backend closed")
	}
	d.subs = append(d.subs, s)
	d.mu.Unlock()
	if err := s.start(ctx); err != nil {
		d.b.log.Debug("nats: stream subscription not made yet; retrying", "channel", channel, "error", err)
		go s.retry()
	}
	return s, nil
}

func (d *durable) close() {
	d.mu.Lock()
	d.closed = true
	subs := d.subs
	d.subs = nil
	d.mu.Unlock()
	for _, s := range subs {
		_ = s.Close()
	}
}

// durableSub is one channel's subscription on the stream.
type durableSub struct {
	d       *durable
	channel string
	f       func([]byte)

	mu      sync.Mutex
	cc      jetstream.ConsumeContext
	last    uint64    // the stream sequence of the last message delivered
	lastAt  time.Time // when
	closed  bool
	done    chan struct{} // closed by Close
	started atomic.Bool
}

// start makes the ordered consumer: from the stream's next message the
// first time, after the last one delivered afterwards.
func (s *durableSub) start(ctx context.Context) error {
	st, err := s.d.stream(ctx)
	if err != nil {
		return err
	}
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{s.d.subject(s.channel)},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	}
	s.mu.Lock()
	if last := s.last; last > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, last+1
	}
	s.mu.Unlock()
	cons, err := st.OrderedConsumer(ctx, cfg)
	if err != nil {
		s.d.forget()
		return fmt.Errorf("nats: failed to read the stream: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	cc, err := cons.Consume(s.deliver)
	if err != nil {
		return fmt.Errorf("nats: failed to read the stream: %w", err)
	}
	s.cc = cc
	s.started.Store(true)
	return nil
}

// retry makes the consumer once the server can be reached.
func (s *durableSub) retry() {
	wait := 100 * time.Millisecond
	for {
		select {
		case <-s.done:
			return
		case <-time.After(wait):
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := s.start(ctx)
		cancel()
		if err == nil {
			return
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// deliver hands a message to the cluster, noting a hole in the stream: the
// ordered consumer starts again after the last message it delivered, and
// when the stream no longer holds that one's successor, what was trimmed in
// between is lost.
func (s *durableSub) deliver(m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	last, lastAt := s.last, s.lastAt
	s.last, s.lastAt = md.Sequence.Stream, time.Now()
	s.mu.Unlock()
	// Sequences skip the other channels' messages, so a jump alone says
	// nothing; after a pause (an outage) the stream is asked.
	if last > 0 && md.Sequence.Stream > last+1 && time.Since(lastAt) > gapCheckAfter && s.trimmed(last) {
		s.d.gaps.Add(1)
		s.d.b.log.Warn("nats: the stream trimmed messages this node had not read", "channel", s.channel, "after", last, "next", md.Sequence.Stream)
	}
	s.d.lag.Store(int64(max(time.Since(md.Timestamp), 0)))
	s.f(m.Data())
}

// trimmed reports whether the stream no longer has messages just after
// sequence last: its first sequence is beyond it.
func (s *durableSub) trimmed(last uint64) bool {
	st, err := s.d.stream(context.Background())
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	info, err := st.Info(ctx)
	if err != nil {
		return false
	}
	return info.State.FirstSeq > last+1
}

func (s *durableSub) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	cc := s.cc
	s.mu.Unlock()
	close(s.done)
	if cc != nil {
		cc.Stop()
		<-cc.Closed()
	}
	return nil
}
