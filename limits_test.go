package primus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	ws "github.com/coder/websocket"

	"github.com/go-primus/primus"
)

// Each client of these tests connects from an address of its own on the
// loopback network (127.0.0.2, 127.0.0.3…: Linux routes all of 127/8 to
// lo), so that the per-address limits tell them apart as they would real
// clients.

// fromAddr returns an HTTP client whose connections come from ip.
func fromAddr(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: waitTimeout}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

// echoServer starts a server for the flavour whose sparks echo every
// message, with the limits.
func echoServer(t *testing.T, fl flavour, limits *primus.Limits, opts *primus.Options) (*harness, *sparkEvents) {
	t.Helper()
	var o primus.Options
	if opts != nil {
		o = *opts
	}
	o.Limits = limits
	h := startServer(t, fl, &o)
	se := watchSparks(h.srv)
	h.srv.OnConnection(func(sp *primus.Spark) {
		sp.OnData(func(m *primus.Message) { _ = sp.Write(m.Raw()) })
	})
	return h, se
}

// dialFrom dials the harness from ip with the Go client.
func (h *harness) dialFrom(t *testing.T, ip string) (*testClient, error) {
	t.Helper()
	return h.dialErr(t, "", &primus.ClientOptions{HTTPClient: fromAddr(ip)})
}

// connectFrom dials from ip and waits until the server has the spark: a
// client sees its connection open as soon as the transport's handshake is
// done, a moment before the server counts the spark, so a next connection
// made at once may pass the check before the handshake and be closed after
// it (the limit holds either way; the tests check the refusal before it).
func (h *harness) connectFrom(t *testing.T, se *sparkEvents, ip string) *testClient {
	t.Helper()
	c, err := h.dialFrom(t, ip)
	if err != nil {
		t.Fatalf("a connection within the limits: %v", err)
	}
	se.conns.next(t, "the spark from "+ip)
	return c
}

// rawDialFrom opens a plain WebSocket from ip to path (relative to the
// server's root); the response is returned on a refused handshake.
func (h *harness) rawDialFrom(t *testing.T, ip, path string) (*ws.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, resp, err := ws.Dial(ctx, "ws"+strings.TrimPrefix(h.ts.URL, "http")+path, &ws.DialOptions{HTTPClient: fromAddr(ip)})
	if err == nil {
		t.Cleanup(func() { _ = c.CloseNow() })
	}
	return c, resp, err
}

// refusedOrClosed checks how a connection over a connection limit from ip
// is refused: before the upgrade with status and Retry-After for
// transformers that tell (WebSocket, Engine.IO), or closed with code once
// open (SockJS, on its raw WebSocket endpoint).
func refusedOrClosed(t *testing.T, h *harness, ip string, status int, code ws.StatusCode, text string) {
	t.Helper()
	if h.fl.statusRefusals {
		_, err := h.dialFrom(t, ip)
		if err == nil {
			t.Fatal("a connection over the limit was accepted")
		}
		he := handshakeError(t, err)
		if he.StatusCode != status {
			t.Errorf("refused with %d, want %d", he.StatusCode, status)
		}
		if ra, err := strconv.Atoi(he.Header.Get("Retry-After")); err != nil || ra < 1 {
			t.Errorf("Retry-After %q, want a number of seconds", he.Header.Get("Retry-After"))
		}
		var body struct{ Error string }
		if err := json.Unmarshal(he.Body, &body); err != nil || !strings.Contains(body.Error, text) {
			t.Errorf("body %q, want {\"error\": \"…%s\"}", he.Body, text)
		}
		return
	}
	c, resp, err := h.rawDialFrom(t, ip, h.srv.Pathname()+"/websocket")
	if err != nil {
		t.Fatalf("dial of the raw endpoint: %v (%v)", err, resp)
	}
	err = readUntilClosed(t, c, func([]byte) { t.Error("a connection over the limit received a message") })
	if got := ws.CloseStatus(err); got != code {
		t.Errorf("closed with %v (%v), want %v", got, err, code)
	}
	var ce ws.CloseError
	if errors.As(err, &ce) && ce.Reason != text {
		t.Errorf("close reason %q, want %q", ce.Reason, text)
	}
}

