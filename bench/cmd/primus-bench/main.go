// Command primus-bench runs the performance comparison of issue 6: our
// cmd/primus-testserver, the raw coder/websocket server (bench/cmd/rawserver)
// and stock Node.js Primus (bench/node/server.js), one after another, on the
// scenarios of package bench. It prints a markdown table of medians with
// the ratios our/raw and our/node, then the report as JSON.
//
// bench/run.sh builds the servers and runs it; by hand:
//
//	primus-bench -our ./primus-testserver -raw ./rawserver -node bench/node
//
// Progress goes to standard error. The exit status is 1 if a measurement
// failed (its error is in the report).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/go-primus/primus/bench"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "primus-bench:", err)
		os.Exit(1)
	}
}

func run() error {
	our := flag.String("our", "", "path of the built cmd/primus-testserver")
	raw := flag.String("raw", "", "path of the built bench/cmd/rawserver")
	node := flag.String("node", "", "directory of bench/node (npm ci done)")
	servers := flag.String("servers", "our,raw,node", "servers to measure, in order: our, raw, rawq (raw with a queue per connection), node")
	runs := flag.Int("runs", 3, "runs of each scenario on each server; the report quotes medians")
	duration := flag.Duration("duration", 5*time.Second, "measured time of each timed scenario (a fifth of it more for warm-up)")
	idle := flag.Int("idle", 19800, "connections of the idle scenario")
	only := flag.String("scenarios", "", "comma-separated scenario names (or name prefixes) to run; empty means all")
	smoke := flag.Bool("smoke", false, "every scenario for about a second, one run (what CI runs)")
	profile := flag.String("profile", "", "profiling run: save pprof profiles of the Go servers in this directory")
	jsonPath := flag.String("json", "", "write the JSON report to this file instead of standard output")
	timeout := flag.Duration("timeout", 2*time.Hour, "bound on the whole comparison")
	quiet := flag.Float64("quiet", 25, "before each measurement, wait (up to -quiet-wait) until other processes use less than this % of one core; 0: do not wait")
	quietWait := flag.Duration("quiet-wait", 45*time.Second, "longest wait for a quiet machine before each measurement")
	compare := flag.String("compare", "", "more builds of cmd/primus-testserver to measure after the others, as name=path,… (e.g. before=/tmp/old-primus-testserver): the report gives our/name ratios, for before/after comparisons")
	flag.Parse()

	cfg := bench.Config{Runs: *runs, ProfileDir: *profile, Quiet: *quiet, QuietWait: *quietWait, Progress: os.Stderr}
	for _, name := range strings.Split(*servers, ",") {
		switch strings.TrimSpace(name) {
		case "our":
			if *our == "" {
				return fmt.Errorf("-our is required to measure our server")
			}
			cfg.Servers = append(cfg.Servers, bench.OurServer(*our))
		case "raw":
			if *raw == "" {
				return fmt.Errorf("-raw is required to measure the raw server")
			}
			cfg.Servers = append(cfg.Servers, bench.RawServer(*raw))
		case "rawq":
			if *raw == "" {
				return fmt.Errorf("-raw is required to measure the raw server")
			}
			cfg.Servers = append(cfg.Servers, bench.RawQueueServer(*raw))
		case "node":
			if *node == "" {
				return fmt.Errorf("-node is required to measure the Node server")
			}
			cfg.Servers = append(cfg.Servers, bench.NodeServer(*node))
		case "":
		default:
			return fmt.Errorf("unknown server %q", name)
		}
	}
	for _, nv := range strings.Split(*compare, ",") {
		if nv = strings.TrimSpace(nv); nv == "" {
			continue
		}
		name, path, ok := strings.Cut(nv, "=")
		if !ok || name == "" || path == "" || name == "our" {
			return fmt.Errorf("-compare wants name=path, got %q", nv)
		}
		s := bench.OurServer(path)
		s.Name = name
		cfg.Servers = append(cfg.Servers, s)
	}
	cfg.Scenarios = bench.FullScenarios(*duration, *idle)
	if *smoke {
		cfg.Scenarios, cfg.Runs, cfg.Quiet = bench.SmokeScenarios(), 1, 0
	}
	if *only != "" {
		var keep []bench.Scenario
		for _, sc := range cfg.Scenarios {
			for _, p := range strings.Split(*only, ",") {
				if p = strings.TrimSpace(p); p != "" && strings.HasPrefix(sc.Name, p) {
					keep = append(keep, sc)
					break
				}
			}
		}
		if len(keep) == 0 {
			return fmt.Errorf("no scenario matches %q", *only)
		}
		cfg.Scenarios = keep
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	rep, runErr := bench.Run(ctx, cfg)
	if rep == nil {
		return runErr
	}
	rep.Markdown(os.Stdout)
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if *jsonPath != "" {
		if err := os.WriteFile(*jsonPath, append(js, '\n'), 0o644); err != nil {
			return err
		}
	} else {
		fmt.Println()
		fmt.Println(string(js))
	}
	if runErr != nil {
		return fmt.Errorf("some measurements failed:\n%w", runErr)
	}
	return nil
}
