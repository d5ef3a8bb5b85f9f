package primus_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/plugin"
	"github.com/go-primus/primus/transport"
)

// A server that never pings: the client's own ping timeout must notice and
// reconnect.
func TestClientPingTimeout(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		h := startContractServer(t, fl, &primus.Options{PingInterval: -1})
		se := watchSparks(h.srv)
		c := h.dial(t, "", &primus.ClientOptions{PingTimeout: 300 * time.Millisecond})
		first := se.conns.next(t, "the first spark")
		if err := c.errs.next(t, "OnError"); !errors.Is(err, primus.ErrHeartbeatTimeout) {
			t.Fatalf("first OnError(%v), want ErrHeartbeatTimeout", err)
		}
		if ev := c.reconnects.next(t, "OnReconnect"); ev.Attempt != 1 {
			t.Errorf("reconnect event %+v, want attempt 1", ev)
		}
		c.opens.next(t, "OnOpen after reconnecting")
		end := se.ends.next(t, "the first spark's end")
		if end.sp != first || end.reason != nil {
			t.Errorf("spark %s ended with %v; want the first spark, reason nil (the client went away)", end.sp.ID(), end.reason)
		}
		se.conns.next(t, "the second spark")
	})
}

// With no PingTimeout, the client takes 1.5 × the pingInterval of the
// server's spec. The spec here announces 200 ms, but the server never pings.
func TestClientPingTimeoutFromSpec(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		spec := fmt.Sprintf(`{"pingInterval":200,"pathname":"/primus","version":%q,"parser":%q,"transformer":%q}`,
			primus.Version, fl.parser.Name(), fl.transformer.Name())
		fakeSpec := func(ts *httptest.Server) {
			srv := ts.Config.Handler
			ts.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/primus/spec" {
					w.Header().Set("Content-Type", "application/json")
					_, _ = w.Write([]byte(spec))
					return
				}
				srv.ServeHTTP(w, r)
			})
		}
		h := startServer(t, fl, &primus.Options{PingInterval: -1}, fakeSpec)
		opened := make(chan time.Time, 1)
		// The client's ping timer starts when its connection opens, which is
		// after this point: measuring from here cannot make it look early.
		start := time.Now()
		c := h.dial(t, "", &primus.ClientOptions{OnOpen: func() {
			select {
			case opened <- time.Now():
			default:
			}
		}})
		waitFor(t, opened, "OnOpen")
		if err := c.errs.next(t, "OnError"); !errors.Is(err, primus.ErrHeartbeatTimeout) {
			t.Fatalf("first OnError(%v), want ErrHeartbeatTimeout", err)
		}
		// Timers never fire early: a derived timeout of 300 ms cannot end
		// the connection sooner.
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Errorf("timed out after %v, want at least 300ms (1.5 × 200ms)", d)
		}
		c.reconnects.next(t, "OnReconnect")
	})
}

// The client writes 1000 numbered messages while its connection is down;
// after it reconnects the server receives each exactly once, in order.
func TestClientOrderAcrossReconnect(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		h := startContractServer(t, fl, nil)
		received := newEvents[*primus.Message]()
		se := watchSparks(h.srv)
		h.srv.OnConnection(func(sp *primus.Spark) { sp.OnData(received.push) })

		c, g := offlineClient(t, h, nil)
		sp := se.conns.next(t, "spark")
		if err := sp.Close(); err != nil {
			t.Fatal(err)
		}
		c.reconnects.next(t, "OnReconnect: the client is offline")
		const n = 1000
		for i := range n {
			if err := c.Write(i); err != nil {
				t.Fatalf("Write %d while offline: %v", i, err)
			}
		}
		if got := received.total(); got != 0 {
			t.Fatalf("the server received %d messages while the client was offline", got)
		}
		g.open()
		c.opens.next(t, "OnOpen after reconnecting")
		c.write("done")
		for i := range n {
			if got := decodeAs[int](t, received.next(t, fmt.Sprintf("message %d at the server", i))); got != i {
				t.Fatalf("server got message %d at position %d", got, i)
			}
		}
		if got := decodeAs[string](t, received.next(t, "the last message")); got != "done" {
			t.Fatalf("after the 1000 messages the server got %q, want done (no duplicates)", got)
		}
		for i := range n {
			if got := decodeAs[int](t, c.data.next(t, fmt.Sprintf("echo %d", i))); got != i {
				t.Fatalf("echo %d: got %d", i, got)
			}
		}
		c.expect("done")
	})
}

