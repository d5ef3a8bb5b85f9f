package e2e

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/cmd/primus-testserver/testserver"
	"github.com/go-primus/primus/parser"
)

// contractServer is a server with the interop test server's behaviour
// (echo, broadcast, close, whoami, drop; token=bad is refused).
func contractServer(t *testing.T, opts *primus.Options) *primus.Server {
	t.Helper()
	srv, err := primus.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	testserver.Setup(srv)
	return srv
}

// TestClientInChromium runs the served client in the browser against the
// contract server: it loads from /primus/primus.js, connects, echoes, knows
// its id, survives a server-side drop by reconnecting, receives a broadcast
// written by the Go server, reports a refused connection, and follows the
// browser going offline and online.
func TestClientInChromium(t *testing.T) {
	t.Parallel()
	srv := contractServer(t, &primus.Options{PingInterval: time.Second})
	page := startServer(t, srv)
	b := newBrowser(t)
	ctx, _ := b.tab(1)
	do(t, ctx, chromedp.Navigate(page), waitJS(`typeof Primus === 'function' && typeof connect === 'function'`))

	t.Run("echo and id", func(t *testing.T) {
		type result1 struct {
			Echoed []any  `json:"echoed"`
			ID     string `json:"id"`
			Whoami struct {
				ID    string            `json:"id"`
				Query map[string]string `json:"query"`
			} `json:"whoami"`
			Events []string `json:"events"`
		}
		res := eval[result1](t, ctx, `(async () => {
			const p = connect('token=abc&name=J%C3%B6rg');
			p.write('queued before open');
			await p.opened();
			const values = ['hello', 42, 1.5, true, null, {a: [1, 'two', {three: 3}]}, 'Jörg 😀', 'primus::custom::x'];
			for (const v of values) p.write(v);
			const echoed = [];
			for (let i = 0; i <= values.length; i++) echoed.push(await p.next());
			p.write({cmd: 'whoami'});
			const whoami = await p.next();
			const id = await p.getID();
			p.end();
			return {echoed, id, whoami, events: p.events};
		})()`)
		want := []any{"queued before open", "hello", 42.0, 1.5, true, nil, map[string]any{"a": []any{1.0, "two", map[string]any{"three": 3.0}}}, "Jörg 😀", "primus::custom::x"}
		if len(res.Echoed) != len(want) {
			t.Fatalf("echoed %v, want %v", res.Echoed, want)
		}
		for i := range want {
			if !equalJSON(res.Echoed[i], want[i]) {
				t.Errorf("echo %d: got %#v, want %#v", i, res.Echoed[i], want[i])
			}
		}
		if res.ID == "" || res.ID != res.Whoami.ID {
			t.Errorf("id() = %q, whoami id = %q", res.ID, res.Whoami.ID)
		}
		eventually(t, "the spark to end after the client's end()", func() bool {
			_, ok := srv.Spark(res.ID)
			return !ok
		})
		if res.Whoami.Query["token"] != "abc" || res.Whoami.Query["name"] != "Jörg" || res.Whoami.Query["_primuscb"] == "" {
			t.Errorf("query %v", res.Whoami.Query)
		}
		if want := []string{"open", "close", "end"}; !slices.Equal(res.Events, want) {
			t.Errorf("events %v, want %v", res.Events, want)
		}
	})

	t.Run("drop and reconnect", func(t *testing.T) {
		type result2 struct {
			Events []string `json:"events"`
			Echo   string   `json:"echo"`
			Before string   `json:"before"`
			After  string   `json:"after"`
		}
		res := eval[result2](t, ctx, `(async () => {
			const p = connect();
			await p.opened();
			const before = await p.getID();
			p.write({cmd: 'drop'});
			await p.opened(2);
			p.write('after the drop');
			const echo = await p.next();
			const after = await p.getID();
			p.end();
			return {events: p.events, echo, before, after};
		})()`)
		want := []string{"open", "close", "reconnect scheduled", "reconnect", "reconnected", "open", "close", "end"}
		if !slices.Equal(res.Events, want) {
			t.Errorf("events %v, want %v", res.Events, want)
		}
		if res.Echo != "after the drop" || res.Before == res.After {
			t.Errorf("after reconnecting: echo %q, ids %q → %q", res.Echo, res.Before, res.After)
		}
	})

	t.Run("broadcast from the server", func(t *testing.T) {
		eval[chromedp.Void](t, ctx, `(() => {
			window.listeners = [connect(), connect()];
			window.got = Promise.all(listeners.map(async (p) => { await p.opened(); return p.next(); }));
			// An id round trip: the server has the spark by then (the
			// browser's open event can come first).
			return Promise.all(listeners.map(async (p) => { await p.opened(); await p.getID(); }));
		})()`)
		if err := srv.Write(map[string]any{"news": "for everyone"}); err != nil {
			t.Fatal(err)
		}
		got := eval[[]map[string]string](t, ctx, `window.got.then((g) => { for (const p of listeners) p.end(); return g; })`)
		if len(got) != 2 || got[0]["news"] != "for everyone" || got[1]["news"] != "for everyone" {
			t.Errorf("the two clients got %v", got)
		}
	})

	t.Run("refused connection", func(t *testing.T) {
		type result3 struct {
			Events []string `json:"events"`
		}
		res := eval[result3](t, ctx, `(async () => {
			const p = connect('token=bad');
			await p.until(() => p.count('end') > 0);
			await new Promise((r) => setTimeout(r, 1000)); // it must not retry
			return {events: p.events};
		})()`)
		if want := []string{"error", "close", "end"}; !slices.Equal(res.Events, want) {
			t.Errorf("events %v, want %v", res.Events, want)
		}
	})

	t.Run("offline and online", func(t *testing.T) {
		eval[chromedp.Void](t, ctx, `(async () => {
			window.net = connect();
			await net.opened();
			return true;
		})()`)
		setOffline(t, ctx, true)
		do(t, ctx, waitJS(`net.count('offline') === 1 && net.count('end') === 1`))
		setOffline(t, ctx, false)
		events := eval[[]string](t, ctx, `(async () => {
			await net.opened(2);
			net.write('back');
			if (await net.next() !== 'back') throw new Error('no echo after coming back online');
			net.end();
			return net.events;
		})()`)
		want := []string{"open", "offline", "close", "end", "online", "reconnect scheduled", "reconnect", "reconnected", "open", "close", "end"}
		if !slices.Equal(events, want) {
			t.Errorf("events %v, want %v", events, want)
		}
	})
}

