package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/go-primus/primus"
)

// TestRecoveryInChromium: with recovery on, the served client in the
// browser comes back to its spark after a server-side drop; the messages
// the server wrote during the gap appear on the page once, in order, and
// what the page wrote during the gap reaches the server once, in order.
func TestRecoveryInChromium(t *testing.T) {
	t.Parallel()
	srv := contractServer(t, &primus.Options{Recovery: &primus.Recovery{Window: time.Minute}})
	sparks := make(chan *primus.Spark, 4)
	dropped := make(chan struct{}, 4)
	srv.OnConnection(func(sp *primus.Spark) {
		sp.OnDrop(func(error) { dropped <- struct{}{} })
		sparks <- sp
	})
	page := startServer(t, srv)
	b := newBrowser(t)
	ctx, _ := b.tab(1)
	do(t, ctx, chromedp.Navigate(page), waitJS(`typeof Primus === 'function' && typeof connect === 'function'`))

	firstID := eval[string](t, ctx, `(async () => {
		window.p = connect('', { reconnect: { min: 2000, max: 2000, retries: 5 } });
		p.recoveries = [];
		p.on('recovery', (info) => p.recoveries.push(info));
		await p.opened();
		return p.getID();
	})()`)
	sp := waitFor(t, sparks, "the spark")
	if sp.ID() != firstID {
		t.Fatalf("page id %s, spark %s", firstID, sp.ID())
	}

	// The server drops the connection; while the client waits to
	// reconnect (2 s), both sides write.
	_ = sp.Close()
	waitFor(t, dropped, "the drop")
	for i := 1; i <= 5; i++ {
		if err := sp.Write(map[string]int{"gap": i}); err != nil {
			t.Fatalf("write during the gap: %v", err)
		}
	}
	eval[chromedp.Void](t, ctx, `(() => { for (let i = 1; i <= 5; i++) p.write({mine: i}); })()`)

	type result struct {
		Gap        []int            `json:"gap"`
		Mine       []int            `json:"mine"`
		ID         string           `json:"id"`
		Recovered  bool             `json:"recovered"`
		Recoveries []map[string]any `json:"recoveries"`
		Events     []string         `json:"events"`
	}
	res := eval[result](t, ctx, `(async () => {
		await p.opened(2);
		const gap = [], mine = [];
		while (gap.length < 5 || mine.length < 5) {
			const d = await p.next();
			if (d && d.gap) gap.push(d.gap);
			else if (d && d.mine) mine.push(d.mine);
		}
		const id = await p.getID();
		return {gap, mine, id, recovered: p.recovered, recoveries: p.recoveries, events: p.events};
	})()`)
	want := []int{1, 2, 3, 4, 5}
	if fmt.Sprint(res.Gap) != fmt.Sprint(want) {
		t.Errorf("the page got the gap's messages %v, want %v once each", res.Gap, want)
	}
	if fmt.Sprint(res.Mine) != fmt.Sprint(want) {
		t.Errorf("the server echoed the page's gap writes as %v, want %v once each", res.Mine, want)
	}
	if res.ID != firstID || !res.Recovered || len(res.Recoveries) != 1 || res.Recoveries[0]["recovered"] != true {
		t.Errorf("after the drop: id %s (was %s), recovered %v, recovery events %v", res.ID, firstID, res.Recovered, res.Recoveries)
	}
	// A moment later, nothing arrived twice.
	if extra := eval[int](t, ctx, `new Promise((r) => setTimeout(() => r(p.inbox.length), 300))`); extra != 0 {
		t.Errorf("%d more messages arrived after the gap's", extra)
	}
	eval[chromedp.Void](t, ctx, `(() => { p.end(); })()`)
}

// waitFor receives from ch, failing the test after a generous bound.
func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	panic("unreachable")
}
