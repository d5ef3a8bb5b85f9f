package interop

import (
	"testing"
	"time"
)

// TestStockPluginClients checks items 9–11 of the test server contract
// (emitter, multiplex, substream) with the stock npm client halves —
// primus-emitter 3.1.1, @cocalc/primus-multiplex 1.1.0 and substream 0.2.0
// compiled into the stock primus@8.0.9 client library — against the Go test
// server with every plugin on; plain echo must keep working beside them.
func TestStockPluginClients(t *testing.T) {
	t.Parallel()
	requireNode(t)
	url := StartTestServer(t, "-plugins", "emitter,multiplex,substream")
	if err := runNode(t, 90*time.Second, "plugins-client.js", url); err != nil {
		t.Fatalf("plugins-client.js failed against the Go test server: %v", err)
	}
}
