package primus_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ws "github.com/coder/websocket"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/plugin"
	"github.com/go-primus/primus/transport"
)

func TestHTTPSurface(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		h := startServer(t, fl, nil)
		if resp, _ := get(t, h.ts.URL+"/elsewhere", nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET /elsewhere: %d, want 404", resp.StatusCode)
		}
		if resp, _ := get(t, h.ts.URL+"/primusfoo", nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET /primusfoo: %d, want 404 (not under the pathname)", resp.StatusCode)
		}
		if fl.rawWebSocket {
			resp, body := get(t, h.url, nil)
			if resp.StatusCode != http.StatusUpgradeRequired || body != "Upgrade Required" {
				t.Errorf("GET /primus: %d %q, want 426 Upgrade Required", resp.StatusCode, body)
			}
			if resp, _ := get(t, h.url+"/unclaimed", nil); resp.StatusCode != http.StatusNotFound {
				t.Errorf("GET /primus/unclaimed: %d, want 404", resp.StatusCode)
			}
		}
	})
}

func TestPathnameOption(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		h := startServer(t, fl, &primus.Options{Pathname: "realtime/"})
		if got := h.srv.Pathname(); got != "/realtime" {
			t.Fatalf("Pathname() = %q, want /realtime", got)
		}
		resp, body := get(t, h.url+"/spec", nil)
		if resp.StatusCode != 200 || !strings.Contains(body, `"pathname":"/realtime"`) {
			t.Errorf("spec: %d %s", resp.StatusCode, body)
		}
		h.srv.OnConnection(func(sp *primus.Spark) {
			sp.OnData(func(m *primus.Message) { _ = sp.Write(m.Raw()) })
		})
		c := h.dial(t, "", nil)
		c.write("on /realtime")
		c.expect("on /realtime")
	})
	if _, err := primus.New(&primus.Options{Pathname: "/"}); err == nil {
		t.Error(`New with Pathname "/" succeeded`)
	}
}

// textOnly is a transformer whose connections carry text frames only.
type textOnly struct{}

func (textOnly) Name() string                         { return "text-only" }
func (textOnly) Capabilities() transport.Capabilities { return transport.Capabilities{Binary: false} }
func (textOnly) Handler(transport.Options, transport.AcceptFunc) (http.Handler, error) {
	return http.NotFoundHandler(), nil
}

// namedPlugin is a plugin with only a name.
type namedPlugin string

func (p namedPlugin) Name() string { return string(p) }

// failingPlugin fails its server set-up.
type failingPlugin struct{}

func (failingPlugin) Name() string                        { return "failing" }
func (failingPlugin) SetupServer(plugin.ServerHost) error { return errors.New("no thanks") }

func TestNewRefuses(t *testing.T) {
	t.Parallel()
	_, err := primus.New(&primus.Options{Transformer: textOnly{}, Parser: parser.CBOR})
	if err == nil {
		t.Fatal("New accepted a binary parser on a text-only transformer")
	}
	for _, want := range []string{`"cbor"`, "binary", `"text-only"`, "text only"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if _, err := primus.New(&primus.Options{Transformer: textOnly{}, Parser: parser.JSON}); err != nil {
		t.Errorf("New refused a text parser on a text-only transformer: %v", err)
	}

	_, err = primus.New(&primus.Options{Plugins: []plugin.Plugin{namedPlugin("twice"), namedPlugin("other"), namedPlugin("twice")}})
	if err == nil || !strings.Contains(err.Error(), `"twice"`) {
		t.Errorf("two plugins with one name: err = %v", err)
	}
	_, err = primus.New(&primus.Options{Plugins: []plugin.Plugin{failingPlugin{}}})
	if err == nil || !strings.Contains(err.Error(), "no thanks") {
		t.Errorf("failing plugin: err = %v", err)
	}
	if _, err := primus.New(&primus.Options{Plugins: []plugin.Plugin{nil}}); err == nil {
		t.Error("New accepted a nil plugin")
	}
	if _, err := primus.New(&primus.Options{Plugins: []plugin.Plugin{namedPlugin("")}}); err == nil {
		t.Error("New accepted a plugin without a name")
	}
	// nil options mean all defaults.
	srv, err := primus.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	if srv.Pathname() != "/primus" || srv.Parser() != parser.JSON || srv.PingInterval() != 30*time.Second {
		t.Errorf("defaults: %q %v %v", srv.Pathname(), srv.Parser().Name(), srv.PingInterval())
	}
}

func TestOversizeMessage(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		h := startServer(t, fl, &primus.Options{MaxMessageSize: 1024})
		se := watchSparks(h.srv)
		raw := h.rawDial(t, nil)
		h.rawWrite(t, raw, strings.Repeat("x", 900)) // under the limit: fine
		h.rawWrite(t, raw, strings.Repeat("y", 2048))
		err := readUntilClosed(t, raw, func(b []byte) {
			t.Errorf("unexpected frame %q", short(b))
		})
		if got := ws.CloseStatus(err); got != ws.StatusMessageTooBig {
			t.Fatalf("connection ended with %v (status %d), want status 1009", err, got)
		}
		end := se.ends.next(t, "spark OnEnd")
		if !errors.Is(end.reason, primus.ErrMessageTooBig) {
			t.Errorf("spark OnEnd(%v), want ErrMessageTooBig", end.reason)
		}
		if err := se.errs.next(t, "spark OnError"); !errors.Is(err, primus.ErrMessageTooBig) {
			t.Errorf("spark OnError(%v), want ErrMessageTooBig", err)
		}
	})
}

