package parser

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// jsonSeeds start the JSON fuzz targets: every kind of token, strings whose
// special bytes sit at each place of an 8-byte word, UTF-8 good and bad, and
// nesting on both sides of encoding/json's limit.
func jsonSeeds() [][]byte {
	seeds := []string{
		`"x"`, `{"a":[1,2,{"b":null}],"c":"\u00e9\n"}`, `[]`, `{}`, `-0.5e+3`, `[1,]`, `{"a" 1}`, `"\x01"`, `tru`,
		` [ true , false ] `, `01`, `1.`, `"abcdefghijklmnop\"q"`, strings.Repeat("[", 70) + strings.Repeat("]", 70),
		`"\ud800"`, `"\udc00\ud800"`, `"é"`, `"日本語"`, `"😀"`, "\"\xff\"", "[\"a\",\"\xc3\"]", "{\"k\xe9\":1}",
		"[1,\xff]", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\"abcdefg\xe6\x97\xa5\"",
		"\"abcdefg\xe6\x97\"", "\"abcdefghijklmnopqrstuvwxyz\xe2\x82\xac0123456789\xe2\x82\"",
	}
	var out [][]byte
	for _, s := range seeds {
		out = append(out, []byte(s))
	}
	// On both sides of the limit; mutations move the innermost value, the
	// kind of the containers and the depth.
	for _, d := range []int{maxJSONDepth, maxJSONDepth + 1} {
		out = append(out,
			[]byte(strings.Repeat("[", d)+strings.Repeat("]", d)),
			[]byte(strings.Repeat(`{"a":`, d-1)+"{}"+strings.Repeat("}", d-1)))
	}
	return out
}

// FuzzValidJSON holds validJSON to its definition: exactly the texts that
// encoding/json accepts and that are valid UTF-8. Whatever it accepts,
// encoding/json decodes: never a syntax or depth error (a number too large
// for a float64 is a type error, which a decode into a json.Number avoids).
func FuzzValidJSON(f *testing.F) {
	for _, s := range jsonSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want := json.Valid(b) && utf8.Valid(b)
		if got := validJSON(b); got != want {
			t.Fatalf("validJSON(%q) = %v, want %v (json.Valid %v, utf8.Valid %v)", b, got, want, json.Valid(b), utf8.Valid(b))
		}
		err := JSON.(Validator).Valid(b)
		if (err == nil) != want {
			t.Fatalf("Valid(%q) = %v, want valid=%v", b, err, want)
		}
		if err != nil && (!errors.Is(err, ErrDecode) || errors.Is(err, ErrInvalidUTF8) == utf8.Valid(b)) {
			t.Fatalf("Valid(%q) = %v: wrong error (UTF-8 valid: %v)", b, err, utf8.Valid(b))
		}
		if !want {
			return
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			var te *json.UnmarshalTypeError
			if !errors.As(err, &te) {
				t.Fatalf("validJSON accepted %q, which encoding/json does not decode: %v", b, err)
			}
		}
	})
}

// TestJSONDepth pins the nesting limit to encoding/json's: 10,000 arrays and
// objects, the empty ones included (the validator once let an empty array
// at depth 10,001 through, which encoding/json refuses).
func TestJSONDepth(t *testing.T) {
	for _, c := range []struct {
		name string
		text func(d int) string
	}{
		{"arrays", func(d int) string { return strings.Repeat("[", d) + strings.Repeat("]", d) }},
		{"objects", func(d int) string { return strings.Repeat(`{"a":`, d-1) + "{}" + strings.Repeat("}", d-1) }},
		{"mixed", func(d int) string {
			return strings.Repeat(`[{"a":`, d/2) + strings.Repeat("[", d%2) + "true" + strings.Repeat("]", d%2) + strings.Repeat("}]", d/2)
		}},
		{"value inside", func(d int) string { return strings.Repeat("[", d) + `"x"` + strings.Repeat("]", d) }},
	} {
		for _, d := range []int{maxJSONDepth - 1, maxJSONDepth, maxJSONDepth + 1, maxJSONDepth + 2} {
			b := []byte(c.text(d))
			want := d <= maxJSONDepth
			if got := json.Valid(b); got != want {
				t.Fatalf("%s at depth %d: json.Valid = %v; encoding/json's limit moved", c.name, d, got)
			}
			if got := validJSON(b); got != want {
				t.Errorf("%s at depth %d: validJSON = %v, want %v", c.name, d, got, want)
			}
			var v any
			if err := JSON.Decode(b, &v); (err == nil) != want {
				t.Errorf("%s at depth %d: Decode = %v", c.name, d, err)
			}
		}
	}
}