func TestClientClose(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		h := startContractServer(t, fl, nil)
		se := watchSparks(h.srv)
		c := h.dial(t, "", nil)
		c.write("hi")
		c.expect("hi")
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		select {
		case <-c.Done():
		default:
			t.Fatal("Done not closed when Close returned")
		}
		if err := waitFor(t, c.ended, "OnEnd"); err != nil {
			t.Errorf("OnEnd(%v), want nil", err)
		}
		if err := c.Err(); err != nil {
			t.Errorf("Err() = %v, want nil", err)
		}
		if err := c.Write("late"); !errors.Is(err, primus.ErrClosed) {
			t.Errorf("Write after Close = %v, want ErrClosed", err)
		}
		if _, err := c.ID(context.Background()); !errors.Is(err, primus.ErrClosed) {
			t.Errorf("ID after Close = %v, want ErrClosed", err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if n := c.reconnects.total(); n != 0 {
			t.Errorf("OnReconnect called %d times after Close", n)
		}
		if end := se.ends.next(t, "spark OnEnd"); end.reason != nil {
			t.Errorf("spark OnEnd(%v), want nil", end.reason)
		}
	})
}

func TestClientQueueFull(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		h := startContractServer(t, fl, nil)
		c, g := offlineClient(t, h, &primus.ClientOptions{QueueSize: 2})
		goOffline(t, c)
		c.write("one")
		c.write("two")
		if err := c.Write("three"); !errors.Is(err, primus.ErrQueueFull) {
			t.Fatalf("third Write while offline = %v, want ErrQueueFull", err)
		}
		g.open()
		c.opens.next(t, "OnOpen after reconnecting")
		c.expect("one")
		c.expect("two")
		c.write("four")
		c.expect("four") // "three" was refused, not sent
	})
}

func TestClientReconnectExhausted(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		h := startContractServer(t, fl, nil)
		minWait := 10 * time.Millisecond
		c := h.dial(t, "", &primus.ClientOptions{Reconnect: primus.Backoff{Min: minWait, Retries: 3}})
		c.id()
		// Close the server: stop listening, then drop the connection.
		h.ts.Close()
		h.srv.ForEach(func(sp *primus.Spark) bool { _ = sp.Close(); return true })

		for attempt := 1; attempt <= 3; attempt++ {
			ev := c.reconnects.next(t, fmt.Sprintf("reconnect attempt %d", attempt))
			if ev.Attempt != attempt || ev.Retries != 3 || ev.Cause == nil {
				t.Errorf("reconnect event %+v, want attempt %d of 3 with a cause", ev, attempt)
			}
			// Attempt 1 waits Min; attempt n waits [Min·2^(n-1), 2·Min·2^(n-1)).
			lo := minWait << (attempt - 1)
			hi := 2 * lo
			if attempt == 1 {
				hi = lo
			}
			if ev.Wait < lo || ev.Wait > hi {
				t.Errorf("attempt %d waits %v, want %v..%v", attempt, ev.Wait, lo, hi)
			}
		}
		err := c.waitEnd()
		if !errors.Is(err, primus.ErrReconnectFailed) {
			t.Fatalf("OnEnd(%v), want ErrReconnectFailed", err)
		}
		if !errors.Is(c.Err(), primus.ErrReconnectFailed) {
			t.Errorf("Err() = %v, want ErrReconnectFailed", c.Err())
		}
		if n := c.reconnects.total(); n != 3 {
			t.Errorf("%d reconnect attempts, want 3", n)
		}
		if n := c.opens.total(); n != 1 {
			t.Errorf("OnOpen called %d times, want 1", n)
		}
	})
}

func TestClientNoReconnect(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		h := startContractServer(t, fl, nil)
		c := h.dial(t, "", &primus.ClientOptions{Reconnect: primus.Backoff{Retries: -1}})
		c.write(map[string]any{"cmd": "drop"})
		if err := c.waitEnd(); err == nil {
			t.Error("OnEnd(nil) after a lost connection with reconnection off; want the cause")
		}
		if n := c.reconnects.total(); n != 0 {
			t.Errorf("OnReconnect called %d times with Retries -1", n)
		}
	})
}

