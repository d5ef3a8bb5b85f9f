package parser_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/go-primus/primus/parser"
)

type chatMessage struct {
	Type    string   `json:"type" cbor:"type"`
	Room    string   `json:"room" cbor:"room"`
	From    string   `json:"from" cbor:"from"`
	Text    string   `json:"text" cbor:"text"`
	Seq     int      `json:"seq" cbor:"seq"`
	Tags    []string `json:"tags" cbor:"tags"`
	Private bool     `json:"private" cbor:"private"`
}

var sample = chatMessage{Type: "message", Room: "lobby", From: "alice", Text: "hello, world — how is everyone?", Seq: 42, Tags: []string{"greeting", "en"}}

func BenchmarkEncode(b *testing.B) {
	for _, p := range parsers {
		b.Run(p.Name()+"/struct", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Encode(sample); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(p.Name()+"/ping", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Encode("primus::ping::1795653346808"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, p := range parsers {
		data, _ := p.Encode(sample)
		b.Run(p.Name()+"/struct", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				var v chatMessage
				if err := p.Decode(data, &v); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(p.Name()+"/any", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				var v any
				if err := p.Decode(data, &v); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(p.Name()+"/check", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if err := parser.NewMessage(p, data).Check(); err != nil {
					b.Fatal(err)
				}
			}
		})
		ping, _ := p.Encode("primus::pong::1795653346808")
		b.Run(p.Name()+"/control", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := parser.DecodeString(p, ping); !ok {
					b.Fatal("not a string")
				}
			}
		})
	}
}

// BenchmarkIncomingCheck measures what the core does to every text message
// before any handler sees it: a UTF-8 scan unless the parser's Valid
// already checks UTF-8 (parser.UTF8Checker), then Valid.
func BenchmarkIncomingCheck(b *testing.B) {
	long := func(unit string, n int) []byte {
		s := strings.Repeat(unit, n/len(unit))
		out, _ := parser.JSON.Encode(s)
		return out
	}
	chat, _ := parser.JSON.Encode(sample)
	cases := []struct {
		name string
		data []byte
	}{
		{"ping", []byte(`"primus::pong::1795653346808"`)},
		{"chat", chat},
		{"ascii-64KiB", long("x", 64<<10)},
		{"latin-64KiB", long("Grüße, Jörg! ", 64<<10)},
		{"cjk-64KiB", long("日本語のテキスト", 64<<10)},
	}
	p := parser.JSON
	v := p.(parser.Validator)
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.data)))
			for b.Loop() {
				if u, ok := p.(parser.UTF8Checker); !ok || !u.ChecksUTF8() {
					if !utf8.Valid(c.data) {
						b.Fatal("invalid UTF-8")
					}
				}
				if err := v.Valid(c.data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
