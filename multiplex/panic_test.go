package multiplex_test

import (
	"context"
	"testing"
	"time"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/emitter"
	pt "github.com/go-primus/primus/internal/plugintest"
	"github.com/go-primus/primus/multiplex"
	"github.com/go-primus/primus/plugin"
)

// panicRig is a server with channel "x", whose handlers the test sets and
// which runs an emitter, and channel "ok", which echoes.
type panicRig struct {
	fl     pt.Flavour
	url    string
	x      *multiplex.Channel
	em     *emitter.Emitter // on "x"
	subs   chan *multiplex.Spark
	sparks <-chan *primus.Spark
	ends   <-chan pt.End
	panics chan *primus.PanicError
	gone   chan *multiplex.Spark // "x" disconnections
}

func newPanicRig(t *testing.T, fl pt.Flavour, setup func(r *panicRig)) *panicRig {
	t.Helper()
	r := &panicRig{fl: fl, subs: make(chan *multiplex.Spark, 8), panics: make(chan *primus.PanicError, 8), gone: make(chan *multiplex.Spark, 8)}
	mx := multiplex.New(nil)
	r.x = mx.Channel("x")
	mx.Channel("ok").OnConnection(func(cs *multiplex.Spark) {
		cs.OnData(func(m *primus.Message) { _ = cs.Write(m.Raw()) })
	})
	var srv *primus.Server
	srv, r.url = pt.Serve(t, fl, &primus.Options{
		Plugins: []plugin.Plugin{mx},
		OnPanic: func(_ *primus.Spark, pe *primus.PanicError) {
			select {
			case r.panics <- pe:
			default: // never block a spark's goroutine
			}
		},
	})
	r.em = emitter.New(&emitter.Options{AckTimeout: 20 * time.Millisecond})
	if err := r.x.Use(r.em); err != nil {
		t.Fatal(err)
	}
	r.x.OnDisconnection(func(cs *multiplex.Spark) { r.gone <- cs })
	r.sparks, r.ends = pt.Sparks(srv), pt.Ends(srv)
	r.x.OnConnection(func(cs *multiplex.Spark) { r.subs <- cs })
	if setup != nil {
		setup(r)
	}
	return r
}

// mpeer is a client of the rig with a channel "ok" and, for a victim, a
// channel "x" (options from the test, an emitter inside). A victim does not
// reconnect: its end tells how its connection was lost.
type mpeer struct {
	x     *multiplex.ClientChannel
	ec    *emitter.Client
	ok    *channel
	spark *primus.Spark
	lost  chan error
	ended chan error
}

