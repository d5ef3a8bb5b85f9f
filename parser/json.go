package parser

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// JSON is the default parser: each message is the JSON text of one value, the
// same as Primus's "json" parser (JSON.stringify / JSON.parse). It is safe for
// concurrent use.
var JSON Parser = jsonParser{}

type jsonParser struct{}

func (jsonParser) Name() string { return "json" }
func (jsonParser) Binary() bool { return false }

func (jsonParser) Encode(v any) ([]byte, error) {
	// A string is by far the most common value on the control path; quote it
	// without going through reflection.
	if s, ok := v.(string); ok {
		return appendJSONString(make([]byte, 0, len(s)+2), s), nil
	}
	if raw, ok := v.(json.RawMessage); ok {
		if !json.Valid(raw) {
			return nil, fmt.Errorf("%w: invalid json.RawMessage", ErrEncode)
		}
		return bytes.Clone(raw), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEncode, err)
	}
	return b, nil
}

func (jsonParser) Decode(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: %w", ErrDecode, err)
	}
	return nil
}

// DecodeString decodes data when it is a JSON string. Simple strings without
// escapes (all control messages) are decoded without reflection.
func (p jsonParser) DecodeString(data []byte) (string, bool) {
	data = bytes.Trim(data, " \t\r\n") // JSON's whitespace, no more
	if len(data) < 2 || data[0] != '"' || data[len(data)-1] != '"' {
		return "", false
	}
	inner := data[1 : len(data)-1]
	simple := utf8.Valid(inner)
	for _, c := range inner {
		if c == '\\' || c == '"' || c < 0x20 {
			simple = false
			break
		}
	}
	if simple {
		return string(inner), true
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return "", false
	}
	return s, true
}

// appendJSONString appends s as a JSON string, escaping exactly as
// encoding/json does (HTML characters and U+2028/U+2029 included), so that the
// result is identical to json.Marshal(s).
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func (jsonParser) Valid(data []byte) error {
	if !validJSON(data) {
		// Decode to get encoding/json's precise description of the problem.
		var v any
		if err := json.Unmarshal(data, &v); err != nil {
			return fmt.Errorf("%w: %w", ErrDecode, err)
		}
		return fmt.Errorf("%w: invalid JSON", ErrDecode)
	}
	return nil
}
