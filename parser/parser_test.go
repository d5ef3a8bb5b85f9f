package parser_test

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-primus/primus/parser"
)

var parsers = []parser.Parser{parser.JSON, parser.CBOR}

func TestNamesAndBinary(t *testing.T) {
	assert.Equal(t, "json", parser.JSON.Name())
	assert.False(t, parser.JSON.Binary())
	assert.Equal(t, "cbor", parser.CBOR.Name())
	assert.True(t, parser.CBOR.Binary())
}

// TestJSONWire checks the exact bytes Primus's JSON parser puts on the wire
// (section 3.1 of the protocol notes).
func TestJSONWire(t *testing.T) {
	cases := []struct {
		in   any
		want string
	}{
		{"hello", `"hello"`},
		{"primus::ping::1795653346808", `"primus::ping::1795653346808"`},
		{map[string]int{"a": 1}, `{"a":1}`},
		{42, `42`},
		{nil, `null`},
		{[]any{1, "two"}, `[1,"two"]`},
		{true, `true`},
		{"line\u2028sep\u2029", `"line\u2028sep\u2029"`},
		{"<&>\"\\\n\t\x01", `"\u003c\u0026\u003e\"\\\n\t\u0001"`},
		{"J\u00f6rg \U0001F600", `"Jörg 😀"`},
		{"bad \xff utf8", `"bad \ufffd utf8"`},
		{json.RawMessage(`{"x":[1,2]}`), `{"x":[1,2]}`},
	}
	for _, c := range cases {
		got, err := parser.JSON.Encode(c.in)
		require.NoError(t, err)
		assert.Equal(t, c.want, string(got), "%#v", c.in)
		if s, ok := c.in.(string); ok {
			std, _ := json.Marshal(s)
			assert.Equal(t, string(std), string(got), "fast string path must match encoding/json")
		}
	}
}

func TestRoundTrip(t *testing.T) {
	values := []any{
		"", "hello", "primus::id::", "J\u00f6rg", strings.Repeat("x", 1<<16),
		float64(0), float64(-1.5), float64(1 << 40), true, false, nil,
		[]any{float64(1), "two", []any{}, map[string]any{}},
		map[string]any{"a": map[string]any{"b": []any{true, nil, "c"}}},
	}
	for _, p := range parsers {
		t.Run(p.Name(), func(t *testing.T) {
			for _, v := range values {
				b, err := p.Encode(v)
				require.NoError(t, err)
				var got any
				require.NoError(t, p.Decode(b, &got))
				assert.Equal(t, normalize(v), normalize(got))
				if s, ok := v.(string); ok {
					ds, ok := parser.DecodeString(p, b)
					assert.True(t, ok)
					assert.Equal(t, s, ds)
				} else {
					_, ok := parser.DecodeString(p, b)
					assert.False(t, ok, "%#v is not a string", v)
				}
			}
		})
	}
}

// normalize maps CBOR's integer types onto float64, as JSON decodes them.
func normalize(v any) any {
	switch t := v.(type) {
	case uint64:
		return float64(t)
	case int64:
		return float64(t)
	case []any:
		out := make([]any, len(t))
		for i := range t {
			out[i] = normalize(t[i])
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = normalize(x)
		}
		return out
	}
	return v
}

