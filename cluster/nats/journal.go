package nats

// The journal (cluster.Journal) of a Backend made with Options.Durable: a
// JetStream stream of its own, "<namespace>-journal", on the single subject
// "<namespace>.journal", so that its sequences number the entries without
// holes and an entry's cluster.Offset is {Hi: 0, Lo: its stream sequence}.
// The limits are those of Durability (MaxAge, MaxBytes, Memory); they trim
// the oldest entries first.
//
// Append publishes each entry with the message id "<publisher>:<seq>", and
// JetStream drops a message whose id it already stored within its
// duplicate window: two minutes (MaxAge when shorter). A retry of a failed
// Append within that window thus stores nothing twice; one made later may.
// The entries of one Append are published in order on one connection, so
// a failure stores a prefix of them, provided the connection does not
// buffer while reconnecting (Connect's does not; give New a connection
// with nats.ReconnectBufSize(-1)).
//
// Read makes a pull consumer from after+1 and fetches up to upto, or up to
// the stream's last sequence when it starts if that is earlier. It returns
// cluster.ErrTrimmed when the stream's first sequence is past after+1 while
// its last is not before it, or when a fetched sequence skips one.
//
// Follow reads with an ordered consumer, which the client makes again after
// the last entry delivered when the connection comes back or the consumer
// is lost (a server restart): the stream has no holes, so a delivered
// sequence past the one expected means the limits trimmed those between,
// and gap is called.
//
// The journal's and the session store's state (their stream handles, the
// followers) lives in a recovery per Backend. Backend.Close only reaches
// the durable channels, so each recovery registers itself among their
// subscriptions to be closed with them (see recoveryOf).

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/go-primus/primus/cluster"
)

var _ cluster.Journal = (*Backend)(nil)

const (
	// journalDedupWindow is how long JetStream remembers the message ids
	// of the journal's entries (at most the stream's MaxAge).
	journalDedupWindow = 2 * time.Minute
	// journalReadBatch is the number of entries a Read fetches at once.
	journalReadBatch = 4096
	// journalFetchWait bounds the wait for one batch of a Read.
	journalFetchWait = 5 * time.Second
)

var (
	errNotDurable = errors.New("nats: the journal and the session store need Options.Durable")
	errClosed     = errors.New("nats: backend closed")
)

// recovery is a Backend's journal and session store: their streams, made
// on first use, and the journal's followers.
type recovery struct {
	b *Backend

	mu       sync.Mutex
	journal  jetstream.Stream // nil until made, and again after a failure
	sessions jetstream.Stream // likewise
	follows  map[*follow]struct{}
	closed   bool
	done     chan struct{} // closed by Stop
}

// recoveries holds each Backend's recovery until the Backend closes.
var recoveries sync.Map // *Backend → *recovery

// recoveryOf returns the Backend's recovery, made on the first call. It is
// registered among the durable subscriptions, disguised as one whose
// consume context it is, so that Backend.Close stops it (Stop).
func (b *Backend) recoveryOf() (*recovery, error) {
	if b.dur == nil {
		return nil, errNotDurable
	}
	if r, ok := recoveries.Load(b); ok {
		return r.(*recovery), nil
	}
	d := b.dur
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, errClosed
	}
	if r, ok := recoveries.Load(b); ok {
		return r.(*recovery), nil
	}
	r := &recovery{b: b, follows: map[*follow]struct{}{}, done: make(chan struct{})}
	recoveries.Store(b, r)
	d.subs = append(d.subs, &durableSub{d: d, done: make(chan struct{}), cc: r})
	return r, nil
}

// Stop closes the followers and forgets the recovery: the Backend closes
// (a jetstream.ConsumeContext method, see recoveryOf).
func (r *recovery) Stop() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	fs := make([]*follow, 0, len(r.follows))
	for f := range r.follows {
		fs = append(fs, f)
	}
	r.mu.Unlock()
	for _, f := range fs {
		_ = f.Close()
	}
	recoveries.Delete(r.b)
	close(r.done)
}

