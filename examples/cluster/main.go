// Command cluster runs examples/chat's chat on several nodes that make one
// logical server: people connected to different nodes share rooms, see each
// other join and leave, and talk. Each node is a primus server with its own
// port; the cluster package carries room writes and writes by spark id
// between them over NATS (or Redis).
//
//	go run ./examples/cluster
//
// starts an embedded NATS server (with JetStream, for the registry) and three
// nodes on 127.0.0.1:8080, :8081 and :8082, and prints their URLs: open two of
// them in two browser windows. To run nodes as separate processes, give each
// the same broker:
//
//	go run ./examples/cluster -nodes 1                                      # logs the embedded NATS URL
//	go run ./examples/cluster -nodes 1 -addr :8081 -nats nats://127.0.0.1:PORT
//	go run ./examples/cluster -nodes 2 -addr :8090 -redis redis://127.0.0.1:6379  # or Redis, for all of them
//
// A node that stops (Ctrl-C) leaves the registry at once; one that is killed
// leaves it within the expiry (-expiry, 15 s by default).
//
// A rolling deploy with nothing lost:
//
//	go run ./examples/cluster -recovery -lb 127.0.0.1:8079
//
// puts a load balancer in front of the nodes (it sends each new connection
// to the next node: open it in the browser windows instead) and makes
// sparks resume on any node (cluster Options.Recovery, with durable
// channels). Send the process SIGHUP (kill -HUP PID) and it restarts its
// nodes one after the other — each node stops with ShutdownReconnect, its
// people reconnect through the load balancer to the others and resume
// there, with every message of their room, and a new node takes its place.
// With recovery, a person who closes the page leaves when the recovery
// window (2 minutes) ends: a closed page looks like a lost connection.
//
// Each node serves its Prometheus metrics at /metrics on its own port (the
// cluster's under the node label), and its publish endpoint at
// /primus/omega/supreme when -publish-password (or PRIMUS_PUBLISH_PASSWORD)
// is set: a request to any node reaches every node.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/cluster"
	"github.com/go-primus/primus/cluster/nats"
	"github.com/go-primus/primus/cluster/redis"
	"github.com/go-primus/primus/examples/internal/chatpage"
	"github.com/go-primus/primus/metrics"
	"github.com/go-primus/primus/publish"
	"github.com/go-primus/primus/rooms"
)

// config is the command line.
type config struct {
	addr     string // the first node's; the others take the next ports
	nodes    int
	natsURL  string
	redisURL string
	expiry   time.Duration
	password string // of the publish endpoint; empty: none
	lb       string // the load balancer's address; empty: none
	recovery bool   // sparks resume on any node
	// restart, when it receives, restarts the nodes one after the other;
	// run then prints "rolling restart done".
	restart <-chan os.Signal
}

func main() {
	var cfg config
	flag.StringVar(&cfg.addr, "addr", "127.0.0.1:8080", "address of the first node; the others listen on the next ports (port 0: any free port)")
	flag.IntVar(&cfg.nodes, "nodes", 3, "number of nodes to run in this process")
	flag.StringVar(&cfg.natsURL, "nats", "", "NATS server URL (with JetStream); empty and no -redis: start an embedded one")
	flag.StringVar(&cfg.redisURL, "redis", "", "Redis URL, to use Redis instead of NATS")
	flag.DurationVar(&cfg.expiry, "expiry", 0, "how long a dead node stays in the registry (0: the cluster's default, 15s)")
	flag.StringVar(&cfg.password, "publish-password", os.Getenv("PRIMUS_PUBLISH_PASSWORD"), "password (user omega) of the publish endpoint at /primus/omega/supreme; empty: no endpoint")
	flag.StringVar(&cfg.lb, "lb", "", "address of a load balancer in front of the nodes of this process, such as 127.0.0.1:8079 (empty: none)")
	flag.BoolVar(&cfg.recovery, "recovery", false, "sparks resume on any node (durable channels and cluster Recovery)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	cfg.restart = hup
	if err := run(ctx, cfg, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// run starts the broker (when embedded) and the nodes, prints each node's
// URL on out (a line per node, in order), and stops everything when ctx
// ends.
func run(ctx context.Context, cfg config, out io.Writer) error {
	if cfg.nodes < 1 {
		return errors.New("-nodes must be at least 1")
	}
	if cfg.natsURL == "" && cfg.redisURL == "" {
		ns, err := embeddedNATS()
		if err != nil {
			return err
		}
		defer func() {
			ns.Shutdown()
			ns.WaitForShutdown()
		}()
		cfg.natsURL = ns.ClientURL()
		log.Printf("embedded NATS server at %s (more nodes: -nats %s)", cfg.natsURL, cfg.natsURL)
	}
	host, port, err := net.SplitHostPort(cfg.addr)
	if err != nil {
		return err
	}
	first, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("-addr %q: %w", cfg.addr, err)
	}

	var nodes []*node
	lb := &balancer{}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, n := range nodes {
			n.stop(sctx)
		}
		lb.close()
	}()
	for i := range cfg.nodes {
		p := 0
		if first != 0 {
			p = first + i
		}
		n, err := startNode(cfg, fmt.Sprintf("node %d", i+1), net.JoinHostPort(host, strconv.Itoa(p)))
		if err != nil {
			return err
		}
		nodes = append(nodes, n)
		lb.set(i, n.ln.Addr().String())
		fmt.Fprintf(out, "%s: open http://%s/ in a browser\n", n.name, n.ln.Addr())
	}
	if cfg.lb != "" && cfg.nodes > 1 {
		if err := lb.listen(cfg.lb); err != nil {
			return err
		}
		fmt.Fprintf(out, "load balancer: open http://%s/ in a browser\n", lb.ln.Addr())
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-cfg.restart:
			if err := rollingRestart(ctx, cfg, nodes, lb); err != nil {
				return err
			}
			fmt.Fprintln(out, "rolling restart done")
		}
	}
}

