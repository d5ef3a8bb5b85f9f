package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// jqueue is the bounded queue of entries this node appends to the journal.
// Writers add to it without waiting; one goroutine appends what it holds,
// in order and in batches, and retries a batch that failed until it is in
// (the journal stores nothing twice: entries are numbered per publisher),
// so that an outage of the broker costs only what does not fit.
type jqueue struct {
	timeout time.Duration
	max     int64
	wake    chan struct{}

	mu       sync.Mutex
	entries  []JournalEntry
	bytes    int64
	seq      uint64 // the last number given
	appended uint64 // every entry up to it is in the journal
	progress chan struct{}
	closed   bool
	stop     chan struct{}
	done     chan struct{}
}

func newJQueue(timeout time.Duration, max int64) *jqueue {
	return &jqueue{timeout: timeout, max: max, wake: make(chan struct{}, 1), progress: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
}

// push queues an entry and reports whether it fit.
func (q *jqueue) push(publisher string, data []byte) bool {
	n := int64(len(data)) + 64
	q.mu.Lock()
	if q.closed || q.bytes > 0 && q.bytes+n > q.max {
		q.mu.Unlock()
		return false
	}
	q.seq++
	q.entries = append(q.entries, JournalEntry{Publisher: publisher, Seq: q.seq, Data: data})
	q.bytes += n
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// last returns the number of the last entry queued.
func (q *jqueue) last() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.seq
}

// inUpTo returns the number up to which every entry is in the journal.
func (q *jqueue) inUpTo() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.appended
}

// flush waits until every entry queued so far is in the journal.
func (q *jqueue) flush(ctx context.Context) error {
	q.mu.Lock()
	target := q.seq
	for q.appended < target {
		ch := q.progress
		closed := q.closed
		q.mu.Unlock()
		if closed {
			select {
			case <-q.done:
			case <-ctx.Done():
				return ctx.Err()
			}
			q.mu.Lock()
			if q.appended < target {
				q.mu.Unlock()
				return ErrClosed
			}
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		q.mu.Lock()
	}
	q.mu.Unlock()
	return nil
}

// run appends the queue until ctx ends or close has drained it.
func (q *jqueue) run(ctx context.Context, j Journal, rep *reporter) {
	defer close(q.done)
	retry := firstRetry
	for {
		q.mu.Lock()
		batch := q.entries[:min(len(q.entries), maxBatch)]
		closed := q.closed
		q.mu.Unlock()
		if len(batch) == 0 {
			if closed {
				return
			}
			select {
			case <-q.wake:
			case <-q.stop:
			case <-ctx.Done():
				return
			}
			continue
		}
		actx, cancel := context.WithTimeout(ctx, q.timeout)
		err := j.Append(actx, batch)
		cancel()
		if err != nil {
			rep.fail("journal", fmt.Errorf("cluster: failed to append %d entries to the journal (retrying): %w", len(batch), err), 0)
			t := time.NewTimer(retry)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
			retry = min(2*retry, time.Second)
			continue
		}
		rep.ok("journal")
		retry = firstRetry
		var n int64
		for _, e := range batch {
			n += int64(len(e.Data)) + 64
		}
		q.mu.Lock()
		q.appended = batch[len(batch)-1].Seq
		clear(q.entries[:len(batch)])
		q.entries = q.entries[len(batch):]
		q.bytes -= n
		close(q.progress)
		q.progress = make(chan struct{})
		q.mu.Unlock()
	}
}

// close stops taking entries and waits, within ctx, until those queued
// are in.
func (q *jqueue) close(ctx context.Context) error {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.stop)
	}
	q.mu.Unlock()
	select {
	case <-q.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cluster: close: entries left out of the journal: %w", ctx.Err())
	}
}
