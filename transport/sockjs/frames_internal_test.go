package sockjs

import (
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"
)

// wsFrame builds a client WebSocket frame (masked unless masked is false)
// with n payload bytes.
func wsFrame(fin bool, opcode byte, n int, masked bool) []byte {
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	var mask byte
	if masked {
		mask = 0x80
	}
	var f []byte
	switch {
	case n < 126:
		f = []byte{b0, mask | byte(n)}
	case n < 1<<16:
		f = []byte{b0, mask | 126, 0, 0}
		binary.BigEndian.PutUint16(f[2:], uint16(n))
	default:
		f = []byte{b0, mask | 127, 0, 0, 0, 0, 0, 0, 0, 0}
		binary.BigEndian.PutUint64(f[2:], uint64(n))
	}
	if masked {
		f = append(f, 1, 2, 3, 4)
	}
	return append(f, make([]byte, n)...)
}

func cat(frames ...[]byte) []byte {
	var b []byte
	for _, f := range frames {
		b = append(b, f...)
	}
	return b
}

func TestCountStrings(t *testing.T) {
	t.Parallel()
	for frame, want := range map[string]int{
		`a[]`:                            0,
		`a["x"]`:                         1,
		`a["x","",""]`:                   3,
		`a["q\"uo\"te","back\\","\\\""]`: 3,
		`a["[,\"]"]`:                     1,
	} {
		if got := countStrings([]byte(frame)); got != want {
			t.Errorf("countStrings(%s) = %d, want %d", frame, got, want)
		}
	}
}

// quote is sockjs-go's quote: the frame as a JSON string.
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// The frame formats below are sockjs-go's (xhr.go, eventsource.go,
// htmlfile.go, jsonp.go); TestTransports runs them for real.
func TestDataFrame(t *testing.T) {
	t.Parallel()
	const frame = `a["one","t\"wo %\n"]`
	for _, tc := range []struct {
		kind, write string
		data        bool
	}{
		{"xhr", frame + "\n", true},
		{"xhr_streaming", frame + "\n", true},
		{"xhr", "o\n", false},
		{"xhr", "h\n", false},
		{"xhr_streaming", strings.Repeat("h", 2048) + "\n", false},
		{"xhr", `c[1000,"Normal closure"]` + "\n", false},
		{"eventsource", "data: " + strings.ReplaceAll(frame, "%", "%25") + "\r\n\r\n", true},
		{"eventsource", "data: o\r\n\r\n", false},
		{"eventsource", "\r\n", false},
		{"htmlfile", "<script>\np(" + quote(frame) + ");\n</script>\r\n", true},
		{"htmlfile", "<script>\np(" + quote("h") + ");\n</script>\r\n", false},
		{"htmlfile", "<!doctype html>\n<html><head>", false},
		{"jsonp", "cb.x_1(" + quote(frame) + ");\r\n", true},
		{"jsonp", "cb(" + quote(`c[3000,"dropped"]`) + ");\r\n", false},
	} {
		got, ok := dataFrame(tc.kind, []byte(tc.write))
		if ok != tc.data {
			t.Errorf("%s %q: data %v, want %v", tc.kind, tc.write, ok, tc.data)
			continue
		}
		if ok {
			if n := countStrings(got); n != 2 {
				t.Errorf("%s %q: %d messages, want 2", tc.kind, tc.write, n)
			}
		}
	}
}

func TestIsBusyFrame(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind, write string
		busy        bool
	}{
		{"xhr", busyFrame + "\n", true},
		{"xhr_streaming", busyFrame + "\n", true},
		{"xhr", `c[3000,"dropped"]` + "\n", false},
		{"eventsource", "data: " + busyFrame + "\r\n\r\n", true},
		{"htmlfile", "<script>\np(" + quote(busyFrame) + ");\n</script>\r\n", true},
		{"jsonp", "cb(" + quote(busyFrame) + ");\r\n", true},
		{"jsonp", "cb(" + quote("o") + ");\r\n", false},
	} {
		if got := isBusyFrame(tc.kind, []byte(tc.write)); got != tc.busy {
			t.Errorf("%s %q: %v, want %v", tc.kind, tc.write, got, tc.busy)
		}
	}
}
