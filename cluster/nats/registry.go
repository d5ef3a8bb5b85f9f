package nats

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/go-primus/primus/cluster"
)

// tombstoneTTL is how long the empty message that removes a spark stays:
// JetStream's smallest TTL.
const tombstoneTTL = time.Second

func (b *Backend) nodeSubject(node string) string {
	return b.ns + ".registry.node." + token(node)
}

func (b *Backend) sparkSubject(spark string) string {
	return b.ns + ".registry.spark." + token(spark)
}

// registry returns the stream, creating it (again) when needed: it lives in
// the server's memory and is gone after a restart.
func (b *Backend) registry(ctx context.Context) (jetstream.Stream, error) {
	b.regMu.Lock()
	defer b.regMu.Unlock()
	if b.st != nil {
		return b.st, nil
	}
	st, err := b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              b.stream,
		Description:       "primus cluster registry",
		Subjects:          []string{b.ns + ".registry.>"},
		Storage:           jetstream.MemoryStorage,
		Retention:         jetstream.LimitsPolicy,
		MaxMsgsPerSubject: 1,
		Discard:           jetstream.DiscardOld,
		AllowMsgTTL:       true,
		AllowDirect:       true,
		Replicas:          1,
	})
	if err != nil {
		return nil, fmt.Errorf("nats: failed to create the registry stream %q (does the server run JetStream 2.11+?): %w", b.stream, err)
	}
	b.st = st
	return st, nil
}

// failed forgets the stream after an error, so that the next call checks
// it exists.
func (b *Backend) failed(err error) error {
	if err != nil {
		b.regMu.Lock()
		b.st = nil
		b.regMu.Unlock()
	}
	return err
}

// entry is one registry message to publish.
type entry struct {
	subject string
	data    []byte
	ttl     time.Duration
}

// publishChunk bounds the registry writes awaiting their acknowledgement,
// under JetStream's limit of outstanding asynchronous publications (4000).
const publishChunk = 1000

// publish publishes the entries and waits for JetStream's acknowledgements.
func (b *Backend) publish(ctx context.Context, entries []entry) error {
	if _, err := b.registry(ctx); err != nil {
		return err
	}
	futures := make([]jetstream.PubAckFuture, 0, min(len(entries), publishChunk))
	for len(entries) > 0 {
		chunk := entries[:min(len(entries), publishChunk)]
		entries = entries[len(chunk):]
		futures = futures[:0]
		for _, e := range chunk {
			f, err := b.js.PublishAsync(e.subject, e.data, jetstream.WithMsgTTL(e.ttl), jetstream.WithExpectStream(b.stream))
			if err != nil {
				return b.failed(fmt.Errorf("nats: failed to publish to the registry: %w", err))
			}
			futures = append(futures, f)
		}
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return b.failed(fmt.Errorf("nats: registry write refused: %w", err))
			case <-ctx.Done():
				return b.failed(fmt.Errorf("nats: registry write: %w", ctx.Err()))
			}
		}
	}
	return nil
}

func (b *Backend) nodeEntry(node string, ttl time.Duration) entry {
	return entry{b.nodeSubject(node), strconv.AppendInt(nil, int64(len(b.sparks[node])), 10), ttl}
}

// Sync republishes the node's record and each of its sparks with the ttl.
// A spark of an earlier Sync that is no longer there gets a tombstone.
func (b *Backend) Sync(ctx context.Context, node string, sparks []string, ttl time.Duration) error {
	b.regMu.Lock()
	old := b.sparks[node]
	set := make(map[string]struct{}, len(sparks))
	entries := make([]entry, 0, len(sparks)+1)
	value := []byte(node)
	for _, id := range sparks {
		set[id] = struct{}{}
		entries = append(entries, entry{b.sparkSubject(id), value, ttl})
	}
	for id := range old {
		if _, ok := set[id]; !ok {
			entries = append(entries, entry{b.sparkSubject(id), nil, tombstoneTTL})
		}
	}
	b.sparks[node] = set
	entries = append(entries, b.nodeEntry(node, ttl))
	b.regMu.Unlock()
	return b.publish(ctx, entries)
}

// Update publishes the added sparks and tombstones for the removed ones, and
// the node's record with its new count.
func (b *Backend) Update(ctx context.Context, node string, added, removed []string, ttl time.Duration) error {
	b.regMu.Lock()
	set := b.sparks[node]
	if set == nil {
		set = map[string]struct{}{}
		b.sparks[node] = set
	}
	entries := make([]entry, 0, len(added)+len(removed)+1)
	value := []byte(node)
	for _, id := range added {
		set[id] = struct{}{}
		entries = append(entries, entry{b.sparkSubject(id), value, ttl})
	}
	for _, id := range removed {
		delete(set, id)
		entries = append(entries, entry{b.sparkSubject(id), nil, tombstoneTTL})
	}
	entries = append(entries, b.nodeEntry(node, ttl))
	b.regMu.Unlock()
	return b.publish(ctx, entries)
}

// Leave removes the node's record and tombstones its sparks.
func (b *Backend) Leave(ctx context.Context, node string) error {
	b.regMu.Lock()
	old := b.sparks[node]
	delete(b.sparks, node)
	b.regMu.Unlock()
	entries := make([]entry, 0, len(old))
	for id := range old {
		entries = append(entries, entry{b.sparkSubject(id), nil, tombstoneTTL})
	}
	if err := b.publish(ctx, entries); err != nil {
		return err
	}
	st, err := b.registry(ctx)
	if err != nil {
		return err
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSubject(b.nodeSubject(node))); err != nil {
		return b.failed(fmt.Errorf("nats: failed to remove node %s: %w", node, err))
	}
	return nil
}

// Lookup reads the spark's entry.
func (b *Backend) Lookup(ctx context.Context, spark string) (string, error) {
	st, err := b.registry(ctx)
	if err != nil {
		return "", err
	}
	m, err := st.GetLastMsgForSubject(ctx, b.sparkSubject(spark))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return "", cluster.ErrNotFound
	}
	if err != nil {
		return "", b.failed(fmt.Errorf("nats: failed to look up spark %s: %w", spark, err))
	}
	if len(m.Data) == 0 {
		return "", cluster.ErrNotFound
	}
	return string(m.Data), nil
}

// Nodes lists the node records.
func (b *Backend) Nodes(ctx context.Context) ([]cluster.Node, error) {
	st, err := b.registry(ctx)
	if err != nil {
		return nil, err
	}
	prefix := b.ns + ".registry.node."
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(prefix+"*"))
	if err != nil {
		return nil, b.failed(fmt.Errorf("nats: failed to list the nodes: %w", err))
	}
	nodes := make([]cluster.Node, 0, len(info.State.Subjects))
	for subj := range info.State.Subjects {
		m, err := st.GetLastMsgForSubject(ctx, subj)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // expired since
		}
		if err != nil {
			return nil, b.failed(fmt.Errorf("nats: failed to read node %s: %w", subj, err))
		}
		n, err := strconv.Atoi(string(m.Data))
		if err != nil {
			continue
		}
		nodes = append(nodes, cluster.Node{ID: untoken(strings.TrimPrefix(subj, prefix)), Sparks: n})
	}
	slices.SortFunc(nodes, func(a, b cluster.Node) int { return strings.Compare(a.ID, b.ID) })
	return nodes, nil
}
