package parser

import (
	"fmt"
	"reflect"

	"github.com/fxamacker/cbor/v2"
)

// CBOR is the binary parser: each message is one CBOR data item (RFC 8949),
// sent in a binary frame. Maps decode into map[string]any when the target is
// an interface, so decoded values look like those of the JSON parser. It is
// safe for concurrent use.
var CBOR Parser = newCBOR()

type cborParser struct {
	enc cbor.EncMode
	dec cbor.DecMode
}

func newCBOR() cborParser {
	enc, err := cbor.EncOptions{
		Sort:                 cbor.SortNone,
		Time:                 cbor.TimeRFC3339Nano,
		ShortestFloat:        cbor.ShortestFloat16,
		NaNConvert:           cbor.NaNConvert7e00,
		InfConvert:           cbor.InfConvertFloat16,
		String:               cbor.StringToTextString,
		ByteSliceLaterFormat: cbor.ByteSliceLaterFormatNone,
	}.EncMode()
	if err != nil {
		panic(err) // static options: cannot fail
	}
	dec, err := cbor.DecOptions{
		DefaultMapType:    reflect.TypeOf(map[string]any(nil)),
		MaxNestedLevels:   64,
		MaxArrayElements:  1 << 20,
		MaxMapPairs:       1 << 20,
		DupMapKey:         cbor.DupMapKeyQuiet,
		IndefLength:       cbor.IndefLengthAllowed,
		TagsMd:            cbor.TagsAllowed,
		IntDec:            cbor.IntDecConvertNone,
		ExtraReturnErrors: cbor.ExtraDecErrorNone,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return cborParser{enc: enc, dec: dec}
}

func (cborParser) Name() string { return "cbor" }
func (cborParser) Binary() bool { return true }

func (p cborParser) Encode(v any) ([]byte, error) {
	b, err := p.enc.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEncode, err)
	}
	return b, nil
}

func (p cborParser) Decode(data []byte, v any) error {
	if err := p.dec.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: %w", ErrDecode, err)
	}
	return nil
}

// DecodeString decodes data when it is a single CBOR text string.
func (p cborParser) DecodeString(data []byte) (string, bool) {
	if len(data) == 0 || data[0]>>5 != 3 { // major type 3: text string
		return "", false
	}
	var s string
	if err := p.dec.Unmarshal(data, &s); err != nil {
		return "", false
	}
	return s, true
}

func (p cborParser) Valid(data []byte) error {
	if err := p.dec.Wellformed(data); err != nil {
		return fmt.Errorf("%w: %w", ErrDecode, err)
	}
	return nil
}