// TestScanStringWords puts each kind of special byte at each place of an
// 8-byte word, after each length of plain prefix.
func TestScanStringWords(t *testing.T) {
	for pre := range 17 {
		for _, c := range []struct {
			mid   string
			valid bool
		}{
			{`\"`, true}, {`\\`, true}, {`\u00e9`, true}, {"é", true}, {"日本", true}, {"😀", true}, {"\x7f", true},
			{"\x1f", false}, {"\xff", false}, {"\xc3", false}, {"\xe6\x97", false}, {"\xed\xa0\x80", false}, {"\xc3\x28", false},
		} {
			for post := range 9 {
				b := []byte(`"` + strings.Repeat("a", pre) + c.mid + strings.Repeat("b", post) + `"`)
				if got := validJSON(b); got != c.valid {
					t.Errorf("validJSON(%q) = %v, want %v", b, got, c.valid)
				}
			}
		}
	}
}

// FuzzCBORText holds the text-string scan to fxamacker/cbor's decoder: on
// well-formed data, it finds invalid UTF-8 exactly when a decode into an
// interface value refuses it.
func FuzzCBORText(f *testing.F) {
	for _, s := range cborSeeds() {
		f.Add(s)
	}
	dec := CBOR.(cborParser).dec
	f.Fuzz(func(t *testing.T, b []byte) {
		text, off, bad := cborBadText(b) // must not panic, whatever b is
		if bad && (off < 0 || off+len(text) > len(b) || utf8.Valid(text)) {
			t.Fatalf("cborBadText(%x) = %x at %d", b, text, off)
		}
		if dec.Wellformed(b) != nil {
			return
		}
		var v any
		err := dec.Unmarshal(b, &v)
		refused := err != nil && strings.Contains(err.Error(), "invalid UTF-8")
		if bad && err == nil {
			t.Fatalf("cborBadText found %x in %x, which the decoder accepts", text, b)
		}
		if refused && !bad {
			t.Fatalf("the decoder refuses %x for invalid UTF-8 (%v); cborBadText found none", b, err)
		}
	})
}

