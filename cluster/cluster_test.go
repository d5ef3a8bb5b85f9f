package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/cluster"
	"github.com/go-primus/primus/cluster/internal/clustertest"
	"github.com/go-primus/primus/cluster/nats"
	"github.com/go-primus/primus/parser"
)

// natsEnv runs these tests on NATS: the cluster's own behaviour does not
// depend on the backend (cluster/nats and cluster/redis run the shared
// suite on each).
func natsEnv(t testing.TB) *clustertest.Env {
	srv := clustertest.StartNATS(t)
	return &clustertest.Env{
		Connect: func(t testing.TB, ns string) clustertest.Backend {
			b, err := nats.Connect(srv.URL, &nats.Options{Namespace: ns})
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
	}
}

func ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), clustertest.Timeout)
	t.Cleanup(cancel)
	return ctx
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	srv, err := primus.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.New(nil, nil); err == nil {
		t.Error("New(nil server): no error")
	}
	if _, err := cluster.New(srv, &cluster.Options{}); err == nil {
		t.Error("New without a broker and a registry: no error")
	}
	b := natsEnv(t).Connect(t, "validate")
	defer b.Close()
	if _, err := cluster.New(srv, &cluster.Options{Broker: b, Registry: b, NodeID: "a.*"}); err == nil {
		t.Error("New with a NodeID that is a NATS wildcard: no error")
	}
}

