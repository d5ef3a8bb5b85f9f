package engineio_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/transport/engineio"
)

// A server on the Engine.IO transformer, and the Go client over
// long-polling: the stock Primus client built for engine.io connects to the
// same server unchanged.
func Example() {
	srv, err := primus.New(&primus.Options{Transformer: engineio.New(nil)})
	if err != nil {
		panic(err)
	}
	srv.OnConnection(func(sp *primus.Spark) {
		sp.OnData(func(m *primus.Message) { _ = sp.Write(m.Raw()) }) // echo
	})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	defer srv.Shutdown(context.Background())

	echoes := make(chan string, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := primus.Dial(ctx, ts.URL+"/primus", &primus.ClientOptions{
		Dialer: engineio.New(&engineio.Options{Dial: engineio.DialPolling}),
		OnData: func(m *primus.Message) {
			var s string
			_ = m.Decode(&s)
			echoes <- s
		},
	})
	if err != nil {
		panic(err)
	}
	defer client.Close()
	_ = client.Write("hello over long-polling")
	fmt.Println(<-echoes)
	// Output: hello over long-polling
}