func cborSeeds() [][]byte {
	return [][]byte{
		{0x61, 'a'}, {0x61, 0xff}, {0x62, 0xc3, 0xa9}, {0x62, 0xc3, 0x28},
		{0x82, 0x61, 'a', 0x61, 0xc3},          // ["a", bad]
		{0xa1, 0x61, 0xff, 0x01},               // {bad: 1}
		{0x7f, 0x61, 'a', 0x61, 0xff, 0xff},    // indefinite text, bad chunk
		{0x7f, 0x61, 0xc3, 0x61, 0xa9, 0xff},   // a character split between chunks
		{0xd8, 0x20, 0x61, 0xff},               // tag 32 (URI) around bad text
		{0xc0, 0x61, 0xff},                     // tag 0 (date-time) around bad text
		{0x41, 0xff}, {0x5f, 0x41, 0xff, 0xff}, // byte strings: anything goes
		{0x9f, 0x61, 'a', 0x78, 0x01, 0xff, 0xff},              // one-byte length
		{0x79, 0x00, 0x02, 0xce, 0xbb},                         // two-byte length, "λ"
		{0xfb, 0x61, 0xff, 0, 0, 0, 0, 0, 0},                   // a float whose bytes look like bad text
		{0x1b, 0x61, 0xff, 0, 0, 0, 0, 0, 0},                   // so does an integer's argument
		{0x7b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, // a length beyond the data
		{0x1c}, {0xff},
	}
}

// TestCBORText refuses invalid UTF-8 in text strings wherever they are, with
// Valid and Decode alike, and leaves byte strings alone.
func TestCBORText(t *testing.T) {
	for _, c := range []struct {
		name string
		data []byte
		bad  bool
	}{
		{"text", []byte{0x61, 'a'}, false},
		{"bad text", []byte{0x61, 0xff}, true},
		{"bad element", []byte{0x82, 0x61, 'a', 0x61, 0xc3}, true},
		{"bad key", []byte{0xa1, 0x61, 0xff, 0x01}, true},
		{"bad value", []byte{0xa1, 0x61, 'k', 0x62, 0xed, 0xa0}, true},
		{"bad chunk", []byte{0x7f, 0x61, 'a', 0x61, 0xff, 0xff}, true},
		{"character split between chunks", []byte{0x7f, 0x61, 0xc3, 0x61, 0xa9, 0xff}, true},
		{"whole characters in chunks", []byte{0x7f, 0x62, 0xc3, 0xa9, 0x61, 'a', 0xff}, false},
		{"bad text in a tag", []byte{0xd8, 0x20, 0x61, 0xff}, true},
		{"byte string", []byte{0x41, 0xff}, false},
		{"indefinite byte string", []byte{0x5f, 0x41, 0xff, 0xff}, false},
		{"float", []byte{0xfb, 0x61, 0xff, 0, 0, 0, 0, 0, 0}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			verr := CBOR.(Validator).Valid(c.data)
			var v any
			derr := CBOR.Decode(c.data, &v)
			var s struct{} // skips every field: fxamacker would not look at the text
			serr := CBOR.Decode(c.data, &s)
			for _, err := range []error{verr, derr} {
				if c.bad != errors.Is(err, ErrInvalidUTF8) || (c.bad && !errors.Is(err, ErrDecode)) {
					t.Errorf("%x: error %v, want invalid UTF-8: %v", c.data, err, c.bad)
				}
			}
			if c.bad && !errors.Is(serr, ErrInvalidUTF8) {
				t.Errorf("%x: Decode into a struct = %v, want ErrInvalidUTF8", c.data, serr)
			}
			if !c.bad && (verr != nil || derr != nil) {
				t.Errorf("%x: Valid %v, Decode %v", c.data, verr, derr)
			}
		})
	}
}

// TestCBORDepth: Valid and Decode agree on the nesting limit: 64 arrays and
// maps, and tags (fxamacker/cbor counts a chain of n tags as n-1 levels).
func TestCBORDepth(t *testing.T) {
	check := func(name string, b []byte, want bool) {
		t.Helper()
		verr := CBOR.(Validator).Valid(b)
		var v any
		derr := CBOR.Decode(b, &v)
		if (verr == nil) != want || (derr == nil) != want {
			t.Errorf("%s: Valid %v, Decode %v; want valid=%v", name, verr, derr, want)
		}
	}
	for _, d := range []int{maxCBORDepth - 1, maxCBORDepth, maxCBORDepth + 1} {
		arrays := append(bytes.Repeat([]byte{0x81}, d), 0x01)
		check(fmt.Sprintf("%d arrays", d), arrays, d <= maxCBORDepth)
		maps := append(bytes.Repeat([]byte{0xa1, 0x61, 'k'}, d), 0x01)
		check(fmt.Sprintf("%d maps", d), maps, d <= maxCBORDepth)
		tags := append(bytes.Repeat([]byte{0xd8, 0x28}, d), 0x80) // tag 40, around []
		check(fmt.Sprintf("%d tags around an array", d), tags, d <= maxCBORDepth)
	}
}

func BenchmarkValid64K(b *testing.B) {
	msg := []byte(`"` + strings.Repeat("x", 64<<10-2) + `"`)
	b.Run("encoding/json", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			json.Valid(msg)
		}
	})
	b.Run("validJSON", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			validJSON(msg)
		}
	})
}
