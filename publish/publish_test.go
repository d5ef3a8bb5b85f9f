package publish_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/cluster"
	"github.com/go-primus/primus/cluster/nats"
	"github.com/go-primus/primus/internal/leakcheck"
	"github.com/go-primus/primus/internal/natstest"
	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/publish"
	"github.com/go-primus/primus/rooms"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

const waitTimeout = 10 * time.Second

// node is a server with rooms and the publish endpoint at
// publish.DefaultPath, on loopback.
type node struct {
	srv   *primus.Server
	rooms *rooms.Rooms
	ts    *httptest.Server
	conns chan *primus.Spark
}

// startNode starts a node; setup, when given, makes the node's cluster
// (and the rooms' relay) on its server.
func startNode(t *testing.T, opts *primus.Options, pub publish.Options, setup func(*primus.Server) (publish.Cluster, rooms.Relay)) *node {
	t.Helper()
	srv, err := primus.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{srv: srv, conns: make(chan *primus.Spark, 16)}
	srv.OnConnection(func(sp *primus.Spark) { n.conns <- sp })
	var relay rooms.Relay
	if setup != nil {
		pub.Cluster, relay = setup(srv)
	}
	n.rooms = rooms.New(srv, &rooms.Options{Relay: relay})
	pub.Server = srv
	pub.Rooms = n.rooms
	if pub.Authenticate == nil {
		pub.Authenticate = publish.BasicAuth("omega", "s3cret")
	}
	h, err := publish.New(pub)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/primus", srv)
	mux.Handle("/primus/", srv)
	mux.Handle(publish.DefaultPath, h)
	n.ts = httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		_ = srv.Shutdown(ctx)
		n.ts.Close()
	})
	return n
}

type client struct {
	*primus.Client
	sp   *primus.Spark
	data chan *primus.Message
}

func (n *node) dial(t *testing.T, p parser.Parser) *client {
	t.Helper()
	c := &client{data: make(chan *primus.Message, 16)}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	pc, err := primus.Dial(ctx, n.ts.URL+"/primus", &primus.ClientOptions{Parser: p, OnData: func(m *primus.Message) { c.data <- m }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	c.Client = pc
	select {
	case c.sp = <-n.conns:
	case <-time.After(waitTimeout):
		t.Fatal("no spark")
	}
	return c
}

// next returns the client's next message, decoded.
func (c *client) next(t *testing.T) any {
	t.Helper()
	select {
	case m := <-c.data:
		var v any
		if err := m.Decode(&v); err != nil {
			t.Fatal(err)
		}
		return v
	case <-time.After(waitTimeout):
		t.Fatal("no message")
		panic("unreachable")
	}
}

type reply struct {
	OK        bool   `json:"ok"`
	Send      int    `json:"send"`
	Forwarded int    `json:"forwarded"`
	Reason    string `json:"reason"`
}

// publish sends a request as omega-supreme's primus.forward does: PUT,
// JSON, basic authentication sent at once.
func publishTo(t *testing.T, base, method, user, pass, body string) (int, reply, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, base+publish.DefaultPath, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r reply
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("answer %q: %v", b, err)
	}
	return resp.StatusCode, r, resp.Header
}

func TestRefusedWithoutCredentials(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil, publish.Options{}, nil)
	c := n.dial(t, nil)
	for _, tc := range []struct{ user, pass string }{{"", ""}, {"omega", "supreme"}, {"omega", ""}, {"other", "s3cret"}} {
		status, r, h := publishTo(t, n.ts.URL, http.MethodPut, tc.user, tc.pass, `{"msg":"secret"}`)
		if status != http.StatusUnauthorized || r.OK || r.Reason == "" {
			t.Errorf("%s:%s: %d %+v, want 401 and a reason", tc.user, tc.pass, status, r)
		}
		if !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("WWW-Authenticate %q", h.Get("WWW-Authenticate"))
		}
	}
	// Nothing was delivered: the first message the client gets is the one
	// published with the credentials.
	status, r, _ := publishTo(t, n.ts.URL, http.MethodPut, "omega", "s3cret", `{"msg":"public"}`)
	if status != http.StatusOK || !r.OK || r.Send != 1 {
		t.Fatalf("%d %+v, want 200 ok send 1", status, r)
	}
	if got := c.next(t); got != "public" {
		t.Fatalf("got %v", got)
	}
}

