package primus_test

// Hardening: one client or one handler must never take the server down.
// Each test is an attack (or an unlucky production day) on real sockets,
// asserting that only the guilty connection pays.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ws "github.com/coder/websocket"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/plugin"
	"github.com/go-primus/primus/transport/websocket"
)

var wsJSON = flavour{name: "websocket-json", transformer: websocket.New(), dialer: websocket.New(), parser: parser.JSON, rawWebSocket: true}

// panicPlugin panics in the hook named by the spark's query "in".
type panicPlugin struct{}

func (panicPlugin) Name() string { return "panicky" }
func (panicPlugin) SetupServer(h plugin.ServerHost) error {
	h.Install(plugin.ServerHooks{
		Connection: func(s plugin.Spark) {
			if s.Query().Get("in") == "hook-connection" {
				panic("boom in hook-connection")
			}
		},
		Incoming: func(s plugin.Spark, m *parser.Message) (bool, error) {
			if s.Query().Get("in") == "hook-incoming" {
				panic("boom in hook-incoming")
			}
			return true, nil
		},
		Close: func(s plugin.Spark, reason error) {
			if s.Query().Get("in") == "hook-close" {
				panic("boom in hook-close")
			}
		},
	})
	return nil
}

// TestHandlerPanics: a panic in any handler or hook run for a spark is
// recovered: that spark is closed with 1011 and ends with a *PanicError, the
// panic and its stack reach the logger and OnPanic, and the server and the
// other sparks go on.
func TestHandlerPanics(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in string
		// afterEnd: the panic happens once the spark has ended already, so
		// there is no close status to see; the remaining end handlers
		// must still run.
		afterEnd bool
	}{
		{in: "connection"},
		{in: "data"},
		{in: "error"}, // a decode error reaches OnError
		{in: "hook-connection"},
		{in: "hook-incoming"},
		{in: "end", afterEnd: true},
		{in: "hook-close", afterEnd: true},
		{in: "disconnection", afterEnd: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			var logBuf syncBuffer
			panics := make(chan *primus.PanicError, 4)
			h := startServer(t, wsJSON, &primus.Options{
				Plugins: []plugin.Plugin{panicPlugin{}},
				Logger:  slog.New(slog.NewTextHandler(&logBuf, nil)),
				OnPanic: func(sp *primus.Spark, err *primus.PanicError) { panics <- err },
			})
			ends := make(chan error, 4)
			disconnected := make(chan string, 4)
			h.srv.OnConnection(func(sp *primus.Spark) {
				in := sp.Query().Get("in")
				sp.OnData(func(m *primus.Message) {
					if in == "data" {
						panic("boom in data")
					}
					_ = sp.Write(m.Raw())
				})
				sp.OnError(func(err error) {
					if in == "error" && errors.Is(err, parser.ErrDecode) {
						panic("boom in error")
					}
				})
				sp.OnEnd(func(reason error) {
					if in != "" {
						ends <- reason
					}
					if in == "end" {
						panic("boom in end")
					}
				})
				if in == "connection" {
					panic("boom in connection")
				}
			})
			h.srv.OnDisconnection(func(sp *primus.Spark) {
				in := sp.Query().Get("in")
				if in == "" {
					return
				}
				disconnected <- in
				if in == "disconnection" {
					panic("boom in disconnection")
				}
			})

			// A bystander, connected before and echoing after.
			other := h.dial(t, "", nil)
			other.id()

			raw := h.rawDialQuery(t, "in="+tc.in)
			switch tc.in {
			case "data", "hook-incoming":
				h.rawWrite(t, raw, "trigger")
			case "error":
				h.rawWriteBytes(t, raw, []byte("{not json"))
			case "end", "hook-close", "disconnection":
				h.rawWrite(t, raw, "hello")
				if b, err := rawRead(raw); err != nil || string(b) != `"hello"` {
					t.Fatalf("echo before the end: %q, %v", b, err)
				}
				_ = raw.Close(ws.StatusNormalClosure, "")
			}
			if !tc.afterEnd {
				err := readUntilClosed(t, raw, func([]byte) {})
				if got := ws.CloseStatus(err); got != ws.StatusInternalError {
					t.Errorf("connection ended with %v, want status 1011", err)
				}
			}
			pe := waitFor(t, panics, "OnPanic")
			if want := "boom in " + tc.in; fmt.Sprint(pe.Value) != want {
				t.Errorf("PanicError.Value = %v, want %q", pe.Value, want)
			}
			if !bytes.Contains(pe.Stack, []byte("hardening_test.go")) {
				t.Errorf("the stack does not show where the panic happened:\n%s", pe.Stack)
			}
			if !errors.Is(pe, primus.ErrPanic) {
				t.Error("errors.Is(PanicError, ErrPanic) is false")
			}
			if tc.in != "hook-connection" { // the server's own connection handler never ran
				reason := waitFor(t, ends, "the spark's OnEnd")
				if !tc.afterEnd && !errors.Is(reason, primus.ErrPanic) {
					t.Errorf("OnEnd(%v), want a *PanicError", reason)
				}
			}
			// The later end handlers still ran, and the spark is gone.
			if got := waitFor(t, disconnected, "OnDisconnection"); got != tc.in {
				t.Errorf("OnDisconnection for %q", got)
			}
			eventually(t, "the spark removed", func() bool { return h.srv.Count() == 1 })
			eventually(t, "the panic logged", func() bool {
				s := logBuf.String()
				return strings.Contains(s, "level=ERROR") && strings.Contains(s, "boom in "+tc.in) && strings.Contains(s, "hardening_test.go")
			})
			// The bystander and new clients are fine.
			other.write("still here")
			other.expect("still here")
			h.dial(t, "", nil).id()
		})
	}
}

