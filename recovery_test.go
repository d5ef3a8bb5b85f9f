package primus_test

// Recovery: a client that loses its connection comes back to the same spark
// and gets every message it missed, exactly once and in order, in both
// directions. The connections are cut for real: by the server, and by a TCP
// proxy between client and server that kills sockets.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ws "github.com/coder/websocket"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/internal/tcpproxy"
	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/rooms"
	"github.com/go-primus/primus/transport"
)

// recoveryServer starts a server with recovery on; the sparks join room
// "r" and echo what they receive as {"echo": m}. It counts the server's
// connection and resume handlers per spark.
type recoveryServer struct {
	*harness
	rooms       *rooms.Rooms
	connections atomic.Int32
	resumes     atomic.Int32
	sparks      chan *primus.Spark
	received    chan int // numbered client messages, in arrival order
	ends        chan error
}

func startRecoveryServer(t *testing.T, rec *primus.Recovery, opts *primus.Options) *recoveryServer {
	t.Helper()
	return startRecoveryServerOn(t, wsJSON, rec, opts)
}

func startRecoveryServerOn(t *testing.T, fl flavour, rec *primus.Recovery, opts *primus.Options) *recoveryServer {
	t.Helper()
	var o primus.Options
	if opts != nil {
		o = *opts
	}
	o.Recovery = rec
	h := startServer(t, fl, &o)
	rs := &recoveryServer{
		harness:  h,
		rooms:    rooms.New(h.srv, nil),
		sparks:   make(chan *primus.Spark, 16),
		received: make(chan int, 100_000),
		ends:     make(chan error, 16),
	}
	h.srv.OnConnection(func(sp *primus.Spark) {
		rs.connections.Add(1)
		_ = rs.rooms.Join(sp, "r")
		sp.OnResume(func() { rs.resumes.Add(1) })
		sp.OnEnd(func(r error) { rs.ends <- r })
		sp.OnError(func(err error) {
			if errors.Is(err, parser.ErrDecode) {
				t.Errorf("spark %s: %v", sp.ID(), err) // the client sent something broken
			}
		})
		sp.OnData(func(m *primus.Message) {
			var v struct{ N int }
			if err := m.Decode(&v); err == nil && v.N > 0 {
				rs.received <- v.N
			}
		})
		rs.sparks <- sp
	})
	return rs
}

// numbered is what the tests write: a source, a number, some padding.
type numbered struct {
	S string `json:"s,omitempty"`
	N int    `json:"n"`
}

// TestRecoveryExactlyOnceInOrder: 10,000 numbered messages to a spark and
// 10,000 to a room it is in, and 10,000 from its client, while the
// connection is cut every 100–300 ms (by the server, by the network, and by
// the network without the server noticing): every one arrives exactly once,
// in order; the spark keeps its id and its room; its connection handlers
// ran once. On every transformer.
func TestRecoveryExactlyOnceInOrder(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, testRecoveryExactlyOnceInOrder)
}

