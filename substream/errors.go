package substream

import "errors"

var (
	// ErrClosed is returned by writes to a stream that has ended, and by
	// Stream on a connection that has.
	ErrClosed = errors.New("substream: stream closed")
	// ErrDisconnected is the end reason of the streams of a connection that
	// ended (on a client: that ended for good; streams outlive
	// reconnections). It wraps the connection's own reason, if any.
	ErrDisconnected = errors.New("substream: connection ended")
	// ErrTooManyStreams is returned by Substream.Stream when the connection
	// already has Options.MaxStreams streams open; no stream is created.
	ErrTooManyStreams = errors.New("substream: too many streams open on the connection")
	// ErrUnbound is returned by a plugin value that was not set up yet: pass
	// it in primus.Options.Plugins or primus.ClientOptions.Plugins first.
	ErrUnbound = errors.New("substream: plugin not set up; pass it in primus.Options.Plugins or primus.ClientOptions.Plugins")
	// ErrBound refuses to set up a plugin value a second time: each server
	// or client needs its own.
	ErrBound = errors.New("substream: plugin already set up; use one per server or client")
)
