package metrics_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/cluster"
	"github.com/go-primus/primus/cluster/nats"
	"github.com/go-primus/primus/emitter"
	"github.com/go-primus/primus/internal/natstest"
	"github.com/go-primus/primus/multiplex"
	"github.com/go-primus/primus/plugin"
	"github.com/go-primus/primus/rooms"
	"github.com/go-primus/primus/substream"
)

func TestPluginsAndRooms(t *testing.T) {
	t.Parallel()
	em := emitter.New(&emitter.Options{AckTimeout: 50 * time.Millisecond})
	mx := multiplex.New(nil)
	mx.Channel("chat")
	ss := substream.New(nil)
	e := start(t, &primus.Options{Plugins: []plugin.Plugin{mx, em, ss}})
	r := rooms.New(e.srv, nil)
	for _, f := range []func(){func() { e.m.AddEmitter(em) }, func() { e.m.AddMultiplex(mx) }, func() { e.m.AddSubstream(ss) }, func() { e.m.AddRooms(r) }} {
		f()
	}
	for _, name := range []string{"primus_emitter_acks_pending", "primus_multiplex_channels", "primus_substreams", "primus_rooms", "primus_room_members"} {
		expect(t, e.reg, 0, name)
	}

	mc := multiplex.NewClient()
	e.dial(t, &primus.ClientOptions{Plugins: []plugin.Plugin{mc}}) // no emitter: acknowledgements never come
	sp := recv(t, e.conns, "the spark")
	if _, err := mc.Channel("chat", nil); err != nil {
		t.Fatal(err)
	}
	await(t, e.reg, 1, "primus_multiplex_channels")

	if _, err := ss.Stream(sp, "logs", nil); err != nil {
		t.Fatal(err)
	}
	expect(t, e.reg, 1, "primus_substreams")

	for _, room := range []string{"a", "b"} {
		if err := r.Join(sp, room); err != nil {
			t.Fatal(err)
		}
	}
	expect(t, e.reg, 2, "primus_rooms")
	expect(t, e.reg, 1, "primus_room_members")
	expect(t, e.reg, 2, "primus_room_memberships")

	timedOut := make(chan error, 1)
	if err := em.SendAckFunc(context.Background(), sp, "question", func(_ emitter.Args, err error) { timedOut <- err }); err != nil {
		t.Fatal(err)
	}
	if v := value(t, e.reg, "primus_emitter_acks_pending"); v != 1 {
		// It may have timed out already on a loaded machine.
		expect(t, e.reg, 1, "primus_emitter_ack_timeouts_total")
	}
	if err := recv(t, timedOut, "the timeout"); !errors.Is(err, emitter.ErrAckTimeout) {
		t.Fatalf("the wait ended with %v", err)
	}
	expect(t, e.reg, 0, "primus_emitter_acks_pending")
	expect(t, e.reg, 1, "primus_emitter_ack_timeouts_total")
}

func TestCluster(t *testing.T) {
	t.Parallel()
	for _, durable := range []bool{false, true} {
		name := "pubsub"
		if durable {
			name = "durable"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testCluster(t, durable)
		})
	}
}

func testCluster(t *testing.T, durable bool) {
	url := natstest.Start(t)
	type node struct {
		e *env
		c *cluster.Cluster
	}
	var nodes []node
	for _, id := range []string{"a", "b"} {
		e := start(t, nil)
		opts := &nats.Options{Namespace: "metrics"}
		if durable {
			opts.Durable = &nats.Durability{Memory: true}
		}
		b, err := nats.Connect(url, opts)
		if err != nil {
			t.Fatal(err)
		}
		c, err := cluster.New(e.srv, &cluster.Options{Broker: b, Registry: b, NodeID: id})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			_ = c.Close(ctx)
			_ = b.Close()
		})
		e.m.AddCluster(c)
		nodes = append(nodes, node{e, c})
	}
	_, data := nodes[1].e.dial(t, nil)
	recv(t, nodes[1].e.conns, "the spark on b")
	expect(t, nodes[0].e.reg, 1, "primus_cluster_broker_up", "node", "a")
	expect(t, nodes[0].e.reg, 0, "primus_cluster_published_total", "node", "a")
	lag := -1.0 // absent without durable channels
	if durable {
		lag = 0 // nothing delivered yet
	}
	expect(t, nodes[1].e.reg, lag, "primus_cluster_catchup_lag_seconds", "node", "b")

	if err := nodes[0].c.Write("hello"); err != nil {
		t.Fatal(err)
	}
	recv(t, data, "the broadcast on b")
	expect(t, nodes[1].e.reg, 1, "primus_cluster_received_total", "node", "b")
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := nodes[0].c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	expect(t, nodes[0].e.reg, 1, "primus_cluster_published_total", "node", "a")
	expect(t, nodes[0].e.reg, 0, "primus_cluster_dropped_total", "node", "a")
	expect(t, nodes[0].e.reg, 0, "primus_cluster_queue_bytes", "node", "a")
	if !durable {
		for _, name := range []string{"primus_cluster_duplicates_total", "primus_cluster_gaps_total", "primus_cluster_catchup_lag_seconds"} {
			expect(t, nodes[1].e.reg, -1, name, "node", "b")
		}
		return
	}
	// The broadcast was a stream entry: b read it some time after it was
	// stored.
	if v := value(t, nodes[1].e.reg, "primus_cluster_catchup_lag_seconds", "node", "b"); v <= 0 {
		t.Errorf("primus_cluster_catchup_lag_seconds = %v after a delivery, want > 0", v)
	}
	expect(t, nodes[1].e.reg, 0, "primus_cluster_duplicates_total", "node", "b")
	expect(t, nodes[1].e.reg, 0, "primus_cluster_gaps_total", "node", "b")
}