func TestNewRequiresAuthenticate(t *testing.T) {
	srv, err := primus.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := publish.New(publish.Options{Server: srv}); err == nil {
		t.Error("an endpoint without Authenticate")
	}
	if _, err := publish.New(publish.Options{Authenticate: func(*http.Request) error { return nil }}); err == nil {
		t.Error("an endpoint without Server")
	}
}

func TestDeliver(t *testing.T) {
	t.Parallel()
	for _, p := range []parser.Parser{parser.JSON, parser.CBOR} {
		t.Run(p.Name(), func(t *testing.T) {
			t.Parallel()
			n := startNode(t, &primus.Options{Parser: p}, publish.Options{}, nil)
			a, b, c := n.dial(t, p), n.dial(t, p), n.dial(t, p)
			pub := func(body string, want int) {
				t.Helper()
				for _, method := range []string{http.MethodPut, http.MethodPost} {
					status, r, _ := publishTo(t, n.ts.URL, method, "omega", "s3cret", body)
					if status != http.StatusOK || !r.OK || r.Send != want {
						t.Fatalf("%s %s: %d %+v, want ok send %d", method, body, status, r, want)
					}
					method = "" // each request delivers once
				}
			}
			expect := func(cl *client, want string) {
				t.Helper()
				got, _ := json.Marshal(cl.next(t))
				if string(got) != want {
					t.Fatalf("got %s, want %s", got, want)
				}
			}

			// A broadcast (two requests: PUT and POST).
			pub(`{"msg": {"text": "hi", "n": 1}}`, 3)
			for _, cl := range []*client{a, b, c} {
				expect(cl, `{"n":1,"text":"hi"}`)
				expect(cl, `{"n":1,"text":"hi"}`)
			}
			// One spark, then several (an unknown id is skipped).
			pub(fmt.Sprintf(`{"msg": "to a", "sparks": %q}`, a.sp.ID()), 1)
			expect(a, `"to a"`)
			expect(a, `"to a"`)
			pub(fmt.Sprintf(`{"msg": 0, "sparks": [%q, %q, "nobody"]}`, b.sp.ID(), c.sp.ID()), 2)
			for _, cl := range []*client{b, c, b, c} {
				expect(cl, `0`)
			}
			// A room, but one of its members.
			for _, cl := range []*client{a, b} {
				if err := n.rooms.Join(cl.sp, "news"); err != nil {
					t.Fatal(err)
				}
			}
			pub(fmt.Sprintf(`{"msg": ["headline"], "rooms": "news", "except": [%q]}`, a.sp.ID()), 1)
			expect(b, `["headline"]`)
			expect(b, `["headline"]`)
			// Nothing else arrived anywhere.
			pub(`{"msg": "end"}`, 3)
			for _, cl := range []*client{a, b, c} {
				expect(cl, `"end"`)
			}
		})
	}
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil, publish.Options{MaxBodyBytes: 1024, BodyTimeout: 300 * time.Millisecond}, nil)
	for _, tc := range []struct {
		method, body string
		status       int
	}{
		{http.MethodGet, ``, http.StatusMethodNotAllowed},
		{http.MethodPut, `not json`, http.StatusBadRequest},
		{http.MethodPut, `[1, 2]`, http.StatusBadRequest},
		{http.MethodPut, `{"sparks": "x"}`, http.StatusBadRequest},
		{http.MethodPut, `{"msg": null}`, http.StatusBadRequest},
		{http.MethodPut, `{"msg": 1, "sparks": 5}`, http.StatusBadRequest},
		{http.MethodPut, "{\"msg\": \"\xff\"}", http.StatusBadRequest},
		{http.MethodPut, `{"msg": "` + strings.Repeat("x", 2048) + `"}`, http.StatusRequestEntityTooLarge},
	} {
		status, r, _ := publishTo(t, n.ts.URL, tc.method, "omega", "s3cret", tc.body)
		if status != tc.status || r.OK {
			t.Errorf("%s %.40q: %d %+v, want %d", tc.method, tc.body, status, r, tc.status)
		}
	}

	// A body trickled slower than BodyTimeout allows is cut.
	conn, err := net.Dial("tcp", n.ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: x\r\nAuthorization: Basic b21lZ2E6czNjcmV0\r\nContent-Length: 100\r\n\r\n{\"msg\":", publish.DefaultPath)
	_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("a trickled body: %d, want 408", resp.StatusCode)
	}
}

