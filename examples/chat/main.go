// Command chat is a browser chat: people pick a name and a room, see who is
// there, and get notices when others join and leave. Rooms live in the
// server's memory; every message is an ordinary primus message, so the page
// uses nothing but the served client (/primus/primus.js).
//
//	go run ./examples/chat
//
// then open the printed URL in two browser windows. Prometheus metrics are
// served at /metrics. With -publish-password (or PRIMUS_PUBLISH_PASSWORD),
// other programs can post to every room at /primus/omega/supreme:
//
//	curl -u omega:PASSWORD -X PUT -d '{"msg":{"type":"message","name":"ops","text":"maintenance at 6"}}' http://127.0.0.1:8080/primus/omega/supreme
//
// The browser sends {"type": "join", "name": …, "room": …} and
// {"type": "say", "text": …}; the server sends "welcome" (to the joiner,
// with the members), "joined", "left", "message" and "error" events of the
// same shape.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/examples/internal/chatpage"
	"github.com/go-primus/primus/metrics"
	"github.com/go-primus/primus/publish"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	password := flag.String("publish-password", os.Getenv("PRIMUS_PUBLISH_PASSWORD"), "password (user omega) of the publish endpoint at /primus/omega/supreme; empty: no endpoint")
	flag.Parse()

	m, err := metrics.New(prometheus.DefaultRegisterer)
	if err != nil {
		log.Fatal(err)
	}
	srv, err := primus.New(&primus.Options{
		Observer: m,
		// The README's recommended limits (section Limits).
		Limits: &primus.Limits{
			MaxConnections:           10_000,
			MaxConnectionsPerAddress: 100,
			NewConnectionsPerSecond:  10,
			NewConnectionsBurst:      50,
			MessagesPerSecond:        50,
			MessagesBurst:            200,
			BytesPerSecond:           256 << 10,
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	newChat(srv)

	mux := http.NewServeMux()
	mux.Handle("/primus", srv)
	mux.Handle("/primus/", srv)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(chatpage.HTML)
	})
	// In production, serve /metrics on an internal port instead.
	mux.Handle("GET /metrics", promhttp.Handler())
	if *password != "" {
		pub, err := publish.New(publish.Options{Server: srv, Authenticate: publish.BasicAuth("omega", *password)})
		if err != nil {
			log.Fatal(err)
		}
		mux.Handle(publish.DefaultPath, pub)
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second, // a client trickling its headers is cut
		ReadTimeout:       30 * time.Second, // headers and body; upgraded connections are not affected
		IdleTimeout:       2 * time.Minute,  // idle keep-alive connections are closed
		MaxHeaderBytes:    64 << 10,         // net/http's default is 1 MiB per request
		// No WriteTimeout: it would cut long polls and streaming responses;
		// the primus server bounds its own writes (Options.WriteTimeout).
	}
	fmt.Printf("chat server: open http://%s/ in a browser\n", ln.Addr())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
		_ = srv.Shutdown(sctx)
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	<-stopped // the sparks have ended
}
