package bench

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-primus/primus/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// build builds a main package of this module into dir and returns its path.
func build(t *testing.T, dir, pkg string) string {
	t.Helper()
	bin := filepath.Join(dir, filepath.Base(pkg))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// TestSmoke runs every scenario of the comparison for about a second against
// our test server, as CI does, so that neither the tool nor the server's
// side of it can rot: a scenario that fails, or that measures nothing, fails
// the test.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("the smoke run takes about 15 s")
	}
	bin := build(t, t.TempDir(), "github.com/go-primus/primus/cmd/primus-testserver")
	var progress strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Config{Servers: []Server{OurServer(bin)}, Scenarios: SmokeScenarios(), Progress: &progress})
	t.Log("\n" + progress.String())
	if err != nil {
		t.Fatal(err)
	}
	var md strings.Builder
	rep.Markdown(&md)
	t.Log("\n" + md.String())
	for _, sc := range SmokeScenarios() {
		figs := rep.Medians[sc.Name]["our"]
		if figs == nil {
			t.Errorf("%s: no result", sc.Name)
			continue
		}
		for _, fi := range figuresFor(sc.Kind) {
			switch fi.key {
			case FigServerCPUPerMsg, FigServerCPUPc, FigLoadCPUPerMsg, FigOtherCPUPc:
				continue // whole clock ticks: may be zero in a short run
			}
			if v, ok := figs[fi.key]; !ok || !(v > 0) {
				t.Errorf("%s: %s = %v, want > 0", sc.Name, fi.key, v)
			}
		}
	}
}

// TestRawServer checks that the raw server answers echo and broadcast as the
// load tool expects, both with serial fan-out and with a queue per
// connection.
func TestRawServer(t *testing.T) {
	bin := build(t, t.TempDir(), "github.com/go-primus/primus/bench/cmd/rawserver")
	scenarios := []Scenario{
		{Name: "echo", Kind: Echo, Conns: 2, Warmup: 50 * time.Millisecond, Duration: 200 * time.Millisecond},
		{Name: "pipeline", Kind: Pipeline, Conns: 2, Window: 8, Warmup: 50 * time.Millisecond, Duration: 200 * time.Millisecond},
		{Name: "broadcast", Kind: Broadcast, Conns: 20, Window: 2, Warmup: 50 * time.Millisecond, Duration: 200 * time.Millisecond},
		{Name: "idle", Kind: Idle, Conns: 50, Broadcasts: 3},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := Run(ctx, Config{Servers: []Server{RawServer(bin), RawQueueServer(bin)}, Scenarios: scenarios})
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range scenarios {
		for _, srv := range []string{"raw", "rawq"} {
			if v := rep.Medians[sc.Name][srv][FigP50]; !(v > 0) {
				t.Errorf("%s on %s: p50 = %v, want > 0", sc.Name, srv, v)
			}
		}
	}
}
