package parser

import (
	"encoding/binary"
	"unicode/utf8"
)

// cborBadText finds the first text string in the CBOR data b that is not
// valid UTF-8, and returns its content and the offset of that content. Each
// chunk of an indefinite-length text string is checked on its own, as RFC
// 8949 §3.2.3 asks and as fxamacker/cbor's decoder does (a character may not
// be split between chunks).
//
// CBOR is written in prefix order, so every data item, at any depth, starts
// where the previous head or string content ends: one pass over the heads
// visits them all, without a stack. Only text strings are looked into; byte
// strings are skipped. On malformed data it stops and finds nothing, leaving
// the report to the well-formedness check.
func cborBadText(b []byte) (text []byte, off int, found bool) {
	for i := 0; i < len(b); {
		head := b[i]
		i++
		n := uint64(head & 0x1f)
		if n >= 24 {
			switch n {
			case 24:
				if i >= len(b) {
					return nil, 0, false
				}
				n = uint64(b[i])
				i++
			case 25:
				if len(b)-i < 2 {
					return nil, 0, false
				}
				n = uint64(binary.BigEndian.Uint16(b[i:]))
				i += 2
			case 26:
				if len(b)-i < 4 {
					return nil, 0, false
				}
				n = uint64(binary.BigEndian.Uint32(b[i:]))
				i += 4
			case 27:
				if len(b)-i < 8 {
					return nil, 0, false
				}
				n = binary.BigEndian.Uint64(b[i:])
				i += 8
			case 31:
				continue // an indefinite length, or a break: items follow
			default:
				return nil, 0, false // 28–30 are reserved
			}
		}
		// Major types 2 (byte string) and 3 (text string), 0x40–0x7f, have
		// n bytes of content. The other heads are whole (integers, simple
		// values, floats), or their contents follow as items (arrays,
		// maps, tags).
		if head&0xc0 != 0x40 {
			continue
		}
		if n > uint64(len(b)-i) {
			return nil, 0, false
		}
		if content := b[i : i+int(n)]; head >= 0x60 && !asciiText(content) && !utf8.Valid(content) {
			return content, i, true
		}
		i += int(n)
	}
	return nil, 0, false
}

// asciiText reports whether s is all ASCII, in a few loads for the short
// strings (map keys, above all) that most text strings are.
func asciiText(s []byte) bool {
	n := len(s)
	var acc uint64
	switch {
	case n >= 8:
		for i := 0; i+8 <= n; i += 8 {
			acc |= binary.LittleEndian.Uint64(s[i:])
		}
		acc |= binary.LittleEndian.Uint64(s[n-8:])
	case n >= 4:
		acc = uint64(binary.LittleEndian.Uint32(s) | binary.LittleEndian.Uint32(s[n-4:]))
	case n > 0:
		acc = uint64(s[0] | s[n>>1] | s[n-1])
	}
	return acc&hi8 == 0
}
