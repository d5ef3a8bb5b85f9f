package emitter

import (
	"context"
	"runtime"
	"testing"

	"github.com/go-primus/primus/internal/pluginkit"
	"github.com/go-primus/primus/parser"
)

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestPendingAckCost measures what one pending acknowledgement holds (the
// entry, its timer, its callback), as the test server's "ask" creates them:
// a background context and the default timeout.
func TestPendingAckCost(t *testing.T) {
	const n = 4096
	c := newCore(&Options{MaxPendingAcks: -1})
	c.codec = pluginkit.NewCodec(parser.JSON)
	ep := newEndpoint(nil, func(any) error { return nil })
	before := heapInUse()
	for range n {
		s := struct{}{}
		if err := c.sendAckFunc(context.Background(), ep, "question", func(Args, error) { _ = s }, nil); err != nil {
			t.Fatal(err)
		}
	}
	after := heapInUse()
	per := float64(after-before) / n
	t.Logf("%.0f bytes per pending acknowledgement", per)
	ep.failAll(true)
	if per > 400 {
		t.Errorf("%.0f bytes per pending acknowledgement, want at most 400", per)
	}
}
