package primus

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"strconv"

	"github.com/go-primus/primus/transport"
)

// Journal: the hook through which several servers make one, for recovery
// across them (package cluster's Options.Recovery installs one).
//
// With a Journal, a data message written to a spark (Spark.Write) or to
// every spark of the server (Server.Write) is not queued for the client at
// once: it is handed to the journal, which appends it to a durable log
// shared by every server, in one order, and delivers it back to the spark
// (JournalHost.Deliver) when it reads it there. A spark's messages are then
// entries of that log, so that another server can find, from a checkpoint
// (the count of messages the client confirmed and the log position of the
// last of them), every message a client missed when its server died, and
// resume its spark: same id, the missed messages first, in order, then new
// ones. The journal keeps the checkpoints where every server finds them
// (Issued, Confirmed, Revoked, Ended tell it what to keep).
//
// A spark resumed from another server is a new Spark value with the old
// id: the connection handlers run again (Spark.Moved reports true), since
// handlers and context values lived in the other process; what the journal
// keeps (the id, the missed messages, the count of messages received from
// the client, and, with package cluster and rooms, the rooms) carries
// over.

// Journal routes a server's data messages through a shared log; see
// Server.SetJournal. Its methods are called from the server's and the
// sparks' goroutines, concurrently, and must not block (Resume excepted).
type Journal interface {
	// Opened is told of a new spark, before any message is written to it.
	Opened(sp *Spark)
	// Append takes the encoded data message written to sp, or, when sp is
	// nil, to every spark of this server. The journal delivers it with
	// JournalHost.Deliver, in its order. An error is returned to the
	// writer.
	Append(sp *Spark, data []byte) error
	// Resume is asked for a resume credential this server does not know,
	// with the count of data messages the client received. It returns
	// ErrRecoveryUnknown when no server holds such a spark and
	// ErrRecoveryOverflow when the spark missed more than the recovery
	// limits (the client gets a new spark, and that reason); any other
	// error closes the connection (StatusTryAgainLater), and the client
	// tries again. ctx bounds it.
	Resume(ctx context.Context, cred string, received uint64) (Handoff, error)
	// Issued is told that cred now resumes sp.
	Issued(sp *Spark, cred string)
	// Revoked is told that creds no longer resume sp (its client has the
	// next one).
	Revoked(sp *Spark, creds []string)
	// Confirmed is told that sp's client has received acked data messages
	// and sp received recv from the client.
	Confirmed(sp *Spark, acked, recv uint64)
	// Ended is told that sp has ended for reason (ErrSparkMoved when
	// JournalHost.Release gave it to another server).
	Ended(sp *Spark, reason error)
	// Kept is told that sp's kept values (Spark.Keep) changed.
	Kept(sp *Spark)
	// AppendEnd takes Spark.End: the journal ends the spark with
	// JournalHost.End once it has delivered what was written before.
	AppendEnd(sp *Spark) error
}

// Handoff is a spark that Journal.Resume found on another server (or on
// none, when its server died), ready to resume here.
type Handoff struct {
	// ID is the spark's id.
	ID string
	// Received is how many data messages the spark had received from the
	// client: the client writes the rest again.
	Received uint64
	// Missed are the messages the client has not received, in order.
	Missed [][]byte
	// Kept are the spark's kept values (Spark.Keep).
	Kept map[string]string
	// Bind is called once the spark is made and its missed messages are
	// queued: the journal delivers to it from then on. Cancel is called
	// instead when the server does not take the spark after all (it is
	// closing, a limit refuses the connection): nothing has reached the
	// client, and the journal should leave the spark resumable for the
	// client's next try.
	Bind   func(sp *Spark)
	Cancel func()
}

// ErrSparkMoved ends a spark on the server it leaves when its client
// resumed it on another one (a Journal's JournalHost.Release).
var ErrSparkMoved = errors.New("primus: spark resumed on another server")

// JournalHost is what a Journal may do to the server's sparks.
type JournalHost struct{ s *Server }

// SetJournal makes the server route its data messages through j (see
// Journal) and returns what j may do to the sparks. It must be called
// before the server accepts connections, at most once: it returns an error
// otherwise (the sparks already there would be unknown to j).
func (s *Server) SetJournal(j Journal) (*JournalHost, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.journal != nil:
		return nil, errors.New("primus: SetJournal: the server has a journal already")
	case len(s.sparks) > 0 || s.hbStop != nil:
		return nil, errors.New("primus: SetJournal: the server has accepted connections already")
	}
	s.journal = j
	return &JournalHost{s: s}, nil
}

// Deliver queues a data message read from the journal for sp, as a write
// without a journal would; it never blocks.
func (h *JournalHost) Deliver(sp *Spark, data []byte) error {
	return sp.enqueue(data, false, false)
}

// End ends the spark as Spark.End does without a journal: what is queued
// is written, then "primus::server::close", then the connection closes.
func (h *JournalHost) End(sp *Spark) error { return sp.end(false) }

// Release ends a resumable spark because its client is resuming it on
// another server: its connection, if it still has one, is closed, and it
// ends with ErrSparkMoved. It returns the count of data messages its client
// confirmed and of those it received from the client, and false when the
// spark was not resumable or had ended already.
func (h *JournalHost) Release(sp *Spark) (acked, recv uint64, ok bool) {
	if sp.rec == nil {
		return 0, 0, false
	}
	sp.mu.Lock()
	switch sp.state {
	case stateDropped:
		sp.mu.Unlock()
		sp.endDropped(ErrSparkMoved, dropUnknown)
	case stateOpen, stateEnding:
		l := sp.link.Load()
		sp.mu.Unlock()
		if l != nil {
			sp.abortLink(l, ErrSparkMoved)
			<-l.readDone
		}
	default:
		sp.mu.Unlock()
	}
	<-sp.done
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if !errors.Is(sp.reason, ErrSparkMoved) {
		return 0, 0, false
	}
	return sp.rec.acked, sp.rec.recv.Load(), true
}