// rollingRestart restarts the nodes one after the other, on their
// addresses: the load balancer stops sending it connections, ShutdownReconnect
// closes its connections (their clients reconnect through the load
// balancer to the other nodes, and resume there), its cluster appends what
// is queued and leaves, and a new node takes its place.
func rollingRestart(ctx context.Context, cfg config, nodes []*node, lb *balancer) error {
	for i, n := range nodes {
		log.Printf("%s: restarting", n.name)
		lb.set(i, "")
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		n.restart(sctx)
		cancel()
		m, err := startNode(cfg, n.name, n.ln.Addr().String())
		if err != nil {
			return err
		}
		nodes[i] = m
		lb.set(i, m.ln.Addr().String())
		// A deploy waits for the new node to be healthy, and for the
		// clients of the one it replaced to have settled elsewhere,
		// before it moves on.
		select {
		case <-time.After(rollPause):
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}

// rollPause is the pause between two nodes of a rolling restart.
const rollPause = time.Second

// node is one chat server of the cluster.
type node struct {
	name    string
	ln      net.Listener
	hs      *http.Server
	srv     *primus.Server
	c       *cluster.Cluster
	backend interface{ Close() error }
	served  chan struct{}
}

func startNode(cfg config, name, addr string) (*node, error) {
	n := &node{name: name, served: make(chan struct{})}
	var be interface {
		cluster.Broker
		cluster.Registry
	}
	var err error
	switch {
	case cfg.redisURL != "" && cfg.recovery:
		be, err = redis.Connect(cfg.redisURL, &redis.Options{Durable: &redis.Durability{}})
	case cfg.redisURL != "":
		be, err = redis.Connect(cfg.redisURL, nil)
	case cfg.recovery:
		be, err = nats.Connect(cfg.natsURL, &nats.Options{Durable: &nats.Durability{MaxAge: 10 * time.Minute}})
	default:
		be, err = nats.Connect(cfg.natsURL, nil)
	}
	if err != nil {
		return nil, err
	}
	n.backend = be
	// A registry per node, so that each node's /metrics is its own even
	// with several nodes in this process.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := metrics.New(reg)
	if err != nil {
		_ = be.Close()
		return nil, err
	}
	var rec *primus.Recovery
	if cfg.recovery {
		rec = &primus.Recovery{}
	}
	if n.srv, err = primus.New(&primus.Options{Observer: m, Recovery: rec}); err != nil {
		_ = be.Close()
		return nil, err
	}
	n.c, err = cluster.New(n.srv, &cluster.Options{
		Broker:   be,
		Registry: be,
		Expiry:   cfg.expiry,
		Recovery: cfg.recovery,
		OnError:  func(err error) { log.Printf("%s: cluster: %v", name, err) },
	})
	if err != nil {
		_ = be.Close()
		return nil, err
	}
	r := rooms.New(n.srv, &rooms.Options{Relay: n.c})
	newChat(name, n.srv, n.c, r)
	m.AddCluster(n.c)
	m.AddRooms(r)

	mux := http.NewServeMux()
	mux.Handle("/primus", n.srv)
	mux.Handle("/primus/", n.srv)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(chatpage.HTML)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if cfg.password != "" {
		pub, err := publish.New(publish.Options{Server: n.srv, Cluster: n.c, Rooms: r, Authenticate: publish.BasicAuth("omega", cfg.password)})
		if err != nil {
			_ = n.c.Close(context.Background())
			_ = be.Close()
			return nil, err
		}
		mux.Handle(publish.DefaultPath, pub)
	}
	if n.ln, err = net.Listen("tcp", addr); err != nil {
		_ = n.c.Close(context.Background())
		_ = be.Close()
		return nil, err
	}
	n.hs = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second, // a client trickling its headers is cut
		ReadTimeout:       30 * time.Second, // headers and body; upgraded connections are not affected
		IdleTimeout:       2 * time.Minute,  // idle keep-alive connections are closed
		MaxHeaderBytes:    64 << 10,         // net/http's default is 1 MiB per request
		// No WriteTimeout: it would cut long polls and streaming responses;
		// the primus server bounds its own writes (Options.WriteTimeout).
	}
	go func() {
		defer close(n.served)
		if err := n.hs.Serve(n.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Printf("%s: %v", name, err)
		}
	}()
	return n, nil
}

// stop takes the node out of the cluster (so the others forget its sparks
// at once), ends its connections and closes its broker connection.
func (n *node) stop(ctx context.Context) {
	_ = n.hs.Shutdown(ctx)
	<-n.served
	_ = n.c.Close(ctx)
	_ = n.srv.Shutdown(ctx)
	_ = n.backend.Close()
}

// restart stops the node for a restart: its clients reconnect elsewhere,
// and resume there with recovery.
func (n *node) restart(ctx context.Context) {
	_ = n.srv.ShutdownReconnect(ctx)
	_ = n.c.Close(ctx)
	_ = n.hs.Shutdown(ctx)
	<-n.served
	_ = n.backend.Close()
}

// balancer is a TCP load balancer: each new connection goes to the next
// node that is up, round robin (a stand-in for the one in front of a real
// deployment).
type balancer struct {
	ln    net.Listener
	mu    sync.Mutex
	nodes []string // "" while a node restarts
	next  int
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func (b *balancer) set(i int, addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.nodes) <= i {
		b.nodes = append(b.nodes, "")
	}
	b.nodes[i] = addr
}

func (b *balancer) listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	b.ln = ln
	b.conns = map[net.Conn]struct{}{}
	b.wg.Add(1)
	go b.serve()
	return nil
}

