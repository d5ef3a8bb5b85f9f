package substream_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/plugin"
	"github.com/go-primus/primus/substream"
)

// Every connection gets a substream "upper" that answers in capitals; a Go
// client opens its own end of it, writes, and ends it.
func Example() {
	ss := substream.New(nil)
	srv, err := primus.New(&primus.Options{Plugins: []plugin.Plugin{ss}})
	if err != nil {
		panic(err)
	}
	ended := make(chan struct{})
	srv.OnConnection(func(sp *primus.Spark) {
		var st *substream.Stream
		st, _ = ss.Stream(sp, "upper", &substream.StreamOptions{
			OnData: func(m *primus.Message) {
				var s string
				_ = m.Decode(&s)
				_ = st.Write(strings.ToUpper(s))
			},
			OnEnd: func(error) { close(ended) },
		})
	})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	defer srv.Shutdown(context.Background())

	sc := substream.NewClient()
	c, err := primus.Dial(context.Background(), ts.URL+"/primus", &primus.ClientOptions{Plugins: []plugin.Plugin{sc}})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	replies := make(chan string)
	upper, _ := sc.Stream("upper", &substream.StreamOptions{OnData: func(m *primus.Message) {
		var s string
		_ = m.Decode(&s)
		replies <- s
	}})
	_ = upper.Write("go")
	fmt.Println(<-replies)
	_ = upper.End()
	<-ended
	fmt.Println("ended on the server too")
	// Output:
	// GO
	// ended on the server too
}
