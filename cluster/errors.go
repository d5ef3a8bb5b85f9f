package cluster

import "errors"

// Sentinel errors. Test for them with errors.Is.
var (
	// ErrClosed is returned by the methods of a Cluster after Close.
	ErrClosed = errors.New("cluster: closed")
	// ErrQueueFull is returned by a write whose message for the other nodes
	// did not fit in the outgoing queue (Options.QueueBytes): the broker is
	// slower than the writes, or unreachable. The local sparks got the
	// message; the other nodes did not.
	ErrQueueFull = errors.New("cluster: outgoing queue full")
	// ErrNotFound is returned by Registry.Lookup for a spark that no live
	// node holds.
	ErrNotFound = errors.New("cluster: spark not found")
)
