package cluster

import (
	"log/slog"
	"time"
)

// Options configure a Cluster. Broker and Registry are required; the zero
// value of every other field means the documented default.
type Options struct {
	// Broker carries messages between the nodes.
	Broker Broker

	// Registry records the nodes and their sparks. The NATS and Redis
	// backends are both a Broker and a Registry: pass the same value twice.
	Registry Registry

	// NodeID names this node in the registry and on the broker; it must be
	// unique in the cluster, made of letters, digits, "-" and "_". Zero
	// value means a random id.
	NodeID string

	// Expiry is how long the registry keeps this node's entries without a
	// refresh; the node refreshes them every Expiry/3. A node that dies
	// leaves the registry, sparks and all, within Expiry. Zero value means
	// 15 seconds; values under a second are raised to one (NATS's smallest
	// per-message TTL).
	Expiry time.Duration

	// Timeout bounds each call to the broker or the registry. Zero value
	// means 5 seconds.
	Timeout time.Duration

	// QueueBytes bounds the messages waiting to be published to the other
	// nodes. Over it a write still reaches this node's sparks and returns
	// ErrQueueFull. Zero value means 16 MiB.
	QueueBytes int64

	// Recovery makes the server's sparks resumable on any node of the
	// cluster (see the package documentation, "Recovery on any node"): a
	// client whose node died, or that the load balancer sends elsewhere,
	// resumes its spark on the node it reaches, with every message written
	// to it, once and in order. It needs primus.Options.Recovery on the
	// server, a Broker that is a Journal and a Registry that is a
	// SessionStore (cluster/nats and cluster/redis with their Durable
	// option). Every message to a spark then goes through the journal,
	// this node's own included. Zero value means off.
	Recovery bool

	// OnError is called with each cross-node failure: a publish or registry
	// call that failed, a lost broker connection, a queue that overflowed.
	// It is called when a failure starts and at most once a second while it
	// lasts, from the cluster's goroutines; it must not block. Zero value
	// means none (errors still reach Logger).
	OnError func(error)

	// Logger receives the cluster's diagnostics: failures at Warn, recovery
	// at Info. Zero value means silent.
	Logger *slog.Logger
}

const (
	defaultExpiry     = 15 * time.Second
	minExpiry         = time.Second
	defaultTimeout    = 5 * time.Second
	defaultQueueBytes = 16 << 20
)
