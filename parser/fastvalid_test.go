package parser

import (
	"encoding/json"
	"strings"
	"testing"
)

func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{`"x"`, `{"a":[1,2,{"b":null}],"c":"\u00e9\n"}`, `[]`, `{}`, `-0.5e+3`, `[1,]`, `{"a" 1}`, `"\x01"`, `tru`, ` [ true , false ] `, `01`, `1.`, `"abcdefghijklmnop\"q"`, strings.Repeat("[", 70) + strings.Repeat("]", 70)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid = %v", b, got, want)
		}
	})
}

func BenchmarkValid64K(b *testing.B) {
	msg := []byte(`"` + strings.Repeat("x", 64<<10-2) + `"`)
	b.Run("encoding/json", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			json.Valid(msg)
		}
	})
	b.Run("validJSON", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			validJSON(msg)
		}
	})
}
