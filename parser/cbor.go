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
//
// Valid and Decode refuse a text string that is not valid UTF-8, anywhere in
// a message (an error wrapping ErrDecode and ErrInvalidUTF8, which makes the
// server close the connection with status 1007), so that a forwarded
// message never carries one to a browser; and nesting deeper than 64
// arrays, maps and tags. Both limits are the same for Valid and Decode.
var CBOR Parser = newCBOR()

// maxCBORDepth bounds the nesting of arrays, maps and tags. fxamacker/cbor
// checks it in Wellformed and, with the same code, at the start of
// Unmarshal, so Valid and Decode agree on it.
const maxCBORDepth = 64

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
		MaxNestedLevels:   maxCBORDepth,
		MaxArrayElements:  1 << 20,
		MaxMapPairs:       1 << 20,
		DupMapKey:         cbor.DupMapKeyQuiet,
		IndefLength:       cbor.IndefLengthAllowed,
		TagsMd:            cbor.TagsAllowed,
		IntDec:            cbor.IntDecConvertNone,
		ExtraReturnErrors: cbor.ExtraDecErrorNone,
		UTF8:              cbor.UTF8RejectInvalid, // the default, and relied on: see Decode
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

// Decode decodes data into v. fxamacker/cbor refuses invalid UTF-8 in the
// text strings it decodes (UTF8RejectInvalid), but not in those it skips
// (a struct's unknown fields) or, in Wellformed, anywhere: the text strings
// are checked here first, so that Decode refuses what Valid refuses.
func (p cborParser) Decode(data []byte, v any) error {
	if text, off, bad := cborBadText(data); bad {
		if err := p.dec.Wellformed(data); err != nil {
			return fmt.Errorf("%w: %w", ErrDecode, err) // what Valid says first
		}
		return invalidUTF8(text, off)
	}
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

// Valid checks that data is one well-formed CBOR data item within the
// decoder's limits, and that its text strings are valid UTF-8
// (fxamacker/cbor's Wellformed does not look at them).
func (p cborParser) Valid(data []byte) error {
	if err := p.dec.Wellformed(data); err != nil {
		return fmt.Errorf("%w: %w", ErrDecode, err)
	}
	if text, off, bad := cborBadText(data); bad {
		return invalidUTF8(text, off)
	}
	return nil
}

var _ Validator = cborParser{}