func TestClientRefusedDuringReconnect(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		h := startContractServer(t, fl, nil)
		c := h.dial(t, "", nil)
		c.id()
		h.srv.Authorize(func(*http.Request) error {
			return &primus.HTTPError{Status: http.StatusUnauthorized, Message: "go away"}
		})
		c.write(map[string]any{"cmd": "drop"})
		c.reconnects.next(t, "OnReconnect")
		err := c.waitEnd()
		he := handshakeError(t, err)
		if he.StatusCode != http.StatusUnauthorized || string(he.Body) != `{"error":"go away"}` {
			t.Errorf("refusal %d %s, want 401 {\"error\":\"go away\"}", he.StatusCode, he.Body)
		}
		if n := c.reconnects.total(); n != 1 {
			t.Errorf("%d reconnect attempts, want 1: a refusal is final", n)
		}
		if n := c.opens.total(); n != 1 {
			t.Errorf("OnOpen called %d times, want 1", n)
		}
	})
}

// TestClientRetriesWhenRefusedForNow: a reconnect refused with 503 (a full
// or restarting server) is tried again, no sooner than its Retry-After,
// and the client comes back; only other refusals are final.
func TestClientRetriesWhenRefusedForNow(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		if !fl.statusRefusals {
			t.Skip("SockJS refuses once open: a lost connection, retried as any other")
		}
		h := startContractServer(t, fl, nil)
		c := h.dial(t, "", &primus.ClientOptions{
			Reconnect: primus.Backoff{Min: 10 * time.Millisecond, Max: 20 * time.Millisecond, Retries: 5},
		})
		c.id()
		var full atomic.Bool
		full.Store(true)
		if err := h.srv.Use("retry-after", func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "1")
				next.ServeHTTP(w, r)
			})
		}); err != nil {
			t.Fatal(err)
		}
		h.srv.Authorize(func(*http.Request) error {
			if full.Load() {
				return &primus.HTTPError{Status: http.StatusServiceUnavailable, Message: "full"}
			}
			return nil
		})
		c.write(map[string]any{"cmd": "drop"})
		if ev := c.reconnects.next(t, "the first attempt"); ev.Wait >= time.Second {
			t.Errorf("first attempt after %v, want the backoff's", ev.Wait)
		}
		ev := c.reconnects.next(t, "the attempt after the refusal")
		if ev.Wait < time.Second {
			t.Errorf("the attempt after a refusal with Retry-After: 1 waits %v", ev.Wait)
		}
		if he := handshakeError(t, ev.Cause); he.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("cause %v, want the 503", ev.Cause)
		}
		full.Store(false)
		c.opens.next(t, "the reconnection")
		c.id()
	})
}

func TestClientIDConcurrent(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		h := startContractServer(t, fl, nil)
		c := h.dial(t, "", nil)
		ids := make(chan string, 10)
		errs := make(chan error, 10)
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
				defer cancel()
				id, err := c.ID(ctx)
				ids <- id
				errs <- err
			})
		}
		wg.Wait()
		close(ids)
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("ID: %v", err)
			}
		}
		want := c.id()
		for id := range ids {
			if id != want {
				t.Errorf("ID() = %q, want %q", id, want)
			}
		}
	})
}

func TestDialURLs(t *testing.T) {
	t.Parallel()
	fl := flavours()[0]
	h := startContractServer(t, fl, nil)
	host := strings.TrimPrefix(h.ts.URL, "http://")
	for _, u := range []string{
		"http://" + host,           // an empty path means /primus
		"http://" + host + "/",     // so does "/"
		"ws://" + host + "/primus", // ws:// works too
	} {
		t.Run(u, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			got := make(chan *primus.Message, 1)
			c, err := primus.Dial(ctx, u, &primus.ClientOptions{OnData: func(m *primus.Message) { got <- m }})
			if err != nil {
				t.Fatalf("Dial(%s): %v", u, err)
			}
			defer c.Close()
			if err := c.Write("via " + u); err != nil {
				t.Fatal(err)
			}
			checkDecoded(t, waitFor(t, got, "echo"), "via "+u)
		})
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := primus.Dial(ctx, "ftp://"+host+"/primus", nil); err == nil {
		t.Error("Dial accepted an ftp:// url")
	}
	if _, err := primus.Dial(ctx, "http://[::1", nil); err == nil {
		t.Error("Dial accepted a malformed url")
	}
	// Nothing listens: a network error, not a refusal.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = primus.Dial(ctx, "http://"+addr+"/primus", &primus.ClientOptions{PingTimeout: time.Second})
	if err == nil {
		t.Fatal("Dial to a closed port succeeded")
	}
	var he *transport.HandshakeError
	if errors.As(err, &he) {
		t.Errorf("Dial to a closed port: %v, want a network error", err)
	}
	// Two client plugins with one name are refused.
	_, err = primus.Dial(ctx, h.url, &primus.ClientOptions{Plugins: []plugin.Plugin{namedPlugin("p"), namedPlugin("p")}})
	if err == nil || !strings.Contains(err.Error(), `"p"`) {
		t.Errorf("two client plugins named p: err = %v", err)
	}
}