// TestClose: a node that closes leaves the registry at once (not after the
// expiry), refuses further writes, and closing twice is harmless.
func TestClose(t *testing.T) {
	t.Parallel()
	env := natsEnv(t)
	ns := clustertest.Namespace()
	a := clustertest.StartNode(t, env, ns, clustertest.NodeOptions{Expiry: time.Minute})
	b := clustertest.StartNode(t, env, ns, clustertest.NodeOptions{Expiry: time.Minute})
	clustertest.Dial(t, b)
	clustertest.Dial(t, b)
	b.Flush(t)
	if n, err := a.C.Count(ctx(t)); err != nil || n != 2 {
		t.Fatalf("Count = %d, %v; want 2", n, err)
	}
	if err := b.C.Close(ctx(t)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n, err := a.C.Count(ctx(t)); err != nil || n != 0 {
		t.Errorf("Count after the other node closed = %d, %v; want 0 at once", n, err)
	}
	if nodes, err := a.C.Nodes(ctx(t)); err != nil || len(nodes) != 1 || nodes[0].ID != a.C.ID() {
		t.Errorf("Nodes() = %v, %v; want only node a", nodes, err)
	}
	for name, err := range map[string]error{
		"Write":   b.C.Write("x"),
		"WriteTo": b.C.WriteTo("id", "x"),
		"Publish": b.C.Publish("t", nil),
		"Flush":   b.C.Flush(ctx(t)),
	} {
		if !errors.Is(err, cluster.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	if err := b.C.Close(ctx(t)); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestTopics: Publish reaches the handlers of the topic on the other nodes,
// in order, and never the publisher's own.
func TestTopics(t *testing.T) {
	t.Parallel()
	env := natsEnv(t)
	ns := clustertest.Namespace()
	nodes := []*clustertest.Node{
		clustertest.StartNode(t, env, ns, clustertest.NodeOptions{}),
		clustertest.StartNode(t, env, ns, clustertest.NodeOptions{}),
		clustertest.StartNode(t, env, ns, clustertest.NodeOptions{}),
	}
	got := make([]chan string, 3)
	for i, n := range nodes {
		got[i] = make(chan string, 16)
		n.C.Handle("chat", func(data []byte) { got[i] <- string(data) })
		n.C.Handle("other", func(data []byte) { got[i] <- "other: " + string(data) })
	}
	for i := range 3 {
		if err := nodes[0].C.Publish("chat", fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range []int{1, 2} {
		for j := range 3 {
			select {
			case s := <-got[i]:
				if want := fmt.Sprintf("m%d", j); s != want {
					t.Errorf("node %d got %q, want %q", i, s, want)
				}
			case <-time.After(clustertest.Timeout):
				t.Fatalf("node %d: no topic message", i)
			}
		}
	}
	// Node 0 publishes a last message on another topic; once node 1 has
	// it, node 0 has had its own copies back from the broker too (one
	// connection's messages keep their order), and dropped them all.
	if err := nodes[0].C.Publish("other", []byte("last")); err != nil {
		t.Fatal(err)
	}
	if s := <-got[1]; s != "other: last" {
		t.Errorf("node 1 got %q", s)
	}
	if err := nodes[0].C.Flush(ctx(t)); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got[0]:
		t.Errorf("the publishing node's own handler got %q", s)
	default:
	}
}

// TestMalformed: messages on the cluster's channels that are not the
// cluster's are counted and dropped; delivery goes on.
func TestMalformed(t *testing.T) {
	t.Parallel()
	env := natsEnv(t)
	ns := clustertest.Namespace()
	a := clustertest.StartNode(t, env, ns, clustertest.NodeOptions{})
	b := clustertest.StartNode(t, env, ns, clustertest.NodeOptions{})
	ca := clustertest.Dial(t, a)
	// Garbage on node b's connection, then a real broadcast on it: node a
	// gets them in that order.
	for _, junk := range []string{"", "junk", "\x01z\x00\x00"} {
		if err := b.B.Publish(ctx(t), "all", []byte(junk)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.C.Write("fine"); err != nil {
		t.Fatal(err)
	}
	ca.Expect(t, "fine")
	// Received also counts the nodes' presence messages (their digests).
	if s := a.C.Stats(); s.Malformed != 3 || s.Received < 1 {
		t.Errorf("Stats() = %+v, want 3 malformed and the broadcast received", s)
	}
}

// TestWriteToNewSpark writes by id, from node a, to a spark of node b that
// node b has not registered yet: a's lookup finds nothing, the message goes
// to every node, and b delivers it.
func TestWriteToNewSpark(t *testing.T) {
	t.Parallel()
	env := natsEnv(t)
	ns := clustertest.Namespace()
	a := clustertest.StartNode(t, env, ns, clustertest.NodeOptions{})

	// Node b by hand: its own connection handler runs before the
	// cluster's, which registers the spark.
	be := env.Connect(t, ns)
	t.Cleanup(func() { _ = be.Close() })
	srv, err := primus.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.OnConnection(func(sp *primus.Spark) {
		if err := a.C.WriteTo(sp.ID(), "early"); err != nil {
			t.Error(err)
		}
		if err := a.C.Flush(ctx(t)); err != nil { // a's lookup is done
			t.Error(err)
		}
	})
	b, err := cluster.New(srv, &cluster.Options{Broker: be, Registry: be})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		_ = b.Close(ctx(t))
		_ = srv.Shutdown(ctx(t))
		hs.Close()
	})

	got := make(chan string, 1)
	c, err := primus.Dial(ctx(t), hs.URL+"/primus", &primus.ClientOptions{OnData: func(m *primus.Message) {
		var s string
		_ = m.Decode(&s)
		got <- s
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case s := <-got:
		if s != "early" {
			t.Errorf("got %q", s)
		}
	case <-time.After(clustertest.Timeout):
		t.Fatal("the write by id to a spark not registered yet was lost")
	}
	if s := a.C.Stats(); s.Unknown != 1 {
		t.Errorf("node a: %+v, want Unknown 1 (the lookup found nothing)", s)
	}
}

// note is what TestEncodesOnce writes; countingParser counts its
// encodings.
type note struct {
	Text string `json:"text"`
}

type countingParser struct {
	parser.Parser
	notes atomic.Int64
}

func (p *countingParser) Encode(v any) ([]byte, error) {
	if _, ok := v.(note); ok {
		p.notes.Add(1)
	}
	return p.Parser.Encode(v)
}

// TestEncodesOnce: a broadcast, a room write and a write by id are encoded
// once, by the writing node, whatever the number of sparks and nodes; the
// other nodes pass the bytes on without encoding.
func TestEncodesOnce(t *testing.T) {
	t.Parallel()
	env := natsEnv(t)
	ns := clustertest.Namespace()
	var parsers []*countingParser
	var nodes []*clustertest.Node
	var clients []*clustertest.Client
	for range 3 {
		p := &countingParser{Parser: parser.JSON}
		n := clustertest.StartNode(t, env, ns, clustertest.NodeOptions{Parser: p})
		parsers, nodes = append(parsers, p), append(nodes, n)
		for range 3 {
			c := clustertest.Dial(t, n)
			if err := n.Rooms.Join(c.Spark, "all"); err != nil {
				t.Fatal(err)
			}
			clients = append(clients, c)
		}
	}
	for _, n := range nodes {
		n.Flush(t)
	}
	clustertest.Settle(t, nodes, "all")
	check := func(what string) {
		t.Helper()
		for _, c := range clients {
			if got := c.Next(t); got != `{"text":"`+what+`"}` {
				t.Errorf("%s: got %s", what, got)
			}
		}
		for i, p := range parsers {
			want := int64(0)
			if i == 0 {
				want = 1
			}
			if n := p.notes.Swap(0); n != want {
				t.Errorf("%s: node %d encoded the note %d times, want %d", what, i, n, want)
			}
		}
	}
	if err := nodes[0].C.Write(note{"broadcast"}); err != nil {
		t.Fatal(err)
	}
	check("broadcast")
	if err := nodes[0].Rooms.Room("all").Write(note{"room"}); err != nil {
		t.Fatal(err)
	}
	check("room")
	for _, c := range clients {
		if err := nodes[0].C.WriteTo(c.ID, note{"direct"}); err != nil {
			t.Fatal(err)
		}
		if got := c.Next(t); got != `{"text":"direct"}` {
			t.Errorf("direct: got %s", got)
		}
		if n := parsers[0].notes.Swap(0); n != 1 {
			t.Errorf("direct: node 0 encoded the note %d times, want 1", n)
		}
	}
}