func testRecoveryExactlyOnceInOrder(t *testing.T, fl flavour) {
	const total = 10_000
	// Bounds far above what a cut can pile up, even on a loaded machine:
	// this test is about exactly once and in order (the bounds have tests
	// of their own).
	rs := startRecoveryServerOn(t, fl, &primus.Recovery{Window: time.Minute, MaxMessages: 1 << 20, MaxBytes: 256 << 20}, nil)
	proxy := tcpproxy.New(t, rs.ts.Listener.Addr().String())

	// What the client receives, per source.
	var mu sync.Mutex
	next := map[string]int{"d": 1, "r": 1}
	doneRecv := make(chan struct{})
	var badRecv atomic.Value
	resumed := make(chan primus.ResumeEvent, 1000)
	c := rs.dial(t, "", &primus.ClientOptions{
		Reconnect: primus.Backoff{Min: 5 * time.Millisecond, Max: 20 * time.Millisecond, Retries: 1000},
		OnResume: func(ev primus.ResumeEvent) {
			if !ev.Recovered {
				t.Logf("a reconnection did not recover: %v", ev.Reason)
			}
			resumed <- ev
		},
		OnData: func(m *primus.Message) {
			var v numbered
			if err := m.Decode(&v); err != nil || v.S == "" {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if v.N != next[v.S] {
				badRecv.CompareAndSwap(nil, fmt.Sprintf("source %s: got %d, want %d", v.S, v.N, next[v.S]))
			}
			next[v.S] = v.N + 1
			if next["d"] > total && next["r"] > total {
				select {
				case <-doneRecv:
				default:
					close(doneRecv)
				}
			}
		},
	}, proxy)
	sp := waitFor(t, rs.sparks, "the spark")
	firstID := c.id()

	// The server writes to the spark and to its room; the client writes to
	// the server; meanwhile connections are cut every 100–300 ms.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		for i := 1; i <= total; i++ {
			if err := sp.Write(numbered{"d", i}); err != nil {
				t.Errorf("direct write %d: %v", i, err)
				return
			}
			if i%8 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := 1; i <= total; i++ {
			if err := rs.rooms.Room("r").Write(numbered{"r", i}); err != nil {
				t.Errorf("room write %d: %v", i, err)
				return
			}
			if i%8 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := 1; i <= total; i++ {
			for {
				err := c.Write(numbered{N: i})
				if err == nil {
					break
				}
				if !errors.Is(err, primus.ErrQueueFull) {
					t.Errorf("client write %d: %v", i, err)
					return
				}
				time.Sleep(time.Millisecond) // the offline queue is full: wait for the resume
			}
			if i%8 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	cuts := 0
	cutterDone := make(chan struct{})
	go func() {
		defer close(cutterDone)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(100+rand.IntN(200)) * time.Millisecond):
			}
			switch cuts % 3 {
			case 0:
				_ = sp.Close() // the server drops it
			case 1:
				proxy.Kill(false) // the network drops it
			case 2:
				proxy.Kill(true) // only the client notices
			}
			cuts++
		}
	}()

	gotAll := make(chan struct{})
	var got []int
	go func() {
		defer close(gotAll)
		for len(got) < total {
			select {
			case n := <-rs.received:
				got = append(got, n)
			case <-time.After(time.Minute):
				return
			}
		}
	}()
	select {
	case <-doneRecv:
	case <-time.After(2 * time.Minute):
		mu.Lock()
		t.Fatalf("the client received %v of %d per source", next, total)
	}
	<-gotAll
	close(stop)
	<-cutterDone
	wg.Wait()

	if v := badRecv.Load(); v != nil {
		t.Fatal(v)
	}
	if len(got) != total {
		t.Fatalf("the server received %d client messages, want %d", len(got), total)
	}
	for i, n := range got {
		if n != i+1 {
			t.Fatalf("client message %d arrived as number %d (exactly once, in order, broken): around it %v; it is at %d",
				i+1, n, got[max(i-3, 0):min(i+4, len(got))], slices.Index(got, i+1))
		}
	}
	if id := c.id(); id != firstID {
		t.Errorf("spark id %s after the cuts, want %s", id, firstID)
	}
	if got := rs.connections.Load(); got != 1 {
		t.Errorf("the server's connection handlers ran %d times, want 1", got)
	}
	if rooms := rs.rooms.RoomsOf(sp); len(rooms) != 1 || rooms[0] != "r" {
		t.Errorf("the spark is in rooms %v, want [r]", rooms)
	}
	close(resumed)
	n := 0
	for ev := range resumed {
		if !ev.Recovered {
			t.Errorf("a reconnection did not recover: %v", ev.Reason)
		}
		n++
	}
	t.Logf("%d cuts, %d resumes", cuts, n)
	if n == 0 || rs.resumes.Load() == 0 {
		t.Errorf("no resume happened (%d cuts)", cuts)
	}
}

