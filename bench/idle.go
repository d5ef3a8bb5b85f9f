package bench

import (
	"context"
	"time"
)

// runIdle opens the connections, lets each exchange one echo, and reads the
// server's resident memory; the bytes per connection are the growth over
// the freshly started server's. Then it measures broadcasts across all of
// them, one at a time.
func (e *env) runIdle(ctx context.Context, sc Scenario) (Figures, error) {
	rss0, err := processRSS(e.proc.pid)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	conns, err := e.dialer.dialAll(ctx, sc.Conns)
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)
	dialRate := float64(len(conns)) / time.Since(t0).Seconds()
	if err := ready(ctx, conns); err != nil {
		return nil, err
	}
	// The readers of the broadcaster answer heartbeats from here on.
	b := newBroadcaster(conns, sc.Size, 1, nil)
	// Let the servers finish what the handshakes and the echo left to do
	// (Node's garbage collector, Go's background sweeping) before reading.
	rss, err := settledRSS(ctx, e.proc.pid)
	if err == nil {
		err = e.snapshotProfiles(ctx)
	}
	var h histogram
	if err == nil {
		err = b.run(func() bool { return true }, int64(sc.Broadcasts), h.record)
	}
	if err2 := b.close(); err == nil {
		err = err2
	}
	if err != nil {
		return nil, err
	}
	return Figures{
		FigBytesPerConn: float64(rss-rss0) / float64(len(conns)),
		FigRSSMiB:       float64(rss) / (1 << 20),
		FigDialPerSec:   dialRate,
		FigP50:          micros(h.quantile(0.50)),
		FigP99:          micros(h.quantile(0.99)),
	}, nil
}

// settledRSS reads the resident memory every 250 ms until two readings in a
// row differ by less than 1 %, or 3 s have passed, and returns the last.
func settledRSS(ctx context.Context, pid int) (int64, error) {
	prev, err := processRSS(pid)
	if err != nil {
		return 0, err
	}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for range 12 {
		select {
		case <-t.C:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		rss, err := processRSS(pid)
		if err != nil {
			return 0, err
		}
		if diff := rss - prev; diff < prev/100 && -diff < prev/100 {
			return rss, nil
		}
		prev = rss
	}
	return prev, nil
}