func TestDecodeErrorKeepsConnection(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		h := startContractServer(t, fl, nil)
		se := watchSparks(h.srv)
		raw := h.rawDial(t, nil)
		bad := []byte("{bad")
		if fl.parser.Binary() {
			bad = []byte{0x9f, 0x01} // CBOR: an indefinite array that never ends
		}
		h.rawWriteBytes(t, raw, bad)
		h.rawWrite(t, raw, "still alive")
		err := se.errs.next(t, "spark OnError")
		if !errors.Is(err, parser.ErrDecode) {
			t.Errorf("spark OnError(%v), want an error wrapping parser.ErrDecode", err)
		}
		b, err := rawRead(raw)
		if err != nil {
			t.Fatalf("connection ended after a decode error: %v", err)
		}
		if s, ok := parser.DecodeString(fl.parser, b); !ok || s != "still alive" {
			t.Errorf("got %q, want the echo of the next message", short(b))
		}
	})
}

func TestSlowConsumer(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		// Small kernel buffers on the server's side of every connection
		// (and the slow peer's), so that the slow spark's queue, not the
		// kernel, takes the backlog.
		small := func(ts *httptest.Server) {
			ts.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
				if tc, ok := c.(*net.TCPConn); ok {
					_ = tc.SetWriteBuffer(16 << 10)
				}
				return ctx
			}
		}
		h := startServer(t, fl, &primus.Options{SendQueueBytes: 64 << 10, WriteTimeout: time.Minute}, small)
		se := watchSparks(h.srv)

		const fast = 3
		clients := make([]*testClient, fast)
		for i := range clients {
			clients[i] = h.dial(t, "", nil)
			clients[i].id()
		}
		slowIDs := make(chan string, 1)
		h.srv.OnConnection(func(sp *primus.Spark) { slowIDs <- sp.ID() })
		hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(4 << 10)
			}
			return c, err
		}}}
		_ = h.rawDial(t, &ws.DialOptions{HTTPClient: hc}) // never read
		slowID := waitFor(t, slowIDs, "the slow peer's spark")
		eventually(t, "4 sparks", func() bool { return h.srv.Count() == fast+1 })

		type msg struct {
			Seq int    `json:"seq"`
			Pad string `json:"pad"`
		}
		pad := strings.Repeat("p", 1000)
		const total, batch = 2000, 16 // 16 KiB per batch: the fast clients keep up
		next := make([]int, fast)     // the next broadcast each fast client expects
		for seq := range total {
			start := time.Now()
			if err := h.srv.Write(msg{seq, pad}); err != nil {
				t.Fatalf("broadcast %d: %v", seq, err)
			}
			// A write that waited for the slow peer would take the
			// minute of WriteTimeout; closing the slow spark takes a
			// moment on a loaded machine.
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("broadcast %d blocked for %v", seq, d)
			}
			if (seq+1)%batch != 0 && seq != total-1 {
				continue
			}
			for i, c := range clients {
				for ; next[i] <= seq; next[i]++ {
					got := decodeAs[msg](t, c.data.next(t, fmt.Sprintf("client %d: broadcast %d", i, next[i])))
					if got.Seq != next[i] || got.Pad != pad {
						t.Fatalf("client %d: got broadcast %d, want %d", i, got.Seq, next[i])
					}
				}
			}
		}
		end := se.ends.next(t, "the slow spark's OnEnd")
		if end.sp.ID() != slowID {
			t.Fatalf("spark %s ended (%v), want only the slow one %s", end.sp.ID(), end.reason, slowID)
		}
		if !errors.Is(end.reason, primus.ErrSlowConsumer) {
			t.Errorf("slow spark OnEnd(%v), want ErrSlowConsumer", end.reason)
		}
		if got := h.srv.Count(); got != fast {
			t.Errorf("Count() = %d after the slow spark ended, want %d", got, fast)
		}
		for i, c := range clients {
			if n := c.reconnects.total(); n != 0 {
				t.Errorf("fast client %d reconnected %d times", i, n)
			}
		}
	})
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		h := startContractServer(t, fl, nil)
		const n = 100
		var reconnects atomic.Int32
		ends := make(chan error, n)
		clients := make([]*primus.Client, n)
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
				defer cancel()
				c, err := primus.Dial(ctx, h.url, &primus.ClientOptions{
					Dialer: fl.dialer, Parser: fl.parser,
					Reconnect:   primus.Backoff{Min: 10 * time.Millisecond},
					OnReconnect: func(primus.ReconnectEvent) { reconnects.Add(1) },
					OnEnd:       func(err error) { ends <- err },
				})
				clients[i] = c
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		t.Cleanup(func() {
			for _, c := range clients {
				if c != nil {
					_ = c.Close()
				}
			}
		})
		for err := range errs {
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
		}
		eventually(t, "100 sparks", func() bool { return h.srv.Count() == n })

		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := h.srv.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		for i := range n {
			if err := waitFor(t, ends, fmt.Sprintf("OnEnd %d", i)); err != nil {
				t.Errorf("client OnEnd(%v), want nil", err)
			}
		}
		for _, c := range clients {
			waitFor(t, c.Done(), "client Done")
		}
		if got := reconnects.Load(); got != 0 {
			t.Errorf("%d reconnect attempts after Shutdown", got)
		}
		if got := h.srv.Count(); got != 0 {
			t.Errorf("Count() = %d after Shutdown", got)
		}
		if err := h.srv.Write("late"); !errors.Is(err, primus.ErrServerClosed) {
			t.Errorf("broadcast after Shutdown = %v, want ErrServerClosed", err)
		}

		_, err := h.dialErr(t, "", nil)
		if he := handshakeError(t, err); he.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("Dial after Shutdown: HTTP %d, want 503", he.StatusCode)
		}
		if resp, body := get(t, h.url, nil); resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("GET after Shutdown: %d %s, want 503", resp.StatusCode, body)
		}
	})
}

