// Package leakcheck fails a test binary when goroutines started by its tests
// are still running after every test has finished.
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

// Main runs the tests of m and then checks for leaked goroutines. A leak makes
// the binary exit non-zero and prints the stacks of the goroutines left over.
// Use it as the whole body of TestMain:
//
//	func TestMain(m *testing.M) { leakcheck.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := Wait(10 * time.Second); len(leaked) > 0 {
			fmt.Fprintf(os.Stderr, "leakcheck: %d goroutine(s) leaked:\n\n%s\n", len(leaked), strings.Join(leaked, "\n\n"))
			code = 1
		}
	}
	os.Exit(code)
}

// Wait polls until no unexpected goroutine is left or the timeout passes, and
// returns the stacks of the goroutines still running at the end.
func Wait(timeout time.Duration) []string {
	deadline := time.Now().Add(timeout)
	delay := time.Millisecond
	for {
		leaked := Current()
		if len(leaked) == 0 || time.Now().After(deadline) {
			return leaked
		}
		time.Sleep(delay)
		if delay < 100*time.Millisecond {
			delay *= 2
		}
	}
}

// Current returns the stacks of running goroutines that are neither the caller,
// nor part of the runtime and the testing package.
func Current() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i == 0 || ignored(g) { // the first stack is the calling goroutine
			continue
		}
		out = append(out, g)
	}
	sort.Strings(out)
	return out
}

var ignoredFuncs = []string{
	"testing.Main(",
	"testing.(*M).",
	"testing.(*T).Run(",
	"testing.runTests",
	"testing.tRunner(",
	"testing.(*F).",
	"testing.runFuzz",
	"runtime.goexit",
	"created by runtime.gc",
	"runtime.MHeap_Scavenger",
	"signal.signal_recv",
	"os/signal.loop",
	"runtime/trace.Start",
	"created by os/signal.Notify",
	"runtime.ensureSigM",
	"interestingGoroutines",
}

func ignored(stack string) bool {
	lines := strings.SplitN(stack, "\n", 3)
	if len(lines) < 2 {
		return true
	}
	top := lines[1]
	for _, f := range ignoredFuncs {
		if strings.Contains(top, f) {
			return true
		}
	}
	if strings.Contains(stack, "testing.tRunner(") && strings.Contains(stack, "testing.(*T).Run(") {
		return true
	}
	if strings.Contains(stack, "testing.(*M).") || strings.Contains(stack, "testing.runTests") {
		return true
	}
	return false
}
