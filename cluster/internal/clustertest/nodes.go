package clustertest

import (
	"context"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/cluster"
	"github.com/go-primus/primus/emitter"
	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/plugin"
	"github.com/go-primus/primus/rooms"
)

// Node is one node of a test cluster: a primus server with the emitter on
// loopback, its cluster, its rooms and its backend.
type Node struct {
	Srv   *primus.Server
	URL   string
	C     *cluster.Cluster
	Rooms *rooms.Rooms
	Em    *emitter.Emitter
	B     Backend
	Errs  chan error // what Options.OnError got
}

// NodeOptions are a test node's cluster options.
type NodeOptions struct {
	Expiry     time.Duration
	QueueBytes int64
	Parser     parser.Parser // zero: JSON
}

// StartNode starts a node in the namespace; it is closed when the test
// ends.
func StartNode(t testing.TB, env *Env, ns string, o NodeOptions) *Node {
	t.Helper()
	n := &Node{B: env.connect(t, ns), Em: emitter.New(nil), Errs: make(chan error, 256)}
	srv, err := primus.New(&primus.Options{Plugins: []plugin.Plugin{n.Em}, SendQueueBytes: 64 << 20, Parser: o.Parser})
	if err != nil {
		t.Fatal(err)
	}
	n.Srv = srv
	hs := httptest.NewServer(srv)
	n.URL = hs.URL + srv.Pathname()
	n.C, err = cluster.New(srv, &cluster.Options{
		Broker:     n.B,
		Registry:   n.B,
		Expiry:     o.Expiry,
		QueueBytes: o.QueueBytes,
		Timeout:    2 * time.Second,
		OnError: func(err error) {
			select {
			case n.Errs <- err:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	n.Rooms = rooms.New(srv, &rooms.Options{Relay: n.C})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		_ = n.C.Close(ctx) // fails for a killed node's registry: expected
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		hs.Close()
	})
	return n
}

// Flush waits until the node has published what it was given and the
// registry holds its sparks.
func (n *Node) Flush(t testing.TB) {
	t.Helper()
	if err := n.C.Flush(bg(t)); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

// Client is a Go client of a node, with the emitter; it records the strings
// it receives as data (other values as their encoding) and the "news"
// events.
type Client struct {
	C      *primus.Client
	ID     string
	Spark  *primus.Spark // its spark on the node
	Data   chan string
	Events chan string // the first argument of each "news" event
}

// Dial connects a client to the node; it is closed when the test ends.
func Dial(t testing.TB, n *Node) *Client {
	t.Helper()
	c := &Client{Data: make(chan string, 4096), Events: make(chan string, 64)}
	ec := emitter.NewClient(nil)
	ec.On("news", func(ev *emitter.Event) {
		var s string
		_ = ev.Args.Decode(&s)
		c.Events <- s
	})
	ctx := bg(t)
	var err error
	c.C, err = primus.Dial(ctx, n.URL, &primus.ClientOptions{
		Plugins: []plugin.Plugin{ec},
		OnData: func(m *primus.Message) {
			var s string
			if err := m.Decode(&s); err != nil {
				s = string(m.Raw()) // not a string: as it came
			}
			select {
			case c.Data <- s:
			default:
				t.Errorf("client: message %q lost: the test does not read its messages", s)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.C.Close() })
	if c.ID, err = c.C.ID(ctx); err != nil {
		t.Fatal(err)
	}
	// The id's answer came from the spark's reading goroutine, after the
	// connection handlers ran: the server has the spark.
	var ok bool
	if c.Spark, ok = n.Srv.Spark(c.ID); !ok {
		t.Fatalf("the node has no spark %s", c.ID)
	}
	return c
}

// Next returns the client's next message.
func (c *Client) Next(t testing.TB) string {
	t.Helper()
	select {
	case s := <-c.Data:
		return s
	case <-time.After(Timeout):
		t.Fatalf("client %s: no message within %v", c.ID, Timeout)
		return ""
	}
}

// Expect checks that the client's next message is want.
func (c *Client) Expect(t testing.TB, want string) {
	t.Helper()
	if got := c.Next(t); got != want {
		t.Errorf("client %s got %q, want %q", c.ID, got, want)
	}
}

// Settle waits until every node's room writes go to each other node that
// has members of the rooms: a join reaches the other nodes' routes as an
// event, milliseconds after it is made.
func Settle(t testing.TB, nodes []*Node, rooms ...string) {
	t.Helper()
	Eventually(t, Timeout, "the room routes know every member's node", func() bool {
		for _, room := range rooms {
			for _, n := range nodes {
				p := n.Rooms.Presence()
				if p == nil {
					continue
				}
				routes := p.NodesOf(room)
				for _, m := range nodes {
					if m != n && len(m.Rooms.Room(room).Members()) > 0 && !slices.Contains(routes, m.C.ID()) {
						return false
					}
				}
			}
		}
		return true
	})
}
