package primus_test

import (
	"time"

	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/transport/sockjs"
)

// sockjsFlavours are the suite's SockJS rows: the Go client over SockJS's
// websocket transport against the SockJS transformer, JSON only (SockJS
// carries text; the CBOR refusal is tested in transport/sockjs). A short
// disconnect delay lets closed sessions go quickly, so the leak check at the
// end of the run does not wait for them.
func sockjsFlavours() []flavour {
	tr := sockjs.New(&sockjs.Options{DisconnectDelay: 500 * time.Millisecond})
	return []flavour{
		{name: "sockjs-json", transformer: tr, dialer: tr, parser: parser.JSON, handshakeRequests: 2},
	}
}
