package multiplex_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/emitter"
	"github.com/go-primus/primus/internal/leakcheck"
	pt "github.com/go-primus/primus/internal/plugintest"
	"github.com/go-primus/primus/multiplex"
	"github.com/go-primus/primus/plugin"
	"github.com/go-primus/primus/substream"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// server is a primus server with the multiplex plugin: channel "chat"
// echoes to the same subscription, "news" writes to all its subscribers,
// and plain data is echoed on the connection (the tests use it as a barrier:
// what the server wrote before the echo has arrived when the echo does).
type server struct {
	srv    *primus.Server
	url    string
	mx     *multiplex.Multiplex
	chat   *multiplex.Channel
	news   *multiplex.Channel
	subs   chan *multiplex.Spark // every new subscription, any channel
	unsubs chan *multiplex.Spark
	ends   chan error // the end reasons of subscriptions
	sparks <-chan *primus.Spark
}

func startServer(t *testing.T, fl pt.Flavour) *server {
	t.Helper()
	s := &server{
		mx:     multiplex.New(nil),
		subs:   make(chan *multiplex.Spark, 64),
		unsubs: make(chan *multiplex.Spark, 64),
		ends:   make(chan error, 64),
	}
	s.chat, s.news = s.mx.Channel("chat"), s.mx.Channel("news")
	for _, ch := range []*multiplex.Channel{s.chat, s.news} {
		ch.OnConnection(func(cs *multiplex.Spark) {
			cs.OnEnd(func(reason error) { s.ends <- reason })
			cs.OnData(func(m *primus.Message) {
				if ch == s.chat {
					_ = cs.Write(m.Raw())
				} else {
					_ = ch.Write(m.Raw())
				}
			})
			s.subs <- cs
		})
		ch.OnDisconnection(func(cs *multiplex.Spark) { s.unsubs <- cs })
	}
	s.srv, s.url = pt.Serve(t, fl, &primus.Options{Plugins: []plugin.Plugin{s.mx}})
	s.sparks = pt.Sparks(s.srv)
	s.srv.OnConnection(func(sp *primus.Spark) {
		sp.OnData(func(m *primus.Message) { _ = sp.Write(m.Raw()) })
	})
	return s
}

// client is a Go client with the multiplex plugin.
type client struct {
	*primus.Client
	mc   *multiplex.Client
	data chan *primus.Message // what the plugin passed on
}

func (s *server) dial(t *testing.T, fl pt.Flavour, opts *primus.ClientOptions) *client {
	t.Helper()
	var o primus.ClientOptions
	if opts != nil {
		o = *opts
	}
	c := &client{mc: multiplex.NewClient(), data: make(chan *primus.Message, 64)}
	o.Plugins = append(o.Plugins, c.mc)
	o.OnData = func(m *primus.Message) { c.data <- m }
	c.Client = pt.Dial(t, fl, s.url, &o)
	return c
}

// barrier writes plain data and waits for its echo.
func (c *client) barrier(t *testing.T) {
	t.Helper()
	if err := c.Write("barrier"); err != nil {
		t.Fatal(err)
	}
	m := pt.Recv(t, c.data, "the barrier's echo")
	var s string
	if m.Decode(&s) != nil || s != "barrier" {
		t.Fatalf("data %q reached the client before the barrier", m.Bytes())
	}
}

// channel is a client channel whose events are recorded.
type channel struct {
	*multiplex.ClientChannel
	data chan *primus.Message
	end  chan error
}

