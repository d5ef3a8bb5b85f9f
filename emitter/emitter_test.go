package emitter_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/emitter"
	"github.com/go-primus/primus/internal/leakcheck"
	pt "github.com/go-primus/primus/internal/plugintest"
	"github.com/go-primus/primus/plugin"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// pair is a server with an emitter and one Go client with an emitter.
type pair struct {
	srv    *primus.Server
	url    string
	em     *emitter.Emitter
	ec     *emitter.Client
	client *primus.Client
	spark  *primus.Spark
	data   chan *primus.Message // client data that the plugin passed on
	sdata  chan *primus.Message // server data that the plugin passed on
}

// setup starts the pair; register handlers in before, which runs before the
// server accepts connections and before the client dials.
func setup(t *testing.T, fl pt.Flavour, sopts, copts *emitter.Options, before func(p *pair)) *pair {
	t.Helper()
	p := &pair{
		em:    emitter.New(sopts),
		ec:    emitter.NewClient(copts),
		data:  make(chan *primus.Message, 16),
		sdata: make(chan *primus.Message, 16),
	}
	p.srv, p.url = pt.Serve(t, fl, &primus.Options{Plugins: []plugin.Plugin{p.em}})
	sparks := pt.Sparks(p.srv)
	p.srv.OnConnection(func(sp *primus.Spark) { sp.OnData(func(m *primus.Message) { p.sdata <- m }) })
	if before != nil {
		before(p)
	}
	p.client = pt.Dial(t, fl, p.url, &primus.ClientOptions{
		Plugins: []plugin.Plugin{p.ec},
		OnData:  func(m *primus.Message) { p.data <- m },
	})
	p.spark = pt.Recv(t, sparks, "the spark")
	return p
}

func ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), pt.Timeout)
	t.Cleanup(cancel)
	return ctx
}

func TestEventsBothWays(t *testing.T) {
	t.Parallel()
	pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
		type point struct {
			X int    `json:"x" cbor:"x"`
			Y string `json:"y" cbor:"y"`
		}
		got := make(chan *emitter.Event, 4)
		typed := make(chan point, 1)
		p := setup(t, fl, nil, nil, func(p *pair) {
			p.em.On("hello", func(ev *emitter.Event) { got <- ev })
			emitter.On(p.em, "point", func(ev *emitter.Event, v point) { typed <- v })
			p.ec.On("welcome", func(ev *emitter.Event) { got <- ev })
		})

		// Client to server: several arguments of several types.
		if err := p.ec.Send("hello", "a", 2, map[string]any{"b": []int{1}}, nil); err != nil {
			t.Fatal(err)
		}
		ev := pt.Recv(t, got, "the hello event")
		var (
			s string
			n int
			o map[string][]int
		)
		if err := ev.Args.Decode(&s, &n, &o); err != nil {
			t.Fatal(err)
		}
		if ev.Name != "hello" || len(ev.Args) != 4 || s != "a" || n != 2 || o["b"][0] != 1 {
			t.Errorf("event %q with %d args: %q %d %v", ev.Name, len(ev.Args), s, n, o)
		}
		if ev.Spark != p.spark {
			t.Errorf("Event.Spark is %v, want the client's spark", ev.Spark)
		}
		if ev.AckRequested() {
			t.Error("AckRequested without an ack")
		}
		if err := ev.Ack("ignored"); err != nil {
			t.Errorf("Ack without a request = %v, want nil", err)
		}

		// Typed handler.
		if err := p.ec.Send("point", point{3, "z"}); err != nil {
			t.Fatal(err)
		}
		if v := pt.Recv(t, typed, "the typed event"); v != (point{3, "z"}) {
			t.Errorf("typed event %+v", v)
		}

		// Server to client, and an argument forwarded raw.
		if err := p.em.Send(p.spark, "welcome", ev.Args[0].Raw(), point{1, "p"}); err != nil {
			t.Fatal(err)
		}
		ev = pt.Recv(t, got, "the welcome event")
		var q point
		if err := ev.Args.Decode(&s, &q); err != nil || s != "a" || q != (point{1, "p"}) || ev.Spark != nil {
			t.Errorf("welcome: %q %+v %v (Spark %v)", s, q, err, ev.Spark)
		}

		// Emitter packets never reach data handlers; other data does.
		if err := p.client.Write("plain"); err != nil {
			t.Fatal(err)
		}
		if m := pt.Recv(t, p.sdata, "plain server data"); !decodes(m, "plain") {
			t.Errorf("server data %q, want the plain string", m.Bytes())
		}
		if len(p.data) != 0 || len(p.sdata) != 0 {
			t.Errorf("emitter packets reached data handlers: %d client, %d server", len(p.data), len(p.sdata))
		}
	})
}

