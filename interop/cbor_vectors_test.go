package interop

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/parser"
)

// cborVectorsFile holds the CBOR test vectors shared by the Go parser and
// the browser client's codec (browser/cbor.js): each is a value and its
// encoding. Both decoders must decode every vector's bytes to its value, and
// the encoders named by "encode" (both by default) must produce exactly its
// bytes, so a message encoded on either side is read as meant on the other.
const cborVectorsFile = "../browser/testdata/cbor-vectors.json"

type cborVector struct {
	Name   string          `json:"name"`
	Hex    string          `json:"hex"`
	Value  json.RawMessage `json:"value"`
	GoType string          `json:"goType"` // "float": the Go value is a float64
	Encode string          `json:"encode"` // "", "both", "go", "js" or "none"
}

func loadCBORVectors(t *testing.T) []cborVector {
	t.Helper()
	b, err := os.ReadFile(cborVectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	var vs []cborVector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatalf("%s: %v", cborVectorsFile, err)
	}
	if len(vs) < 50 {
		t.Fatalf("%s: only %d vectors", cborVectorsFile, len(vs))
	}
	return vs
}

// vectorValue turns a vector's JSON value into the Go value it stands for:
// integers become int64 (uint64 or *big.Int when larger), other numbers
// float64 (all numbers when float is set); {"$bytes": hex} is a []byte,
// {"$float": "NaN"|"Infinity"|"-Infinity"|"-0"} a float64,
// {"$bigint": decimal} an integer, {"$undefined": true} nil.
func vectorValue(raw json.RawMessage, float bool) (any, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return convertVector(v, float)
}

func convertVector(v any, float bool) (any, error) {
	switch x := v.(type) {
	case json.Number:
		if !float {
			if i, err := x.Int64(); err == nil {
				return i, nil
			}
		}
		return x.Float64()
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			c, err := convertVector(e, float)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case map[string]any:
		if s, ok := x["$bytes"].(string); ok && len(x) == 1 {
			return hex.DecodeString(s)
		}
		if s, ok := x["$float"].(string); ok && len(x) == 1 {
			switch s {
			case "NaN":
				return math.NaN(), nil
			case "Infinity":
				return math.Inf(1), nil
			case "-Infinity":
				return math.Inf(-1), nil
			case "-0":
				return math.Copysign(0, -1), nil
			}
			return nil, fmt.Errorf("unknown $float %q", s)
		}
		if s, ok := x["$bigint"].(string); ok && len(x) == 1 {
			n, ok := new(big.Int).SetString(s, 10)
			if !ok {
				return nil, fmt.Errorf("bad $bigint %q", s)
			}
			if n.IsInt64() {
				return n.Int64(), nil
			}
			if n.IsUint64() {
				return n.Uint64(), nil
			}
			return n, nil
		}
		if _, ok := x["$undefined"]; ok && len(x) == 1 {
			return nil, nil
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			c, err := convertVector(e, float)
			if err != nil {
				return nil, err
			}
			out[k] = c
		}
		return out, nil
	}
	return v, nil
}

// sameValue compares decoded values, numbers by mathematical value (NaN
// equal to NaN, -0 distinct from 0) whatever their Go type.
func sameValue(a, b any) bool {
	na, aok := number(a)
	nb, bok := number(b)
	if aok || bok {
		if !aok || !bok {
			return false
		}
		if na.nan || nb.nan {
			return na.nan && nb.nan
		}
		return na.v.Cmp(nb.v) == 0 && na.neg0 == nb.neg0
	}
	switch x := a.(type) {
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameValue(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, e := range x {
			if f, ok := y[k]; !ok || !sameValue(e, f) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

type num struct {
	v    *big.Float
	nan  bool
	neg0 bool
}

func number(v any) (num, bool) {
	f := new(big.Float).SetPrec(200)
	switch x := v.(type) {
	case int64:
		return num{v: f.SetInt64(x)}, true
	case uint64:
		return num{v: f.SetUint64(x)}, true
	case *big.Int:
		return num{v: f.SetInt(x)}, true
	case big.Int:
		return num{v: f.SetInt(&x)}, true
	case float64:
		if math.IsNaN(x) {
			return num{nan: true}, true
		}
		return num{v: f.SetFloat64(x), neg0: x == 0 && math.Signbit(x)}, true
	}
	return num{}, false
}

// TestCBORVectorsGo holds parser.CBOR to the shared vectors.
func TestCBORVectorsGo(t *testing.T) {
	t.Parallel()
	for _, vec := range loadCBORVectors(t) {
		t.Run(vec.Name, func(t *testing.T) {
			want, err := vectorValue(vec.Value, vec.GoType == "float")
			if err != nil {
				t.Fatal(err)
			}
			data, err := hex.DecodeString(vec.Hex)
			if err != nil {
				t.Fatal(err)
			}
			var got any
			if err := parser.CBOR.Decode(data, &got); err != nil {
				t.Fatalf("decode %s: %v", vec.Hex, err)
			}
			if !sameValue(got, want) {
				t.Errorf("decode %s = %#v, want %#v", vec.Hex, got, want)
			}
			if vec.Encode == "" || vec.Encode == "both" || vec.Encode == "go" {
				enc, err := parser.CBOR.Encode(want)
				if err != nil {
					t.Fatalf("encode %#v: %v", want, err)
				}
				if h := hex.EncodeToString(enc); h != vec.Hex {
					t.Errorf("encode %#v = %s, want %s", want, h, vec.Hex)
				}
			}
		})
	}
}

// TestCBORVectorsJS holds the browser client's codec, as served in the
// library, to the same vectors (node/cbor-vectors.js).
func TestCBORVectorsJS(t *testing.T) {
	t.Parallel()
	requireNode(t)
	srv, err := primus.New(&primus.Options{Parser: parser.CBOR})
	if err != nil {
		t.Fatal(err)
	}
	lib := filepath.Join(t.TempDir(), "primus.js")
	if err := srv.Save(lib); err != nil {
		t.Fatal(err)
	}
	vectors, err := filepath.Abs(cborVectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := runNode(t, 30*time.Second, "cbor-vectors.js", lib, vectors); err != nil {
		t.Fatalf("cbor-vectors.js: %v", err)
	}
}

// TestCBORVectorsCover makes sure the vectors keep covering every kind of
// value both codecs handle, so that trimming the file cannot quietly weaken
// the two tests above.
func TestCBORVectorsCover(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, vec := range loadCBORVectors(t) {
		seen[vec.Hex[:1]] = true // the major type's first hex digit
		if vec.Encode == "none" {
			seen["decode-only"] = true
		}
	}
	var kinds []string
	for k := range seen {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	// 0-1 unsigned, 2-3 negative, 4-5 bytes, 6-7 text, 8-9 arrays, a-b
	// maps, c-d tags, f simple and floats.
	for _, k := range []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "a", "b", "c", "f", "decode-only"} {
		if !seen[k] {
			t.Errorf("no vector starting with %s (have %s)", k, strings.Join(kinds, ","))
		}
	}
}
