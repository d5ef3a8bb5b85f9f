// Package e2e runs the browser client, the examples and the plugins in a
// real headless Chromium driven by chromedp. Tests skip when no Chromium is
// installed on a developer's machine and fail when the CI environment
// variable is set.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/go-primus/primus/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// testTimeout bounds each test's browser work. Waits end as soon as what
// they wait for happens; only a broken client or example reaches it.
const testTimeout = 30 * time.Second

// chromiumPath finds the browser: $PRIMUS_CHROMIUM, then the usual names in
// PATH. Without one the test is skipped, or fails when CI is set.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PRIMUS_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("Chromium is required for the e2e tests when CI is set (apt-get install chromium)")
	}
	t.Skip("no Chromium found (set PRIMUS_CHROMIUM or install chromium); skipping the browser tests")
	return ""
}

// browser is one headless Chromium for a test.
type browser struct {
	t   *testing.T
	ctx context.Context // the first tab; parent of the others

	mu     sync.Mutex
	done   bool
	errors []string // uncaught exceptions in any tab
}

// newBrowser starts Chromium with a fresh profile; it is closed when the
// test ends. Every tab's console output goes to the test log, and uncaught
// page exceptions fail the test.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromiumPath(t)
	profile := t.TempDir() // removed after the browser has exited
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1000, 800),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// Tabs in the background must keep their timers (heartbeats,
		// reconnections) running at full speed.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	b := &browser{t: t, ctx: ctx}
	t.Cleanup(func() {
		b.mu.Lock()
		b.done = true
		errs := b.errors
		b.mu.Unlock()
		cancel()
		cancelAlloc()
		for _, e := range errs {
			t.Errorf("uncaught exception in the page: %s", e)
		}
	})
	start := time.Now()
	b.watch(ctx, "tab 1") // starts the browser
	t.Logf("started %s in %v", path, time.Since(start).Round(time.Millisecond))
	return b
}

// watch copies a tab's console to the test log and records its uncaught
// exceptions.
func (b *browser) watch(ctx context.Context, name string) {
	err := chromedp.Listen(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.done {
			return
		}
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			var args []string
			for _, a := range ev.Args {
				if a.Value != nil {
					args = append(args, string(a.Value))
				} else {
					args = append(args, a.Description)
				}
			}
			b.t.Logf("%s console.%s: %s", name, ev.Type, strings.Join(args, " "))
		case *runtime.EventExceptionThrown:
			msg := ev.ExceptionDetails.Text
			if ev.ExceptionDetails.Exception != nil {
				msg += " " + ev.ExceptionDetails.Exception.Description
			}
			b.errors = append(b.errors, fmt.Sprintf("%s: %s", name, msg))
		}
	})
	if err != nil {
		b.t.Fatalf("watching %s: %v", name, err)
	}
}

// tab returns the context of a tab: the first one, or a new one for n > 1.
// A new tab is closed when the test ends (or earlier with its cancel).
func (b *browser) tab(n int) (context.Context, context.CancelFunc) {
	if n == 1 {
		return b.ctx, func() {}
	}
	ctx, cancel := chromedp.NewContext(b.ctx)
	b.t.Cleanup(cancel)
	b.watch(ctx, fmt.Sprintf("tab %d", n))
	return ctx, cancel
}

// do runs chromedp actions in ctx, in order, within the test's timeout.
func do(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, testTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

// eval evaluates a JavaScript expression in the tab, awaiting it when it is
// a promise, and returns its value decoded from JSON as a T.
func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, testTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("browser: evaluating %s: %v", firstLine(js), err)
	}
	return v
}

// waitJS is an action that polls a JavaScript condition in the page until it
// is true.
func waitJS(cond string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(testTimeout))
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// artifactDir is where screenshots go: $PRIMUS_E2E_ARTIFACTS (CI keeps it
// when a run fails), or a test temporary directory whose files are moved to
// a directory that is kept when the test fails.
func artifactDir(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("PRIMUS_E2E_ARTIFACTS"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	dir := t.TempDir()
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		keep, err := os.MkdirTemp("", "primus-e2e-")
		if err != nil {
			t.Log(err)
			return
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, f := range files {
			_ = os.Rename(f, filepath.Join(keep, filepath.Base(f)))
		}
		t.Logf("artifacts of the failed test kept in %s", keep)
	})
	return dir
}

// saveArtifact writes data as name in dir (see artifactDir) and logs its
// path.
func saveArtifact(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Error(err)
		return
	}
	t.Logf("saved %s", path)
}
