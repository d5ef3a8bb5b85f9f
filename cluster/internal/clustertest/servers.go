// Package clustertest is the shared test suite of the cluster backends: real
// brokers (an in-process NATS server, a redis-server process), the registry
// contract, three nodes with clients spread over them, and the broadcast
// benchmark.
package clustertest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Timeout bounds every wait of the suite; waits end as soon as what they
// wait for happens.
const Timeout = 15 * time.Second

// NATS is an in-process NATS server with JetStream, which can be stopped
// and started again on the same port.
type NATS struct {
	URL  string
	opts server.Options

	mu  sync.Mutex
	srv *server.Server
}

// StartNATS starts a NATS server on a free loopback port; it is shut down
// when the test ends.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	n := &NATS{opts: server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	}}
	n.start(t)
	n.opts.Port = n.srv.Addr().(*net.TCPAddr).Port // the same port after a restart
	n.URL = n.srv.ClientURL()
	t.Cleanup(n.Stop)
	return n
}

func (n *NATS) start(t testing.TB) {
	t.Helper()
	opts := n.opts
	srv, err := server.NewServer(&opts)
	if err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(Timeout) {
		srv.Shutdown()
		t.Fatalf("nats-server did not start within %v", Timeout)
	}
	n.mu.Lock()
	n.srv = srv
	n.mu.Unlock()
}

// Start starts the server again, on the same port, after Stop.
func (n *NATS) Start(t testing.TB) { n.start(t) }

// Stop shuts the server down and waits until it has.
func (n *NATS) Stop() {
	n.mu.Lock()
	srv := n.srv
	n.srv = nil
	n.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// Redis is a redis-server process on a loopback port, without persistence
// unless made by StartRedisPersistent, which can be stopped and started
// again on the same port.
type Redis struct {
	Addr    string
	bin     string
	port    int
	dir     string
	persist bool

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// RedisBinary finds redis-server ($PRIMUS_REDIS_SERVER, then PATH). Without
// it the test is skipped, or fails when the CI environment variable is set.
func RedisBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("PRIMUS_REDIS_SERVER"); p != "" {
		return p
	}
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("redis-server is required for the Redis cluster tests when CI is set (apt-get install redis-server)")
	}
	t.Skip("no redis-server found (install redis-server, or set PRIMUS_REDIS_SERVER); skipping the Redis cluster tests")
	return ""
}

// StartRedis starts redis-server on a free loopback port; it is killed when
// the test ends.
func StartRedis(t testing.TB) *Redis { return startRedis(t, false) }

// StartRedisPersistent is StartRedis with every write logged to disk before
// it is acknowledged (appendonly, appendfsync always), so that what it took
// survives a restart.
func StartRedisPersistent(t testing.TB) *Redis { return startRedis(t, true) }

func startRedis(t testing.TB, persist bool) *Redis {
	t.Helper()
	r := &Redis{bin: RedisBinary(t), dir: t.TempDir(), persist: persist}
	for attempt := 0; ; attempt++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		r.port = ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		err = r.start()
		if err == nil {
			break
		}
		if attempt == 3 {
			t.Fatalf("redis-server: %v", err)
		}
	}
	r.Addr = "127.0.0.1:" + strconv.Itoa(r.port)
	t.Cleanup(r.Stop)
	return r
}

// start runs the server and waits for its "Ready to accept connections".
func (r *Redis) start() error {
	aof := []string{"--appendonly", "no"}
	if r.persist {
		aof = []string{"--appendonly", "yes", "--appendfsync", "always"}
	}
	cmd := exec.Command(r.bin, append([]string{
		"--bind", "127.0.0.1", "--port", strconv.Itoa(r.port),
		"--save", "", "--dir", r.dir,
		"--protected-mode", "yes", "--loglevel", "notice"}, aof...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return err
	}
	ready := make(chan struct{})
	done := make(chan struct{})
	var log strings.Builder
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		seen := false
		for sc.Scan() {
			if !seen {
				log.WriteString(sc.Text() + "\n")
				if strings.Contains(sc.Text(), "Ready to accept connections") {
					seen = true
					close(ready)
				}
			}
		}
		_ = cmd.Wait()
	}()
	select {
	case <-ready:
	case <-done:
		return fmt.Errorf("redis-server exited:\n%s", log.String())
	case <-time.After(Timeout):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("redis-server not ready within %v", Timeout)
	}
	r.mu.Lock()
	r.cmd, r.done = cmd, done
	r.mu.Unlock()
	return nil
}

// Start starts the server again, on the same port, after Stop.
func (r *Redis) Start(t testing.TB) {
	t.Helper()
	if err := r.start(); err != nil {
		t.Fatalf("redis-server restart: %v", err)
	}
}

// Stop kills the server (SIGKILL, as a crash) and waits for it to exit.
func (r *Redis) Stop() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.cmd = nil
	r.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
}

// Pause stops the server process (SIGSTOP): connections stay open and
// nothing answers, as with a broker behind a dead network link.
func (r *Redis) Pause() { r.signal(syscall.SIGSTOP) }

// Resume continues it after Pause (SIGCONT).
func (r *Redis) Resume() { r.signal(syscall.SIGCONT) }

func (r *Redis) signal(sig syscall.Signal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		_ = r.cmd.Process.Signal(sig)
	}
}
