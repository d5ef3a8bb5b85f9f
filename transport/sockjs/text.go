package sockjs

// textChecker follows the bytes of one message a client sends, in as many
// pieces as the network delivers them, and tells whether it is text the
// server may pass on: valid UTF-8 and, for a SockJS frame (a JSON array of
// strings), no \u escape that stands for half a surrogate pair.
//
// Both must be checked before sockjs-go decodes the frame: encoding/json
// turns an invalid byte and a lone surrogate escape alike into U+FFFD, so
// that what reaches the server is no longer what the client sent, and the
// damage cannot be seen afterwards. A browser never sends either: its
// WebSocket and XMLHttpRequest encode strings as UTF-8 (replacing what cannot
// be encoded), and its JSON.stringify escapes a lone surrogate only when the
// string itself holds one, which a Primus client's own JSON.stringify of the
// message has already escaped as plain ASCII. So a frame that fails here
// comes from a broken or hostile client, and the session is closed with
// 1007, as RFC 6455 asks of a WebSocket text frame that is not UTF-8.
//
// The JSON is not validated otherwise (sockjs-go refuses a malformed frame
// itself); the checker only tracks where strings and escapes begin and end.
type textChecker struct {
	json bool // the message is a SockJS frame: check the strings' escapes too

	bad bool

	// UTF-8: continuation bytes still expected, and the range the next one
	// must fall in (RFC 3629, section 4).
	need   int
	lo, hi byte

	// JSON strings.
	state jsonState
	hex   int  // hex digits of the current \u escape read so far
	unit  rune // their value
	high  bool // the last escape was a high surrogate: a low one must follow at once
}

type jsonState uint8

const (
	outside  jsonState = iota // between strings
	inString                  // inside a string
	escape                    // after a backslash in a string
	unicode                   // inside the four hex digits of \uXXXX
)

// write checks the next bytes of the message and reports whether it is
// still valid. Once it is not, write reports false until reset.
func (c *textChecker) write(p []byte) bool {
	if c.bad {
		return false
	}
	for i := 0; i < len(p); i++ {
		b := p[i]
		if c.need > 0 {
			if b < c.lo || b > c.hi {
				return c.fail()
			}
			c.need--
			c.lo, c.hi = 0x80, 0xbf
			continue
		}
		if b >= 0x80 {
			if !c.lead(b) {
				return c.fail()
			}
			// A non-ASCII character inside a string: no escape pending.
			if c.json && c.high {
				return c.fail()
			}
			continue
		}
		if c.json && !c.jsonByte(b) {
			return c.fail()
		}
	}
	return true
}

// end reports whether the message, now complete, was valid, and resets the
// checker for the next one.
func (c *textChecker) end() bool {
	ok := !c.bad && c.need == 0 && !c.high
	c.reset()
	return ok
}

func (c *textChecker) reset() { *c = textChecker{json: c.json} }

func (c *textChecker) fail() bool {
	c.bad = true
	return false
}

// lead starts a multi-byte UTF-8 sequence.
func (c *textChecker) lead(b byte) bool {
	c.lo, c.hi = 0x80, 0xbf
	switch {
	case b < 0xc2: // a continuation byte, or an overlong two-byte sequence
		return false
	case b < 0xe0:
		c.need = 1
	case b == 0xe0:
		c.need, c.lo = 2, 0xa0 // no overlong forms
	case b == 0xed:
		c.need, c.hi = 2, 0x9f // no surrogates
	case b < 0xf0:
		c.need = 2
	case b == 0xf0:
		c.need, c.lo = 3, 0x90 // no overlong forms
	case b < 0xf4:
		c.need = 3
	case b == 0xf4:
		c.need, c.hi = 3, 0x8f // nothing above U+10FFFF
	default:
		return false
	}
	return true
}

// jsonByte follows an ASCII byte through the JSON and reports false for a
// surrogate escape that does not pair.
func (c *textChecker) jsonByte(b byte) bool {
	switch c.state {
	case outside:
		if b == '"' {
			c.state = inString
		}
	case inString:
		if b == '\\' {
			c.state = escape
			return true
		}
		if c.high {
			return false // a high surrogate followed by anything but an escape
		}
		if b == '"' {
			c.state = outside
		}
	case escape:
		if b == 'u' {
			c.state, c.hex, c.unit = unicode, 0, 0
			return true
		}
		if c.high {
			return false
		}
		c.state = inString
	case unicode:
		var d byte
		switch {
		case '0' <= b && b <= '9':
			d = b - '0'
		case 'a' <= b && b <= 'f':
			d = b - 'a' + 10
		case 'A' <= b && b <= 'F':
			d = b - 'A' + 10
		default:
			// Not JSON: sockjs-go refuses the frame. Go on as if the
			// escape had ended.
			c.state = inString
			return c.jsonByte(b)
		}
		c.unit = c.unit<<4 | rune(d)
		if c.hex++; c.hex < 4 {
			return true
		}
		c.state = inString
		switch {
		case c.high:
			if c.unit < 0xdc00 || c.unit > 0xdfff {
				return false
			}
			c.high = false
		case 0xd800 <= c.unit && c.unit <= 0xdbff:
			c.high = true
		case 0xdc00 <= c.unit && c.unit <= 0xdfff:
			return false // a low surrogate on its own
		}
	}
	return true
}

// validText reports whether a whole message is valid text (see
// textChecker); frame says it is a SockJS frame.
func validText(p []byte, frame bool) bool {
	c := textChecker{json: frame}
	return c.write(p) && c.end()
}
