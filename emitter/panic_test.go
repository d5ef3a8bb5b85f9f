package emitter_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/emitter"
	pt "github.com/go-primus/primus/internal/plugintest"
	"github.com/go-primus/primus/plugin"
)

// rig is a server with an emitter whose "echo" event is acknowledged with
// its arguments, recording how sparks end and what panicked.
type rig struct {
	fl     pt.Flavour
	url    string
	em     *emitter.Emitter
	sparks <-chan *primus.Spark
	ends   <-chan pt.End
	panics chan *primus.PanicError
}

func newRig(t *testing.T, fl pt.Flavour, opts *emitter.Options, before func(em *emitter.Emitter)) *rig {
	t.Helper()
	r := &rig{fl: fl, em: emitter.New(opts), panics: make(chan *primus.PanicError, 16)}
	r.em.On("echo", func(ev *emitter.Event) { _ = ev.Ack(ev.Args.Raw()...) })
	if before != nil {
		before(r.em)
	}
	var srv *primus.Server
	srv, r.url = pt.Serve(t, fl, &primus.Options{
		Plugins: []plugin.Plugin{r.em},
		OnPanic: func(_ *primus.Spark, pe *primus.PanicError) { r.panics <- pe },
	})
	r.sparks = pt.Sparks(srv)
	r.ends = pt.Ends(srv)
	return r
}

// peer is a Go client of the rig.
type peer struct {
	c     *primus.Client
	ec    *emitter.Client
	spark *primus.Spark
	lost  chan error // connections lost
	ended chan error
}

func (r *rig) dial(t *testing.T, opts *emitter.Options, before func(ec *emitter.Client)) *peer {
	t.Helper()
	p := &peer{ec: emitter.NewClient(opts), lost: make(chan error, 8), ended: make(chan error, 1)}
	p.ec.On("echo", func(ev *emitter.Event) { _ = ev.Ack(ev.Args.Raw()...) })
	if before != nil {
		before(p.ec)
	}
	p.c = pt.Dial(t, r.fl, r.url, &primus.ClientOptions{
		Plugins: []plugin.Plugin{p.ec},
		OnError: func(err error) { p.lost <- err },
		OnEnd:   func(err error) { p.ended <- err },
	})
	p.spark = pt.Recv(t, r.sparks, "the spark")
	return p
}

// works checks that both sides of p still answer.
func (p *peer) works(t *testing.T, em *emitter.Emitter) {
	t.Helper()
	if s, err := emitter.Result[string](p.ec.SendAck(ctx(t), "echo", "still here")); err != nil || s != "still here" {
		t.Fatalf("client SendAck after the panic: %q %v", s, err)
	}
	if s, err := emitter.Result[string](em.SendAck(ctx(t), p.spark, "echo", "and here")); err != nil || s != "and here" {
		t.Fatalf("server SendAck after the panic: %q %v", s, err)
	}
}

// serverPanicked checks the outcome of a panic in code run for victim's
// spark: OnPanic ran, the spark ended with the *PanicError, its client saw
// status 1011, and the bystander is served as before.
func (r *rig) serverPanicked(t *testing.T, victim, bystander *peer) {
	t.Helper()
	pt.IsPanic(t, pt.Recv(t, r.panics, "OnPanic"), "boom")
	end := pt.Recv(t, r.ends, "the end of the spark")
	if end.Spark != victim.spark {
		t.Fatalf("spark %s ended, want the victim %s", end.Spark.ID(), victim.spark.ID())
	}
	pt.IsPanic(t, end.Reason, "boom")
	if err := pt.Recv(t, victim.lost, "the client's lost connection"); pt.CloseStatus(err) != 1011 {
		t.Errorf("the client lost its connection with %v, want status 1011", err)
	}
	bystander.works(t, r.em)
	select {
	case e := <-r.ends:
		t.Errorf("spark %s ended too (%v)", e.Spark.ID(), e.Reason)
	default:
	}
}