func open(t *testing.T, c *client, name string, plugins ...plugin.Plugin) *channel {
	t.Helper()
	ch := &channel{data: make(chan *primus.Message, 256), end: make(chan error, 1)}
	var err error
	ch.ClientChannel, err = c.mc.Channel(name, &multiplex.ChannelOptions{
		OnData:  func(m *primus.Message) { ch.data <- m },
		OnEnd:   func(reason error) { ch.end <- reason },
		Plugins: plugins,
	})
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func (ch *channel) expect(t *testing.T, want any) {
	t.Helper()
	m := pt.Recv(t, ch.data, fmt.Sprintf("%v on channel %s", want, ch.Name()))
	var got any
	if err := m.Decode(&got); err != nil {
		t.Fatalf("decode %q: %v", m.Bytes(), err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("channel %s got %v (%q), want %v", ch.Name(), got, m.Bytes(), want)
	}
}

func TestChatAndNews(t *testing.T) {
	t.Parallel()
	pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
		s := startServer(t, fl)
		a, b := s.dial(t, fl, nil), s.dial(t, fl, nil)

		chat := open(t, a, "chat")
		cs := pt.Recv(t, s.subs, "the chat subscription")
		if cs.Channel() != s.chat || cs.WireID() != chat.ID() {
			t.Errorf("subscription on %q with id %q, want chat/%q", cs.Channel().Name(), cs.WireID(), chat.ID())
		}
		if err := chat.Write("hello"); err != nil {
			t.Fatal(err)
		}
		chat.expect(t, "hello")

		// Two news subscriptions on one connection are distinct, plus one on
		// another connection: all three get each news message once.
		n1, n2, n3 := open(t, a, "news"), open(t, a, "news"), open(t, b, "news")
		for range 3 {
			pt.Recv(t, s.subs, "a news subscription")
		}
		if n1.ID() == n2.ID() {
			t.Fatal("two channel instances share an id")
		}
		if got := s.news.Count(); got != 3 {
			t.Errorf("news has %d subscriptions, want 3", got)
		}
		if err := n2.Write(map[string]any{"headline": "x"}); err != nil {
			t.Fatal(err)
		}
		for _, n := range []*channel{n1, n2, n3} {
			n.expect(t, map[string]any{"headline": "x"})
		}
		if err := s.news.Write("from the server"); err != nil {
			t.Fatal(err)
		}
		for _, n := range []*channel{n1, n2, n3} {
			n.expect(t, "from the server")
		}
		a.barrier(t)
		b.barrier(t)
		if len(chat.data)+len(n1.data)+len(n2.data)+len(n3.data) != 0 {
			t.Error("a channel got a message twice")
		}
		if len(a.data)+len(b.data) != 0 {
			t.Error("multiplex packets reached the data handler")
		}
	})
}

func TestFalsyPayloads(t *testing.T) {
	t.Parallel()
	pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
		s := startServer(t, fl)
		c := s.dial(t, fl, nil)
		chat := open(t, c, "chat")
		pt.Recv(t, s.subs, "the subscription")
		for _, v := range []any{0, "", false, nil, []any{}, map[string]any{}} {
			if err := chat.Write(v); err != nil {
				t.Fatal(err)
			}
			m := pt.Recv(t, chat.data, fmt.Sprintf("the echo of %#v", v))
			var got any
			if err := m.Decode(&got); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(v) || (v == nil) != (got == nil) {
				t.Errorf("falsy payload %#v came back as %#v", v, got)
			}
		}
		// The npm client drops falsy payloads: [0, id, name] arrives as null.
		if err := c.Write([]any{0, chat.ID(), "chat"}); err != nil {
			t.Fatal(err)
		}
		if m := pt.Recv(t, chat.data, "the echo of a payload-less message"); !isNull(m) {
			t.Errorf("payload-less message echoed as %q, want null", m.Bytes())
		}
	})
}

func isNull(m *primus.Message) bool {
	var v any = "not null"
	return m.Decode(&v) == nil && v == nil
}

func TestOrderPerChannel(t *testing.T) {
	t.Parallel()
	pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
		s := startServer(t, fl)
		c := s.dial(t, fl, nil)
		chans := []*channel{open(t, c, "chat"), open(t, c, "chat"), open(t, c, "news")}
		for range chans {
			pt.Recv(t, s.subs, "a subscription")
		}
		const n = 100
		for i := range n {
			for j, ch := range chans {
				if err := ch.Write(fmt.Sprintf("%d-%d", j, i)); err != nil {
					t.Fatal(err)
				}
			}
		}
		for j, ch := range chans {
			for i := range n {
				ch.expect(t, fmt.Sprintf("%d-%d", j, i))
			}
		}
	})
}

