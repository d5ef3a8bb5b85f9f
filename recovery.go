package primus

import (
	"crypto/rand"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Recovery: resumable connections.
//
// With Options.Recovery set, a client that says it can resume (our Go
// client and browser client do; the stock Primus client never does, and
// sees exactly the protocol it knows) gets a resume credential as the first
// message of its connection. When its connection is lost, the spark is
// dropped rather than ended: it keeps its id, handlers, context, rooms and
// plugin state, every data message written to it that the client has not
// confirmed, and every one written while it is away, within bounds. When
// the client comes back with the credential within the window, the spark
// gets the new connection, the client is told how many of its own messages
// the spark has received, and the missed messages are written first, in
// order, then new ones: the application sees one OnResume and no
// disconnection. Both sides confirm what they received by count (the
// transport is ordered), now and then, not per message.
//
// The wire additions, all Primus control messages (strings the stock client
// never receives):
//
//	query _primus_recover=1                 the client can resume (every connection)
//	query _primus_resume=C&_primus_received=N  resume with credential C; N data messages received
//	server "primus::session::C::R"           a new spark; C resumes it; R, when not empty, is why a requested resume failed
//	server "primus::resumed::M::C"           resumed; the server has received M data messages; C is the next credential
//	both   "primus::ack::N"                  N data messages received so far
//
// A credential is 130 random bits, good for one resume at a time: each
// resume issues the next, and the one it used stays good only until the
// client shows (by sending anything on the new connection) that it has the
// next one — so a client whose new connection dies before the greeting
// reached it can still come back with the credential it holds.

// Recovery configures resumable connections (Options.Recovery). The zero
// value of every field means its documented default.
type Recovery struct {
	// Window is how long a dropped spark waits for its client to resume it;
	// then it ends with ErrRecoveryExpired. Zero value means 2 minutes.
	Window time.Duration
	// MaxBytes bounds the memory of the messages a spark keeps for its
	// client: written and not yet confirmed, or written while the client is
	// away, counted as SendQueueBytes counts them. A dropped spark that
	// would go over it ends with ErrRecoveryOverflow; a connected one that
	// goes over it (its client does not confirm) can no longer be resumed.
	// It must exceed the largest message written. Zero value means 4 MiB.
	MaxBytes int64
	// MaxMessages bounds the number of those messages, likewise. Zero
	// value means 4096.
	MaxMessages int
}

const (
	defaultRecoveryWindow      = 2 * time.Minute
	defaultRecoveryMaxBytes    = 4 << 20
	defaultRecoveryMaxMessages = 4096
)

// Recovery errors: why a dropped spark ended, and why a client's resume
// failed (ResumeEvent.Reason).
var (
	// ErrRecoveryExpired: the client did not come back within the window.
	ErrRecoveryExpired = errors.New("primus: recovery window expired")
	// ErrRecoveryOverflow: the messages kept for the client went over the
	// recovery bounds.
	ErrRecoveryOverflow = errors.New("primus: recovery buffer overflow")
	// ErrRecoveryUnknown: the server does not know the session (it was
	// restarted, or the credential was used already or never issued).
	ErrRecoveryUnknown = errors.New("primus: recovery: unknown session")
)

// Query parameters and control messages of recovery.
const (
	paramRecover  = "_primus_recover"
	paramResume   = "_primus_resume"
	paramReceived = "_primus_received"

	sessionPrefix = "primus::session::"
	resumedPrefix = "primus::resumed::"
	ackPrefix     = "primus::ack::"
)

// Reasons on the wire for a resume that failed.
const (
	dropExpired  = "expired"
	dropOverflow = "overflow"
	dropEnded    = "ended"
	dropUnknown  = "unknown"
)

// reasonError maps a wire reason to its error.
func reasonError(r string) error {
	switch r {
	case dropExpired:
		return ErrRecoveryExpired
	case dropOverflow:
		return ErrRecoveryOverflow
	case "":
		return nil
	}
	return ErrRecoveryUnknown
}

// ackEvery is how many data messages either side receives before it
// confirms them, besides confirming on every heartbeat.
const ackEvery = 64

// resumable reports whether a spark cut for reason can wait for its client:
// the connection went away, or the server cut it for a heartbeat or write
// timeout, a slow consumer, or Close; not for a fault or a shutdown.
func resumable(reason error) bool {
	for _, final := range []error{ErrMessageTooBig, ErrInvalidUTF8, ErrUnsupportedData, ErrPanic, ErrServerClosed, ErrRecoveryExpired, ErrRecoveryOverflow, ErrRateLimited, ErrSparkMoved} {
		if errors.Is(reason, final) {
			return false
		}
	}
	return true
}

// sparkRecovery is a resumable spark's state; guarded by the spark's mu
// unless said otherwise.
type sparkRecovery struct {
	cfg   *Recovery
	cred  string   // the credential the client was last given
	creds []string // every credential that still resumes the spark, cred among them

	seq           uint64     // the last data frame's number
	written       uint64     // the last data frame written
	acked         uint64     // confirmed by the client
	retained      []outFrame // written, not confirmed, in order
	retainedBytes int64
	broken        bool // went over the bounds while connected: cannot resume

	recv     atomic.Uint64 // data messages received from the client
	recvAckd atomic.Uint64 // the last count the client was told

	timer *time.Timer // the window, while dropped
}

func (r *sparkRecovery) nextSeq() uint64 {
	r.seq++
	return r.seq
}

// retain keeps a written data frame until the client confirms it.
func (r *sparkRecovery) retain(f outFrame) {
	r.written = f.seq
	if r.broken || f.seq <= r.acked {
		return
	}
	if r.retained == nil {
		// Room for a few; it grows with what arrives between two
		// confirmations.
		r.retained = make([]outFrame, 0, 16)
	}
	r.retained = append(r.retained, f)
	r.retainedBytes += frameCost(f.data)
	if r.over(0, 0) {
		// The client does not confirm: give up on resuming rather than
		// hold more.
		r.broken = true
		r.retained, r.retainedBytes = nil, 0
	}
}

// over reports whether the retained frames plus queued ones (bytes, count)
// go over the bounds.
func (r *sparkRecovery) over(queuedBytes int64, queuedCount int) bool {
	return r.retainedBytes+queuedBytes > r.cfg.MaxBytes || len(r.retained)+queuedCount > r.cfg.MaxMessages
}

// ack forgets the frames the client has confirmed.
func (r *sparkRecovery) ack(n uint64) {
	if n > r.written {
		n = r.written // cannot confirm what was not written
	}
	if n <= r.acked {
		return
	}
	r.acked = n
	i := 0
	for i < len(r.retained) && r.retained[i].seq <= n {
		r.retainedBytes -= frameCost(r.retained[i].data)
		i++
	}
	if i == len(r.retained) {
		// All confirmed: an idle spark keeps nothing.
		r.retained = nil
		return
	}
	// Keep the array: move what is left to its front.
	k := copy(r.retained, r.retained[i:])
	clear(r.retained[k:])
	r.retained = r.retained[:k]
}

// newCredential makes a resume credential: 130 random bits.
func newCredential() string { return rand.Text() }

// credEntry is a credential's entry in the server's table: the spark it
// resumes, or, once that spark has ended, why (a tombstone kept for a
// window, so that a late client learns the reason).
type credEntry struct {
	sp      *Spark
	holder  *claim // the connection resuming with it, until it settles
	reason  string
	expires time.Time
}

// claim is one connection's hold on a credential: settled once the client
// has spoken on the connection (it has the next credential) or the
// connection has ended.
type claim struct {
	once    sync.Once
	settled chan struct{}
}

func newClaim() *claim { return &claim{settled: make(chan struct{})} }

func (c *claim) settle() { c.once.Do(func() { close(c.settled) }) }

// claimWait is how long a connection that resumes with a credential held by
// another one that has not settled waits for it: a client says something at
// once on a resumed connection, so one that stays silent this long is gone
// (its network died before the greeting reached it), and the newcomer takes
// over.
const claimWait = time.Second

// issueCredential registers a new credential for sp.
func (s *Server) issueCredential(sp *Spark) string {
	c := newCredential()
	s.mu.Lock()
	s.creds[c] = &credEntry{sp: sp}
	s.mu.Unlock()
	if s.journal != nil {
		s.journal.Issued(sp, c)
	}
	return c
}

// claim takes a credential for a connection: the spark it resumes and the
// connection's hold on it, or why there is none. A credential held by a
// connection that has not settled is waited for, up to claimWait: if that
// connection's client speaks, the credential is gone and refused; if it
// ends, or stays silent, the newcomer takes it.
func (s *Server) claim(cred string) (*Spark, *claim, string) {
	var waited *claim
	for {
		s.mu.Lock()
		e := s.creds[cred]
		switch {
		case e == nil:
			s.mu.Unlock()
			return nil, nil, dropUnknown
		case e.sp == nil:
			delete(s.creds, cred)
			s.mu.Unlock()
			return nil, nil, e.reason
		case e.holder == nil || e.holder == waited:
			c := newClaim()
			e.holder = c
			s.mu.Unlock()
			return e.sp, c, ""
		case waited != nil:
			s.mu.Unlock()
			return nil, nil, dropUnknown // another connection got it meanwhile
		}
		waited = e.holder
		s.mu.Unlock()
		t := time.NewTimer(claimWait)
		select {
		case <-waited.settled:
		case <-t.C:
		}
		t.Stop()
	}
}

// unclaim makes credentials good again.
func (s *Server) unclaim(creds []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range creds {
		if e := s.creds[c]; e != nil && e.sp != nil {
			e.holder = nil
		}
	}
}

// retire replaces a spark's credentials by tombstones with its end's
// reason.
func (s *Server) retire(creds []string, reason string) {
	if len(creds) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range creds {
		if _, ok := s.creds[c]; ok {
			s.creds[c] = &credEntry{reason: reason, expires: time.Now().Add(s.recovery.Window)}
		}
	}
}

// purgeTombstones forgets tombstones past their time; the housekeeping
// loop's.
func (s *Server) purgeTombstones(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c, e := range s.creds {
		if e.sp == nil && now.After(e.expires) {
			delete(s.creds, c)
		}
	}
}

// offerRecovery gives resumable sp (accept made its sparkRecovery) its
// first credential and queues the session message, the first its client
// receives. failure is why the resume the client asked for
// failed, if it did.
func (sp *Spark) offerRecovery(failure string) {
	sp.rec.cred = sp.srv.issueCredential(sp)
	sp.rec.creds = []string{sp.rec.cred}
	sp.writeControl(sessionPrefix + sp.rec.cred + "::" + failure)
}

// resume gives a resumable spark the link l of its returning client, which
// has received n data messages and claimed the credential used. It returns
// "" on success, or why the spark cannot be resumed (the claim is then
// given up). When sp still has a link (the server has not noticed the old
// connection is gone), the new one takes over.
func (sp *Spark) resume(l *link, n uint64, used string, c *claim) string {
	l.claim = c
	why := sp.resumeLink(l, n)
	if why != "" {
		sp.srv.unclaim([]string{used})
		c.settle()
	}
	return why
}

func (sp *Spark) resumeLink(l *link, n uint64) string {
	cred := sp.srv.issueCredential(sp)
	sp.mu.Lock()
	if old := sp.link.Load(); old != nil && sp.state == stateOpen {
		// Take over: drop the spark from the old link and wait until that
		// link has stopped reading and writing (its messages are counted
		// by then).
		old.dead.Store(true)
		if !sp.dropLocked() {
			sp.state = stateClosed
			sp.reason = ErrRecoveryOverflow
			sp.queue, sp.spare, sp.queued = nil, nil, 0
			sp.mu.Unlock()
			_ = old.conn.CloseNow()
			sp.srv.dropCredential(sp, cred)
			return dropOverflow
		}
		sp.mu.Unlock()
		_ = old.conn.CloseNow()
		<-old.readDone
		sp.waitWriter()
		sp.mu.Lock()
	}
	if sp.state != stateDropped {
		sp.mu.Unlock()
		sp.srv.dropCredential(sp, cred)
		return dropEnded
	}
	sp.waitWriterLocked()
	r := sp.rec
	if r.broken || n < r.acked || n > r.written {
		// Not resumable as asked; the spark waits for the window to end.
		sp.mu.Unlock()
		sp.srv.dropCredential(sp, cred)
		if r.broken {
			return dropOverflow
		}
		return dropUnknown
	}
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	// The messages to write again: those the client has not received, in
	// order, retained ones first.
	// Each frame once, by its number, whichever list it is in.
	var replay []outFrame
	last := n
	for _, list := range [][]outFrame{r.retained, sp.queue} {
		for _, f := range list {
			if !f.ctl && f.seq > last {
				replay = append(replay, f)
				last = f.seq
			}
		}
	}
	r.retained, r.retainedBytes = nil, 0
	r.acked, r.written = n, n
	// The credentials the client may still hold stay good until it shows
	// it has the next one (confirmCreds), or this link fails (unclaimed).
	l.oldCreds = r.creds
	r.cred = cred
	r.creds = append(append([]string(nil), r.creds...), cred)
	hello, _ := sp.srv.parser.Encode(resumedPrefix + strconv.FormatUint(r.recv.Load(), 10) + "::" + cred)
	r.recvAckd.Store(r.recv.Load())
	sp.queue = append([]outFrame{{data: hello, ctl: true}}, replay...)
	sp.queued = 0
	for _, f := range sp.queue {
		sp.queued += frameCost(f.data)
	}
	sp.link.Store(l)
	sp.state = stateOpen
	sp.writing = true
	go sp.writeLoop()
	sp.mu.Unlock()
	if o := sp.srv.obs; o != nil {
		o.Resumed(len(replay))
	}
	return ""
}

// waitWriterLocked is waitWriter with sp.mu held (and held again on return).
func (sp *Spark) waitWriterLocked() {
	for sp.writing {
		if sp.writerDone == nil {
			sp.writerDone = make(chan struct{})
		}
		ch := sp.writerDone
		sp.mu.Unlock()
		<-ch
		sp.mu.Lock()
	}
}

// dropCredential forgets a credential that was issued to sp for nothing.
func (s *Server) dropCredential(sp *Spark, cred string) {
	s.mu.Lock()
	delete(s.creds, cred)
	s.mu.Unlock()
	if s.journal != nil {
		s.journal.Revoked(sp, []string{cred})
	}
}

// drop parks a resumable spark whose link was lost: it waits for its
// client for the window. sp.mu is held; it reports false when the spark
// cannot be kept (it must end with ErrRecoveryOverflow).
func (sp *Spark) dropLocked() bool {
	r := sp.rec
	// Control messages belong to the lost connection.
	q := sp.queue[:0]
	sp.queued = 0
	for _, f := range sp.queue {
		if !f.ctl {
			q = append(q, f)
			sp.queued += frameCost(f.data)
		}
	}
	for i := len(q); i < len(sp.queue); i++ {
		sp.queue[i] = outFrame{}
	}
	sp.queue = q
	if r.broken || r.over(sp.queued, len(sp.queue)) {
		return false
	}
	sp.state = stateDropped
	sp.link.Store(nil)
	r.timer = time.AfterFunc(r.cfg.Window, func() { sp.endDropped(ErrRecoveryExpired, dropExpired) })
	return true
}

// endDropped ends a dropped spark: its window passed, it overflowed, the
// application ended it, or the server shuts down. wire is the reason a
// client that comes back late is told.
func (sp *Spark) endDropped(reason error, wire string) {
	sp.mu.Lock()
	if sp.state != stateDropped {
		sp.mu.Unlock()
		return
	}
	sp.state = stateClosed
	sp.reason = reason
	sp.queue, sp.spare, sp.queued = nil, nil, 0
	if t := sp.rec.timer; t != nil {
		t.Stop()
		sp.rec.timer = nil
	}
	sp.rec.retained, sp.rec.retainedBytes = nil, 0
	sp.mu.Unlock()
	sp.finish(reason, wire)
}

// recordReceived counts a data message from the client and confirms the
// count every ackEvery messages; the reading goroutine's.
func (sp *Spark) recordReceived() {
	r := sp.rec
	n := r.recv.Add(1)
	if n-r.recvAckd.Load() >= ackEvery {
		r.recvAckd.Store(n)
		sp.writeControl(ackPrefix + strconv.FormatUint(n, 10))
	}
}

// confirmReceived sends the count of received messages when it changed
// since the client was last told; on each heartbeat.
func (sp *Spark) confirmReceived() {
	r := sp.rec
	if n := r.recv.Load(); n != r.recvAckd.Load() {
		r.recvAckd.Store(n)
		sp.writeControl(ackPrefix + strconv.FormatUint(n, 10))
	}
}

// parseAck reads the count of "primus::ack::N".
func parseAck(s string) (uint64, bool) {
	n, err := strconv.ParseUint(strings.TrimPrefix(s, ackPrefix), 10, 64)
	return n, err == nil
}

// OnResume adds a handler run when the spark's client comes back and the
// spark resumes (recovery), before any message of the new connection is
// read.
func (sp *Spark) OnResume(f func()) { sp.onResume.Add(f) }

// OnDrop adds a handler run when the spark loses its connection and waits
// for its client to resume it (recovery), with the reason the connection
// was lost (nil when the client went away). If the client does not come
// back, the end handlers run later as usual.
func (sp *Spark) OnDrop(f func(reason error)) { sp.onDrop.Add(f) }

// resumed runs the resume handlers; the new link's start.
func (sp *Spark) resumed() {
	defer sp.recoverPanic()
	for _, h := range sp.srv.hooks {
		if h.Resume != nil {
			h.Resume(sp)
		}
	}
	for _, f := range sp.onResume.Get() {
		f()
	}
}

// confirmCreds forgets the credentials a client held before its last
// resume: it has sent something on the new connection, so it has the new
// one. The reading goroutine's, on the link's first frame.
func (sp *Spark) confirmCreds(l *link) {
	old := l.oldCreds
	l.oldCreds = nil
	sp.mu.Lock()
	keep := sp.rec.creds[:0:0]
	for _, c := range sp.rec.creds {
		if !slices.Contains(old, c) {
			keep = append(keep, c)
		}
	}
	sp.rec.creds = keep
	sp.mu.Unlock()
	sp.srv.mu.Lock()
	for _, c := range old {
		delete(sp.srv.creds, c)
	}
	sp.srv.mu.Unlock()
	if j := sp.srv.journal; j != nil {
		j.Revoked(sp, old)
	}
	l.claim.settle()
}
