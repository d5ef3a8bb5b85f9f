package clustertest

// The contract of cluster.Journal and cluster.SessionStore, the backend
// side of recovery across nodes. The backends under test are those of
// Env.ConnectJournal (or Env.ConnectDurable), reached by type assertion.
// Several connections to one namespace stand for several nodes: what one
// appends or saves, the others read or take.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-primus/primus/cluster"
	"github.com/go-primus/primus/internal/tcpproxy"
)

// TestJournal runs the journal contract against the backend: appends and
// their order, Tail, Read's ranges, idempotent appends, Follow (from any
// offset, across a cut link and a broker restart) and trimming (Read's
// ErrTrimmed, Follow's gap). The broker of newEnv must keep what it
// acknowledged across StopBroker and StartBroker (NATS with file storage,
// Redis with persistence); the case that restarts it is skipped when
// StopBroker is nil.
func TestJournal(t *testing.T, newEnv func(testing.TB) *Env) {
	env := newEnv(t) // for the cases that leave the broker alone
	t.Run("AppendRead", func(t *testing.T) {
		t.Parallel()
		testJournalAppendRead(t, env)
	})
	t.Run("Idempotent", func(t *testing.T) {
		t.Parallel()
		testJournalIdempotent(t, env)
	})
	t.Run("Follow", func(t *testing.T) {
		t.Parallel()
		testJournalFollow(t, env)
	})
	t.Run("FollowCut", func(t *testing.T) {
		t.Parallel()
		testJournalFollowCut(t, env)
	})
	t.Run("Trimmed", func(t *testing.T) {
		t.Parallel()
		testJournalTrimmed(t, env)
	})
	t.Run("FollowGap", func(t *testing.T) {
		t.Parallel()
		testJournalFollowGap(t, env)
	})
	t.Run("BrokerRestarts", func(t *testing.T) {
		t.Parallel()
		env := newEnv(t)
		if env.StopBroker == nil || env.StartBroker == nil {
			t.Skip("this backend's test server cannot be restarted")
		}
		testJournalBrokerRestarts(t, env)
	})
}

// maxOffset is after every entry of any backend.
var maxOffset = cluster.Offset{Hi: math.MaxUint64, Lo: math.MaxUint64}

// journalOf connects a backend to the broker at addr and returns its
// journal; it is closed when the test ends.
func journalOf(t testing.TB, env *Env, ns, addr string, small bool) cluster.Journal {
	t.Helper()
	var b Backend
	switch {
	case env.ConnectJournal != nil:
		b = env.ConnectJournal(t, ns, addr, small)
	case small:
		t.Skip("Env.ConnectJournal is nil: no journal with small limits to test")
	case env.ConnectDurable != nil:
		b = env.ConnectDurable(t, ns, addr)
	default:
		t.Skip("this backend has no durable option")
	}
	t.Cleanup(func() { _ = b.Close() })
	j, ok := b.(cluster.Journal)
	if !ok {
		t.Fatalf("%T is not a cluster.Journal", b)
	}
	return j
}

// payload is the data of a publisher's entry seq: "pub/seq", padded with
// dots to size bytes when size is larger.
func payload(pub string, seq uint64, size int) string {
	s := pub + "/" + strconv.FormatUint(seq, 10)
	if len(s) < size {
		s += strings.Repeat(".", size-len(s))
	}
	return s
}

// seqOf reads the seq back from a payload.
func seqOf(data string) uint64 {
	_, s, _ := strings.Cut(strings.TrimRight(data, "."), "/")
	n, _ := strconv.ParseUint(s, 10, 64)
	return n
}

// batch is the publisher's entries from to to, inclusive.
func batch(pub string, from, to uint64, size int) []cluster.JournalEntry {
	var es []cluster.JournalEntry
	for seq := from; seq <= to; seq++ {
		es = append(es, cluster.JournalEntry{Publisher: pub, Seq: seq, Data: []byte(payload(pub, seq, size))})
	}
	return es
}

// payloads lists payload(pub, seq, 0) for seq from to to, inclusive.
func payloads(pub string, from, to uint64) []string {
	var s []string
	for seq := from; seq <= to; seq++ {
		s = append(s, payload(pub, seq, 0))
	}
	return s
}

func appendOK(t testing.TB, ctx context.Context, j cluster.Journal, es []cluster.JournalEntry) {
	t.Helper()
	if err := j.Append(ctx, es); err != nil {
		t.Fatalf("Append: %v", err)
	}
}

