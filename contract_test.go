package primus_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/transport"
)

// TestContract runs items 1–8 of docs/testserver-contract.md with our Go
// client against the test server's behaviour (cmd/primus-testserver/testserver), once per
// flavour (transformer × parser).
func TestContract(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		t.Run("1-Spec", func(t *testing.T) { t.Parallel(); testSpec(t, fl) })
		t.Run("2-Echo", func(t *testing.T) { t.Parallel(); testEcho(t, fl) })
		t.Run("2-EchoThousandInOrder", func(t *testing.T) { t.Parallel(); testEchoThousand(t, fl) })
		t.Run("2-EchoQueuedWhileOffline", func(t *testing.T) { t.Parallel(); testEchoQueuedWhileOffline(t, fl) })
		t.Run("3-Broadcast", func(t *testing.T) { t.Parallel(); testBroadcast(t, fl) })
		t.Run("4-Close", func(t *testing.T) { t.Parallel(); testCommandClose(t, fl) })
		t.Run("5-Whoami", func(t *testing.T) { t.Parallel(); testWhoami(t, fl) })
		t.Run("6-Drop", func(t *testing.T) { t.Parallel(); testDrop(t, fl) })
		t.Run("7-Authorization", func(t *testing.T) { t.Parallel(); testAuthorization(t, fl) })
		t.Run("8-HeartbeatKeepsClient", func(t *testing.T) { t.Parallel(); testHeartbeatKeepsClient(t, fl) })
		t.Run("8-HeartbeatSilentPeer", func(t *testing.T) { t.Parallel(); testHeartbeatSilentPeer(t, fl) })
	})
}

func testSpec(t *testing.T, fl flavour) {
	for _, tc := range []struct {
		name     string
		interval time.Duration
		want     string
	}{
		{"default", 0, "30000"},
		{"custom", 1500 * time.Millisecond, "1500"},
		{"disabled", -1, "false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startContractServer(t, fl, &primus.Options{PingInterval: tc.interval})
			resp, body := get(t, h.url+"/spec", nil)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			// The contract's fields, then ours: the largest message the
			// server takes (the Go client refuses to send more).
			want := fmt.Sprintf(`{"pingInterval":%s,"pathname":"/primus","version":%q,"parser":%q,"transformer":%q,"maxMessageSize":16777216}`,
				tc.want, primus.Version, fl.parser.Name(), fl.transformer.Name())
			if body != want {
				t.Errorf("spec\n got %s\nwant %s", body, want)
			}
		})
	}
}

// nestedValue is a nested object whose encoding is deterministic with every
// parser (struct fields in order, one map key).
type nestedValue struct {
	Name    string            `json:"name"`
	Count   int               `json:"count"`
	Ratio   float64           `json:"ratio"`
	Ok      bool              `json:"ok"`
	Tags    []string          `json:"tags"`
	Attrs   map[string]string `json:"attrs"`
	Missing *string           `json:"missing"`
	Child   *nestedValue      `json:"child,omitempty"`
}

func testEcho(t *testing.T, fl flavour) {
	h := startContractServer(t, fl, nil)
	c := h.dial(t, "", nil)

	var mib strings.Builder
	for mib.Len() < 1<<20 {
		fmt.Fprintf(&mib, "%08x", mib.Len())
	}
	for _, tc := range []struct {
		name  string
		value any
	}{
		{"string", "hello"},
		{"empty string", ""},
		{"unknown primus string", "primus::custom::x"},
		{"primus-like prefix", "primus:not-control"},
		{"integer", 42},
		{"negative float", -12.5},
		{"true", true},
		{"false", false},
		{"null", nil},
		{"array", []string{"a", "two", ""}},
		{"nested object", nestedValue{
			Name: "outer", Count: 3, Ratio: 0.25, Ok: true, Tags: []string{"x", "y"},
			Attrs: map[string]string{"k": "v"},
			Child: &nestedValue{Name: "inner", Tags: []string{}, Attrs: map[string]string{}},
		}},
		{"unicode", "héllo wörld ✓ 日本語 🎉 \u2028\u2029 \"quoted\" <tag> & \\"},
		{"1 MiB string", mib.String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t // the client's helpers report to this subtest
			c.write(tc.value)
			m := c.data.next(t, "the echo")
			checkDecoded(t, m, tc.value)
			// The server writes back the very bytes it received.
			want, err := fl.parser.Encode(tc.value)
			if err != nil {
				t.Fatal(err)
			}
			if string(m.Bytes()) != string(want) {
				t.Errorf("echo is not byte-for-byte: got %q, want %q", short(m.Bytes()), short(want))
			}
		})
	}
}

