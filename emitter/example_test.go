package emitter_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/emitter"
	"github.com/go-primus/primus/plugin"
)

// A server answers the event "greet" with an acknowledgement; a Go client
// sends it and waits for the answer.
func Example() {
	em := emitter.New(nil)
	srv, err := primus.New(&primus.Options{Plugins: []plugin.Plugin{em}})
	if err != nil {
		panic(err)
	}
	emitter.On(em, "greet", func(ev *emitter.Event, name string) {
		_ = ev.Ack("hello, " + strings.ToUpper(name))
	})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	defer srv.Shutdown(context.Background())

	ctx := context.Background()
	events := emitter.NewClient(nil)
	c, err := primus.Dial(ctx, ts.URL+"/primus", &primus.ClientOptions{Plugins: []plugin.Plugin{events}})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	greeting, err := emitter.Result[string](events.SendAck(ctx, "greet", "gopher"))
	fmt.Println(greeting, err)
	// Output: hello, GOPHER <nil>
}
