package rooms

import "encoding/binary"

// A room write travels between nodes as
//
//	uvarint(len room) room uvarint(n) n × (uvarint(len id) id) payload
//
// where the ids are the members to skip and the payload is the bytes the
// writing node's parser made, delivered as they are.

func appendRoomMessage(dst []byte, room string, except []string, payload []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(room)))
	dst = append(dst, room...)
	dst = binary.AppendUvarint(dst, uint64(len(except)))
	for _, id := range except {
		dst = binary.AppendUvarint(dst, uint64(len(id)))
		dst = append(dst, id...)
	}
	return append(dst, payload...)
}

func parseRoomMessage(b []byte) (room string, except []string, payload []byte, ok bool) {
	f, b, ok := field(b)
	if !ok {
		return "", nil, nil, false
	}
	room = string(f)
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return "", nil, nil, false
	}
	b = b[k:]
	if n > 0 {
		except = make([]string, 0, n)
	}
	for range n {
		if f, b, ok = field(b); !ok {
			return "", nil, nil, false
		}
		except = append(except, string(f))
	}
	return room, except, b, true
}

func field(b []byte) (f, rest []byte, ok bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, nil, false
	}
	return b[k : k+int(n)], b[k+int(n):], true
}