func TestEndFromEachSide(t *testing.T) {
	t.Parallel()
	pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
		s := startServer(t, fl)
		c := s.dial(t, fl, nil)

		// The client ends its channel: the server's subscription ends with
		// a nil reason, and the connection lives on.
		a := open(t, c, "chat")
		sa := pt.Recv(t, s.subs, "the first subscription")
		if err := a.End(); err != nil {
			t.Fatal(err)
		}
		if err := pt.Recv(t, a.end, "the client channel's end"); err != nil {
			t.Errorf("client end reason %v, want nil", err)
		}
		if err := pt.Recv(t, s.ends, "the server subscription's end"); err != nil {
			t.Errorf("server end reason %v, want nil", err)
		}
		if got := pt.Recv(t, s.unsubs, "the disconnection handler"); got != sa {
			t.Error("OnDisconnection got another subscription")
		}
		pt.Recv(t, sa.Done(), "Done")
		if err := a.Write("late"); !errors.Is(err, multiplex.ErrClosed) {
			t.Errorf("Write after End = %v, want ErrClosed", err)
		}
		if err := sa.Write("late"); !errors.Is(err, multiplex.ErrClosed) {
			t.Errorf("server Write after the client ended = %v, want ErrClosed", err)
		}
		if err := a.End(); !errors.Is(err, multiplex.ErrClosed) {
			t.Errorf("second End = %v, want ErrClosed", err)
		}
		if sa.Context().Err() == nil {
			t.Error("the ended subscription's context is not cancelled")
		}

		// The server ends a subscription: the client's channel ends with a
		// nil reason; another one on the same channel name lives on.
		b1, b2 := open(t, c, "chat"), open(t, c, "chat")
		sb1 := pt.Recv(t, s.subs, "a subscription")
		pt.Recv(t, s.subs, "another subscription")
		if sb1.WireID() != b1.ID() {
			b1, b2 = b2, b1
		}
		if err := sb1.End(); err != nil {
			t.Fatal(err)
		}
		if err := pt.Recv(t, b1.end, "the client channel's end"); err != nil {
			t.Errorf("client end reason %v, want nil", err)
		}
		if err := pt.Recv(t, s.ends, "the server subscription's end"); err != nil {
			t.Errorf("server end reason %v, want nil", err)
		}
		if err := sb1.End(); !errors.Is(err, multiplex.ErrClosed) {
			t.Errorf("second End = %v, want ErrClosed", err)
		}
		if err := b2.Write("still here"); err != nil {
			t.Fatal(err)
		}
		b2.expect(t, "still here")
		c.barrier(t)
		if len(c.data) != 0 || len(b1.data) != 0 {
			t.Error("unexpected data after the server ended a subscription")
		}
	})
}

// TestUnsubscribeSentOnce checks, with a client without the plugin that
// writes multiplex packets by hand and sees every frame, that the server
// sends one UNSUBSCRIBE when it ends a subscription and none when the client
// unsubscribes; and that a subscription to an unknown channel is refused
// with an UNSUBSCRIBE.
func TestUnsubscribeSentOnce(t *testing.T) {
	t.Parallel()
	fl := pt.Flavours[0]
	s := startServer(t, fl)
	frames := make(chan string, 16)
	c := pt.Dial(t, fl, s.url, &primus.ClientOptions{OnData: func(m *primus.Message) { frames <- string(m.Bytes()) }})
	expect := func(want string) {
		t.Helper()
		if got := pt.Recv(t, frames, want); got != want {
			t.Fatalf("frame %s, want %s", got, want)
		}
	}
	write := func(raw string) {
		t.Helper()
		if err := c.Write(primus.Raw(raw)); err != nil {
			t.Fatal(err)
		}
	}
	write(`[1,"abc","chat"]`)
	cs := pt.Recv(t, s.subs, "the subscription")
	write(`[0,"abc","chat","hi"]`)
	expect(`[0,"abc","chat","hi"]`)
	if err := cs.End(); err != nil {
		t.Fatal(err)
	}
	write(`"marker1"`)
	expect(`[2,"abc","chat"]`)
	expect(`"marker1"`)

	write(`[1,"def","chat"]`)
	pt.Recv(t, s.subs, "the second subscription")
	write(`[2,"def","chat"]`)
	pt.Recv(t, s.unsubs, "its end")
	write(`[2,"def","chat"]`) // a double UNSUBSCRIBE is ignored
	write(`"marker2"`)
	expect(`"marker2"`)

	write(`[1,"ghi","nochannel"]`)
	expect(`[2,"ghi","nochannel"]`)

	// Numbers are ids too; the answer carries the id as it came.
	write(`[1,7,"chat"]`)
	pt.Recv(t, s.subs, "the subscription with a numeric id")
	write(`[0,7,"chat",0]`)
	expect(`[0,7,"chat",0]`)
}

