package interop

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-primus/primus/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// nodeDir holds the npm project with the stock Primus packages and the Node
// scripts. Tests run in the package directory, so the path is relative.
const nodeDir = "node"

// requireNode skips the test when node or npm is not in PATH (or fails it
// when the CI environment variable is set), and makes sure node_modules is
// installed.
func requireNode(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is required for the interop tests when CI is set: %v", tool, err)
			}
			t.Skipf("%s not found in PATH; skipping the Node.js interop test", tool)
		}
	}
	if err := installNodeModules(); err != nil {
		t.Fatal(err)
	}
}

// installNodeModules runs "npm ci" once per test binary, and only when
// node_modules is missing or older than package-lock.json (npm writes
// node_modules/.package-lock.json on every install).
var installNodeModules = sync.OnceValue(func() error {
	lock, err := os.Stat(filepath.Join(nodeDir, "package-lock.json"))
	if err != nil {
		return err
	}
	installed, err := os.Stat(filepath.Join(nodeDir, "node_modules", ".package-lock.json"))
	if err == nil && !installed.ModTime().Before(lock.ModTime()) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = nodeDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("npm ci in %s: %v\n%s", nodeDir, err, out)
	}
	return nil
})

// testServerBinary builds cmd/primus-testserver once per test binary. The
// directory is shared by the runs of one checkout, so that no binary is left
// behind per run (leakcheck.Main exits the process, so nothing runs after the
// tests); go build replaces the file atomically.
var testServerBinary = sync.OnceValues(func() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(wd))
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("go-primus-interop-%x", sum[:6]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "primus-testserver")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/go-primus/primus/cmd/primus-testserver")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building primus-testserver: %v\n%s", err, out)
	}
	return bin, nil
})

// StartTestServer starts the Go test server (cmd/primus-testserver) on
// 127.0.0.1 with the given extra flags and returns its base URL. The server
// is stopped when the test ends.
func StartTestServer(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := testServerBinary()
	if err != nil {
		t.Fatal(err)
	}
	return startServer(t, exec.Command(bin, append([]string{"-addr", "127.0.0.1:0"}, args...)...))
}

// StartNodeServer starts node/node-server.js, a stock Node Primus server
// implementing the test server contract, and returns its base URL. The server
// is stopped when the test ends.
func StartNodeServer(t *testing.T, args ...string) string {
	t.Helper()
	requireNode(t)
	cmd := exec.Command("node", append([]string{"node-server.js"}, args...)...)
	cmd.Dir = nodeDir
	return startServer(t, cmd)
}

// startServer starts cmd, which must print "listening <port>" as its first
// line of standard output, and returns http://127.0.0.1:<port>. Further output
// goes to the test log. At cleanup the server gets SIGTERM and must exit
// cleanly within 5 s; otherwise it is killed and the test fails.
func startServer(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	name := filepath.Base(cmd.Path)
	if len(cmd.Args) > 1 && strings.HasSuffix(cmd.Args[1], ".js") {
		name = cmd.Args[1]
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		t.Fatalf("starting %s: %v", name, err)
	}

	var exitErr error
	exited := make(chan struct{})
	go func() {
		exitErr = cmd.Wait()
		close(exited)
	}()

	// The readers end when the process exits and its pipes reach EOF.
	var readers sync.WaitGroup
	first := make(chan string, 1)
	readers.Add(2)
	go func() {
		defer readers.Done()
		defer close(first)
		logLines(t, name, outR, first)
	}()
	go func() {
		defer readers.Done()
		logLines(t, name, errR, nil)
	}()

	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
			if exitErr != nil {
				t.Errorf("%s did not exit cleanly on SIGTERM: %v", name, exitErr)
			}
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("%s did not exit within 5 s of SIGTERM; killed", name)
		}
		readers.Wait()
	})

	select {
	case line, ok := <-first:
		port, found := strings.CutPrefix(line, "listening ")
		if _, err := strconv.Atoi(port); !ok || !found || err != nil {
			t.Fatalf("%s: first line of output is %q, want \"listening <port>\"", name, line)
		}
		return "http://127.0.0.1:" + port
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not print \"listening <port>\" within 30 s", name)
	}
	return ""
}

// logLines copies lines from r to the test log. If first is not nil, the first
// line is sent there instead.
func logLines(t *testing.T, name string, r io.ReadCloser, first chan<- string) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if first != nil {
			first <- sc.Text()
			first = nil
			continue
		}
		t.Logf("%s: %s", name, sc.Text())
	}
	_, _ = io.Copy(io.Discard, r) // keep draining after an overlong line
}

// runNode runs "node args..." in nodeDir, copying its output to the test log
// line by line, and returns its exit error. It is killed after timeout.
func runNode(t *testing.T, timeout time.Duration, args ...string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "node", args...)
	cmd.Dir = nodeDir
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return err
	}
	logLines(t, args[0], r, nil) // returns at EOF: the process has exited
	err = cmd.Wait()
	if ctx.Err() != nil {
		err = errors.Join(err, fmt.Errorf("node %s: killed after %v", args[0], timeout))
	}
	return err
}

// TestStockClientContract checks the Go test server against the contract
// (items 1-8) with the stock npm Primus client.
func TestStockClientContract(t *testing.T) {
	t.Parallel()
	requireNode(t)
	url := StartTestServer(t, "-ping-interval", "1s", "-plugins", "none")
	if err := runNode(t, 90*time.Second, "contract-client.js", url, "--ping-interval", "1000"); err != nil {
		t.Fatalf("contract-client.js failed against the Go test server: %v", err)
	}
}

// TestStockClientContractWithRecovery: with recovery on, the stock client
// (which never asks to resume) sees exactly the protocol it knows.
func TestStockClientContractWithRecovery(t *testing.T) {
	t.Parallel()
	requireNode(t)
	url := StartTestServer(t, "-ping-interval", "1s", "-plugins", "none", "-recovery", "30s")
	if err := runNode(t, 90*time.Second, "contract-client.js", url, "--ping-interval", "1000"); err != nil {
		t.Fatalf("contract-client.js failed against the Go test server with -recovery: %v", err)
	}
}

// TestStockClientAgainstNodeServer runs the same contract checks against the
// stock Node Primus server in node/node-server.js. It shows that the checks
// and the harness are sound: every check passes against the reference
// implementation.
func TestStockClientAgainstNodeServer(t *testing.T) {
	t.Parallel()
	url := StartNodeServer(t, "--ping-interval", "1000")
	if err := runNode(t, 90*time.Second, "contract-client.js", url, "--ping-interval", "1000"); err != nil {
		t.Fatalf("contract-client.js failed against node-server.js: %v", err)
	}
}