// Drain is Stop (a jetstream.ConsumeContext method).
func (r *recovery) Drain() { r.Stop() }

// Closed is closed once Stop has returned (a jetstream.ConsumeContext
// method).
func (r *recovery) Closed() <-chan struct{} { return r.done }

func (r *recovery) journalName() string    { return r.b.ns + "-journal" }
func (r *recovery) journalSubject() string { return r.b.ns + ".journal" }

// storage is where the journal and the session store live: on disk unless
// Durability.Memory.
func (r *recovery) storage() jetstream.StorageType {
	if r.b.dur.cfg.Memory {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}

// journalStream makes the journal's stream when needed.
func (r *recovery) journalStream(ctx context.Context) (jetstream.Stream, error) {
	r.mu.Lock()
	st := r.journal
	r.mu.Unlock()
	if st != nil {
		return st, nil
	}
	cfg := r.b.dur.cfg
	st, err := r.b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        r.journalName(),
		Description: "primus cluster journal",
		Subjects:    []string{r.journalSubject()},
		Storage:     r.storage(),
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      cfg.MaxAge,
		MaxBytes:    cfg.MaxBytes,
		Duplicates:  min(journalDedupWindow, cfg.MaxAge),
		AllowDirect: true,
	})
	if err != nil {
		return nil, fmt.Errorf("nats: failed to make the journal stream %q: %w", r.journalName(), err)
	}
	r.mu.Lock()
	r.journal = st
	r.mu.Unlock()
	return st, nil
}

// forgetJournal drops the stream handle after a failure that may mean the
// stream is gone (a server restarted with it in memory).
func (r *recovery) forgetJournal() {
	r.mu.Lock()
	r.journal = nil
	r.mu.Unlock()
}

// Append stores the entries at the end of the journal, in order, and waits
// for the server's acknowledgement of each (within ctx, or 5 seconds when
// ctx has no deadline). Entries whose message id "<publisher>:<seq>" the
// stream stored within its duplicate window (two minutes) are dropped by
// the server: see the file's opening comment.
func (b *Backend) Append(ctx context.Context, entries []cluster.JournalEntry) error {
	if len(entries) == 0 {
		return nil
	}
	r, err := b.recoveryOf()
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Publisher == "" || strings.Contains(e.Publisher, ":") {
			return fmt.Errorf("nats: invalid journal publisher %q", e.Publisher)
		}
	}
	if _, err := r.journalStream(ctx); err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, durableAckWait)
		defer cancel()
	}
	subject, name := r.journalSubject(), r.journalName()
	futures := make([]jetstream.PubAckFuture, 0, min(len(entries), publishChunk))
	for len(entries) > 0 {
		chunk := entries[:min(len(entries), publishChunk)]
		entries = entries[len(chunk):]
		futures = futures[:0]
		for _, e := range chunk {
			id := e.Publisher + ":" + strconv.FormatUint(e.Seq, 10)
			f, err := b.js.PublishAsync(subject, e.Data, jetstream.WithMsgID(id), jetstream.WithExpectStream(name))
			if err != nil {
				r.forgetJournal()
				return fmt.Errorf("nats: failed to append to the journal: %w", err)
			}
			futures = append(futures, f)
		}
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				r.forgetJournal()
				return fmt.Errorf("nats: the journal did not take an entry: %w", err)
			case <-ctx.Done():
				return fmt.Errorf("nats: no acknowledgement from the journal: %w", ctx.Err())
			}
		}
	}
	return nil
}

// journalInfo returns the journal stream's state.
func (r *recovery) journalInfo(ctx context.Context) (jetstream.Stream, *jetstream.StreamInfo, error) {
	st, err := r.journalStream(ctx)
	if err != nil {
		return nil, nil, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		r.forgetJournal()
		return nil, nil, fmt.Errorf("nats: failed to read the journal's state: %w", err)
	}
	return st, info, nil
}