// TestClientHandlerPanic: a panic in a Go client's handler ends that client
// with a *PanicError (its connection closed with 1011); the process goes on.
func TestClientHandlerPanic(t *testing.T) {
	t.Parallel()
	h := startContractServer(t, wsJSON, nil)
	se := watchSparks(h.srv)
	panics := make(chan *primus.PanicError, 1)
	c := h.dial(t, "", &primus.ClientOptions{
		OnData:  func(m *primus.Message) { panic("client boom") },
		OnPanic: func(err *primus.PanicError) { panics <- err },
	})
	se.conns.next(t, "spark")
	c.write("trigger")
	pe := waitFor(t, panics, "client OnPanic")
	if fmt.Sprint(pe.Value) != "client boom" {
		t.Errorf("PanicError.Value = %v", pe.Value)
	}
	if err := c.waitEnd(); !errors.Is(err, primus.ErrPanic) {
		t.Errorf("client ended with %v, want a *PanicError", err)
	}
	<-c.Done()
	se.ends.next(t, "the spark's end")
}

// TestCrashOnPanic: with CrashOnPanic, a handler's panic crashes the
// process, as an unrecovered panic does. The crash runs in a child process.
func TestCrashOnPanic(t *testing.T) {
	if os.Getenv("PRIMUS_CRASH_CHILD") == "1" {
		crashChild()
		return
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashOnPanic$", "-test.count=1")
	cmd.Env = append(os.Environ(), "PRIMUS_CRASH_CHILD=1")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("the child did not crash (%v):\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("panic: crash me")) || !bytes.Contains(out, []byte("hardening_test.go")) {
		t.Errorf("the crash does not show the panic and where it happened:\n%s", out)
	}
}

func crashChild() {
	srv, err := primus.New(&primus.Options{CrashOnPanic: true})
	if err != nil {
		panic(err)
	}
	srv.OnConnection(func(sp *primus.Spark) {
		sp.OnData(func(*primus.Message) { panic("crash me") })
	})
	ts := httptest.NewServer(srv)
	c, err := primus.Dial(context.Background(), ts.URL+"/primus", nil)
	if err != nil {
		panic(err)
	}
	_ = c.Write("x")
	time.Sleep(time.Minute) // the crash ends the process long before
	fmt.Println("still alive")
}

// TestInvalidUTF8Refused: a text frame that is not UTF-8 closes its
// connection with 1007 before any handler, plugin or Raw() sees it, so it is
// never forwarded to anyone.
func TestInvalidUTF8Refused(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{
		"\"\xff\"",
		"[0,\"a\",\"news\",\"\xff\"]",
		"{\"k\xc3\":1}",
		"\"primus::pong::\xff\"",
		"\"primus::id::\xed\xa0\x80\"", // an encoded surrogate is not UTF-8
		"\"ok\" \xff",
	} {
		t.Run(fmt.Sprintf("%q", bad), func(t *testing.T) {
			t.Parallel()
			h := startServer(t, wsJSON, nil)
			se := watchSparks(h.srv)
			var seen atomic.Int32
			h.srv.OnConnection(func(sp *primus.Spark) {
				sp.OnData(func(m *primus.Message) {
					seen.Add(1)
					_ = h.srv.Write(m.Raw()) // forwarded to everyone
				})
			})
			others := []*testClient{h.dial(t, "", nil), h.dial(t, "", nil)}
			for _, o := range others {
				o.id()
			}
			raw := h.rawDial(t, nil)
			h.rawWriteBytes(t, raw, []byte(bad))
			err := readUntilClosed(t, raw, func(b []byte) { t.Errorf("frame %q", b) })
			if got := ws.CloseStatus(err); got != ws.StatusInvalidFramePayloadData {
				t.Fatalf("connection ended with %v, want status 1007", err)
			}
			if end := se.ends.next(t, "the spark's end"); !errors.Is(end.reason, primus.ErrInvalidUTF8) {
				t.Errorf("OnEnd(%v), want ErrInvalidUTF8", end.reason)
			}
			if n := seen.Load(); n != 0 {
				t.Errorf("a data handler saw %d invalid messages", n)
			}
			for i, o := range others {
				o.write(fmt.Sprintf("fine %d", i))
			}
			for i, o := range others {
				// Each gets both broadcasts, and nothing else.
				got := map[string]bool{}
				for range 2 {
					got[decodeAs[string](t, o.data.next(t, "broadcast"))] = true
				}
				if !got["fine 0"] || !got["fine 1"] {
					t.Errorf("client %d got %v", i, got)
				}
				if n := o.reconnects.total(); n != 0 {
					t.Errorf("client %d reconnected", i)
				}
			}
		})
	}
}

// TestFrameTypeMismatch: a binary frame to a text parser (or a text frame to
// a binary one) is refused with 1003, never echoed as the wrong type.
func TestFrameTypeMismatch(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		h := startContractServer(t, fl, nil)
		se := watchSparks(h.srv)
		raw := h.rawDial(t, nil)
		typ := ws.MessageBinary
		if fl.parser.Binary() {
			typ = ws.MessageText
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := raw.Write(ctx, typ, []byte(`"hi"`)); err != nil {
			t.Fatal(err)
		}
		err := readUntilClosed(t, raw, func(b []byte) { t.Errorf("frame %q", b) })
		if got := ws.CloseStatus(err); got != ws.StatusUnsupportedData {
			t.Fatalf("connection ended with %v, want status 1003", err)
		}
		if end := se.ends.next(t, "spark end"); !errors.Is(end.reason, primus.ErrUnsupportedData) {
			t.Errorf("OnEnd(%v), want ErrUnsupportedData", end.reason)
		}
	})
}

