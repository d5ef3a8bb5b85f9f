package multiplex_test

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/go-primus/primus"
	pt "github.com/go-primus/primus/internal/plugintest"
	"github.com/go-primus/primus/multiplex"
	"github.com/go-primus/primus/plugin"
)

// TestInvalidUTF8Attack is the attack as it was found: one 20-byte packet
// [0,"a","news","\xff"] to a channel that forwards m.Raw() to its
// subscribers used to reach all of them, and browsers (and ws) close their
// connection on invalid UTF-8. Now the attacker's connection is closed with
// 1007 before any plugin sees the packet, and the 50 subscribers stay
// connected and keep receiving, the bad payload never among what they get.
// With CBOR the text string inside the binary frame is refused the same way.
func TestInvalidUTF8Attack(t *testing.T) {
	t.Parallel()
	pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
		const n = 50
		s := startServer(t, fl)
		ends := pt.Ends(s.srv)
		lost := make(chan error, n)
		news := make([]*channel, n)
		for i := range news {
			c := s.dial(t, fl, &primus.ClientOptions{OnError: func(err error) { lost <- err }})
			news[i] = open(t, c, "news")
		}
		for range n {
			pt.Recv(t, s.subs, "a news subscription")
		}

		attacker := pt.DialRaw(t, fl, s.url)
		attacker.Send(t, []any{1, "a", "news"})
		pt.Recv(t, s.subs, "the attacker's subscription")
		attack := []byte("[0,\"a\",\"news\",\"\xff\"]")
		if fl.Parser.Binary() {
			attack = []byte{0x84, 0x00, 0x61, 'a', 0x64, 'n', 'e', 'w', 's', 0x61, 0xff}
		}
		attacker.SendBytes(t, attack)
		if _, err := attacker.Closed(t); pt.CloseStatus(err) != 1007 {
			t.Errorf("the attacker's connection ended with %v, want status 1007", err)
		}
		end := pt.Recv(t, ends, "the attacker's spark end")
		if !errors.Is(end.Reason, primus.ErrInvalidUTF8) {
			t.Errorf("the attacker's spark ended with %v, want ErrInvalidUTF8", end.Reason)
		}

		// Everyone else is still there and gets the next news, and nothing
		// before it.
		if err := news[7].Write("after the attack"); err != nil {
			t.Fatal(err)
		}
		for _, ch := range news {
			ch.expect(t, "after the attack")
		}
		select {
		case err := <-lost:
			t.Errorf("a subscriber lost its connection: %v", err)
		case e := <-ends:
			t.Errorf("spark %s ended too: %v", e.Spark.ID(), e.Reason)
		default:
		}
		if got := s.news.Count(); got != n {
			t.Errorf("news has %d subscriptions, want %d", got, n)
		}
	})
}

// TestSubscriptionIDBound: an id over Options.MaxIDBytes is refused with an
// UNSUBSCRIBE, as a subscription over MaxSubscriptions is.
func TestSubscriptionIDBound(t *testing.T) {
	t.Parallel()
	pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
		s := startServer(t, fl)
		c := s.dial(t, fl, nil)
		long, err := c.mc.Channel("news", nil)
		if err != nil {
			t.Fatal(err)
		}
		pt.Recv(t, s.subs, "the first subscription")
		_ = long
		attacker := pt.DialRaw(t, fl, s.url)
		ok, over := strings.Repeat("i", 128), strings.Repeat("i", 129)
		attacker.Send(t, []any{1, ok, "news"})
		if cs := pt.Recv(t, s.subs, "the subscription with a 128-byte id"); cs.WireID() != ok {
			t.Errorf("subscription %q", cs.WireID())
		}
		attacker.Send(t, []any{1, over, "news"})
		attacker.Barrier(t, "after")
		if got := s.news.Count(); got != 2 {
			t.Errorf("news has %d subscriptions, want 2", got)
		}
		select {
		case cs := <-s.subs:
			t.Errorf("subscription with a %d-byte id accepted", len(cs.WireID()))
		default:
		}
	})
}

func heapAlloc() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// TestSubscriptionMemory checks that MaxSubscriptions bounds memory, not
// only a count: a connection that fills its 1024 subscriptions with ids as
// long as allowed holds under a MiB, and subscriptions with long ids (each
// id used to be kept more than twice: 32 of 64 KiB held 4.6 MiB) are
// refused.
//
// Not parallel: it measures the heap.
func TestSubscriptionMemory(t *testing.T) {
	fl := pt.Flavours[0]
	mx := multiplex.New(nil)
	accepted := make(chan struct{}, 2048)
	mx.Channel("news").OnConnection(func(*multiplex.Spark) { accepted <- struct{}{} })
	srv, url := pt.Serve(t, fl, &primus.Options{Plugins: []plugin.Plugin{mx}})
	srv.OnConnection(func(sp *primus.Spark) { sp.OnData(func(m *primus.Message) { _ = sp.Write(m.Raw()) }) })

	fill := func(n, idLen int) (growth int64) {
		attacker := pt.DialRaw(t, fl, url)
		attacker.Barrier(t, "ready")
		before := heapAlloc()
		for i := range n {
			attacker.Send(t, []any{1, fmt.Sprintf("%04d%s", i, strings.Repeat("x", idLen-4)), "news"})
		}
		attacker.Barrier(t, "done")
		return heapAlloc() - before
	}

	growth := fill(1024, 128)
	if len(accepted) != 1024 {
		t.Fatalf("%d subscriptions accepted, want 1024", len(accepted))
	}
	t.Logf("1024 subscriptions with 128-byte ids: %d KiB (%d bytes each)", growth>>10, growth/1024)
	if growth > 2<<20 {
		t.Errorf("1024 subscriptions hold %d KiB, want at most 2 MiB", growth>>10)
	}
	for len(accepted) > 0 {
		<-accepted
	}

	growth = fill(32, 64<<10) // the refusals echo the ids: 2 MiB, within the send queue
	t.Logf("32 refused subscriptions with 64 KiB ids: %d KiB", growth>>10)
	if len(accepted) != 0 {
		t.Errorf("%d subscriptions with 64 KiB ids accepted", len(accepted))
	}
	if growth > 1<<20 {
		t.Errorf("refused subscriptions hold %d KiB", growth>>10)
	}
}
