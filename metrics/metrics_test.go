package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	ws "github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/internal/leakcheck"
	"github.com/go-primus/primus/metrics"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

const waitTimeout = 10 * time.Second

// env is a server with metrics on its own registry, on loopback.
type env struct {
	reg *prometheus.Registry
	m   *metrics.Metrics
	srv *primus.Server
	ts  *httptest.Server
	url string // http://127.0.0.1:port/primus

	conns chan *primus.Spark
	ends  chan error
}

// start serves a server with opts (Observer set to a new Metrics) whose
// sparks echo every message.
func start(t *testing.T, opts *primus.Options, configure ...func(*httptest.Server)) *env {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	var o primus.Options
	if opts != nil {
		o = *opts
	}
	o.Observer = m
	srv, err := primus.New(&o)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{reg: reg, m: m, srv: srv, conns: make(chan *primus.Spark, 16), ends: make(chan error, 16)}
	srv.OnConnection(func(sp *primus.Spark) {
		sp.OnData(func(msg *primus.Message) { _ = sp.Write(msg.Raw()) })
		sp.OnEnd(func(err error) { e.ends <- err })
		e.conns <- sp
	})
	e.ts = httptest.NewUnstartedServer(srv)
	for _, f := range configure {
		f(e.ts)
	}
	e.ts.Start()
	e.url = e.ts.URL + srv.Pathname()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		_ = srv.Shutdown(ctx)
		e.ts.Close()
	})
	return e
}