// Tail returns the offset of the journal's last entry: the zero Offset
// when it never had one, the last it had when its limits trimmed them all.
func (b *Backend) Tail(ctx context.Context) (cluster.Offset, error) {
	r, err := b.recoveryOf()
	if err != nil {
		return cluster.Offset{}, err
	}
	_, info, err := r.journalInfo(ctx)
	if err != nil {
		return cluster.Offset{}, err
	}
	return cluster.Offset{Lo: info.State.LastSeq}, nil
}

// Read calls f with the entries after `after` up to upto, in order; an
// upto with Hi set means up to the last entry when Read starts. It returns
// cluster.ErrTrimmed, having called f with nothing, when the stream's
// limits trimmed entries after `after`; and also, after the entries it
// delivered, when they trim the next entry while Read fetches.
func (b *Backend) Read(ctx context.Context, after, upto cluster.Offset, f func(cluster.Offset, []byte) bool) error {
	r, err := b.recoveryOf()
	if err != nil {
		return err
	}
	if after.Hi != 0 {
		return nil // after every entry of this journal
	}
	st, info, err := r.journalInfo(ctx)
	if err != nil {
		return err
	}
	first, last := info.State.FirstSeq, info.State.LastSeq
	if last <= after.Lo {
		return nil // nothing after `after`
	}
	from := after.Lo + 1
	if first > from {
		return cluster.ErrTrimmed
	}
	end := last
	if upto.Hi == 0 {
		end = min(end, upto.Lo)
	}
	if end < from {
		return nil
	}
	return r.read(ctx, st, from, end, f)
}

// read fetches the sequences from to end with a pull consumer of its own.
func (r *recovery) read(ctx context.Context, st jetstream.Stream, from, end uint64, f func(cluster.Offset, []byte) bool) error {
	cons, err := st.CreateConsumer(ctx, jetstream.ConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       from,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: 30 * time.Second,
		MemoryStorage:     true,
		Replicas:          1,
	})
	if err != nil {
		r.forgetJournal()
		return fmt.Errorf("nats: failed to read the journal: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = st.DeleteConsumer(dctx, cons.CachedInfo().Name) // else it expires
	}()
	next := from
	for next <= end {
		fctx, cancel := context.WithTimeout(ctx, journalFetchWait)
		stop, err := r.fetch(fctx, cons, &next, end, f)
		cancel()
		if stop || err != nil {
			return err
		}
	}
	return nil
}

// fetch reads one batch, from *next on, and reports whether f stopped the
// read.
func (r *recovery) fetch(ctx context.Context, cons jetstream.Consumer, next *uint64, end uint64, f func(cluster.Offset, []byte) bool) (stop bool, err error) {
	batch, err := cons.Fetch(int(min(end-*next+1, journalReadBatch)), jetstream.FetchContext(ctx))
	if err != nil {
		return false, fmt.Errorf("nats: failed to read the journal: %w", err)
	}
	got := 0
	for m := range batch.Messages() {
		md, err := m.Metadata()
		if err != nil {
			return false, fmt.Errorf("nats: unexpected message in the journal: %w", err)
		}
		if seq := md.Sequence.Stream; seq != *next {
			return false, cluster.ErrTrimmed // the limits went past *next
		}
		*next++
		got++
		if !f(cluster.Offset{Lo: md.Sequence.Stream}, m.Data()) {
			return true, nil
		}
	}
	if err := batch.Error(); err != nil {
		return false, fmt.Errorf("nats: failed to read the journal: %w", err)
	}
	if got == 0 {
		// Nothing at all: trimmed, or the server is slow.
		ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		if st, err := r.b.js.Stream(ictx, r.journalName()); err == nil && st.CachedInfo().State.FirstSeq > *next {
			return false, cluster.ErrTrimmed
		}
		return false, fmt.Errorf("nats: the journal sent no entry after sequence %d", *next-1)
	}
	return false, nil
}

