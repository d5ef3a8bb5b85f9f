package parser_test

import (
	"testing"

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
