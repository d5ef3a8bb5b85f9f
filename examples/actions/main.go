// Command actions shows the action-dispatch pattern between a browser and a
// frontend server: the browser sends actions {id, type, payload} over a
// primus connection; the server knows who the connection belongs to from a
// signed session cookie (set by a login form and read by session
// middleware), routes each action by type through a small dispatcher that
// checks the role it needs (SuperAdmin, Admin, user, or none), and calls a
// backend service — a real HTTP server this example starts on loopback —
// with the payload. Results and errors travel back to the browser.
//
//	go run ./examples/actions
//
// then open the printed URL and log in as alice (SuperAdmin), bob (Admin) or
// carol (user), password "demo".
//
// Authorisation happens at two levels. Actions without a role (items.list,
// whoami) work for everybody, logged in or not; the others are refused with
// a clear message, and their handler never runs, unless the user has the
// role. And the connection itself goes through srv.Authorize, which refuses
// one whose session cookie is forged or expired (HTTP 401; the client gives
// up and the page says so).
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

	backendURL, stopBackend, err := startBackend()
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("backend service at %s", backendURL)

	srv, err := primus.New(nil)
	if err != nil {
		log.Fatal(err)
	}
	sess := newSessions()
	if err := srv.Use("session", sess.middleware); err != nil {
		log.Fatal(err)
	}
	srv.Authorize(authorize)

	d := NewDispatcher()
	routes(d, &backendClient{base: backendURL, http: &http.Client{Timeout: 10 * time.Second}})
	srv.OnConnection(func(sp *primus.Spark) {
		u := userOf(sp.Context())
		log.Printf("connection %s of %s", sp.ID(), who(u))
		sp.OnData(func(m *primus.Message) {
			var a Action
			if err := m.Decode(&a); err != nil || a.Type == "" {
				_ = sp.Write(Reply{Error: "send actions as {id, type, payload}"})
				return
			}
			_ = sp.Write(d.Dispatch(sp.Context(), u, a))
		})
	})

	mux := http.NewServeMux()
	mux.Handle("/primus", srv)
	mux.Handle("/primus/", srv)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(page)
	})
	mux.HandleFunc("POST /login", sess.login)
	mux.HandleFunc("POST /logout", logout)

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
	fmt.Printf("actions server: open http://%s/ in a browser\n", ln.Addr())

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
		_ = stopBackend(sctx)
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	<-stopped // the sparks have ended
}