func decodes(m *primus.Message, want string) bool {
	var s string
	return m.Decode(&s) == nil && s == want
}

func TestAcks(t *testing.T) {
	t.Parallel()
	pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
		p := setup(t, fl, nil, nil, func(p *pair) {
			p.em.On("double", func(ev *emitter.Event) {
				var n int
				_ = ev.Args.Decode(&n)
				if err := ev.Ack(n*2, "server"); err != nil {
					t.Errorf("Ack: %v", err)
				}
				if err := ev.Ack(0); !errors.Is(err, emitter.ErrAcked) {
					t.Errorf("second Ack = %v, want ErrAcked", err)
				}
			})
			p.ec.On("triple", func(ev *emitter.Event) {
				var n int
				_ = ev.Args.Decode(&n)
				go func() { _ = ev.Ack(n * 3) }() // later, from another goroutine
			})
			p.em.On("empty", func(ev *emitter.Event) { _ = ev.Ack() })
		})

		reply, err := p.ec.SendAck(ctx(t), "double", 21)
		var n int
		var who string
		if err == nil {
			err = reply.Decode(&n, &who)
		}
		if err != nil || n != 42 || who != "server" {
			t.Fatalf("client SendAck: %d %q %v", n, who, err)
		}
		if n, err := emitter.Result[int](p.em.SendAck(ctx(t), p.spark, "triple", 5)); err != nil || n != 15 {
			t.Fatalf("server SendAck: %d %v", n, err)
		}
		if reply, err := p.ec.SendAck(ctx(t), "empty"); err != nil || len(reply) != 0 {
			t.Fatalf("empty ack: %v %v", reply, err)
		}

		// 25 acknowledgements in flight at once, in both directions.
		const inFlight = 25
		var wg sync.WaitGroup
		errs := make(chan error, 2*inFlight)
		for i := range inFlight {
			wg.Add(2)
			go func() {
				defer wg.Done()
				n, err := emitter.Result[int](p.ec.SendAck(ctx(t), "double", i))
				if err == nil && n != 2*i {
					err = fmt.Errorf("double(%d) = %d", i, n)
				}
				errs <- err
			}()
			go func() {
				defer wg.Done()
				n, err := emitter.Result[int](p.em.SendAck(ctx(t), p.spark, "triple", i))
				if err == nil && n != 3*i {
					err = fmt.Errorf("triple(%d) = %d", i, n)
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
	})
}

// TestAcksInFlightAtOnce checks that 25 acknowledgements are really pending
// together: the handler holds every event until all 25 have arrived, and only
// then answers them, in reverse order.
func TestAcksInFlightAtOnce(t *testing.T) {
	t.Parallel()
	pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
		const inFlight = 25
		var mu sync.Mutex
		var held []*emitter.Event
		p := setup(t, fl, nil, nil, func(p *pair) {
			p.em.On("hold", func(ev *emitter.Event) {
				mu.Lock()
				defer mu.Unlock()
				held = append(held, ev)
				if len(held) == inFlight {
					for i := len(held) - 1; i >= 0; i-- {
						_ = held[i].Ack(held[i].Args[0].Raw())
					}
				}
			})
		})
		results := make(chan error, inFlight)
		for i := range inFlight {
			err := p.ec.SendAckFunc(ctx(t), "hold", func(reply emitter.Args, err error) {
				var n int
				if err == nil {
					err = reply.Decode(&n)
				}
				if err == nil && n != i {
					err = fmt.Errorf("ack for %d carried %d", i, n)
				}
				results <- err
			}, i)
			if err != nil {
				t.Fatal(err)
			}
		}
		for range inFlight {
			if err := pt.Recv(t, results, "an acknowledgement"); err != nil {
				t.Error(err)
			}
		}
	})
}