func TestDecodeErrors(t *testing.T) {
	bad := map[string][][]byte{
		"json": {[]byte(`{bad`), []byte(`"unterminated`), []byte(`[1,]`), []byte("\xff")},
		"cbor": {{0xff}, {0x62, 'a'}, {0x9f, 0x01}, {0x1c}},
	}
	for _, p := range parsers {
		for _, b := range bad[p.Name()] {
			var v any
			err := p.Decode(b, &v)
			assert.ErrorIs(t, err, parser.ErrDecode, "%s %q", p.Name(), b)
			m := parser.NewMessage(p, b)
			assert.ErrorIs(t, m.Check(), parser.ErrDecode)
			_, ok := parser.DecodeString(p, b)
			assert.False(t, ok)
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	for _, p := range parsers {
		_, err := p.Encode(make(chan int))
		assert.ErrorIs(t, err, parser.ErrEncode, p.Name())
	}
	_, err := parser.JSON.Encode(math.NaN())
	assert.ErrorIs(t, err, parser.ErrEncode)
	_, err = parser.JSON.Encode(json.RawMessage(`{bad`))
	assert.ErrorIs(t, err, parser.ErrEncode)
}

func TestMessage(t *testing.T) {
	m := parser.NewMessage(parser.JSON, []byte(`{"a":[1,2]}`))
	require.NoError(t, m.Check())
	v, err := m.Value()
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"a": []any{float64(1), float64(2)}}, v)
	var typed struct{ A []int }
	require.NoError(t, m.Decode(&typed))
	assert.Equal(t, []int{1, 2}, typed.A)
	assert.Equal(t, parser.Raw(`{"a":[1,2]}`), m.Raw())

	require.NoError(t, m.Replace("changed"))
	var s string
	require.NoError(t, m.Decode(&s))
	assert.Equal(t, "changed", s)
	assert.Equal(t, `"changed"`, string(m.Bytes()))

	bin := parser.NewBinaryMessage([]byte{1, 2, 3})
	assert.True(t, bin.Passthrough())
	var b []byte
	require.NoError(t, bin.Decode(&b))
	assert.Equal(t, []byte{1, 2, 3}, b)
	assert.True(t, errors.Is(bin.Decode(&s), parser.ErrNotDecodable))
}

// plain is a parser without the optional fast paths, to test the fallbacks.
type plain struct{}

func (plain) Name() string                 { return "plain" }
func (plain) Binary() bool                 { return false }
func (plain) Encode(v any) ([]byte, error) { return json.Marshal(v) }
func (plain) Decode(b []byte, v any) error { return json.Unmarshal(b, v) }

func TestFallbacks(t *testing.T) {
	s, ok := parser.DecodeString(plain{}, []byte(`"x\ny"`))
	assert.True(t, ok)
	assert.Equal(t, "x\ny", s)
	_, ok = parser.DecodeString(plain{}, []byte(`1`))
	assert.False(t, ok)
	assert.Error(t, parser.NewMessage(plain{}, []byte(`{`)).Check())
	m := parser.NewMessage(plain{}, []byte(`[1]`))
	require.NoError(t, m.Check())
	v, _ := m.Value()
	assert.Equal(t, []any{float64(1)}, v)
}

// TestJSONInvalidUTF8: invalid UTF-8 anywhere in a JSON message is refused by
// every way in (Check, Decode, DecodeString) with ErrInvalidUTF8, so that the
// server closes the connection instead of forwarding it; a lone surrogate
// escape is ASCII on the wire, and accepted.
func TestJSONInvalidUTF8(t *testing.T) {
	u, ok := parser.JSON.(parser.UTF8Checker)
	require.True(t, ok && u.ChecksUTF8(), "the JSON parser checks UTF-8 itself")
	for _, b := range []string{
		"\"\xff\"", "[0,\"a\",\"news\",\"\xff\"]", "{\"k\xff\":1}", "[1,\xff]", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"",
		"\"\xf4\x90\x80\x80\"", "\"primus::ping::1\xff\"", "{bad\xff", "\"abcdefgh\xe6\x97\"",
	} {
		m := parser.NewMessage(parser.JSON, []byte(b))
		err := m.Check()
		assert.ErrorIs(t, err, parser.ErrInvalidUTF8, "%q", b)
		assert.ErrorIs(t, err, parser.ErrDecode, "%q", b)
		var v any
		assert.ErrorIs(t, parser.JSON.Decode([]byte(b), &v), parser.ErrInvalidUTF8, "%q", b)
		_, ok := parser.DecodeString(parser.JSON, []byte(b))
		assert.False(t, ok, "%q", b)
	}
	for _, b := range []string{`"\ud800"`, `"Jörg 😀"`, `["日本語",{"é":"\udc00"}]`} {
		require.NoError(t, parser.NewMessage(parser.JSON, []byte(b)).Check(), b)
	}
	s, ok := parser.DecodeString(parser.JSON, []byte(`"\ud800"`))
	assert.True(t, ok)
	assert.Equal(t, "\ufffd", s, "encoding/json decodes a lone surrogate as U+FFFD")
	_, err := parser.JSON.Encode(json.RawMessage("\"\xff\""))
	assert.ErrorIs(t, err, parser.ErrEncode, "a json.RawMessage with invalid UTF-8 is not sent")
}
