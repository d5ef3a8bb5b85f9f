package redis_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/go-primus/primus/cluster/internal/clustertest"
	"github.com/go-primus/primus/cluster/redis"
	"github.com/go-primus/primus/internal/tcpproxy"
)

// TestDurableGapCounted cuts a node off Redis while another appends far
// more than the stream keeps: when the link is back, the node reads on from
// the first entry left, in order, and counts one gap (Stats.Gaps). (That a
// node which kept up counts none is TestDurable's CatchUp.)
func TestDurableGapCounted(t *testing.T) {
	t.Parallel()
	srv := clustertest.StartRedis(t)
	proxy := tcpproxy.New(t, srv.Addr)
	ns := clustertest.Namespace()
	connect := func(addr string) *redis.Backend {
		b, err := redis.Connect("redis://"+addr, &redis.Options{Namespace: ns, Durable: &redis.Durability{MaxLen: 50, Block: 200 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	w, cut := connect(srv.Addr), connect(proxy.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), clustertest.Timeout)
	defer cancel()
	recv := func(b *redis.Backend) chan int {
		ch := make(chan int, 4096)
		sub, err := b.Subscribe(ctx, "x", func(data []byte) {
			k, err := strconv.Atoi(string(data))
			if err != nil {
				t.Errorf("got %q", data)
			}
			ch <- k
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Close() })
		return ch
	}
	cutCh := recv(cut)
	next := func(ch chan int) int {
		select {
		case k := <-ch:
			return k
		case <-ctx.Done():
			t.Fatal("no message within the time")
			return 0
		}
	}
	publish := func(from, to int) {
		for k := from; k < to; k++ {
			if err := w.Publish(ctx, "x", []byte(strconv.Itoa(k))); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(0, 10)
	for want := range 10 {
		if got := next(cutCh); got != want {
			t.Fatalf("before the cut: got %d, want %d", got, want)
		}
	}
	proxy.Cut()
	const total = 2000
	publish(10, total)
	proxy.Restore()
	publish(total, total+1)
	// The node cut off: a suffix, in order, from past what was trimmed.
	first := next(cutCh)
	if first <= 10 {
		t.Fatalf("after the cut the first message read is %d: the stream kept it (MaxLen 50 of %d)", first, total)
	}
	for want := first + 1; want <= total; want++ {
		if got := next(cutCh); got != want {
			t.Fatalf("after the gap: got %d, want %d", got, want)
		}
	}
	if g := cut.Gaps(); g != 1 {
		t.Errorf("the node cut off counts %d gaps, want 1 (it missed %d..%d)", g, 10, first-1)
	}
}
