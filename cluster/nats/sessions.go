package nats

// The session store (cluster.SessionStore) of a Backend made with
// Options.Durable: a JetStream stream, "<namespace>-sessions", on
// "<namespace>.session.<key>", that keeps one message per subject
// (MaxMsgsPerSubject 1) and allows per-message TTLs. A record is the
// message of its key's subject, published with the ttl (rounded up to
// whole seconds, at least one: JetStream's granularity), and the server
// removes it when it expires. It lives on disk unless Durability.Memory.
//
// A record with Create is published as it is, replacing the key's record
// if there is one. Without Create, the key's message is read first and the
// record is published with its sequence as the subject's expected last
// sequence, which the server checks as it stores it: a record taken,
// deleted, expired or replaced meanwhile makes it refuse, and the key is
// read again (a few times at most) — reported missing when it has no
// record any more.
//
// TakeSession reads the key's message and deletes it by its sequence. The
// server deletes a message once: of concurrent takers, one succeeds; the
// others read again and find nothing (or a record saved since, with a new
// sequence, which they try to take in turn). A record saved after the read
// has a new sequence, so it is never deleted unseen.
//
// The reads go to the stream's leader (no direct gets): a lagging replica
// could answer that a record is not there.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/go-primus/primus/cluster"
)

var _ cluster.SessionStore = (*Backend)(nil)

// sessionAttempts bounds the reads of a record that keeps changing under a
// conditional save or a take.
const sessionAttempts = 5

func (r *recovery) sessionsName() string { return r.b.ns + "-sessions" }

func (r *recovery) sessionSubject(key string) string { return r.b.ns + ".session." + key }

// sessionStream makes the session store's stream when needed.
func (r *recovery) sessionStream(ctx context.Context) (jetstream.Stream, error) {
	r.mu.Lock()
	st := r.sessions
	r.mu.Unlock()
	if st != nil {
		return st, nil
	}
	st, err := r.b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              r.sessionsName(),
		Description:       "primus cluster sessions",
		Subjects:          []string{r.b.ns + ".session.*"},
		Storage:           r.storage(),
		Retention:         jetstream.LimitsPolicy,
		MaxMsgsPerSubject: 1,
		Discard:           jetstream.DiscardOld,
		AllowMsgTTL:       true,
	})
	if err != nil {
		return nil, fmt.Errorf("nats: failed to make the session stream %q (does the server run JetStream 2.11+?): %w", r.sessionsName(), err)
	}
	r.mu.Lock()
	r.sessions = st
	r.mu.Unlock()
	return st, nil
}

// sessionFailed drops the stream handle after an error, which it returns.
func (r *recovery) sessionFailed(err error) error {
	r.mu.Lock()
	r.sessions = nil
	r.mu.Unlock()
	return err
}

// checkKeys checks that each key is a valid record key.
func checkKeys(keys ...string) error {
	for _, k := range keys {
		if k == "" || len(k) > 64 || strings.Trim(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != "" {
			return fmt.Errorf("nats: invalid session key %q: use at most 64 letters, digits, - and _", k)
		}
	}
	return nil
}

// sessions returns the recovery and the session stream.
func (b *Backend) sessions(ctx context.Context) (*recovery, jetstream.Stream, error) {
	r, err := b.recoveryOf()
	if err != nil {
		return nil, nil, err
	}
	st, err := r.sessionStream(ctx)
	if err != nil {
		return nil, nil, err
	}
	return r, st, nil
}

// sessionTTL rounds ttl up to whole seconds, at least one.
func sessionTTL(ttl time.Duration) time.Duration {
	return max(time.Second, (ttl + time.Second - 1).Truncate(time.Second))
}

// wrongLastSequence reports whether err is the server refusing a
// publication whose expected last subject sequence did not match.
func wrongLastSequence(err error) bool {
	var jerr jetstream.JetStreamError
	if !errors.As(err, &jerr) || jerr.APIError() == nil {
		return false
	}
	code := jerr.APIError().ErrorCode
	return code == jetstream.JSErrCodeStreamWrongLastSequence || code == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// sessionPub is one record published by SaveSessions.
type sessionPub struct {
	rec  *cluster.SessionRecord
	fut  jetstream.PubAckFuture
	done bool
	ack  *jetstream.PubAck
	err  error
}

// wait returns the server's answer (a future's channels give it once).
func (p *sessionPub) wait(ctx context.Context) (*jetstream.PubAck, error) {
	if !p.done {
		select {
		case p.ack = <-p.fut.Ok():
		case p.err = <-p.fut.Err():
		case <-ctx.Done():
			return nil, fmt.Errorf("nats: no acknowledgement from the session store: %w", ctx.Err())
		}
		p.done = true
	}
	return p.ack, p.err
}

// SaveSessions stores the records, in order, each for ttl from now (rounded
// up to whole seconds), and returns the keys of those without Create that
// found no record. It waits for the server's acknowledgements, within ctx
// or 5 seconds when ctx has no deadline.
func (b *Backend) SaveSessions(ctx context.Context, recs []cluster.SessionRecord, ttl time.Duration) (missing []string, err error) {
	if len(recs) == 0 {
		return nil, nil
	}
	for _, rec := range recs {
		if err := checkKeys(rec.Key); err != nil {
			return nil, err
		}
	}
	r, st, err := b.sessions(ctx)
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, durableAckWait)
		defer cancel()
	}
	ttl = sessionTTL(ttl)
	name := r.sessionsName()
	pubs := make([]*sessionPub, 0, len(recs))
	latest := map[string]*sessionPub{} // each key's publication in this call
	for i := range recs {
		rec := &recs[i]
		opts := []jetstream.PublishOpt{jetstream.WithMsgTTL(ttl), jetstream.WithExpectStream(name)}
		if !rec.Create {
			seq, err := r.sessionSeq(ctx, st, rec.Key, latest[rec.Key])
			if err != nil {
				return nil, err
			}
			if seq == 0 {
				missing = append(missing, rec.Key)
				continue
			}
			opts = append(opts, jetstream.WithExpectLastSequencePerSubject(seq))
		}
		f, err := b.js.PublishAsync(r.sessionSubject(rec.Key), rec.Data, opts...)
		if err != nil {
			return nil, r.sessionFailed(fmt.Errorf("nats: failed to save session %s: %w", rec.Key, err))
		}
		p := &sessionPub{rec: rec, fut: f}
		pubs = append(pubs, p)
		latest[rec.Key] = p
	}
	for _, p := range pubs {
		_, err := p.wait(ctx)
		switch {
		case err == nil:
		case !p.rec.Create && wrongLastSequence(err):
			// Taken, deleted, expired or saved again since it was read.
			saved, err := r.updateSession(ctx, st, p.rec, ttl)
			if err != nil {
				return nil, err
			}
			if !saved {
				missing = append(missing, p.rec.Key)
			}
		default:
			return nil, r.sessionFailed(fmt.Errorf("nats: session %s not saved: %w", p.rec.Key, err))
		}
	}
	return missing, nil
}

