package multiplex

import "errors"

var (
	// ErrClosed is returned by writes to a channel subscription that has
	// ended.
	ErrClosed = errors.New("multiplex: channel closed")
	// ErrDisconnected is the end reason of the subscriptions of a connection
	// that ended (on a client: that ended for good; a client resubscribes
	// after a reconnection). It wraps the connection's own reason, if any.
	ErrDisconnected = errors.New("multiplex: connection ended")
	// ErrUnbound is returned by a plugin value that was not set up yet: pass
	// it in primus.Options.Plugins or primus.ClientOptions.Plugins first.
	ErrUnbound = errors.New("multiplex: plugin not set up; pass it in primus.Options.Plugins or primus.ClientOptions.Plugins")
	// ErrBound refuses to set up a plugin value a second time: each server
	// or client needs its own.
	ErrBound = errors.New("multiplex: plugin already set up; use one per server or client")
)
