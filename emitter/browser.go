package emitter

import (
	_ "embed"

	"github.com/go-primus/primus/plugin"
)

// browserJS is the plugin's part of the browser client: send() and events
// with acknowledgements, in primus-emitter's wire format.
//
//go:embed browser.js
var browserJS string

var _ plugin.BrowserPlugin = (*Emitter)(nil)

// BrowserLibrary returns the plugin's part of the browser client library
// (see primus.Server.Library): primus.send(event, …args, ack) and events
// from the server emitted on the client.
func (e *Emitter) BrowserLibrary() string { return browserJS }
