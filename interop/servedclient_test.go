package interop

import (
	"testing"
	"time"
)

// TestServedClientContract runs the contract checks of node/contract-client.js
// (items 1-8) with our own browser client, as the Go test server serves it at
// /primus/primus.js, in Node with the ws package: the same checks, unchanged,
// that the stock npm client passes, so the two clients behave alike.
func TestServedClientContract(t *testing.T) {
	t.Parallel()
	requireNode(t)
	url := StartTestServer(t, "-ping-interval", "1s", "-plugins", "none")
	if err := runNode(t, 90*time.Second, "contract-client.js", url, "--ping-interval", "1000", "--client", "served"); err != nil {
		t.Fatalf("contract-client.js --client served failed: %v", err)
	}
}

// TestServedClientContractSockJS runs the same checks over the SockJS
// transformer: our client's SockJS transport, with the sockjs-client
// package in Node.
func TestServedClientContractSockJS(t *testing.T) {
	t.Parallel()
	requireNode(t)
	url := StartTestServer(t, "-transformer", "sockjs", "-ping-interval", "1s", "-plugins", "none")
	if err := runNode(t, 90*time.Second, "contract-client.js", url, "--ping-interval", "1000", "--transformer", "sockjs", "--client", "served"); err != nil {
		t.Fatalf("contract-client.js --transformer sockjs --client served failed: %v", err)
	}
}

// TestServedPluginClients runs the plugin checks of node/plugins-client.js
// (items 9-11), written for the stock npm plugin clients, with our client
// and the browser parts of the Go plugins as the test server serves them.
func TestServedPluginClients(t *testing.T) {
	t.Parallel()
	requireNode(t)
	url := StartTestServer(t, "-plugins", "emitter,multiplex,substream")
	if err := runNode(t, 90*time.Second, "plugins-client.js", url, "--client", "served"); err != nil {
		t.Fatalf("plugins-client.js --client served failed: %v", err)
	}
}

// TestServedPluginClientsOwnRules checks what our plugin clients promise
// beyond the stock ones (node/served-plugins-client.js): plugin packets are
// kept from the data listeners, a channel keeps its subscription across a
// reconnection, and an ended channel or substream refuses writes.
func TestServedPluginClientsOwnRules(t *testing.T) {
	t.Parallel()
	requireNode(t)
	url := StartTestServer(t, "-plugins", "emitter,multiplex,substream")
	if err := runNode(t, 90*time.Second, "served-plugins-client.js", url); err != nil {
		t.Fatalf("served-plugins-client.js failed: %v", err)
	}
}

// TestServedClientBehaviour checks what the contract run does not reach
// (node/served-client-behaviour.js): back-off delays and limits, connect
// and ping timeouts, the offline queue's size, manual opening, outgoing::url.
func TestServedClientBehaviour(t *testing.T) {
	t.Parallel()
	requireNode(t)
	url := StartTestServer(t, "-ping-interval", "1s", "-plugins", "none")
	if err := runNode(t, 90*time.Second, "served-client-behaviour.js", url, "--client", "served"); err != nil {
		t.Fatalf("served-client-behaviour.js failed: %v", err)
	}
}

// TestStockClientBehaviour runs the same checks with the stock npm client:
// they describe Primus's behaviour, not only ours.
func TestStockClientBehaviour(t *testing.T) {
	t.Parallel()
	requireNode(t)
	url := StartTestServer(t, "-ping-interval", "1s", "-plugins", "none")
	if err := runNode(t, 90*time.Second, "served-client-behaviour.js", url, "--client", "stock"); err != nil {
		t.Fatalf("served-client-behaviour.js --client stock failed: %v", err)
	}
}

// TestServedClientCBOR checks our browser client with the CBOR parser
// against the Go test server: values encoded by the JavaScript codec and by
// the Go parser, binary frames, ids, reconnection.
func TestServedClientCBOR(t *testing.T) {
	t.Parallel()
	requireNode(t)
	url := StartTestServer(t, "-parser", "cbor", "-ping-interval", "1s", "-plugins", "none")
	if err := runNode(t, 60*time.Second, "served-cbor-client.js", url); err != nil {
		t.Fatalf("served-cbor-client.js failed: %v", err)
	}
}

