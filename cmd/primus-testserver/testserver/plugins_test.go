package testserver_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/cmd/primus-testserver/testserver"
	"github.com/go-primus/primus/emitter"
	"github.com/go-primus/primus/internal/leakcheck"
	pt "github.com/go-primus/primus/internal/plugintest"
	"github.com/go-primus/primus/multiplex"
	"github.com/go-primus/primus/plugin"
	"github.com/go-primus/primus/substream"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// startServer runs the test server's behaviour in-process with the plugins
// of the -plugins flag value list.
func startServer(t *testing.T, fl pt.Flavour, list string) string {
	t.Helper()
	plugs, err := testserver.ParsePlugins(list)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := primus.New(&primus.Options{Parser: fl.Parser, Plugins: plugs.List()})
	if err != nil {
		t.Fatal(err)
	}
	testserver.Setup(srv)
	if err := plugs.Setup(srv); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), pt.Timeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		ts.Close()
	})
	return ts.URL + srv.Pathname()
}

// client is a Go client with every plugin's client side.
type client struct {
	*primus.Client
	ev   *emitter.Client
	mx   *multiplex.Client
	ss   *substream.Client
	data chan *primus.Message
	got  chan *emitter.Event // "pong", "question", "answer"
	open chan struct{}
}

func dial(t *testing.T, fl pt.Flavour, url string) *client {
	t.Helper()
	c := &client{
		ev:   emitter.NewClient(nil),
		mx:   multiplex.NewClient(),
		ss:   substream.NewClient(),
		data: make(chan *primus.Message, 64),
		got:  make(chan *emitter.Event, 16),
		open: make(chan struct{}, 16),
	}
	for _, name := range []string{"pong", "question", "answer"} {
		c.ev.On(name, func(ev *emitter.Event) {
			if ev.Name == "question" {
				var n int
				_ = ev.Args.Decode(&n)
				_ = ev.Ack(n + 1)
			}
			c.got <- ev
		})
	}
	c.Client = pt.Dial(t, fl, url, &primus.ClientOptions{
		Plugins: []plugin.Plugin{c.ss, c.ev, c.mx},
		OnData:  func(m *primus.Message) { c.data <- m },
		OnOpen:  func() { c.open <- struct{}{} },
	})
	pt.Recv(t, c.open, "open")
	return c
}

func (c *client) echo(t *testing.T, v any) {
	t.Helper()
	if err := c.Write(v); err != nil {
		t.Fatal(err)
	}
	expect(t, c.data, v)
}

func expect(t *testing.T, ch <-chan *primus.Message, want any) {
	t.Helper()
	m := pt.Recv(t, ch, fmt.Sprint(want))
	var got any
	if err := m.Decode(&got); err != nil {
		t.Fatalf("decode %q: %v", m.Bytes(), err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v (%q), want %v", got, m.Bytes(), want)
	}
}

func nextEvent(t *testing.T, c *client, name string, want any) *emitter.Event {
	t.Helper()
	ev := pt.Recv(t, c.got, "event "+name)
	var got any
	if err := ev.Args.Decode(&got); err != nil || ev.Name != name || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("event %s(%v) (%v), want %s(%v)", ev.Name, got, err, name, want)
	}
	return ev
}

// TestPluginItems runs items 9–11 with the Go client's plugins, for every
// plugin alone and for all three together, and checks that plain echo
// still works.
func TestPluginItems(t *testing.T) {
	t.Parallel()
	for _, list := range []string{"emitter", "multiplex", "substream", "emitter,multiplex,substream", "substream, multiplex ,emitter"} {
		t.Run(list, func(t *testing.T) {
			t.Parallel()
			pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
				plugs, _ := testserver.ParsePlugins(list)
				url := startServer(t, fl, list)
				c := dial(t, fl, url)
				c.echo(t, "plain")
				c.echo(t, []any{1, "two"})
				if plugs.Emitter != nil {
					t.Run("9-emitter", func(t *testing.T) { testEmitter(t, c, c.ev) })
				}
				if plugs.Multiplex != nil {
					t.Run("10-multiplex", func(t *testing.T) { testMultiplex(t, fl, url, c, plugs.Emitter != nil) })
				}
				if plugs.Substream != nil {
					t.Run("11-substream", func(t *testing.T) { testSubstream(t, c) })
				}
				c.echo(t, map[string]any{"still": "plain"})
				if len(c.data) != 0 {
					t.Errorf("%d plugin packets were echoed as data", len(c.data))
				}
			})
		})
	}
}

