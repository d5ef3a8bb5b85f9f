package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/emitter"
	"github.com/go-primus/primus/multiplex"
	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/plugin"
	"github.com/go-primus/primus/substream"
)

// pluginServer is a server with the three plugins: emitter events echo, ask
// and ping-me; channels chat (echo), news (to every subscriber) and rpc (an
// emitter inside the channel); substream s1 (upper-cases strings).
func pluginServer(t *testing.T) *primus.Server {
	t.Helper()
	em := emitter.New(nil)
	mx := multiplex.New(nil)
	ss := substream.New(nil)
	plugins := []plugin.Plugin{em, mx, ss}
	srv, err := primus.New(&primus.Options{Plugins: plugins})
	if err != nil {
		t.Fatal(err)
	}

	em.On("echo", func(ev *emitter.Event) { _ = ev.Ack(ev.Args.Raw()...) })
	em.On("ping-me", func(ev *emitter.Event) { _ = em.Send(ev.Spark, "pong", ev.Args.Raw()...) })
	em.On("ask", func(ev *emitter.Event) {
		// Ask the browser a question and tell it what it answered.
		_ = em.SendAckFunc(context.Background(), ev.Spark, "question", func(reply emitter.Args, err error) {
			if err == nil {
				_ = em.Send(ev.Spark, "answer", reply.Raw()...)
			}
		}, ev.Args.Raw()...)
	})

	srv.OnConnection(func(sp *primus.Spark) {
		var st *substream.Stream
		st, _ = ss.Stream(sp, "s1", &substream.StreamOptions{OnData: func(m *parser.Message) {
			var text string
			if m.Decode(&text) == nil {
				_ = st.Write(strings.ToUpper(text))
			}
		}})
	})

	chat := mx.Channel("chat")
	chat.OnConnection(func(cs *multiplex.Spark) {
		cs.OnData(func(m *parser.Message) { _ = cs.Write(m.Raw()) })
	})
	news := mx.Channel("news")
	news.OnConnection(func(cs *multiplex.Spark) {
		cs.OnData(func(m *parser.Message) { _ = news.Write(m.Raw()) })
	})
	rpc := mx.Channel("rpc")
	rem := emitter.New(nil)
	if err := rpc.Use(rem); err != nil {
		t.Fatal(err)
	}
	rem.On("add", func(ev *emitter.Event) {
		var a, b float64
		if err := ev.Args.Decode(&a, &b); err == nil {
			_ = ev.Ack(a + b)
		}
	})
	return srv
}

// TestPluginsInChromium uses the browser parts of the plugins served with
// the library: emitter events with acknowledgements both ways, multiplex
// channels (an echo channel, a channel shared by two subscriptions, an
// emitter inside a channel), channels that subscribe again after the
// server drops the connection, and plugin packets kept from the data
// listeners.
func TestPluginsInChromium(t *testing.T) {
	t.Parallel()
	srv := pluginServer(t)
	page := startServer(t, srv)
	b := newBrowser(t)
	ctx, _ := b.tab(1)
	do(t, ctx, chromedp.Navigate(page), waitJS(`typeof connect === 'function'`))

	type result struct {
		Echo   []any  `json:"echo"`
		Pong   []any  `json:"pong"`
		Answer int    `json:"answer"`
		Chat   string `json:"chat"`
		News   []any  `json:"news"`
		Sum    int    `json:"sum"`
		Sub    string `json:"sub"`
		Inbox  []any  `json:"inbox"`
		ID     string `json:"id"`
	}
	res := eval[result](t, ctx, `(async () => {
		const p = window.plugged = connect();
		const once = (em, ev) => new Promise((r) => em.once(ev, (...args) => r(args)));
		const echo = await new Promise((r) => p.send('echo', {x: 1}, 'two', (...args) => r(args)));
		const pong = once(p, 'pong');
		p.send('ping-me', 'payload', 3);
		p.on('question', (n, ack) => ack(n * 2));
		const answer = once(p, 'answer');
		p.send('ask', 21);
		const chat = window.chat = p.channel('chat');
		const chatData = once(chat, 'data');
		chat.write('hi chat');
		const n1 = p.channel('news'), n2 = p.channel('news');
		const news = Promise.all([once(n1, 'data'), once(n2, 'data')]);
		await p.opened();
		n1.write('headline');
		const rpc = p.channel('rpc');
		const sum = await new Promise((r) => rpc.send('add', 2, 3, r));
		const s1 = p.substream('s1');
		const sub = once(s1, 'data');
		s1.write('quiet please');
		return {echo, pong: await pong, answer: (await answer)[0], chat: (await chatData)[0],
			news: (await news).map((a) => a[0]), sum, sub: (await sub)[0], inbox: p.inbox, id: await p.getID()};
	})()`)
	if !equalJSON(res.Echo, []any{map[string]any{"x": 1.0}, "two"}) {
		t.Errorf("echo ack %v", res.Echo)
	}
	if !equalJSON(res.Pong, []any{"payload", 3.0}) {
		t.Errorf("pong %v", res.Pong)
	}
	if res.Answer != 42 || res.Chat != "hi chat" || !equalJSON(res.News, []any{"headline", "headline"}) || res.Sum != 5 || res.Sub != "QUIET PLEASE" {
		t.Errorf("%+v", res)
	}
	if len(res.Inbox) != 0 {
		t.Errorf("data listeners saw plugin packets: %v", res.Inbox)
	}

	// The server drops the connection; the channel subscribes again with
	// the same id, and its messages flow again.
	sp, ok := srv.Spark(res.ID)
	if !ok {
		t.Fatalf("no spark %s", res.ID)
	}
	before := eval[string](t, ctx, `chat.id`)
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	type after struct {
		Events []string `json:"events"`
		Echo   string   `json:"echo"`
		ID     string   `json:"id"`
	}
	got := eval[after](t, ctx, `(async () => {
		await plugged.opened(2);
		const back = new Promise((r) => chat.once('data', r));
		chat.write('back again');
		return {events: plugged.events, echo: await back, id: chat.id};
	})()`)
	if got.Echo != "back again" || got.ID != before {
		t.Errorf("after the drop: echo %q, channel id %q (was %q)", got.Echo, got.ID, before)
	}
	if !slices.Contains(got.Events, "reconnected") {
		t.Errorf("events %v", got.Events)
	}
	eventually(t, "the dropped connection to be gone", func() bool { return srv.Count() == 1 })
}
