package bench

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// broadcaster sends broadcasts through the server from one connection and
// times their arrival on every connection. Broadcast k carries the JSON
// string "b<k>:xxx…"; a receiver that has it looks up when it was sent.
type broadcaster struct {
	conns  []*conn
	size   int
	window int
	base   time.Time

	// Slot k%len(slots) belongs to broadcast k while it is in flight; at
	// most window are, and there are 2×window slots.
	slots []struct {
		sent      atomic.Int64 // ns since base
		remaining atomic.Int64 // receivers that have not got it yet
	}
	complete chan completion

	closing    atomic.Bool
	counting   func() bool      // whether deliveries are recorded now; nil: always
	deliveries shardedHistogram // per receiver: send to arrival
	g          *group
}

type completion struct {
	seq int64
	at  time.Duration // since base: when the last receiver got it
}

// newBroadcaster starts a reading goroutine per connection; close stops
// them. Deliveries are timed while counting returns true (nil: always).
func newBroadcaster(conns []*conn, size, window int, counting func() bool) *broadcaster {
	b := &broadcaster{
		conns:    conns,
		counting: counting,
		size:     size,
		window:   window,
		base:     time.Now(),
		complete: make(chan completion, 2*window),
		g:        newGroup(func() { closeAll(conns) }),
	}
	b.slots = make([]struct {
		sent      atomic.Int64
		remaining atomic.Int64
	}, 2*window)
	for i, c := range conns {
		b.g.Go(func() error { return b.receive(i, c) })
	}
	return b
}

func (b *broadcaster) receive(i int, c *conn) error {
	for {
		msg, err := c.read()
		if err != nil {
			if b.closing.Load() {
				return nil
			}
			return fmt.Errorf("bench: broadcast receiver %d: %w", i, err)
		}
		now := time.Since(b.base)
		seq, ok := parseSeq(msg)
		if !ok || len(msg) != b.size {
			return fmt.Errorf("bench: broadcast receiver %d got %.40q (%d bytes), not a broadcast of %d bytes", i, msg, len(msg), b.size)
		}
		s := &b.slots[seq%int64(len(b.slots))]
		if b.counting == nil || b.counting() {
			b.deliveries.record(i, now-time.Duration(s.sent.Load()))
		}
		if s.remaining.Add(-1) == 0 {
			b.complete <- completion{seq, now}
		}
	}
}

// parseSeq reads k from "b<k>:…".
func parseSeq(msg []byte) (int64, bool) {
	rest, ok := bytes.CutPrefix(msg, []byte(`"b`))
	if !ok {
		return 0, false
	}
	digits, _, ok := bytes.Cut(rest, []byte(":"))
	if !ok {
		return 0, false
	}
	k, err := strconv.ParseInt(string(digits), 10, 64)
	return k, err == nil && k >= 0
}

// command is the message that asks the server to broadcast number seq.
func (b *broadcaster) command(seq int64) []byte {
	const pre, post = `{"cmd":"broadcast","data":`, `}`
	return append(append([]byte(pre), makeMessage(b.size, "b"+strconv.FormatInt(seq, 10)+":")...), post...)
}

// run sends broadcasts, window at a time, until more() says stop or max
// were sent, and waits for each to reach every connection. record gets the
// time until the last receiver had each one, with whether it counts.
func (b *broadcaster) run(more func() bool, max int64, record func(d time.Duration)) error {
	var seq int64
	inflight := 0
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		for inflight < b.window && seq < max && more() {
			s := &b.slots[seq%int64(len(b.slots))]
			s.remaining.Store(int64(len(b.conns)))
			s.sent.Store(int64(time.Since(b.base)))
			if err := b.conns[0].write(b.command(seq)); err != nil {
				return fmt.Errorf("bench: failed to send broadcast %d: %w", seq, err)
			}
			seq++
			inflight++
		}
		if inflight == 0 {
			return nil
		}
		t.Reset(10 * time.Second)
		select {
		case c := <-b.complete:
			inflight--
			s := &b.slots[c.seq%int64(len(b.slots))]
			record(c.at - time.Duration(s.sent.Load()))
		case <-b.g.failed:
			return b.g.err
		case <-t.C:
			return fmt.Errorf("bench: a broadcast did not reach all %d connections within 10 s", len(b.conns))
		}
	}
}

// close stops the receivers (closing the connections) and returns the first
// error one had.
func (b *broadcaster) close() error {
	b.closing.Store(true)
	closeAll(b.conns)
	return b.g.wait(10 * time.Second)
}

// ready makes every connection exchange one echo with the server, so that
// the server has finished setting each one up (a broadcast reaches only the
// connections it knows about).
func ready(ctx context.Context, conns []*conn) error {
	var wg sync.WaitGroup
	var next atomic.Int64
	var mu sync.Mutex
	var first error
	for range min(len(conns), 64) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(conns) || ctx.Err() != nil {
					return
				}
				msg := makeMessage(64, "r"+strconv.Itoa(i)+":")
				err := conns[i].write(msg)
				var got []byte
				if err == nil {
					got, err = conns[i].read()
				}
				if err == nil && !bytes.Equal(got, msg) {
					err = fmt.Errorf("bench: echo returned %.40q, not %.40q", got, msg)
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// runBroadcast measures broadcast throughput and latency on a timeline.
func (e *env) runBroadcast(ctx context.Context, sc Scenario) (Figures, error) {
	conns, err := e.dialer.dialAll(ctx, sc.Conns)
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)
	if err := ready(ctx, conns); err != nil {
		return nil, err
	}
	w := &window{pid: e.proc.pid}
	b := newBroadcaster(conns, sc.Size, sc.Window, w.measuring)
	var h histogram
	var n int64
	sender := newGroup(func() { closeAll(conns) })
	sender.Go(func() error {
		return b.run(func() bool { return !w.stopped() }, sc.MaxMessages/int64(len(conns))+1, func(d time.Duration) {
			if w.measuring() {
				h.record(d)
				n++
			}
		})
	})
	err = e.timeline(ctx, sc, w, sender)
	if err2 := sender.wait(20 * time.Second); err == nil {
		err = err2
	}
	if err == nil {
		err = e.snapshotProfiles(ctx) // while the connections are open
	}
	if err2 := b.close(); err == nil {
		err = err2
	}
	if err != nil {
		return nil, err
	}
	f := w.figures(n * int64(len(conns)))
	f[FigP50] = micros(h.quantile(0.50))
	f[FigP99] = micros(h.quantile(0.99))
	d := b.deliveries.total()
	f[FigDeliveryP99] = micros(d.quantile(0.99))
	return f, nil
}