// sessionSeq returns the sequence of the key's record, 0 when there is
// none: that of its publication in this SaveSessions if it has one.
func (r *recovery) sessionSeq(ctx context.Context, st jetstream.Stream, key string, prior *sessionPub) (uint64, error) {
	if prior != nil {
		if ack, err := prior.wait(ctx); err == nil {
			return ack.Sequence, nil
		}
	}
	m, err := st.GetLastMsgForSubject(ctx, r.sessionSubject(key))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, r.sessionFailed(fmt.Errorf("nats: failed to read session %s: %w", key, err))
	}
	return m.Sequence, nil
}

// updateSession saves rec if the key has a record, reading it again when
// it changes under the save, and reports whether it did.
func (r *recovery) updateSession(ctx context.Context, st jetstream.Stream, rec *cluster.SessionRecord, ttl time.Duration) (bool, error) {
	for range sessionAttempts {
		seq, err := r.sessionSeq(ctx, st, rec.Key, nil)
		if err != nil || seq == 0 {
			return false, err
		}
		_, err = r.b.js.Publish(ctx, r.sessionSubject(rec.Key), rec.Data, jetstream.WithMsgTTL(ttl),
			jetstream.WithExpectStream(r.sessionsName()), jetstream.WithExpectLastSequencePerSubject(seq))
		if err == nil {
			return true, nil
		}
		if !wrongLastSequence(err) {
			return false, r.sessionFailed(fmt.Errorf("nats: session %s not saved: %w", rec.Key, err))
		}
	}
	return false, fmt.Errorf("nats: session %s not saved: it changed %d times while saving", rec.Key, sessionAttempts)
}

// TakeSession returns the key's record and removes it, reading its
// sequence then deleting the message by it: of concurrent calls, one gets
// it. It returns cluster.ErrNotFound when there is none.
func (b *Backend) TakeSession(ctx context.Context, key string) ([]byte, error) {
	if err := checkKeys(key); err != nil {
		return nil, err
	}
	r, st, err := b.sessions(ctx)
	if err != nil {
		return nil, err
	}
	subject := r.sessionSubject(key)
	for range sessionAttempts {
		m, err := st.GetLastMsgForSubject(ctx, subject)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, cluster.ErrNotFound
		}
		if err != nil {
			return nil, r.sessionFailed(fmt.Errorf("nats: failed to read session %s: %w", key, err))
		}
		err = st.DeleteMsg(ctx, m.Sequence)
		if err == nil {
			if m.Data == nil {
				return []byte{}, nil
			}
			return m.Data, nil
		}
		if !errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) {
			return nil, r.sessionFailed(fmt.Errorf("nats: failed to take session %s: %w", key, err))
		}
		// Another taker got it first, or it was saved again since.
	}
	return nil, fmt.Errorf("nats: session %s not taken: it changed %d times while taking", key, sessionAttempts)
}

// deleteParallel bounds the purge requests DeleteSessions has in flight.
const deleteParallel = 16

// DeleteSessions removes the keys' records (purging their subjects, a
// request each, up to deleteParallel at once).
func (b *Backend) DeleteSessions(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	if err := checkKeys(keys...); err != nil {
		return err
	}
	r, st, err := b.sessions(ctx)
	if err != nil {
		return err
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	sem := make(chan struct{}, deleteParallel)
	for _, k := range keys {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := st.Purge(ctx, jetstream.WithPurgeSubject(r.sessionSubject(k))); err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("nats: failed to delete session %s: %w", k, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return r.sessionFailed(first)
	}
	return nil
}
