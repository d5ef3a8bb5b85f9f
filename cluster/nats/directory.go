package nats

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/go-primus/primus/cluster"
)

// The room directory lives in the registry stream, one message per
// membership: "<ns>.registry.room.<room>.<node>.<spark>", with the cluster's
// Expiry as its TTL, renewed by each SyncRooms; and one per node,
// "<ns>.registry.rver.<node>", holding the version of its memberships. A
// leave purges the membership's subject, so that the queries read the
// stream's subjects alone (one request, whatever the number of members)
// without reading any message: Members and Count filter on the room's
// subjects, RoomsOf on the spark's (the server walks every membership for
// that one), Rooms lists them all.

var _ cluster.Directory = (*Backend)(nil)

func (b *Backend) roomPrefix() string { return b.ns + ".registry.room." }

func (b *Backend) memberSubject(room, node, spark string) string {
	return b.roomPrefix() + token(room) + "." + token(node) + "." + token(spark)
}

func (b *Backend) versionSubject(node string) string {
	return b.ns + ".registry.rver." + token(node)
}

// SyncRooms republishes every membership of the node with the ttl, purges
// those of an earlier sync that are gone, then records the version.
func (b *Backend) SyncRooms(ctx context.Context, node string, rooms map[string][]string, version string, ttl time.Duration) error {
	set := map[string]struct{}{}
	entries := make([]entry, 0, len(rooms))
	for room, ids := range rooms {
		for _, id := range ids {
			s := b.memberSubject(room, node, id)
			set[s] = struct{}{}
			entries = append(entries, entry{s, []byte{'1'}, ttl})
		}
	}
	b.regMu.Lock()
	old := b.members[node]
	b.regMu.Unlock()
	var gone []string
	for s := range old {
		if _, ok := set[s]; !ok {
			gone = append(gone, s)
		}
	}
	if err := b.publish(ctx, entries); err != nil {
		return err
	}
	if err := b.purge(ctx, gone); err != nil {
		return err
	}
	b.regMu.Lock()
	b.members[node] = set
	b.regMu.Unlock()
	return b.publish(ctx, []entry{{b.versionSubject(node), []byte(version), ttl}})
}

// UpdateRooms publishes the memberships that the changes leave in place,
// purges those they remove, then records the version.
func (b *Backend) UpdateRooms(ctx context.Context, node string, changes []cluster.RoomChange, version string, ttl time.Duration) error {
	final := make(map[string]bool, len(changes)) // subject → member after the changes
	for _, ch := range changes {
		final[b.memberSubject(ch.Room, node, ch.Spark)] = ch.Join
	}
	var entries []entry
	var gone []string
	b.regMu.Lock()
	set := b.members[node]
	if set == nil {
		set = map[string]struct{}{}
		b.members[node] = set
	}
	for s, in := range final {
		if in {
			set[s] = struct{}{}
			entries = append(entries, entry{s, []byte{'1'}, ttl})
		} else {
			delete(set, s)
			gone = append(gone, s)
		}
	}
	b.regMu.Unlock()
	if err := b.publish(ctx, entries); err != nil {
		return err
	}
	if err := b.purge(ctx, gone); err != nil {
		return err
	}
	return b.publish(ctx, []entry{{b.versionSubject(node), []byte(version), ttl}})
}

// purge removes the subjects' messages, one request each.
func (b *Backend) purge(ctx context.Context, subjects []string) error {
	if len(subjects) == 0 {
		return nil
	}
	st, err := b.registry(ctx)
	if err != nil {
		return err
	}
	for _, s := range subjects {
		if err := st.Purge(ctx, jetstream.WithPurgeSubject(s)); err != nil {
			return b.failed(fmt.Errorf("nats: failed to remove a membership: %w", err))
		}
	}
	return nil
}

// LeaveRooms purges the node's memberships and version.
func (b *Backend) LeaveRooms(ctx context.Context, node string) error {
	b.regMu.Lock()
	delete(b.members, node)
	b.regMu.Unlock()
	return b.purge(ctx, []string{b.roomPrefix() + "*." + token(node) + ".*", b.versionSubject(node)})
}

// NodeRooms reads the node's version, then its memberships.
func (b *Backend) NodeRooms(ctx context.Context, node string) (map[string][]string, string, error) {
	st, err := b.registry(ctx)
	if err != nil {
		return nil, "", err
	}
	version := ""
	m, err := st.GetLastMsgForSubject(ctx, b.versionSubject(node))
	switch {
	case err == nil:
		version = string(m.Data)
	case !errors.Is(err, jetstream.ErrMsgNotFound):
		return nil, "", b.failed(fmt.Errorf("nats: failed to read the version of node %s: %w", node, err))
	}
	rooms := map[string][]string{}
	err = b.memberships(ctx, "*."+token(node)+".*", func(room, _, spark string) {
		rooms[room] = append(rooms[room], spark)
	})
	if err != nil {
		return nil, "", err
	}
	return rooms, version, nil
}

// Members lists the room's subjects.
func (b *Backend) Members(ctx context.Context, room string) ([]string, error) {
	ids := []string{}
	err := b.memberships(ctx, token(room)+".*.*", func(_, _, spark string) { ids = append(ids, spark) })
	return ids, err
}

// Count counts the room's subjects.
func (b *Backend) Count(ctx context.Context, room string) (int, error) {
	n := 0
	err := b.memberships(ctx, token(room)+".*.*", func(_, _, _ string) { n++ })
	return n, err
}

// RoomsOf lists the spark's subjects.
func (b *Backend) RoomsOf(ctx context.Context, spark string) ([]string, error) {
	rooms := []string{}
	err := b.memberships(ctx, "*.*."+token(spark), func(room, _, _ string) { rooms = append(rooms, room) })
	return rooms, err
}

// Rooms lists every membership's room, once each.
func (b *Backend) Rooms(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	rooms := []string{}
	err := b.memberships(ctx, "*.*.*", func(room, _, _ string) {
		if !seen[room] {
			seen[room] = true
			rooms = append(rooms, room)
		}
	})
	return rooms, err
}

// memberships calls f with each membership whose subject matches the
// filter (room.node.spark tokens, wildcards allowed).
func (b *Backend) memberships(ctx context.Context, filter string, f func(room, node, spark string)) error {
	st, err := b.registry(ctx)
	if err != nil {
		return err
	}
	prefix := b.roomPrefix()
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(prefix+filter))
	if err != nil {
		return b.failed(fmt.Errorf("nats: failed to read the room directory: %w", err))
	}
	for subj := range info.State.Subjects {
		parts := strings.Split(strings.TrimPrefix(subj, prefix), ".")
		if len(parts) != 3 {
			continue
		}
		f(untoken(parts[0]), untoken(parts[1]), untoken(parts[2]))
	}
	return nil
}
