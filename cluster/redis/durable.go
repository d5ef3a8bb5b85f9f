package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/go-primus/primus/cluster"
)

// Durability configures the durable channels (Options.Durable): each
// channel between nodes is a Redis Stream, "<namespace>:log:<channel>",
// one entry per message (a broadcast is one entry, read by every node),
// trimmed to about MaxLen entries (XADD … MAXLEN ~). Each node reads its
// channels with XREAD from the last entry it delivered, so a node cut off
// from Redis catches up on what it missed when it is back, within what the
// stream keeps; what the trimming removed before a node read it is lost for
// that node, and counted (cluster.Stats.Gaps, from XINFO STREAM's
// entries-added and first entry: Redis 7 or later). Across a Redis restart, the
// streams survive only with Redis persistence (appendonly). The zero value
// of every field means its documented default.
type Durability struct {
	// MaxLen is about how many messages each channel's stream keeps. Zero
	// value means 100,000.
	MaxLen int64
	// Block is how long one XREAD waits for new messages. Zero value means
	// 2 seconds.
	Block time.Duration
}

const defaultDurableMaxLen = 100_000

// durable is a Backend's durable channels.
type durable struct {
	b   *Backend
	cfg Durability

	mu     sync.Mutex
	closed bool
	subs   map[*durableSub]struct{}

	gaps atomic.Uint64
	lag  atomic.Int64 // the age of the entry delivered last, in nanoseconds
}

var (
	_ cluster.DurableBroker = (*Backend)(nil)
	_ cluster.LagReporter   = (*Backend)(nil)
)

// Lag is the age of the stream entry delivered last (cluster.LagReporter),
// from the time in its id (XADD stamps ids with Redis's clock, in
// milliseconds).
func (b *Backend) Lag() time.Duration {
	if b.dur == nil {
		return 0
	}
	return time.Duration(b.dur.lag.Load())
}

// entryAge is how long ago the stream entry with the id (milliseconds-seq)
// was added.
func entryAge(id string) (time.Duration, bool) {
	ms, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return 0, false
	}
	return max(time.Since(time.UnixMilli(n)), 0), true
}

func newDurable(b *Backend, cfg Durability) *durable {
	if cfg.MaxLen <= 0 {
		cfg.MaxLen = defaultDurableMaxLen
	}
	if cfg.Block <= 0 {
		cfg.Block = 2 * time.Second
	}
	return &durable{b: b, cfg: cfg, subs: map[*durableSub]struct{}{}}
}

// Durable reports whether the channels are durable streams.
func (b *Backend) Durable() bool { return b.dur != nil }

// Gaps counts the times a subscription found entries trimmed before it
// read them.
func (b *Backend) Gaps() uint64 {
	if b.dur == nil {
		return 0
	}
	return b.dur.gaps.Load()
}

func (d *durable) key(channel string) string { return d.b.ns + ":log:" + channel }

// publish appends msgs to their streams in one pipeline, in order. On error
// some may be appended: the cluster numbers its messages, so that a retry's
// copies are dropped by the subscribers.
func (d *durable) publish(ctx context.Context, msgs []cluster.Message) error {
	_, err := d.b.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, m := range msgs {
			p.XAdd(ctx, &goredis.XAddArgs{
				Stream: d.key(m.Channel),
				MaxLen: d.cfg.MaxLen,
				Approx: true,
				Values: []any{"d", m.Data},
			})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis: failed to append %d message(s) to the streams: %w", len(msgs), err)
	}
	return nil
}

// subscribe reads the channel's stream from its end, in a goroutine of its
// own, until closed.
func (d *durable) subscribe(ctx context.Context, channel string, f func([]byte)) (cluster.Subscription, error) {
	s := &durableSub{d: d, key: d.key(channel), f: f, added: -1, done: make(chan struct{}), exited: make(chan struct{})}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, errors.New("redis: backend closed")
	}
	d.subs[s] = struct{}{}
	d.mu.Unlock()
	// The position to read after: the stream's last entry now, so that
	// what is appended from now on is delivered. When Redis cannot be
	// reached, the read loop finds it when Redis is back.
	if err := s.tail(ctx); err != nil {
		d.b.log.Warn("redis: stream subscription deferred: Redis unreachable", "channel", channel, "error", err)
	}
	go s.read()
	return s, nil
}

