package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/transport/sockjs"
)

// sockjsClientFile is the browser build of sockjs-client that npm ci
// installs for the interop tests.
const sockjsClientFile = "../interop/node/node_modules/sockjs-client/dist/sockjs.min.js"

// requireSockJSClient returns the path of sockjs-client's browser build,
// skipping the test without it (failing it when CI is set).
func requireSockJSClient(t *testing.T) string {
	t.Helper()
	path, err := filepath.Abs(sockjsClientFile)
	if err == nil {
		_, err = os.Stat(path)
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("sockjs-client's browser build is required when CI is set (npm ci in interop/node): %v", err)
		}
		t.Skipf("no %s (run npm ci in interop/node); skipping the SockJS browser test", sockjsClientFile)
	}
	return path
}

// TestClientSockJSInChromium runs the served client over the SockJS
// transformer in the browser, with the sockjs-client the page loads:
// echo, id and reconnection, over SockJS's WebSocket and over XHR polling
// and streaming; and the clear error of a page that did not load SockJS.
func TestClientSockJSInChromium(t *testing.T) {
	t.Parallel()
	lib := requireSockJSClient(t)
	srv := contractServer(t, &primus.Options{
		Transformer:  sockjs.New(&sockjs.Options{DisconnectDelay: 500 * time.Millisecond}),
		PingInterval: time.Second,
	})
	withSockJS := strings.Replace(testPage, `<script src="/primus/primus.js">`, `<script src="/sockjs.min.js"></script><script src="/primus/primus.js">`, 1)
	page := startServerPage(t, srv, withSockJS, map[string]http.Handler{
		"GET /sockjs.min.js": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, lib) }),
		"GET /no-sockjs":     http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(testPage)) }),
	})
	b := newBrowser(t)
	ctx, _ := b.tab(1)
	do(t, ctx, chromedp.Navigate(page), waitJS(`typeof SockJS === 'function' && typeof connect === 'function'`))

	for _, transport := range []string{"websocket", "xhr-streaming", "xhr-polling"} {
		t.Run(transport, func(t *testing.T) {
			type result struct {
				Used   string   `json:"used"`
				Echo   []any    `json:"echo"`
				Same   bool     `json:"same"`
				Events []string `json:"events"`
			}
			res := eval[result](t, ctx, `(async () => {
				const p = connect('', {transport: {transports: ['`+transport+`']}});
				p.write('queued');
				await p.opened();
				const used = p.socket.transport;
				p.write({nested: [1, 'two']});
				const echo = [await p.next(), await p.next()];
				p.write({cmd: 'whoami'});
				const me = await p.next();
				const same = me.id === await p.getID();
				p.write({cmd: 'drop'});
				await p.opened(2);
				p.write('after the drop');
				echo.push(await p.next());
				p.end();
				return {used, echo, same, events: p.events};
			})()`)
			if res.Used != transport {
				t.Errorf("sockjs-client used %q", res.Used)
			}
			if !equalJSON(res.Echo, []any{"queued", map[string]any{"nested": []any{1.0, "two"}}, "after the drop"}) || !res.Same {
				t.Errorf("%+v", res)
			}
			// The server drops the session with c[3000,"dropped"]; a close
			// code above 1000 is reported as an error first, as by Primus's
			// SockJS client.
			if want := []string{"open", "error", "close", "reconnect scheduled", "reconnect", "reconnected", "open", "close", "end"}; !slices.Equal(res.Events, want) {
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

	t.Run("without SockJS", func(t *testing.T) {
		do(t, ctx, chromedp.Navigate(strings.TrimSuffix(page, "/")+"/no-sockjs"), waitJS(`typeof Primus === 'function'`))
		msg := eval[string](t, ctx, `(() => { try { new Primus(); return 'no error'; } catch (e) { return e.message; } })()`)
		if !strings.Contains(msg, "SockJS is not loaded") {
			t.Errorf("new Primus() without SockJS: %q", msg)
		}
	})
}
