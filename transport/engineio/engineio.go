package engineio

import (
	"errors"
	"net/http"
	"time"

	"github.com/go-primus/primus/transport"
)

// Options configure the Engine.IO transformer and dialer. The zero value of
// every field means the documented default; a nil *Options means all
// defaults.
type Options struct {
	// PingInterval is how often the server sends Engine.IO's own ping
	// packet ("2") on each session; the client answers "3". A polling client
	// that stops polling never answers, so this also bounds how long an
	// abandoned session lives (PingInterval + PingTimeout). It is separate
	// from Primus's heartbeat (primus::ping), which rides as data. Zero
	// value means 25 seconds, engine.io's default.
	PingInterval time.Duration

	// PingTimeout is how long the server waits for the answer to its ping
	// before it closes the session. Zero value means 20 seconds, engine.io's
	// default.
	PingTimeout time.Duration

	// UpgradeTimeout bounds the upgrade of a polling session to WebSocket:
	// a WebSocket that has not completed it (the "5" packet) in time is
	// closed, and the session goes on polling. Zero value means 10 seconds,
	// engine.io's default.
	UpgradeTimeout time.Duration

	// SendBufferBytes bounds, per session, the messages written that no
	// poll has carried yet (a polling client between two polls, or during
	// an upgrade). A write that would go over it waits, so the spark's own
	// send queue (primus.Options.SendQueueBytes) fills and its slow-consumer
	// policy applies. A single message larger than the bound is accepted
	// when nothing is waiting. Zero value means 256 KiB.
	SendBufferBytes int64

	// WriteTimeout bounds each write the transformer makes on its own: a
	// poll's response, a ping on a WebSocket, the messages moved to a
	// WebSocket when a session upgrades; and how long closing a polling
	// session (Spark.End, Server.Shutdown) waits for the client to collect
	// the last messages and the close packet. Zero value means 10 seconds.
	WriteTimeout time.Duration

	// DisableWebSocket turns the websocket transport off: handshakes
	// announce no upgrade and WebSocket requests are refused as an unknown
	// transport. Use it behind load balancers that cannot carry WebSockets.
	DisableWebSocket bool

	// DisablePolling turns HTTP long-polling off: only WebSocket handshakes
	// are accepted (engine.io-client must then be told transports:
	// ["websocket"]). No session then outlives its TCP connection, so no
	// sticky sessions are needed.
	DisablePolling bool

	// InsecureAnyClientAddress lets the requests of a polling session come
	// from any client address. By default a session belongs to the address
	// that opened it (as the server sees it: the socket's peer, or what
	// primus.Options.TrustedProxies forward), and a request for its sid
	// from another address is refused as for an unknown sid, so that
	// whoever learns a sid (it travels in every URL of the session) cannot
	// read its messages or send as its client. Turn the binding off only for
	// clients whose address changes during a session and that cannot use
	// WebSockets (NATs or proxies that rotate egress addresses). A session
	// on WebSocket is one connection and is never affected.
	InsecureAnyClientAddress bool

	// Dial chooses the transports of the Go dialer. Zero value means
	// DialWebSocket.
	Dial DialMode
}

// DialMode is the way the Go dialer connects.
type DialMode uint8

const (
	// DialWebSocket opens an Engine.IO session directly over WebSocket
	// (transport=websocket), as engine.io-client does with transports:
	// ["websocket"].
	DialWebSocket DialMode = iota
	// DialPolling uses HTTP long-polling only, as engine.io-client does
	// with transports: ["polling"] (Primus's websockets: false).
	DialPolling
)

const (
	defaultPingInterval    = 25 * time.Second
	defaultPingTimeout     = 20 * time.Second
	defaultUpgradeTimeout  = 10 * time.Second
	defaultSendBufferBytes = 256 << 10
	defaultWriteTimeout    = 10 * time.Second
)

// Transformer is the Engine.IO transformer (server side) and dialer (Go
// client side). Its methods are safe for concurrent use, and one
// Transformer may serve several servers.
type Transformer struct {
	opts Options
}

// New returns the Engine.IO transformer. opts may be nil.
func New(opts *Options) *Transformer {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.PingInterval <= 0 {
		o.PingInterval = defaultPingInterval
	}
	if o.PingTimeout <= 0 {
		o.PingTimeout = defaultPingTimeout
	}
	if o.UpgradeTimeout <= 0 {
		o.UpgradeTimeout = defaultUpgradeTimeout
	}
	if o.SendBufferBytes <= 0 {
		o.SendBufferBytes = defaultSendBufferBytes
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = defaultWriteTimeout
	}
	return &Transformer{opts: o}
}

// Opens reports whether r is an Engine.IO handshake (a request without a
// sid, over polling or WebSocket): the core applies its connection limits
// to it before authorization, and a refusal reaches the client as an HTTP
// status with Retry-After (transport.Opener).
func (*Transformer) Opens(r *http.Request) bool {
	q := r.URL.Query()
	return r.Method == http.MethodGet && q.Get("sid") == "" && q.Get("EIO") != ""
}

var (
	_ transport.Transformer = (*Transformer)(nil)
	_ transport.Dialer      = (*Transformer)(nil)
	_ transport.Opener      = (*Transformer)(nil)
)

// Name returns "engine.io", Primus's name for this transformer.
func (*Transformer) Name() string { return "engine.io" }

// Capabilities: Engine.IO carries binary messages (binary WebSocket frames,
// base64 in polling payloads), so a binary parser such as CBOR works.
func (*Transformer) Capabilities() transport.Capabilities {
	return transport.Capabilities{Binary: true}
}

// Errors of this package. Test for them with errors.Is.
var (
	// ErrClosed is returned by writes to a session that is closing or
	// closed, and wrapped by reads once it has closed.
	ErrClosed = errors.New("engineio: session closed")
	// ErrProtocol reports a packet, payload or request that breaks the
	// Engine.IO protocol; the session is closed.
	ErrProtocol = errors.New("engineio: protocol error")
	// ErrPingTimeout reports a peer that did not answer a ping in time
	// (server side), or sent none in time (client side).
	ErrPingTimeout = errors.New("engineio: ping timeout")
	// ErrTransportClosed reports a session whose transport went away: the
	// WebSocket closed, a poll's connection closed before its answer, or a
	// request failed.
	ErrTransportClosed = errors.New("engineio: transport closed")
)
