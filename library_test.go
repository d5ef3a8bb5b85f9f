package primus_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/plugin"
)

// browserPlugin is a plugin with only a browser part.
type browserPlugin struct{ name, js string }

func (p browserPlugin) Name() string           { return p.name }
func (p browserPlugin) BrowserLibrary() string { return p.js }

// librarySettings extracts the settings object the library is compiled with
// (the wrapper's second argument).
func librarySettings(t *testing.T, lib []byte) map[string]any {
	t.Helper()
	m := regexp.MustCompile(`\}\)\(typeof globalThis !== 'undefined' \? globalThis : this, (\{[^\n]*\}), \[\n`).FindSubmatch(lib)
	if m == nil {
		t.Fatalf("no settings object in the library's wrapper call")
	}
	var s map[string]any
	if err := json.Unmarshal(m[1], &s); err != nil {
		t.Fatalf("settings %s: %v", m[1], err)
	}
	return s
}

// TestLibraryServed checks <pathname>/primus.js: the library with the
// documented content type and length, public like the spec (no middleware,
// no authorization), for any method Primus answers.
func TestLibraryServed(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		h := startServer(t, fl, &primus.Options{Pathname: "/rt"})
		refuse := func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				primus.Refuse(w, &primus.HTTPError{Status: http.StatusForbidden, Message: "middleware says no"})
			})
		}
		if err := h.srv.Use("refuse-all", refuse); err != nil {
			t.Fatal(err)
		}
		h.srv.Authorize(func(*http.Request) error { return errors.New("nobody") })

		resp, body := get(t, h.url+"/primus.js", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /rt/primus.js: status %d, body %q", resp.StatusCode, short(body))
		}
		if got, want := resp.Header.Get("Content-Type"), "text/javascript; charset=utf-8"; got != want {
			t.Errorf("Content-Type %q, want %q", got, want)
		}
		if resp.ContentLength != int64(len(body)) {
			t.Errorf("Content-Length %d, body %d bytes", resp.ContentLength, len(body))
		}
		if body != string(h.srv.Library()) {
			t.Errorf("served body differs from Library()")
		}
		s := librarySettings(t, []byte(body))
		if s["pathname"] != "/rt" || s["parser"] != fl.parser.Name() || s["transformer"] != fl.transformer.Name() || s["authorization"] != true {
			t.Errorf("settings %v", s)
		}

		// Only the exact path is the library; its neighbours go through the
		// middleware as before.
		for _, p := range []string{"/primus.js/x", "/primus.jsx", "/x/primus.js"} {
			if resp, _ := get(t, h.url+p, nil); resp.StatusCode != http.StatusForbidden {
				t.Errorf("GET /rt%s: status %d, want 403 from the middleware", p, resp.StatusCode)
			}
		}
		if resp, _ := get(t, h.ts.URL+"/primus/primus.js", nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET /primus/primus.js on a server at /rt: status %d, want 404", resp.StatusCode)
		}
	})
}

// TestLibrarySettings checks the facts baked into the library: ping interval
// (false when heartbeats are off), parser, version, and the authorization
// flag, which follows Authorize calls made after the first request.
func TestLibrarySettings(t *testing.T) {
	t.Parallel()
	srv, err := primus.New(&primus.Options{PingInterval: 1500 * time.Millisecond, Parser: parser.CBOR})
	if err != nil {
		t.Fatal(err)
	}
	s := librarySettings(t, srv.Library())
	want := map[string]any{
		"pathname": "/primus", "parser": "cbor", "transformer": "websockets", "pingInterval": 1500.0,
		"authorization": false, "version": primus.Version, "global": "Primus",
	}
	for k, v := range want {
		if s[k] != v {
			t.Errorf("settings[%q] = %#v, want %#v", k, s[k], v)
		}
	}
	if !bytes.Equal(srv.Library(), srv.Library()) {
		t.Error("Library() is not stable")
	}

	srv.Authorize(func(*http.Request) error { return nil })
	if s := librarySettings(t, srv.Library()); s["authorization"] != true {
		t.Errorf("after Authorize: authorization = %v, want true", s["authorization"])
	}
	srv.Authorize(nil)
	if s := librarySettings(t, srv.Library()); s["authorization"] != false {
		t.Errorf("after Authorize(nil): authorization = %v, want false", s["authorization"])
	}

	off, err := primus.New(&primus.Options{PingInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if s := librarySettings(t, off.Library()); s["pingInterval"] != false {
		t.Errorf("heartbeats off: pingInterval = %#v, want false", s["pingInterval"])
	}
}

// TestLibraryPlugins checks that the browser parts of plugins are included,
// each wrapped in a function of Primus, in plugin order, and that plugins
// without one add nothing.
func TestLibraryPlugins(t *testing.T) {
	t.Parallel()
	srv, err := primus.New(&primus.Options{Plugins: []plugin.Plugin{
		browserPlugin{"first", "Primus.prototype.first = 1;"},
		namedPlugin("server-only"),
		browserPlugin{"second", "Primus.prototype.second = 2;"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	lib := string(srv.Library())
	first := strings.Index(lib, "// plugin \"first\"\nfunction (Primus) {\nPrimus.prototype.first = 1;\n},")
	second := strings.Index(lib, "// plugin \"second\"\nfunction (Primus) {\nPrimus.prototype.second = 2;\n},")
	if first < 0 || second < 0 || second < first {
		t.Errorf("plugin parts missing or out of order (first at %d, second at %d)", first, second)
	}
	if strings.Contains(lib, "server-only") {
		t.Error("a plugin without a browser part appears in the library")
	}
}

// TestSave checks that Save writes exactly Library(), and wraps the error of
// a path it cannot write.
func TestSave(t *testing.T) {
	t.Parallel()
	srv, err := primus.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "primus.js")
	if err := srv.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, srv.Library()) {
		t.Error("the saved file differs from Library()")
	}
	err = srv.Save(filepath.Join(t.TempDir(), "missing", "primus.js"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "primus: ") {
		t.Errorf("Save to a missing directory: %v, want a primus: error wrapping fs.ErrNotExist", err)
	}
}
