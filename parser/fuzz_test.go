package parser_test

import (
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/go-primus/primus/parser"
)

// fuzzParser checks a parser's decode paths on arbitrary bytes: nothing
// panics, Check agrees with Decode, and whatever decodes re-encodes into
// something that decodes again.
func fuzzParser(f *testing.F, p parser.Parser, seeds [][]byte) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m := parser.NewMessage(p, data)
		checkErr := m.Check()
		var v any
		decErr := p.Decode(data, &v)
		if (checkErr == nil) != (decErr == nil) {
			// Well-formed but not representable (e.g. a CBOR map with
			// non-string keys) is allowed to pass Check and fail Decode.
			if checkErr != nil {
				t.Fatalf("Check failed (%v) but Decode succeeded", checkErr)
			}
		}
		// Invalid UTF-8 is one verdict, whoever looks: the server closes
		// the connection for it, so Check and Decode must agree.
		if errors.Is(checkErr, parser.ErrInvalidUTF8) != errors.Is(decErr, parser.ErrInvalidUTF8) {
			t.Fatalf("invalid UTF-8: Check says %v, Decode %v", checkErr, decErr)
		}
		if !p.Binary() && errors.Is(checkErr, parser.ErrInvalidUTF8) == utf8.Valid(data) {
			t.Fatalf("Check = %v for a text message whose UTF-8 validity is %v", checkErr, utf8.Valid(data))
		}
		if s, ok := parser.DecodeString(p, data); ok {
			var s2 string
			if err := p.Decode(data, &s2); err != nil || s2 != s {
				t.Fatalf("DecodeString=%q but Decode gives %q, %v", s, s2, err)
			}
		}
		if decErr != nil {
			return
		}
		b, err := p.Encode(v)
		if err != nil {
			return // e.g. NaN has no JSON encoding
		}
		var v2 any
		if err := p.Decode(b, &v2); err != nil {
			t.Fatalf("re-encoded %q does not decode: %v", b, err)
		}
	})
}

func FuzzJSONDecode(f *testing.F) {
	fuzzParser(f, parser.JSON, [][]byte{
		[]byte(`"primus::ping::1795653346808"`), []byte(`"primus::id::"`), []byte(`{"a":[1,"b",null,true]}`),
		[]byte(`"\u2028"`), []byte(`{bad`), []byte(`"\ud800"`), []byte(`1e999`), []byte(` "x" `), []byte(`"a\"b"`),
		[]byte("\"primus::pong::\xff\""), []byte("[0,\"a\",\"news\",\"\xff\"]"), []byte(`"Jörg"`), []byte("[1,\xff]"),
	})
}

func FuzzCBORDecode(f *testing.F) {
	ping, _ := parser.CBOR.Encode("primus::ping::1795653346808")
	obj, _ := parser.CBOR.Encode(map[string]any{"a": []any{1, "b", nil, true}})
	fuzzParser(f, parser.CBOR, [][]byte{ping, obj, {0xff}, {0x9f, 0x01, 0xff}, {0xa1, 0x01, 0x02}, {0xc1, 0x1a, 0, 0, 0, 1}, {0x7f, 0x61, 'a', 0xff},
		{0x61, 0xff}, {0x84, 0x00, 0x61, 'a', 0x64, 'n', 'e', 'w', 's', 0x61, 0xff}, {0x7f, 0x61, 0xc3, 0x61, 0xa9, 0xff}})
}