// floodPeak floods an echoing server with tiny messages from a client that
// never reads, and returns the peak of the server process's live heap over
// its value before the flood, sampled after forced collections.
func floodPeak(tb testing.TB, opts *primus.Options, messages int) (peak uint64, reason error) {
	tb.Helper()
	srv, err := primus.New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	ends := make(chan error, 1)
	srv.OnConnection(func(sp *primus.Spark) {
		sp.OnData(func(m *primus.Message) { _ = sp.Write(m.Raw()) }) // the README's echo
		sp.OnEnd(func(r error) { ends <- r })
	})
	// Small kernel buffers on the server's side, so that the backlog is in
	// the server's memory rather than the kernel's.
	ts := httptest.NewUnstartedServer(srv)
	ts.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetWriteBuffer(16 << 10)
		}
		return ctx
	}
	ts.Start()
	defer ts.Close()
	defer func() { _ = srv.Shutdown(context.Background()) }()

	base := liveHeap()
	stop := make(chan struct{})
	sampled := make(chan uint64)
	go func() {
		var max uint64
		for {
			if h := liveHeap(); h > max {
				max = h
			}
			select {
			case <-stop:
				sampled <- max
				return
			default:
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The client's own receive buffer is left alone: a tiny one on loopback
	// can stall the client's sending too, which is not the attack.
	c, _, err := ws.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http")+"/primus", nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.CloseNow()
	for range messages {
		if c.Write(ctx, ws.MessageText, []byte("1")) != nil {
			break // the server closed the slow consumer
		}
	}
	select {
	case reason = <-ends:
	case <-time.After(time.Minute):
		tb.Fatal("the flooding spark never ended")
	}
	close(stop)
	peak = <-sampled
	if peak < base {
		return 0, reason
	}
	return peak - base, reason
}

// liveHeap returns the bytes of live heap objects, after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestFloodMemoryBound: a client that writes tiny messages as fast as it can
// and never reads, against the README's echo, makes the server hold at most
// about SendQueueBytes + MaxMessageSize (each queued echo pins the buffer it
// was read into, and the bound counts that), then is closed as a slow
// consumer.
func TestFloodMemoryBound(t *testing.T) {
	// Not parallel: it measures the process's heap.
	const queue, maxMsg = 2 << 20, 64 << 10
	// Heartbeats off: the flooder never answers a ping, and on a loaded
	// machine the heartbeat timeout could end it before its queue fills.
	peak, reason := floodPeak(t, &primus.Options{SendQueueBytes: queue, MaxMessageSize: maxMsg, WriteTimeout: time.Minute, PingInterval: -1}, 200_000)
	t.Logf("peak live heap growth during the flood: %.1f MiB (queue bound %d MiB)", float64(peak)/(1<<20), queue>>20)
	if !errors.Is(reason, primus.ErrSlowConsumer) {
		t.Errorf("the flooding spark ended with %v, want ErrSlowConsumer", reason)
	}
	// Before the bound counted real memory, this flood held about 115 MiB.
	if limit := uint64(queue + maxMsg + 4<<20); peak > limit {
		t.Errorf("the server held %d bytes during the flood, over %d", peak, limit)
	}
}

// BenchmarkFloodMemory reports the server's peak live heap growth under the
// flood of TestFloodMemoryBound with default options (SendQueueBytes 4 MiB).
func BenchmarkFloodMemory(b *testing.B) {
	for range b.N {
		peak, _ := floodPeak(b, nil, 200_000)
		b.ReportMetric(float64(peak)/(1<<20), "peak-MiB")
	}
}

// TestSlowConsumerCloseStatus: a spark closed as a slow consumer sends a
// close frame with 1008 and a reason, which a client that reads again (within
// a second) sees after the messages that were already on their way.
func TestSlowConsumerCloseStatus(t *testing.T) {
	t.Parallel()
	h := startServer(t, wsJSON, &primus.Options{SendQueueBytes: 256 << 10, WriteTimeout: time.Minute})
	ended := make(chan error, 1)
	var spark atomic.Pointer[primus.Spark]
	h.srv.OnConnection(func(sp *primus.Spark) {
		spark.Store(sp)
		sp.OnEnd(func(r error) { ended <- r })
	})
	raw := h.rawDial(t, nil) // does not read until the spark is closed
	eventually(t, "the spark", func() bool { return spark.Load() != nil })
	pad := strings.Repeat("x", 8<<10)
	for i := 0; ; i++ {
		if err := spark.Load().Write(pad); err != nil {
			if !errors.Is(err, primus.ErrSlowConsumer) && !errors.Is(err, primus.ErrClosed) {
				t.Fatalf("write %d: %v", i, err)
			}
			break
		}
		if i > 100_000 {
			t.Fatal("the slow consumer was never closed")
		}
	}
	// The client reads again at once: what was on its way arrives, then the
	// close frame.
	err := readUntilClosed(t, raw, func([]byte) {})
	var ce ws.CloseError
	if !errors.As(err, &ce) || ce.Code != ws.StatusPolicyViolation || ce.Reason != "slow consumer" {
		t.Fatalf("the client saw %v, want a close frame 1008 \"slow consumer\"", err)
	}
	if r := waitFor(t, ended, "the spark's end"); !errors.Is(r, primus.ErrSlowConsumer) {
		t.Fatalf("OnEnd(%v), want ErrSlowConsumer", r)
	}
}

// TestHeadersBounded: clients that send huge handshake headers cannot make
// their sparks hold them; Header() keeps whole headers, smallest first, up to
// HeaderBytes, while Authorize still sees them all.
func TestHeadersBounded(t *testing.T) {
	// Not parallel: it measures the process's heap.
	const conns, hdrBytes = 100, 800 << 10
	h := startServer(t, wsJSON, nil, func(ts *httptest.Server) { ts.Config.MaxHeaderBytes = 2 << 20 })
	var authSawBig atomic.Int32
	h.srv.Authorize(func(r *http.Request) error {
		if len(r.Header.Get("X-Big")) == hdrBytes/2 {
			authSawBig.Add(1)
		}
		return nil
	})
	sparks := make(chan *primus.Spark, conns)
	h.srv.OnConnection(func(sp *primus.Spark) { sparks <- sp })
	base := liveHeap()
	hdr := http.Header{}
	hdr.Set("X-Big", strings.Repeat("b", hdrBytes/2))
	hdr.Set("X-Big-Too", strings.Repeat("c", hdrBytes/2))
	hdr.Set("X-Small", "kept")
	hdr.Set("Cookie", "session="+strings.Repeat("s", 4000))
	for range conns {
		h.rawDial(t, &ws.DialOptions{HTTPHeader: hdr})
	}
	for range conns {
		sp := waitFor(t, sparks, "a spark")
		kept := 0
		for k, vs := range sp.Header() {
			kept += len(k)
			for _, v := range vs {
				kept += len(v)
			}
		}
		if kept > 32<<10 {
			t.Fatalf("a spark keeps %d bytes of headers, over the 32 KiB default", kept)
		}
		if sp.Header().Get("X-Small") != "kept" || !strings.HasPrefix(sp.Header().Get("Cookie"), "session=") {
			t.Fatalf("small headers dropped: %v", sp.Header())
		}
		if sp.Header().Get("X-Big") != "" {
			t.Fatal("a huge header was kept")
		}
	}
	grown := int64(liveHeap()) - int64(base)
	t.Logf("%d connections with %d KiB of headers each: live heap grew %.1f MiB", conns, hdrBytes>>10, float64(grown)/(1<<20))
	if authSawBig.Load() != conns {
		t.Errorf("Authorize saw the big header on %d of %d requests", authSawBig.Load(), conns)
	}
	// Holding the headers would be conns × 800 KiB = 78 MiB.
	if limit := int64(conns * 64 << 10); grown > limit {
		t.Errorf("live heap grew %d bytes with %d connections open, over %d", grown, conns, limit)
	}
}

// TestAuthorizeDetailsStayOnServer: an error's own text is logged in full but
// never sent to the client.
func TestAuthorizeDetailsStayOnServer(t *testing.T) {
	t.Parallel()
	var logBuf syncBuffer
	h := startServer(t, wsJSON, &primus.Options{Logger: slog.New(slog.NewTextHandler(&logBuf, nil))})
	h.srv.Authorize(func(*http.Request) error {
		return fmt.Errorf("lookup user alice in db 10.0.0.7:5432: %w", errors.New("no such user"))
	})
	_, err := h.dialErr(t, "", nil)
	he := handshakeError(t, err)
	if he.StatusCode != 401 || string(he.Body) != `{"error":"Unauthorized"}` {
		t.Errorf("client got %d %s", he.StatusCode, he.Body)
	}
	if s := logBuf.String(); !strings.Contains(s, "10.0.0.7:5432") || !strings.Contains(s, "alice") {
		t.Errorf("the full error was not logged:\n%s", s)
	}
}

// rawDialQuery is rawDial with a query string.
func (h *harness) rawDialQuery(t *testing.T, query string) *ws.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, resp, err := ws.Dial(ctx, "ws"+strings.TrimPrefix(h.url, "http")+"?"+query, nil)
	if err != nil {
		t.Fatalf("raw dial: %v", err)
	}
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

// syncBuffer is a bytes.Buffer safe for a logger and a test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
