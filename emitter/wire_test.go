package emitter_test

import (
	"context"
	"testing"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/emitter"
	pt "github.com/go-primus/primus/internal/plugintest"
	"github.com/go-primus/primus/plugin"
)

// TestWireFormat checks the exact JSON of every packet against the frames
// captured between the npm primus-emitter 3.1.1 halves (section 8.1 of the
// protocol notes), with a client that has no emitter and sees raw frames.
func TestWireFormat(t *testing.T) {
	t.Parallel()
	fl := pt.Flavours[0]
	em := emitter.New(nil)
	news := make(chan *emitter.Event, 1)
	em.On("news", func(ev *emitter.Event) {
		news <- ev
		_ = ev.Ack("server-ack", 7)
	})
	srv, url := pt.Serve(t, fl, &primus.Options{Plugins: []plugin.Plugin{em}})
	sparks := pt.Sparks(srv)
	frames := make(chan string, 16)
	c := pt.Dial(t, fl, url, &primus.ClientOptions{OnData: func(m *primus.Message) { frames <- string(m.Bytes()) }})
	spark := pt.Recv(t, sparks, "the spark")
	expect := func(want string) {
		t.Helper()
		if got := pt.Recv(t, frames, want); got != want {
			t.Errorf("frame\n got %s\nwant %s", got, want)
		}
	}

	if err := c.Write(primus.Raw(`{"type":0,"data":["news","a",{"b":1}],"id":1}`)); err != nil {
		t.Fatal(err)
	}
	var a string
	var b map[string]int
	if err := pt.Recv(t, news, "the news event").Args.Decode(&a, &b); err != nil || a != "a" || b["b"] != 1 {
		t.Errorf("news event args %q %v (%v)", a, b, err)
	}
	expect(`{"id":1,"type":1,"data":["server-ack",7]}`)

	if err := em.Send(spark, "hi", "good morning"); err != nil {
		t.Fatal(err)
	}
	expect(`{"type":0,"data":["hi","good morning"]}`)

	answers := make(chan string, 2)
	for range 2 {
		err := em.SendAckFunc(context.Background(), spark, "question", func(reply emitter.Args, err error) {
			var s string
			if err == nil {
				err = reply.Decode(&s)
			}
			if err != nil {
				t.Error(err)
			}
			answers <- s
		}, 42)
		if err != nil {
			t.Fatal(err)
		}
	}
	expect(`{"type":0,"data":["question",42],"id":1}`)
	expect(`{"type":0,"data":["question",42],"id":2}`)
	if err := c.Write(primus.Raw(`{"id":2,"type":1,"data":["two"]}`)); err != nil {
		t.Fatal(err)
	}
	if err := c.Write(primus.Raw(`{"id":1,"type":1,"data":["forty-two"]}`)); err != nil {
		t.Fatal(err)
	}
	if got := pt.Recv(t, answers, "the answer to id 2"); got != "two" {
		t.Errorf("answer %q, want two", got)
	}
	if got := pt.Recv(t, answers, "the answer to id 1"); got != "forty-two" {
		t.Errorf("answer %q, want forty-two", got)
	}

	if err := em.Broadcast("all", nil, []int{}); err != nil {
		t.Fatal(err)
	}
	expect(`{"type":0,"data":["all",null,[]]}`)
}
