package cluster

import (
	"context"
	"time"
)

// Registry is the cluster's directory: which nodes are alive and which
// sparks each holds. Entries expire: a node that stops refreshing them (it
// crashed, or lost the broker) disappears with its sparks ttl after its last
// Sync or Update, leaving no ghost entries.
//
// A Cluster calls Sync at start and every Options.Expiry/3, Update between
// Syncs as sparks come and go, and Leave when it closes. Sync states the
// whole truth, so an Update lost during an outage is repaired by the next
// Sync. Implementations must be safe for concurrent use.
type Registry interface {
	// Sync records node as alive for ttl, holding exactly sparks.
	Sync(ctx context.Context, node string, sparks []string, ttl time.Duration) error
	// Update adds and removes sparks of node. The node's entries then last
	// ttl from now. Updating a node that has expired may do nothing: its
	// next Sync brings it back.
	Update(ctx context.Context, node string, added, removed []string, ttl time.Duration) error
	// Leave removes node and its sparks at once.
	Leave(ctx context.Context, node string) error
	// Lookup returns the live node holding the spark, or ErrNotFound.
	Lookup(ctx context.Context, spark string) (node string, err error)
	// Nodes returns the live nodes.
	Nodes(ctx context.Context) ([]Node, error)
}

// Node is a live node of the cluster.
type Node struct {
	// ID is the node's id (Options.NodeID).
	ID string
	// Sparks is how many sparks it holds, as of its last Sync or Update.
	Sparks int
}