func TestShutdownContextExpired(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		for _, tc := range []struct {
			name    string
			timeout time.Duration // 0: already cancelled
			want    error
		}{
			{"already cancelled", 0, context.Canceled},
			// The context ends while the spark waits for the peer to
			// answer its close handshake.
			{"expires during the close handshake", 300 * time.Millisecond, context.DeadlineExceeded},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				h := startServer(t, fl, nil)
				se := watchSparks(h.srv)
				h.rawDial(t, nil) // never reads, so never answers the close handshake
				se.conns.next(t, "spark")

				ctx, cancel := context.WithCancel(context.Background())
				if tc.timeout > 0 {
					ctx, cancel = context.WithTimeout(context.Background(), tc.timeout)
				} else {
					cancel()
				}
				defer cancel()
				done := make(chan error, 1)
				start := time.Now()
				go func() { done <- h.srv.Shutdown(ctx) }()
				err := waitFor(t, done, "Shutdown to return")
				if !errors.Is(err, tc.want) {
					t.Errorf("Shutdown = %v, want %v", err, tc.want)
				}
				// Force-closing must not wait for the peer's close
				// handshake (5 s in coder/websocket).
				if d := time.Since(start); d > tc.timeout+3*time.Second {
					t.Errorf("Shutdown took %v with a %v context", d, tc.timeout)
				}
				end := se.ends.next(t, "spark OnEnd")
				if !errors.Is(end.reason, primus.ErrServerClosed) {
					t.Errorf("spark OnEnd(%v), want ErrServerClosed", end.reason)
				}
				if got := h.srv.Count(); got != 0 {
					t.Errorf("Count() = %d after Shutdown", got)
				}
			})
		}
	})
}

