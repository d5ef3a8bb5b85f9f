package cluster

import (
	"context"
	"time"
)

// Directory is the cluster's record of room membership: which sparks of
// which node are in which room. It lives in the backend, beside the
// Registry, with the same expiry discipline: a node states the whole truth
// with SyncRooms at start and every Options.Expiry/3, sends its changes in
// between with UpdateRooms, and removes its records with LeaveRooms when it
// closes. A node that stops refreshing them (it crashed, or lost the
// backend) disappears with its memberships within ttl of its last
// SyncRooms or UpdateRooms, removed by the backend's server, leaving no
// ghost members.
//
// The queries answer for every live node; they are what Presence's
// MembersAll, CountAll, RoomsOfAll and RoomsAll ask. Each node also keeps,
// in memory, which nodes have members of which room (for its room writes);
// NodeRooms is how it reads another node's memberships whole when it has
// missed some of that node's join and leave events.
//
// The NATS (cluster/nats) and Redis (cluster/redis) backends implement it.
// Implementations must be safe for concurrent use. A Registry that is also
// a Directory gives the cluster its presence (Cluster.Presence).
type Directory interface {
	// SyncRooms records node's memberships as exactly rooms (room → ids of
	// the node's sparks in it), tagged with version, alive for ttl.
	SyncRooms(ctx context.Context, node string, rooms map[string][]string, version string, ttl time.Duration) error
	// UpdateRooms applies changes to node's memberships, in order, and tags
	// them with version. Updating a node whose records have expired may do
	// nothing (and return an error): its next SyncRooms brings it back.
	UpdateRooms(ctx context.Context, node string, changes []RoomChange, version string, ttl time.Duration) error
	// LeaveRooms removes node's memberships at once.
	LeaveRooms(ctx context.Context, node string) error
	// NodeRooms returns node's memberships and the version of its last
	// SyncRooms or UpdateRooms: the memberships include at least every
	// change up to that version. An unknown node has none, and version "".
	NodeRooms(ctx context.Context, node string) (rooms map[string][]string, version string, err error)

	// Members returns the ids of the room's members on every live node.
	Members(ctx context.Context, room string) ([]string, error)
	// Count returns the number of the room's members on every live node.
	Count(ctx context.Context, room string) (int, error)
	// RoomsOf returns the rooms the spark is in.
	RoomsOf(ctx context.Context, spark string) ([]string, error)
	// Rooms returns the rooms that have members on a live node.
	Rooms(ctx context.Context) ([]string, error)
}

// RoomChange is one change of a node's memberships: the spark joined the
// room (Join) or left it.
type RoomChange struct {
	Room  string
	Spark string
	Join  bool
}
