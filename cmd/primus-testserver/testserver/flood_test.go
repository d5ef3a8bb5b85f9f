package testserver_test

import (
	"context"
	"errors"
	"runtime"
	"testing"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/cmd/primus-testserver/testserver"
	"github.com/go-primus/primus/emitter"
	pt "github.com/go-primus/primus/internal/plugintest"
)

func heapAlloc() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// TestAskFlood is the attack on pending acknowledgements as it was found: a
// client sends "ask" as fast as it can and never answers the "question"s
// the server sends back with an ack callback. The server keeps at most
// MaxPendingAcks waits for it (SendAckFunc refuses the rest with
// ErrTooManyPending), its heap grows by no more than those, and a
// well-behaved client on the same server is served throughout.
//
// Not parallel: it measures the heap.
func TestAskFlood(t *testing.T) {
	const asks = 10000
	const bound = 1024
	for _, fl := range pt.Flavours {
		t.Run(fl.Name, func(t *testing.T) {
			plugs, err := testserver.ParsePlugins("emitter")
			if err != nil {
				t.Fatal(err)
			}
			srv, url := pt.Serve(t, fl, &primus.Options{Plugins: plugs.List()})
			testserver.Setup(srv)
			if err := plugs.Setup(srv); err != nil {
				t.Fatal(err)
			}
			sparks := pt.Sparks(srv)
			good := dial(t, fl, url)
			pt.Recv(t, sparks, "the good client's spark")
			attacker := pt.DialRaw(t, fl, url)
			victim := pt.Recv(t, sparks, "the attacker's spark")
			attacker.Barrier(t, "ready")

			before := heapAlloc()
			for i := range asks {
				attacker.Send(t, map[string]any{"type": 0, "data": []any{"ask", i}})
			}
			attacker.Barrier(t, "flooded")
			after := heapAlloc()

			if n := plugs.Emitter.Pending(victim); n != bound {
				t.Errorf("%d acknowledgements pending for the attacker, want the bound %d", n, bound)
			}
			growth := after - before
			t.Logf("heap grew by %d KiB for %d asks (%d bytes per pending acknowledgement at most)", growth>>10, asks, growth/bound)
			// What the bound allows, with room for the connection's own
			// buffers: without the bound, 10,000 waits hold several MiB.
			if limit := int64(bound * 1024); growth > limit {
				t.Errorf("heap grew by %d KiB, over %d KiB", growth>>10, limit>>10)
			}

			// The server still sends the attacker what costs nothing to
			// keep, and refuses new waits with ErrTooManyPending.
			if err := plugs.Emitter.SendAckFunc(context.Background(), victim, "question", func(emitter.Args, error) {}); !errors.Is(err, emitter.ErrTooManyPending) {
				t.Errorf("SendAckFunc on the flooded connection = %v, want ErrTooManyPending", err)
			}
			attacker.Barrier(t, "still connected")

			// The well-behaved client is served as before.
			c := good
			c.echo(t, "plain")
			if err := c.ev.Send("ask", 41); err != nil {
				t.Fatal(err)
			}
			nextEvent(t, c, "question", 41)
			nextEvent(t, c, "answer", 42)
		})
	}
}