func testEchoThousand(t *testing.T, fl flavour) {
	h := startContractServer(t, fl, nil)
	c := h.dial(t, "", nil)
	const n = 1000
	for i := range n {
		c.write(i)
	}
	for i := range n {
		if got := decodeAs[int](t, c.data.next(t, fmt.Sprintf("echo %d", i))); got != i {
			t.Fatalf("echo %d: got %d", i, got)
		}
	}
}

// gate blocks a callback until the test opens it (or waitTimeout passes, so
// that a failing test cannot hang its cleanup).
type gate struct {
	ch   chan struct{}
	once sync.Once
}

func newGate() *gate { return &gate{ch: make(chan struct{})} }

func (g *gate) wait() {
	select {
	case <-g.ch:
	case <-time.After(waitTimeout):
	}
}

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

// offlineClient dials a client whose reconnect attempts wait for the
// returned gate, so that a test can act while the client is surely offline.
func offlineClient(t *testing.T, h *harness, opts *primus.ClientOptions) (*testClient, *gate) {
	t.Helper()
	g := newGate()
	var o primus.ClientOptions
	if opts != nil {
		o = *opts
	}
	o.OnReconnect = func(primus.ReconnectEvent) { g.wait() }
	c := h.dial(t, "", &o)
	t.Cleanup(g.open) // runs before the client's Close
	return c, g
}

// goOffline drops the client's connection from the server side and waits
// until the client is offline, held in its reconnect callback.
func goOffline(t *testing.T, c *testClient) primus.ReconnectEvent {
	t.Helper()
	c.write(map[string]any{"cmd": "drop"})
	return c.reconnects.next(t, "OnReconnect after the drop")
}

func testEchoQueuedWhileOffline(t *testing.T, fl flavour) {
	h := startContractServer(t, fl, nil)
	c, g := offlineClient(t, h, nil)
	goOffline(t, c)
	const n = 50
	for i := range n {
		c.write(fmt.Sprintf("queued %d", i))
	}
	g.open()
	c.opens.next(t, "OnOpen after reconnecting")
	for i := range n {
		c.expect(fmt.Sprintf("queued %d", i))
	}
}

func testBroadcast(t *testing.T, fl flavour) {
	h := startContractServer(t, fl, nil)
	clients := make([]*testClient, 3)
	for i := range clients {
		clients[i] = h.dial(t, "", nil)
		clients[i].id() // the spark is registered once it answers
	}
	type payload struct {
		Text string `json:"text"`
		N    int    `json:"n"`
	}
	want := payload{Text: "hi all", N: 3}
	clients[1].write(map[string]any{"cmd": "broadcast", "data": want})
	for _, c := range clients {
		c.expect(want)
	}
	// The command itself is not echoed: the next message is the next echo.
	clients[1].write("after")
	clients[1].expect("after")
}

func testCommandClose(t *testing.T, fl flavour) {
	h := startContractServer(t, fl, nil)
	se := watchSparks(h.srv)
	c := h.dial(t, "", nil)
	c.write(map[string]any{"cmd": "close"})
	if err := c.waitEnd(); err != nil {
		t.Fatalf("OnEnd(%v), want OnEnd(nil)", err)
	}
	if n := c.reconnects.total(); n != 0 {
		t.Errorf("OnReconnect called %d times after an intentional close", n)
	}
	if err := c.Err(); err != nil {
		t.Errorf("Err() = %v, want nil", err)
	}
	if err := c.Write("late"); !errors.Is(err, primus.ErrClosed) {
		t.Errorf("Write after the end = %v, want ErrClosed", err)
	}
	if end := se.ends.next(t, "spark OnEnd"); end.reason != nil {
		t.Errorf("spark OnEnd(%v), want nil", end.reason)
	}
}

