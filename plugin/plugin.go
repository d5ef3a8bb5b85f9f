// Package plugin is the contract between the primus core and its plugins.
//
// A plugin has a name and up to three sides, each an optional interface:
// a server side ([ServerPlugin]), a Go-client side ([ClientPlugin]) and a
// browser part ([BrowserPlugin], JavaScript served with the browser client).
// The core calls each side once, when a server or client is built, and the
// plugin installs [ServerHooks] or [ClientHooks] there.
//
// Hooks run in plugin registration order. An incoming hook sees every data
// message before the data handlers do (control messages of the Primus
// protocol never reach hooks) and can consume it (a plugin's own packets),
// rewrite it with [parser.Message.Replace], or drop it with an error. An
// outgoing hook sees every value written and can rewrite or drop it. Plugins
// compose: each one consumes only its own packets and passes the rest on.
//
// Plugins depend on this package and on package parser, never on the core,
// so anyone can write one; the core's *primus.Spark and *primus.Client
// implement [Spark] and [Client].
package plugin

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/go-primus/primus/parser"
)

// Plugin is the part every plugin has.
type Plugin interface {
	// Name identifies the plugin; two plugins with one name are refused.
	Name() string
}

// ServerPlugin is a plugin with a server side.
type ServerPlugin interface {
	Plugin
	// SetupServer is called once, while the server is built. An error
	// fails the server's construction.
	SetupServer(h ServerHost) error
}

// ClientPlugin is a plugin with a Go-client side.
type ClientPlugin interface {
	Plugin
	// SetupClient is called once for each client, while it is built.
	SetupClient(h ClientHost) error
}

// BrowserPlugin is a plugin with a part for the browser client: JavaScript
// source that is run once with the Primus class as its only argument
// (`function (Primus) { … }` body), served with the library.
type BrowserPlugin interface {
	Plugin
	BrowserLibrary() string
}

// Spark is one connection on the server, as plugins see it.
type Spark interface {
	// ID is the connection's unique, unguessable id.
	ID() string
	// Query is the parsed query of the handshake request.
	Query() url.Values
	// Header is the handshake request's header.
	Header() http.Header
	// Context is cancelled when the connection ends; it carries the values
	// of the handshake request's context (set by HTTP middleware).
	Context() context.Context
	// Write sends v to this connection, through the outgoing hooks.
	Write(v any) error
	// End sends "primus::server::close" and closes: the client does not
	// reconnect.
	End() error
	// Close closes without "primus::server::close": the client reconnects.
	Close() error
}

// ServerHooks are the hooks a plugin installs on a server. Nil fields are
// skipped.
type ServerHooks struct {
	// Connection runs for each new spark, before any message of it is read
	// and before the server's own connection handlers.
	Connection func(s Spark)
	// Incoming runs for each data message. Return pass=false to consume the
	// message (no later hook or handler sees it). A non-nil error drops the
	// message and reaches the spark's error handlers.
	Incoming func(s Spark, m *parser.Message) (pass bool, err error)
	// Outgoing runs for each value written to a spark (broadcasts included)
	// and returns the value to send instead. Return pass=false to drop it
	// silently; a non-nil error drops it and is returned by Write.
	Outgoing func(s Spark, v any) (out any, pass bool, err error)
	// Close runs once when a spark has ended, with the reason (nil for a
	// normal end), after its own end handlers and before the server's
	// disconnection handlers. With recovery, a spark that lost its
	// connection and waits for its client has not ended.
	Close func(s Spark, reason error)
	// Resume runs when a dropped spark's client comes back (recovery),
	// before the spark's own resume handlers.
	Resume func(s Spark)
}

// ServerHost is what a server offers a plugin at set-up.
type ServerHost interface {
	// Install adds the plugin's hooks.
	Install(h ServerHooks)
	// Parser is the server's parser.
	Parser() parser.Parser
	// Logger is the server's logger (never nil; silent by default).
	Logger() *slog.Logger
	// Write broadcasts v to every spark.
	Write(v any) error
	// Spark finds a connected spark by id.
	Spark(id string) (Spark, bool)
	// ForEach calls f for every connected spark until it returns false.
	ForEach(f func(s Spark) bool)
}

// Client is a Go client connection, as plugins see it.
type Client interface {
	// Write sends v, queued while the client is offline.
	Write(v any) error
}

// ClientHooks are the hooks a plugin installs on a Go client. Nil fields are
// skipped.
type ClientHooks struct {
	// Open runs each time the connection opens, reconnections included,
	// before queued writes are flushed: what the hook writes with c (a
	// resubscription, say) goes out ahead of them. With recovery, a
	// reconnection that resumes the same spark runs Resume instead: the
	// server kept the plugin's state.
	Open func(c Client)
	// Resume runs, instead of Open, when a reconnection resumed the same
	// spark (recovery): nothing was lost, and the Close hook did not run
	// for the connection that was lost (it runs, before Open, when the
	// resume fails).
	Resume func(c Client)
	// Incoming runs for each data message; see ServerHooks.Incoming.
	Incoming func(c Client, m *parser.Message) (pass bool, err error)
	// Outgoing runs for each value written; see ServerHooks.Outgoing.
	Outgoing func(c Client, v any) (out any, pass bool, err error)
	// Close runs each time the connection closes, with the reason, and
	// reconnecting says whether the client will try again. When the client
	// ends while offline (reconnecting), it runs once more with the client's
	// end reason and reconnecting false.
	Close func(c Client, reason error, reconnecting bool)
}

// ClientHost is what a Go client offers a plugin at set-up.
type ClientHost interface {
	Install(h ClientHooks)
	Parser() parser.Parser
	Logger() *slog.Logger
	Client() Client
}
