package redis_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-primus/primus/cluster"
	"github.com/go-primus/primus/cluster/internal/clustertest"
	"github.com/go-primus/primus/cluster/redis"
)

// The Redis journal's own cases, beside the shared suite (TestJournal and
// TestSessions in redis_test.go).

func journalCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), clustertest.Timeout)
	t.Cleanup(cancel)
	return ctx
}

func journalBackend(t *testing.T, addr string, dur *redis.Durability) *redis.Backend {
	return journalBackendNS(t, addr, clustertest.Namespace(), dur)
}

func journalBackendNS(t *testing.T, addr, ns string, dur *redis.Durability) *redis.Backend {
	b, err := redis.Connect("redis://"+addr, &redis.Options{Namespace: ns, Durable: dur})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func entries(pub string, from, to uint64) []cluster.JournalEntry {
	var es []cluster.JournalEntry
	for s := from; s <= to; s++ {
		es = append(es, cluster.JournalEntry{Publisher: pub, Seq: s, Data: fmt.Appendf(nil, "%s/%d", pub, s)})
	}
	return es
}

func readAll(t *testing.T, b *redis.Backend, after cluster.Offset) ([]string, error) {
	ctx := journalCtx(t)
	tail, err := b.Tail(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	err = b.Read(ctx, after, tail, func(o cluster.Offset, d []byte) bool {
		got = append(got, string(d))
		return true
	})
	return got, err
}

// TestJournalRedis: what the shared suite (clustertest.TestJournal) does
// not reach in this backend: the errors without Durable, the Lua dedup
// under concurrent overlapping retries and with Seqs past 2^53, batches
// and reads larger than a script chunk or a page, a journal emptied by
// XTRIM, and Backend.Close ending a follower.
func TestJournalRedis(t *testing.T) {
	t.Parallel()
	srv := clustertest.StartRedis(t)

	t.Run("NotDurable", func(t *testing.T) {
		b := journalBackend(t, srv.Addr, nil)
		ctx := journalCtx(t)
		if err := b.Append(ctx, entries("p", 1, 1)); err == nil {
			t.Error("Append without Durable: no error")
		}
		if _, err := b.Tail(ctx); err == nil {
			t.Error("Tail without Durable: no error")
		}
		if _, err := b.Follow(cluster.Offset{}, func(cluster.Offset, []byte) {}, nil); err == nil {
			t.Error("Follow without Durable: no error")
		}
	})

	t.Run("AppendDedup", func(t *testing.T) {
		b := journalBackend(t, srv.Addr, &redis.Durability{})
		ctx := journalCtx(t)
		if tail, err := b.Tail(ctx); err != nil || !tail.IsZero() {
			t.Fatalf("Tail of an empty journal = %v, %v", tail, err)
		}
		if got, err := readAll(t, b, cluster.Offset{}); err != nil || len(got) != 0 {
			t.Fatalf("Read of an empty journal = %v, %v", got, err)
		}
		batch := append(entries("a", 1, 3), entries("b", 1, 2)...)
		for range 3 { // a batch retried
			if err := b.Append(ctx, batch); err != nil {
				t.Fatal(err)
			}
		}
		// Overlapping retries, concurrently.
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if err := b.Append(ctx, append(entries("a", 2, 6), entries("b", 3, 3)...)); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		got, err := readAll(t, b, cluster.Offset{})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"a/1", "a/2", "a/3", "b/1", "b/2", "a/4", "a/5", "a/6", "b/3"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("journal = %v, want %v", got, want)
		}
		// A large batch goes in chunks, in order.
		if err := b.Append(ctx, entries("c", 1, 1300)); err != nil {
			t.Fatal(err)
		}
		got, _ = readAll(t, b, cluster.Offset{})
		if len(got) != 9+1300 || got[9] != "c/1" || got[len(got)-1] != "c/1300" {
			t.Fatalf("after a large batch: %d entries", len(got))
		}
		// Seqs compared exactly: 2^53+1 and 2^53 are one float64.
		big := []cluster.JournalEntry{
			{Publisher: "d", Seq: 1<<53 + 1, Data: []byte("d/big+1")},
			{Publisher: "d", Seq: 1 << 53, Data: []byte("d/big")},
			{Publisher: "d", Seq: 1<<53 + 2, Data: []byte("d/big+2")},
			{Publisher: "d", Seq: 1<<64 - 1, Data: []byte("d/max")},
			{Publisher: "d", Seq: 1<<64 - 2, Data: []byte("d/max-1")},
		}
		if err := b.Append(ctx, big); err != nil {
			t.Fatal(err)
		}
		got, _ = readAll(t, b, cluster.Offset{})
		if tail := fmt.Sprint(got[9+1300:]); tail != "[d/big+1 d/big+2 d/max]" {
			t.Fatalf("entries with large Seqs: %s", tail)
		}
	})

	t.Run("ReadBounds", func(t *testing.T) {
		b := journalBackend(t, srv.Addr, &redis.Durability{})
		ctx := journalCtx(t)
		if err := b.Append(ctx, entries("p", 1, 1100)); err != nil {
			t.Fatal(err)
		}
		var offs []cluster.Offset
		tail, _ := b.Tail(ctx)
		if err := b.Read(ctx, cluster.Offset{}, tail, func(o cluster.Offset, _ []byte) bool {
			offs = append(offs, o)
			return true
		}); err != nil {
			t.Fatal(err)
		}
		if len(offs) != 1100 || offs[1099] != tail {
			t.Fatalf("read %d entries, last %v; tail %v", len(offs), offs[len(offs)-1], tail)
		}
		for i := 1; i < len(offs); i++ {
			if !offs[i-1].Less(offs[i]) {
				t.Fatalf("offsets not increasing: %v, %v", offs[i-1], offs[i])
			}
		}
		var got []string
		if err := b.Read(ctx, offs[9], offs[600], func(o cluster.Offset, d []byte) bool {
			got = append(got, string(d))
			return len(got) < 1000
		}); err != nil {
			t.Fatal(err)
		}
		if len(got) != 591 || got[0] != "p/11" || got[590] != "p/601" {
			t.Fatalf("Read(10th, 601st): %d entries, %v … %v", len(got), got[0], got[len(got)-1])
		}
		n := 0
		_ = b.Read(ctx, cluster.Offset{}, tail, func(cluster.Offset, []byte) bool { n++; return n < 5 })
		if n != 5 {
			t.Fatalf("Read went on after f returned false: %d calls", n)
		}
	})

	t.Run("TrimmedToNothing", func(t *testing.T) {
		// XTRIM to nothing: the count goes on from the last id.
		ns := clustertest.Namespace()
		b := journalBackendNS(t, srv.Addr, ns, &redis.Durability{})
		ctx := journalCtx(t)
		if err := b.Append(ctx, entries("p", 1, 5)); err != nil {
			t.Fatal(err)
		}
		fifth, _ := b.Tail(ctx)
		if err := b.Client().XTrimMaxLen(ctx, ns+":journal", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if tail, err := b.Tail(ctx); err != nil || !tail.IsZero() {
			t.Fatalf("Tail of the emptied journal = %v, %v", tail, err)
		}
		if got, err := readAll(t, b, fifth); err != nil || len(got) != 0 {
			t.Fatalf("Read(5th) of the emptied journal = %v, %v", got, err)
		}
		if err := b.Append(ctx, entries("p", 6, 7)); err != nil {
			t.Fatal(err)
		}
		if got, err := readAll(t, b, fifth); err != nil || fmt.Sprint(got) != "[p/6 p/7]" {
			t.Fatalf("Read(5th) = %v, %v", got, err)
		}
		if _, err := readAll(t, b, cluster.Offset{}); !errors.Is(err, cluster.ErrTrimmed) {
			t.Fatalf("Read(0) = %v; want ErrTrimmed", err)
		}
	})

	t.Run("Follow", func(t *testing.T) {
		// Long blocking reads: Close ends the one under way.
		b := journalBackend(t, srv.Addr, &redis.Durability{Block: 10 * time.Second})
		ctx := journalCtx(t)
		if err := b.Append(ctx, entries("p", 1, 3)); err != nil {
			t.Fatal(err)
		}
		start, _ := b.Tail(ctx)
		ch := make(chan string, 2000)
		sub, err := b.Follow(start, func(_ cluster.Offset, d []byte) { ch <- string(d) }, func(cluster.Offset) { t.Error("gap") })
		if err != nil {
			t.Fatal(err)
		}
		for i := uint64(4); i <= 1500; i += 100 {
			if err := b.Append(ctx, entries("p", i, i+99)); err != nil {
				t.Fatal(err)
			}
		}
		for i := 4; i <= 1503; i++ {
			select {
			case got := <-ch:
				if want := fmt.Sprintf("p/%d", i); got != want {
					t.Fatalf("followed %s, want %s", got, want)
				}
			case <-time.After(clustertest.Timeout):
				t.Fatalf("p/%d not followed", i)
			}
		}
		time.Sleep(50 * time.Millisecond) // blocked in XREAD
		t0 := time.Now()
		_ = sub.Close()
		if d := time.Since(t0); d > 2*time.Second {
			t.Errorf("Close took %v", d)
		}
		// Backend.Close ends a follower too.
		b2 := journalBackend(t, srv.Addr, &redis.Durability{Block: 10 * time.Second})
		if _, err := b2.Follow(cluster.Offset{}, func(cluster.Offset, []byte) {}, nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		t0 = time.Now()
		_ = b2.Close()
		if d := time.Since(t0); d > 2*time.Second {
			t.Errorf("Backend.Close took %v", d)
		}
		if _, err := b2.Follow(cluster.Offset{}, func(cluster.Offset, []byte) {}, nil); err == nil {
			t.Fatal("Follow after Close: no error")
		}
	})
}
