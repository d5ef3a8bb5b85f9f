package parser

import (
	"fmt"
	"unicode/utf8"
)

// invalidUTF8 returns the error of the built-in parsers for text that is not
// valid UTF-8, with the offset of the first bad byte of b (b starts at
// offset base in the message).
func invalidUTF8(b []byte, base int) error {
	off := 0
	for off < len(b) {
		r, size := utf8.DecodeRune(b[off:])
		if r == utf8.RuneError && size == 1 {
			break
		}
		off += size
	}
	return fmt.Errorf("%w: %w at byte %d", ErrDecode, ErrInvalidUTF8, base+off)
}
