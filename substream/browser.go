package substream

import (
	_ "embed"

	"github.com/go-primus/primus/plugin"
)

// browserJS is the plugin's part of the browser client: named substreams,
// in the substream package's wire format.
//
//go:embed browser.js
var browserJS string

var _ plugin.BrowserPlugin = (*Substream)(nil)

// BrowserLibrary returns the plugin's part of the browser client library
// (see primus.Server.Library): primus.substream(name).
func (ss *Substream) BrowserLibrary() string { return browserJS }
