package rooms

import (
	"bytes"
	"slices"
	"testing"
)

func TestRoomMessageRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		room    string
		except  []string
		payload []byte
	}{
		{"lobby", nil, []byte(`"hi"`)},
		{"", []string{"a", ""}, nil},
		{"ünï", []string{"SPARK1", "SPARK2"}, []byte{0xa1, 0x00}},
	} {
		b := appendRoomMessage(nil, tc.room, tc.except, tc.payload)
		room, except, payload, ok := parseRoomMessage(b)
		if !ok || room != tc.room || !slices.Equal(except, tc.except) || !bytes.Equal(payload, tc.payload) {
			t.Errorf("round trip of %q %q %q: %q %q %q %v", tc.room, tc.except, tc.payload, room, except, payload, ok)
		}
	}
	for _, bad := range [][]byte{nil, {0x05, 'a'}, {0x01, 'a', 0x02, 0x01}, {0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}} {
		if _, _, _, ok := parseRoomMessage(bad); ok {
			t.Errorf("parseRoomMessage(%x) accepted", bad)
		}
	}
}

// FuzzParseRoomMessage feeds the decoder of messages from other nodes.
func FuzzParseRoomMessage(f *testing.F) {
	f.Add(appendRoomMessage(nil, "lobby", []string{"x"}, []byte(`"hi"`)))
	f.Add([]byte{0x00, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		room, except, payload, ok := parseRoomMessage(b)
		if !ok {
			return
		}
		again := appendRoomMessage(nil, room, except, payload)
		if r2, e2, p2, ok := parseRoomMessage(again); !ok || r2 != room || !slices.Equal(e2, except) || !bytes.Equal(p2, payload) {
			t.Fatalf("re-encoding %x does not round-trip", b)
		}
	})
}
