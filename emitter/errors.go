package emitter

import "errors"

var (
	// ErrReserved refuses an event name that a stock Primus peer would
	// silently drop: "data", "end", "error", "open", "close", "heartbeat",
	// "readyStateChange", the reconnect events, "subscribe", "unsubscribe",
	// names starting with "incoming::", "outgoing::", "newListener" or
	// "removeListener", and the names of JavaScript's Object.prototype
	// members ("toString"…).
	ErrReserved = errors.New("emitter: reserved event name")
	// ErrAckTimeout is the error of an acknowledgement that did not come
	// within Options.AckTimeout.
	ErrAckTimeout = errors.New("emitter: acknowledgement timeout")
	// ErrDisconnected is the error of an acknowledgement whose connection
	// ended (or, on a client, was lost) before it came. The event may or may
	// not have reached the peer.
	ErrDisconnected = errors.New("emitter: connection ended before the acknowledgement")
	// ErrTooManyPending is returned by SendAck and SendAckFunc when the
	// connection already waits for Options.MaxPendingAcks
	// acknowledgements: the event is not sent. It is the peer that does not
	// answer, or answers slower than events are sent.
	ErrTooManyPending = errors.New("emitter: too many acknowledgements pending on the connection")
	// ErrAcked is returned by a second Event.Ack: an event is acknowledged
	// at most once.
	ErrAcked = errors.New("emitter: event already acknowledged")
	// ErrUnbound is returned by a plugin value that was not set up yet: pass
	// it in primus.Options.Plugins or primus.ClientOptions.Plugins first.
	ErrUnbound = errors.New("emitter: plugin not set up; pass it in primus.Options.Plugins or primus.ClientOptions.Plugins")
	// ErrBound refuses to set up a plugin value a second time: each server,
	// client or channel needs its own.
	ErrBound = errors.New("emitter: plugin already set up; use one emitter per server, client or channel")
)
