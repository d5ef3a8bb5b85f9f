package primus

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/plugin"
	"github.com/go-primus/primus/transport"
)

// Options configure a Server. The zero value of every field means the
// documented default; a nil *Options means all defaults.
type Options struct {
	// Pathname is the URL path prefix the server owns. Zero value means
	// "/primus". A missing leading "/" is added.
	Pathname string

	// Transformer is the real-time framework. Zero value means the
	// WebSocket transformer (transport/websocket).
	Transformer transport.Transformer

	// Parser encodes and decodes messages. Zero value means parser.JSON.
	Parser parser.Parser

	// PingInterval is the heartbeat interval: every interval the server
	// writes "primus::ping::<ms>" to every spark and closes those that did
	// not answer the previous ping. Zero value means 30 seconds; a negative
	// value disables heartbeats.
	PingInterval time.Duration

	// MaxMessageSize is the largest message accepted from a client, in
	// bytes; a larger one closes the connection with status 1009 and
	// ErrMessageTooBig. Zero value means 1 MiB.
	MaxMessageSize int64

	// SendQueueBytes bounds each spark's queue of messages not yet written
	// to its transport. A write that would go over it closes the spark with
	// ErrSlowConsumer (the client reconnects); a broadcast never waits for a
	// slow client. A single message larger than the bound is still accepted
	// by an empty queue. Zero value means 4 MiB.
	SendQueueBytes int64

	// WriteTimeout bounds the time the transport may take to accept one
	// message; a spark that goes over it is closed. Zero value means 10 s.
	WriteTimeout time.Duration

	// HandshakeTimeout bounds the time from a request's arrival to the
	// connection being open, middleware and authorization included. Zero
	// value means 10 s. Slow request headers are the http.Server's
	// ReadHeaderTimeout's business.
	HandshakeTimeout time.Duration

	// BodyTimeout bounds the reading of a request body under the pathname
	// (the sends of polling transports such as SockJS's xhr_send): a client
	// that trickles a body is cut when it runs out. Zero value means 10 s.
	BodyTimeout time.Duration

	// HeaderBytes bounds the handshake headers a spark keeps for Header():
	// whole headers are kept, smallest first, while they fit, and the rest
	// dropped, so that a client sending huge headers cannot make a spark
	// hold them for its whole life. Middleware and Authorize still see every
	// header. Zero value means 32 KiB; negative keeps none.
	HeaderBytes int

	// OriginPatterns lists extra browser origins allowed to connect, as
	// host patterns for path.Match ("example.com", "*.example.com"). The
	// request's own host is always allowed; requests without an Origin
	// header (non-browser clients) are not checked.
	OriginPatterns []string

	// InsecureAllowAnyOrigin turns the origin check off: any web page on
	// any site can then open connections with your users' cookies. Use
	// OriginPatterns instead unless you know why you can't.
	InsecureAllowAnyOrigin bool

	// TrustedProxies lists the networks whose forwarding headers
	// (X-Forwarded-For, X-Real-IP, Forwarded) are believed when computing a
	// spark's Address. Zero value means none: the address is the socket's.
	TrustedProxies []netip.Prefix

	// Compression enables per-message compression where the transformer
	// supports it. Zero value means off.
	Compression bool

	// IDGenerator makes spark ids; they must be unique. Zero value means
	// 26 characters from crypto/rand (130 bits).
	IDGenerator func() string

	// Recovery makes connections resumable for the clients that can (the
	// Go client and the served browser client; the stock Primus client
	// never asks): a spark whose connection is lost waits for its client
	// to come back, and then gets every message it missed, exactly once and
	// in order. See Recovery. Zero value (nil) means off.
	Recovery *Recovery

	// Plugins are set up in order when the server is built.
	Plugins []plugin.Plugin

	// Limits keep one abusive client from hurting the others: connections
	// per server and per client address, new connections per second per
	// address, messages and bytes per second per spark. See Limits. Zero
	// value (nil) means none.
	Limits *Limits

	// Observer receives the server's events (connections, messages,
	// refusals, limits, heartbeats, resumes), for metrics: package metrics
	// implements it on Prometheus. Zero value (nil) means none, at the cost
	// of a nil check per event.
	Observer Observer

	// Logger receives the server's diagnostics. Zero value means silent.
	Logger *slog.Logger

	// OnPanic runs when code run for a spark panics: one of its handlers
	// (connection, data, error, end, disconnection), a plugin's hook, or a
	// plugin callback such as an emitter handler. The panic is recovered,
	// logged at error level with its stack, passed here, and the spark is
	// closed with status 1011 and ends with the *PanicError; the server and
	// every other spark go on. Zero value means only the log.
	OnPanic func(sp *Spark, err *PanicError)

	// CrashOnPanic makes such a panic crash the process instead, as an
	// unrecovered panic does in Go (after the log and OnPanic), for those
	// who would rather restart than go on.
	CrashOnPanic bool
}

const (
	defaultPathname         = "/primus"
	defaultPingInterval     = 30 * time.Second
	defaultMaxMessageSize   = 1 << 20
	defaultSendQueueBytes   = 4 << 20
	defaultWriteTimeout     = 10 * time.Second
	defaultHandshakeTimeout = 10 * time.Second
	defaultBodyTimeout      = 10 * time.Second
	defaultHeaderBytes      = 32 << 10
)