func TestOriginCheck(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		for _, tc := range []struct {
			name   string
			opts   primus.Options
			origin string // "self" means the server's own origin
			ok     bool
		}{
			{"cross-origin refused by default", primus.Options{}, "http://evil.example", false},
			{"same origin", primus.Options{}, "self", true},
			{"no origin (not a browser)", primus.Options{}, "", true},
			{"allowed by pattern", primus.Options{OriginPatterns: []string{"evil.example"}}, "http://evil.example", true},
			{"other origin with a pattern", primus.Options{OriginPatterns: []string{"good.example"}}, "http://evil.example", false},
			{"wildcard pattern", primus.Options{OriginPatterns: []string{"*.example"}}, "https://sub.example", true},
			{"any origin", primus.Options{InsecureAllowAnyOrigin: true}, "http://evil.example", true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				h := startContractServer(t, fl, &tc.opts)
				hdr := http.Header{}
				switch tc.origin {
				case "":
				case "self":
					hdr.Set("Origin", h.ts.URL)
				default:
					hdr.Set("Origin", tc.origin)
				}
				c, err := h.dialErr(t, "", &primus.ClientOptions{Header: hdr})
				if !tc.ok {
					if err == nil {
						t.Fatal("Dial succeeded")
					}
					if he := handshakeError(t, err); he.StatusCode != http.StatusForbidden {
						t.Errorf("HTTP %d, want 403", he.StatusCode)
					}
					return
				}
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				c.write("in")
				c.expect("in")
			})
		}
	})
}

func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		loopback := netip.MustParsePrefix("127.0.0.0/8")
		for _, tc := range []struct {
			name    string
			trusted []netip.Prefix
			want    string
		}{
			{"untrusted peer", nil, "127.0.0.1"},
			{"other network trusted", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, "127.0.0.1"},
			{"trusted peer", []netip.Prefix{loopback}, "203.0.113.7"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				h := startServer(t, fl, &primus.Options{TrustedProxies: tc.trusted})
				se := watchSparks(h.srv)
				hdr := http.Header{}
				hdr.Set("X-Forwarded-For", "203.0.113.7")
				hdr.Set("X-Forwarded-Proto", "https")
				h.dial(t, "", &primus.ClientOptions{Header: hdr})
				sp := se.conns.next(t, "spark")
				addr := sp.Address()
				if got := addr.IP.String(); got != tc.want {
					t.Errorf("Address().IP = %s, want %s", got, tc.want)
				}
				forwarded := tc.want != "127.0.0.1"
				if forwarded != addr.Secure {
					t.Errorf("Address().Secure = %v, want %v", addr.Secure, forwarded)
				}
				if forwarded != (addr.Port == 0) {
					t.Errorf("Address().Port = %d", addr.Port)
				}
				if got := sp.Header().Get("X-Forwarded-For"); got != "203.0.113.7" {
					t.Errorf("Header() X-Forwarded-For = %q", got)
				}
			})
		}
	})
}

func TestSparkLookupAndIteration(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		h := startContractServer(t, fl, nil)
		ids := map[string]bool{}
		for range 3 {
			ids[h.dial(t, "k=v", nil).id()] = true
		}
		if h.srv.Count() != 3 || len(ids) != 3 {
			t.Fatalf("Count() = %d, distinct ids %d; want 3, 3", h.srv.Count(), len(ids))
		}
		for id := range ids {
			sp, ok := h.srv.Spark(id)
			if !ok || sp.ID() != id {
				t.Fatalf("Spark(%q) = %v, %v", id, sp, ok)
			}
			if got := sp.Query().Get("k"); got != "v" {
				t.Errorf("Query() k = %q", got)
			}
		}
		if sp, ok := h.srv.Spark("no-such-id"); ok || sp != nil {
			t.Errorf("Spark(unknown) = %v, %v", sp, ok)
		}

		seen := map[string]bool{}
		h.srv.ForEach(func(sp *primus.Spark) bool { seen[sp.ID()] = true; return true })
		if len(seen) != 3 {
			t.Errorf("ForEach visited %d sparks, want 3", len(seen))
		}
		calls := 0
		h.srv.ForEach(func(*primus.Spark) bool { calls++; return false })
		if calls != 1 {
			t.Errorf("ForEach went on after false: %d calls", calls)
		}
	})
}