func TestAckTimeoutAndCancel(t *testing.T) {
	t.Parallel()
	pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
		p := setup(t, fl, &emitter.Options{AckTimeout: 50 * time.Millisecond}, &emitter.Options{AckTimeout: -1}, func(p *pair) {
			p.em.On("never", func(*emitter.Event) {})
			p.ec.On("never", func(*emitter.Event) {})
		})
		start := time.Now()
		if _, err := p.em.SendAck(context.Background(), p.spark, "never"); !errors.Is(err, emitter.ErrAckTimeout) {
			t.Errorf("server SendAck = %v, want ErrAckTimeout", err)
		}
		if d := time.Since(start); d < 50*time.Millisecond {
			t.Errorf("timed out after %v, before AckTimeout", d)
		}
		// The context's own deadline ends the wait with its error.
		c, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		if _, err := p.ec.SendAck(c, "never"); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("client SendAck = %v, want context.DeadlineExceeded", err)
		}
		c, cancel = context.WithCancel(context.Background())
		cancel()
		if _, err := p.ec.SendAck(c, "never"); !errors.Is(err, context.Canceled) {
			t.Errorf("client SendAck with a cancelled context = %v, want context.Canceled", err)
		}
		// A late acknowledgement, after the timeout, is consumed and
		// ignored: it answers nothing else.
		late := make(chan *emitter.Event, 1)
		p.em.On("late", func(ev *emitter.Event) { late <- ev })
		p.em.On("echo", func(ev *emitter.Event) { _ = ev.Ack(ev.Args.Raw()...) })
		c, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if _, err := p.ec.SendAck(c, "late"); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("SendAck = %v, want context.DeadlineExceeded", err)
		}
		if err := pt.Recv(t, late, "the late event").Ack("too late"); err != nil {
			t.Fatal(err)
		}
		if s, err := emitter.Result[string](p.ec.SendAck(ctx(t), "echo", "mine")); err != nil || s != "mine" {
			t.Errorf("SendAck after a late acknowledgement: %q %v", s, err)
		}
		if len(p.data) != 0 {
			t.Error("the late acknowledgement reached the data handler")
		}
	})
}

func TestDisconnectEndsWaits(t *testing.T) {
	t.Parallel()
	pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
		arrived := make(chan struct{}, 2)
		p := setup(t, fl, nil, nil, func(p *pair) {
			p.ec.On("never", func(*emitter.Event) { arrived <- struct{}{} })
			p.em.On("never", func(*emitter.Event) { arrived <- struct{}{} })
		})
		// Server side: the spark goes away before the client answers.
		done := make(chan error, 1)
		if err := p.em.SendAckFunc(ctx(t), p.spark, "never", func(_ emitter.Args, err error) { done <- err }); err != nil {
			t.Fatal(err)
		}
		pt.Recv(t, arrived, "the event on the client")
		// Client side: its wait ends when the connection is lost.
		cdone := make(chan error, 1)
		if err := p.ec.SendAckFunc(ctx(t), "never", func(_ emitter.Args, err error) { cdone <- err }); err != nil {
			t.Fatal(err)
		}
		pt.Recv(t, arrived, "the event on the server")
		_ = p.spark.Close()
		if err := pt.Recv(t, done, "the server's wait"); !errors.Is(err, emitter.ErrDisconnected) {
			t.Errorf("server wait ended with %v, want ErrDisconnected", err)
		}
		if err := pt.Recv(t, cdone, "the client's wait"); !errors.Is(err, emitter.ErrDisconnected) {
			t.Errorf("client wait ended with %v, want ErrDisconnected", err)
		}
		// The gone spark refuses new waits.
		if _, err := p.em.SendAck(ctx(t), p.spark, "x"); !errors.Is(err, emitter.ErrDisconnected) {
			t.Errorf("SendAck on a closed spark = %v, want ErrDisconnected", err)
		}
	})
}

func TestReservedNames(t *testing.T) {
	t.Parallel()
	fl := pt.Flavours[0]
	p := setup(t, fl, nil, nil, nil)
	for _, name := range []string{"data", "end", "error", "open", "heartbeat", "reconnect scheduled",
		"subscribe", "incoming::data", "outgoing::x", "newListener", "removeListenerX", "toString", "__proto__"} {
		if err := p.ec.Send(name); !errors.Is(err, emitter.ErrReserved) {
			t.Errorf("client Send(%q) = %v, want ErrReserved", name, err)
		}
		if err := p.em.Send(p.spark, name); !errors.Is(err, emitter.ErrReserved) {
			t.Errorf("server Send(%q) = %v, want ErrReserved", name, err)
		}
		if err := p.em.Broadcast(name); !errors.Is(err, emitter.ErrReserved) {
			t.Errorf("Broadcast(%q) = %v, want ErrReserved", name, err)
		}
		if _, err := p.ec.SendAck(ctx(t), name); !errors.Is(err, emitter.ErrReserved) {
			t.Errorf("SendAck(%q) = %v, want ErrReserved", name, err)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("On(%q) did not panic", name)
				}
			}()
			p.em.On(name, func(*emitter.Event) {})
		}()
	}
}

