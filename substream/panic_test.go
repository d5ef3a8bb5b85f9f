package substream_test

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-primus/primus"
	pt "github.com/go-primus/primus/internal/plugintest"
	"github.com/go-primus/primus/plugin"
	"github.com/go-primus/primus/substream"
)

// panicCase is a stream whose handler panics, and what makes it run.
type panicCase struct {
	name    string
	opts    substream.StreamOptions
	trigger func(t *testing.T, st *substream.Stream)
}

func panicCases() []panicCase {
	return []panicCase{
		{"data handler", substream.StreamOptions{OnData: func(*primus.Message) { panic("boom") }}, func(t *testing.T, st *substream.Stream) {
			if err := st.Write("hi"); err != nil {
				t.Fatal(err)
			}
		}},
		{"end handler", substream.StreamOptions{OnEnd: func(error) { panic("boom") }}, func(t *testing.T, st *substream.Stream) {
			if err := st.End(); err != nil {
				t.Fatal(err)
			}
		}},
	}
}

// TestServerPanics: a panic in a server stream's handlers ends that
// connection with 1011 and a *primus.PanicError, the other streams of an
// ending connection still end, and other connections go on.
func TestServerPanics(t *testing.T) {
	t.Parallel()
	for _, c := range panicCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
				ss := substream.New(nil)
				panics := make(chan *primus.PanicError, 8)
				srv, url := pt.Serve(t, fl, &primus.Options{
					Plugins: []plugin.Plugin{ss},
					OnPanic: func(_ *primus.Spark, pe *primus.PanicError) {
						select {
						case panics <- pe:
						default:
						}
					},
				})
				sparks, ends := pt.Sparks(srv), pt.Ends(srv)
				victims := 0
				others := make(chan error, 4)
				srv.OnConnection(func(sp *primus.Spark) {
					if sp.Query().Get("victim") == "" {
						var echo *substream.Stream
						echo, _ = ss.Stream(sp, "x", &substream.StreamOptions{OnData: func(m *primus.Message) { _ = echo.Write(m.Raw()) }})
						return
					}
					victims++
					o := c.opts
					_, _ = ss.Stream(sp, "x", &o)
					_, _ = ss.Stream(sp, "other", &substream.StreamOptions{OnEnd: func(err error) { others <- err }})
				})
				bsc := substream.NewClient()
				pt.Dial(t, fl, url, &primus.ClientOptions{Plugins: []plugin.Plugin{bsc}})
				pt.Recv(t, sparks, "the bystander's spark")
				sc := substream.NewClient()
				ended := make(chan error, 1)
				pt.Dial(t, fl, url+"?victim=1", &primus.ClientOptions{
					Plugins:   []plugin.Plugin{sc},
					Reconnect: primus.Backoff{Min: 10 * time.Millisecond, Retries: -1},
					OnEnd:     func(err error) { ended <- err },
				})
				victim := pt.Recv(t, sparks, "the victim's spark")
				st, err := sc.Stream("x", nil)
				if err != nil {
					t.Fatal(err)
				}
				c.trigger(t, st)

				pt.IsPanic(t, pt.Recv(t, panics, "OnPanic"), "boom")
				end := pt.Recv(t, ends, "the victim's end")
				if end.Spark != victim {
					t.Fatalf("spark %s ended, not the victim's", end.Spark.ID())
				}
				pt.IsPanic(t, end.Reason, "boom")
				if err := pt.Recv(t, ended, "the victim client's end"); pt.CloseStatus(err) != 1011 {
					t.Errorf("the victim's connection ended with %v, want status 1011", err)
				}
				if err := pt.Recv(t, others, "the other stream's end"); !errors.Is(err, substream.ErrDisconnected) {
					t.Errorf("the other stream ended with %v, want ErrDisconnected", err)
				}
				// The bystander's stream still echoes.
				got := make(chan *primus.Message, 1)
				bx, err := bsc.Stream("x", &substream.StreamOptions{OnData: func(m *primus.Message) { got <- m }})
				if err != nil {
					t.Fatal(err)
				}
				if err := bx.Write("still here"); err != nil {
					t.Fatal(err)
				}
				var s string
				if err := pt.Recv(t, got, "the bystander's echo").Decode(&s); err != nil || s != "still here" {
					t.Errorf("echo %q (%v)", s, err)
				}
				if victims != 1 {
					t.Errorf("%d victim connections", victims)
				}
			})
		})
	}
}

// TestEndHandlersRunDespitePanics: when a connection ends, every stream
// ends and runs its end handlers, even when some of them panic.
func TestEndHandlersRunDespitePanics(t *testing.T) {
	t.Parallel()
	pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
		ss := substream.New(nil)
		srv, url := pt.Serve(t, fl, &primus.Options{Plugins: []plugin.Plugin{ss}})
		sparks := pt.Sparks(srv)
		pt.Dial(t, fl, url, nil)
		sp := pt.Recv(t, sparks, "the spark")
		var ran atomic.Int32
		var streams []*substream.Stream
		for i := range 16 {
			f := func(error) { ran.Add(1) }
			if i%2 == 1 {
				f = func(error) { ran.Add(1); panic("boom") }
			}
			st, err := ss.Stream(sp, string(rune('a'+i)), &substream.StreamOptions{OnEnd: f})
			if err != nil {
				t.Fatal(err)
			}
			streams = append(streams, st)
		}
		_ = sp.Close()
		for _, st := range streams {
			pt.Recv(t, st.Done(), "a stream's end")
		}
		if n := ran.Load(); n != 16 {
			t.Errorf("%d end handlers ran, want 16", n)
		}
	})
}

// TestClientPanics: a panic in a client stream's handlers ends the Go
// client with the *primus.PanicError; the server goes on.
func TestClientPanics(t *testing.T) {
	t.Parallel()
	for _, c := range panicCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
				ss := substream.New(nil)
				srv, url := pt.Serve(t, fl, &primus.Options{Plugins: []plugin.Plugin{ss}})
				sparks := pt.Sparks(srv)
				sc := substream.NewClient()
				ended := make(chan error, 1)
				pt.Dial(t, fl, url, &primus.ClientOptions{Plugins: []plugin.Plugin{sc}, OnEnd: func(err error) { ended <- err }})
				sp := pt.Recv(t, sparks, "the spark")
				o := c.opts
				if _, err := sc.Stream("x", &o); err != nil {
					t.Fatal(err)
				}
				st, err := ss.Stream(sp, "x", nil)
				if err != nil {
					t.Fatal(err)
				}
				c.trigger(t, st)
				pt.IsPanic(t, pt.Recv(t, ended, "the client's end"), "boom")
				pt.Recv(t, sp.Done(), "the spark's end")
			})
		})
	}
}
