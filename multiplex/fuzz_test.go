package multiplex

import (
	"testing"

	"github.com/go-primus/primus/internal/pluginkit"
	"github.com/go-primus/primus/parser"
)

var fuzzSeeds = []string{
	`[1,"l791ljcdcmp","news"]`,
	`[0,"l791ljcdcmp","news","hello news"]`,
	`[0,"l791ljcdcmp","news"]`,
	`[2,"nhqeboo73v","news"]`,
	`[0,"ugoyorocyrp","chat",{"type":0,"data":["msg","yo"],"id":1}]`,
	`[0,7,"chat",0]`,
	`[0,1e400,"chat"]`,
	`[1,2,3]`,
	`[0,"x","nochannel","p"]`,
	`[3,"x","chat"]`,
	`[0,"x"]`,
	`[0,"x","chat","p","extra"]`,
	`[]`,
	`{"substream":"s1","args":1}`,
	`"primus::ping::1"`,
	"[0,\"a\",\"news\",\"\xff\"]",
	`[0,"a","news","\ud800"]`,
	`[0,"a","news","Grüße"]`,
}

// fuzzDecode checks that decoding never panics and that what it accepts is
// a well-formed packet whose payload, if any, is a message of its own.
func fuzzDecode(t *testing.T, p parser.Parser, data []byte) {
	m := parser.NewMessage(p, data)
	if m.Check() != nil {
		return // the core drops malformed messages before any hook
	}
	c := pluginkit.NewCodec(p)
	pk, ok := decodePacket(c, m)
	if !ok {
		return
	}
	if pk.typ < typeMessage || pk.typ > typeUnsubscribe {
		t.Fatalf("packet type %d accepted", pk.typ)
	}
	if _, ok := pk.id.(string); !ok && pk.key == "" {
		t.Fatalf("numeric id without a key")
	}
	pm, err := payloadMessage(c, pk)
	if err != nil {
		return
	}
	if err := pm.Check(); err != nil {
		t.Fatalf("payload %q of a valid message is not valid: %v", pm.Bytes(), err)
	}
	var v any
	if err := pm.Decode(&v); err != nil {
		t.Fatalf("payload %q does not decode: %v", pm.Bytes(), err)
	}
	if _, err := p.Encode(message(pk.id, pk.name, v)); err != nil {
		t.Fatalf("packet cannot be written back: %v", err)
	}
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecode(t, parser.JSON, data) })
}

func FuzzDecodeCBOR(f *testing.F) {
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
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecode(t, parser.CBOR, data) })
}
