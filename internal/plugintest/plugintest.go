// Package plugintest helps the plugins' tests: a primus server on loopback
// with the plugins under test, Go clients dialled to it, and waits bounded by
// a generous timeout.
package plugintest

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/parser"
)

// Timeout bounds every wait. Waits end as soon as the awaited event happens;
// only a broken library reaches it.
const Timeout = 10 * time.Second

// Flavour is a parser the plugins are tested with.
type Flavour struct {
	Name   string
	Parser parser.Parser
}

// Flavours are JSON (the wire format of the npm plugins, and the codec's
// fast path) and CBOR (the generic path).
var Flavours = []Flavour{{"json", parser.JSON}, {"cbor", parser.CBOR}}

// ForEach runs f as a parallel subtest per flavour.
func ForEach(t *testing.T, f func(t *testing.T, fl Flavour)) {
	t.Helper()
	for _, fl := range Flavours {
		t.Run(fl.Name, func(t *testing.T) {
			t.Parallel()
			f(t, fl)
		})
	}
}

// Serve builds a server with opts (its Parser set from fl when nil), serves
// it on loopback and shuts it down when the test ends. It returns the server
// and its URL with the pathname.
func Serve(t testing.TB, fl Flavour, opts *primus.Options) (*primus.Server, string) {
	t.Helper()
	var o primus.Options
	if opts != nil {
		o = *opts
	}
	if o.Parser == nil {
		o.Parser = fl.Parser
	}
	srv, err := primus.New(&o)
	if err != nil {
		t.Fatalf("primus.New: %v", err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		ts.Close()
	})
	return srv, ts.URL + srv.Pathname()
}

// Dial connects a client (its Parser set from fl when nil; reconnects start
// after 10 ms) and closes it when the test ends.
func Dial(t testing.TB, fl Flavour, url string, opts *primus.ClientOptions) *primus.Client {
	t.Helper()
	var o primus.ClientOptions
	if opts != nil {
		o = *opts
	}
	if o.Parser == nil {
		o.Parser = fl.Parser
	}
	if o.Reconnect.Min == 0 {
		o.Reconnect.Min = 10 * time.Millisecond
		o.Reconnect.Max = 100 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	c, err := primus.Dial(ctx, url, &o)
	if err != nil {
		t.Fatalf("primus.Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Recv returns the next value from ch, failing the test after Timeout.
func Recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(Timeout):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

// Sparks returns a channel that receives every spark the server accepts.
func Sparks(srv *primus.Server) <-chan *primus.Spark {
	ch := make(chan *primus.Spark, 64)
	srv.OnConnection(func(sp *primus.Spark) { ch <- sp })
	return ch
}

// End is how a spark ended.
type End struct {
	Spark  *primus.Spark
	Reason error
}

// Ends returns a channel that receives the end of every spark the server
// accepts from now on.
func Ends(srv *primus.Server) <-chan End {
	ch := make(chan End, 64)
	srv.OnConnection(func(sp *primus.Spark) {
		sp.OnEnd(func(reason error) { ch <- End{sp, reason} })
	})
	return ch
}

// IsPanic fails the test unless err is the *primus.PanicError of a panic
// with value v.
func IsPanic(t testing.TB, err error, v any) {
	t.Helper()
	var pe *primus.PanicError
	if !errors.Is(err, primus.ErrPanic) || !errors.As(err, &pe) || pe.Value != v || len(pe.Stack) == 0 {
		t.Fatalf("end reason %v, want the *primus.PanicError of panic(%v) with its stack", err, v)
	}
}

// CloseStatus returns the WebSocket close status in err's chain, or -1.
func CloseStatus(err error) int {
	return int(websocket.CloseStatus(err))
}
