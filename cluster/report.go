package cluster

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// reporter turns a stream of failures into few reports: one when a kind of
// failure starts, then at most one a second while it lasts, and a recovery
// notice when it ends. A broker outage at ten thousand writes a second must
// not become ten thousand log lines a second.
type reporter struct {
	log  *slog.Logger
	hook func(error)

	failing atomic.Int32 // len(state), read without the lock on the hot path
	mu      sync.Mutex
	state   map[string]*failure
}

type failure struct {
	since   time.Time
	last    time.Time // of the last report
	dropped int       // since the last report
	total   int
}

const reportEvery = time.Second

func newReporter(log *slog.Logger, hook func(error)) *reporter {
	return &reporter{log: log, hook: hook, state: map[string]*failure{}}
}

// fail reports err for the operation what, which lost dropped messages.
func (r *reporter) fail(what string, err error, dropped int) {
	now := time.Now()
	r.mu.Lock()
	f := r.state[what]
	first := f == nil
	if first {
		f = &failure{since: now}
		r.state[what] = f
		r.failing.Add(1)
	}
	f.dropped += dropped
	f.total += dropped
	report := first || now.Sub(f.last) >= reportEvery
	var n int
	if report {
		f.last, n, f.dropped = now, f.dropped, 0
	}
	r.mu.Unlock()
	if !report {
		return
	}
	r.log.Warn("cluster: "+what+" failed", "error", err, "dropped", n)
	if r.hook != nil {
		r.hook(err)
	}
}

// ok tells that what succeeded; a failure of it, if any, has ended.
func (r *reporter) ok(what string) {
	if r.failing.Load() == 0 {
		return
	}
	r.mu.Lock()
	f := r.state[what]
	if f != nil {
		delete(r.state, what)
		r.failing.Add(-1)
	}
	r.mu.Unlock()
	if f != nil {
		r.log.Info("cluster: "+what+" recovered", "after", time.Since(f.since).Round(time.Millisecond), "dropped", f.total)
	}
}

// down reports whether any of the operations is failing now.
func (r *reporter) down(whats ...string) bool {
	if r.failing.Load() == 0 {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range whats {
		if r.state[w] != nil {
			return true
		}
	}
	return false
}