// TestTypeScriptDeclarations type-checks browser/usage.ts against
// browser/primus.d.ts with the pinned TypeScript (tsc --noEmit, strict). The
// usage file's @ts-expect-error lines make the check fail when the
// declarations accept misuse, not only when they refuse good code.
func TestTypeScriptDeclarations(t *testing.T) {
	t.Parallel()
	requireNode(t)
	if err := runNode(t, 2*time.Minute, "node_modules/typescript/bin/tsc", "--noEmit", "-p", "../../browser/tsconfig.json"); err != nil {
		t.Fatalf("tsc found errors in browser/primus.d.ts or browser/usage.ts: %v", err)
	}
}

// TestServedClientRecovery checks contract item 12 with our served client:
// across server-side drops, the spark stays the same and every message
// written on either side arrives exactly once, in order.
func TestServedClientRecovery(t *testing.T) {
	t.Parallel()
	requireNode(t)
	url := StartTestServer(t, "-recovery", "30s", "-plugins", "none")
	if err := runNode(t, 150*time.Second, "recovery-client.js", url, "--count", "3000", "--drops", "8"); err != nil {
		t.Fatalf("recovery-client.js failed: %v", err)
	}
}

// TestServedClientContractWithRecovery: the contract checks still pass
// with recovery on, where a dropped client comes back to its spark.
func TestServedClientContractWithRecovery(t *testing.T) {
	t.Parallel()
	requireNode(t)
	url := StartTestServer(t, "-ping-interval", "1s", "-plugins", "none", "-recovery", "30s")
	if err := runNode(t, 90*time.Second, "contract-client.js", url, "--ping-interval", "1000", "--client", "served"); err != nil {
		t.Fatalf("contract-client.js --client served with -recovery failed: %v", err)
	}
}

// TestServedClientContractEngineIO runs the contract checks over the
// engine.io transformer with our client's engine.io transport and the
// engine.io-client 6.6 package in Node: polling only, upgraded, and
// WebSocket only (node/engineio-transport.js checks each connection's
// transport).
func TestServedClientContractEngineIO(t *testing.T) {
	t.Parallel()
	requireNode(t)
	for _, mode := range eioModes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			url := StartTestServer(t, "-transformer", "engine.io", "-ping-interval", "1s", "-plugins", "none")
			if err := runEngineIO(t, "contract-client.js", url, "6.6", mode, "--ping-interval", "1000", "--client", "served"); err != nil {
				t.Fatalf("contract-client.js --client served over engine.io (%s) failed: %v", mode, err)
			}
		})
	}
}

// TestServedPluginClientsEngineIO runs the plugin checks with our client
// and the Go plugins' browser parts over engine.io (polling upgraded to
// WebSocket).
func TestServedPluginClientsEngineIO(t *testing.T) {
	t.Parallel()
	requireNode(t)
	url := StartTestServer(t, "-transformer", "engine.io", "-plugins", "emitter,multiplex,substream")
	if err := runEngineIO(t, "plugins-client.js", url, "6.6", "upgrade", "--client", "served"); err != nil {
		t.Fatalf("plugins-client.js --client served over engine.io failed: %v", err)
	}
}

// TestServedClientCBOREngineIO runs the CBOR checks over engine.io: binary
// messages as base64 while polling and binary frames once upgraded.
func TestServedClientCBOREngineIO(t *testing.T) {
	t.Parallel()
	requireNode(t)
	url := StartTestServer(t, "-transformer", "engine.io", "-parser", "cbor", "-ping-interval", "1s", "-plugins", "none")
	if err := runNode(t, 60*time.Second, "served-cbor-client.js", url); err != nil {
		t.Fatalf("served-cbor-client.js over engine.io failed: %v", err)
	}
}
