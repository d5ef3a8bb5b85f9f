package multiplex

import (
	"strconv"

	"github.com/go-primus/primus/internal/pluginkit"
	"github.com/go-primus/primus/parser"
)

// Packet types of primus-multiplex: every packet is [type, id, channel] or
// [type, id, channel, payload].
const (
	typeMessage     = 0
	typeSubscribe   = 1
	typeUnsubscribe = 2
)

// packet is a decoded multiplex packet.
type packet struct {
	typ     int
	id      any    // as received: a string (what clients send) or a number
	key     string // id as JavaScript's property key: both sides match ids by it
	name    string
	payload *pluginkit.Part // nil when absent
}

// decodePacket recognises a multiplex packet: an array of 3 or 4 elements
// whose type is 0, 1 or 2, whose id is a string or a number and whose
// channel name is a string. Any other message is not the plugin's.
func decodePacket(c pluginkit.Codec, m *parser.Message) (p packet, ok bool) {
	parts, ok := c.Array(m)
	if !ok || len(parts) < 3 || len(parts) > 4 {
		return p, false
	}
	t, ok := parts[0].Number()
	if !ok || (t != typeMessage && t != typeSubscribe && t != typeUnsubscribe) {
		return p, false
	}
	if p.name, ok = parts[2].String(); !ok {
		return p, false
	}
	if s, ok := parts[1].String(); ok {
		p.id, p.key = s, s
	} else if n, ok := parts[1].Number(); ok {
		p.id, p.key = n, strconv.FormatFloat(n, 'g', -1, 64)
	} else {
		return p, false
	}
	p.typ = int(t)
	if len(parts) == 4 {
		p.payload = &parts[3]
	}
	return p, true
}

// payloadMessage returns the packet's payload as a message; a MESSAGE
// without one (the npm client drops falsy payloads: 0, "", false, null) is
// delivered as null.
func payloadMessage(c pluginkit.Codec, p packet) (*parser.Message, error) {
	if p.payload == nil {
		return c.Null()
	}
	return p.payload.Message()
}

// control returns the packet [typ, id, name] (SUBSCRIBE or UNSUBSCRIBE).
func control(typ int, id any, name string) []any { return []any{typ, id, name} }

// message returns the packet [0, id, name, payload]. The payload is always
// there, falsy or not, so that no value turns into undefined on the way.
func message(id any, name string, payload any) []any {
	return []any{typeMessage, id, name, payload}
}
