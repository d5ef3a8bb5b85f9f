// Package parser defines how one Go value becomes one transport message and
// back, and provides the two built-in encodings: JSON (the default, the same
// as Primus's "json" parser) and CBOR (a compact binary encoding).
//
// A custom parser implements [Parser]. Control messages of the Primus
// protocol ("primus::ping::<ms>" and friends) are plain strings encoded with
// the same parser as application data, so a parser must round-trip strings.
package parser

import "errors"

// Parser turns values into messages and messages into values.
//
// Implementations must be safe for concurrent use: a server encodes and
// decodes on many connections at once.
type Parser interface {
	// Name is the parser's name as it appears in <pathname>/spec ("json",
	// "cbor", or the custom parser's own name).
	Name() string
	// Binary reports whether encoded messages are binary. A binary parser
	// needs a transport that can carry binary frames.
	Binary() bool
	// Encode returns the encoding of v. The returned slice is owned by the
	// caller and is never modified by the parser afterwards.
	Encode(v any) ([]byte, error)
	// Decode parses data into the value pointed to by v.
	Decode(data []byte, v any) error
}

// StringDecoder is an optional fast path: DecodeString reports whether data
// is the encoding of a string and, if so, returns it. The server uses it to
// recognise control messages without a full decode. Parsers that do not
// implement it are asked to Decode into a *string.
type StringDecoder interface {
	DecodeString(data []byte) (s string, ok bool)
}

// ErrDecode wraps every error returned by the built-in parsers' Decode.
var ErrDecode = errors.New("parser: failed to decode message")

// ErrInvalidUTF8 is wrapped (with ErrDecode) by the built-in parsers'
// Valid and Decode when text is not valid UTF-8. The server closes a
// connection that sends such a message (status 1007, as RFC 6455 asks)
// instead of dropping the message, so that it never reaches another client.
var ErrInvalidUTF8 = errors.New("parser: invalid UTF-8")

// ErrEncode wraps every error returned by the built-in parsers' Encode.
var ErrEncode = errors.New("parser: failed to encode message")

// DecodeString decodes data as a string with p, using the StringDecoder fast
// path when p has one.
func DecodeString(p Parser, data []byte) (string, bool) {
	if sd, ok := p.(StringDecoder); ok {
		return sd.DecodeString(data)
	}
	var s string
	if err := p.Decode(data, &s); err != nil {
		return "", false
	}
	return s, true
}

// Validator is an optional fast path: Valid reports whether data is a
// well-formed message without building a value. The server checks each
// incoming message before any handler sees it, so that a malformed message
// is dropped and reported instead of delivered. Parsers without it are
// checked by decoding into an interface value.
type Validator interface {
	Valid(data []byte) error
}

// UTF8Checker is implemented by a text parser whose Valid also refuses
// invalid UTF-8 anywhere in a message (returning an error that wraps
// ErrInvalidUTF8). The server checks every text frame for valid UTF-8 before
// anything else sees it; with such a parser it leaves the check to Valid and
// scans the message once instead of twice.
type UTF8Checker interface {
	ChecksUTF8() bool
}
