package cluster

import (
	"encoding/binary"
	"errors"
)

// The envelope is how one node's message travels to the others: a version
// byte, a kind, the origin node's id, a key (the spark id or the topic; empty
// for a broadcast), then the payload — for writes, the bytes the server's
// parser made, sent on to sparks as they are, so that each message is
// encoded once by the node that writes it and never by the nodes that
// deliver it.
//
//	version(1) kind(1) uvarint(len origin) origin uvarint(len key) key payload
const envelopeVersion = 1

const (
	kindBroadcast byte = 'b' // to every spark
	kindSpark     byte = 's' // to one spark, by id
	kindTopic     byte = 't' // to the handlers of a topic
)

type envelope struct {
	kind    byte
	origin  []byte
	key     []byte
	payload []byte
}

var errEnvelope = errors.New("cluster: malformed message from the broker")

func appendEnvelope(dst []byte, kind byte, origin, key string, payload []byte) []byte {
	dst = append(dst, envelopeVersion, kind)
	dst = binary.AppendUvarint(dst, uint64(len(origin)))
	dst = append(dst, origin...)
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	dst = append(dst, key...)
	return append(dst, payload...)
}

func newEnvelope(kind byte, origin, key string, payload []byte) []byte {
	n := 2 + 2*binary.MaxVarintLen16 + len(origin) + len(key) + len(payload)
	return appendEnvelope(make([]byte, 0, n), kind, origin, key, payload)
}

// parseEnvelope splits data; the parts alias it.
func parseEnvelope(data []byte) (envelope, error) {
	var e envelope
	if len(data) < 2 || data[0] != envelopeVersion {
		return e, errEnvelope
	}
	e.kind = data[1]
	rest := data[2:]
	var ok bool
	if e.origin, rest, ok = lengthPrefixed(rest); !ok {
		return e, errEnvelope
	}
	if e.key, rest, ok = lengthPrefixed(rest); !ok {
		return e, errEnvelope
	}
	e.payload = rest
	return e, nil
}

func lengthPrefixed(b []byte) (field, rest []byte, ok bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, nil, false
	}
	return b[k : k+int(n)], b[k+int(n):], true
}

// A durable broker's messages are stamped: 'D', the message's number on
// its channel for its origin (uvarint), then the envelope. Numbers start at
// 1 for each channel and each Cluster (its origin carries a random epoch),
// so that a subscriber drops a message whose number it has seen: the copy
// a retried publish made.
const stampMark = 'D'

func stamp(n uint64, env []byte) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(env))
	b = append(b, stampMark)
	b = binary.AppendUvarint(b, n)
	return append(b, env...)
}

// unstamp splits a stamped message; ok is false for one without a stamp.
func unstamp(data []byte) (n uint64, env []byte, ok bool) {
	if len(data) < 2 || data[0] != stampMark {
		return 0, data, false
	}
	n, k := binary.Uvarint(data[1:])
	if k <= 0 {
		return 0, data, false
	}
	return n, data[1+k:], true
}
