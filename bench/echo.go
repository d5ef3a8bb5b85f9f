package bench

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"
)

// makeMessage returns a JSON string of exactly size bytes that starts with
// tag (so it is never mistaken for a primus:: control message).
func makeMessage(size int, tag string) []byte {
	b := make([]byte, 0, max(size, len(tag)+2))
	b = append(b, '"')
	b = append(b, tag...)
	for len(b) < size-1 {
		b = append(b, 'x')
	}
	return append(b, '"')
}

// runEcho measures closed-loop (Window 1) or pipelined echo.
func (e *env) runEcho(ctx context.Context, sc Scenario) (Figures, error) {
	conns, err := e.dialer.dialAll(ctx, sc.Conns)
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)

	w := &window{pid: e.proc.pid}
	g := newGroup(func() { closeAll(conns) })
	hists := make([]histogram, len(conns))
	counts := make([]int64, len(conns))
	var budget atomic.Int64
	budget.Store(sc.MaxMessages)
	for i, c := range conns {
		msg := makeMessage(sc.Size, "e"+strconv.Itoa(i)+":")
		if sc.Kind == Pipeline {
			e.pipelined(g, w, c, msg, sc.Window, &budget, &hists[i], &counts[i])
			continue
		}
		g.Go(func() error {
			for !w.stopped() && budget.Add(-1) >= 0 {
				t0 := time.Now()
				if err := c.write(msg); err != nil {
					return err
				}
				got, err := c.read()
				if err != nil {
					return err
				}
				d := time.Since(t0)
				if !bytes.Equal(got, msg) {
					return fmt.Errorf("bench: echo returned %d bytes that differ from the %d sent", len(got), len(msg))
				}
				if w.measuring() {
					hists[i].record(d)
					counts[i]++
				}
			}
			return nil
		})
	}
	err = e.timeline(ctx, sc, w, g)
	if err2 := g.wait(10 * time.Second); err == nil {
		err = err2
	}
	if err == nil {
		err = e.snapshotProfiles(ctx) // while the connections are open
	}
	if err != nil {
		return nil, err
	}
	var h histogram
	var n int64
	for i := range hists {
		h.merge(&hists[i])
		n += counts[i]
	}
	f := w.figures(n)
	f[FigP50] = micros(h.quantile(0.50))
	f[FigP99] = micros(h.quantile(0.99))
	return f, nil
}

// pipelined starts the writer and the reader of one pipelined connection:
// the writer keeps window messages in flight, the reader matches each echo
// with its send time (echoes come back in order).
func (e *env) pipelined(g *group, w *window, c *conn, msg []byte, window int, budget *atomic.Int64, h *histogram, count *int64) {
	slots := make(chan struct{}, window)
	sent := make(chan time.Time, window) // never blocks: slots bounds it
	dead := make(chan struct{})
	g.Go(func() error {
		defer close(sent)
		for !w.stopped() && budget.Add(-1) >= 0 {
			select {
			case slots <- struct{}{}:
			case <-dead:
				return nil
			}
			sent <- time.Now()
			if err := c.write(msg); err != nil {
				return err
			}
		}
		return nil
	})
	g.Go(func() error {
		defer close(dead)
		for t0 := range sent {
			got, err := c.read()
			if err != nil {
				return err
			}
			d := time.Since(t0)
			<-slots
			if !bytes.Equal(got, msg) {
				return fmt.Errorf("bench: echo returned %d bytes that differ from the %d sent", len(got), len(msg))
			}
			if w.measuring() {
				h.record(d)
				*count++
			}
		}
		return nil
	})
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
