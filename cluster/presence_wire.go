package cluster

import "encoding/binary"

// Presence messages travel as topic messages: on every node's channel,
// under presenceTopic,
//
//	'b' node epoch uvarint(first) uvarint(n) n × (op room spark)   a batch of changes, numbered first…first+n-1
//	'd' node epoch uvarint(seq)                                    a digest: every change up to seq was sent
//	'x' node epoch                                                 the node leaves the cluster
//
// and on one node's channel, under rpcTopic,
//
//	'q' node uvarint(id) op spark room                             a request from node
//	'r' uvarint(id) code text                                      its answer
//
// where strings are uvarint(len) bytes and op is one byte.
const (
	presenceTopic = "primus.presence"
	rpcTopic      = "primus.presence.rpc"
)

const (
	msgBatch   byte = 'b'
	msgDigest  byte = 'd'
	msgBye     byte = 'x'
	msgRequest byte = 'q'
	msgReply   byte = 'r'
)

// Operations on memberships and sparks.
const (
	opJoin      byte = 'j'
	opLeave     byte = 'l'
	opEnd       byte = 'e'
	opReconnect byte = 'c'
	opRelease   byte = 'm' // give up a spark that resumes on the asking node (resume.go)
)

// change is one operation on a membership, of this node or of a peer.
type change struct {
	op    byte // opJoin or opLeave
	room  string
	spark string
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBatch(node, epoch string, first uint64, ops []change) []byte {
	n := 16 + len(node) + len(epoch)
	for _, c := range ops {
		n += 5 + len(c.room) + len(c.spark)
	}
	b := make([]byte, 0, n)
	b = append(b, msgBatch)
	b = appendString(b, node)
	b = appendString(b, epoch)
	b = binary.AppendUvarint(b, first)
	b = binary.AppendUvarint(b, uint64(len(ops)))
	for _, c := range ops {
		b = append(b, c.op)
		b = appendString(b, c.room)
		b = appendString(b, c.spark)
	}
	return b
}

func appendDigest(node, epoch string, seq uint64) []byte {
	b := []byte{msgDigest}
	b = appendString(b, node)
	b = appendString(b, epoch)
	return binary.AppendUvarint(b, seq)
}

func appendBye(node, epoch string) []byte {
	b := []byte{msgBye}
	b = appendString(b, node)
	return appendString(b, epoch)
}

func appendRequest(node string, id uint64, op byte, spark, room string) []byte {
	b := []byte{msgRequest}
	b = appendString(b, node)
	b = binary.AppendUvarint(b, id)
	b = append(b, op)
	b = appendString(b, spark)
	return appendString(b, room)
}

func appendReply(id uint64, code byte, text string) []byte {
	b := []byte{msgReply}
	b = binary.AppendUvarint(b, id)
	b = append(b, code)
	return appendString(b, text)
}

// reader reads the fields of a message; after a short or malformed field
// every read returns zero values and ok is false.
type reader struct {
	b  []byte
	ok bool
}

func newReader(b []byte) *reader { return &reader{b: b, ok: true} }

func (r *reader) byte() byte {
	if !r.ok || len(r.b) == 0 {
		r.ok = false
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) num() uint64 {
	if !r.ok {
		return 0
	}
	n, k := binary.Uvarint(r.b)
	if k <= 0 {
		r.ok = false
		return 0
	}
	r.b = r.b[k:]
	return n
}

func (r *reader) str() string {
	if !r.ok {
		return ""
	}
	f, rest, ok := lengthPrefixed(r.b)
	if !ok {
		r.ok = false
		return ""
	}
	r.b = rest
	return string(f)
}

// done reports whether every field was read and nothing is left.
func (r *reader) done() bool { return r.ok && len(r.b) == 0 }

// presenceMsg is a parsed presence message.
type presenceMsg struct {
	kind  byte
	node  string
	epoch string
	seq   uint64 // the first change of a batch; a digest's seq
	ops   []change
}

// maxBatchOps bounds the changes a parsed batch may announce, so that a
// malformed count cannot make the parser allocate much.
const maxBatchOps = 1 << 20

func parsePresence(data []byte) (presenceMsg, bool) {
	r := newReader(data)
	m := presenceMsg{kind: r.byte()}
	m.node = r.str()
	m.epoch = r.str()
	switch m.kind {
	case msgBatch:
		m.seq = r.num()
		n := r.num()
		if n == 0 || n > maxBatchOps || n > uint64(len(r.b)) {
			return m, false
		}
		m.ops = make([]change, 0, n)
		for range n {
			c := change{op: r.byte(), room: r.str(), spark: r.str()}
			if c.op != opJoin && c.op != opLeave {
				return m, false
			}
			m.ops = append(m.ops, c)
		}
		if m.seq == 0 {
			return m, false
		}
	case msgDigest:
		m.seq = r.num()
	case msgBye:
	default:
		return m, false
	}
	return m, r.done() && m.node != "" && m.epoch != ""
}
