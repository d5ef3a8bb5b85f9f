package pluginkit_test

import (
	"testing"

	"github.com/go-primus/primus/internal/leakcheck"
	"github.com/go-primus/primus/internal/pluginkit"
	"github.com/go-primus/primus/parser"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

var parsers = []parser.Parser{parser.JSON, parser.CBOR}

// message encodes v as a received message of p.
func message(t *testing.T, p parser.Parser, v any) *parser.Message {
	t.Helper()
	b, err := p.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	return parser.NewMessage(p, b)
}

// TestParts reads every kind of element out of an array, with the JSON fast
// path and the generic path alike, including JavaScript truthiness.
func TestParts(t *testing.T) {
	t.Parallel()
	for _, p := range parsers {
		t.Run(p.Name(), func(t *testing.T) {
			c := pluginkit.NewCodec(p)
			elems := []any{"s", "", 2.5, 0, -1, true, false, nil, []any{1, "x"}, map[string]any{"k": "v"}}
			parts, ok := c.Array(message(t, p, elems))
			if !ok || len(parts) != len(elems) {
				t.Fatalf("Array = %d parts, %v", len(parts), ok)
			}
			if s, ok := parts[0].String(); !ok || s != "s" {
				t.Errorf("String = %q %v", s, ok)
			}
			if _, ok := parts[2].String(); ok {
				t.Error("a number read as a string")
			}
			if n, ok := parts[2].Number(); !ok || n != 2.5 {
				t.Errorf("Number = %v %v", n, ok)
			}
			if n, ok := parts[4].Number(); !ok || n != -1 {
				t.Errorf("Number = %v %v", n, ok)
			}
			if _, ok := parts[0].Number(); ok {
				t.Error("a string read as a number")
			}
			truthy := []bool{true, false, true, false, true, true, false, false, true, true}
			for i, want := range truthy {
				if got := parts[i].Truthy(); got != want {
					t.Errorf("Truthy(%#v) = %v, want %v", elems[i], got, want)
				}
			}
			inner, ok := parts[8].Array()
			if !ok || len(inner) != 2 {
				t.Fatalf("nested Array = %v %v", inner, ok)
			}
			m, err := parts[9].Message()
			if err != nil {
				t.Fatal(err)
			}
			var obj map[string]string
			if err := m.Decode(&obj); err != nil || obj["k"] != "v" {
				t.Errorf("part message decodes to %v (%v)", obj, err)
			}
			if _, ok := c.Object(message(t, p, elems), ""); ok {
				t.Error("an array read as an object")
			}
			null, err := c.Null()
			if err != nil {
				t.Fatal(err)
			}
			var v any = "x"
			if err := null.Decode(&v); err != nil || v != nil {
				t.Errorf("Null decodes to %#v (%v)", v, err)
			}
		})
	}
}

func TestObjectKeyFilter(t *testing.T) {
	t.Parallel()
	for _, p := range parsers {
		c := pluginkit.NewCodec(p)
		m := message(t, p, map[string]any{"a": 1})
		if _, ok := c.Object(m, `"a"`); !ok {
			t.Errorf("%s: Object with a present key failed", p.Name())
		}
		obj, ok := c.Object(m, "")
		if !ok || len(obj) != 1 {
			t.Errorf("%s: Object = %v %v", p.Name(), obj, ok)
		}
	}
	// With JSON the filter spares the decode of what cannot match.
	if _, ok := pluginkit.NewCodec(parser.JSON).Object(parser.NewMessage(parser.JSON, []byte(`{"a":1}`)), `"b"`); ok {
		t.Error("Object ignored the key filter")
	}
	if _, ok := pluginkit.NewCodec(parser.JSON).Array(parser.NewBinaryMessage([]byte("[1]"))); ok {
		t.Error("a passthrough binary message read as an array")
	}
}

// TestEmbed: a Raw value (such as a received message's) is placed in a
// packet verbatim with JSON and as its value otherwise; a bad Raw fails the
// packet's encoding.
func TestEmbed(t *testing.T) {
	t.Parallel()
	for _, p := range parsers {
		c := pluginkit.NewCodec(p)
		raw := message(t, p, map[string]any{"x": []any{1}}).Raw()
		e, err := c.Embed(raw)
		if err != nil {
			t.Fatal(err)
		}
		b, err := p.Encode([]any{0, e})
		if err != nil {
			t.Fatal(err)
		}
		var got []any
		if err := p.Decode(b, &got); err != nil || len(got) != 2 {
			t.Fatalf("%s: packet %v (%v)", p.Name(), got, err)
		}
		if m, ok := got[1].(map[string]any); !ok || len(m["x"].([]any)) != 1 {
			t.Errorf("%s: embedded %#v", p.Name(), got[1])
		}
		if v, err := c.Embed(42); err != nil || v != 42 {
			t.Errorf("%s: Embed(42) = %v %v", p.Name(), v, err)
		}
	}
	e, _ := pluginkit.NewCodec(parser.JSON).Embed(parser.Raw("{bad"))
	if _, err := parser.JSON.Encode([]any{e}); err == nil {
		t.Error("a bad Raw encoded")
	}
}
