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

	mu    sync.Mutex
	msgs  []Message
	spare []Message
	bytes int64
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
