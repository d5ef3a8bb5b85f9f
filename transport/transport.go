// Package transport defines the contract between the primus core and a
// real-time framework (a "transformer" in Primus's words): a Transformer turns
// HTTP requests under the server's pathname into connections that move whole
// messages, and a Dialer opens such a connection from a Go program.
//
// The core never sees the framework: it reads and writes [Frame]s on a [Conn].
// To add a framework, implement [Transformer] (and [Dialer] for the Go client)
// in a package of your own; see transport/websocket for the reference one.
package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"sort"
	"strings"
	"time"
)

// MessageType says whether a frame carries text or binary data.
type MessageType uint8

const (
	// Text frames carry UTF-8 text (the JSON parser's output).
	Text MessageType = 1
	// Binary frames carry arbitrary bytes (the CBOR parser's output).
	Binary MessageType = 2
)

func (t MessageType) String() string {
	switch t {
	case Text:
		return "text"
	case Binary:
		return "binary"
	}
	return fmt.Sprintf("MessageType(%d)", uint8(t))
}

// Conn is one established connection. Read is called from one goroutine at a
// time and Write from one goroutine at a time; Close and CloseNow may be
// called concurrently with both, and more than once.
type Conn interface {
	// Read blocks until a whole message arrives. It returns an error wrapping
	// ErrMessageTooBig when the peer sent a message over the read limit (the
	// connection is closed by then), and some other error when the
	// connection is gone.
	Read(ctx context.Context) (MessageType, []byte, error)
	// Write sends one whole message. The slice must not be modified by the
	// Conn and may be shared with other connections.
	Write(ctx context.Context, typ MessageType, data []byte) error
	// Close closes the connection with a status code and reason where the
	// framework has them, waiting a bounded time for the peer to agree.
	Close(code int, reason string) error
	// CloseNow closes the underlying connection at once, without handshake.
	CloseNow() error
}

// Close status codes used by the core (the WebSocket ones; other frameworks
// map them as they see fit).
const (
	StatusNormalClosure   = 1000
	StatusGoingAway       = 1001
	StatusUnsupportedData = 1003 // a binary frame to a text parser, or the reverse
	StatusInvalidPayload  = 1007 // a text frame that is not UTF-8 (RFC 6455 §8.1)
	StatusPolicyViolation = 1008
	StatusMessageTooBig   = 1009
	StatusInternalError   = 1011
	StatusTryAgainLater   = 1013
)

// ErrMessageTooBig is wrapped by Conn.Read when a message exceeded the limit.
var ErrMessageTooBig = errors.New("transport: message too big")

// ErrUnsupportedData is wrapped by Conn.Read when a transformer refused a
// frame of a type it does not carry (a binary frame on a text-only
// transport), and by the core for a frame whose type does not match the
// parser; the connection is closed with StatusUnsupportedData.
var ErrUnsupportedData = errors.New("transport: unsupported data: frame type does not match the parser")

// Capabilities say what a transformer's connections can carry.
type Capabilities struct {
	// Binary is true when the connections carry binary frames. A server
	// refuses a binary parser on a transformer without it.
	Binary bool
}

// Options are the core's settings that a transformer must apply. The server
// fills every field; zero values never reach a transformer.
type Options struct {
	// Pathname is the prefix the server owns, such as "/primus".
	Pathname string
	// MaxMessageSize is the read limit per message in bytes.
	MaxMessageSize int64
	// OriginPatterns lists the extra origins allowed to connect, as host
	// patterns for path.Match (the request's own host is always allowed).
	OriginPatterns []string
	// InsecureSkipOriginCheck disables the origin check altogether.
	InsecureSkipOriginCheck bool
	// HandshakeTimeout bounds the time a connection may take to open.
	HandshakeTimeout time.Duration
	// Compression asks for per-message compression where the framework
	// supports it.
	Compression bool
	// BodyTimeout bounds the reading of a plain HTTP request's body (a
	// polling transport's send): a transformer that reads bodies sets a read
	// deadline of this length before reading and clears it after.
	BodyTimeout time.Duration
	// HeaderBytes bounds the request headers a transformer keeps for a
	// connection's life (see TrimHeader); negative means none are kept.
	HeaderBytes int
	// ClientAddress returns the client's IP address as the server sees it
	// (the socket's peer, or what trusted proxies forward). Transformers
	// that bind sessions to their client use it.
	ClientAddress func(r *http.Request) netip.Addr
	// NewID returns a new connection id from the server's IDGenerator:
	// unique and unguessable. A transformer whose framework gives each
	// connection an id that the client learns too (Engine.IO's sid) takes
	// it from here, and its Conn reports it through Identified.
	NewID func() string
	// Logger receives the transformer's own diagnostics. Never nil.
	Logger *slog.Logger
}

// OriginAllowed applies the server's origin check to a request: one without
// an Origin header (not a browser), from the request's own host, or from a
// host matching one of OriginPatterns (path.Match, case-insensitive) is
// allowed; with InsecureSkipOriginCheck, every one is. Transformers that
// answer plain HTTP (polling transports) use it for every request and for
// CORS.
func (o Options) OriginAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || o.InsecureSkipOriginCheck {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	host := strings.ToLower(u.Host)
	for _, pattern := range o.OriginPatterns {
		if ok, _ := path.Match(strings.ToLower(pattern), host); ok {
			return true
		}
	}
	return false
}

