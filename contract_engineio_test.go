package primus_test

import (
	"time"

	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/transport/engineio"
)

// engineioFlavours are the suite's Engine.IO rows: the Go client dialing
// Engine.IO directly over WebSocket, with both parsers (binary messages are
// binary frames). The polling dial mode is tested in transport/engineio: its
// polls and sends are requests of their own, which the suite's request
// counts do not expect. A short write timeout bounds how long a closing
// polling session waits for its last poll.
func engineioFlavours() []flavour {
	tr := engineio.New(&engineio.Options{WriteTimeout: 2 * time.Second})
	return []flavour{
		{name: "engineio-json", transformer: tr, dialer: tr, parser: parser.JSON},
		{name: "engineio-cbor", transformer: tr, dialer: tr, parser: parser.CBOR},
	}
}
