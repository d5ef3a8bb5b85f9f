package pluginkit_test

import (
	"testing"

	"github.com/go-primus/primus/internal/pluginkit"
	"github.com/go-primus/primus/parser"
)

// checkParts fails when a part of a valid message, at any depth, is not a
// valid message itself: a plugin hands parts on (m.Raw() of an event's
// argument, a channel's payload), so they must never carry what the core
// refused at the connection (invalid UTF-8 above all).
func checkParts(t *testing.T, parts []pluginkit.Part, depth int) {
	for _, pt := range parts {
		m, err := pt.Message()
		if err != nil {
			continue // a value the parser cannot encode again (CBOR path)
		}
		if err := m.Check(); err != nil {
			t.Fatalf("part %q of a valid message: %v", m.Bytes(), err)
		}
		if s, ok := pt.String(); ok {
			var want string
			if err := m.Decode(&want); err != nil || s != want {
				t.Fatalf("part %q: String %q, Decode %q (%v)", m.Bytes(), s, want, err)
			}
		}
		if inner, ok := pt.Array(); ok && depth < 8 {
			checkParts(t, inner, depth+1)
		}
	}
}

func fuzzParts(t *testing.T, p parser.Parser, data []byte) {
	m := parser.NewMessage(p, data)
	if m.Check() != nil {
		return // the core closes or drops such messages before any plugin
	}
	c := pluginkit.NewCodec(p)
	if parts, ok := c.Array(m); ok {
		checkParts(t, parts, 0)
	}
	if obj, ok := c.Object(m, ""); ok {
		for _, pt := range obj {
			checkParts(t, []pluginkit.Part{pt}, 0)
		}
	}
}

var fuzzSeeds = []string{
	`[0,"a","news","x"]`, `[0,"a","news","Grüße \ud800"]`, "[0,\"a\",\"news\",\"\xff\"]",
	`{"type":0,"data":["x",{"k":["日本"]}],"id":1}`, `{"substream":"s1","args":"\u00e9"}`, `[[[["deep"]]]]`,
}

func FuzzPartsJSON(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzParts(t, parser.JSON, data) })
}

func FuzzPartsCBOR(f *testing.F) {
	for _, s := range fuzzSeeds {
		var v any
		if parser.JSON.Decode([]byte(s), &v) != nil {
			continue
		}
		b, err := parser.CBOR.Encode(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x84, 0x00, 0x61, 'a', 0x64, 'n', 'e', 'w', 's', 0x61, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) { fuzzParts(t, parser.CBOR, data) })
}