type whoami struct {
	ID    string            `json:"id"`
	Query map[string]string `json:"query"`
}

func testWhoami(t *testing.T, fl flavour) {
	h := startContractServer(t, fl, nil)
	c1 := h.dial(t, "token=abc&foo=bar&name=J%C3%B6rg&empty=", nil)
	c1.write(map[string]any{"cmd": "whoami"})
	w1 := decodeAs[whoami](t, c1.data.next(t, "whoami reply"))
	if id := c1.id(); w1.ID != id {
		t.Errorf("whoami id %q != client ID %q", w1.ID, id)
	}
	for k, want := range map[string]string{"token": "abc", "foo": "bar", "name": "Jörg", "empty": ""} {
		if got, ok := w1.Query[k]; !ok || got != want {
			t.Errorf("query[%q] = %q (present %v), want %q", k, got, ok, want)
		}
	}
	if sp, ok := h.srv.Spark(w1.ID); !ok || sp.ID() != w1.ID {
		t.Errorf("srv.Spark(%q) = %v, %v", w1.ID, sp, ok)
	}

	c2 := h.dial(t, "", nil)
	c2.write(map[string]any{"cmd": "whoami"})
	w2 := decodeAs[whoami](t, c2.data.next(t, "whoami reply"))
	if w2.ID == w1.ID {
		t.Errorf("two connections share the id %q", w1.ID)
	}
	if id := c2.id(); w2.ID != id {
		t.Errorf("whoami id %q != client ID %q", w2.ID, id)
	}
}

func testDrop(t *testing.T, fl flavour) {
	h := startContractServer(t, fl, nil)
	c := h.dial(t, "", nil)
	before := c.id()
	c.write(map[string]any{"cmd": "drop"})
	ev := c.reconnects.next(t, "OnReconnect")
	if ev.Attempt != 1 || ev.Cause == nil {
		t.Errorf("reconnect event %+v, want attempt 1 with a cause", ev)
	}
	c.opens.next(t, "OnOpen after reconnecting")
	c.write("after the drop")
	c.expect("after the drop")
	if after := c.id(); after == before {
		t.Errorf("the new connection kept the id %q", before)
	}
	select {
	case err := <-c.ended:
		t.Fatalf("client ended (%v) after a drop", err)
	default:
	}
}

func testAuthorization(t *testing.T, fl flavour) {
	h := startContractServer(t, fl, nil)
	const wantBody = `{"error":"invalid token"}`

	c, err := h.dialErr(t, "token=bad", nil)
	if err == nil {
		t.Fatal("Dial with token=bad succeeded")
	}
	he := handshakeError(t, err)
	if he.StatusCode != 401 || string(he.Body) != wantBody {
		t.Errorf("handshake error %d %s, want 401 %s", he.StatusCode, he.Body, wantBody)
	}
	if n := c.opens.total(); n != 0 {
		t.Errorf("OnOpen called %d times for a refused client", n)
	}

	resp, body := get(t, h.url+"?token=bad", nil)
	if resp.StatusCode != 401 || body != wantBody || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("plain GET: %d %q %s, want 401 application/json %s", resp.StatusCode, resp.Header.Get("Content-Type"), body, wantBody)
	}

	ok := h.dial(t, "token=good", nil)
	ok.write("let in")
	ok.expect("let in")
}

// tapDialer records the pings a client reads and the pongs it writes.
type tapDialer struct {
	transport.Dialer
	p     parser.Parser
	pings *events[string]
	pongs *events[string]
}

func newTapDialer(d transport.Dialer, p parser.Parser) *tapDialer {
	return &tapDialer{Dialer: d, p: p, pings: newEvents[string](), pongs: newEvents[string]()}
}

