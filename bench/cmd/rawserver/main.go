// Command rawserver is the benchmark's physical limit: the same echo and
// broadcast as cmd/primus-testserver, on plain github.com/coder/websocket and
// encoding/json, with no Primus layer (no sparks, no heartbeats, no send
// queues, no parser). The load tool measures our server against it.
//
//	rawserver -addr 127.0.0.1:0 [-fanout serial|queue] [-pprof 127.0.0.1:0]
//
// Every text message is written back to its sender, from the reading
// goroutine; {"cmd":"broadcast","data":X} writes X to every connection
// instead. With -fanout serial (the default) the broadcasting goroutine
// writes to each connection in turn: one goroutine per connection and no
// hop, the least work there is, but a slow client stalls everyone. With
// -fanout queue each connection gets a goroutine and a 16-message queue and
// is dropped when the queue is full, as in coder/websocket's chat example:
// the idiomatic safe design, for comparison.
//
// It prints "listening <port>" once it accepts connections and exits on
// SIGINT or SIGTERM.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "rawserver:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	fanout := flag.String("fanout", "serial", "broadcast fan-out: serial or queue")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this address (e.g. 127.0.0.1:0)")
	flag.Parse()
	if *fanout != "serial" && *fanout != "queue" {
		return fmt.Errorf("unknown -fanout %q", *fanout)
	}
	if *pprofAddr != "" {
		if err := servePprof(*pprofAddr); err != nil {
			return err
		}
	}

	h := &hub{conns: map[*client]struct{}{}, queued: *fanout == "queue"}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("listening %d\n", ln.Addr().(*net.TCPAddr).Port)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = hs.Shutdown(sctx) // does not wait for hijacked connections:
	h.closeAll()            // end them,
	h.running.Wait()        // and wait for their handlers
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// hub is the set of connections.
type hub struct {
	queued  bool
	running sync.WaitGroup

	mu    sync.RWMutex
	conns map[*client]struct{}
}

type client struct {
	c    *websocket.Conn
	msgs chan []byte // -fanout queue only
}

func (h *hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	h.running.Add(1)
	defer h.running.Done()
	defer c.CloseNow()
	c.SetReadLimit(16 << 20) // as the test server's
	cl := &client{c: c}
	if h.queued {
		cl.msgs = make(chan []byte, 16)
		done := make(chan struct{})
		defer func() { <-done }()
		defer close(cl.msgs)
		go func() {
			defer close(done)
			for m := range cl.msgs {
				if err := c.Write(context.Background(), websocket.MessageText, m); err != nil {
					_ = c.CloseNow()
				}
			}
		}()
	}
	h.mu.Lock()
	h.conns[cl] = struct{}{}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.conns, cl)
		h.mu.Unlock()
	}()

	for {
		typ, b, err := c.Read(context.Background())
		if err != nil {
			return
		}
		if data, ok := broadcastCommand(b); ok {
			h.broadcast(data)
			continue
		}
		if err := c.Write(context.Background(), typ, b); err != nil {
			return
		}
	}
}

var cmdKey = []byte(`"cmd"`)

// broadcastCommand recognises {"cmd":"broadcast","data":X} and returns X,
// encoded once (encoding/json keeps it as it came: the load tool sends it
// compact).
func broadcastCommand(b []byte) (json.RawMessage, bool) {
	if !bytes.Contains(b, cmdKey) {
		return nil, false
	}
	var cmd struct {
		Cmd  string          `json:"cmd"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &cmd); err != nil || cmd.Cmd != "broadcast" {
		return nil, false
	}
	return cmd.Data, true
}

func (h *hub) broadcast(data []byte) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for cl := range h.conns {
		if !h.queued {
			_ = cl.c.Write(context.Background(), websocket.MessageText, data)
			continue
		}
		select {
		case cl.msgs <- data:
		default:
			_ = cl.c.CloseNow() // too slow: its reader ends and removes it
		}
	}
}

func (h *hub) closeAll() {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for cl := range h.conns {
		_ = cl.c.CloseNow()
	}
}

// servePprof serves net/http/pprof on addr and prints "pprof <host:port>"
// on standard error.
func servePprof(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	fmt.Fprintf(os.Stderr, "pprof %s\n", ln.Addr())
	go func() { _ = http.Serve(ln, mux) }()
	return nil
}
