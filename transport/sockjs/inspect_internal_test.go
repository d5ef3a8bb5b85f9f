package sockjs

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// wsFrameOf builds a client WebSocket frame carrying payload, masked with
// the key 1 2 3 4 unless masked is false.
func wsFrameOf(fin bool, opcode byte, payload []byte, masked bool) []byte {
	f := wsFrame(fin, opcode, len(payload), masked)
	body := f[len(f)-len(payload):]
	key := [4]byte{}
	if masked {
		copy(key[:], f[len(f)-len(payload)-4:])
	}
	for i, b := range payload {
		body[i] = b ^ key[i&3]
	}
	return f
}

func TestFrameInspector(t *testing.T) {
	t.Parallel()
	const limit = 1000
	text := func(s string) []byte { return wsFrameOf(true, 1, []byte(s), true) }
	for _, tc := range []struct {
		name   string
		raw    bool // the raw endpoint: no JSON
		stream []byte
		want   verdict
	}{
		{"small", false, wsFrame(true, 1, 10, true), frameOK},
		{"exactly the limit", false, wsFrame(true, 1, limit, true), frameOK},
		{"one over", false, wsFrame(true, 1, limit+1, true), frameTooBig},
		{"16-bit length", false, wsFrame(true, 1, 300, true), frameOK},
		{"64-bit length over", false, wsFrame(true, 1, 70000, true), frameTooBig},
		{"unmasked", false, wsFrame(true, 1, limit, false), frameOK},
		{"two messages, each under", false, cat(wsFrame(true, 1, 900, true), wsFrame(true, 1, 900, true)), frameOK},
		{"fragments over together", false, cat(wsFrame(false, 1, 600, true), wsFrame(true, 0, 500, true)), frameTooBig},
		{"fragments under together", false, cat(wsFrame(false, 1, 500, true), wsFrame(true, 0, 500, true)), frameOK},
		{"control frames between fragments do not count", false, cat(
			wsFrame(false, 1, 500, true), wsFrame(true, 9, 125, true), wsFrame(true, 10, 125, true),
			wsFrame(true, 0, 500, true), wsFrame(true, 8, 2, true)), frameOK},
		{"empty", false, nil, frameOK},
		{"binary", false, wsFrame(true, 2, 10, true), frameBinary},
		{"binary on the raw endpoint", true, wsFrame(true, 2, 10, true), frameBinary},
		{"SockJS frame", false, text(`["héllo 😀","\ud83d\ude00 \\ud800 \u00e9"]`), frameOK},
		{"invalid byte", false, text("[\"a\xffb\"]"), frameInvalidText},
		{"invalid byte, raw", true, text("a\xffb"), frameInvalidText},
		{"lone surrogate escape", false, text(`["a\ud800b"]`), frameInvalidText},
		{"lone surrogate escape, raw: not JSON at this level", true, text(`["a\ud800b"]`), frameOK},
		{"low surrogate alone", false, text(`["\udc00"]`), frameInvalidText},
		{"high surrogate at the end of a string", false, text(`["\uD83D"]`), frameInvalidText},
		{"two high surrogates", false, text(`["\ud83d\ud83d\ude00"]`), frameInvalidText},
		{"escaped backslash before u", false, text(`["\\ud800"]`), frameOK},
		{"encoded surrogate", false, text("[\"\xed\xa0\x80\"]"), frameInvalidText},
		{"overlong", false, text("[\"\xc0\xaf\"]"), frameInvalidText},
		{"above U+10FFFF", false, text("[\"\xf4\x90\x80\x80\"]"), frameInvalidText},
		{"cut at the end of the message", true, text("ab\xe2\x82"), frameInvalidText},
		{"a character split across fragments", true, cat(
			wsFrameOf(false, 1, []byte("a\xe2"), true), wsFrame(true, 9, 3, true),
			wsFrameOf(true, 0, []byte("\x82\xacb"), true)), frameOK},
		{"a character cut by the final fragment", true, cat(
			wsFrameOf(false, 1, []byte("a\xe2"), true), wsFrameOf(true, 0, nil, true)), frameInvalidText},
		{"an escape split across fragments", false, cat(
			wsFrameOf(false, 1, []byte(`["\ud83d\`), true), wsFrameOf(true, 0, []byte(`ude00"]`), true)), frameOK},
		{"control frame payloads are not text", false, cat(
			wsFrameOf(true, 9, []byte("\xff"), true), text(`["ok"]`)), frameOK},
		{"valid, then invalid", false, cat(text(`["ok"]`), text("[\"\xff\"]")), frameInvalidText},
	} {
		t.Run(tc.name, func(t *testing.T) {
			newInsp := func() *frameInspector {
				return &frameInspector{max: limit, text: textChecker{json: !tc.raw}}
			}
			n, got := newInsp().consume(tc.stream)
			if got != tc.want {
				t.Errorf("in one read: %v, want %v", got, tc.want)
			}
			if got == frameOK && n != len(tc.stream) {
				t.Errorf("in one read: %d of %d bytes accepted", n, len(tc.stream))
			}
			bytewise := newInsp()
			got = frameOK
			for i := range tc.stream {
				if _, v := bytewise.consume(tc.stream[i : i+1]); v != frameOK {
					got = v
					break
				}
			}
			if got != tc.want {
				t.Errorf("byte by byte: %v, want %v", got, tc.want)
			}
		})
	}
	// The limit holds as soon as the header is in, before the payload.
	l := frameInspector{max: limit}
	if _, v := l.consume(wsFrame(true, 1, 1<<20, true)[:14]); v != frameTooBig {
		t.Errorf("a header announcing 1 MiB: %v", v)
	}
}

// What comes before a refused message in the same read is let through;
// nothing that completes the refused message is.
func TestFrameInspectorPrefix(t *testing.T) {
	t.Parallel()
	good := wsFrameOf(true, 1, []byte(`["ok"]`), true)
	bad := wsFrameOf(true, 1, []byte("[\"\xff\"]"), true)
	l := frameInspector{max: 1000, text: textChecker{json: true}}
	n, v := l.consume(cat(good, bad))
	if v != frameInvalidText || n < len(good) || n >= len(good)+len(bad) {
		t.Errorf("consume: %d bytes, %v; want at least the %d of the good frame, and not all of the bad one", n, v, len(good))
	}
	if n, v := l.consume(good); n != 0 || v != frameInvalidText {
		t.Errorf("after a refusal: %d bytes, %v", n, v)
	}
}

// FuzzFrameInspector checks that the verdict does not depend on how the
// network splits the stream.
func FuzzFrameInspector(f *testing.F) {
	f.Add(cat(wsFrame(false, 1, 500, true), wsFrame(true, 9, 3, true), wsFrame(true, 0, 600, true)), uint16(1000), uint16(7), false)
	f.Add(wsFrame(true, 2, 70000, false), uint16(100), uint16(3), true)
	f.Add(wsFrameOf(true, 1, []byte(`["\ud83d\ude00","\u00e9\xc3\xa9"]`), true), uint16(100), uint16(12), false)
	f.Fuzz(func(t *testing.T, stream []byte, limit, split uint16, raw bool) {
		whole := frameInspector{max: int64(limit), text: textChecker{json: !raw}}
		_, want := whole.consume(stream)
		at := int(split) % (len(stream) + 1)
		parts := frameInspector{max: int64(limit), text: textChecker{json: !raw}}
		_, got := parts.consume(stream[:at])
		if got == frameOK {
			_, got = parts.consume(stream[at:])
		}
		if got != want {
			t.Errorf("split at %d: %v, in one read: %v", at, got, want)
		}
	})
}

func TestValidText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in          string
		frame, want bool
	}{
		{`["plain"]`, true, true},
		{`[]`, true, true},
		{`["é", "😀", "\u00e9", "\ud83d\ude00", "\uD83D\uDE00"]`, true, true},
		{`["\\ud800"]`, true, true},   // an escaped backslash: the text \ud800
		{`["\\\ud800"]`, true, false}, // a backslash, then a lone surrogate
		{`["\ud800\\"]`, true, false}, // a high surrogate, then a backslash
		{`["\ud800", "\udc00"]`, true, false},
		{`["\ud800"`, true, false},         // cut: sockjs-go refuses it anyway
		{"[\"\xef\xbf\xbd\"]", true, true}, // U+FFFD itself is fine
		{"[\"\xff\"]", true, false},
		{"\xff", false, false},
		{`\ud800`, false, true}, // the raw endpoint carries the message as is
		{"caf\xc3", false, false},
		{"caf\xc3\xa9", false, true},
	} {
		if got := validText([]byte(tc.in), tc.frame); got != tc.want {
			t.Errorf("validText(%q, frame %v) = %v, want %v", tc.in, tc.frame, got, tc.want)
		}
	}
}

// FuzzValidText holds validText to a second, whole-message reading of the
// same rules: for a JSON array of strings, valid UTF-8, and every string's
// UTF-16 code units (after unescaping) well paired. It also checks that the
// verdict does not depend on how the bytes are split.
func FuzzValidText(f *testing.F) {
	for _, s := range []string{`["a","b"]`, `["\ud83d\ude00"]`, `["\ud800"]`, `["\\ud800"]`, "[\"\xff\"]", `["\u00e9\"\\"]`, `["\udc00\ud800"]`} {
		f.Add([]byte(s), uint16(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, split uint16) {
		got := validText(in, true)
		at := int(split) % (len(in) + 1)
		c := textChecker{json: true}
		if parts := c.write(in[:at]) && c.write(in[at:]) && c.end(); parts != got {
			t.Fatalf("split at %d: %v, whole: %v", at, parts, got)
		}
		var raws []json.RawMessage
		if json.Unmarshal(in, &raws) != nil {
			return
		}
		want := utf8.Valid(in)
		for _, r := range raws {
			if !bytes.HasPrefix(r, []byte(`"`)) {
				return // not an array of strings: sockjs-go refuses it
			}
			want = want && wellPaired(r)
		}
		if got != want {
			t.Errorf("validText(%q) = %v, want %v", in, got, want)
		}
	})
}

// wellPaired reports whether the JSON string token s unescapes to
// well-formed UTF-16.
func wellPaired(s []byte) bool {
	var units []uint16
	str := string(s[1 : len(s)-1])
	for i := 0; i < len(str); {
		if str[i] == '\\' {
			if str[i+1] == 'u' {
				var u uint16
				for _, h := range str[i+2 : i+6] {
					u = u<<4 | uint16(strings.IndexRune("0123456789abcdef", h|0x20))
				}
				units = append(units, u)
				i += 6
			} else {
				units = append(units, uint16(str[i+1]))
				i += 2
			}
			continue
		}
		r, n := utf8.DecodeRuneInString(str[i:])
		units = utf16.AppendRune(units, r)
		i += n
	}
	for i := 0; i < len(units); i++ {
		switch {
		case utf16.IsSurrogate(rune(units[i])) && units[i] < 0xdc00:
			if i+1 >= len(units) || units[i+1] < 0xdc00 || units[i+1] > 0xdfff {
				return false
			}
			i++
		case utf16.IsSurrogate(rune(units[i])):
			return false
		}
	}
	return true
}