// TrimHeader returns h when its names and values hold at most budget bytes,
// and otherwise a copy holding at most that many: headers are kept whole,
// smallest first, while they fit; the others are left out. A negative
// budget keeps nothing. What a connection
// keeps for its whole life is then bounded whatever a client sends, while
// middleware and authorization, which run during the handshake, still see
// every header.
func TrimHeader(h http.Header, budget int) http.Header {
	if budget < 0 {
		return http.Header{}
	}
	type entry struct {
		name string
		size int
	}
	entries := make([]entry, 0, len(h))
	total := 0
	for k, vs := range h {
		n := len(k)
		for _, v := range vs {
			n += len(v)
		}
		entries = append(entries, entry{k, n})
		total += n
	}
	if total <= budget {
		return h
	}
	out := make(http.Header, min(len(h), 16))
	sort.Slice(entries, func(i, j int) bool {
		if entries[i].size != entries[j].size {
			return entries[i].size < entries[j].size
		}
		return entries[i].name < entries[j].name
	})
	for _, e := range entries {
		if e.size > budget {
			break
		}
		budget -= e.size
		out[e.name] = append([]string(nil), h[e.name]...)
	}
	return out
}

// AcceptFunc is called by a transformer for each new connection, with the
// request that opened it (its URL, headers and remote address are those of
// the handshake). It runs the connection and returns when the connection is
// finished; the transformer may release the connection's resources then.
//
// AcceptFunc is the core's, not the transformer's: it reads from c in the
// goroutine that calls it.
type AcceptFunc func(r *http.Request, c Conn)

// Transformer turns HTTP requests under the server's pathname into
// connections.
type Transformer interface {
	// Name is the transformer's name in <pathname>/spec, using Primus's names
	// where one applies ("websockets", "sockjs", "engine.io").
	Name() string
	// Capabilities says what the connections can carry.
	Capabilities() Capabilities
	// Handler returns the HTTP handler for every request under
	// opts.Pathname that the core does not answer itself (the spec, the
	// client library). It is called once, when the server is built. The
	// handler either answers plain HTTP (e.g. 426 Upgrade Required, SockJS
	// polling) or hands connections to accept.
	Handler(opts Options, accept AcceptFunc) (http.Handler, error)
}

// DialOptions are the Go client's settings that a Dialer applies.
type DialOptions struct {
	// Header is sent with the handshake request.
	Header http.Header
	// HTTPClient is used for the handshake; nil means http.DefaultClient.
	HTTPClient *http.Client
	// MaxMessageSize is the read limit per message in bytes.
	MaxMessageSize int64
	// Compression asks for per-message compression where supported.
	Compression bool
}

// Dialer opens a connection to a server's transformer from Go.
type Dialer interface {
	// Dial connects to url, whose path is the server's pathname and whose
	// query is the connection's query. When the server answered the
	// handshake with an HTTP error, the error wraps a *HandshakeError.
	Dial(ctx context.Context, url string, opts DialOptions) (Conn, error)
}

// HandshakeError is a handshake refused with an HTTP status, such as an
// authorization failure (401 with a JSON body {"error":"..."}).
type HandshakeError struct {
	StatusCode int
	Header     http.Header
	// Body is the start of the response body (at most 64 KiB).
	Body []byte
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("transport: handshake refused with HTTP %d: %s", e.StatusCode, e.Body)
}

// Identified is implemented by a Conn whose framework named the connection
// with an id the client knows too, made with Options.NewID. The core then
// uses it as the spark's id instead of making another: the stock Primus
// client over Engine.IO answers primus.id() with the Engine.IO sid, without
// asking the server, so the two must be the same.
type Identified interface {
	ID() string
}

// PingObserver is implemented by a Conn whose framework has ping frames of
// its own (WebSocket). The core calls OnPing once, before reading, and counts
// each peer ping as a sign of life, as Primus does.
type PingObserver interface {
	OnPing(f func())
}

// WriteSpace is implemented by a Conn that can tell whether a write of n
// bytes would complete at once, without waiting for the peer to read (the
// kernel has room for it). The core then writes a message from the goroutine
// that wrote it, instead of handing it to a writer goroutine: the same
// result for less work, and an idle connection needs no writer at all.
// Writable is called by the goroutine about to call Write, never
// concurrently with Write; a wrong true would make that goroutine wait for
// the peer, so an implementation must err towards false.
type WriteSpace interface {
	Writable(n int) bool
}

// WriteDeadliner is implemented by a Conn whose writes can be bounded by a
// deadline: a Write still blocked at the deadline fails with an error
// wrapping os.ErrDeadlineExceeded and the connection is unusable. The zero
// time clears it. The core uses it for Options.WriteTimeout instead of a
// timer per connection.
type WriteDeadliner interface {
	SetWriteDeadline(t time.Time) error
}

// IdleReader is implemented by a Conn that lets the core move an idle
// connection's reading to a fresh goroutine: a goroutine's stack grows while
// it handles messages and stays grown, so an idle connection then holds only
// a small stack. Wake makes a Read that is waiting for the next message
// return ErrWoken, with nothing lost and the connection intact (a Read that
// is receiving a message is not disturbed). Detach tells the transformer
// that the AcceptFunc may return while the connection is still open: the
// core goes on reading it from another goroutine and closes it (CloseNow)
// when it is done.
type IdleReader interface {
	Wake()
	Detach()
}

// ErrWoken is returned by the Read of an IdleReader that Wake interrupted.
var ErrWoken = errors.New("transport: read woken")

// Opener is implemented by a Transformer that can tell, before handling a
// request, whether the request would open a new connection (a WebSocket
// upgrade, say) rather than serve one that exists (a polling request).
// The core then applies its connection limits to such requests before
// authorization and refuses them with an HTTP status (429, 503) and
// Retry-After; without it, a connection over a limit is closed once it is
// open.
type Opener interface {
	Opens(r *http.Request) bool
}
