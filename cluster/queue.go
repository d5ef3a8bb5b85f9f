package cluster

import (
	"context"
	"sync"
)

// outbox is the bounded queue of messages for the other nodes. Writers add
// to it without waiting; one goroutine publishes what it holds, in batches,
// so that a slow or unreachable broker costs writers nothing but the
// messages that do not fit.
type outbox struct {
	max  int64
	wake chan struct{}

	mu      sync.Mutex
	msgs    []Message
	spare   []Message
	bytes   int64
	stamped bool              // durable broker: number each message per channel
	numbers map[string]uint64 // the last number given, per channel
}

func newOutbox(max int64) *outbox {
	return &outbox{max: max, wake: make(chan struct{}, 1)}
}

// push queues m and reports whether it fit.
func (o *outbox) push(m Message) bool {
	n := int64(len(m.Data) + len(m.Channel))
	o.mu.Lock()
	if o.bytes > 0 && o.bytes+n > o.max {
		o.mu.Unlock()
		return false
	}
	if o.stamped {
		// Numbered here, under the lock: in the order of publication.
		o.numbers[m.Channel]++
		m.Data = stamp(o.numbers[m.Channel], m.Data)
	}
	o.msgs = append(o.msgs, m)
	o.bytes += n
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
	return true
}

// size returns the bytes queued.
func (o *outbox) size() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.bytes
}

// take returns everything queued; give the slice back with release.
func (o *outbox) take() []Message {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.msgs) == 0 {
		return nil
	}
	batch := o.msgs
	o.msgs, o.spare = o.spare[:0], nil
	o.bytes = 0
	return batch
}

// unshift puts messages that could not be published back at the front, to
// be published again, in order (a durable broker). Those that no longer fit
// are dropped: it returns how many.
func (o *outbox) unshift(ms []Message) (dropped int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	keep := make([]Message, 0, len(ms)+len(o.msgs))
	var bytes int64
	for i, m := range ms {
		n := int64(len(m.Data) + len(m.Channel))
		if bytes > 0 && bytes+n+o.bytes > o.max {
			dropped = len(ms) - i
			break
		}
		keep = append(keep, m)
		bytes += n
	}
	o.msgs = append(keep, o.msgs...)
	o.bytes += bytes
	return dropped
}

func (o *outbox) release(batch []Message) {
	clear(batch)
	o.mu.Lock()
	if o.spare == nil {
		o.spare = batch[:0]
	}
	o.mu.Unlock()
}

// tracker counts work in progress, so that Flush can wait for it.
type tracker struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed while n == 0
}

func newTracker() *tracker {
	t := &tracker{idle: make(chan struct{})}
	close(t.idle)
	return t
}

func (t *tracker) add(k int) {
	t.mu.Lock()
	if t.n == 0 {
		t.idle = make(chan struct{})
	}
	t.n += k
	t.mu.Unlock()
}

func (t *tracker) done(k int) {
	t.mu.Lock()
	t.n -= k
	if t.n == 0 {
		close(t.idle)
	}
	t.mu.Unlock()
}

// wait returns when no work is in progress, or with ctx's error.
func (t *tracker) wait(ctx context.Context) error {
	t.mu.Lock()
	idle := t.idle
	t.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
