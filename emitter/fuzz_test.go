package emitter

import (
	"testing"

	"github.com/go-primus/primus/internal/pluginkit"
	"github.com/go-primus/primus/parser"
)

var fuzzSeeds = []string{
	`{"type":0,"data":["news","a",{"b":1}],"id":1}`,
	`{"type":0,"data":["noack","x"]}`,
	`{"id":1,"type":1,"data":["forty-two"]}`,
	`{"id":1,"type":1,"data":[]}`,
	`{"type":0,"data":[]}`,
	`{"type":0,"data":[5]}`,
	`{"type":0,"data":["x"],"id":"1"}`,
	`{"type":0,"data":["x"],"id":1e400}`,
	`{"type":1,"data":["x"],"id":-1}`,
	`{"type":0,"data":"x"}`,
	`{"type":0}`,
	`[0,1,"x"]`,
	`"primus::ping::1"`,
	`null`,
	`{"type":0,"data":["x",` + "\xff" + `]}`,
}

// fuzzIncoming runs one message through the receiving side of an emitter
// with a handler that acknowledges, and checks that it never panics and
// that a message it does not consume is one that is not its packet.
func fuzzIncoming(t *testing.T, p parser.Parser, data []byte) {
	c := newCore(nil)
	c.codec = pluginkit.NewCodec(p)
	var writes int
	ep := newEndpoint(nil, func(v any) error {
		writes++
		_, err := p.Encode(v)
		return err
	})
	c.on("x", func(ev *Event) {
		for _, a := range ev.Args {
			if err := a.Check(); err != nil {
				t.Fatalf("argument %q of a valid message is not valid: %v", a.Bytes(), err)
			}
		}
		_ = ev.Ack(ev.Args.Raw()...)
	})
	_, _ = ep.register(func(Args, error) {}, 0) // id 1 is pending
	m := parser.NewMessage(p, data)
	if m.Check() != nil {
		return // the core drops malformed messages before any hook
	}
	pass := c.incoming(ep, nil, m)
	if _, mine, _ := decodePacket(c.codec, m); pass == mine {
		t.Fatalf("incoming passed %v for a packet the decoder calls mine=%v", pass, mine)
	}
	if writes > 1 {
		t.Fatalf("%d writes for one message", writes)
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