// echoes checks that c's messages come back, and returns the mean round
// trip.
func echoes(t *testing.T, c *testClient, n int) time.Duration {
	t.Helper()
	start := time.Now()
	for i := range n {
		c.write(fmt.Sprintf("ping %d", i))
		c.expect(fmt.Sprintf("ping %d", i))
	}
	return time.Since(start) / time.Duration(n)
}

func TestLimitConnectionsPerAddress(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		h, se := echoServer(t, fl, &primus.Limits{MaxConnectionsPerAddress: 2}, nil)
		good := h.connectFrom(t, se, "127.0.0.2")
		idle := echoes(t, good, 20)
		var abusive []*testClient
		for range 2 {
			abusive = append(abusive, h.connectFrom(t, se, "127.0.0.3"))
		}
		refusedOrClosed(t, h, "127.0.0.3", http.StatusTooManyRequests, ws.StatusPolicyViolation, "too many connections")
		busy := echoes(t, good, 20)
		t.Logf("echo round trip of the well-behaved client: %v idle, %v next to the refused one", idle, busy)

		// A place freed is a place taken again.
		_ = abusive[0].Close()
		for {
			if e := se.ends.next(t, "the closed client's spark's end"); e.reason == nil {
				break
			}
		}
		if _, err := h.dialFrom(t, "127.0.0.3"); err != nil {
			t.Fatalf("a connection after one closed: %v", err)
		}
	})
}

func TestLimitMaxConnections(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		h, se := echoServer(t, fl, &primus.Limits{MaxConnections: 2}, nil)
		good := h.connectFrom(t, se, "127.0.0.2")
		h.connectFrom(t, se, "127.0.0.3")
		refusedOrClosed(t, h, "127.0.0.4", http.StatusServiceUnavailable, ws.StatusTryAgainLater, "server full")
		echoes(t, good, 5)
		if n := h.srv.Count(); n != 2 {
			t.Errorf("%d sparks, want 2", n)
		}
	})
}

func TestLimitNewConnectionsPerSecond(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		// Two at once, then one every 100 s: the test never sees a refill.
		h, se := echoServer(t, fl, &primus.Limits{NewConnectionsPerSecond: 0.01, NewConnectionsBurst: 2}, nil)
		good := h.connectFrom(t, se, "127.0.0.2")
		for range 2 {
			_ = h.connectFrom(t, se, "127.0.0.3").Close()
		}
		refusedOrClosed(t, h, "127.0.0.3", http.StatusTooManyRequests, ws.StatusPolicyViolation, "too many new connections")
		echoes(t, good, 5)
		if fl.rawWebSocket {
			// A refusal for the rate says when the next token comes.
			_, resp, err := h.rawDialFrom(t, "127.0.0.3", h.srv.Pathname())
			if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("another attempt: %v, %v", err, resp)
			}
			if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); ra < 90 || ra > 100 {
				t.Errorf("Retry-After %q, want about 100 s", resp.Header.Get("Retry-After"))
			}
		}
	})
}

// flood writes messages of size bytes to c as fast as it can, until a
// write fails or count were written, and returns the error that ended the
// connection.
func flood(t *testing.T, h *harness, c *ws.Conn, size, count int) error {
	t.Helper()
	msg := strings.Repeat("x", size)
	b, err := h.fl.parser.Encode(msg)
	if err != nil {
		t.Fatal(err)
	}
	typ := ws.MessageText
	if h.fl.parser.Binary() {
		typ = ws.MessageBinary
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range count {
			if c.Write(ctx, typ, b) != nil {
				return
			}
		}
	}()
	err = readUntilClosed(t, c, func([]byte) {})
	wg.Wait()
	return err
}