// TestMalformedPacketsIgnored writes packets by hand: the emitter's own
// malformed ones are dropped, without a panic and without an answer; shapes
// that are not its packets pass on as data.
func TestMalformedPacketsIgnored(t *testing.T) {
	t.Parallel()
	pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
		got := make(chan *emitter.Event, 8)
		p := setup(t, fl, nil, nil, func(p *pair) {
			p.em.On("ok", func(ev *emitter.Event) { got <- ev })
			p.em.On("5", func(ev *emitter.Event) { got <- ev })
		})
		dropped := []any{
			map[string]any{"type": 0, "data": []any{}},
			map[string]any{"type": 0, "data": []any{5}},
			map[string]any{"type": 0, "data": []any{nil, 1}},
			map[string]any{"type": 0, "data": []any{"data", 1}, "id": 1}, // reserved
			map[string]any{"type": 0, "data": []any{"ok"}, "id": "7"},    // truthy id that is no number
			map[string]any{"type": 0, "data": []any{"nohandler"}, "id": 3},
			map[string]any{"type": 1, "data": []any{}, "id": 999},
			map[string]any{"type": 1, "data": []any{}},
			map[string]any{"type": 1, "data": []any{"x"}, "id": -1.5},
		}
		for _, v := range dropped {
			if err := p.client.Write(v); err != nil {
				t.Fatal(err)
			}
		}
		passed := []any{
			map[string]any{"type": 2, "data": []any{"ok"}},
			map[string]any{"type": 0, "data": "ok"},
			map[string]any{"type": "0", "data": []any{"ok"}},
			map[string]any{"data": []any{"ok"}},
		}
		for _, v := range passed {
			if err := p.client.Write(v); err != nil {
				t.Fatal(err)
			}
		}
		// A falsy id means no acknowledgement, as in primus-emitter.
		if err := p.client.Write(map[string]any{"type": 0, "data": []any{"ok", "first"}, "id": 0}); err != nil {
			t.Fatal(err)
		}
		ev := pt.Recv(t, got, "the event with id 0")
		if ev.AckRequested() {
			t.Error("an id of 0 asked for an acknowledgement")
		}
		for range passed {
			m := pt.Recv(t, p.sdata, "a non-emitter object as data")
			if _, err := m.Value(); err != nil {
				t.Error(err)
			}
		}
		// The connection still works, and none of the dropped packets
		// reached a handler before this event.
		if err := p.ec.Send("ok", "last"); err != nil {
			t.Fatal(err)
		}
		var s string
		if err := pt.Recv(t, got, "the last event").Args.Decode(&s); err != nil || s != "last" {
			t.Errorf("event after the dropped packets carries %q (%v), want \"last\"", s, err)
		}
		if len(p.sdata) != 0 || len(p.data) != 0 {
			t.Errorf("dropped packets reached data handlers or were answered")
		}
	})
}

func TestBroadcast(t *testing.T) {
	t.Parallel()
	pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
		em := emitter.New(nil)
		srv, url := pt.Serve(t, fl, &primus.Options{Plugins: []plugin.Plugin{em}})
		sparks := pt.Sparks(srv)
		got := make(chan string, 4)
		for i := range 3 {
			ec := emitter.NewClient(nil)
			emitter.On(ec, "news", func(_ *emitter.Event, s string) { got <- fmt.Sprint(i, s) })
			pt.Dial(t, fl, url, &primus.ClientOptions{Plugins: []plugin.Plugin{ec}})
			pt.Recv(t, sparks, "a spark")
		}
		if err := em.Broadcast("news", "flash"); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for range 3 {
			seen[pt.Recv(t, got, "the broadcast")] = true
		}
		if !seen["0flash"] || !seen["1flash"] || !seen["2flash"] {
			t.Errorf("broadcast reached %v", seen)
		}
	})
}