// value returns the metric's value (a histogram's sample count), or -1 when
// there is no such series. labels are name, value pairs.
func value(t testing.TB, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, mt := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if labelValue(mt, labels[i]) != labels[i+1] {
					continue metrics
				}
			}
			switch {
			case mt.Counter != nil:
				return mt.Counter.GetValue()
			case mt.Gauge != nil:
				return mt.Gauge.GetValue()
			case mt.Histogram != nil:
				return float64(mt.Histogram.GetSampleCount())
			}
		}
	}
	return -1
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// expect checks the metric's value now.
func expect(t *testing.T, g prometheus.Gatherer, want float64, name string, labels ...string) {
	t.Helper()
	if got := value(t, g, name, labels...); got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

// await waits until the metric's value is at least want: for events
// reported after what the test can wait for (a write is counted once it has
// returned, which may be after the client received it).
func await(t *testing.T, g prometheus.Gatherer, want float64, name string, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		got := value(t, g, name, labels...)
		if got >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v after %v, want at least %v", name, labels, got, waitTimeout, want)
		}
		time.Sleep(time.Millisecond) // polling a condition, not standing in for one
	}
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// dial connects a Go client that records its messages.
func (e *env) dial(t *testing.T, opts *primus.ClientOptions) (*primus.Client, chan *primus.Message) {
	t.Helper()
	var o primus.ClientOptions
	if opts != nil {
		o = *opts
	}
	data := make(chan *primus.Message, 64)
	o.OnData = func(m *primus.Message) { data <- m }
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := primus.Dial(ctx, e.url, &o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, data
}

// rawDial opens a plain WebSocket to the server.
func (e *env) rawDial(t *testing.T, query string, opts *ws.DialOptions) *ws.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	u := "ws" + strings.TrimPrefix(e.url, "http")
	if query != "" {
		u += "?" + query
	}
	c, _, err := ws.Dial(ctx, u, opts)
	if err != nil {
		t.Fatalf("raw dial: %v", err)
	}
	c.SetReadLimit(-1)
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

func rawWrite(t *testing.T, c *ws.Conn, s string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := c.Write(ctx, ws.MessageText, []byte(s)); err != nil {
		t.Fatalf("raw write: %v", err)
	}
}

// drain reads c until it closes and returns the error that closed it.
func drain(c *ws.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for {
		if _, _, err := c.Read(ctx); err != nil {
			return err
		}
	}
}

const tr = "websockets" // the WebSocket transformer's name, the transformer label

func TestConnectionAndMessages(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	c, data := e.dial(t, nil)
	recv(t, e.conns, "the spark")
	expect(t, e.reg, 1, "primus_connections", "transformer", tr)
	expect(t, e.reg, 1, "primus_connections_opened_total", "transformer", tr)
	expect(t, e.reg, 1, "primus_handshake_duration_seconds", "transformer", tr)

	if err := c.Write("hello"); err != nil {
		t.Fatal(err)
	}
	recv(t, data, "the echo")
	expect(t, e.reg, 1, "primus_messages_received_total")
	expect(t, e.reg, float64(len(`"hello"`)), "primus_received_bytes_total")
	await(t, e.reg, 1, "primus_messages_sent_total")
	await(t, e.reg, float64(len(`"hello"`)), "primus_sent_bytes_total")
	await(t, e.reg, 1, "primus_write_duration_seconds") // the first write of a connection is timed

	_ = c.Close()
	if err := recv(t, e.ends, "the spark's end"); err != nil {
		t.Fatalf("the spark ended with %v", err)
	}
	expect(t, e.reg, 0, "primus_connections", "transformer", tr)
	expect(t, e.reg, 1, "primus_connections_closed_total", "transformer", tr, "reason", "normal")
	for _, r := range primus.CloseReasons() {
		if r != primus.CloseNormal {
			expect(t, e.reg, 0, "primus_connections_closed_total", "transformer", tr, "reason", r.String())
		}
	}
}

func TestDecodeError(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	errs := make(chan error, 1)
	e.srv.OnConnection(func(sp *primus.Spark) { sp.OnError(func(err error) { errs <- err }) })
	c := e.rawDial(t, "", nil)
	expect(t, e.reg, 0, "primus_decode_errors_total")
	rawWrite(t, c, "{not json")
	recv(t, errs, "the decode error")
	expect(t, e.reg, 1, "primus_decode_errors_total")
}

func TestHeartbeat(t *testing.T) {
	t.Parallel()
	e := start(t, &primus.Options{PingInterval: 20 * time.Millisecond})
	e.dial(t, nil) // answers pings
	recv(t, e.conns, "the spark")
	await(t, e.reg, 1, "primus_heartbeat_rtt_seconds")

	// A peer that reads but never answers is closed at the tick after the
	// ping it did not answer.
	c := e.rawDial(t, "", nil)
	recv(t, e.conns, "the silent spark")
	go func() { _ = drain(c) }()
	for {
		err := recv(t, e.ends, "the silent spark's end")
		if errors.Is(err, primus.ErrHeartbeatTimeout) {
			break
		}
		if err != nil {
			t.Fatalf("ended with %v, want ErrHeartbeatTimeout", err)
		}
		// nil: the answering client went away (its own ping timeout is
		// 1.5 intervals, 30 ms, which a loaded machine can miss), not the
		// silent one.
	}
	expect(t, e.reg, 1, "primus_connections_closed_total", "transformer", tr, "reason", "heartbeat_timeout")
}

func TestSlowConsumer(t *testing.T) {
	t.Parallel()
	small := func(ts *httptest.Server) {
		ts.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetWriteBuffer(16 << 10)
			}
			return ctx
		}
	}
	e := start(t, &primus.Options{SendQueueBytes: 64 << 10, WriteTimeout: time.Minute}, small)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4 << 10)
		}
		return c, err
	}}}
	e.rawDial(t, "", &ws.DialOptions{HTTPClient: hc}) // never reads
	sp := recv(t, e.conns, "the slow spark")
	pad := strings.Repeat("p", 8<<10)
	for i := 0; ; i++ {
		if err := sp.Write(pad); err != nil {
			if !errors.Is(err, primus.ErrSlowConsumer) && !errors.Is(err, primus.ErrClosed) {
				t.Fatal(err)
			}
			break
		}
		if i > 100_000 {
			t.Fatal("the spark never became a slow consumer")
		}
	}
	if err := recv(t, e.ends, "the slow spark's end"); !errors.Is(err, primus.ErrSlowConsumer) {
		t.Fatalf("ended with %v, want ErrSlowConsumer", err)
	}
	expect(t, e.reg, 1, "primus_connections_closed_total", "transformer", tr, "reason", "slow_consumer")
	if v := value(t, e.reg, "primus_send_queue_bytes"); v < 1 {
		t.Errorf("primus_send_queue_bytes has %v samples, want some", v)
	}
}

func TestOversize(t *testing.T) {
	t.Parallel()
	e := start(t, &primus.Options{MaxMessageSize: 1024})
	c := e.rawDial(t, "", nil)
	recv(t, e.conns, "the spark")
	rawWrite(t, c, `"`+strings.Repeat("x", 2048)+`"`)
	if err := recv(t, e.ends, "the spark's end"); !errors.Is(err, primus.ErrMessageTooBig) {
		t.Fatalf("ended with %v, want ErrMessageTooBig", err)
	}
	expect(t, e.reg, 1, "primus_connections_closed_total", "transformer", tr, "reason", "oversize")
}

