package primus_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	ws "github.com/coder/websocket"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/cmd/primus-testserver/testserver"
	"github.com/go-primus/primus/internal/leakcheck"
	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/transport"
	"github.com/go-primus/primus/transport/websocket"
)

// TestMain fails the run when a test leaves goroutines behind.
func TestMain(m *testing.M) { leakcheck.Main(m) }

// waitTimeout bounds every wait in these tests. It is generous on purpose:
// waits end as soon as the awaited event happens, and only a broken library
// ever reaches it.
const waitTimeout = 10 * time.Second

// flavour is one way of running the suite: a transformer, the dialer the Go
// client uses for it, and a parser. Adding a transformer (SockJS, …) to the
// suite is one more row in flavours.
type flavour struct {
	name        string
	transformer transport.Transformer
	dialer      transport.Dialer
	parser      parser.Parser
	// rawWebSocket says that a plain github.com/coder/websocket connection
	// to the pathname reaches the server (true for transport/websocket);
	// the tests that need a misbehaving peer use one and are skipped
	// otherwise.
	rawWebSocket bool
	// statusRefusals says that a handshake the server refuses (limits,
	// Authorize) fails with the HTTP status, as a *transport.HandshakeError
	// from the dialer (WebSocket, Engine.IO); SockJS opens, then closes.
	statusRefusals bool
	// handshakeRequests is how many HTTP requests under the pathname one
	// connection makes (SockJS: /info, then the transport); 0 means 1.
	handshakeRequests int
}

func flavours() []flavour {
	wst := websocket.New()
	return append([]flavour{
		{name: "websocket-json", transformer: wst, dialer: wst, parser: parser.JSON, rawWebSocket: true, statusRefusals: true},
		{name: "websocket-cbor", transformer: wst, dialer: wst, parser: parser.CBOR, rawWebSocket: true, statusRefusals: true},
	}, append(sockjsFlavours(), engineioFlavours()...)...)
}

// forEachFlavour runs f as a parallel subtest per flavour.
func forEachFlavour(t *testing.T, f func(t *testing.T, fl flavour)) {
	t.Helper()
	for _, fl := range flavours() {
		t.Run(fl.name, func(t *testing.T) {
			t.Parallel()
			f(t, fl)
		})
	}
}

// harness is one primus server on a loopback httptest server.
type harness struct {
	fl  flavour
	srv *primus.Server
	ts  *httptest.Server
	url string // http://127.0.0.1:port/primus
}

// startServer builds a server for the flavour (opts' Transformer and Parser
// are filled in from it), serves it on loopback and shuts both down when the
// test ends. configure, when given, may change the httptest server before
// it starts.
func startServer(t *testing.T, fl flavour, opts *primus.Options, configure ...func(*httptest.Server)) *harness {
	t.Helper()
	var o primus.Options
	if opts != nil {
		o = *opts
	}
	if o.Transformer == nil {
		o.Transformer = fl.transformer
	}
	if o.Parser == nil {
		o.Parser = fl.parser
	}
	srv, err := primus.New(&o)
	if err != nil {
		t.Fatalf("primus.New: %v", err)
	}
	ts := httptest.NewUnstartedServer(srv)
	for _, f := range configure {
		f(ts)
	}
	ts.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("cleanup: Shutdown: %v", err)
		}
		ts.Close()
	})
	return &harness{fl: fl, srv: srv, ts: ts, url: ts.URL + srv.Pathname()}
}

// startContractServer is startServer with the test server's behaviour and
// limits (cmd/primus-testserver/testserver, cmd/primus-testserver).
func startContractServer(t *testing.T, fl flavour, opts *primus.Options) *harness {
	t.Helper()
	var o primus.Options
	if opts != nil {
		o = *opts
	}
	if o.MaxMessageSize == 0 {
		o.MaxMessageSize = 16 << 20
	}
	if o.SendQueueBytes == 0 {
		o.SendQueueBytes = 64 << 20
	}
	h := startServer(t, fl, &o)
	testserver.Setup(h.srv)
	return h
}

// testClient is a Go client whose callbacks are recorded.
type testClient struct {
	*primus.Client
	t          *testing.T
	data       *events[*primus.Message]
	opens      *events[struct{}]
	reconnects *events[primus.ReconnectEvent]
	errs       *events[error]
	ended      chan error // OnEnd's reason; receives once
}

func newTestClient(t *testing.T) *testClient {
	return &testClient{
		t:          t,
		data:       newEvents[*primus.Message](),
		opens:      newEvents[struct{}](),
		reconnects: newEvents[primus.ReconnectEvent](),
		errs:       newEvents[error](),
		ended:      make(chan error, 1),
	}
}