func TestMalformedPacketsIgnored(t *testing.T) {
	t.Parallel()
	pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
		s := startServer(t, fl)
		c := s.dial(t, fl, nil)
		chat := open(t, c, "chat")
		pt.Recv(t, s.subs, "the subscription")
		// Multiplex packets that answer nothing: dropped without a reply.
		for _, v := range []any{
			[]any{0, "nope", "chat", "for no subscription"},
			[]any{2, "nope", "chat"},
			[]any{0, chat.ID(), "news", "right id, wrong channel"},
			[]any{1, chat.ID(), "chat"}, // duplicate subscription
		} {
			if err := c.Write(v); err != nil {
				t.Fatal(err)
			}
		}
		// Arrays that are not multiplex packets are data (echoed here).
		notMine := []any{
			[]any{5, "id", "chat"},
			[]any{0, "id"},
			[]any{0, map[string]any{}, "chat"},
			[]any{0, "id", 5, "x"},
			[]any{0, "id", "chat", "x", "extra"},
			[]any{"0", "id", "chat"},
			[]any{},
		}
		for _, v := range notMine {
			if err := c.Write(v); err != nil {
				t.Fatal(err)
			}
		}
		for range notMine {
			m := pt.Recv(t, c.data, "a non-multiplex array echoed as data")
			if _, err := m.Value(); err != nil {
				t.Error(err)
			}
		}
		if len(chat.data) != 0 || len(s.subs) != 0 {
			t.Error("a malformed packet reached a channel or subscribed")
		}
		// Packets from the server for instances the client does not have
		// are dropped by the client plugin.
		sp := pt.Recv(t, s.sparks, "the connection")
		for _, v := range []any{[]any{0, "x", "chat", "no such instance"}, []any{2, "x", "nochannel"}} {
			if err := sp.Write(v); err != nil {
				t.Fatal(err)
			}
		}
		c.barrier(t)
		if err := chat.Write("alive"); err != nil {
			t.Fatal(err)
		}
		chat.expect(t, "alive")
	})
}

// TestResubscribeAfterReconnect drops the connection: the client subscribes
// again with the same id before the channel writes queued while offline,
// and the old connection's close — held back here until the new
// subscription exists — does not end the new subscription.
func TestResubscribeAfterReconnect(t *testing.T) {
	t.Parallel()
	pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
		s := startServer(t, fl)
		var chatp atomic.Pointer[channel]
		offline := make(chan struct{}, 4)
		c := s.dial(t, fl, &primus.ClientOptions{OnReconnect: func(primus.ReconnectEvent) {
			// The client is offline now: these writes are queued.
			chat := chatp.Load()
			for i := range 3 {
				if err := chat.Write(fmt.Sprintf("queued-%d", i)); err != nil {
					t.Errorf("queued write: %v", err)
				}
			}
			offline <- struct{}{}
		}})
		chat := open(t, c, "chat")
		chatp.Store(chat)
		old := pt.Recv(t, s.subs, "the subscription")
		oldSpark := pt.Recv(t, s.sparks, "the connection")

		// Hold the old connection's end handlers (which run before the
		// plugin's Close hook) until the new subscription exists.
		release := make(chan struct{})
		var once sync.Once
		free := func() { once.Do(func() { close(release) }) }
		t.Cleanup(free) // before the server's shutdown, should the test fail
		oldSpark.OnEnd(func(error) { <-release })
		_ = oldSpark.Close()
		pt.Recv(t, offline, "the reconnect")
		fresh := pt.Recv(t, s.subs, "the new subscription")
		if fresh.WireID() != chat.ID() || fresh == old {
			t.Fatalf("resubscribed with id %q, want %q", fresh.WireID(), chat.ID())
		}
		for i := range 3 {
			chat.expect(t, fmt.Sprintf("queued-%d", i))
		}
		free()
		if err := pt.Recv(t, s.ends, "the old subscription's end"); !errors.Is(err, multiplex.ErrDisconnected) {
			t.Errorf("old subscription ended with %v, want ErrDisconnected", err)
		}
		pt.Recv(t, oldSpark.Done(), "the old connection's end")
		select {
		case <-fresh.Done():
			t.Fatal("the old connection's close ended the new subscription")
		default:
		}
		if err := chat.Write("after"); err != nil {
			t.Fatal(err)
		}
		chat.expect(t, "after")
		if len(chat.end) != 0 {
			t.Error("the client channel ended")
		}
	})
}

