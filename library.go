package primus

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/go-primus/primus/plugin"
)

// The browser client's sources (see browser/). They are plain JavaScript
// with no build step: the library is their concatenation in a wrapper.
var (
	//go:embed browser/cbor.js
	browserCBOR string
	//go:embed browser/primus.js
	browserClient string
)

// libraryCache holds the two libraries a server can serve: with and without
// an authorization function, which can be set at any time and changes the
// client's reconnection strategy. Each is built on first use.
type libraryCache struct {
	once [2]sync.Once
	data [2][]byte
}

// Library returns the browser client for this server: one JavaScript file
// defining the global Primus (module.exports under CommonJS) with the
// server's pathname, parser, transformer, ping interval and whether an
// authorization function is set baked in, followed by the browser parts of
// the server's plugins (plugin.BrowserPlugin), in plugin order. It is what
// <pathname>/primus.js serves. The caller must not modify the result.
func (s *Server) Library() []byte {
	i := 0
	if s.authorize.Load() != nil {
		i = 1
	}
	s.library.once[i].Do(func() { s.library.data[i] = s.buildLibrary(i == 1) })
	return s.library.data[i]
}

// Save writes the browser client (see Library) to the file at path, for
// pages served from elsewhere, like Primus's save().
func (s *Server) Save(path string) error {
	if err := os.WriteFile(path, s.Library(), 0o644); err != nil {
		return fmt.Errorf("primus: failed to save the client library: %w", err)
	}
	return nil
}

func (s *Server) serveLibrary(w http.ResponseWriter) {
	lib := s.Library()
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(lib)))
	_, _ = w.Write(lib)
}

// librarySettings are the server facts the client is compiled with.
type librarySettings struct {
	Pathname      string `json:"pathname"`
	Parser        string `json:"parser"`
	Transformer   string `json:"transformer"`
	PingInterval  any    `json:"pingInterval"`
	Authorization bool   `json:"authorization"`
	Version       string `json:"version"`
	Global        string `json:"global"`
	Recovery      int64  `json:"recovery"` // the recovery window in ms; 0: off
}

func (s *Server) buildLibrary(authorization bool) []byte {
	settings, _ := json.Marshal(librarySettings{
		Pathname:      s.pathname,
		Parser:        s.parser.Name(),
		Transformer:   s.transformer.Name(),
		PingInterval:  s.pingIntervalJSON(),
		Authorization: authorization,
		Version:       Version,
		Global:        "Primus",
		Recovery:      s.recoveryWindowMS(),
	})

	var b strings.Builder
	fmt.Fprintf(&b, "/*! primus for Go %s: browser client (%s, %s) */\n", Version, s.transformer.Name(), s.parser.Name())
	b.WriteString("(function (root, settings, libraries) {\n'use strict';\n")
	b.WriteString(browserCBOR)
	b.WriteString("\n")
	b.WriteString(browserClient)
	b.WriteString("\n})(typeof globalThis !== 'undefined' ? globalThis : this, ")
	b.Write(settings)
	b.WriteString(", [\n")
	for _, p := range s.plugins {
		bp, ok := p.(plugin.BrowserPlugin)
		if !ok {
			continue
		}
		fmt.Fprintf(&b, "// plugin %s\nfunction (Primus) {\n%s\n},\n", strconv.Quote(bp.Name()), bp.BrowserLibrary())
	}
	b.WriteString("]);\n")
	return []byte(b.String())
}
