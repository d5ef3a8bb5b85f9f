package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Server says how to start one of the servers under test. The program must
// listen on 127.0.0.1 (on a port of its choice when told port 0), print
// "listening <port>" as its first line of standard output once it accepts
// connections, serve Primus over WebSocket at /primus, and exit on SIGTERM.
type Server struct {
	// Name labels the server in the report: "our", "raw" and "node" are the
	// ones the ratios are computed for.
	Name string
	// Command is the program and its arguments.
	Command []string
	// Dir is the working directory; empty means the current one.
	Dir string
	// PprofArgs, when set, are added to Command on profiling runs; the
	// server must then print "pprof <host:port>" on standard error.
	PprofArgs []string
}

// OurServer is cmd/primus-testserver, built at bin.
func OurServer(bin string) Server {
	return Server{
		Name:      "our",
		Command:   []string{bin, "-addr", "127.0.0.1:0", "-ping-interval", "30s"},
		PprofArgs: []string{"-pprof", "127.0.0.1:0"},
	}
}

// RawServer is bench/cmd/rawserver, built at bin.
func RawServer(bin string) Server {
	return Server{
		Name:      "raw",
		Command:   []string{bin, "-addr", "127.0.0.1:0"},
		PprofArgs: []string{"-pprof", "127.0.0.1:0"},
	}
}

// RawQueueServer is bench/cmd/rawserver with -fanout queue: a goroutine
// and a queue per connection for broadcasts, as in coder/websocket's chat
// example.
func RawQueueServer(bin string) Server {
	s := RawServer(bin)
	s.Name = "rawq"
	s.Command = append(s.Command, "-fanout", "queue")
	return s
}

// NodeServer is bench/node/server.js (stock primus@8.0.9) in dir, whose
// node_modules must be installed (npm ci).
func NodeServer(dir string) Server {
	return Server{
		Name:    "node",
		Command: []string{"node", "server.js", "--port", "0", "--ping-interval", "30000"},
		Dir:     dir,
	}
}

// process is a running server.
type process struct {
	name    string
	cmd     *exec.Cmd
	pid     int
	url     string // ws://127.0.0.1:<port>/primus
	pprof   string // host:port of net/http/pprof, when profiling
	exited  chan struct{}
	waitErr error
	readers sync.WaitGroup

	mu     sync.Mutex
	stderr []string // the last lines, for error messages
}

// start starts the server and waits until it listens.
func (s Server) start(ctx context.Context, profile bool) (*process, error) {
	if len(s.Command) == 0 {
		return nil, fmt.Errorf("bench: server %q has no command", s.Name)
	}
	args := append([]string(nil), s.Command[1:]...)
	if profile {
		args = append(args, s.PprofArgs...)
	}
	cmd := exec.Command(s.Command[0], args...)
	cmd.Dir = s.Dir
	// GOGC and friends stay as the user set them; the servers run with the
	// machine's defaults.
	cmd.Env = os.Environ()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: failed to start the %s server: %w", s.Name, err)
	}
	p := &process{name: s.Name, cmd: cmd, pid: cmd.Process.Pid, exited: make(chan struct{})}
	first := make(chan string, 1)
	pprofAddr := make(chan string, 1)
	p.readers.Add(2)
	go func() {
		defer p.readers.Done()
		p.scan(stdout, first)
	}()
	go func() {
		defer p.readers.Done()
		p.scanStderr(stderr, pprofAddr)
	}()
	go func() {
		p.readers.Wait() // cmd.Wait closes the pipes: read them to the end first
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()

	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	select {
	case line := <-first:
		port, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
		if _, err := strconv.Atoi(port); !ok || err != nil {
			p.stop()
			return nil, fmt.Errorf("bench: the %s server printed %q, want \"listening <port>\"", s.Name, line)
		}
		p.url = "ws://127.0.0.1:" + port + "/primus"
	case <-p.exited:
		return nil, fmt.Errorf("bench: the %s server exited before listening: %v\n%s", s.Name, p.waitErr, p.tail())
	case <-timer.C:
		p.stop()
		return nil, fmt.Errorf("bench: the %s server did not print \"listening <port>\" within 30 s", s.Name)
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
	if profile && len(s.PprofArgs) > 0 {
		select {
		case p.pprof = <-pprofAddr:
		case <-timer.C:
			p.stop()
			return nil, fmt.Errorf("bench: the %s server did not print \"pprof <addr>\" within 30 s", s.Name)
		}
	}
	return p, nil
}

func (p *process) scan(r io.Reader, first chan<- string) {
	sc := bufio.NewScanner(r)
	sent := false
	for sc.Scan() {
		if !sent {
			first <- sc.Text()
			sent = true
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

func (p *process) scanStderr(r io.Reader, pprofAddr chan<- string) {
	sc := bufio.NewScanner(r)
	sent := false
	for sc.Scan() {
		line := sc.Text()
		if a, ok := strings.CutPrefix(line, "pprof "); ok && !sent {
			pprofAddr <- strings.TrimSpace(a)
			sent = true
			continue
		}
		p.mu.Lock()
		p.stderr = append(p.stderr, line)
		if len(p.stderr) > 20 {
			p.stderr = p.stderr[1:]
		}
		p.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r)
}

func (p *process) tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.stderr, "\n")
}

// alive reports an error if the server has exited.
func (p *process) alive() error {
	select {
	case <-p.exited:
		return fmt.Errorf("bench: the %s server exited: %v\n%s", p.name, p.waitErr, p.tail())
	default:
		return nil
	}
}

// stop sends SIGTERM and waits up to 10 s for the server to exit, then kills
// it. It returns an error when the server had to be killed or exited with an
// error.
func (p *process) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case <-p.exited:
	case <-timer.C:
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("bench: the %s server did not exit within 10 s of SIGTERM; killed", p.name)
	}
	var ee *exec.ExitError
	if p.waitErr != nil && !errors.As(p.waitErr, &ee) {
		return p.waitErr
	}
	if p.waitErr != nil {
		return fmt.Errorf("bench: the %s server exited with %v\n%s", p.name, p.waitErr, p.tail())
	}
	return nil
}
