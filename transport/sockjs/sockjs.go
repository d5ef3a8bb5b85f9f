package sockjs

import (
	"errors"
	"math"
	"time"

	"github.com/go-primus/primus/transport"
)

// Options configure the SockJS transformer. The zero value of every field
// means the documented default; a nil *Options means all defaults.
type Options struct {
	// HeartbeatDelay is the interval of SockJS's own "h" frames, which keep
	// proxies from closing idle streaming and polling requests. They are
	// separate from Primus's heartbeat (primus::ping), which rides as data.
	// Zero value means 25 seconds.
	HeartbeatDelay time.Duration

	// DisconnectDelay is how long a session lives without a receiving
	// request (a poll, a stream) before it is closed and its spark ended.
	// It is also how long a closed session is remembered, so that a
	// polling client still gets the close frame. Zero value means 5
	// seconds.
	DisconnectDelay time.Duration

	// ResponseLimit is the number of bytes a streaming response
	// (xhr-streaming, eventsource, htmlfile) carries before the server ends
	// it and the client opens the next one. Zero value means 128 KiB.
	ResponseLimit int

	// SendBufferBytes bounds, per session, the messages handed to
	// sockjs-go that no response has carried yet (a polling client between
	// two polls). A write that would go over it waits, so the spark's own
	// send queue (primus.Options.SendQueueBytes) fills and its slow-consumer
	// policy applies. A single message larger than the bound is still
	// accepted when nothing is waiting. Zero value means 256 KiB.
	SendBufferBytes int64

	// WriteTimeout bounds each write sockjs-go makes on a SockJS WebSocket
	// (close frames and heartbeats included), and the time Close waits for
	// a polling client to collect what was written before the close frame.
	// Zero value means 10 seconds.
	WriteTimeout time.Duration

	// MaxFrameBytes bounds one frame a client sends: a WebSocket message or
	// the body of an xhr_send or jsonp_send request, which may carry several
	// messages. A larger frame closes the session with 1009 and
	// transport.ErrMessageTooBig, before it is buffered. Zero value means
	// 6 × the server's MaxMessageSize + 64 KiB: one message of the maximum
	// size however its client escaped it (JSON's \u00XX is six bytes for
	// one), or many smaller ones.
	MaxFrameBytes int64

	// DisableWebSocket turns SockJS's websocket transport off (the info
	// endpoint then says so), for load balancers that cannot carry
	// WebSockets; clients fall back to streaming and polling.
	DisableWebSocket bool

	// SockJSURL is where the iframe page of the iframe-based transports
	// loads the SockJS client from; serve it from your own origin in
	// production. Zero value means sockjs-go's default, the
	// sockjs-client@1 build on jsDelivr.
	SockJSURL string

	// JSessionID makes the server set a dummy JSESSIONID cookie, for load
	// balancers that keep a client on one server only when that cookie is
	// present (see the package documentation on sticky sessions). A client
	// that has a JSESSIONID cookie already gets its own value back.
	JSessionID bool

	// InsecureAnyClientAddress lets a session's polling and sending
	// requests come from any client address. By default a session belongs
	// to the address that opened it (as the server sees it: the socket's
	// peer, or what primus.Options.TrustedProxies forward), and a request
	// for it from another address is answered as for a session that does
	// not exist, so that whoever learns a session's id (it travels in every
	// URL of the session) cannot read its messages or send as its client.
	// Turn the binding off only for clients whose address changes during
	// a session: behind NATs or proxies that rotate egress addresses from
	// one request to the next (some mobile carriers, some corporate
	// proxies), which would otherwise see their sessions end and reconnect
	// whenever their address changes. The websocket transport is never
	// affected: one connection carries the whole session.
	InsecureAnyClientAddress bool
}

const (
	defaultHeartbeatDelay  = 25 * time.Second
	defaultDisconnectDelay = 5 * time.Second
	defaultResponseLimit   = 128 << 10
	defaultSendBufferBytes = 256 << 10
	defaultWriteTimeout    = 10 * time.Second
)

// Transformer is the SockJS transformer (server side) and dialer (Go client
// side, over SockJS's websocket transport). Its methods are safe for
// concurrent use, and one Transformer may serve several servers.
type Transformer struct {
	opts Options
}

// New returns the SockJS transformer. opts may be nil.
func New(opts *Options) *Transformer {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.HeartbeatDelay <= 0 {
		o.HeartbeatDelay = defaultHeartbeatDelay
	}
	if o.DisconnectDelay <= 0 {
		o.DisconnectDelay = defaultDisconnectDelay
	}
	if o.ResponseLimit <= 0 {
		o.ResponseLimit = defaultResponseLimit
	}
	if o.SendBufferBytes <= 0 {
		o.SendBufferBytes = defaultSendBufferBytes
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = defaultWriteTimeout
	}
	return &Transformer{opts: o}
}

var (
	_ transport.Transformer = (*Transformer)(nil)
	_ transport.Dialer      = (*Transformer)(nil)
)

// Name returns "sockjs", Primus's name for this transformer.
func (*Transformer) Name() string { return "sockjs" }

// Capabilities: SockJS carries text only (every message is a string inside a
// JSON array), so a binary parser such as CBOR is refused by primus.New.
func (*Transformer) Capabilities() transport.Capabilities {
	return transport.Capabilities{Binary: false}
}

// Errors of this package. Test for them with errors.Is.
var (
	// ErrBinary is returned by a connection's Write for a binary message:
	// SockJS frames carry text only.
	ErrBinary = errors.New("sockjs: binary messages cannot be sent over SockJS; use a text parser such as parser.JSON")
	// ErrClosed is returned by writes to a session that is closing.
	ErrClosed = errors.New("sockjs: session closed")
	// ErrProtocol reports a frame that does not follow the SockJS protocol.
	ErrProtocol = errors.New("sockjs: protocol error")
	// ErrNoWebSocket is returned by Dial when the server's info says its
	// websocket transport is off (the Go dialer has no other transport).
	ErrNoWebSocket = errors.New("sockjs: the server does not offer the websocket transport")
)

// frameLimit is the default bound on one client frame for a message limit:
// six bytes per byte (the \u00XX escape of a control character) plus room
// for the brackets, quotes and a few smaller messages.
func frameLimit(maxMessage int64) int64 {
	if maxMessage <= 0 || maxMessage > (math.MaxInt64-64<<10)/6 {
		return math.MaxInt64
	}
	return 6*maxMessage + 64<<10
}
