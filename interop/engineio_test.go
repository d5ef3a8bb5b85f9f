package interop

import (
	"context"
	"errors"
	"os/exec"
	"testing"
	"time"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/transport"
	"github.com/go-primus/primus/transport/engineio"
)

// eioClients are the engine.io-client releases the stock Primus client is
// run with: 6.5.x, Primus's own range (~6.5.1), and 6.6.
var eioClients = []string{"6.5", "6.6"}

// eioModes are the ways a stock client connects (node/engineio-transport.js
// checks that each connection really does): long-polling only (Primus's
// websockets: false), polling upgraded to WebSocket (Primus's default), and
// WebSocket only.
var eioModes = []string{"polling", "upgrade", "websocket"}

// runEngineIO runs a check script with the stock client compiled for
// engine.io, on one engine.io-client release and mode, against url.
func runEngineIO(t *testing.T, script, url, client, mode string, args ...string) error {
	t.Helper()
	all := append([]string{"engineio-transport.js", script, url, "--eio-client", client, "--eio-mode", mode}, args...)
	return runNode(t, 90*time.Second, all...)
}

// TestStockClientEngineIO checks the Go test server with -transformer
// engine.io against the contract (items 1-8) with the stock primus@8.0.9
// client compiled for engine.io, on engine.io-client 6.5 and 6.6, polling
// only, upgraded, and WebSocket only.
func TestStockClientEngineIO(t *testing.T) {
	t.Parallel()
	requireNode(t)
	for _, client := range eioClients {
		for _, mode := range eioModes {
			t.Run(client+"-"+mode, func(t *testing.T) {
				t.Parallel()
				url := StartTestServer(t, "-transformer", "engine.io", "-ping-interval", "1s", "-plugins", "none")
				if err := runEngineIO(t, "contract-client.js", url, client, mode, "--ping-interval", "1000"); err != nil {
					t.Fatalf("contract-client.js over engine.io-client %s (%s) failed against the Go test server: %v", client, mode, err)
				}
			})
		}
	}
}

// TestStockPluginClientsEngineIO checks items 9-11 (the stock emitter,
// multiplex and substream clients) over engine.io, every release and mode.
func TestStockPluginClientsEngineIO(t *testing.T) {
	t.Parallel()
	requireNode(t)
	for _, client := range eioClients {
		for _, mode := range eioModes {
			t.Run(client+"-"+mode, func(t *testing.T) {
				t.Parallel()
				url := StartTestServer(t, "-transformer", "engine.io", "-plugins", "emitter,multiplex,substream")
				if err := runEngineIO(t, "plugins-client.js", url, client, mode); err != nil {
					t.Fatalf("plugins-client.js over engine.io-client %s (%s) failed against the Go test server: %v", client, mode, err)
				}
			})
		}
	}
}

// startNodeEngineIOServer starts node/node-server-engineio.js, the stock
// Node Primus server with the engine.io transformer (engine.io 6.6).
func startNodeEngineIOServer(t *testing.T, args ...string) string {
	t.Helper()
	requireNode(t)
	cmd := exec.Command("node", append([]string{"node-server-engineio.js"}, args...)...)
	cmd.Dir = nodeDir
	return startServer(t, cmd)
}

// TestStockClientEngineIOAgainstNodeServer runs the same contract checks,
// every release and mode, against a stock Node Primus server on engine.io
// 6.6: the checks and the harness are sound (they pass against the
// reference).
func TestStockClientEngineIOAgainstNodeServer(t *testing.T) {
	t.Parallel()
	for _, client := range eioClients {
		for _, mode := range eioModes {
			t.Run(client+"-"+mode, func(t *testing.T) {
				t.Parallel()
				// A server per run: the broadcast check reaches every client
				// of a server.
				url := startNodeEngineIOServer(t, "--ping-interval", "1000")
				if err := runEngineIO(t, "contract-client.js", url, client, mode, "--ping-interval", "1000"); err != nil {
					t.Fatalf("contract-client.js over engine.io-client %s (%s) failed against node-server-engineio.js: %v", client, mode, err)
				}
			})
		}
	}
}

// TestGoEngineIOClientAgainstNodeServer runs our Go client with the
// Engine.IO dialer, over WebSocket and over polling, against the stock Node
// Primus engine.io server with short Engine.IO heartbeats: echo, id, both
// heartbeats, reconnect after a drop, the server's intentional close, and a
// refused handshake.
func TestGoEngineIOClientAgainstNodeServer(t *testing.T) {
	t.Parallel()
	base := startNodeEngineIOServer(t, "--ping-interval", "300", "--eio-ping-interval", "200", "--eio-ping-timeout", "400")
	for _, mode := range []struct {
		name string
		mode engineio.DialMode
	}{{"websocket", engineio.DialWebSocket}, {"polling", engineio.DialPolling}} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			dialer := engineio.New(&engineio.Options{Dial: mode.mode})
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			data := make(chan any, 16)
			opened := make(chan struct{}, 16)
			pings := make(chan struct{}, 64)
			reconnects := make(chan primus.ReconnectEvent, 16)
			ended := make(chan error, 1)
			c, err := primus.Dial(ctx, base+"/primus?token=abc", &primus.ClientOptions{
				Dialer: dialer,
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
			// Primus pings every 300 ms; Engine.IO pings every 200 ms and
			// closes the session when a pong is 400 ms late: several of
			// each pass with the connection up.
			for range 4 {
				recv(t, pings)
			}
			select {
			case ev := <-reconnects:
				t.Fatalf("reconnected during the heartbeats: %v", ev.Cause)
			default:
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

			_, err = primus.Dial(ctx, base+"/primus?token=bad", &primus.ClientOptions{Dialer: dialer})
			var he *transport.HandshakeError
			if !errors.As(err, &he) || he.StatusCode != 401 {
				t.Errorf("Dial with token=bad: %v, want a 401 HandshakeError", err)
			}
		})
	}
}