func (d *tapDialer) Dial(ctx context.Context, url string, opts transport.DialOptions) (transport.Conn, error) {
	c, err := d.Dialer.Dial(ctx, url, opts)
	if err != nil {
		return nil, err
	}
	return &tapConn{Conn: c, d: d}, nil
}

type tapConn struct {
	transport.Conn
	d *tapDialer
}

func (c *tapConn) Read(ctx context.Context) (transport.MessageType, []byte, error) {
	typ, b, err := c.Conn.Read(ctx)
	if err == nil {
		if s, ok := parser.DecodeString(c.d.p, b); ok {
			if v, ok := strings.CutPrefix(s, "primus::ping::"); ok {
				c.d.pings.push(v)
			}
		}
	}
	return typ, b, err
}

func (c *tapConn) Write(ctx context.Context, typ transport.MessageType, b []byte) error {
	if s, ok := parser.DecodeString(c.d.p, b); ok {
		if v, ok := strings.CutPrefix(s, "primus::pong::"); ok {
			c.d.pongs.push(v)
		}
	}
	return c.Conn.Write(ctx, typ, b)
}

func testHeartbeatKeepsClient(t *testing.T, fl flavour) {
	// The server closes a spark whose pong misses the next tick, so the
	// interval must exceed the worst round trip of a loaded test machine.
	h := startContractServer(t, fl, &primus.Options{PingInterval: 500 * time.Millisecond})
	tap := newTapDialer(fl.dialer, fl.parser)
	// The client's own timeout (150 ms from the spec) leaves 50 ms of slack,
	// too little on a loaded machine; what is tested here is that the
	// server keeps a client that answers. TestClientPingTimeoutFromSpec
	// tests the derived timeout.
	c := h.dial(t, "", &primus.ClientOptions{Dialer: tap, PingTimeout: 2 * time.Second})
	before := c.id()
	digits := regexp.MustCompile(`^[0-9]+$`)
	for i := range 3 {
		ping := tap.pings.next(t, fmt.Sprintf("ping %d", i))
		pong := tap.pongs.next(t, fmt.Sprintf("pong %d", i))
		if !digits.MatchString(ping) || pong != ping {
			t.Fatalf("ping %q answered with pong %q", ping, pong)
		}
	}
	if after := c.id(); after != before {
		t.Errorf("spark id changed from %q to %q: the connection was replaced", before, after)
	}
	if n := c.reconnects.total(); n != 0 {
		t.Errorf("client reconnected %d times: %v", n, c.reconnects.pending())
	}
	if errs := c.errs.pending(); len(errs) != 0 {
		t.Errorf("client errors: %v", errs)
	}
}

func testHeartbeatSilentPeer(t *testing.T, fl flavour) {
	h := startContractServer(t, fl, &primus.Options{PingInterval: 100 * time.Millisecond})
	se := watchSparks(h.srv)
	raw := h.rawDial(t, nil)
	ping := regexp.MustCompile(`^primus::ping::[0-9]+$`)
	pings := 0
	err := readUntilClosed(t, raw, func(b []byte) {
		s, ok := parser.DecodeString(fl.parser, b)
		switch {
		case ok && ping.MatchString(s):
			pings++
		case ok && s == "primus::server::close":
			t.Fatal("a timed-out spark got primus::server::close")
		default:
			t.Fatalf("unexpected frame %q", short(b))
		}
	})
	if pings == 0 {
		t.Fatalf("connection ended (%v) before any ping", err)
	}
	end := se.ends.next(t, "spark OnEnd")
	if !errors.Is(end.reason, primus.ErrHeartbeatTimeout) {
		t.Errorf("spark OnEnd(%v), want ErrHeartbeatTimeout", end.reason)
	}
	if err := se.errs.next(t, "spark OnError"); !errors.Is(err, primus.ErrHeartbeatTimeout) {
		t.Errorf("spark OnError(%v), want ErrHeartbeatTimeout", err)
	}
}

var _ transport.Dialer = (*tapDialer)(nil)
