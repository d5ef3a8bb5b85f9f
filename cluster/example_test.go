package cluster_test

import (
	"context"
	"log"
	"net/http"
	"time"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/cluster"
	"github.com/go-primus/primus/cluster/nats"
	"github.com/go-primus/primus/rooms"
)

// A node of a cluster on NATS: run the same program on every node, behind
// any load balancer (WebSocket needs no sticky sessions).
func Example() {
	srv, err := primus.New(nil)
	if err != nil {
		log.Fatal(err)
	}
	b, err := nats.Connect("nats://127.0.0.1:4222", nil) // or redis.Connect("redis://127.0.0.1:6379", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	c, err := cluster.New(srv, &cluster.Options{
		Broker:   b,
		Registry: b,
		OnError:  func(err error) { log.Printf("cluster: %v", err) },
	})
	if err != nil {
		log.Fatal(err)
	}
	r := rooms.New(srv, &rooms.Options{Relay: c})

	srv.OnConnection(func(sp *primus.Spark) {
		_ = r.Join(sp, "lobby")
		sp.OnData(func(m *primus.Message) {
			// m.Raw() is already encoded: every node passes it on as is.
			_ = r.Room("lobby").Except(sp.ID()).Write(m.Raw())
		})
	})

	hs := &http.Server{Addr: ":8080", Handler: srv}
	hs.RegisterOnShutdown(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Close(ctx) // leave the registry at once
		_ = srv.Shutdown(ctx)
	})
	log.Fatal(hs.ListenAndServe())
}