func tailOf(t testing.TB, ctx context.Context, j cluster.Journal) cluster.Offset {
	t.Helper()
	o, err := j.Tail(ctx)
	if err != nil {
		t.Fatalf("Tail: %v", err)
	}
	return o
}

// item is an entry read from a journal.
type item struct {
	off  cluster.Offset
	data string
}

// readAll reads the entries after `after` up to upto.
func readAll(ctx context.Context, j cluster.Journal, after, upto cluster.Offset) ([]item, error) {
	var got []item
	err := j.Read(ctx, after, upto, func(o cluster.Offset, d []byte) bool {
		got = append(got, item{o, string(d)})
		return true
	})
	return got, err
}

// readOK is readAll that fails the test on an error.
func readOK(t testing.TB, ctx context.Context, j cluster.Journal, after, upto cluster.Offset) []item {
	t.Helper()
	got, err := readAll(ctx, j, after, upto)
	if err != nil {
		t.Fatalf("Read(%v, %v): %v", after, upto, err)
	}
	return got
}

// checkItems checks that got holds the payloads want, with increasing
// offsets (from after), ignoring padding.
func checkItems(t testing.TB, what string, got []item, after cluster.Offset, want []string) {
	t.Helper()
	data := make([]string, len(got))
	for i, it := range got {
		data[i] = strings.TrimRight(it.data, ".")
		if !after.Less(it.off) {
			t.Errorf("%s: entry %d (%q) at offset %v, not after %v", what, i, data[i], it.off, after)
		}
		after = it.off
	}
	if !slices.Equal(data, want) {
		t.Errorf("%s: got %q, want %q", what, data, want)
	}
}