// TestCluster: a request to one node reaches sparks on another, by
// broadcast, by id and by room.
func TestCluster(t *testing.T) {
	t.Parallel()
	url := natstest.Start(t)
	var nodes []*node
	var clusters []*cluster.Cluster
	for _, id := range []string{"a", "b"} {
		nodes = append(nodes, startNode(t, nil, publish.Options{}, func(srv *primus.Server) (publish.Cluster, rooms.Relay) {
			b, err := nats.Connect(url, &nats.Options{Namespace: "publish"})
			if err != nil {
				t.Fatal(err)
			}
			c, err := cluster.New(srv, &cluster.Options{Broker: b, Registry: b, NodeID: id})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
				defer cancel()
				_ = c.Close(ctx)
				_ = b.Close()
			})
			clusters = append(clusters, c)
			return c, c
		}))
	}
	a, b := nodes[0], nodes[1]
	onA, onB := a.dial(t, nil), b.dial(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := clusters[1].Flush(ctx); err != nil { // b's spark is in the registry
		t.Fatal(err)
	}
	pub := func(body string, send, forwarded int) {
		t.Helper()
		status, r, _ := publishTo(t, a.ts.URL, http.MethodPut, "omega", "s3cret", body)
		if status != http.StatusOK || !r.OK || r.Send != send || r.Forwarded != forwarded {
			t.Fatalf("%s: %d %+v, want ok send %d forwarded %d", body, status, r, send, forwarded)
		}
	}
	expect := func(cl *client, want any) {
		t.Helper()
		if got := cl.next(t); got != want {
			t.Fatalf("got %v, want %v", got, want)
		}
	}

	pub(`{"msg": "everyone"}`, 1, 0)
	expect(onA, "everyone")
	expect(onB, "everyone")

	pub(fmt.Sprintf(`{"msg": "b only", "sparks": [%q]}`, onB.sp.ID()), 0, 1)
	expect(onB, "b only")

	// Room writes go only to the nodes a node knows to have members: a
	// learns of b's join before it publishes.
	joinedB := make(chan struct{}, 1)
	a.rooms.OnJoin(func(ev rooms.Event) {
		if ev.Spark == onB.sp.ID() && ev.Room == "news" {
			joinedB <- struct{}{}
		}
	})
	if err := b.rooms.Join(onB.sp, "news"); err != nil {
		t.Fatal(err)
	}
	if err := a.rooms.Join(onA.sp, "news"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-joinedB:
	case <-time.After(waitTimeout):
		t.Fatal("node a never heard of b's member of the room")
	}
	pub(`{"msg": "news", "rooms": ["news"]}`, 1, 0)
	expect(onA, "news")
	expect(onB, "news")

	pub(`{"msg": "last"}`, 1, 0)
	expect(onA, "last") // a got nothing else
	expect(onB, "last") // nor did b
}