func (r *panicRig) dial(t *testing.T, xopts *multiplex.ChannelOptions) *mpeer {
	t.Helper()
	p := &mpeer{ec: emitter.NewClient(&emitter.Options{AckTimeout: 20 * time.Millisecond}), lost: make(chan error, 8), ended: make(chan error, 1)}
	mc := multiplex.NewClient()
	c := &client{mc: mc, data: make(chan *primus.Message, 64)}
	o := &primus.ClientOptions{
		Plugins: []plugin.Plugin{mc},
		OnError: func(err error) { p.lost <- err },
		OnEnd:   func(err error) { p.ended <- err },
	}
	if xopts != nil {
		o.Reconnect = primus.Backoff{Min: 10 * time.Millisecond, Retries: -1}
	}
	c.Client = pt.Dial(t, r.fl, r.url, o)
	p.spark = pt.Recv(t, r.sparks, "the spark")
	p.ok = open(t, c, "ok")
	if xopts != nil {
		xo := *xopts
		xo.Plugins = append(xo.Plugins, p.ec)
		var err error
		if p.x, err = mc.Channel("x", &xo); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func (p *mpeer) works(t *testing.T) {
	t.Helper()
	if err := p.ok.Write("still here"); err != nil {
		t.Fatal(err)
	}
	p.ok.expect(t, "still here")
}

// TestServerPanics: a panic in a channel's handlers or in a plugin inside
// the channel, in the reading goroutine or in a timer's, ends the
// subscription's connection with 1011 and a *primus.PanicError; the rest
// of an ending subscription's handlers still run; the others go on.
func TestServerPanics(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		setup   func(r *panicRig)
		trigger func(t *testing.T, r *panicRig, v *mpeer, cs *multiplex.Spark)
	}{
		{"connection handler", func(r *panicRig) {
			r.x.OnConnection(func(*multiplex.Spark) { panic("boom") })
		}, nil},
		{"data handler", func(r *panicRig) {
			r.x.OnConnection(func(cs *multiplex.Spark) { cs.OnData(func(*primus.Message) { panic("boom") }) })
		}, func(t *testing.T, _ *panicRig, v *mpeer, _ *multiplex.Spark) {
			if err := v.x.Write("hi"); err != nil {
				t.Fatal(err)
			}
		}},
		{"end handler", func(r *panicRig) {
			r.x.OnConnection(func(cs *multiplex.Spark) { cs.OnEnd(func(error) { panic("boom") }) })
		}, func(t *testing.T, r *panicRig, v *mpeer, cs *multiplex.Spark) {
			if err := v.x.End(); err != nil {
				t.Fatal(err)
			}
			if gone := pt.Recv(t, r.gone, "the disconnection handler"); gone != cs {
				t.Error("another subscription ended")
			}
			pt.Recv(t, cs.Done(), "the subscription's Done")
		}},
		{"emitter ack timeout callback", nil, func(t *testing.T, r *panicRig, _ *mpeer, cs *multiplex.Spark) {
			if err := r.em.SendAckFunc(context.Background(), cs, "never", func(emitter.Args, error) { panic("boom") }); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
				r := newPanicRig(t, fl, c.setup)
				bystander := r.dial(t, nil)
				victim := r.dial(t, &multiplex.ChannelOptions{})
				cs := pt.Recv(t, r.subs, "the victim's subscription")
				if c.trigger != nil {
					c.trigger(t, r, victim, cs)
				}
				pt.IsPanic(t, pt.Recv(t, r.panics, "OnPanic"), "boom")
				end := pt.Recv(t, r.ends, "the victim's spark end")
				if end.Spark != victim.spark {
					t.Fatalf("spark %s ended, not the victim's", end.Spark.ID())
				}
				pt.IsPanic(t, end.Reason, "boom")
				if err := pt.Recv(t, victim.ended, "the victim's end"); pt.CloseStatus(err) != 1011 {
					t.Errorf("the victim lost its connection with %v, want status 1011", err)
				}
				bystander.works(t)
				if len(bystander.lost) != 0 {
					t.Errorf("the bystander lost its connection: %v", <-bystander.lost)
				}
			})
		})
	}
}

// TestClientPanics: a panic in a client channel's handlers or in a plugin
// inside it ends the Go client with the *primus.PanicError, and the server
// goes on.
func TestClientPanics(t *testing.T) {
	t.Parallel()
	boom := func(error) { panic("boom") }
	for _, c := range []struct {
		name    string
		opts    multiplex.ChannelOptions
		trigger func(t *testing.T, v *mpeer, cs *multiplex.Spark)
	}{
		{"data handler", multiplex.ChannelOptions{OnData: func(*primus.Message) { panic("boom") }},
			func(t *testing.T, _ *mpeer, cs *multiplex.Spark) {
				if err := cs.Write("hi"); err != nil {
					t.Fatal(err)
				}
			}},
		{"end handler", multiplex.ChannelOptions{OnEnd: boom}, func(t *testing.T, _ *mpeer, cs *multiplex.Spark) {
			if err := cs.End(); err != nil {
				t.Fatal(err)
			}
		}},
		{"emitter ack timeout callback", multiplex.ChannelOptions{}, func(t *testing.T, v *mpeer, _ *multiplex.Spark) {
			if err := v.ec.SendAckFunc(context.Background(), "never", func(emitter.Args, error) { panic("boom") }); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
				r := newPanicRig(t, fl, nil)
				bystander := r.dial(t, nil)
				victim := r.dial(t, &c.opts)
				cs := pt.Recv(t, r.subs, "the victim's subscription")
				c.trigger(t, victim, cs)
				pt.IsPanic(t, pt.Recv(t, victim.ended, "the victim's end"), "boom")
				if end := pt.Recv(t, r.ends, "the victim's spark end"); end.Spark != victim.spark {
					t.Errorf("spark %s ended, not the victim's", end.Spark.ID())
				}
				bystander.works(t)
				if len(bystander.lost) != 0 {
					t.Errorf("the bystander lost its connection: %v", <-bystander.lost)
				}
				if len(r.panics) != 0 {
					t.Error("a client's panic reached the server's OnPanic")
				}
			})
		})
	}
}
