package substream_test

import (
	"errors"
	"testing"

	"github.com/go-primus/primus"
	pt "github.com/go-primus/primus/internal/plugintest"
	"github.com/go-primus/primus/plugin"
	"github.com/go-primus/primus/substream"
)

// TestMaxStreams: over Options.MaxStreams open streams on a connection,
// Stream refuses with ErrTooManyStreams and creates nothing (the client's
// packets for that name stay ordinary data); an existing stream is still
// returned, and ending one frees its place.
func TestMaxStreams(t *testing.T) {
	t.Parallel()
	pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
		ss := substream.New(&substream.Options{MaxStreams: 2})
		srv, url := pt.Serve(t, fl, &primus.Options{Plugins: []plugin.Plugin{ss}})
		sparks := pt.Sparks(srv)
		data := make(chan *primus.Message, 8)
		srv.OnConnection(func(sp *primus.Spark) { sp.OnData(func(m *primus.Message) { data <- m }) })
		sc := substream.NewClient()
		pt.Dial(t, fl, url, &primus.ClientOptions{Plugins: []plugin.Plugin{sc}})
		sp := pt.Recv(t, sparks, "the spark")

		a, err := ss.Stream(sp, "a", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ss.Stream(sp, "b", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := ss.Stream(sp, "c", nil); !errors.Is(err, substream.ErrTooManyStreams) {
			t.Fatalf("third stream: %v, want ErrTooManyStreams", err)
		}
		if again, err := ss.Stream(sp, "a", nil); err != nil || again != a {
			t.Errorf("an open stream at the bound: %v, %v", again, err)
		}
		cc, err := sc.Stream("c", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := cc.Write("to no stream"); err != nil {
			t.Fatal(err)
		}
		if m := pt.Recv(t, data, "the packet as data"); len(m.Bytes()) == 0 {
			t.Error("empty data")
		}
		if err := a.End(); err != nil {
			t.Fatal(err)
		}
		got := make(chan *primus.Message, 1)
		if _, err := ss.Stream(sp, "c", &substream.StreamOptions{OnData: func(m *primus.Message) { got <- m }}); err != nil {
			t.Fatalf("a stream in the freed place: %v", err)
		}
		if err := cc.Write("to c"); err != nil {
			t.Fatal(err)
		}
		var s string
		if err := pt.Recv(t, got, "c's data").Decode(&s); err != nil || s != "to c" {
			t.Errorf("c got %q (%v)", s, err)
		}
	})
}