// options returns a copy of opts whose callbacks record into c and then
// call opts' own.
func (c *testClient) options(opts *primus.ClientOptions) *primus.ClientOptions {
	var o primus.ClientOptions
	if opts != nil {
		o = *opts
	}
	onOpen, onData, onReconnect, onError, onEnd := o.OnOpen, o.OnData, o.OnReconnect, o.OnError, o.OnEnd
	o.OnOpen = func() {
		c.opens.push(struct{}{})
		if onOpen != nil {
			onOpen()
		}
	}
	o.OnData = func(m *primus.Message) {
		c.data.push(m)
		if onData != nil {
			onData(m)
		}
	}
	o.OnReconnect = func(e primus.ReconnectEvent) {
		c.reconnects.push(e)
		if onReconnect != nil {
			onReconnect(e)
		}
	}
	o.OnError = func(err error) {
		c.errs.push(err)
		if onError != nil {
			onError(err)
		}
	}
	o.OnEnd = func(err error) {
		c.ended <- err
		if onEnd != nil {
			onEnd(err)
		}
	}
	return &o
}

// dialErr dials the harness with a query string (without "?") and options
// (Dialer and Parser come from the flavour when unset). On success the
// client has opened and is closed when the test ends.
func (h *harness) dialErr(t *testing.T, query string, opts *primus.ClientOptions) (*testClient, error) {
	t.Helper()
	c := newTestClient(t)
	o := c.options(opts)
	if o.Dialer == nil {
		o.Dialer = h.fl.dialer
	}
	if o.Parser == nil {
		o.Parser = h.fl.parser
	}
	if o.Reconnect.Min == 0 {
		o.Reconnect.Min = 10 * time.Millisecond
	}
	u := h.url
	if query != "" {
		u += "?" + query
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	client, err := primus.Dial(ctx, u, o)
	if err != nil {
		return c, err
	}
	c.Client = client
	t.Cleanup(func() { _ = client.Close() })
	c.opens.next(t, "the first OnOpen")
	return c, nil
}

// dial is dialErr that fails the test on error.
func (h *harness) dial(t *testing.T, query string, opts *primus.ClientOptions) *testClient {
	t.Helper()
	c, err := h.dialErr(t, query, opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	return c
}

// write writes v and fails the test on error.
func (c *testClient) write(v any) {
	c.t.Helper()
	if err := c.Write(v); err != nil {
		c.t.Fatalf("client Write(%v): %v", short(v), err)
	}
}

// expect waits for the next data message and checks that it decodes to want.
func (c *testClient) expect(want any) {
	c.t.Helper()
	m := c.data.next(c.t, "data "+short(want))
	checkDecoded(c.t, m, want)
}

// id asks the server for the client's spark id.
func (c *testClient) id() string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	id, err := c.ID(ctx)
	if err != nil {
		c.t.Fatalf("client ID: %v", err)
	}
	if id == "" {
		c.t.Fatal("client ID is empty")
	}
	return id
}

// waitEnd waits for OnEnd and returns its reason; Done must close too.
func (c *testClient) waitEnd() error {
	c.t.Helper()
	err := waitFor(c.t, c.ended, "client OnEnd")
	waitFor(c.t, c.Done(), "client Done")
	return err
}

// checkDecoded checks that m decodes into a value of want's type equal to
// want (a nil want means a null message).
func checkDecoded(t *testing.T, m *primus.Message, want any) {
	t.Helper()
	if want == nil {
		var got any
		if err := m.Decode(&got); err != nil {
			t.Fatalf("decode %q: %v", short(m.Bytes()), err)
		}
		if got != nil {
			t.Fatalf("got %#v, want null", got)
		}
		return
	}
	ptr := reflect.New(reflect.TypeOf(want))
	if err := m.Decode(ptr.Interface()); err != nil {
		t.Fatalf("decode %q into %T: %v", short(m.Bytes()), want, err)
	}
	if got := ptr.Elem().Interface(); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %s, want %s", short(got), short(want))
	}
}

// decodeAs decodes m into a T.
func decodeAs[T any](t *testing.T, m *primus.Message) T {
	t.Helper()
	var v T
	if err := m.Decode(&v); err != nil {
		t.Fatalf("decode %q into %T: %v", short(m.Bytes()), v, err)
	}
	return v
}

// short formats v for a failure message without printing megabytes.
func short(v any) string {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case []byte:
		s = string(x)
	default:
		s = fmt.Sprintf("%#v", v)
	}
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}

// events records values pushed by callbacks (any goroutine) for one test
// goroutine to consume in order.
type events[T any] struct {
	mu     sync.Mutex
	items  []T
	seen   int
	signal chan struct{}
}

func newEvents[T any]() *events[T] {
	return &events[T]{signal: make(chan struct{}, 1)}
}