func testEmitter(t *testing.T, c *client, ev *emitter.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), pt.Timeout)
	defer cancel()
	payload := map[string]any{"a": []any{1.0, "b"}}
	reply, err := ev.SendAck(ctx, "echo", payload)
	var got any
	if err == nil {
		err = reply.Decode(&got)
	}
	if err != nil || fmt.Sprint(got) != fmt.Sprint(payload) {
		t.Fatalf("echo acknowledged with %v (%v)", got, err)
	}
	if err := ev.Send("ping-me", "hi"); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, c, "pong", "hi")
	if err := ev.Send("ask", 41); err != nil {
		t.Fatal(err)
	}
	q := nextEvent(t, c, "question", 41)
	if !q.AckRequested() {
		t.Error("question without an ack callback")
	}
	nextEvent(t, c, "answer", 42) // the client's handler acked 41+1
}

func testMultiplex(t *testing.T, fl pt.Flavour, url string, c *client, withEmitter bool) {
	open := func(c *client, name string, plugins ...plugin.Plugin) (*multiplex.ClientChannel, chan *primus.Message) {
		data := make(chan *primus.Message, 16)
		ch, err := c.mx.Channel(name, &multiplex.ChannelOptions{OnData: func(m *primus.Message) { data <- m }, Plugins: plugins})
		if err != nil {
			t.Fatal(err)
		}
		return ch, data
	}
	var chatEv *emitter.Client
	var plugins []plugin.Plugin
	if withEmitter {
		chatEv = emitter.NewClient(nil)
		plugins = append(plugins, chatEv)
	}
	chat, chatData := open(c, "chat", plugins...)
	for _, v := range []any{"hello", 0, false, ""} {
		if err := chat.Write(v); err != nil {
			t.Fatal(err)
		}
		expect(t, chatData, v)
	}
	other := dial(t, fl, url)
	_, n1 := open(c, "news")
	_, n2 := open(c, "news")
	n3ch, n3 := open(other, "news")
	// The subscriptions are in once the channel echoes on each.
	c.echo(t, "sync")
	other.echo(t, "sync")
	if err := n3ch.Write("extra"); err != nil {
		t.Fatal(err)
	}
	for _, d := range []chan *primus.Message{n1, n2, n3} {
		expect(t, d, "extra")
	}
	if withEmitter {
		ctx, cancel := context.WithTimeout(context.Background(), pt.Timeout)
		defer cancel()
		if s, err := emitter.Result[string](chatEv.SendAck(ctx, "echo", "over chat")); err != nil || s != "over chat" {
			t.Errorf("emitter over chat: %q %v", s, err)
		}
	}

	// A dropped connection: the channel subscribes again with its id and
	// works on the new connection.
	if err := c.Write(map[string]any{"cmd": "drop"}); err != nil {
		t.Fatal(err)
	}
	pt.Recv(t, c.open, "the reopening")
	if err := chat.Write("after drop"); err != nil {
		t.Fatal(err)
	}
	expect(t, chatData, "after drop")
	if err := chat.End(); err != nil {
		t.Fatal(err)
	}
	c.echo(t, "unsubscribed") // nothing (an UNSUBSCRIBE echo) came before
}