func TestConnectionEndEndsChannels(t *testing.T) {
	t.Parallel()
	pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
		s := startServer(t, fl)
		c := s.dial(t, fl, nil)
		a, b := open(t, c, "chat"), open(t, c, "news")
		pt.Recv(t, s.subs, "a subscription")
		pt.Recv(t, s.subs, "another subscription")
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		for _, ch := range []*channel{a, b} {
			if err := pt.Recv(t, ch.end, "a client channel's end"); !errors.Is(err, multiplex.ErrDisconnected) {
				t.Errorf("client channel ended with %v, want ErrDisconnected", err)
			}
		}
		for range 2 {
			if err := pt.Recv(t, s.ends, "a subscription's end"); !errors.Is(err, multiplex.ErrDisconnected) {
				t.Errorf("subscription ended with %v, want ErrDisconnected", err)
			}
		}
		if _, err := c.mc.Channel("chat", nil); !errors.Is(err, multiplex.ErrClosed) {
			t.Errorf("Channel after the client ended = %v, want ErrClosed", err)
		}
	})
}

// TestClientEndsWhileOffline: a client closed while it waits to reconnect
// still ends its channels.
func TestClientEndsWhileOffline(t *testing.T) {
	t.Parallel()
	fl := pt.Flavours[0]
	s := startServer(t, fl)
	reconnecting := make(chan struct{}, 1)
	c := s.dial(t, fl, &primus.ClientOptions{Reconnect: primus.Backoff{Min: time.Hour}, OnReconnect: func(primus.ReconnectEvent) {
		reconnecting <- struct{}{}
	}})
	a := open(t, c, "chat")
	pt.Recv(t, s.subs, "the subscription")
	_ = pt.Recv(t, s.sparks, "the connection").Close()
	pt.Recv(t, reconnecting, "the reconnect")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pt.Recv(t, a.end, "the channel's end"); !errors.Is(err, multiplex.ErrDisconnected) {
		t.Errorf("channel ended with %v, want ErrDisconnected", err)
	}
}