func (e *events[T]) push(v T) {
	e.mu.Lock()
	e.items = append(e.items, v)
	e.seen++
	e.mu.Unlock()
	select {
	case e.signal <- struct{}{}:
	default:
	}
}

// next removes and returns the oldest value, waiting for one up to
// waitTimeout. Call it from the test goroutine only.
func (e *events[T]) next(t testing.TB, what string) T {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		e.mu.Lock()
		if len(e.items) > 0 {
			v := e.items[0]
			var zero T
			e.items[0] = zero
			e.items = e.items[1:]
			e.mu.Unlock()
			return v
		}
		e.mu.Unlock()
		select {
		case <-e.signal:
		case <-timer.C:
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
	}
}

// poll removes and returns the oldest value, waiting for one up to d; false
// when none came. Unlike next it may be called from any goroutine.
func (e *events[T]) poll(d time.Duration) (T, bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		e.mu.Lock()
		if len(e.items) > 0 {
			v := e.items[0]
			var zero T
			e.items[0] = zero
			e.items = e.items[1:]
			e.mu.Unlock()
			return v, true
		}
		e.mu.Unlock()
		select {
		case <-e.signal:
		case <-timer.C:
			var zero T
			return zero, false
		}
	}
}

// total returns how many values were ever pushed.
func (e *events[T]) total() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.seen
}

// pending returns the values not consumed yet.
func (e *events[T]) pending() []T {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]T(nil), e.items...)
}

// waitFor receives one value from ch, failing the test after waitTimeout.
func waitFor[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
	}
	panic("unreachable")
}

// eventually polls cond until it holds, failing the test after waitTimeout.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		<-tick.C
	}
}

// sparkEvents records, for a server, each new spark and each spark's end.
type sparkEvents struct {
	conns *events[*primus.Spark]
	ends  *events[sparkEnd]
	errs  *events[error]
}

type sparkEnd struct {
	sp     *primus.Spark
	reason error
}

// watchSparks records the server's sparks from now on.
func watchSparks(srv *primus.Server) *sparkEvents {
	se := &sparkEvents{conns: newEvents[*primus.Spark](), ends: newEvents[sparkEnd](), errs: newEvents[error]()}
	srv.OnConnection(func(sp *primus.Spark) {
		sp.OnEnd(func(reason error) { se.ends.push(sparkEnd{sp, reason}) })
		sp.OnError(func(err error) { se.errs.push(err) })
		se.conns.push(sp)
	})
	return se
}

// rawDial opens a plain coder/websocket connection to the harness, for
// tests that need a peer that misbehaves. It is closed when the test ends.
func (h *harness) rawDial(t *testing.T, opts *ws.DialOptions) *ws.Conn {
	t.Helper()
	if !h.fl.rawWebSocket {
		t.Skipf("%s: a raw WebSocket peer cannot reach this transformer", h.fl.name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, resp, err := ws.Dial(ctx, "ws"+strings.TrimPrefix(h.url, "http"), opts)
	if err != nil {
		t.Fatalf("raw dial: %v", err)
	}
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

// rawWrite writes v encoded with the flavour's parser, in the frame type
// the parser uses.
func (h *harness) rawWrite(t *testing.T, c *ws.Conn, v any) {
	t.Helper()
	b, err := h.fl.parser.Encode(v)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	h.rawWriteBytes(t, c, b)
}

func (h *harness) rawWriteBytes(t *testing.T, c *ws.Conn, b []byte) {
	t.Helper()
	typ := ws.MessageText
	if h.fl.parser.Binary() {
		typ = ws.MessageBinary
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := c.Write(ctx, typ, b); err != nil {
		t.Fatalf("raw write: %v", err)
	}
}

// rawRead reads one frame; err is the read error, if any.
func rawRead(c *ws.Conn) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	_, b, err := c.Read(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return nil, errors.New("raw read timed out")
	}
	return b, err
}

// readUntilClosed reads frames, passing each to frame, until the connection
// ends, and returns the error that ended it. It fails the test when the
// connection is still open after waitTimeout.
func readUntilClosed(t *testing.T, c *ws.Conn, frame func([]byte)) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for {
		_, b, err := c.Read(ctx)
		if ctx.Err() != nil {
			t.Fatalf("the connection is still open after %v", waitTimeout)
		}
		if err != nil {
			return err
		}
		frame(b)
	}
}

// get performs a plain HTTP GET and returns the response and its body.
func get(t *testing.T, url string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp, string(b)
}

// handshakeError returns the *transport.HandshakeError err wraps, failing
// the test when there is none.
func handshakeError(t *testing.T, err error) *transport.HandshakeError {
	t.Helper()
	var he *transport.HandshakeError
	if !errors.As(err, &he) {
		t.Fatalf("error %v (%T) does not wrap a *transport.HandshakeError", err, err)
	}
	return he
}