// testJournalAppendRead: entries in order with increasing offsets, seen the
// same by every node; Tail; Read's ranges (after excluded, upto included);
// Read stopped by f; concurrent appends keep each publisher's order.
func testJournalAppendRead(t *testing.T, env *Env) {
	ctx := bg(t)
	ns := Namespace()
	j := journalOf(t, env, ns, env.Addr, false)
	other := journalOf(t, env, ns, env.Addr, false)

	if o := tailOf(t, ctx, j); !o.IsZero() {
		t.Errorf("Tail of an empty journal = %v, want zero", o)
	}
	checkItems(t, "Read of an empty journal", readOK(t, ctx, j, cluster.Offset{}, maxOffset), cluster.Offset{}, nil)
	if err := j.Append(ctx, nil); err != nil {
		t.Errorf("Append(nil): %v", err)
	}

	appendOK(t, ctx, j, batch("p1", 1, 3, 0))
	first := readOK(t, ctx, j, cluster.Offset{}, maxOffset)
	checkItems(t, "Read after 3 appends", first, cluster.Offset{}, payloads("p1", 1, 3))
	if len(first) == 3 {
		if o := tailOf(t, ctx, j); o != first[2].off {
			t.Errorf("Tail = %v, want the last entry's offset %v", o, first[2].off)
		}
	}
	appendOK(t, ctx, j, batch("p1", 4, 5, 0))

	// Another node sees the same entries at the same offsets.
	all := readOK(t, ctx, other, cluster.Offset{}, maxOffset)
	checkItems(t, "Read by another node", all, cluster.Offset{}, payloads("p1", 1, 5))
	if len(all) != 5 {
		t.FailNow()
	}
	if !slices.Equal(all[:3], first) {
		t.Errorf("another node reads %v, the appending one read %v", all[:3], first)
	}
	if o := tailOf(t, ctx, other); o != all[4].off {
		t.Errorf("Tail = %v, want the last entry's offset %v", o, all[4].off)
	}

	// Ranges: after excluded, upto included.
	checkItems(t, "Read(e2, e4)", readOK(t, ctx, other, all[1].off, all[3].off), all[1].off, payloads("p1", 3, 4))
	checkItems(t, "Read(zero, e1)", readOK(t, ctx, other, cluster.Offset{}, all[0].off), cluster.Offset{}, payloads("p1", 1, 1))
	checkItems(t, "Read(e3, e3)", readOK(t, ctx, other, all[2].off, all[2].off), all[2].off, nil)
	checkItems(t, "Read(e5, tail)", readOK(t, ctx, other, all[4].off, all[4].off), all[4].off, nil)
	checkItems(t, "Read(e5, max)", readOK(t, ctx, other, all[4].off, maxOffset), all[4].off, nil)
	checkItems(t, "Read(e3, max)", readOK(t, ctx, other, all[2].off, maxOffset), all[2].off, payloads("p1", 4, 5))

	// f returning false stops the read.
	calls := 0
	err := other.Read(ctx, cluster.Offset{}, maxOffset, func(cluster.Offset, []byte) bool {
		calls++
		return calls < 2
	})
	if err != nil || calls != 2 {
		t.Errorf("Read with f returning false on its 2nd call: %d calls, %v; want 2 calls, nil", calls, err)
	}

	// Two nodes appending at once: one total order, each publisher's own.
	var wg sync.WaitGroup
	for i, jn := range []cluster.Journal{j, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pub := fmt.Sprintf("c%d", i)
			for seq := uint64(1); seq <= 50; seq += 5 {
				if err := jn.Append(ctx, batch(pub, seq, seq+4, 0)); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	rest := readOK(t, ctx, j, all[4].off, maxOffset)
	if len(rest) != 100 {
		t.Errorf("Read after concurrent appends of 2×50 entries: %d entries", len(rest))
	}
	var data []string
	for _, it := range rest {
		data = append(data, it.data)
	}
	checkItems(t, "Read after concurrent appends", rest, all[4].off, data)
	for _, pub := range []string{"c0", "c1"} {
		var mine []string
		for _, it := range rest {
			if strings.HasPrefix(it.data, pub+"/") {
				mine = append(mine, it.data)
			}
		}
		if !slices.Equal(mine, payloads(pub, 1, 50)) {
			t.Errorf("publisher %s's entries read back as %q", pub, mine)
		}
	}
	if o := tailOf(t, ctx, j); len(rest) > 0 && o != rest[len(rest)-1].off {
		t.Errorf("Tail = %v, want the last entry's offset %v", o, rest[len(rest)-1].off)
	}
}

// testJournalIdempotent: re-appending a publisher's entries stores nothing
// twice, from the same node or another; a new publisher starts at 1.
func testJournalIdempotent(t *testing.T, env *Env) {
	ctx := bg(t)
	ns := Namespace()
	j := journalOf(t, env, ns, env.Addr, false)
	other := journalOf(t, env, ns, env.Addr, false)

	appendOK(t, ctx, j, batch("p1", 1, 5, 0))
	tail := tailOf(t, ctx, j)
	appendOK(t, ctx, j, batch("p1", 1, 5, 0)) // a retry of the whole batch
	if o := tailOf(t, ctx, j); o != tail {
		t.Errorf("re-appending entries 1-5 moved Tail from %v to %v", tail, o)
	}
	appendOK(t, ctx, j, batch("p1", 3, 7, 0)) // a retry that goes further
	changed := []cluster.JournalEntry{{Publisher: "p1", Seq: 2, Data: []byte("changed")}}
	appendOK(t, ctx, j, changed)     // a seq already stored, other data
	appendOK(t, ctx, other, changed) // from another node
	appendOK(t, ctx, j, batch("p2", 1, 2, 0))
	appendOK(t, ctx, other, batch("p1", 6, 8, 0)) // another node's retry
	appendOK(t, ctx, other, batch("p2", 2, 3, 0))

	want := slices.Concat(payloads("p1", 1, 7), payloads("p2", 1, 2), payloads("p1", 8, 8), payloads("p2", 3, 3))
	checkItems(t, "Read after repeated appends", readOK(t, ctx, other, cluster.Offset{}, maxOffset), cluster.Offset{}, want)
}

// event is one call of a Follow's f or gap.
type event struct {
	gap  bool
	off  cluster.Offset
	data string
}

// follower records a Follow's calls.
type follower struct {
	sub    cluster.Subscription
	events chan event
	busy   atomic.Int32 // calls running
	closed atomic.Bool  // Close returned
	bad    atomic.Value // a string: what went wrong in a call
}

// follow follows j from after; the subscription is closed when the test
// ends, and checked for calls that overlapped, came after Close or could
// not be recorded.
func follow(t testing.TB, j cluster.Journal, after cluster.Offset) *follower {
	t.Helper()
	fl := &follower{events: make(chan event, 1<<14)}
	record := func(e event) {
		if fl.busy.Add(1) != 1 {
			fl.bad.Store("f or gap called from two goroutines at once")
		}
		if fl.closed.Load() {
			fl.bad.Store(fmt.Sprintf("called with %v after the subscription was closed", e))
		}
		select {
		case fl.events <- e:
		default:
			fl.bad.Store("too many entries for the test's buffer")
		}
		fl.busy.Add(-1)
	}
	sub, err := j.Follow(after,
		func(o cluster.Offset, d []byte) { record(event{off: o, data: string(d)}) },
		func(next cluster.Offset) { record(event{gap: true, off: next}) })
	if err != nil {
		t.Fatalf("Follow(%v): %v", after, err)
	}
	fl.sub = sub
	t.Cleanup(func() { fl.close(t) })
	return fl
}

// close closes the subscription (again: it is idempotent for the test).
func (fl *follower) close(t testing.TB) {
	t.Helper()
	if fl.closed.Load() {
		return
	}
	if err := fl.sub.Close(); err != nil {
		t.Errorf("closing a Follow subscription: %v", err)
	}
	fl.closed.Store(true)
	fl.check(t)
}

func (fl *follower) check(t testing.TB) {
	t.Helper()
	if s, ok := fl.bad.Load().(string); ok {
		t.Errorf("Follow: %s", s)
	}
}

// next returns the next call.
func (fl *follower) next(t testing.TB) event {
	t.Helper()
	select {
	case e := <-fl.events:
		return e
	case <-time.After(Timeout):
		fl.check(t)
		t.Fatalf("Follow: nothing delivered within %v", Timeout)
		return event{}
	}
}

// expect checks that the next calls deliver the payloads want (no gap),
// after the offset after, and returns them.
func (fl *follower) expect(t testing.TB, after cluster.Offset, want []string) []item {
	t.Helper()
	var got []item
	for range want {
		e := fl.next(t)
		if e.gap {
			t.Fatalf("Follow: gap before %v, after %d of %q: nothing was trimmed", e.off, len(got), want)
		}
		got = append(got, item{e.off, e.data})
	}
	checkItems(t, "Follow", got, after, want)
	fl.check(t)
	return got
}

// none checks that nothing was delivered (not yet, at least).
func (fl *follower) none(t testing.TB) {
	t.Helper()
	select {
	case e := <-fl.events:
		t.Errorf("Follow: unexpected call %+v", e)
	default:
	}
	fl.check(t)
}

// testJournalFollow: Follow from zero, from the middle and from the tail,
// of entries there and appended later, at the offsets Read gives; an empty
// journal; nothing after Close.
func testJournalFollow(t *testing.T, env *Env) {
	ctx := bg(t)
	ns := Namespace()
	j := journalOf(t, env, ns, env.Addr, false)
	other := journalOf(t, env, ns, env.Addr, false)

	// An empty journal, followed from zero.
	early := follow(t, other, cluster.Offset{})

	appendOK(t, ctx, j, batch("p", 1, 5, 0))
	all := readOK(t, ctx, j, cluster.Offset{}, maxOffset)
	checkItems(t, "Read", all, cluster.Offset{}, payloads("p", 1, 5))
	if len(all) != 5 {
		t.FailNow()
	}
	if got := early.expect(t, cluster.Offset{}, payloads("p", 1, 5)); !slices.Equal(got, all) {
		t.Errorf("Follow delivered %v, Read gives %v", got, all)
	}
	zero := follow(t, other, cluster.Offset{})
	if got := zero.expect(t, cluster.Offset{}, payloads("p", 1, 5)); !slices.Equal(got, all) {
		t.Errorf("Follow delivered %v, Read gives %v", got, all)
	}
	mid := follow(t, j, all[1].off)
	mid.expect(t, all[1].off, payloads("p", 3, 5))
	end := follow(t, j, all[4].off)

	appendOK(t, ctx, j, batch("p", 6, 8, 0))
	more := readOK(t, ctx, other, all[4].off, maxOffset)
	checkItems(t, "Read", more, all[4].off, payloads("p", 6, 8))
	for _, fl := range []*follower{early, zero, mid, end} {
		if got := fl.expect(t, all[4].off, payloads("p", 6, 8)); !slices.Equal(got, more) {
			t.Errorf("Follow delivered %v, Read gives %v", got, more)
		}
	}

	// A closed subscription calls nothing more (follow's check).
	mid.close(t)
	appendOK(t, ctx, other, batch("q", 1, 1, 0))
	for _, fl := range []*follower{early, zero, end} {
		fl.expect(t, more[2].off, payloads("q", 1, 1))
		fl.none(t)
	}
}

// testJournalFollowCut cuts a follower's link to the broker while entries
// are appended: once it is back, it delivers them, once each, in order.
func testJournalFollowCut(t *testing.T, env *Env) {
	ctx := bg(t)
	ns := Namespace()
	proxy := tcpproxy.New(t, env.Addr)
	w := journalOf(t, env, ns, env.Addr, false)
	r := journalOf(t, env, ns, proxy.Addr(), false)

	appendOK(t, ctx, w, batch("p", 1, 10, 0))
	fl := follow(t, r, cluster.Offset{})
	got := fl.expect(t, cluster.Offset{}, payloads("p", 1, 10))
	proxy.Cut()
	appendOK(t, ctx, w, batch("p", 11, 30, 0))
	proxy.Restore()
	appendOK(t, ctx, w, batch("p", 31, 40, 0))
	fl.expect(t, got[len(got)-1].off, payloads("p", 11, 40))
	fl.none(t)
}

// testJournalBrokerRestarts restarts the broker while a writer appends
// (retrying what fails, as the cluster does) and another node follows: the
// journal kept everything once, and the follower delivers it all, once, in
// order, without a gap.
func testJournalBrokerRestarts(t *testing.T, env *Env) {
	ns := Namespace()
	w := journalOf(t, env, ns, env.Addr, false)
	r := journalOf(t, env, ns, env.Addr, false)
	fl := follow(t, r, cluster.Offset{})

	var stored, failures atomic.Uint64 // the seq appended last; failed appends
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func(stop <-chan struct{}) {
		defer wg.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for seq := uint64(1); ; {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err := w.Append(ctx, batch("w", seq, seq+2, 0))
			cancel()
			if err == nil {
				stored.Store(seq + 2)
				seq += 3
			} else {
				failures.Add(1) // retried: the same entries again
			}
			select {
			case <-tick.C:
			case <-stop:
				return
			}
		}
	}(stop)
	stopWriter := func() uint64 {
		if stop != nil {
			close(stop)
			stop = nil
			wg.Wait()
		}
		return stored.Load()
	}
	defer stopWriter()

	got := fl.expect(t, cluster.Offset{}, payloads("w", 1, 30))
	env.StopBroker(t)
	Eventually(t, Timeout, "an Append failing with the broker down", func() bool { return failures.Load() > 0 })
	env.StartBroker(t)
	restarted := stored.Load()
	Eventually(t, Timeout, "appends going on after the restart", func() bool { return stored.Load() >= restarted+30 })
	total := stopWriter()
	t.Logf("%d entries appended, %d failed appends retried", total, failures.Load())

	fl.expect(t, got[len(got)-1].off, payloads("w", 31, total))
	fl.none(t)
	ctx := bg(t)
	checkItems(t, "Read after the restart", readOK(t, ctx, r, cluster.Offset{}, maxOffset), cluster.Offset{}, payloads("w", 1, total))
}

// appendSmall appends the publisher's entries from to to, of 100 bytes, in
// batches of 10, and returns Tail after each batch.
func appendSmall(t testing.TB, ctx context.Context, j cluster.Journal, pub string, from, to uint64) []cluster.Offset {
	t.Helper()
	var tails []cluster.Offset
	for seq := from; seq <= to; seq += 10 {
		appendOK(t, ctx, j, batch(pub, seq, min(seq+9, to), 100))
		tails = append(tails, tailOf(t, ctx, j))
	}
	return tails
}

// testJournalTrimmed fills a journal with small limits: Read after an
// offset whose successors were trimmed returns ErrTrimmed and calls f with
// nothing; Read after an offset still there reads.
func testJournalTrimmed(t *testing.T, env *Env) {
	ctx := bg(t)
	ns := Namespace()
	j := journalOf(t, env, ns, env.Addr, true)
	other := journalOf(t, env, ns, env.Addr, true)
	tails := appendSmall(t, ctx, j, "p", 1, 1000)
	last := tails[len(tails)-1]
	if o := tailOf(t, ctx, other); o != last {
		t.Errorf("Tail = %v, want %v", o, last)
	}

	for _, r := range []struct {
		name        string
		after, upto cluster.Offset
	}{
		{"Read(zero, max)", cluster.Offset{}, maxOffset},
		{"Read(zero, tail)", cluster.Offset{}, last},
		{"Read(entry 10, max)", tails[0], maxOffset},
		{"Read(zero, entry 10)", cluster.Offset{}, tails[0]},
	} {
		got, err := readAll(ctx, other, r.after, r.upto)
		if !errors.Is(err, cluster.ErrTrimmed) || len(got) != 0 {
			t.Errorf("%s of a journal trimmed to at most 500 of its 1000 entries: %d entries, %v; want ErrTrimmed and none", r.name, len(got), err)
		}
	}
	// The last 20 are still there (the limits keep at least 20).
	checkItems(t, "Read(entry 980, max)", readOK(t, ctx, other, tails[len(tails)-3], maxOffset), tails[len(tails)-3], payloads("p", 981, 1000))
	checkItems(t, "Read(entry 980, entry 990)", readOK(t, ctx, other, tails[len(tails)-3], tails[len(tails)-2]), tails[len(tails)-3], payloads("p", 981, 990))
	checkItems(t, "Read(tail, max)", readOK(t, ctx, other, last, maxOffset), last, nil)
}

// testJournalFollowGap: a Follow that starts before what the journal still
// holds, and one whose link is cut while the journal trims what it has not
// delivered, each call gap once with the offset of the entry they deliver
// next, before it, and go on to the end.
func testJournalFollowGap(t *testing.T, env *Env) {
	ctx := bg(t)
	ns := Namespace()
	proxy := tcpproxy.New(t, env.Addr)
	w := journalOf(t, env, ns, env.Addr, true)
	r := journalOf(t, env, ns, proxy.Addr(), true)

	// expectGap checks for a gap then entries up to `to`, consecutive from
	// the first, which is at least minFrom, and returns the last offset.
	expectGap := func(fl *follower, after cluster.Offset, minFrom, to uint64) cluster.Offset {
		t.Helper()
		e := fl.next(t)
		if !e.gap {
			t.Fatalf("Follow delivered %q at %v; want a gap first", strings.TrimRight(e.data, "."), e.off)
		}
		if !after.Less(e.off) {
			t.Errorf("Follow's gap: next entry at %v, not after %v", e.off, after)
		}
		first := fl.next(t)
		if first.gap || first.off != e.off {
			t.Fatalf("Follow: gap with next %v, then %+v", e.off, first)
		}
		from := seqOf(first.data)
		if from < minFrom || from > to-19 {
			t.Errorf("Follow: the first entry after the gap is %q; want p/%d to p/%d (the limits keep 20 to 500 entries)", first.data, minFrom, to-19)
		}
		got := append([]item{{first.off, first.data}}, fl.expect(t, first.off, payloads("p", from+1, to))...)
		fl.none(t)
		return got[len(got)-1].off
	}

	tails := appendSmall(t, ctx, w, "p", 1, 1000)
	last := expectGap(follow(t, r, cluster.Offset{}), cluster.Offset{}, 2, 1000)
	if last != tails[len(tails)-1] {
		t.Errorf("Follow's last entry at %v, Tail %v", last, tails[len(tails)-1])
	}
	expectGap(follow(t, r, tails[0]), tails[0], 11, 1000)

	// A follower cut off while the journal trims.
	fl := follow(t, r, last)
	appendSmall(t, ctx, w, "p", 1001, 1010)
	got := fl.expect(t, last, payloads("p", 1001, 1010))
	proxy.Cut()
	appendSmall(t, ctx, w, "p", 1011, 2000)
	proxy.Restore()
	last = expectGap(fl, got[len(got)-1].off, 1012, 2000)
	appendOK(t, ctx, w, batch("p", 2001, 2001, 0))
	fl.expect(t, last, payloads("p", 2001, 2001))
}

// sessionsOf connects a backend to the broker and returns its session
// store; it is closed when the test ends.
func sessionsOf(t testing.TB, env *Env, ns string) cluster.SessionStore {
	t.Helper()
	var b Backend
	switch {
	case env.ConnectJournal != nil:
		b = env.ConnectJournal(t, ns, env.Addr, false)
	case env.ConnectDurable != nil:
		b = env.ConnectDurable(t, ns, env.Addr)
	default:
		t.Skip("this backend has no durable option")
	}
	t.Cleanup(func() { _ = b.Close() })
	s, ok := b.(cluster.SessionStore)
	if !ok {
		t.Fatalf("%T is not a cluster.SessionStore", b)
	}
	return s
}

// TestSessions runs the session store contract against the backend: saving
// with and without Create, taking (once, by one of concurrent takers),
// deleting, and the time to live.
func TestSessions(t *testing.T, env *Env) {
	t.Run("SaveTakeDelete", func(t *testing.T) {
		t.Parallel()
		testSessionsBasics(t, env)
	})
	t.Run("ConcurrentTakes", func(t *testing.T) {
		t.Parallel()
		testSessionsConcurrentTakes(t, env)
	})
	t.Run("TTL", func(t *testing.T) {
		t.Parallel()
		testSessionsTTL(t, env)
	})
}

// sessionsLongTTL outlives every test.
const sessionsLongTTL = time.Minute

func create(key, data string) cluster.SessionRecord {
	return cluster.SessionRecord{Key: key, Data: []byte(data), Create: true}
}

func update(key, data string) cluster.SessionRecord {
	return cluster.SessionRecord{Key: key, Data: []byte(data)}
}

func saveOK(t testing.TB, ctx context.Context, s cluster.SessionStore, ttl time.Duration, recs ...cluster.SessionRecord) []string {
	t.Helper()
	missing, err := s.SaveSessions(ctx, recs, ttl)
	if err != nil {
		t.Fatalf("SaveSessions: %v", err)
	}
	slices.Sort(missing)
	return missing
}

func expectTake(t testing.TB, ctx context.Context, s cluster.SessionStore, key, want string) {
	t.Helper()
	got, err := s.TakeSession(ctx, key)
	if err != nil || string(got) != want {
		t.Errorf("TakeSession(%q) = %q, %v; want %q", key, got, err, want)
	}
}

func expectNone(t testing.TB, ctx context.Context, s cluster.SessionStore, key string) {
	t.Helper()
	got, err := s.TakeSession(ctx, key)
	if !errors.Is(err, cluster.ErrNotFound) {
		t.Errorf("TakeSession(%q) = %q, %v; want ErrNotFound", key, got, err)
	}
}

// testSessionsBasics: Create stores and replaces; without it only existing
// records are replaced and the others reported; Take returns then removes,
// seen the same by every node; Delete.
func testSessionsBasics(t *testing.T, env *Env) {
	ctx := bg(t)
	ns := Namespace()
	s := sessionsOf(t, env, ns)
	other := sessionsOf(t, env, ns)

	expectNone(t, ctx, s, "a")
	if m := saveOK(t, ctx, s, sessionsLongTTL); len(m) != 0 {
		t.Errorf("SaveSessions(nothing) reports %q missing", m)
	}
	if m := saveOK(t, ctx, s, sessionsLongTTL, create("a", "A1"), create("b", "B1")); len(m) != 0 {
		t.Errorf("SaveSessions with Create reports %q missing", m)
	}
	expectTake(t, ctx, other, "a", "A1")
	expectNone(t, ctx, other, "a")
	expectNone(t, ctx, s, "a")

	// Without Create: only what exists (b), whether never saved (c) or
	// taken (a).
	m := saveOK(t, ctx, s, sessionsLongTTL, update("b", "B2"), update("c", "C2"), update("a", "A2"))
	if !slices.Equal(m, []string{"a", "c"}) {
		t.Errorf("SaveSessions without Create of b (there), c (never) and a (taken) reports %q missing; want [a c]", m)
	}
	expectNone(t, ctx, other, "c")
	expectNone(t, ctx, other, "a")
	expectTake(t, ctx, other, "b", "B2")

	// Create replaces; a batch mixes both kinds.
	saveOK(t, ctx, s, sessionsLongTTL, create("d", "D1"))
	m = saveOK(t, ctx, other, sessionsLongTTL, create("d", "D2"), update("d", "D3"), update("e", "E1"), create("f", "F1"), update("f", "F2"))
	if !slices.Equal(m, []string{"e"}) {
		t.Errorf("a mixed SaveSessions reports %q missing; want [e]", m)
	}
	expectTake(t, ctx, s, "d", "D3")
	expectTake(t, ctx, s, "f", "F2")
	expectNone(t, ctx, s, "e")

	// The longest key; empty data.
	long := strings.Repeat("k", 60) + "-_9Z"
	saveOK(t, ctx, s, sessionsLongTTL, create(long, "L"), create("empty", ""))
	expectTake(t, ctx, other, long, "L")
	expectTake(t, ctx, other, "empty", "")
	expectNone(t, ctx, other, "empty")

	// Delete.
	saveOK(t, ctx, s, sessionsLongTTL, create("x1", "X1"), create("x2", "X2"), create("x3", "X3"))
	if err := other.DeleteSessions(ctx, []string{"x1", "x2", "never"}); err != nil {
		t.Fatalf("DeleteSessions: %v", err)
	}
	if err := other.DeleteSessions(ctx, nil); err != nil {
		t.Errorf("DeleteSessions(nil): %v", err)
	}
	expectNone(t, ctx, s, "x1")
	expectNone(t, ctx, s, "x2")
	if m := saveOK(t, ctx, s, sessionsLongTTL, update("x1", "again")); !slices.Equal(m, []string{"x1"}) {
		t.Errorf("SaveSessions without Create of a deleted key reports %q missing", m)
	}
	expectTake(t, ctx, s, "x3", "X3")
}

// testSessionsConcurrentTakes: of 20 nodes taking one record at once,
// exactly one gets it.
func testSessionsConcurrentTakes(t *testing.T, env *Env) {
	ctx := bg(t)
	ns := Namespace()
	stores := []cluster.SessionStore{sessionsOf(t, env, ns), sessionsOf(t, env, ns)}
	const takers = 20
	for round := range 5 {
		key := fmt.Sprintf("race-%d", round)
		saveOK(t, ctx, stores[0], sessionsLongTTL, create(key, "the one"))
		var wins, misses atomic.Int32
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range takers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				got, err := stores[i%2].TakeSession(ctx, key)
				switch {
				case err == nil && string(got) == "the one":
					wins.Add(1)
				case errors.Is(err, cluster.ErrNotFound):
					misses.Add(1)
				default:
					t.Errorf("TakeSession(%q) = %q, %v", key, got, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if wins.Load() != 1 || misses.Load() != takers-1 {
			t.Errorf("round %d: %d of %d concurrent takes got the record, %d got ErrNotFound; want exactly 1", round, wins.Load(), takers, misses.Load())
		}
		expectNone(t, ctx, stores[1], key)
	}
}

// testSessionsTTL saves records for a second and polls, with a fresh
// record each time (a take removes it), until they are gone: not before
// the second, within a few; a record saved again with a longer ttl (before
// the others: it would have expired first), and one saved with a long
// ttl, are still there.
func testSessionsTTL(t *testing.T, env *Env) {
	ctx := bg(t)
	ns := Namespace()
	s := sessionsOf(t, env, ns)
	other := sessionsOf(t, env, ns)
	const ttl = time.Second

	saveOK(t, ctx, s, ttl, create("renewed", "R1"))
	start := time.Now()
	var keys []string
	var recs []cluster.SessionRecord
	for i := range 100 {
		keys = append(keys, fmt.Sprintf("short-%d", i))
		recs = append(recs, create(keys[i], "S"))
	}
	saveOK(t, ctx, s, ttl, recs...)
	if m := saveOK(t, ctx, s, sessionsLongTTL, update("renewed", "R2")); len(m) != 0 {
		t.Fatalf("renewing a record saved a moment ago: reported missing")
	}
	saveOK(t, ctx, s, sessionsLongTTL, create("long", "L"))

	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(ttl + 3*time.Second)
	defer deadline.Stop()
	i := 0
	for ; ; i++ {
		if i == len(keys) {
			t.Fatalf("records saved with a ttl of %v still there after %v", ttl, time.Since(start))
		}
		got, err := other.TakeSession(ctx, keys[i])
		if errors.Is(err, cluster.ErrNotFound) {
			break
		}
		if err != nil || string(got) != "S" {
			t.Fatalf("TakeSession(%q) = %q, %v", keys[i], got, err)
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("records saved with a ttl of %v still there after %v", ttl, time.Since(start))
		}
	}
	gone := time.Since(start)
	t.Logf("records with a ttl of %v gone %v after they were saved", ttl, gone.Round(time.Millisecond))
	if i == 0 {
		t.Errorf("a record saved with a ttl of %v was gone at once", ttl)
	}
	if gone < ttl-50*time.Millisecond {
		t.Errorf("records saved with a ttl of %v gone after %v", ttl, gone)
	}
	expectTake(t, ctx, other, "renewed", "R2")
	expectTake(t, ctx, other, "long", "L")
}
