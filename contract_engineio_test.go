package primus_test

import (
	"time"

	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/transport/engineio"
)

// engineioFlavours are the suite's Engine.IO rows: the Go client dialing
// Engine.IO directly over WebSocket, JSON. CBOR over Engine.IO (binary
// frames, base64 while polling) and the polling dial mode are tested in
// transport/engineio (the polls and sends of the latter are requests of
// their own, which the suite's request counts do not expect), in interop
// and in e2e. A short write timeout bounds how long a closing polling
// session waits for its last poll.
func engineioFlavours() []flavour {
	tr := engineio.New(&engineio.Options{WriteTimeout: 2 * time.Second})
	return []flavour{
		{name: "engineio-json", transformer: tr, dialer: tr, parser: parser.JSON, statusRefusals: true},
	}
}