// An undecodable message from the server reaches OnError and is dropped;
// unknown "primus::server::" messages are swallowed, as the stock client
// does; the connection lives on.
func TestClientDecodeErrorAndServerMessages(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		h := startServer(t, fl, nil)
		se := watchSparks(h.srv)
		c := h.dial(t, "", nil)
		sp := se.conns.next(t, "spark")
		bad := primus.Raw("{bad")
		if fl.parser.Binary() {
			bad = primus.Raw{0x9f, 0x01}
		}
		for _, v := range []any{bad, "primus::server::other", "ok"} {
			if err := sp.Write(v); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.errs.next(t, "OnError"); !errors.Is(err, parser.ErrDecode) {
			t.Errorf("OnError(%v), want an error wrapping parser.ErrDecode", err)
		}
		c.expect("ok")
		if n := c.reconnects.total(); n != 0 {
			t.Errorf("the client reconnected %d times", n)
		}
	})
}

func TestEncodeErrors(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		h := startServer(t, fl, nil)
		se := watchSparks(h.srv)
		c := h.dial(t, "", nil)
		sp := se.conns.next(t, "spark")
		unencodable := func() {}
		if err := c.Write(unencodable); !errors.Is(err, parser.ErrEncode) {
			t.Errorf("client Write(func) = %v, want ErrEncode", err)
		}
		if err := sp.Write(unencodable); !errors.Is(err, parser.ErrEncode) {
			t.Errorf("spark Write(func) = %v, want ErrEncode", err)
		}
		if err := h.srv.Write(unencodable); !errors.Is(err, parser.ErrEncode) {
			t.Errorf("broadcast Write(func) = %v, want ErrEncode", err)
		}
		// Nothing was sent and both ends are fine.
		if err := sp.Write("fine"); err != nil {
			t.Fatal(err)
		}
		c.expect("fine")
	})
}

