package primus

import (
	"strings"
	"testing"

	"github.com/go-primus/primus/parser"
)

func TestControlMessage(t *testing.T) {
	for _, p := range []parser.Parser{parser.JSON, parser.CBOR} {
		for _, c := range []struct {
			in      any
			control bool
		}{
			{"primus::ping::1795653346808", true},
			{"primus::pong::abc", true},
			{"primus::id::", true},
			{"primus::server::close", true},
			{"primus::", true},
			{"primus:", false},
			{"hello primus::ping::1", false},
			{[]any{"primus::ping::1"}, false},
			{map[string]any{"primus::id::": 1}, false},
			{"", false},
		} {
			b, err := p.Encode(c.in)
			if err != nil {
				t.Fatal(err)
			}
			s, ok := controlMessage(p, b)
			if ok != c.control {
				t.Errorf("%s: controlMessage(%#v) = %v, want %v", p.Name(), c.in, ok, c.control)
			}
			if ok && s != c.in {
				t.Errorf("%s: controlMessage(%#v) = %q", p.Name(), c.in, s)
			}
		}
	}
	// A bare, unquoted control string is not JSON: it is a decode error in
	// Primus, so it must not count as a pong here either.
	if _, ok := controlMessage(parser.JSON, []byte("primus::pong::1")); ok {
		t.Error("bare primus::pong::1 recognised as a control message")
	}
}

func FuzzControlMessage(f *testing.F) {
	for _, s := range []string{`"primus::ping::1"`, `"primus::id::"`, `"primus::server::close"`, `"primus::\u0070ong::1"`, `["primus::id::"]`, "primus::pong::1"} {
		f.Add([]byte(s), false)
	}
	for _, s := range []string{"primus::ping::1", "primus::id::", "x"} {
		b, _ := parser.CBOR.Encode(s)
		f.Add(b, true)
	}
	f.Fuzz(func(t *testing.T, data []byte, useCBOR bool) {
		var p parser.Parser = parser.JSON
		if useCBOR {
			p = parser.CBOR
		}
		s, ok := controlMessage(p, data)
		if !ok {
			return
		}
		if !strings.HasPrefix(s, controlPrefix) {
			t.Fatalf("control message %q without the prefix", s)
		}
		var full string
		if err := p.Decode(data, &full); err != nil || full != s {
			t.Fatalf("control %q but full decode gives %q, %v", s, full, err)
		}
	})
}
