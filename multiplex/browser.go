package multiplex

import (
	_ "embed"

	"github.com/go-primus/primus/plugin"
)

// browserJS is the plugin's part of the browser client: channels, in
// primus-multiplex's wire format.
//
//go:embed browser.js
var browserJS string

var _ plugin.BrowserPlugin = (*Multiplex)(nil)

// BrowserLibrary returns the plugin's part of the browser client library
// (see primus.Server.Library): primus.channel(name).
func (mx *Multiplex) BrowserLibrary() string { return browserJS }
