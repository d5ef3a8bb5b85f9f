// Command echo is the smallest useful primus server: every message a client
// writes comes back to it, and "/" serves a page to try it in a browser.
//
//	go run ./examples/echo
//
// then open the printed URL.
package main

import (
	"context"
	_ "embed"
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

	"github.com/go-primus/primus"
)

//go:embed index.html
var page []byte

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	flag.Parse()

	srv, err := primus.New(nil) // WebSocket, JSON, /primus, 30 s heartbeats
	if err != nil {
		log.Fatal(err)
	}
	srv.OnConnection(func(spark *primus.Spark) {
		log.Printf("connection %s from %s", spark.ID(), spark.Address())
		spark.OnData(func(m *primus.Message) {
			_ = spark.Write(m.Raw()) // echo the message exactly as received
		})
		spark.OnEnd(func(reason error) {
			log.Printf("end %s (%v)", spark.ID(), reason)
		})
	})

	mux := http.NewServeMux()
	mux.Handle("/primus", srv)
	mux.Handle("/primus/", srv)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(page)
	})

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
	hs.RegisterOnShutdown(func() { _ = srv.Shutdown(context.Background()) })
	fmt.Printf("echo server: open http://%s/ in a browser\n", ln.Addr())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
		_ = srv.Shutdown(sctx) // waits for the sparks to finish
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