func TestSparkEndThenWrite(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		h := startServer(t, fl, nil)
		se := watchSparks(h.srv)
		c := h.dial(t, "", nil)
		sp := se.conns.next(t, "spark")
		if err := sp.Write("before the end"); err != nil {
			t.Fatal(err)
		}
		if err := sp.End(); err != nil {
			t.Fatalf("End: %v", err)
		}
		if err := sp.Write("after the end"); !errors.Is(err, primus.ErrClosed) {
			t.Errorf("Write after End = %v, want ErrClosed", err)
		}
		if err := sp.End(); !errors.Is(err, primus.ErrClosed) {
			t.Errorf("second End = %v, want ErrClosed", err)
		}
		// Messages queued before End are delivered, then the client ends.
		c.expect("before the end")
		if err := c.waitEnd(); err != nil {
			t.Errorf("client OnEnd(%v), want nil", err)
		}
		waitFor(t, sp.Done(), "spark Done")
		if err := sp.Context().Err(); err == nil {
			t.Error("spark Context not cancelled after the end")
		}
		if end := se.ends.next(t, "spark OnEnd"); end.reason != nil {
			t.Errorf("spark OnEnd(%v), want nil", end.reason)
		}
		if n := c.reconnects.total(); n != 0 {
			t.Errorf("client reconnected %d times after End", n)
		}
	})
}

func TestDisconnectionHandler(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		h := startServer(t, fl, nil)
		var order []string
		var mu sync.Mutex
		log := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
		gone := make(chan *primus.Spark, 1)
		h.srv.OnConnection(func(sp *primus.Spark) {
			sp.OnEnd(func(error) { log("spark end") })
		})
		h.srv.OnDisconnection(func(sp *primus.Spark) { log("disconnection"); gone <- sp })
		c := h.dial(t, "", nil)
		id := c.id()
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		sp := waitFor(t, gone, "OnDisconnection")
		if sp.ID() != id {
			t.Errorf("disconnected spark %s, want %s", sp.ID(), id)
		}
		mu.Lock()
		defer mu.Unlock()
		if strings.Join(order, ",") != "spark end,disconnection" {
			t.Errorf("order %v, want spark end then disconnection", order)
		}
	})
}

func TestDuplicateIDRefused(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		h := startServer(t, fl, &primus.Options{IDGenerator: func() string { return "same" }})
		se := watchSparks(h.srv)
		h.rawDial(t, nil)
		if sp := se.conns.next(t, "first spark"); sp.ID() != "same" {
			t.Fatalf("spark id %q, want the generator's", sp.ID())
		}
		second := h.rawDial(t, nil)
		err := readUntilClosed(t, second, func(b []byte) { t.Errorf("unexpected frame %q", short(b)) })
		if got := ws.CloseStatus(err); got != ws.StatusInternalError {
			t.Errorf("second connection ended with %v, want status 1011", err)
		}
		if got := h.srv.Count(); got != 1 {
			t.Errorf("Count() = %d, want 1", got)
		}
		if sp, ok := h.srv.Spark("same"); !ok || sp.Context().Err() != nil {
			t.Error("the first spark did not survive the duplicate")
		}
	})
}

func TestHandshakeTimeout(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		h := startServer(t, fl, &primus.Options{HandshakeTimeout: 100 * time.Millisecond})
		err := h.srv.Use("slow", func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				<-r.Context().Done() // slower than the handshake timeout
				next.ServeHTTP(w, r)
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		resp, body := get(t, h.url, nil)
		if resp.StatusCode != http.StatusServiceUnavailable || body != `{"error":"primus: handshake timeout"}` {
			t.Errorf("slow handshake: %d %s, want 503 handshake timeout", resp.StatusCode, body)
		}
		_, err = h.dialErr(t, "", nil)
		if he := handshakeError(t, err); he.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("Dial through a slow middleware: HTTP %d, want 503", he.StatusCode)
		}
	})
}