// TestClientCBORInChromium runs the served client with the CBOR parser:
// binary frames through the browser's WebSocket, values encoded by the
// JavaScript codec (echoes) and by the Go parser (whoami, broadcasts).
func TestClientCBORInChromium(t *testing.T) {
	t.Parallel()
	srv := contractServer(t, &primus.Options{Parser: parser.CBOR})
	page := startServer(t, srv)
	b := newBrowser(t)
	ctx, _ := b.tab(1)
	do(t, ctx, chromedp.Navigate(page), waitJS(`typeof connect === 'function'`))
	type result4 struct {
		Parser    string `json:"parser"`
		Mismatch  []int  `json:"mismatch"`
		Binary    bool   `json:"binary"`
		Broadcast bool   `json:"broadcast"`
		SameID    bool   `json:"sameID"`
	}
	res := eval[result4](t, ctx, `(async () => {
		const p = connect();
		const frames = [];
		p.on('outgoing::data', (f) => frames.push(f));
		await p.opened();
		const values = ['text', 0, -1, 2 ** 40, 1.5, 0.1, -0, NaN, Infinity, true, false, null,
			[1, [2, [3]]], {a: {b: {c: 'd'}}}, new Uint8Array([0, 1, 254, 255]), 'Jörg 😀'];
		for (const v of values) p.write(v);
		const mismatch = [];
		for (let i = 0; i < values.length; i++) if (!same(await p.next(), values[i])) mismatch.push(i);
		const payload = {list: [1, 'x', null], f: 2.5, bytes: new Uint8Array([7])};
		p.write({cmd: 'broadcast', data: payload});
		const broadcast = same(await p.next(), payload);
		p.write({cmd: 'whoami'});
		const me = await p.next();
		const sameID = me.id === await p.getID();
		p.end();
		return {parser: Primus.prototype.parser, mismatch, binary: frames.every((f) => f instanceof Uint8Array), broadcast, sameID};
	})()`)
	if res.Parser != "cbor" || len(res.Mismatch) != 0 || !res.Binary || !res.Broadcast || !res.SameID {
		t.Errorf("%+v", res)
	}
}

// setOffline makes the tab's network offline or online again; the page sees
// navigator.onLine change and gets the offline and online events.
func setOffline(t *testing.T, ctx context.Context, offline bool) {
	t.Helper()
	_, err := chromedp.Call(ctx, network.OverrideNetworkState, network.OverrideNetworkStateParams{
		Offline: offline, DownloadThroughput: -1, UploadThroughput: -1,
	})
	if err != nil {
		t.Fatalf("network override: %v", err)
	}
}

// eventually polls cond until it holds, failing the test after testTimeout.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", testTimeout, what)
		}
		<-tick.C
	}
}

// equalJSON compares values decoded from JSON.
func equalJSON(a, b any) bool {
	switch x := a.(type) {
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalJSON(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k := range x {
			if !equalJSON(x[k], y[k]) {
				return false
			}
		}
		return true
	}
	return a == b
}