func TestSetUpOnce(t *testing.T) {
	t.Parallel()
	em := emitter.New(nil)
	if _, err := primus.New(&primus.Options{Plugins: []plugin.Plugin{em}}); err != nil {
		t.Fatal(err)
	}
	if _, err := primus.New(&primus.Options{Plugins: []plugin.Plugin{em}}); !errors.Is(err, emitter.ErrBound) {
		t.Errorf("second server with one emitter: %v, want ErrBound", err)
	}
	ec := emitter.NewClient(nil)
	if err := ec.Send("x"); !errors.Is(err, emitter.ErrUnbound) {
		t.Errorf("Send before set-up = %v, want ErrUnbound", err)
	}
	if err := emitter.New(nil).Broadcast("x"); !errors.Is(err, emitter.ErrUnbound) {
		t.Errorf("Broadcast before set-up = %v, want ErrUnbound", err)
	}
}

// TestMaxPendingAcks: over Options.MaxPendingAcks waits on one connection,
// SendAck and SendAckFunc refuse at once with ErrTooManyPending and send
// nothing; an answer makes room again. Both sides.
func TestMaxPendingAcks(t *testing.T) {
	t.Parallel()
	pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
		const max = 3
		held := make(chan *emitter.Event, 2*max+2)
		opts := &emitter.Options{MaxPendingAcks: max}
		p := setup(t, fl, opts, opts, func(p *pair) {
			p.em.On("hold", func(ev *emitter.Event) { held <- ev })
			p.ec.On("hold", func(ev *emitter.Event) { held <- ev })
		})
		type side struct {
			name    string
			send    func(f func(emitter.Args, error)) error
			sendAck func() error
			pending func() int
		}
		for _, s := range []side{
			{"server", func(f func(emitter.Args, error)) error {
				return p.em.SendAckFunc(ctx(t), p.spark, "hold", f)
			}, func() error {
				_, err := p.em.SendAck(ctx(t), p.spark, "hold")
				return err
			}, func() int { return p.em.Pending(p.spark) }},
			{"client", func(f func(emitter.Args, error)) error {
				return p.ec.SendAckFunc(ctx(t), "hold", f)
			}, func() error {
				_, err := p.ec.SendAck(ctx(t), "hold")
				return err
			}, p.ec.Pending},
		} {
			answered := make(chan error, max+1)
			for range max {
				if err := s.send(func(_ emitter.Args, err error) { answered <- err }); err != nil {
					t.Fatalf("%s: SendAckFunc within the bound: %v", s.name, err)
				}
			}
			if n := s.pending(); n != max {
				t.Errorf("%s: Pending = %d, want %d", s.name, n, max)
			}
			if err := s.send(func(emitter.Args, error) { t.Error("callback of a refused wait ran") }); !errors.Is(err, emitter.ErrTooManyPending) {
				t.Errorf("%s: SendAckFunc over the bound = %v, want ErrTooManyPending", s.name, err)
			}
			if err := s.sendAck(); !errors.Is(err, emitter.ErrTooManyPending) {
				t.Errorf("%s: SendAck over the bound = %v, want ErrTooManyPending", s.name, err)
			}
			// The peer got the events within the bound, and no more.
			evs := make([]*emitter.Event, max)
			for i := range evs {
				evs[i] = pt.Recv(t, held, "a held event")
			}
			if err := evs[0].Ack(); err != nil {
				t.Fatal(err)
			}
			if err := pt.Recv(t, answered, "an answer"); err != nil {
				t.Fatal(err)
			}
			if err := s.send(func(_ emitter.Args, err error) { answered <- err }); err != nil {
				t.Errorf("%s: SendAckFunc after an answer: %v", s.name, err)
			}
			evs = append(evs[1:], pt.Recv(t, held, "the event sent after the answer"))
			for _, ev := range evs {
				_ = ev.Ack()
			}
			for range max {
				if err := pt.Recv(t, answered, "an answer"); err != nil {
					t.Fatal(err)
				}
			}
			if n := s.pending(); n != 0 {
				t.Errorf("%s: Pending = %d after every answer", s.name, n)
			}
			if len(held) != 0 {
				t.Errorf("%s: a refused event was sent", s.name)
			}
		}
	})
}