// TestServerPanics: a panic in any emitter callback that runs for a spark,
// in its reading goroutine or in a timer's, ends that spark alone.
func TestServerPanics(t *testing.T) {
	t.Parallel()
	boom := func(emitter.Args, error) { panic("boom") }
	for _, c := range []struct {
		name    string
		opts    *emitter.Options
		trigger func(t *testing.T, r *rig, victim *peer)
	}{
		{"handler", nil, func(t *testing.T, _ *rig, v *peer) {
			if err := v.ec.Send("boom"); err != nil {
				t.Fatal(err)
			}
		}},
		{"ack callback", nil, func(t *testing.T, r *rig, v *peer) {
			if err := r.em.SendAckFunc(context.Background(), v.spark, "echo", boom); err != nil {
				t.Fatal(err)
			}
		}},
		{"ack timeout callback", &emitter.Options{AckTimeout: 20 * time.Millisecond}, func(t *testing.T, r *rig, v *peer) {
			if err := r.em.SendAckFunc(context.Background(), v.spark, "never", boom); err != nil {
				t.Fatal(err)
			}
		}},
		{"context callback", nil, func(t *testing.T, r *rig, v *peer) {
			c, cancel := context.WithCancel(context.Background())
			if err := r.em.SendAckFunc(c, v.spark, "never", boom); err != nil {
				t.Fatal(err)
			}
			cancel()
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
				r := newRig(t, fl, c.opts, func(em *emitter.Emitter) {
					em.On("boom", func(*emitter.Event) { panic("boom") })
				})
				victim := r.dial(t, nil, func(ec *emitter.Client) { ec.On("never", func(*emitter.Event) {}) })
				bystander := r.dial(t, nil, nil)
				c.trigger(t, r, victim)
				r.serverPanicked(t, victim, bystander)
			})
		})
	}
}

// TestDisconnectCallbackPanics: when a spark ends, every wait still open
// ends with ErrDisconnected, even when one of the callbacks panics.
func TestDisconnectCallbackPanics(t *testing.T) {
	t.Parallel()
	pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
		r := newRig(t, fl, nil, nil)
		victim := r.dial(t, nil, func(ec *emitter.Client) { ec.On("never", func(*emitter.Event) {}) })
		bystander := r.dial(t, nil, nil)
		// Half of them panic: whatever order they run in, a panic that
		// stopped the others would leave some of these without an end.
		others := make(chan error, 8)
		for i := range 16 {
			f := func(_ emitter.Args, err error) { others <- err }
			if i%2 == 1 {
				f = func(emitter.Args, error) { panic("boom") }
			}
			if err := r.em.SendAckFunc(context.Background(), victim.spark, "never", f); err != nil {
				t.Fatal(err)
			}
		}
		_ = victim.spark.Close()
		for range 8 {
			if err := pt.Recv(t, others, "a wait's end"); !errors.Is(err, emitter.ErrDisconnected) {
				t.Errorf("wait ended with %v, want ErrDisconnected", err)
			}
		}
		for range 8 {
			pt.IsPanic(t, pt.Recv(t, r.panics, "OnPanic"), "boom")
		}
		bystander.works(t, r.em)
	})
}

// TestClientPanics: a panic in an emitter callback on a Go client, in its
// reading goroutine or in a timer's, ends that client with the
// *primus.PanicError; the server and its other clients go on.
func TestClientPanics(t *testing.T) {
	t.Parallel()
	boom := func(emitter.Args, error) { panic("boom") }
	for _, c := range []struct {
		name    string
		opts    *emitter.Options
		trigger func(t *testing.T, r *rig, victim *peer)
	}{
		{"handler", nil, func(t *testing.T, r *rig, v *peer) {
			if err := r.em.Send(v.spark, "boom"); err != nil {
				t.Fatal(err)
			}
		}},
		{"ack callback", nil, func(t *testing.T, _ *rig, v *peer) {
			if err := v.ec.SendAckFunc(context.Background(), "echo", boom); err != nil {
				t.Fatal(err)
			}
		}},
		{"ack timeout callback", &emitter.Options{AckTimeout: 20 * time.Millisecond}, func(t *testing.T, _ *rig, v *peer) {
			if err := v.ec.SendAckFunc(context.Background(), "never", boom); err != nil {
				t.Fatal(err)
			}
		}},
		{"context callback", nil, func(t *testing.T, _ *rig, v *peer) {
			c, cancel := context.WithCancel(context.Background())
			if err := v.ec.SendAckFunc(c, "never", boom); err != nil {
				t.Fatal(err)
			}
			cancel()
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
				r := newRig(t, fl, nil, func(em *emitter.Emitter) { em.On("never", func(*emitter.Event) {}) })
				victim := r.dial(t, c.opts, func(ec *emitter.Client) {
					ec.On("boom", func(*emitter.Event) { panic("boom") })
				})
				bystander := r.dial(t, nil, nil)
				c.trigger(t, r, victim)
				pt.IsPanic(t, pt.Recv(t, victim.ended, "the client's end"), "boom")
				pt.IsPanic(t, victim.c.Err(), "boom")
				if end := pt.Recv(t, r.ends, "the victim's spark end"); end.Spark != victim.spark {
					t.Errorf("spark %s ended, want the victim's", end.Spark.ID())
				}
				bystander.works(t, r.em)
				if len(r.panics) != 0 {
					t.Error("a client's panic reached the server's OnPanic")
				}
			})
		})
	}
}