func testSubstream(t *testing.T, c *client) {
	data := make(chan *primus.Message, 256)
	ended := make(chan error, 1)
	s1, err := c.ss.Stream("s1", &substream.StreamOptions{
		OnData: func(m *primus.Message) { data <- m },
		OnEnd:  func(err error) { ended <- err },
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := s1.Write(i); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		expect(t, data, i)
	}
	if err := s1.End(); err != nil {
		t.Fatal(err)
	}
	if err := pt.Recv(t, ended, "the end"); err != nil {
		t.Fatal(err)
	}
	c.echo(t, "ended") // the end marker was not echoed
	// A new s1 on both sides.
	s1, err = c.ss.Stream("s1", &substream.StreamOptions{OnData: func(m *primus.Message) { data <- m }})
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.Write("again"); err != nil {
		t.Fatal(err)
	}
	expect(t, data, "again")
	select {
	case m := <-c.data:
		t.Fatalf("data %q after the new s1", m.Bytes())
	default:
	}
}

func TestParsePlugins(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		list string
		n    int
		ok   bool
	}{
		{"none", 0, true}, {"", 0, true}, {"emitter", 1, true}, {"multiplex,substream", 2, true},
		{"emitter,multiplex,substream", 3, true}, {"rooms", 0, false}, {"emitter,bogus", 0, false},
	} {
		p, err := testserver.ParsePlugins(tc.list)
		if (err == nil) != tc.ok || (err == nil && len(p.List()) != tc.n) {
			t.Errorf("ParsePlugins(%q) = %v, %v; want %d plugins, ok %v", tc.list, p, err, tc.n, tc.ok)
		}
	}
}

// TestPluginOrder registers the three plugins in every order: each sees only
// its own packets, whatever comes first, with traffic of all three and
// plain data interleaved on one connection.
func TestPluginOrder(t *testing.T) {
	t.Parallel()
	fl := pt.Flavours[0]
	orders := [][3]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}
	for _, order := range orders {
		t.Run(fmt.Sprint(order), func(t *testing.T) {
			t.Parallel()
			plugs, err := testserver.ParsePlugins("emitter,multiplex,substream")
			if err != nil {
				t.Fatal(err)
			}
			all := plugs.List()
			srv, url := pt.Serve(t, fl, &primus.Options{Plugins: []plugin.Plugin{all[order[0]], all[order[1]], all[order[2]]}})
			testserver.Setup(srv)
			if err := plugs.Setup(srv); err != nil {
				t.Fatal(err)
			}
			c := dial(t, fl, url)
			chatData := make(chan *primus.Message, 64)
			chat, err := c.mx.Channel("chat", &multiplex.ChannelOptions{OnData: func(m *primus.Message) { chatData <- m }})
			if err != nil {
				t.Fatal(err)
			}
			s1Data := make(chan *primus.Message, 64)
			s1, err := c.ss.Stream("s1", &substream.StreamOptions{OnData: func(m *primus.Message) { s1Data <- m }})
			if err != nil {
				t.Fatal(err)
			}
			acks := make(chan error, 20)
			for i := range 20 {
				if err := chat.Write(fmt.Sprint("c", i)); err != nil {
					t.Fatal(err)
				}
				if err := s1.Write(fmt.Sprint("s", i)); err != nil {
					t.Fatal(err)
				}
				if err := c.Write(fmt.Sprint("p", i)); err != nil {
					t.Fatal(err)
				}
				err := c.ev.SendAckFunc(context.Background(), "echo", func(reply emitter.Args, err error) {
					var n int
					if err == nil {
						err = reply.Decode(&n)
					}
					if err == nil && n != i {
						err = fmt.Errorf("ack %d for %d", n, i)
					}
					acks <- err
				}, i)
				if err != nil {
					t.Fatal(err)
				}
			}
			for i := range 20 {
				expect(t, chatData, fmt.Sprint("c", i))
				expect(t, s1Data, fmt.Sprint("s", i))
				expect(t, c.data, fmt.Sprint("p", i))
				if err := pt.Recv(t, acks, "an ack"); err != nil {
					t.Error(err)
				}
			}
		})
	}
}