func TestEmitterOnChannel(t *testing.T) {
	t.Parallel()
	pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
		s := startServer(t, fl)
		ev := emitter.New(nil)
		room := s.mx.Channel("room")
		if err := room.Use(ev); err != nil {
			t.Fatal(err)
		}
		if err := room.Use(emitter.New(nil)); err == nil {
			t.Error("a second plugin named emitter on one channel was accepted")
		}
		plain := make(chan *primus.Message, 4)
		subs := make(chan *multiplex.Spark, 4)
		room.OnConnection(func(cs *multiplex.Spark) {
			cs.OnData(func(m *primus.Message) { plain <- m })
			subs <- cs
		})
		ev.On("msg", func(e *emitter.Event) {
			if _, ok := e.Spark.(*multiplex.Spark); !ok {
				t.Errorf("event spark %T, want *multiplex.Spark", e.Spark)
			}
			_ = e.Ack("got", e.Args[0].Raw())
		})

		c := s.dial(t, fl, nil)
		cev := emitter.NewClient(nil)
		asked := make(chan *emitter.Event, 1)
		cev.On("ask", func(e *emitter.Event) { asked <- e; _ = e.Ack(42) })
		ch := open(t, c, "room", cev)
		cs := pt.Recv(t, subs, "the room subscription")

		reply, err := cev.SendAck(context.Background(), "msg", "yo")
		var got, echoed string
		if err == nil {
			err = reply.Decode(&got, &echoed)
		}
		if err != nil || got != "got" || echoed != "yo" {
			t.Fatalf("ack over the channel: %q %q %v", got, echoed, err)
		}
		if n, err := emitter.Result[int](ev.SendAck(context.Background(), cs, "ask")); err != nil || n != 42 {
			t.Fatalf("server SendAck over the channel: %d %v", n, err)
		}
		pt.Recv(t, asked, "the ask event")
		if err := ev.Broadcast("all", 1); err != nil {
			t.Fatal(err)
		}
		// Plain channel data still reaches the channel's handlers.
		if err := ch.Write("plain"); err != nil {
			t.Fatal(err)
		}
		if m := pt.Recv(t, plain, "plain channel data"); string(m.Bytes()) == "" {
			t.Error("empty")
		}
		if len(ch.data) != 0 || len(plain) != 0 || len(c.data) != 0 {
			t.Error("emitter packets reached data handlers")
		}
		// The subscription's end ends waits on it.
		done := make(chan error, 1)
		cev.On("never", func(*emitter.Event) {})
		if err := ev.SendAckFunc(context.Background(), cs, "never", func(_ emitter.Args, err error) { done <- err }); err != nil {
			t.Fatal(err)
		}
		if err := ch.End(); err != nil {
			t.Fatal(err)
		}
		if err := pt.Recv(t, done, "the wait's end"); !errors.Is(err, emitter.ErrDisconnected) {
			t.Errorf("wait ended with %v, want ErrDisconnected", err)
		}
	})
}

// TestEmitterOnChannelWire checks the nesting on the wire: an emitter
// packet inside a multiplex packet, as the npm plugins send it.
func TestEmitterOnChannelWire(t *testing.T) {
	t.Parallel()
	fl := pt.Flavours[0]
	s := startServer(t, fl)
	ev := emitter.New(nil)
	room := s.mx.Channel("room")
	if err := room.Use(ev); err != nil {
		t.Fatal(err)
	}
	subs := make(chan *multiplex.Spark, 1)
	room.OnConnection(func(cs *multiplex.Spark) { subs <- cs })
	ev.On("msg", func(e *emitter.Event) { _ = e.Ack("ok") })
	frames := make(chan string, 16)
	c := pt.Dial(t, fl, s.url, &primus.ClientOptions{OnData: func(m *primus.Message) { frames <- string(m.Bytes()) }})
	if err := c.Write(primus.Raw(`[1,"ugoyorocyrp","room"]`)); err != nil {
		t.Fatal(err)
	}
	cs := pt.Recv(t, subs, "the subscription")
	if err := c.Write(primus.Raw(`[0,"ugoyorocyrp","room",{"type":0,"data":["msg","yo"],"id":1}]`)); err != nil {
		t.Fatal(err)
	}
	want := `[0,"ugoyorocyrp","room",{"id":1,"type":1,"data":["ok"]}]`
	if got := pt.Recv(t, frames, "the ack"); got != want {
		t.Errorf("frame %s, want %s", got, want)
	}
	if err := ev.Send(cs, "news", 1); err != nil {
		t.Fatal(err)
	}
	want = `[0,"ugoyorocyrp","room",{"type":0,"data":["news",1]}]`
	if got := pt.Recv(t, frames, "the event"); got != want {
		t.Errorf("frame %s, want %s", got, want)
	}
}

