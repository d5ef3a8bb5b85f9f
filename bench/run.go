package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"time"
)

// Config is one comparison.
type Config struct {
	// Servers are measured one after another, in this order, each in a
	// fresh process per scenario and run.
	Servers []Server
	// Scenarios run in this order.
	Scenarios []Scenario
	// Runs is how many times each scenario is measured on each server; the
	// report quotes medians. Default 1.
	Runs int
	// ProfileDir, when set, makes this a profiling run: servers that have
	// PprofArgs expose net/http/pprof, and a CPU profile of each measured
	// window and heap, allocation and goroutine profiles at its end are
	// saved there (first run only). Profiling costs CPU: do not quote the
	// figures of a profiling run.
	ProfileDir string
	// Quiet, when positive, makes each measurement wait until the other
	// processes on the machine have used less than this percentage of one
	// core over a second (the machine may be shared), for up to QuietWait
	// (default 2 minutes); then it goes ahead anyway. A timed measurement
	// during which they used more than twice as much is taken again, up to
	// twice, and the quietest one kept.
	Quiet     float64
	QuietWait time.Duration
	// Progress receives a line per measurement; nil means none.
	Progress io.Writer
}

// env is what a scenario runs against.
type env struct {
	proc       *process
	dialer     *dialer
	scenario   string
	profileDir string
	http       *http.Client
}

// Run measures every scenario on every server and returns the report. A
// measurement that fails is recorded with its error and the comparison goes
// on; the errors are also returned, joined.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Runs <= 0 {
		cfg.Runs = 1
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	limit, err := RaiseOpenFileLimit()
	if err != nil {
		return nil, err
	}
	for _, sc := range cfg.Scenarios {
		// The server and this tool each hold one descriptor per connection.
		if need := uint64(sc.Conns) + 100; need > limit {
			return nil, fmt.Errorf("bench: scenario %s needs %d open files; the limit is %d", sc.Name, need, limit)
		}
	}
	if cfg.ProfileDir != "" {
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			return nil, err
		}
	}
	rep := &Report{
		Machine: Machine{CPUs: runtime.NumCPU(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, Go: runtime.Version(), OpenFiles: limit},
		Runs:    cfg.Runs,
		Started: time.Now().UTC(),
	}
	for _, s := range cfg.Servers {
		rep.Servers = append(rep.Servers, s.Name)
	}
	var errs []error
	for _, sc := range cfg.Scenarios {
		sc = sc.withDefaults()
		for run := range cfg.Runs {
			for _, srv := range cfg.Servers {
				if err := ctx.Err(); err != nil {
					return rep, errors.Join(append(errs, err)...)
				}
				if cfg.Quiet > 0 {
					if other, err := waitQuiet(ctx, cfg.Quiet, cfg.QuietWait); err != nil {
						return rep, errors.Join(append(errs, err)...)
					} else if other >= cfg.Quiet {
						fmt.Fprintf(cfg.Progress, "(other processes still use %.0f %% of a core; measuring anyway)\n", other)
					}
				}
				start := time.Now()
				profile := cfg.ProfileDir != "" && run == 0
				figs, err := measure(ctx, srv, sc, profile, cfg.ProfileDir)
				// Other work that started during the measurement skews it:
				// measure again (twice at most) and keep the quietest.
				for retry := 0; retry < 2 && err == nil && cfg.Quiet > 0 && figs[FigOtherCPUPc] > 2*cfg.Quiet; retry++ {
					fmt.Fprintf(cfg.Progress, "%-16s %-5s run %d  other processes used %.0f %% of a core: measuring again\n", sc.Name, srv.Name, run+1, figs[FigOtherCPUPc])
					if _, err := waitQuiet(ctx, cfg.Quiet, cfg.QuietWait); err != nil {
						return rep, errors.Join(append(errs, err)...)
					}
					again, err2 := measure(ctx, srv, sc, false, "")
					if err2 == nil && again[FigOtherCPUPc] < figs[FigOtherCPUPc] {
						figs = again
					}
				}
				res := Result{Scenario: sc.Name, Server: srv.Name, Run: run + 1, Figures: figs}
				if err != nil {
					res.Error = err.Error()
					errs = append(errs, fmt.Errorf("%s on %s (run %d): %w", sc.Name, srv.Name, run+1, err))
				}
				rep.Results = append(rep.Results, res)
				fmt.Fprintf(cfg.Progress, "%-16s %-5s run %d  %-60s (%.1fs)\n", sc.Name, srv.Name, run+1, res.summary(sc.Kind), time.Since(start).Seconds())
			}
		}
		rep.Scenarios = append(rep.Scenarios, ScenarioInfo{Name: sc.Name, Kind: sc.Kind, Description: sc.Describe(),
			Conns: sc.Conns, Size: sc.Size, Window: sc.Window, Warmup: sc.Warmup.String(), Duration: sc.Duration.String()})
	}
	rep.summarise()
	return rep, errors.Join(errs...)
}

// waitQuiet waits until the other processes on the machine used less than
// pct percent of one core over a second, or for at most maxWait (default 2
// minutes), and returns the last figure.
func waitQuiet(ctx context.Context, pct float64, maxWait time.Duration) (float64, error) {
	if maxWait <= 0 {
		maxWait = 2 * time.Minute
	}
	deadline := time.Now().Add(maxWait)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		all0, err := machineBusy()
		if err != nil {
			return 0, err
		}
		self0, err := processCPU(0)
		if err != nil {
			return 0, err
		}
		t0 := time.Now()
		select {
		case <-t.C:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		all, err := machineBusy()
		if err != nil {
			return 0, err
		}
		self, err := processCPU(0)
		if err != nil {
			return 0, err
		}
		other := 100 * max(0, (all-all0)-(self-self0)).Seconds() / time.Since(t0).Seconds()
		if other < pct || time.Now().After(deadline) {
			return other, nil
		}
	}
}

// measure runs one scenario on a fresh process of one server.
func measure(ctx context.Context, srv Server, sc Scenario, profile bool, dir string) (Figures, error) {
	p, err := srv.start(ctx, profile)
	if err != nil {
		return nil, err
	}
	e := &env{proc: p, dialer: newDialer(p.url), scenario: sc.Name, http: &http.Client{}}
	if profile {
		e.profileDir = dir
	}
	var figs Figures
	switch sc.Kind {
	case Echo, Pipeline:
		figs, err = e.runEcho(ctx, sc)
	case Broadcast:
		figs, err = e.runBroadcast(ctx, sc)
	case Idle:
		figs, err = e.runIdle(ctx, sc)
	default:
		err = fmt.Errorf("bench: unknown scenario kind %q", sc.Kind)
	}
	e.dialer.close()
	e.http.CloseIdleConnections()
	if err != nil {
		if dead := p.alive(); dead != nil {
			err = fmt.Errorf("%w (%w)", err, dead)
		}
	}
	if err2 := p.stop(); err == nil {
		err = err2
	}
	return figs, err
}
