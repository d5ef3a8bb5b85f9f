package substream

import (
	"log/slog"
	"testing"

	"github.com/go-primus/primus/internal/pluginkit"
	"github.com/go-primus/primus/parser"
)

var fuzzSeeds = []string{
	`{"substream":"s1","args":"hello"}`,
	`{"substream":"s1","args":{"from":"server"}}`,
	`{"substream":"s1","args":"substream::end"}`,
	`{"substream":"s1"}`,
	`{"substream":"other","args":1}`,
	`{"substream":5,"args":1}`,
	`{"substream":null}`,
	`{"args":"x"}`,
	`[0,"id","s1"]`,
	`"substream::end"`,
	`null`,
}

// fuzzIncoming runs one message through a connection's streams (s1 open)
// and checks that it never panics, that only s1's packets are consumed, and
// that s1 gets data only from them.
func fuzzIncoming(t *testing.T, p parser.Parser, data []byte) {
	m := parser.NewMessage(p, data)
	if m.Check() != nil {
		return // the core drops malformed messages before any hook
	}
	s := newSet(nil, func(v any) error { _, err := p.Encode(v); return err }, pluginkit.NewCodec(p), slog.New(slog.DiscardHandler), 0)
	got := 0
	if _, err := s.stream("s1", &StreamOptions{OnData: func(m *parser.Message) {
		got++
		if err := m.Check(); err != nil {
			t.Fatalf("stream data %q of a valid message is not valid: %v", m.Bytes(), err)
		}
		var v any
		if err := m.Decode(&v); err != nil {
			t.Fatalf("stream data %q does not decode: %v", m.Bytes(), err)
		}
	}}); err != nil {
		t.Fatal(err)
	}
	pass := s.incoming(m)
	obj, isObj := pluginkit.NewCodec(p).Object(m, "")
	name := ""
	if isObj {
		if np, ok := obj["substream"]; ok {
			name, _ = np.String()
		}
	}
	if pass == (name == "s1") {
		t.Fatalf("passed=%v for a packet named %q", pass, name)
	}
	if got > 1 || (pass && got != 0) {
		t.Fatalf("%d deliveries (passed %v)", got, pass)
	}
}

func FuzzIncomingJSON(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzIncoming(t, parser.JSON, data) })
}

func FuzzIncomingCBOR(f *testing.F) {
	for _, s := range fuzzSeeds {
		var v any
		if parser.JSON.Decode([]byte(s), &v) != nil {
			continue
		}
		b, err := parser.CBOR.Encode(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzIncoming(t, parser.CBOR, data) })
}
