package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The backend side of recovery across nodes (Options.Recovery): a journal,
// one durable, totally ordered log of every message written to the sparks
// of the cluster, and a store of the sparks' resume checkpoints. Both
// backends provide them (cluster/nats on a JetStream stream and key-value
// bucket, cluster/redis on a Redis Stream and keys with an expiry), with
// their Durable option.

// Offset is the position of an entry in a Journal; entries have increasing
// offsets, and the zero Offset is before the first entry. Backends map their
// own positions onto it: JetStream's stream sequence (Hi zero), a Redis
// Stream's entry id (Hi the milliseconds, Lo the sequence).
type Offset struct{ Hi, Lo uint64 }

// Less reports whether o is before p.
func (o Offset) Less(p Offset) bool { return o.Hi < p.Hi || o.Hi == p.Hi && o.Lo < p.Lo }

// IsZero reports whether o is the position before the first entry.
func (o Offset) IsZero() bool { return o == Offset{} }

// String formats o as "Hi-Lo".
func (o Offset) String() string {
	return strconv.FormatUint(o.Hi, 10) + "-" + strconv.FormatUint(o.Lo, 10)
}

// ParseOffset reads an Offset formatted by String.
func ParseOffset(s string) (Offset, error) {
	hi, lo, ok := strings.Cut(s, "-")
	h, err1 := strconv.ParseUint(hi, 10, 64)
	l, err2 := strconv.ParseUint(lo, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return Offset{}, fmt.Errorf("cluster: invalid journal offset %q", s)
	}
	return Offset{h, l}, nil
}

// JournalEntry is one entry to append to a Journal.
type JournalEntry struct {
	// Publisher names the process appending (a node id plus a random part
	// made at start, so that a restarted node is a new publisher); letters,
	// digits, "-", "_" and ".".
	Publisher string
	// Seq numbers the publisher's entries: 1, 2, 3… in the order they are
	// appended. An entry whose publisher already has an entry with this
	// Seq or a higher one in the journal is not stored again, so that
	// retrying an Append that failed half-way stores nothing twice.
	Seq uint64
	// Data is the entry's content.
	Data []byte
}

// ErrTrimmed is returned by Journal.Read when the journal no longer holds
// every entry after the offset asked for: its limits trimmed some.
var ErrTrimmed = errors.New("cluster: journal entries trimmed")

// Journal is a durable log shared by every node, in one total order.
// Implementations must be safe for concurrent use.
type Journal interface {
	// Append stores the entries at the end of the journal, in order,
	// within ctx, skipping those already stored (see JournalEntry.Seq). On
	// error any prefix of them may have been stored.
	Append(ctx context.Context, entries []JournalEntry) error

	// Tail returns the offset of the journal's last entry; the zero Offset
	// when it is empty.
	Tail(ctx context.Context) (Offset, error)

	// Read calls f, in order, with each entry after `after` and not after
	// upto, until f returns false or ctx ends. It returns ErrTrimmed, and
	// calls f with nothing, when the journal no longer holds every entry
	// after `after`.
	Read(ctx context.Context, after, upto Offset, f func(Offset, []byte) bool) error

	// Follow calls f with each entry after `after`, in order, as they are
	// appended, from one goroutine, until the subscription is closed. It
	// survives broker outages by itself, resuming after the last entry it
	// delivered. When the journal trimmed entries it had not delivered
	// yet, it calls gap once with the offset of the first entry it
	// delivers next, before that entry. f and gap must return quickly; f
	// may keep the data it is given (each entry's bytes are its own).
	Follow(after Offset, f func(Offset, []byte), gap func(next Offset)) (Subscription, error)
}

// SessionRecord is one checkpoint to save in a SessionStore.
type SessionRecord struct {
	// Key names the record: letters, digits, "-" and "_", at most 64.
	Key string
	// Data is the record's content.
	Data []byte
	// Create stores the record whether or not it exists; otherwise it is
	// stored only if a record with this key exists (it was not taken).
	Create bool
}

// SessionStore keeps the resume checkpoints of the cluster's sparks, each
// for a time to live. Implementations must be safe for concurrent use.
type SessionStore interface {
	// SaveSessions stores the records, each for ttl from now, and returns
	// the keys of those without Create that were not stored because no
	// record had the key.
	SaveSessions(ctx context.Context, recs []SessionRecord, ttl time.Duration) (missing []string, err error)
	// TakeSession returns the record with the key and removes it, in one
	// step: of concurrent calls for one key, one gets it. It returns
	// ErrNotFound when there is none.
	TakeSession(ctx context.Context, key string) ([]byte, error)
	// DeleteSessions removes the records with the keys, if there are any.
	DeleteSessions(ctx context.Context, keys []string) error
}
