package parser

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// maxJSONDepth is encoding/json's nesting limit (maxNestingDepth in its
// scanner): a value may sit inside at most this many arrays and objects,
// counting the empty ones. The scanner pushes a level for every '[' and '{'
// and fails as soon as it holds more than this, so validJSON refuses the
// opening of a container when this many are already open.
const maxJSONDepth = 10000

// validJSON reports whether b is one well-formed JSON value (RFC 8259) made
// of valid UTF-8, without allocating: exactly json.Valid(b) &&
// utf8.Valid(b), nesting limit included, so that whatever it accepts
// encoding/json decodes. Strings, the bulk of most messages, are scanned
// eight bytes at a time; only bytes ≥ 0x80 leave that path, to be checked
// as UTF-8 sequences.
//
// Escapes are checked for their syntax only: a lone surrogate ("\ud800") is
// valid JSON text and valid UTF-8 on the wire. encoding/json decodes it as
// U+FFFD and JavaScript's JSON.parse keeps it, and neither closes a
// connection over it, so it is not refused.
func validJSON(b []byte) bool {
	var stack [64]byte // open containers beyond this depth use more
	st := stack[:0]
	i := skipWS(b, 0)
	for {
		// A value.
		if i >= len(b) {
			return false
		}
		switch c := b[i]; {
		case c == '"':
			var ok bool
			if i, ok = scanString(b, i+1); !ok {
				return false
			}
		case c == '{':
			if len(st) >= maxJSONDepth { // an empty object counts too
				return false
			}
			i = skipWS(b, i+1)
			if i < len(b) && b[i] == '}' {
				i++
				break
			}
			st = append(st, '{')
			// A key, then ':'.
			if i >= len(b) || b[i] != '"' {
				return false
			}
			var ok bool
			if i, ok = scanString(b, i+1); !ok {
				return false
			}
			i = skipWS(b, i)
			if i >= len(b) || b[i] != ':' {
				return false
			}
			i = skipWS(b, i+1)
			continue
		case c == '[':
			if len(st) >= maxJSONDepth {
				return false
			}
			i = skipWS(b, i+1)
			if i < len(b) && b[i] == ']' {
				i++
				break
			}
			st = append(st, '[')
			continue
		case c == 't':
			if !hasLit(b, i, "true") {
				return false
			}
			i += 4
		case c == 'f':
			if !hasLit(b, i, "false") {
				return false
			}
			i += 5
		case c == 'n':
			if !hasLit(b, i, "null") {
				return false
			}
			i += 4
		case c == '-' || (c >= '0' && c <= '9'):
			var ok bool
			if i, ok = scanNumber(b, i); !ok {
				return false
			}
		default:
			return false
		}
		// After a value: close containers or go on to the next element.
		for {
			i = skipWS(b, i)
			if len(st) == 0 {
				return i == len(b)
			}
			if i >= len(b) {
				return false
			}
			top := st[len(st)-1]
			c := b[i]
			if c == ',' {
				i = skipWS(b, i+1)
				if top == '{' {
					if i >= len(b) || b[i] != '"' {
						return false
					}
					var ok bool
					if i, ok = scanString(b, i+1); !ok {
						return false
					}
					i = skipWS(b, i)
					if i >= len(b) || b[i] != ':' {
						return false
					}
					i = skipWS(b, i+1)
				}
				break // the next value
			}
			if (top == '{' && c == '}') || (top == '[' && c == ']') {
				st = st[:len(st)-1]
				i++
				continue
			}
			return false
		}
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

func hasLit(b []byte, i int, lit string) bool {
	return len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit
}

const (
	lo8 = 0x0101010101010101
	hi8 = 0x8080808080808080
)

// scanString scans a string whose opening quote is at i-1 and returns the
// index after its closing quote.
func scanString(b []byte, i int) (int, bool) {
	for {
		// Eight plain bytes at a time: none is '"', '\\', below 0x20 or
		// ≥ 0x80. Each term flags the bytes it matches in their top bit
		// (borrows may flag bytes above a match, never below the first), so
		// the lowest flag is the first byte to look at.
		for i+8 <= len(b) {
			x := binary.LittleEndian.Uint64(b[i:])
			q := x ^ (lo8 * '"')
			s := x ^ (lo8 * '\\')
			special := (((q - lo8) &^ q) | ((s - lo8) &^ s) | ((x - lo8*0x20) &^ x) | x) & hi8
			if special != 0 {
				i += bits.TrailingZeros64(special) >> 3
				break
			}
			i += 8
		}
		if i >= len(b) {
			return i, false
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c == '\\':
			if i+1 >= len(b) {
				return i, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return i, false
				}
				for _, h := range b[i+2 : i+6] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return i, false
					}
				}
				i += 6
			default:
				return i, false
			}
		case c < 0x20:
			return i, false
		case c < utf8.RuneSelf:
			i++
		default:
			// A run of bytes ≥ 0x80 (all of a text in most scripts other
			// than Latin), found eight bytes at a time. A valid UTF-8
			// sequence is made of such bytes only, so the run is valid
			// exactly when it is valid UTF-8 on its own.
			j := i + 1
			for j+8 <= len(b) && binary.LittleEndian.Uint64(b[j:])&hi8 == hi8 {
				j += 8
			}
			for j < len(b) && b[j] >= utf8.RuneSelf {
				j++
			}
			if !utf8.Valid(b[i:j]) {
				return i, false
			}
			i = j
		}
	}
}

func scanNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return i, false
	}
	switch {
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return i, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return i, false
		}
	}
	return i, true
}