func TestSetUp(t *testing.T) {
	t.Parallel()
	mx := multiplex.New(nil)
	ch := mx.Channel("x")
	if mx.Channel("x") != ch {
		t.Error("Channel does not return the existing channel")
	}
	if err := ch.Use(emitter.New(nil)); !errors.Is(err, multiplex.ErrUnbound) {
		t.Errorf("Use before set-up = %v, want ErrUnbound", err)
	}
	if err := ch.Write("nobody"); err != nil {
		t.Errorf("Write to an empty channel = %v", err)
	}
	if _, err := primus.New(&primus.Options{Plugins: []plugin.Plugin{mx}}); err != nil {
		t.Fatal(err)
	}
	if _, err := primus.New(&primus.Options{Plugins: []plugin.Plugin{mx}}); !errors.Is(err, multiplex.ErrBound) {
		t.Errorf("second server: %v, want ErrBound", err)
	}
	if _, err := multiplex.NewClient().Channel("x", nil); !errors.Is(err, multiplex.ErrUnbound) {
		t.Errorf("Channel before set-up = %v, want ErrUnbound", err)
	}
}

// TestConcurrentUse writes, ends and broadcasts from many goroutines at
// once, for the race detector.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	fl := pt.Flavours[0]
	s := startServer(t, fl)
	c := s.dial(t, fl, nil)
	var wg sync.WaitGroup
	for range 8 {
		ch := open(t, c, "news")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				_ = ch.Write(i)
				_ = s.news.Write(i)
			}
			_ = ch.End()
		}()
	}
	wg.Wait()
	c.barrier(t)
}

// TestSubstreamOnChannel nests another plugin in a channel: substreams over
// one channel subscription, on both sides.
func TestSubstreamOnChannel(t *testing.T) {
	t.Parallel()
	pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
		s := startServer(t, fl)
		ss := substream.New(nil)
		files := s.mx.Channel("files")
		if err := files.Use(ss); err != nil {
			t.Fatal(err)
		}
		files.OnConnection(func(cs *multiplex.Spark) {
			var st *substream.Stream
			st, err := ss.Stream(cs, "logs", &substream.StreamOptions{
				OnData: func(m *primus.Message) { _ = st.Write(m.Raw()) },
			})
			if err != nil {
				t.Error(err)
			}
		})
		c := s.dial(t, fl, nil)
		sc := substream.NewClient()
		ch := open(t, c, "files", sc)
		logs := make(chan *primus.Message, 8)
		st, err := sc.Stream("logs", &substream.StreamOptions{OnData: func(m *primus.Message) { logs <- m }})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Write("line 1"); err != nil {
			t.Fatal(err)
		}
		m := pt.Recv(t, logs, "the echo over the channel's substream")
		var got string
		if err := m.Decode(&got); err != nil || got != "line 1" {
			t.Errorf("got %q (%v)", got, err)
		}
		if len(ch.data) != 0 {
			t.Error("the substream packet reached the channel's data handler")
		}
	})
}

// TestMaxSubscriptions: a subscription over the per-connection limit is
// refused with an UNSUBSCRIBE, and one frees a place when it ends.
func TestMaxSubscriptions(t *testing.T) {
	t.Parallel()
	fl := pt.Flavours[0]
	mx := multiplex.New(&multiplex.Options{MaxSubscriptions: 2})
	subs := make(chan *multiplex.Spark, 4)
	mx.Channel("chat").OnConnection(func(cs *multiplex.Spark) { subs <- cs })
	_, url := pt.Serve(t, fl, &primus.Options{Plugins: []plugin.Plugin{mx}})
	mc := multiplex.NewClient()
	pt.Dial(t, fl, url, &primus.ClientOptions{Plugins: []plugin.Plugin{mc}})
	ends := make(chan int, 4)
	for i := range 3 {
		if _, err := mc.Channel("chat", &multiplex.ChannelOptions{OnEnd: func(error) { ends <- i }}); err != nil {
			t.Fatal(err)
		}
	}
	first := pt.Recv(t, subs, "a subscription")
	pt.Recv(t, subs, "another subscription")
	if refused := pt.Recv(t, ends, "the refusal"); refused != 2 {
		t.Errorf("refused channel %d, want the third", refused)
	}
	if err := first.End(); err != nil {
		t.Fatal(err)
	}
	pt.Recv(t, ends, "the end of the first")
	if _, err := mc.Channel("chat", nil); err != nil {
		t.Fatal(err)
	}
	pt.Recv(t, subs, "a subscription in the freed place")
}