// Follow calls f with each entry after `after`, in order, as they are
// appended, until the subscription or the Backend is closed. It reads with
// an ordered consumer, made again after the last entry delivered when the
// connection comes back; when the server cannot be reached now, it is made
// in the background as soon as it can be. When the stream's limits trimmed
// entries it had not delivered, gap is called with the offset of the next
// one, before it. f and gap are called one at a time and must not close
// the subscription.
func (b *Backend) Follow(after cluster.Offset, f func(cluster.Offset, []byte), gap func(next cluster.Offset)) (cluster.Subscription, error) {
	r, err := b.recoveryOf()
	if err != nil {
		return nil, err
	}
	if after.Hi != 0 {
		return nil, fmt.Errorf("nats: %v is not a journal offset", after)
	}
	fw := &follow{r: r, f: f, gap: gap, next: after.Lo + 1, done: make(chan struct{})}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, errClosed
	}
	r.follows[fw] = struct{}{}
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), durableAckWait)
	defer cancel()
	if err := fw.start(ctx); err != nil {
		b.log.Debug("nats: journal follower not made yet; retrying", "error", err)
		go fw.retry()
	}
	return fw, nil
}

// follow is one Follow's subscription.
type follow struct {
	r   *recovery
	f   func(cluster.Offset, []byte)
	gap func(cluster.Offset)

	mu     sync.Mutex // held while calling f or gap
	next   uint64     // the sequence to deliver next
	cc     jetstream.ConsumeContext
	closed bool
	done   chan struct{} // closed by Close
}

// start makes the ordered consumer, from the next sequence on.
func (fw *follow) start(ctx context.Context) error {
	st, err := fw.r.journalStream(ctx)
	if err != nil {
		return err
	}
	fw.mu.Lock()
	next := fw.next
	fw.mu.Unlock()
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   next,
	})
	if err != nil {
		fw.r.forgetJournal()
		return fmt.Errorf("nats: failed to follow the journal: %w", err)
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.closed {
		return nil
	}
	log := fw.r.b.log
	cc, err := cons.Consume(fw.deliver, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		log.Debug("nats: journal follower", "error", err)
	}))
	if err != nil {
		return fmt.Errorf("nats: failed to follow the journal: %w", err)
	}
	fw.cc = cc
	return nil
}

// retry makes the consumer once the server can be reached.
func (fw *follow) retry() {
	wait := 100 * time.Millisecond
	for {
		select {
		case <-fw.done:
			return
		case <-time.After(wait):
		}
		ctx, cancel := context.WithTimeout(context.Background(), durableAckWait)
		err := fw.start(ctx)
		cancel()
		if err == nil {
			return
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// deliver hands an entry to f, after a call to gap when sequences were
// skipped: trimmed by the stream's limits.
func (fw *follow) deliver(m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		return
	}
	seq := md.Sequence.Stream
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.closed || seq < fw.next {
		return
	}
	if seq > fw.next {
		fw.r.b.log.Warn("nats: the journal trimmed entries before they were delivered", "expected", fw.next, "next", seq)
		fw.gap(cluster.Offset{Lo: seq})
	}
	fw.next = seq + 1
	fw.f(cluster.Offset{Lo: seq}, m.Data())
}

// Close stops the follower; once it returns, f and gap are not called.
func (fw *follow) Close() error {
	fw.mu.Lock()
	if fw.closed {
		fw.mu.Unlock()
		return nil
	}
	fw.closed = true
	cc := fw.cc
	fw.mu.Unlock()
	close(fw.done)
	fw.r.mu.Lock()
	delete(fw.r.follows, fw)
	fw.r.mu.Unlock()
	if cc != nil {
		cc.Stop()
		<-cc.Closed()
	}
	return nil
}
