package parser

import (
	"errors"
	"fmt"
)

// Raw is a message already encoded with the server's (or client's) parser.
// Writing a Raw value sends its bytes unchanged, without encoding them again;
// echoing a received message with Write(m.Raw()) is the cheapest echo there
// is.
type Raw []byte

// Message is one received data message and the parser that decodes it.
// Decoding is lazy: a handler that only forwards the message never pays for
// it. A Message may be kept after its handler returns, but it is not safe for
// concurrent use.
type Message struct {
	data   []byte
	binary bool // a binary frame that a text parser cannot decode
	p      Parser

	val    any
	hasVal bool
}

// NewMessage returns the message for data, decoded by p. Binary frames that
// reach a text parser (passthrough) are made with NewBinaryMessage.
func NewMessage(p Parser, data []byte) *Message {
	return &Message{data: data, p: p}
}

// NewBinaryMessage returns a message carrying bytes that are not decoded (a
// binary frame arriving where the parser is a text one, which Primus passes
// through undecoded). Its Value is the []byte itself.
func NewBinaryMessage(data []byte) *Message {
	return &Message{data: data, binary: true, val: data, hasVal: true}
}

// ErrNotDecodable is returned by Decode for a passthrough binary message when
// the target is not a *[]byte or *any.
var ErrNotDecodable = errors.New("parser: binary message cannot be decoded by a text parser")

// Bytes returns the message as received (after any incoming transform). The
// caller must not modify it.
func (m *Message) Bytes() []byte { return m.data }

// Raw returns the message's bytes as a Raw value, to write it on unchanged.
func (m *Message) Raw() Raw { return Raw(m.data) }

// Passthrough reports whether the message is a binary frame that the text
// parser did not decode.
func (m *Message) Passthrough() bool { return m.binary }

// Decode decodes the message into v.
func (m *Message) Decode(v any) error {
	if m.binary {
		switch t := v.(type) {
		case *[]byte:
			*t = m.data
			return nil
		case *any:
			*t = m.data
			return nil
		}
		return ErrNotDecodable
	}
	if m.hasVal {
		if t, ok := v.(*any); ok {
			*t = m.val
			return nil
		}
	}
	return m.p.Decode(m.data, v)
}

// Value decodes the message into a generic value (for JSON: string,
// float64, bool, nil, []any, map[string]any). The result is cached, so
// several plugins inspecting one message decode it once.
func (m *Message) Value() (any, error) {
	if m.hasVal {
		return m.val, nil
	}
	var v any
	if err := m.p.Decode(m.data, &v); err != nil {
		return nil, err
	}
	m.val, m.hasVal = v, true
	return v, nil
}

// Replace re-encodes the message as v, for an incoming transform that
// changes what later hooks and handlers see.
func (m *Message) Replace(v any) error {
	if m.p == nil {
		return fmt.Errorf("%w: passthrough message", ErrEncode)
	}
	var b []byte
	if r, ok := v.(Raw); ok {
		b = r
	} else {
		var err error
		if b, err = m.p.Encode(v); err != nil {
			return err
		}
	}
	m.data, m.binary, m.val, m.hasVal = b, false, nil, false
	return nil
}

// Check reports whether the message is well formed for its parser, without
// keeping more than it must: parsers that implement Validator check in
// place; others decode once and the value is cached for Value.
func (m *Message) Check() error {
	if m.binary || m.hasVal {
		return nil
	}
	if v, ok := m.p.(Validator); ok {
		return v.Valid(m.data)
	}
	_, err := m.Value()
	return err
}