func (d *durable) close() {
	d.mu.Lock()
	d.closed = true
	subs := d.subs
	d.subs = nil
	d.mu.Unlock()
	// All stopped at once, then waited for: a read blocked in XREAD ends
	// within Block.
	for s := range subs {
		s.closeOnce.Do(func() { close(s.done) })
	}
	for s := range subs {
		<-s.exited
	}
}

// readBatch is how many entries one XREAD returns at most.
const readBatch = 512

// checkEvery is how often, at least, a subscription checks whether the
// stream trimmed entries it had not read.
const checkEvery = time.Second

// durableSub reads one channel's stream.
type durableSub struct {
	d    *durable
	key  string
	f    func([]byte)
	last string // the id of the last entry delivered (or read past); "" before the first read
	// added is how many entries the stream had had when last was its
	// last (XINFO STREAM's entries-added); -1 when unknown.
	added int64

	closeOnce sync.Once
	done      chan struct{}
	exited    chan struct{}
}

// tail sets the position to the stream's end ("0-0" when there is no
// stream yet).
func (s *durableSub) tail(ctx context.Context) error {
	info, err := s.d.b.rdb.XInfoStream(ctx, s.key).Result()
	if isNoStream(err) {
		s.last, s.added = "0-0", 0
		return nil
	}
	if err != nil {
		return err
	}
	s.last, s.added = info.LastGeneratedID, info.EntriesAdded
	if info.EntriesAdded == 0 && info.Length > 0 {
		s.added = -1 // Redis before 7.0 (see readChecked)
	}
	return nil
}

// isNoStream tells XINFO STREAM's answer for a key that does not exist.
func isNoStream(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no such key")
}

// read delivers the stream's entries after the last one, as they come; on
// an error it waits and goes on from the same place.
func (s *durableSub) read() {
	defer close(s.exited)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.done
		cancel()
	}()
	wait := 100 * time.Millisecond
	failing := false
	full := false // the last batch was full: this node is behind
	var checked time.Time
	for {
		if s.last == "" {
			if err := s.tail(ctx); err != nil {
				if !s.pause(ctx, &wait) {
					return
				}
				continue
			}
		}
		var msgs []goredis.XMessage
		var err error
		if failing || full || time.Since(checked) > checkEvery {
			// Back from an outage, behind, or a while since the last
			// check (a slow delivery): the stream may have trimmed entries
			// this node had not read.
			if msgs, err = s.readChecked(ctx); err == nil {
				checked = time.Now()
			}
		} else {
			msgs, err = s.readBlocking(ctx)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !failing {
				failing = true
				s.d.b.log.Warn("redis: stream read failed; retrying", "stream", s.key, "error", err)
				s.d.b.report(fmt.Errorf("redis: stream read failed: %w", err))
			}
			if !s.pause(ctx, &wait) {
				return
			}
			continue
		}
		if failing {
			failing = false
			wait = 100 * time.Millisecond
			s.d.b.report(nil)
		}
		full = len(msgs) == readBatch
		for _, e := range msgs {
			s.last = e.ID
			if s.added >= 0 {
				s.added++
			}
			if age, ok := entryAge(e.ID); ok {
				s.d.lag.Store(int64(age))
			}
			v, ok := e.Values["d"].(string)
			if !ok {
				continue
			}
			select {
			case <-s.done:
				return
			default:
			}
			s.f([]byte(v))
		}
	}
}

