package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Phases of a timed scenario: only what completes while measuring counts.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseStop
)

// window is the measured part of a scenario: its wall time, the server's
// CPU time and the load tool's own.
type window struct {
	pid   int
	phase atomic.Int32

	start              time.Time
	wall               time.Duration
	cpu0, self0, all0  time.Duration
	serverCPU, selfCPU time.Duration
	otherCPU           time.Duration // every other process on the machine
}

func (w *window) measuring() bool { return w.phase.Load() == phaseMeasure }
func (w *window) stopped() bool   { return w.phase.Load() == phaseStop }

func (w *window) begin() error {
	var err error
	if w.cpu0, err = processCPU(w.pid); err != nil {
		return err
	}
	if w.self0, err = processCPU(0); err != nil {
		return err
	}
	if w.all0, err = machineBusy(); err != nil {
		return err
	}
	w.start = time.Now()
	w.phase.Store(phaseMeasure)
	return nil
}

func (w *window) end() error {
	w.phase.Store(phaseStop)
	w.wall = time.Since(w.start)
	cpu, err := processCPU(w.pid)
	if err != nil {
		return err
	}
	self, err := processCPU(0)
	if err != nil {
		return err
	}
	all, err := machineBusy()
	if err != nil {
		return err
	}
	w.serverCPU, w.selfCPU = cpu-w.cpu0, self-w.self0
	w.otherCPU = max(0, all-w.all0-w.serverCPU-w.selfCPU)
	return nil
}

// figures returns the figures every timed scenario reports, for msgs
// messages (round trips or deliveries) in the window.
func (w *window) figures(msgs int64) Figures {
	f := Figures{
		FigMsgsPerSec:  float64(msgs) / w.wall.Seconds(),
		FigServerCPUPc: 100 * w.serverCPU.Seconds() / w.wall.Seconds(),
		FigLoadCPUPc:   100 * w.selfCPU.Seconds() / w.wall.Seconds(),
		FigOtherCPUPc:  100 * w.otherCPU.Seconds() / w.wall.Seconds(),
	}
	if msgs > 0 {
		f[FigServerCPUPerMsg] = float64(w.serverCPU.Microseconds()) / float64(msgs)
		f[FigLoadCPUPerMsg] = float64(w.selfCPU.Microseconds()) / float64(msgs)
	}
	return f
}

// group runs a scenario's goroutines. The first error is kept and triggers
// onError once (which closes the connections, so that every goroutine
// blocked on one returns); failed is closed then.
type group struct {
	wg      sync.WaitGroup
	once    sync.Once
	err     error
	failed  chan struct{}
	onError func()
}

func newGroup(onError func()) *group {
	return &group{failed: make(chan struct{}), onError: onError}
}

func (g *group) Go(f func() error) {
	g.wg.Go(func() {
		if err := f(); err != nil {
			g.fail(err)
		}
	})
}

func (g *group) fail(err error) {
	g.once.Do(func() {
		g.err = err
		close(g.failed)
		if g.onError != nil {
			g.onError()
		}
	})
}

// wait waits for the goroutines; after timeout it fails the group (closing
// the connections) and waits for the rest.
func (g *group) wait(timeout time.Duration) error {
	done := make(chan struct{})
	go func() {
		g.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		g.fail(fmt.Errorf("bench: the scenario's connections did not finish within %v of its end", timeout))
		<-done
	}
	return g.err
}

// timeline runs the warm-up and the measured duration of a timed scenario,
// and fetches a CPU profile of the measured part when profiling. It returns
// early when the group fails or ctx ends.
func (e *env) timeline(ctx context.Context, sc Scenario, w *window, g *group) error {
	sleep := func(d time.Duration) error {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-g.failed:
			return nil // the group has the error
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := sleep(sc.Warmup); err != nil {
		return err
	}
	if err := w.begin(); err != nil {
		return err
	}
	prof := e.startCPUProfile(ctx, sc.Duration)
	err := sleep(sc.Duration)
	if err2 := w.end(); err == nil {
		err = err2
	}
	if err2 := prof(); err == nil {
		err = err2
	}
	return err
}
