package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-primus/primus"
)

// testPage is the page the client tests open: the served library plus a few
// helpers the tests' scripts use.
const testPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>primus e2e</title></head>
<body><h1>primus e2e</h1>
<script src="/primus/primus.js"></script>
<script>
// connect returns a client that records its events and data.
window.connect = (query, options) => {
  const p = new Primus(location.origin + '/?' + (query || ''), options);
  p.events = []; p.inbox = []; p.waiters = [];
  p.wake = () => { for (const w of p.waiters.splice(0)) w(); };
  for (const ev of ['open', 'close', 'end', 'error', 'reconnect', 'reconnect scheduled', 'reconnected',
    'reconnect failed', 'online', 'offline', 'timeout']) {
    p.on(ev, (arg) => { p.events.push(ev); if (ev === 'error') p.lastError = String(arg && arg.message); p.wake(); });
  }
  p.on('data', (d) => { p.inbox.push(d); p.wake(); });
  p.until = async (pred) => { while (!pred()) await new Promise((r) => p.waiters.push(r)); };
  p.next = async () => { await p.until(() => p.inbox.length > 0); return p.inbox.shift(); };
  p.count = (ev) => p.events.filter((e) => e === ev).length;
  p.opened = (n = 1) => p.until(() => p.count('open') >= n);
  p.getID = () => new Promise((r) => p.id(r));
  return p;
};
// same compares values deeply: objects whatever their key order, byte
// arrays by content, numbers with Object.is (NaN equals NaN, -0 is not 0).
window.same = (a, b) => {
  if (Object.is(a, b)) return true;
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return a instanceof Uint8Array && b instanceof Uint8Array && a.length === b.length && a.every((x, i) => x === b[i]);
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => same(x, b[i]));
  }
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && same(a[k], b[k]));
  }
  return false;
};
</script></body></html>`

// startServer serves srv at its pathname and the test page at "/" on a
// loopback httptest server, shut down when the test ends. It returns the
// page's URL. Extra handlers (path → handler) are added to the mux.
func startServer(t *testing.T, srv *primus.Server, extra ...map[string]http.Handler) string {
	t.Helper()
	return startServerPage(t, srv, testPage, extra...)
}

// startServerPage is startServer with another page at "/".
func startServerPage(t *testing.T, srv *primus.Server, page string, extra ...map[string]http.Handler) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(srv.Pathname(), srv)
	mux.Handle(srv.Pathname()+"/", srv)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, page)
	})
	for _, m := range extra {
		for p, h := range m {
			mux.Handle(p, h)
		}
	}
	ts := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		ts.Close()
	})
	return ts.URL + "/"
}

// exampleBinaries builds each example once per test binary, into a
// directory shared by the runs of one checkout (go build replaces files
// atomically, and nothing is left behind per run).
var exampleBinaries sync.Map // name → func() (string, error)

func exampleBinary(name string) (string, error) {
	f, _ := exampleBinaries.LoadOrStore(name, sync.OnceValues(func() (string, error) {
		wd, err := os.Getwd()
		if err != nil {
			return "", err
		}
		sum := sha256.Sum256([]byte(wd))
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("go-primus-e2e-%x", sum[:6]))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", err
		}
		bin := filepath.Join(dir, name)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/go-primus/primus/examples/"+name)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("building examples/%s: %v\n%s", name, err, out)
		}
		return bin, nil
	}))
	return f.(func() (string, error))()
}

// example is a running example program.
type example struct {
	URL string // the URL it printed

	mu    sync.Mutex
	lines []string // its standard error (the log), line by line
	wake  chan struct{}
}

var urlRE = regexp.MustCompile(`open (http://\S+) in a browser`)

// startExample runs examples/NAME on a free loopback port, as `go run
// ./examples/NAME -addr 127.0.0.1:0` would, and waits for the URL it prints.
// It gets SIGTERM when the test ends and must exit cleanly.
func startExample(t *testing.T, name string) *example {
	t.Helper()
	bin, err := exampleBinary(name)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ex := &example{wake: make(chan struct{}, 1)}
	first := make(chan string, 1)
	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case first <- sc.Text():
			default:
			}
		}
	}()
	go func() {
		defer readers.Done()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			ex.mu.Lock()
			ex.lines = append(ex.lines, sc.Text())
			ex.mu.Unlock()
			select {
			case ex.wake <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		exited := make(chan error, 1)
		go func() {
			readers.Wait() // the pipes must be drained before Wait
			exited <- cmd.Wait()
		}()
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("examples/%s did not exit cleanly on SIGTERM: %v", name, err)
			}
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("examples/%s did not exit within 10 s of SIGTERM; killed", name)
		}
		for _, l := range ex.log() {
			t.Logf("examples/%s: %s", name, l)
		}
	})
	select {
	case line := <-first:
		m := urlRE.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("examples/%s printed %q, want \"… open http://… in a browser\"", name, line)
		}
		ex.URL = m[1]
	case <-time.After(testTimeout):
		t.Fatalf("examples/%s printed no URL within %v", name, testTimeout)
	}
	return ex
}

// log returns the example's log lines so far.
func (ex *example) log() []string {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	return append([]string(nil), ex.lines...)
}

// waitLog waits until a log line contains s.
func (ex *example) waitLog(t *testing.T, s string) {
	t.Helper()
	deadline := time.NewTimer(testTimeout)
	defer deadline.Stop()
	for {
		for _, l := range ex.log() {
			if strings.Contains(l, s) {
				return
			}
		}
		select {
		case <-ex.wake:
		case <-deadline.C:
			t.Fatalf("no log line containing %q within %v", s, testTimeout)
		}
	}
}

// countLog returns how many log lines contain s.
func (ex *example) countLog(s string) int {
	n := 0
	for _, l := range ex.log() {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}
