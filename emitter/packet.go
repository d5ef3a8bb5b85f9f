package emitter

import (
	"math"
	"strings"

	"github.com/go-primus/primus/internal/pluginkit"
	"github.com/go-primus/primus/parser"
)

// Packet types of primus-emitter 3.1.1.
const (
	typeEvent = 0
	typeAck   = 1
)

// eventPacket is {"type":0,"data":[event, args…],"id":n}; id only when the
// sender wants an acknowledgement.
type eventPacket struct {
	Type int    `json:"type" cbor:"type"`
	Data []any  `json:"data" cbor:"data"`
	ID   uint64 `json:"id,omitempty" cbor:"id,omitempty"`
}

// ackPacket is {"id":n,"type":1,"data":[reply args…]}.
type ackPacket struct {
	ID   any   `json:"id" cbor:"id"`
	Type int   `json:"type" cbor:"type"`
	Data []any `json:"data" cbor:"data"`
}

// packet is a decoded emitter packet.
type packet struct {
	typ   int
	data  []pluginkit.Part
	hasID bool    // a truthy id: an acknowledgement is wanted (type 0) or this is one (type 1)
	id    float64 // the id as received
}

// decodePacket recognises an emitter packet: an object whose "type" is the
// number 0 or 1 and whose "data" is an array. valid is false for such a
// packet that a stock receiver ignores (a truthy id that is not a number);
// it is still the plugin's, and is dropped.
func decodePacket(c pluginkit.Codec, m *parser.Message) (p packet, mine, valid bool) {
	obj, ok := c.Object(m, `"data"`)
	if !ok {
		return p, false, false
	}
	tp, ok := obj["type"]
	if !ok {
		return p, false, false
	}
	t, ok := tp.Number()
	if !ok || (t != typeEvent && t != typeAck) {
		return p, false, false
	}
	dp, ok := obj["data"]
	if !ok {
		return p, false, false
	}
	data, ok := dp.Array()
	if !ok {
		return p, false, false
	}
	p.typ, p.data = int(t), data
	if idp, ok := obj["id"]; ok && idp.Truthy() {
		id, ok := idp.Number()
		if !ok || math.IsInf(id, 0) {
			return p, true, false
		}
		p.hasID, p.id = true, id
	}
	return p, true, true
}

// wireID is the form an id received is sent back in: an integer when it is
// one, so that JSON and CBOR peers see the number they sent.
func wireID(id float64) any {
	if id == math.Trunc(id) && math.Abs(id) < 1<<53 {
		return int64(id)
	}
	return id
}

// ackKey is the pending-acknowledgement key of a received ack id: ids this
// package sends are positive integers.
func ackKey(id float64) (uint64, bool) {
	if id < 1 || id != math.Trunc(id) || id >= 1<<53 {
		return 0, false
	}
	return uint64(id), true
}

// reservedEvents are the event names a stock receiver drops: the events of
// the Primus client and spark, those multiplex adds, and — because Primus
// tests names with JavaScript's `in` — the members of Object.prototype.
var reservedEvents = map[string]bool{
	// Primus client
	"reconnect scheduled": true, "reconnect timeout": true, "readyStateChange": true,
	"reconnect failed": true, "reconnected": true, "reconnect": true, "offline": true,
	"timeout": true, "destroy": true, "online": true, "error": true, "close": true,
	"open": true, "data": true, "end": true,
	// Primus spark, and primus-multiplex on the spark
	"heartbeat": true, "subscribe": true, "unsubscribe": true,
	// Object.prototype
	"constructor": true, "hasOwnProperty": true, "isPrototypeOf": true,
	"propertyIsEnumerable": true, "toLocaleString": true, "toString": true, "valueOf": true,
	"__proto__": true, "__defineGetter__": true, "__defineSetter__": true,
	"__lookupGetter__": true, "__lookupSetter__": true,
}

// reserved reports whether name may not be sent or received as an event.
func reserved(name string) bool {
	return reservedEvents[name] ||
		strings.HasPrefix(name, "incoming::") || strings.HasPrefix(name, "outgoing::") ||
		strings.HasPrefix(name, "newListener") || strings.HasPrefix(name, "removeListener")
}