// readBlocking reads the entries after the last one, waiting up to Block
// for one.
func (s *durableSub) readBlocking(ctx context.Context) ([]goredis.XMessage, error) {
	rctx, cancel := context.WithTimeout(ctx, s.d.cfg.Block+5*time.Second)
	defer cancel()
	res, err := s.d.b.rdb.XRead(rctx, &goredis.XReadArgs{
		Streams: []string{s.key, s.last},
		Count:   readBatch,
		Block:   s.d.cfg.Block,
	}).Result()
	if errors.Is(err, goredis.Nil) {
		return nil, nil // nothing new within Block
	}
	if err != nil || len(res) == 0 {
		return nil, err
	}
	return res[0].Messages, nil
}

// readChecked reads the entries after the last one, without waiting, and
// in the same transaction the stream's counts, which tell how many entries
// after the last one the stream trimmed: entries are numbered as they are
// added (entries-added), and trimming removes them from the front. A gap is
// counted and logged. (XINFO STREAM's max-deleted-entry-id does not tell:
// only XDEL moves it, not trimming.)
func (s *durableSub) readChecked(ctx context.Context) ([]goredis.XMessage, error) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var info *goredis.XInfoStreamCmd
	var rd *goredis.XStreamSliceCmd
	_, err := s.d.b.rdb.TxPipelined(rctx, func(p goredis.Pipeliner) error {
		info = p.XInfoStream(rctx, s.key)
		rd = p.XRead(rctx, &goredis.XReadArgs{Streams: []string{s.key, s.last}, Count: readBatch, Block: -1})
		return nil
	})
	if isNoStream(info.Err()) {
		// No stream (yet, or any more after a restart of a Redis that
		// does not keep it): nothing to read.
		if s.last != "0-0" {
			s.added = -1
		}
		return nil, nil
	}
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, err
	}
	in := info.Val()
	var msgs []goredis.XMessage
	if res := rd.Val(); len(res) > 0 {
		msgs = res[0].Messages
	}
	// The entries present are numbered A-L+1 … A (A entries added, L
	// left); the one last read is number s.added.
	a, l := in.EntriesAdded, in.Length
	if a == 0 && l > 0 {
		// Redis before 7.0 does not count the entries added: gaps are
		// not seen.
		s.added = -1
		return msgs, nil
	}
	switch {
	case s.added >= 0 && a < s.added:
		s.gap(-1) // a new stream: how much the old one had is not known
		s.added = -1
	case s.added >= 0:
		if lost := a - l - s.added; lost > 0 {
			s.gap(lost)
			s.added = a - l
		}
	}
	if s.added < 0 {
		switch {
		case l == 0 || streamIDLess(s.last, in.RecordedFirstEntryID):
			s.added = a - l // what is read starts at the first entry
		case len(msgs) < readBatch:
			s.added = a - int64(len(msgs)) // what is read ends at the last
		}
	}
	return msgs, nil
}

// gap counts and logs entries the stream trimmed before this node read
// them (lost -1: an unknown number).
func (s *durableSub) gap(lost int64) {
	s.d.gaps.Add(1)
	s.d.b.log.Warn("redis: the stream trimmed messages this node had not read", "stream", s.key, "after", s.last, "lost", lost)
}

// streamIDLess compares two stream ids "ms-seq".
func streamIDLess(a, b string) bool {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	ami, _ := strconv.ParseUint(am, 10, 64)
	bmi, _ := strconv.ParseUint(bm, 10, 64)
	if ami != bmi {
		return ami < bmi
	}
	asi, _ := strconv.ParseUint(as, 10, 64)
	bsi, _ := strconv.ParseUint(bs, 10, 64)
	return asi < bsi
}

// pause waits before a retry, doubling up to two seconds; false when the
// subscription is closed meanwhile.
func (s *durableSub) pause(ctx context.Context, wait *time.Duration) bool {
	t := time.NewTimer(*wait)
	defer t.Stop()
	*wait = min(2**wait, 2*time.Second)
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *durableSub) Close() error {
	s.d.mu.Lock()
	delete(s.d.subs, s)
	s.d.mu.Unlock()
	s.closeOnce.Do(func() { close(s.done) })
	<-s.exited
	return nil
}
