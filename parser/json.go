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
//
// A message is valid when encoding/json would decode it and it is valid UTF-8:
// Valid and Decode refuse invalid UTF-8 anywhere in a message (with an error
// wrapping ErrDecode and ErrInvalidUTF8, which makes the server close the
// connection with status 1007) and nesting deeper than encoding/json's limit
// of 10,000 arrays and objects. A lone surrogate escape ("\ud800") is valid
// JSON text made of ASCII, so it is accepted: encoding/json decodes it as
// U+FFFD, and a browser's JSON.parse keeps it as it is.
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
		if !validJSON(raw) {
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
	// encoding/json would turn invalid UTF-8 into U+FFFD; refuse it, as
	// Valid does.
	if !utf8.Valid(data) {
		return invalidUTF8(data, 0)
	}
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
	if !utf8.Valid(inner) {
		return "", false // what Decode refuses is no string
	}
	simple := true
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

// Valid checks data as Decode would, UTF-8 included, without building a
// value.
func (jsonParser) Valid(data []byte) error {
	if validJSON(data) {
		return nil
	}
	// The rare path: say why. Invalid UTF-8 anywhere, even where the
	// syntax already failed, is what the server must close the connection
	// for, so it is checked first.
	if !utf8.Valid(data) {
		return invalidUTF8(data, 0)
	}
	// Decode to get encoding/json's precise description of the problem.
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return fmt.Errorf("%w: %w", ErrDecode, err)
	}
	return fmt.Errorf("%w: invalid JSON", ErrDecode)
}

// ChecksUTF8 reports that Valid refuses invalid UTF-8 anywhere in a message,
// so the server need not scan messages a second time.
func (jsonParser) ChecksUTF8() bool { return true }

var (
	_ Validator   = jsonParser{}
	_ UTF8Checker = jsonParser{}
)