// TestClientCloseFromHandler: Close called from the client's own data
// handler ends the client instead of waiting forever for itself.
func TestClientCloseFromHandler(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		h := startContractServer(t, fl, nil)
		var c *primus.Client
		returned := make(chan struct{})
		ready := make(chan struct{})
		c, err := primus.Dial(t.Context(), h.url, &primus.ClientOptions{
			Dialer: fl.dialer,
			Parser: fl.parser,
			OnData: func(*primus.Message) {
				<-ready
				_ = c.Close()
				close(returned)
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		close(ready)
		if err := c.Write("close me"); err != nil {
			t.Fatal(err)
		}
		select {
		case <-returned:
		case <-time.After(10 * time.Second):
			t.Fatal("Close called from OnData did not return")
		}
		select {
		case <-c.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("client goroutines did not exit after Close from OnData")
		}
	})
}

// TestClientFlushFailureKeepsOrder: when a write of the offline queue fails
// on a new connection, writes made before the client notices stay behind
// the ones put back (they once went to the dead connection, and came back
// ahead of the queue).
func TestClientFlushFailureKeepsOrder(t *testing.T) {
	t.Parallel()
	got := make(chan string, 100)
	h := startServer(t, wsJSON, nil)
	h.srv.OnConnection(func(sp *primus.Spark) {
		sp.OnData(func(m *primus.Message) {
			var s string
			if m.Decode(&s) == nil && strings.HasPrefix(s, "m") {
				got <- s
			}
		})
	})
	d := &flakyDialer{Dialer: wsJSON.dialer, gate: make(chan struct{})}
	opens := make(chan struct{}, 10)
	reconnecting := make(chan struct{}, 10)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := primus.Dial(ctx, h.url, &primus.ClientOptions{
		Dialer:      d,
		Reconnect:   primus.Backoff{Min: time.Millisecond, Max: time.Millisecond, Retries: 10},
		OnOpen:      func() { opens <- struct{}{} },
		OnReconnect: func(primus.ReconnectEvent) { reconnecting <- struct{}{} },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	waitFor(t, opens, "the first open")
	// The connection is lost; while the client is offline, three writes
	// wait in its queue.
	d.failNext.Store(true) // the next connection fails its first write
	_ = d.conn.Load().CloseNow()
	waitFor(t, reconnecting, "the reconnect")
	for _, s := range []string{"m1", "m2", "m3"} {
		if err := c.Write(s); err != nil {
			t.Fatal(err)
		}
	}
	close(d.gate) // the dial goes on: the flush of m1 fails
	waitFor(t, opens, "the open whose flush failed")
	// Before the client has noticed (its read is held), one more write.
	if err := c.Write("m4"); err != nil {
		t.Fatal(err)
	}
	d.held.Load().release()
	for _, want := range []string{"m1", "m2", "m3", "m4"} {
		if s := waitFor(t, got, want); s != want {
			t.Fatalf("got %s, want %s", s, want)
		}
	}
}

// flakyDialer dials through Dialer; after the first connection, a dial
// waits for gate; when failNext is set, the next connection's first write
// fails and its Read returns only once released.
type flakyDialer struct {
	transport.Dialer
	gate     chan struct{}
	dials    atomic.Int32
	failNext atomic.Bool
	conn     atomic.Pointer[flakyConn]
	held     atomic.Pointer[flakyConn]
}

func (d *flakyDialer) Dial(ctx context.Context, url string, opts transport.DialOptions) (transport.Conn, error) {
	if d.dials.Add(1) > 1 {
		select {
		case <-d.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	c, err := d.Dialer.Dial(ctx, url, opts)
	if err != nil {
		return nil, err
	}
	fc := &flakyConn{Conn: c, released: make(chan struct{})}
	if d.failNext.CompareAndSwap(true, false) {
		fc.fail.Store(true)
		d.held.Store(fc)
	}
	d.conn.Store(fc)
	return fc, nil
}

type flakyConn struct {
	transport.Conn
	fail      atomic.Bool
	swallow   atomic.Bool // writes are dropped, as by a dying network
	swallowed atomic.Int32
	released  chan struct{}
	once      sync.Once
}

func (c *flakyConn) release() { c.once.Do(func() { close(c.released) }) }

func (c *flakyConn) Write(ctx context.Context, typ transport.MessageType, b []byte) error {
	if c.fail.Load() {
		return errors.New("flaky: write failed")
	}
	if c.swallow.Load() {
		c.swallowed.Add(1)
		return nil
	}
	return c.Conn.Write(ctx, typ, b)
}

func (c *flakyConn) Read(ctx context.Context) (transport.MessageType, []byte, error) {
	typ, b, err := c.Conn.Read(ctx)
	if err != nil && c.fail.Load() {
		<-c.released // the client notices the loss only now
	}
	return typ, b, err
}

// TestClientIDAcrossReconnect: an ID asked on a connection that is lost
// before the answer is asked again on the next one.
func TestClientIDAcrossReconnect(t *testing.T) {
	t.Parallel()
	h := startServer(t, wsJSON, nil)
	d := &flakyDialer{Dialer: wsJSON.dialer, gate: make(chan struct{})}
	close(d.gate)
	opens := make(chan struct{}, 10)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := primus.Dial(ctx, h.url, &primus.ClientOptions{
		Dialer:    d,
		Reconnect: primus.Backoff{Min: time.Millisecond, Max: time.Millisecond, Retries: 10},
		OnOpen:    func() { opens <- struct{}{} },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	waitFor(t, opens, "the first open")
	first := d.conn.Load()
	first.swallow.Store(true) // the request is lost with the connection
	ids := make(chan string, 1)
	go func() {
		id, err := c.ID(ctx)
		if err != nil {
			t.Errorf("ID: %v", err)
		}
		ids <- id
	}()
	eventually(t, "the ID request written", func() bool { return first.swallowed.Load() > 0 })
	_ = first.CloseNow()
	waitFor(t, opens, "the reconnection")
	if id := waitFor(t, ids, "the spark id"); id == "" {
		t.Error("empty spark id")
	}
}
