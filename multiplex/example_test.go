package multiplex_test

import (
	"context"
	"fmt"
	"net/http/httptest"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/multiplex"
	"github.com/go-primus/primus/plugin"
)

// A server with two channels over each connection; a Go client subscribes
// to both and hears back on each.
func Example() {
	mx := multiplex.New(nil)
	srv, err := primus.New(&primus.Options{Plugins: []plugin.Plugin{mx}})
	if err != nil {
		panic(err)
	}
	for _, name := range []string{"chat", "news"} {
		mx.Channel(name).OnConnection(func(cs *multiplex.Spark) {
			cs.OnData(func(m *primus.Message) {
				var text string
				_ = m.Decode(&text)
				_ = cs.Write(cs.Channel().Name() + " got " + text)
			})
		})
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	defer srv.Shutdown(context.Background())

	mc := multiplex.NewClient()
	c, err := primus.Dial(context.Background(), ts.URL+"/primus", &primus.ClientOptions{Plugins: []plugin.Plugin{mc}})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	replies := make(chan string)
	onData := func(m *primus.Message) {
		var s string
		_ = m.Decode(&s)
		replies <- s
	}
	chat, _ := mc.Channel("chat", &multiplex.ChannelOptions{OnData: onData})
	news, _ := mc.Channel("news", &multiplex.ChannelOptions{OnData: onData})
	_ = chat.Write("hi")
	fmt.Println(<-replies)
	_ = news.Write("headline")
	fmt.Println(<-replies)
	// Output:
	// chat got hi
	// news got headline
}
