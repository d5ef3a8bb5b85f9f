package primus_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/emitter"
	"github.com/go-primus/primus/internal/tcpproxy"
	"github.com/go-primus/primus/multiplex"
	"github.com/go-primus/primus/plugin"
	"github.com/go-primus/primus/substream"
)

// TestRecoveryPlugins: a multiplex channel, emitter acknowledgements in
// flight both ways and a substream keep working across a drop, without
// loss: what was written during the gap arrives once, the acks resolve,
// and nothing is subscribed or created again.
func TestRecoveryPlugins(t *testing.T) {
	t.Parallel()
	events, mx, streams := emitter.New(nil), multiplex.New(nil), substream.New(nil)
	h := startServer(t, wsJSON, &primus.Options{
		Plugins:  []plugin.Plugin{mx, events, streams},
		Recovery: &primus.Recovery{Window: time.Minute},
	})
	proxy := tcpproxy.New(t, h.ts.Listener.Addr().String())

	var chatSubscriptions atomic.Int32
	chatSparks := make(chan *multiplex.Spark, 4)
	mx.Channel("chat").OnConnection(func(cs *multiplex.Spark) {
		chatSubscriptions.Add(1)
		chatSparks <- cs
	})
	held := make(chan *emitter.Event, 1)
	events.On("slow", func(ev *emitter.Event) { held <- ev }) // acknowledged later
	type conn struct {
		sp *primus.Spark
		s1 *substream.Stream
	}
	conns := make(chan conn, 4)
	dropped := make(chan struct{}, 4)
	h.srv.OnConnection(func(sp *primus.Spark) {
		s1, err := streams.Stream(sp, "s1", nil)
		if err != nil {
			t.Error(err)
		}
		sp.OnDrop(func(error) { dropped <- struct{}{} })
		conns <- conn{sp, s1}
	})

	ec, mc, sc := emitter.NewClient(nil), multiplex.NewClient(), substream.NewClient()
	ec.On("question", func(ev *emitter.Event) {
		var q string
		_ = ev.Args.Decode(&q)
		_ = ev.Ack("answer to " + q)
	})
	rs := &recoveryServer{harness: h}
	c := rs.dial(t, "", &primus.ClientOptions{
		Plugins:   []plugin.Plugin{mc, ec, sc},
		Reconnect: primus.Backoff{Min: 300 * time.Millisecond, Max: 300 * time.Millisecond, Retries: 10},
	}, proxy)
	chatGot, s1Got := newEvents[string](), newEvents[string]()
	if _, err := mc.Channel("chat", &multiplex.ChannelOptions{OnData: func(m *primus.Message) { chatGot.push(decodeAs[string](t, m)) }}); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Stream("s1", &substream.StreamOptions{OnData: func(m *primus.Message) { s1Got.push(decodeAs[string](t, m)) }}); err != nil {
		t.Fatal(err)
	}
	cs := waitFor(t, chatSparks, "the chat subscription")
	cn := waitFor(t, conns, "the spark")

	// An acknowledgement the client waits for, in flight across the drop.
	clientAck := make(chan string, 1)
	if err := ec.SendAckFunc(context.Background(), "slow", func(reply emitter.Args, err error) {
		if err != nil {
			t.Errorf("the client's ack: %v", err)
			clientAck <- ""
			return
		}
		var s string
		_ = reply.Decode(&s)
		clientAck <- s
	}, "please"); err != nil {
		t.Fatal(err)
	}
	ev := waitFor(t, held, "the slow event")

	proxy.Kill(false)
	waitFor(t, dropped, "the drop")
	// During the gap: the server acknowledges, asks, and writes on the
	// channel and the substream.
	if err := ev.Ack("done late"); err != nil {
		t.Fatal(err)
	}
	serverAck := make(chan string, 1)
	if err := events.SendAckFunc(context.Background(), cn.sp, "question", func(reply emitter.Args, err error) {
		if err != nil {
			t.Errorf("the server's ack: %v", err)
			serverAck <- ""
			return
		}
		var s string
		_ = reply.Decode(&s)
		serverAck <- s
	}, "life"); err != nil {
		t.Fatal(err)
	}
	if err := cs.Write("gap on chat"); err != nil {
		t.Fatal(err)
	}
	if err := cn.s1.Write("gap on s1"); err != nil {
		t.Fatal(err)
	}

	if got := waitFor(t, clientAck, "the client's ack after the resume"); got != "done late" {
		t.Errorf("client's ack %q, want %q", got, "done late")
	}
	if got := waitFor(t, serverAck, "the server's ack after the resume"); got != "answer to life" {
		t.Errorf("server's ack %q, want %q", got, "answer to life")
	}
	if got := chatGot.next(t, "the gap's chat message"); got != "gap on chat" {
		t.Errorf("chat got %q", got)
	}
	if got := s1Got.next(t, "the gap's substream message"); got != "gap on s1" {
		t.Errorf("s1 got %q", got)
	}
	// Still working, and nothing twice, nothing subscribed again.
	if err := cs.Write("after"); err != nil {
		t.Fatal(err)
	}
	if got := chatGot.next(t, "a chat message after the resume"); got != "after" {
		t.Errorf("chat got %q after the resume, want \"after\" (a duplicate?)", got)
	}
	if n := chatSubscriptions.Load(); n != 1 {
		t.Errorf("the chat channel was subscribed %d times, want 1", n)
	}
	if n := s1Got.total(); n != 1 {
		t.Errorf("s1 got %d messages, want 1", n)
	}
	if id := c.id(); id != cn.sp.ID() {
		t.Errorf("client id %s, spark %s", id, cn.sp.ID())
	}
}