func TestRateLimited(t *testing.T) {
	t.Parallel()
	e := start(t, &primus.Options{Limits: &primus.Limits{MessagesPerSecond: 0.01, MessagesBurst: 2}})
	c := e.rawDial(t, "", nil)
	recv(t, e.conns, "the spark")
	for i := range 3 {
		rawWrite(t, c, fmt.Sprint(i))
	}
	if err := recv(t, e.ends, "the spark's end"); !errors.Is(err, primus.ErrRateLimited) {
		t.Fatalf("ended with %v, want ErrRateLimited", err)
	}
	expect(t, e.reg, 1, "primus_connections_closed_total", "transformer", tr, "reason", "rate_limited")
	expect(t, e.reg, 1, "primus_limit_hits_total", "limit", "message_rate")
	expect(t, e.reg, 0, "primus_limit_hits_total", "limit", "byte_rate")
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	e := start(t, &primus.Options{Limits: &primus.Limits{MaxConnectionsPerAddress: 1}})
	e.srv.Authorize(func(r *http.Request) error {
		if r.URL.Query().Get("token") == "bad" {
			return &primus.HTTPError{Status: http.StatusForbidden, Message: "no"}
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := primus.Dial(ctx, e.url+"?token=bad", nil); err == nil {
		t.Fatal("a bad token was accepted")
	}
	expect(t, e.reg, 1, "primus_connections_refused_total", "transformer", tr, "reason", "authorize", "code", "403")

	e.dial(t, nil)
	if _, err := primus.Dial(ctx, e.url, nil); err == nil {
		t.Fatal("a second connection from the address was accepted")
	}
	expect(t, e.reg, 1, "primus_connections_refused_total", "transformer", tr, "reason", "max_connections_per_address", "code", "429")
	expect(t, e.reg, 1, "primus_limit_hits_total", "limit", "connections_per_address")
	expect(t, e.reg, 1, "primus_connections", "transformer", tr)
}

func TestResume(t *testing.T) {
	t.Parallel()
	e := start(t, &primus.Options{Recovery: &primus.Recovery{}})
	drops := make(chan struct{}, 1)
	e.srv.OnConnection(func(sp *primus.Spark) { sp.OnDrop(func(error) { drops <- struct{}{} }) })

	// A credential the server never issued: a new spark, and a failure.
	c := e.rawDial(t, "_primus_recover=1&_primus_resume=bogus&_primus_received=0", nil)
	sp := recv(t, e.conns, "the spark")
	expect(t, e.reg, 1, "primus_resume_failures_total", "reason", "unknown")
	_, first, err := c.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// "primus::session::<credential>::unknown"
	cred, _, _ := strings.Cut(strings.TrimPrefix(strings.Trim(string(first), `"`), "primus::session::"), "::")

	_ = c.CloseNow() // lost: the spark waits for its client
	recv(t, drops, "the drop")
	if err := sp.Write("missed"); err != nil {
		t.Fatal(err)
	}
	c2 := e.rawDial(t, "_primus_recover=1&_primus_resume="+cred+"&_primus_received=0", nil)
	for {
		_, b, err := c2.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if string(b) == `"missed"` {
			break
		}
	}
	expect(t, e.reg, 1, "primus_resumes_total")
	expect(t, e.reg, 1, "primus_replayed_messages_total")
	expect(t, e.reg, 1, "primus_connections", "transformer", tr)
}

// TestLabelsBounded: no label value is a spark id or an address, whatever
// happened.
func TestLabelsBounded(t *testing.T) {
	t.Parallel()
	e := start(t, &primus.Options{Limits: &primus.Limits{MaxConnectionsPerAddress: 2}})
	var ids []string
	for range 2 {
		e.dial(t, nil)
		ids = append(ids, recv(t, e.conns, "a spark").ID())
	}
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{"transformer": true, "reason": true, "code": true, "limit": true}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "primus_") {
			t.Errorf("metric %s: not primus_", mf.GetName())
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if !allowed[l.GetName()] {
					t.Errorf("%s: label %s", mf.GetName(), l.GetName())
				}
				for _, id := range ids {
					if l.GetValue() == id || strings.Contains(l.GetValue(), "127.0.0.1") {
						t.Errorf("%s: label %s=%s", mf.GetName(), l.GetName(), l.GetValue())
					}
				}
			}
		}
	}
}

// TestPerMessageAllocations: the methods on the per-message path allocate
// nothing.
func TestPerMessageAllocations(t *testing.T) {
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	m.ConnOpened(tr) // resolves the transformer's metrics
	for name, f := range map[string]func(){
		"MessageIn":     func() { m.MessageIn(100) },
		"MessageOut":    func() { m.MessageOut(100) },
		"Queued":        func() { m.Queued(4096) },
		"WriteDuration": func() { m.WriteDuration(time.Millisecond) },
		"HeartbeatRTT":  func() { m.HeartbeatRTT(time.Millisecond) },
		"DecodeError":   func() { m.DecodeError() },
		"LimitHit":      func() { m.LimitHit(primus.LimitMessageRate) },
		"ConnOpened":    func() { m.ConnOpened(tr) },
		"ConnClosed":    func() { m.ConnClosed(tr, primus.CloseSlowConsumer) },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocations", name, n)
		}
	}
}

// TestRegisterTwice: a second Metrics on one registry is an error, and
// leaves the registry as it was.
func TestRegisterTwice(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := metrics.New(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := metrics.New(reg); err == nil {
		t.Fatal("registered twice")
	}
}
