package pluginkit

import (
	"bytes"
	"encoding/json"
	"math"

	"github.com/go-primus/primus/parser"
)

// Codec splits the messages of one parser into parts and builds packets for
// it.
//
// With the built-in JSON parser a part is the exact JSON text of the element
// (a payload is never decoded by the plugin, and a handler that forwards it
// forwards the bytes received). With any other parser the message is decoded
// into a generic value once (parser.Message caches it, so plugins that look
// at one message share the work) and each part that is handed on is encoded
// again on its own.
//
// Messages given to a Codec must have passed parser.Message.Check, as every
// message does before the core hands it to a plugin's hooks: JSON parts are
// then slices of valid JSON text cut at token boundaries, so each part is
// itself valid JSON and valid UTF-8, and a plugin that forwards a part
// (an event argument's Raw(), a channel's payload) never forwards what the
// core refused at the connection. The plugins' fuzz targets hold them to it.
type Codec struct {
	p    parser.Parser
	json bool
}

// NewCodec returns the codec for p.
func NewCodec(p parser.Parser) Codec {
	return Codec{p: p, json: p == parser.JSON}
}

// Parser returns the codec's parser.
func (c Codec) Parser() parser.Parser { return c.p }

// Part is one element of a packet: an array element or an object member.
type Part struct {
	c   Codec
	raw json.RawMessage // the JSON fast path
	val any             // any other parser
}

// jsonHead returns the first byte of JSON text after whitespace.
func jsonHead(b []byte) byte {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// Array returns the elements of m when it is an array.
func (c Codec) Array(m *parser.Message) ([]Part, bool) {
	if m.Passthrough() {
		return nil, false
	}
	if c.json {
		if jsonHead(m.Bytes()) != '[' {
			return nil, false
		}
		var raw []json.RawMessage
		if json.Unmarshal(m.Bytes(), &raw) != nil {
			return nil, false
		}
		parts := make([]Part, len(raw))
		for i, r := range raw {
			parts[i] = Part{c: c, raw: r}
		}
		return parts, true
	}
	v, err := m.Value()
	if err != nil {
		return nil, false
	}
	return c.array(v)
}

func (c Codec) array(v any) ([]Part, bool) {
	arr, ok := v.([]any)
	if !ok {
		return nil, false
	}
	parts := make([]Part, len(arr))
	for i, e := range arr {
		parts[i] = Part{c: c, val: e}
	}
	return parts, true
}

// Object returns the members of m when it is an object (a map with string
// keys). When key is not empty, m is only decoded if its encoding may
// contain the key: a cheap filter that spares the decoding of messages that
// cannot be the caller's packets.
func (c Codec) Object(m *parser.Message, key string) (map[string]Part, bool) {
	if m.Passthrough() {
		return nil, false
	}
	if c.json {
		b := m.Bytes()
		if jsonHead(b) != '{' || (key != "" && !bytes.Contains(b, []byte(key))) {
			return nil, false
		}
		var raw map[string]json.RawMessage
		if json.Unmarshal(b, &raw) != nil {
			return nil, false
		}
		obj := make(map[string]Part, len(raw))
		for k, r := range raw {
			obj[k] = Part{c: c, raw: r}
		}
		return obj, true
	}
	v, err := m.Value()
	if err != nil {
		return nil, false
	}
	mv, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	obj := make(map[string]Part, len(mv))
	for k, e := range mv {
		obj[k] = Part{c: c, val: e}
	}
	return obj, true
}

// String returns the part when it is a string.
func (p Part) String() (string, bool) {
	if p.raw != nil {
		if jsonHead(p.raw) != '"' {
			return "", false
		}
		var s string
		if json.Unmarshal(p.raw, &s) != nil {
			return "", false
		}
		return s, true
	}
	s, ok := p.val.(string)
	return s, ok
}

// Number returns the part when it is a number.
func (p Part) Number() (float64, bool) {
	if p.raw != nil {
		h := jsonHead(p.raw)
		if h != '-' && (h < '0' || h > '9') {
			return 0, false
		}
		var f float64
		if json.Unmarshal(p.raw, &f) != nil {
			return 0, false
		}
		return f, true
	}
	switch n := p.val.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	case int:
		return float64(n), true
	}
	return 0, false
}

// Truthy reports whether the part is truthy in JavaScript's sense: not
// null, false, 0, NaN or "".
func (p Part) Truthy() bool {
	if p.raw != nil {
		switch jsonHead(p.raw) {
		case 'n', 'f', 0:
			return false
		case '"':
			s, _ := p.String()
			return s != ""
		case '[', '{', 't':
			return true
		}
		f, ok := p.Number()
		return ok && f != 0
	}
	switch v := p.val.(type) {
	case nil:
		return false
	case bool:
		return v
	case string:
		return v != ""
	}
	if f, ok := p.Number(); ok {
		return f != 0 && !math.IsNaN(f)
	}
	return true
}

// Array returns the elements of the part when it is an array.
func (p Part) Array() ([]Part, bool) {
	if p.raw != nil {
		if jsonHead(p.raw) != '[' {
			return nil, false
		}
		var raw []json.RawMessage
		if json.Unmarshal(p.raw, &raw) != nil {
			return nil, false
		}
		parts := make([]Part, len(raw))
		for i, r := range raw {
			parts[i] = Part{c: p.c, raw: r}
		}
		return parts, true
	}
	return p.c.array(p.val)
}

// Message returns the part as a message of its own, to be decoded by a
// handler.
func (p Part) Message() (*parser.Message, error) {
	if p.raw != nil {
		return parser.NewMessage(p.c.p, p.raw), nil
	}
	b, err := p.c.p.Encode(p.val)
	if err != nil {
		return nil, err
	}
	return parser.NewMessage(p.c.p, b), nil
}

// Null returns the message null of the codec's parser, what a packet element
// that is absent (JavaScript's undefined) is delivered as.
func (c Codec) Null() (*parser.Message, error) {
	if c.json {
		return parser.NewMessage(c.p, []byte("null")), nil
	}
	b, err := c.p.Encode(nil)
	if err != nil {
		return nil, err
	}
	return parser.NewMessage(c.p, b), nil
}

// Embed returns v ready to be placed inside a packet that the parser will
// encode: a parser.Raw (already encoded with this parser, such as
// m.Raw() of a received message) is embedded verbatim with JSON and decoded
// into a generic value with any other parser; other values are returned as
// they are.
func (c Codec) Embed(v any) (any, error) {
	r, ok := v.(parser.Raw)
	if !ok {
		return v, nil
	}
	if c.json {
		return json.RawMessage(r), nil // validated when the packet is encoded
	}
	var out any
	if err := c.p.Decode(r, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// EmbedAll is Embed for each value of vs, in a new slice.
func (c Codec) EmbedAll(vs []any) ([]any, error) {
	out := make([]any, len(vs))
	for i, v := range vs {
		e, err := c.Embed(v)
		if err != nil {
			return nil, err
		}
		out[i] = e
	}
	return out, nil
}
