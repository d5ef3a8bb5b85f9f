package engineio

import (
	"encoding/base64"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Packet types of Engine.IO protocol v4: the first character of a text
// packet. A binary packet has no type: it is a message, sent as a binary
// WebSocket frame, or as "b" followed by its base64 where binary cannot go
// (HTTP long-polling payloads, and WebSockets whose client asked for b64).
const (
	typeOpen    = '0'
	typeClose   = '1'
	typePing    = '2'
	typePong    = '3'
	typeMessage = '4'
	typeUpgrade = '5'
	typeNoop    = '6'
	typeBase64  = 'b'
)

// separator joins the packets of an HTTP long-polling payload (ASCII record
// separator); it cannot occur inside UTF-8 multi-byte sequences, and JSON
// escapes it in strings.
const separator = 0x1e

// errPacket reports a packet or payload the protocol does not allow.
var errPacket = errors.New("engineio: malformed packet")

// errNotText reports a polling payload that is not UTF-8.
var errNotText = fmt.Errorf("%w: payload is not UTF-8", errPacket)

// packet is one decoded Engine.IO packet. For a message, bin says whether
// data is binary (a binary frame, or "b" + base64) or text.
type packet struct {
	typ  byte
	data []byte
	bin  bool
}

// decodeText decodes one text packet: a type character and its data, or
// "b" and base64. data is a sub-slice of p for text packets and a new slice
// for base64 ones.
func decodeText(p []byte) (packet, error) {
	if len(p) == 0 {
		return packet{}, fmt.Errorf("%w: empty packet", errPacket)
	}
	switch p[0] {
	case typeOpen, typeClose, typePing, typePong, typeMessage, typeUpgrade, typeNoop:
		return packet{typ: p[0], data: p[1:]}, nil
	case typeBase64:
		b, err := decodeBase64(p[1:])
		if err != nil {
			return packet{}, err
		}
		return packet{typ: typeMessage, data: b, bin: true}, nil
	}
	return packet{}, fmt.Errorf("%w: unknown packet type %q", errPacket, p[0])
}

// decodeBase64 decodes standard base64 as engine.io's encoders write it
// (Node's Buffer and the browser's FileReader both pad).
func decodeBase64(s []byte) ([]byte, error) {
	b := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Decode(b, s)
	if err != nil {
		return nil, fmt.Errorf("%w: bad base64: %w", errPacket, err)
	}
	return b[:n:n], nil
}

// splitPayload calls f with each packet of an HTTP long-polling payload, in
// order, until f returns false. The payload must be valid UTF-8: splitting
// at the separator only means something in text. Like engine.io-parser's
// decodePayload it stops at the first malformed packet and returns its
// error, after f has seen the packets before it.
func splitPayload(payload []byte, f func(packet) bool) error {
	if !utf8.Valid(payload) {
		return errNotText
	}
	for start := 0; ; {
		end := start
		for end < len(payload) && payload[end] != separator {
			end++
		}
		p, err := decodeText(payload[start:end:end])
		if err != nil {
			return err
		}
		if !f(p) || end == len(payload) {
			return nil
		}
		start = end + 1
	}
}

// encodedLen is the length of p in a payload or a text frame.
func encodedLen(p packet) int {
	if p.bin {
		return 1 + base64.StdEncoding.EncodedLen(len(p.data))
	}
	return 1 + len(p.data)
}

// appendText appends p as a text packet: its type and data, or "b" and the
// base64 of binary data.
func appendText(dst []byte, p packet) []byte {
	if p.bin {
		dst = append(dst, typeBase64)
		return base64.StdEncoding.AppendEncode(dst, p.data)
	}
	dst = append(dst, p.typ)
	return append(dst, p.data...)
}

// encodePayload joins packets into one HTTP long-polling payload.
func encodePayload(packets []packet) []byte {
	n := len(packets) - 1
	for _, p := range packets {
		n += encodedLen(p)
	}
	out := make([]byte, 0, max(n, 0))
	for i, p := range packets {
		if i > 0 {
			out = append(out, separator)
		}
		out = appendText(out, p)
	}
	return out
}
