package engineio

import (
	"bytes"
	"encoding/base64"
	"testing"
	"unicode/utf8"
)

// FuzzDecodePacket: decoding any bytes as a text packet (a WebSocket text
// frame) never panics, and what decodes encodes back to an equivalent
// packet.
func FuzzDecodePacket(f *testing.F) {
	for _, s := range []string{"", "0{}", "1", "2", "3", "2probe", "3probe", `4"hello"`, "4", "5", "6", "7", "b", "bAAE=", "bAA", "b!!!!", "4\x1e4", "4\xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := decodeText(data)
		if err != nil {
			return
		}
		out := appendText(nil, p)
		q, err := decodeText(out)
		if err != nil {
			t.Fatalf("%q decoded to %+v, which encodes to %q, which does not decode: %v", data, p, out, err)
		}
		if q.typ != p.typ || q.bin != p.bin || !bytes.Equal(q.data, p.data) {
			t.Fatalf("%q: %+v, then %+v", data, p, q)
		}
		if !p.bin && !bytes.Equal(out, data) {
			t.Fatalf("text packet %q encodes back to %q", data, out)
		}
		if p.bin && len(out) != encodedLen(p) {
			t.Fatalf("encodedLen %d, encoded %d", encodedLen(p), len(out))
		}
	})
}

// FuzzSplitPayload: splitting any bytes as a polling payload never panics,
// stops at the first bad packet, and the packets it yields join back into
// an equivalent payload.
func FuzzSplitPayload(f *testing.F) {
	for _, s := range []string{"", "4a", "4a\x1e4b", "\x1e", "4a\x1e", "\x1e4a", "2\x1e3\x1e6", "bAAE=\x1e4x", "4\xff", "9", "4a\x1e9\x1e4c"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var pkts []packet
		err := splitPayload(data, func(p packet) bool {
			pkts = append(pkts, packet{typ: p.typ, data: bytes.Clone(p.data), bin: p.bin})
			return true
		})
		if !utf8.Valid(data) {
			if err == nil || len(pkts) > 0 {
				t.Fatalf("invalid UTF-8 %q split into %d packets, error %v", data, len(pkts), err)
			}
			return
		}
		if err != nil {
			return
		}
		if n := bytes.Count(data, []byte{separator}) + 1; len(pkts) != n {
			t.Fatalf("%q: %d packets, want %d", data, len(pkts), n)
		}
		joined := encodePayload(pkts)
		var again []packet
		if err := splitPayload(joined, func(p packet) bool { again = append(again, p); return true }); err != nil {
			t.Fatalf("%q joined back to %q, which does not split: %v", data, joined, err)
		}
		for i := range pkts {
			if again[i].typ != pkts[i].typ || again[i].bin != pkts[i].bin || !bytes.Equal(again[i].data, pkts[i].data) {
				t.Fatalf("packet %d: %+v, then %+v", i, pkts[i], again[i])
			}
		}
	})
}

// FuzzPayloadRoundTrip: any list of messages (text without the separator,
// or binary) encodes into a payload that splits back into the same list.
func FuzzPayloadRoundTrip(f *testing.F) {
	f.Add([]byte("hello"), []byte{0, 1, 2}, uint8(3))
	f.Add([]byte(""), []byte{}, uint8(0))
	f.Fuzz(func(t *testing.T, text, bin []byte, n uint8) {
		if !utf8.Valid(text) || bytes.IndexByte(text, separator) >= 0 {
			return
		}
		var pkts []packet
		for i := range int(n%8) + 1 {
			if i%2 == 0 {
				pkts = append(pkts, packet{typ: typeMessage, data: text})
			} else {
				pkts = append(pkts, packet{typ: typeMessage, data: bin, bin: true})
			}
		}
		payload := encodePayload(pkts)
		if len(payload) != cap(payload) {
			t.Errorf("payload of %d bytes in a buffer of %d: the size was miscounted", len(payload), cap(payload))
		}
		i := 0
		err := splitPayload(payload, func(p packet) bool {
			want := pkts[i]
			if p.typ != want.typ || p.bin != want.bin || !bytes.Equal(p.data, want.data) {
				t.Fatalf("packet %d: %+v, want %+v", i, p, want)
			}
			i++
			return true
		})
		if err != nil || i != len(pkts) {
			t.Fatalf("%d of %d packets, error %v", i, len(pkts), err)
		}
		if got := base64.StdEncoding.EncodeToString(bin); len(pkts) > 1 && !bytes.Contains(payload, []byte("b"+got)) {
			t.Fatalf("payload %q lacks the base64 %q", payload, got)
		}
	})
}
