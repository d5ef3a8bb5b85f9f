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
// max-deleted-entry-id: Redis 7 or later). Across a Redis restart, the
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
	s := &durableSub{d: d, key: d.key(channel), f: f, done: make(chan struct{}), exited: make(chan struct{})}
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
	if last, err := s.tail(ctx); err == nil {
		s.last = last
	} else {
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
	for s := range subs {
		_ = s.Close()
	}
}

// durableSub reads one channel's stream.
type durableSub struct {
	d    *durable
	key  string
	f    func([]byte)
	last string // the id of the last entry delivered (or read past); "" before the first read

	closeOnce sync.Once
	done      chan struct{}
	exited    chan struct{}
}

// tail returns the id of the stream's last entry ("0-0" when it is empty).
func (s *durableSub) tail(ctx context.Context) (string, error) {
	ents, err := s.d.b.rdb.XRevRangeN(ctx, s.key, "+", "-", 1).Result()
	if err != nil {
		return "", err
	}
	if len(ents) == 0 {
		return "0-0", nil
	}
	return ents[0].ID, nil
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
	for {
		if s.last == "" {
			last, err := s.tail(ctx)
			if err != nil {
				if !s.pause(ctx, &wait) {
					return
				}
				continue
			}
			s.last = last
		}
		rctx, rcancel := context.WithTimeout(ctx, s.d.cfg.Block+5*time.Second)
		res, err := s.d.b.rdb.XRead(rctx, &goredis.XReadArgs{
			Streams: []string{s.key, s.last},
			Count:   512,
			Block:   s.d.cfg.Block,
		}).Result()
		rcancel()
		if errors.Is(err, goredis.Nil) {
			continue // nothing new within Block
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
			if s.trimmed(ctx) {
				s.d.gaps.Add(1)
				s.d.b.log.Warn("redis: the stream trimmed messages this node had not read", "stream", s.key, "after", s.last)
			}
		}
		for _, st := range res {
			for _, e := range st.Messages {
				s.last = e.ID
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
}

// trimmed reports whether entries after the last one read were trimmed:
// the stream's max-deleted-entry-id is beyond it.
func (s *durableSub) trimmed(ctx context.Context) bool {
	res, err := s.d.b.rdb.Do(ctx, "XINFO", "STREAM", s.key).Result()
	if err != nil {
		return false
	}
	var maxDeleted string
	switch v := res.(type) {
	case map[any]any:
		maxDeleted, _ = v["max-deleted-entry-id"].(string)
	case []any:
		for i := 0; i+1 < len(v); i += 2 {
			if k, _ := v[i].(string); k == "max-deleted-entry-id" {
				maxDeleted, _ = v[i+1].(string)
			}
		}
	}
	return maxDeleted != "" && streamIDLess(s.last, maxDeleted)
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
	s.closeOnce.Do(func() { close(s.done) })
	<-s.exited
	return nil
}