func (b *balancer) serve() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		var to string
		for range b.nodes {
			b.next = (b.next + 1) % len(b.nodes)
			if to = b.nodes[b.next]; to != "" {
				break
			}
		}
		b.mu.Unlock()
		s, err := net.DialTimeout("tcp", to, 5*time.Second)
		if err != nil {
			_ = c.Close()
			continue
		}
		b.mu.Lock()
		b.conns[c], b.conns[s] = struct{}{}, struct{}{}
		b.mu.Unlock()
		b.wg.Add(2)
		go b.pipe(s, c)
		go b.pipe(c, s)
	}
}

func (b *balancer) pipe(dst, src net.Conn) {
	defer b.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	b.mu.Lock()
	delete(b.conns, src)
	b.mu.Unlock()
}

// close stops the balancer and its connections.
func (b *balancer) close() {
	if b.ln == nil {
		return
	}
	_ = b.ln.Close()
	b.mu.Lock()
	for c := range b.conns {
		_ = c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// embeddedNATS starts a NATS server with JetStream on a free loopback port,
// its storage in a temporary directory (the registry itself is kept in
// memory).
func embeddedNATS() (*server.Server, error) {
	dir, err := os.MkdirTemp("", "primus-cluster-nats-")
	if err != nil {
		return nil, err
	}
	ns, err := server.NewServer(&server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  dir,
		NoLog:     true,
		NoSigs:    true,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded NATS did not start")
	}
	go func() {
		ns.WaitForShutdown()
		_ = os.RemoveAll(dir)
	}()
	return ns, nil
}
