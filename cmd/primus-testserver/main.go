// Command primus-testserver is the small server every interop test talks to.
// It implements the contract in docs/testserver-contract.md: echo, broadcast,
// close, whoami, drop, authorization (token=bad is refused) and heartbeats;
// with -plugins emitter,multiplex,substream (or a subset) also the plugin
// items 9–11 (see package testserver beside it).
//
//	go run ./cmd/primus-testserver -addr 127.0.0.1:0 -parser json -ping-interval 1s
//
// It prints "listening <port>" once it accepts connections and exits cleanly
// on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/cmd/primus-testserver/testserver"
	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/transport"
	"github.com/go-primus/primus/transport/engineio"
	"github.com/go-primus/primus/transport/sockjs"
	"github.com/go-primus/primus/transport/websocket"
)

// shutdownGrace bounds the sparks' orderly end on SIGTERM; the interop
// tests expect the process gone within 5 s.
const shutdownGrace = 3 * time.Second

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "primus-testserver:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	transformer := flag.String("transformer", "websocket", "transformer: websocket, sockjs or engine.io")
	parserName := flag.String("parser", "json", "parser: json or cbor")
	pingInterval := flag.Duration("ping-interval", 30*time.Second, "heartbeat interval")
	plugins := flag.String("plugins", "none", "comma-separated plugins, or none")
	verbose := flag.Bool("v", false, "log debug messages to stderr")
	recovery := flag.Duration("recovery", 0, "recovery window (e.g. 30s); 0 turns recovery off")
	flag.Parse()

	opts := &primus.Options{
		PingInterval:   *pingInterval,
		MaxMessageSize: 16 << 20,
		SendQueueBytes: 64 << 20,
	}
	if *recovery > 0 {
		opts.Recovery = &primus.Recovery{Window: *recovery}
	}
	if *verbose {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	switch *parserName {
	case "json":
		opts.Parser = parser.JSON
	case "cbor":
		opts.Parser = parser.CBOR
	default:
		return fmt.Errorf("unknown parser %q", *parserName)
	}
	var tr transport.Transformer
	switch *transformer {
	case "websocket", "websockets":
		tr = websocket.New()
	case "sockjs":
		tr = sockjs.New(nil)
	case "engine.io", "engineio":
		tr = engineio.New(nil)
	default:
		return fmt.Errorf("unknown transformer %q", *transformer)
	}
	opts.Transformer = tr
	plugs, err := testserver.ParsePlugins(*plugins)
	if err != nil {
		return err
	}
	opts.Plugins = plugs.List()

	srv, err := primus.New(opts)
	if err != nil {
		return err
	}
	testserver.Setup(srv)
	if err := plugs.Setup(srv); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second, // a client trickling its headers is cut
		ReadTimeout:       30 * time.Second, // headers and body; upgraded connections are not affected
		IdleTimeout:       2 * time.Minute,  // idle keep-alive connections are closed
		MaxHeaderBytes:    64 << 10,         // net/http's default is 1 MiB per request
		// No WriteTimeout: it would cut long polls and streaming responses;
		// the primus server bounds its own writes (Options.WriteTimeout).
	}
	// On SIGTERM the whole shutdown takes at most shutdownGrace: a polling
	// client that has gone without a word (its session waits to hand over
	// its close packet) is cut then, so that the process exits promptly.
	hs.RegisterOnShutdown(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
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
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace+time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return srv.Shutdown(sctx)
}