// Resumable reports whether the spark's client can resume it (recovery is
// on and the client asked for it).
func (sp *Spark) Resumable() bool { return sp.rec != nil }

// RecoveryOptions returns the server's recovery settings, defaults filled
// in, and false when recovery is off.
func (s *Server) RecoveryOptions() (Recovery, bool) {
	if s.recovery == nil {
		return Recovery{}, false
	}
	return *s.recovery, true
}

// MaxKept bounds the size of a spark's kept values (Spark.Keep): keys and
// values together.
const MaxKept = 4096

// ErrKeptTooBig is returned by Spark.Keep when the spark's kept values would
// go over MaxKept.
var ErrKeptTooBig = errors.New("primus: kept values over MaxKept")

// Keep stores a value with the spark that goes with it when it resumes on
// another server (package cluster's Recovery carries it in the spark's
// checkpoint): what the application must know of a spark wherever it is,
// such as a user name. An empty value removes the key. A spark's kept
// values are bounded by MaxKept; over it Keep returns ErrKeptTooBig.
func (sp *Spark) Keep(key, value string) error {
	sp.mu.Lock()
	size := 0
	for k, v := range sp.kept {
		if k != key {
			size += len(k) + len(v)
		}
	}
	if value != "" && size+len(key)+len(value) > MaxKept {
		sp.mu.Unlock()
		return ErrKeptTooBig
	}
	if value == "" {
		delete(sp.kept, key)
	} else {
		if sp.kept == nil {
			sp.kept = map[string]string{}
		}
		sp.kept[key] = value
	}
	sp.mu.Unlock()
	if j := sp.srv.journal; j != nil {
		j.Kept(sp)
	}
	return nil
}

// Kept returns the value stored with Keep under key.
func (sp *Spark) Kept(key string) (string, bool) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	v, ok := sp.kept[key]
	return v, ok
}

// KeptValues returns a copy of the spark's kept values.
func (sp *Spark) KeptValues() map[string]string {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return maps.Clone(sp.kept)
}

// Moved reports whether the spark was resumed from another server: its
// connection handlers ran again here.
func (sp *Spark) Moved() bool { return sp.moved }

// journalWrite hands a data message for sp to the journal.
func (sp *Spark) journalWrite(data []byte) error {
	sp.mu.Lock()
	st, reason := sp.state, sp.reason
	sp.mu.Unlock()
	// A spark closed for a restart (ShutdownReconnect) goes on elsewhere:
	// what its handlers write meanwhile is its.
	if st != stateOpen && st != stateDropped && (st != stateEnding || reason != ErrServerClosed) {
		return ErrClosed
	}
	return sp.srv.journal.Append(sp, data)
}

// resumeMoved resumes, with connection c, a spark whose credential this
// server does not know, through the journal. It reports whether it took
// the connection (resumed it, or closed it), and if not, why the resume
// failed (a reason on the wire).
func (s *Server) resumeMoved(r *http.Request, q url.Values, c transport.Conn, cred string, n uint64) (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.writeTimeout)
	h, err := s.journal.Resume(ctx, cred, n)
	cancel()
	switch {
	case errors.Is(err, ErrRecoveryUnknown):
		return false, dropUnknown
	case errors.Is(err, ErrRecoveryOverflow):
		return false, dropOverflow
	case err != nil:
		// Not an answer about the spark (the journal's node is closing,
		// its broker is slow): the client is told to come again, and
		// resumes on its next try, here or on another server.
		s.log.Warn("primus: resume through the journal failed; the client will try again", "err", err)
		_ = c.Close(transport.StatusTryAgainLater, "try again")
		return true, ""
	}
	sp := newSpark(s, r, q, c)
	sp.id = h.ID
	sp.moved = true
	sp.kept = maps.Clone(h.Kept)
	if !s.admitSpark(sp, c) {
		h.Cancel()
		return true, ""
	}
	s.mu.Lock()
	if _, dup := s.sparks[sp.id]; dup || s.closing {
		s.mu.Unlock()
		sp.releaseSpark()
		h.Cancel()
		_ = c.Close(transport.StatusGoingAway, "spark unavailable")
		return true, ""
	}
	s.sparks[sp.id] = sp
	s.running.Add(1)
	if s.hbStop == nil {
		s.hbStop, s.hbStopped = make(chan struct{}), make(chan struct{})
		go s.housekeeping(s.hbStop, s.hbStopped)
	}
	s.mu.Unlock()
	s.observeOpened(r)

	rec := &sparkRecovery{cfg: s.recovery, seq: n, written: n, acked: n}
	rec.recv.Store(h.Received)
	rec.recvAckd.Store(h.Received)
	sp.rec = rec
	// The credential used stays good until the client speaks here, as
	// on a resume on one server; this server now answers for it.
	s.mu.Lock()
	s.creds[cred] = &credEntry{sp: sp}
	s.mu.Unlock()
	s.journal.Issued(sp, cred)
	next := s.issueCredential(sp)
	rec.cred = next
	rec.creds = []string{cred, next}
	l := sp.link.Load()
	l.oldCreds = []string{cred}
	l.claim = newClaim()
	sp.writeControl(resumedPrefix + strconv.FormatUint(h.Received, 10) + "::" + next)
	for _, m := range h.Missed {
		_ = sp.enqueue(m, false, false)
	}
	h.Bind(sp)
	if o := s.obs; o != nil {
		o.Resumed(len(h.Missed))
	}
	l.run(sp.connected)
	return true, ""
}
