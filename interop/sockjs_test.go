package interop

import (
	"context"
	"errors"
	"os/exec"
	"testing"
	"time"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/transport"
	"github.com/go-primus/primus/transport/sockjs"
)

// TestStockClientSockJS checks the Go test server with -transformer sockjs
// against the contract (items 1-8) with the stock primus@8.0.9 client
// compiled for sockjs, running sockjs-client@1.6.1, once per SockJS
// transport (forced with Primus's `transport` client option): WebSocket,
// the streaming fallback, the polling fallback, and eventsource (which
// sockjs-client also offers in Node). htmlfile and jsonp-polling need a
// browser's DOM; transport/sockjs tests them at the protocol level.
func TestStockClientSockJS(t *testing.T) {
	t.Parallel()
	requireNode(t)
	for _, tr := range []string{"websocket", "xhr-streaming", "xhr-polling", "eventsource"} {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			url := StartTestServer(t, "-transformer", "sockjs", "-ping-interval", "1s", "-plugins", "none")
			if err := runNode(t, 90*time.Second, "sockjs-transport.js", "contract-client.js", url, "--ping-interval", "1000", "--sockjs-transport", tr); err != nil {
				t.Fatalf("contract-client.js over SockJS %s failed against the Go test server: %v", tr, err)
			}
		})
	}
}

// TestStockPluginClientsSockJS checks items 9-11 (emitter, multiplex,
// substream, with the stock npm plugin clients) over SockJS: the Go test
// server with -transformer sockjs and every plugin on, the stock client
// forced onto the websocket, xhr-streaming and xhr-polling transports.
func TestStockPluginClientsSockJS(t *testing.T) {
	t.Parallel()
	requireNode(t)
	for _, tr := range []string{"websocket", "xhr-streaming", "xhr-polling"} {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			url := StartTestServer(t, "-transformer", "sockjs", "-plugins", "emitter,multiplex,substream")
			if err := runNode(t, 90*time.Second, "sockjs-transport.js", "plugins-client.js", url, "--sockjs-transport", tr); err != nil {
				t.Fatalf("plugins-client.js over SockJS %s failed against the Go test server: %v", tr, err)
			}
		})
	}
}

// TestStockClientSockJSAgainstNodeServer runs the same checks against a
// stock Node Primus server with the sockjs transformer: the harness is
// sound (every check passes against the reference).
func TestStockClientSockJSAgainstNodeServer(t *testing.T) {
	t.Parallel()
	url := startNodeSockJSServer(t, "--ping-interval", "1000")
	for _, tr := range []string{"websocket", "xhr-polling"} {
		if err := runNode(t, 90*time.Second, "sockjs-transport.js", "contract-client.js", url, "--ping-interval", "1000", "--sockjs-transport", tr); err != nil {
			t.Fatalf("contract-client.js over SockJS %s failed against node-server-sockjs.js: %v", tr, err)
		}
	}
}

// startNodeSockJSServer starts node/node-server-sockjs.js, the stock Node
// Primus server with the sockjs transformer.
func startNodeSockJSServer(t *testing.T, args ...string) string {
	t.Helper()
	requireNode(t)
	cmd := exec.Command("node", append([]string{"node-server-sockjs.js"}, args...)...)
	cmd.Dir = nodeDir
	return startServer(t, cmd)
}

// TestGoSockJSClientAgainstNodeServer runs our Go client with the SockJS
// dialer against the stock Node Primus sockjs server: echo, id,
// heartbeats, reconnect after a drop (c[3000,"dropped"]), the server's
// intentional close, and a refusal of /primus/info.
func TestGoSockJSClientAgainstNodeServer(t *testing.T) {
	t.Parallel()
	base := startNodeSockJSServer(t, "--ping-interval", "300")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	data := make(chan any, 16)
	opened := make(chan struct{}, 16)
	pings := make(chan struct{}, 64)
	reconnects := make(chan primus.ReconnectEvent, 16)
	ended := make(chan error, 1)
	c, err := primus.Dial(ctx, base+"/primus?token=abc", &primus.ClientOptions{
		Dialer: sockjs.New(nil),
		OnOpen: func() { opened <- struct{}{} },
		OnData: func(m *primus.Message) {
			v, err := m.Value()
			if err != nil {
				t.Errorf("decode: %v", err)
			}
			data <- v
		},
		OnHeartbeat: func() {
			select {
			case pings <- struct{}{}:
			default:
			}
		},
		OnReconnect: func(ev primus.ReconnectEvent) { reconnects <- ev },
		OnEnd:       func(err error) { ended <- err },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	recv(t, opened)

	echo := func(t *testing.T, v any) {
		t.Helper()
		if err := c.Write(v); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, data); !equalJSON(got, v) {
			t.Fatalf("echo %#v: got %#v", v, got)
		}
	}
	for _, v := range []any{"hello", "", float64(42), true, nil, map[string]any{"a": []any{"b", float64(1)}}, "Jörg ☃ \u2028"} {
		echo(t, v)
	}
	id, err := c.ID(ctx)
	if err != nil || id == "" {
		t.Fatalf("ID: %q, %v", id, err)
	}
	for range 3 {
		recv(t, pings)
	}

	if err := c.Write(map[string]any{"cmd": "drop"}); err != nil {
		t.Fatal(err)
	}
	recv(t, reconnects)
	recv(t, opened)
	echo(t, "after the drop")
	if id2, err := c.ID(ctx); err != nil || id2 == id {
		t.Errorf("ID after the reconnect: %q, %v (before: %q)", id2, err, id)
	}

	if err := c.Write(map[string]any{"cmd": "close"}); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, ended); err != nil {
		t.Errorf("OnEnd(%v) after the server's close, want nil", err)
	}

	_, err = primus.Dial(ctx, base+"/primus?token=bad", &primus.ClientOptions{Dialer: sockjs.New(nil)})
	var he *transport.HandshakeError
	if !errors.As(err, &he) || he.StatusCode != 401 {
		t.Errorf("Dial with token=bad: %v, want a 401 HandshakeError", err)
	}
}
