package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/transport/engineio"
)

// engineioClientFile is the browser build of engine.io-client 6.6 (it
// defines the global eio) that npm ci installs for the interop tests.
const engineioClientFile = "../interop/node/node_modules/engine.io-client/dist/engine.io.min.js"

// requireEngineIOClient returns the path of engine.io-client's browser
// build, skipping the test without it (failing it when CI is set).
func requireEngineIOClient(t *testing.T) string {
	t.Helper()
	path, err := filepath.Abs(engineioClientFile)
	if err == nil {
		_, err = os.Stat(path)
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("engine.io-client's browser build is required when CI is set (npm ci in interop/node): %v", err)
		}
		t.Skipf("no %s (run npm ci in interop/node); skipping the engine.io browser test", engineioClientFile)
	}
	return path
}

// engineioPage serves the test page with engine.io-client loaded first, and
// the plain test page (without it) at /no-eio.
func engineioPage(t *testing.T, srv *primus.Server) string {
	t.Helper()
	lib := requireEngineIOClient(t)
	withEIO := strings.Replace(testPage, `<script src="/primus/primus.js">`, `<script src="/engine.io.min.js"></script><script src="/primus/primus.js">`, 1)
	return startServerPage(t, srv, withEIO, map[string]http.Handler{
		"GET /engine.io.min.js": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, lib) }),
		"GET /no-eio":           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(testPage)) }),
	})
}

// TestClientEngineIOInChromium runs the served client over the engine.io
// transformer in the browser, with the engine.io-client the page loads:
// over long-polling only, and polling upgraded to WebSocket (checked:
// engine.io-client's transport is then websocket), each with echo, the id
// (which the client knows locally: the sid) and a server-side drop
// followed by the reconnection; the CBOR parser over the upgraded session;
// and the clear error of a page that did not load engine.io-client.
func TestClientEngineIOInChromium(t *testing.T) {
	t.Parallel()
	srv := contractServer(t, &primus.Options{Transformer: engineio.New(nil)})
	page := engineioPage(t, srv)
	b := newBrowser(t)
	ctx, _ := b.tab(1)
	do(t, ctx, chromedp.Navigate(page), waitJS(`typeof eio === 'function' && typeof connect === 'function'`))

	type result struct {
		Before string   `json:"before"`
		After  string   `json:"after"`
		Echo   []any    `json:"echo"`
		Same   bool     `json:"same"`
		Local  bool     `json:"local"`
		Events []string `json:"events"`
	}
	for _, tc := range []struct {
		name    string
		options string
		want    string // the transport once the connection has settled
	}{
		{"polling", `{websockets: false}`, "polling"},
		{"upgrade", `{}`, "websocket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := eval[result](t, ctx, `(async () => {
				const settled = (p) => new Promise((r) => {
					if (`+tc.options+`.websockets === false || p.socket.transport.name === 'websocket') r();
					else p.socket.once('upgrade', () => r());
				});
				const p = connect('', `+tc.options+`);
				p.write('queued');
				await p.opened();
				await settled(p);
				const before = p.socket.transport.name;
				p.write({nested: [1, 'two']});
				const echo = [await p.next(), await p.next()];
				p.write({cmd: 'whoami'});
				const me = await p.next();
				const local = me.id === p.socket.id;
				const same = me.id === await p.getID();
				p.write({cmd: 'drop'});
				await p.opened(2);
				await settled(p);
				const after = p.socket.transport.name;
				p.write('after the drop');
				echo.push(await p.next());
				p.end();
				return {before, after, echo, same, local, events: p.events};
			})()`)
			if res.Before != tc.want || res.After != tc.want {
				t.Errorf("transport %q, after the reconnection %q; want %q", res.Before, res.After, tc.want)
			}
			if !equalJSON(res.Echo, []any{"queued", map[string]any{"nested": []any{1.0, "two"}}, "after the drop"}) || !res.Same || !res.Local {
				t.Errorf("%+v", res)
			}
			// The drop reaches the client as Engine.IO's close packet (or a
			// closed WebSocket): a lost connection, no error.
			if want := []string{"open", "close", "reconnect scheduled", "reconnect", "reconnected", "open", "close", "end"}; !slices.Equal(res.Events, want) {
				t.Errorf("events %v, want %v", res.Events, want)
			}
		})
	}

	t.Run("refused", func(t *testing.T) {
		events := eval[[]string](t, ctx, `(async () => {
			const p = connect('token=bad');
			await p.until(() => p.count('end') > 0);
			return p.events;
		})()`)
		if want := []string{"error", "close", "end"}; !slices.Equal(events, want) {
			t.Errorf("events %v, want %v", events, want)
		}
	})

	t.Run("CBOR", func(t *testing.T) {
		csrv := contractServer(t, &primus.Options{Transformer: engineio.New(nil), Parser: parser.CBOR})
		cpage := engineioPage(t, csrv)
		cctx, _ := b.tab(2)
		do(t, cctx, chromedp.Navigate(cpage), waitJS(`typeof eio === 'function' && typeof connect === 'function'`))
		type cborResult struct {
			Polled    bool   `json:"polled"`
			Transport string `json:"transport"`
			Mismatch  []int  `json:"mismatch"`
			Same      bool   `json:"same"`
		}
		res := eval[cborResult](t, cctx, `(async () => {
			const p = connect();
			await p.opened();
			const values = ['text', 2 ** 40, -0, [1, {a: null}], new Uint8Array([0, 1, 0x1e, 255]), 'Jörg 😀'];
			// The first ones go while polling (base64), the others once
			// upgraded (binary frames).
			const polled = p.socket.transport.name === 'polling';
			for (const v of values.slice(0, 3)) p.write(v);
			if (p.socket.transport.name !== 'websocket') await new Promise((r) => p.socket.once('upgrade', () => r()));
			for (const v of values.slice(3)) p.write(v);
			const mismatch = [];
			for (let i = 0; i < values.length; i++) if (!same(await p.next(), values[i])) mismatch.push(i);
			p.write({cmd: 'whoami'});
			const me = await p.next();
			const transport = p.socket.transport.name;
			const sameID = me.id === p.socket.id;
			p.end();
			return {polled, transport, mismatch, same: sameID};
		})()`)
		if !res.Polled || res.Transport != "websocket" || len(res.Mismatch) != 0 || !res.Same {
			t.Errorf("%+v", res)
		}
	})

	t.Run("without engine.io-client", func(t *testing.T) {
		do(t, ctx, chromedp.Navigate(strings.TrimSuffix(page, "/")+"/no-eio"), waitJS(`typeof Primus === 'function'`))
		msg := eval[string](t, ctx, `(() => { try { new Primus(); return 'no error'; } catch (e) { return e.message; } })()`)
		if !strings.Contains(msg, "engine.io-client is not loaded") {
			t.Errorf("new Primus() without engine.io-client: %q", msg)
		}
	})
}