// dial is harness.dial through a proxy when one is given.
func (rs *recoveryServer) dial(t *testing.T, query string, opts *primus.ClientOptions, proxy *tcpproxy.Proxy) *testClient {
	t.Helper()
	if proxy == nil {
		return rs.harness.dial(t, query, opts)
	}
	c := newTestClient(t)
	o := c.options(opts)
	o.Dialer, o.Parser = rs.fl.dialer, rs.fl.parser
	u := "http://" + proxy.Addr() + rs.srv.Pathname()
	if query != "" {
		u += "?" + query
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cl, err := primus.Dial(ctx, u, o)
	if err != nil {
		t.Fatalf("dial through the proxy: %v", err)
	}
	c.Client = cl
	t.Cleanup(func() { _ = cl.Close() })
	return c
}

// moveClient connects a client to first through a proxy, points the proxy
// at second and restarts first (ShutdownReconnect): the client reconnects
// to second, which does not know its spark. It returns the client's
// OnResume events.
func moveClient(t *testing.T, first, second *recoveryServer) <-chan primus.ResumeEvent {
	t.Helper()
	proxy := tcpproxy.New(t, first.ts.Listener.Addr().String())
	resumed := make(chan primus.ResumeEvent, 4)
	c := first.dial(t, "", &primus.ClientOptions{
		Reconnect: primus.Backoff{Min: 20 * time.Millisecond, Retries: 10},
		OnResume:  func(ev primus.ResumeEvent) { resumed <- ev },
	}, proxy)
	c.id()
	proxy.SetTarget(second.ts.Listener.Addr().String())
	if err := first.srv.ShutdownReconnect(context.Background()); err != nil {
		t.Fatal(err)
	}
	return resumed
}

// TestRecoveryFailures: the window passed, the buffer overflowed, the server
// restarted: the client gets a new spark and is told why, and the old spark
// ends with the reason.
func TestRecoveryFailures(t *testing.T) {
	t.Parallel()
	t.Run("window expired", func(t *testing.T) {
		t.Parallel()
		rs := startRecoveryServer(t, &primus.Recovery{Window: 200 * time.Millisecond}, nil)
		proxy := tcpproxy.New(t, rs.ts.Listener.Addr().String())
		resumed := make(chan primus.ResumeEvent, 4)
		c := rs.dial(t, "", &primus.ClientOptions{
			Reconnect: primus.Backoff{Min: time.Second, Retries: 10}, // back after the window
			OnResume:  func(ev primus.ResumeEvent) { resumed <- ev },
		}, proxy)
		old := waitFor(t, rs.sparks, "the spark")
		oldID := c.id()
		proxy.Kill(false)
		if r := waitFor(t, rs.ends, "the old spark's end"); !errors.Is(r, primus.ErrRecoveryExpired) {
			t.Errorf("old spark ended with %v, want ErrRecoveryExpired", r)
		}
		ev := waitFor(t, resumed, "OnResume")
		if ev.Recovered || !errors.Is(ev.Reason, primus.ErrRecoveryExpired) {
			t.Errorf("OnResume(%+v), want not recovered, ErrRecoveryExpired", ev)
		}
		if id := c.id(); id == oldID {
			t.Error("the client got its expired spark back")
		}
		<-old.Done()
	})
	t.Run("buffer overflow", func(t *testing.T) {
		t.Parallel()
		rs := startRecoveryServer(t, &primus.Recovery{Window: time.Minute, MaxMessages: 50}, nil)
		proxy := tcpproxy.New(t, rs.ts.Listener.Addr().String())
		resumed := make(chan primus.ResumeEvent, 4)
		c := rs.dial(t, "", &primus.ClientOptions{
			Reconnect: primus.Backoff{Min: 300 * time.Millisecond, Retries: 10},
			OnResume:  func(ev primus.ResumeEvent) { resumed <- ev },
		}, proxy)
		sp := waitFor(t, rs.sparks, "the spark")
		c.id()
		drops := make(chan error, 1)
		sp.OnDrop(func(r error) { drops <- r })
		proxy.Kill(false)
		waitFor(t, drops, "the drop")
		for i := range 60 {
			_ = sp.Write(i) // over MaxMessages while the client is away
		}
		if r := waitFor(t, rs.ends, "the spark's end"); !errors.Is(r, primus.ErrRecoveryOverflow) {
			t.Errorf("spark ended with %v, want ErrRecoveryOverflow", r)
		}
		ev := waitFor(t, resumed, "OnResume")
		if ev.Recovered || !errors.Is(ev.Reason, primus.ErrRecoveryOverflow) {
			t.Errorf("OnResume(%+v), want not recovered, ErrRecoveryOverflow", ev)
		}
	})
	t.Run("server restarted", func(t *testing.T) {
		t.Parallel()
		// Two servers behind one proxy address: the second stands for the
		// first after a restart (it knows nothing of the sessions).
		first := startRecoveryServer(t, &primus.Recovery{Window: time.Minute}, nil)
		second := startRecoveryServer(t, &primus.Recovery{Window: time.Minute}, nil)
		resumed := moveClient(t, first, second)
		if r := waitFor(t, first.ends, "the spark's end on the old server"); !errors.Is(r, primus.ErrServerClosed) {
			t.Errorf("spark ended with %v, want ErrServerClosed", r)
		}
		ev := waitFor(t, resumed, "OnResume")
		if ev.Recovered || !errors.Is(ev.Reason, primus.ErrRecoveryUnknown) {
			t.Errorf("OnResume(%+v), want not recovered, ErrRecoveryUnknown", ev)
		}
		waitFor(t, second.sparks, "a new spark on the restarted server")
	})
}

// dialGreeted opens a raw WebSocket (JSON) to the server with query and
// returns it with the greeting it first reads.
func (rs *recoveryServer) dialGreeted(t *testing.T, query string) (*ws.Conn, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, _, err := ws.Dial(ctx, "ws"+strings.TrimPrefix(rs.url, "http")+"?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	b, err := rawRead(c)
	if err != nil {
		t.Fatal(err)
	}
	var g string
	if err := wsJSON.parser.Decode(b, &g); err != nil {
		t.Fatalf("greeting %q: %v", b, err)
	}
	return c, g
}

// TestResumeCredential: a credential resumes once, for one client; a
// forged, replayed or concurrent one gets a new spark.
func TestResumeCredential(t *testing.T) {
	t.Parallel()
	rs := startRecoveryServer(t, &primus.Recovery{Window: time.Minute}, nil)
	dialRaw := func(query string) (*ws.Conn, string) { return rs.dialGreeted(t, query) }
	credOf := func(greeting string) string {
		rest, ok := strings.CutPrefix(greeting, "primus::session::")
		if !ok {
			rest, ok = strings.CutPrefix(greeting, "primus::resumed::")
			if !ok {
				t.Fatalf("greeting %q", greeting)
			}
			_, rest, _ = strings.Cut(rest, "::")
			return rest
		}
		cred, _, _ := strings.Cut(rest, "::")
		return cred
	}
	c1, g1 := dialRaw("_primus_recover=1")
	cred := credOf(g1)
	sp := waitFor(t, rs.sparks, "the spark")
	if strings.Contains(cred, sp.ID()) || cred == "" {
		t.Fatalf("credential %q is not an unguessable token of its own", cred)
	}
	_ = c1.CloseNow()
	eventually(t, "the spark dropped", func() bool { return rs.srv.Count() == 1 })

	resume := url.Values{"_primus_recover": {"1"}, "_primus_resume": {cred}, "_primus_received": {"0"}}.Encode()
	// Two clients with the same credential at once: one resumes.
	type result struct {
		c *ws.Conn
		g string
	}
	results := make(chan result, 2)
	for range 2 {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			c, _, err := ws.Dial(ctx, "ws"+strings.TrimPrefix(rs.url, "http")+"?"+resume, nil)
			if err != nil {
				results <- result{}
				return
			}
			b, _ := rawRead(c)
			var s string
			_ = wsJSON.parser.Decode(b, &s)
			if strings.HasPrefix(s, "primus::resumed::") {
				// As a client does: it speaks at once, which shows the
				// server it has the next credential.
				_ = c.Write(ctx, ws.MessageText, []byte(`"primus::ack::0"`))
			}
			results <- result{c, s}
		}()
	}
	resumedN, fresh := 0, 0
	for range 2 {
		r := <-results
		if r.c == nil {
			t.Fatal("a dial failed")
		}
		t.Cleanup(func() { _ = r.c.CloseNow() })
		switch {
		case strings.HasPrefix(r.g, "primus::resumed::"):
			resumedN++
		case strings.HasPrefix(r.g, "primus::session::") && strings.HasSuffix(r.g, "::unknown"):
			fresh++
		default:
			t.Errorf("greeting %q", r.g)
		}
	}
	if resumedN != 1 || fresh != 1 {
		t.Errorf("same credential twice at once: %d resumed, %d refused; want 1 and 1", resumedN, fresh)
	}
	// Replayed, and forged: refused.
	for _, bad := range []string{cred, sp.ID(), "AAAAAAAAAAAAAAAAAAAAAAAAAA"} {
		q := url.Values{"_primus_recover": {"1"}, "_primus_resume": {bad}, "_primus_received": {"0"}}.Encode()
		_, g := dialRaw(q)
		if !strings.HasPrefix(g, "primus::session::") || !strings.HasSuffix(g, "::unknown") {
			t.Errorf("resume with %q: greeting %q, want a new session (unknown)", bad, g)
		}
	}
	if n := rs.connections.Load(); n != 5 {
		t.Errorf("%d sparks made, want 5 (the first, the refused twin, three refused)", n)
	}
}

// TestResumeGreetingLost: a resume whose connection dies before its client
// says anything (the greeting with the next credential may be lost with
// it) leaves the credential the client used good: it resumes again. Once
// the client has spoken on a resumed connection, that credential is gone.
func TestResumeGreetingLost(t *testing.T) {
	t.Parallel()
	rs := startRecoveryServer(t, &primus.Recovery{Window: time.Minute}, nil)
	dial := func(query string) (*ws.Conn, string) { return rs.dialGreeted(t, query) }
	resume := func(cred string) string {
		return url.Values{"_primus_recover": {"1"}, "_primus_resume": {cred}, "_primus_received": {"0"}}.Encode()
	}
	c, g := dial("_primus_recover=1")
	first, _, _ := strings.Cut(strings.TrimPrefix(g, "primus::session::"), "::")
	waitFor(t, rs.sparks, "the spark")
	_ = c.CloseNow() // dropped, or taken over by the resume below

	// Resumed, but the connection dies before the client says anything.
	c, g = dial(resume(first))
	if !strings.HasPrefix(g, "primus::resumed::") {
		t.Fatalf("greeting %q, want resumed", g)
	}
	_ = c.CloseNow()
	// The client comes back with the same credential: still good.
	var again string
	eventually(t, "a resume with the credential used before", func() bool {
		c, again = dial(resume(first))
		if !strings.HasPrefix(again, "primus::resumed::") {
			_ = c.CloseNow()
			return false
		}
		return true
	})
	// This time it speaks: the old credential is forgotten, the new one
	// resumes.
	rs.rawWrite(t, c, "primus::ack::0")
	rs.rawWrite(t, c, map[string]int{"n": 1})
	if got := waitFor(t, rs.received, "the message"); got != 1 {
		t.Fatalf("server got %d", got)
	}
	next := strings.SplitN(strings.TrimPrefix(again, "primus::resumed::"), "::", 2)[1]
	_ = c.CloseNow()
	if _, g := dial(resume(first)); !strings.HasSuffix(g, "::unknown") {
		t.Errorf("the credential used before the client spoke still resumes: %q", g)
	}
	if _, g := dial(resume(next)); !strings.HasPrefix(g, "primus::resumed::") {
		t.Errorf("the new credential does not resume: %q", g)
	}
	// The refused replay's spark is greeted before its connection
	// handlers run.
	eventually(t, "2 sparks made (the first, and the refused replay's)", func() bool { return rs.connections.Load() == 2 })
}

// TestRecoveryAuthorize: a resuming request goes through middleware and
// authorization like any other; refused, it resumes nothing.
func TestRecoveryAuthorize(t *testing.T) {
	t.Parallel()
	rs := startRecoveryServer(t, &primus.Recovery{Window: time.Minute}, nil)
	var refuse atomic.Bool
	rs.srv.Authorize(func(r *http.Request) error {
		if refuse.Load() {
			return &primus.HTTPError{Status: http.StatusForbidden, Message: "no"}
		}
		return nil
	})
	proxy := tcpproxy.New(t, rs.ts.Listener.Addr().String())
	c := rs.dial(t, "", &primus.ClientOptions{Reconnect: primus.Backoff{Min: 10 * time.Millisecond, Retries: 5}}, proxy)
	waitFor(t, rs.sparks, "the spark")
	c.id()
	refuse.Store(true)
	proxy.Kill(false)
	err := c.waitEnd()
	var he *transport.HandshakeError
	if !errors.As(err, &he) || he.StatusCode != http.StatusForbidden {
		t.Fatalf("client ended with %v, want the 403 refusal", err)
	}
	if n := rs.resumes.Load(); n != 0 {
		t.Errorf("%d resumes after a refused request", n)
	}
}

// TestStockClientSeesNoRecovery: a client that does not ask for recovery
// (the stock Primus client) gets no greeting, and a lost connection ends its
// spark as without recovery.
func TestStockClientSeesNoRecovery(t *testing.T) {
	t.Parallel()
	rs := startRecoveryServer(t, &primus.Recovery{Window: time.Minute}, nil)
	raw := rs.rawDial(t, nil)
	waitFor(t, rs.sparks, "the spark")
	rs.rawWrite(t, raw, "primus::id::")
	b, err := rawRead(raw)
	if err != nil || !strings.HasPrefix(string(b), `"primus::id::`) {
		t.Fatalf("first frame %q, %v: want the id reply, no greeting", b, err)
	}
	_ = raw.CloseNow()
	if r := waitFor(t, rs.ends, "the spark's end"); r != nil {
		t.Errorf("OnEnd(%v), want nil", r)
	}
}
