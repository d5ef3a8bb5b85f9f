package primus_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/transport"
	"github.com/go-primus/primus/transport/websocket"
)

// The smallest server: echo every message back.
func Example() {
	srv, err := primus.New(nil)
	if err != nil {
		log.Fatal(err)
	}
	srv.OnConnection(func(spark *primus.Spark) {
		spark.OnData(func(m *primus.Message) {
			_ = spark.Write(m.Raw())
		})
	})
	hs := httptest.NewServer(srv) // or http.ListenAndServe(":8080", srv)
	defer hs.Close()
	defer srv.Shutdown(context.Background())

	got := make(chan string)
	client, err := primus.Dial(context.Background(), hs.URL+"/primus", &primus.ClientOptions{
		OnData: func(m *primus.Message) {
			var s string
			_ = m.Decode(&s)
			got <- s
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	_ = client.Write("hello")
	fmt.Println(<-got)
	// Output: hello
}

// Hook the server into net/http's graceful shutdown: http.Server.Shutdown
// does not wait for WebSocket connections, primus.Server.Shutdown does.
func ExampleServer_Shutdown() {
	srv, _ := primus.New(nil)
	hs := &http.Server{Addr: "127.0.0.1:0", Handler: srv}
	hs.RegisterOnShutdown(func() { _ = srv.Shutdown(context.Background()) })
	fmt.Println("registered")
	// Output: registered
}

// Authorize refuses a connection with an HTTP status and a JSON body; the
// stock Primus client then ends without retrying, and the Go client's Dial
// returns a *transport.HandshakeError.
func ExampleServer_Authorize() {
	srv, _ := primus.New(nil)
	srv.Authorize(func(r *http.Request) error {
		if r.URL.Query().Get("token") != "secret" {
			return &primus.HTTPError{Status: http.StatusForbidden, Message: "bad token"}
		}
		return nil
	})
	hs := httptest.NewServer(srv)
	defer hs.Close()

	_, err := primus.Dial(context.Background(), hs.URL+"/primus?token=guess", nil)
	var refused *transport.HandshakeError
	if errors.As(err, &refused) {
		fmt.Println(refused.StatusCode, string(refused.Body))
	}
	// Output: 403 {"error":"bad token"}
}

// A custom parser: JSON without HTML escaping. Any type with Name, Binary,
// Encode and Decode will do; the optional parser.StringDecoder and
// parser.Validator interfaces make control messages and validation cheaper.
type rawHTMLJSON struct{}

func (rawHTMLJSON) Name() string { return "json" } // same wire format as Primus's json parser
func (rawHTMLJSON) Binary() bool { return false }
func (rawHTMLJSON) Encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
func (rawHTMLJSON) Decode(data []byte, v any) error { return json.Unmarshal(data, v) }

func Example_customParser() {
	var p parser.Parser = rawHTMLJSON{}
	srv, _ := primus.New(&primus.Options{Parser: p})
	srv.OnConnection(func(spark *primus.Spark) {
		_ = spark.Write("<b>welcome</b>")
	})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Shutdown(context.Background())

	got := make(chan string)
	client, err := primus.Dial(context.Background(), hs.URL+"/primus", &primus.ClientOptions{
		Parser: p,
		OnData: func(m *primus.Message) { got <- string(m.Bytes()) },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	fmt.Println(<-got)
	// Output: "<b>welcome</b>"
}

// A custom transformer implements transport.Transformer (and
// transport.Dialer for the Go client). This one wraps the WebSocket
// transformer and counts the frames its connections carry; a transformer for
// another framework implements Handler by accepting that framework's
// connections and handing each one, as a transport.Conn, to accept.
type countingTransformer struct {
	*websocket.Transformer
	in, out atomic.Int64
}

func (t *countingTransformer) Handler(opts transport.Options, accept transport.AcceptFunc) (http.Handler, error) {
	return t.Transformer.Handler(opts, func(r *http.Request, c transport.Conn) {
		accept(r, &countingConn{Conn: c, t: t})
	})
}

type countingConn struct {
	transport.Conn
	t *countingTransformer
}

func (c *countingConn) Read(ctx context.Context) (transport.MessageType, []byte, error) {
	typ, b, err := c.Conn.Read(ctx)
	if err == nil {
		c.t.in.Add(1)
	}
	return typ, b, err
}

func (c *countingConn) Write(ctx context.Context, typ transport.MessageType, b []byte) error {
	c.t.out.Add(1)
	return c.Conn.Write(ctx, typ, b)
}

func Example_customTransformer() {
	tr := &countingTransformer{Transformer: websocket.New()}
	srv, _ := primus.New(&primus.Options{Transformer: tr})
	srv.OnConnection(func(spark *primus.Spark) {
		spark.OnData(func(m *primus.Message) { _ = spark.Write(m.Raw()) })
	})
	ended := make(chan struct{})
	srv.OnDisconnection(func(*primus.Spark) { close(ended) })
	hs := httptest.NewServer(srv)
	defer hs.Close()

	got := make(chan struct{})
	client, err := primus.Dial(context.Background(), hs.URL+"/primus", &primus.ClientOptions{
		Dialer: tr, // the wrapped transformer dials too
		OnData: func(*primus.Message) { got <- struct{}{} },
	})
	if err != nil {
		log.Fatal(err)
	}
	for range 3 {
		_ = client.Write("ping")
		<-got
	}
	_ = client.Close()
	<-ended // else Shutdown may still find the spark, and end it with one more frame
	_ = srv.Shutdown(context.Background())
	fmt.Println("frames in:", tr.in.Load(), "out:", tr.out.Load())
	// Output: frames in: 3 out: 3
}

// Resumable connections: a spark whose connection is lost keeps its id and
// everything written to it meanwhile; the client comes back to it and gets
// what it missed, once, in order.
func ExampleRecovery() {
	srv, err := primus.New(&primus.Options{Recovery: &primus.Recovery{Window: time.Minute}})
	if err != nil {
		log.Fatal(err)
	}
	sparks := make(chan *primus.Spark, 1)
	srv.OnConnection(func(sp *primus.Spark) { sparks <- sp })
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Shutdown(context.Background())

	got := make(chan string, 10)
	resumed := make(chan primus.ResumeEvent, 1)
	client, err := primus.Dial(context.Background(), hs.URL+"/primus", &primus.ClientOptions{
		Reconnect: primus.Backoff{Min: 10 * time.Millisecond},
		OnData: func(m *primus.Message) {
			var s string
			_ = m.Decode(&s)
			got <- s
		},
		OnResume: func(ev primus.ResumeEvent) { resumed <- ev },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	sp := <-sparks
	_ = sp.Write("before")
	fmt.Println(<-got)

	_ = sp.Close() // the connection is lost: the spark waits for its client
	_ = sp.Write("while away")
	fmt.Println("recovered:", (<-resumed).Recovered)
	fmt.Println(<-got)
	// Output:
	// before
	// recovered: true
	// while away
}