func TestLimitMessageRate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		limits primus.Limits
		size   int
		limit  primus.Limit
	}{
		{"messages", primus.Limits{MessagesPerSecond: 200, MessagesBurst: 100}, 8, primus.LimitMessageRate},
		{"bytes", primus.Limits{BytesPerSecond: 16 << 10, BytesBurst: 64 << 10}, 4 << 10, primus.LimitByteRate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			forEachFlavour(t, func(t *testing.T, fl flavour) {
				if !fl.rawWebSocket {
					t.Skip("the flood needs a raw WebSocket peer")
				}
				hits := &limitCounter{}
				h, se := echoServer(t, fl, &tc.limits, &primus.Options{Observer: hits})
				good, err := h.dialFrom(t, "127.0.0.2")
				if err != nil {
					t.Fatal(err)
				}
				goodSpark := se.conns.next(t, "the well-behaved spark")
				idle := echoes(t, good, 10)

				c, _, err := h.rawDialFrom(t, "127.0.0.3", h.srv.Pathname())
				if err != nil {
					t.Fatal(err)
				}
				abuser := se.conns.next(t, "the abusive spark")
				var received int
				var mu sync.Mutex
				abuser.OnData(func(*primus.Message) { mu.Lock(); received++; mu.Unlock() })

				done := make(chan error, 1)
				go func() { done <- flood(t, h, c, tc.size, 10_000) }()
				busy := echoes(t, good, 10)
				err = waitFor(t, done, "the abusive connection's end")
				t.Logf("echo round trip of the well-behaved client: %v idle, %v during the flood", idle, busy)

				if got := ws.CloseStatus(err); got != ws.StatusPolicyViolation {
					t.Errorf("the abuser was closed with %v (%v), want 1008", got, err)
				}
				var ce ws.CloseError
				if errors.As(err, &ce) && ce.Reason != "rate limited" {
					t.Errorf("close reason %q, want \"rate limited\"", ce.Reason)
				}
				for {
					e := se.ends.next(t, "the abusive spark's end")
					if e.sp == abuser {
						if !errors.Is(e.reason, primus.ErrRateLimited) {
							t.Errorf("the abusive spark ended with %v, want ErrRateLimited", e.reason)
						}
						break
					}
				}
				mu.Lock()
				if received == 0 || received > 1000 {
					t.Errorf("the abusive spark's handler saw %d messages: want a burst's worth", received)
				}
				mu.Unlock()
				if n := hits.get(tc.limit); n != 1 {
					t.Errorf("%d hits of %v, want 1", n, tc.limit)
				}
				echoes(t, good, 5)
				select {
				case <-goodSpark.Done():
					t.Error("the well-behaved spark ended")
				default:
				}
			})
		})
	}
}

// limitCounter is an Observer that counts limit hits.
type limitCounter struct {
	primus.NopObserver
	mu   sync.Mutex
	hits []primus.Limit
}

func (c *limitCounter) LimitHit(l primus.Limit) {
	c.mu.Lock()
	c.hits = append(c.hits, l)
	c.mu.Unlock()
}

func (c *limitCounter) get(l primus.Limit) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, h := range c.hits {
		if h == l {
			n++
		}
	}
	return n
}

// TestLimitsOffByDefault: a server without Limits takes many connections
// from one address, fast, and messages as fast as they come.
func TestLimitsOffByDefault(t *testing.T) {
	t.Parallel()
	h, _ := echoServer(t, flavours()[0], nil, nil)
	var cs []*testClient
	for range 20 {
		c, err := h.dialFrom(t, "127.0.0.2")
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	for i := range 200 {
		cs[0].write(i)
	}
	for i := range 200 {
		cs[0].expect(float64(i))
	}
	if !slices.ContainsFunc(cs, func(c *testClient) bool { return c.Client != nil }) {
		t.Fatal("no client")
	}
}
