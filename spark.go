package primus

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/go-primus/primus/internal/pluginkit"
	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/plugin"
	"github.com/go-primus/primus/transport"
)

// Control messages of the Primus protocol (section 4 of the protocol notes).
const (
	controlPrefix = "primus::"
	pingPrefix    = "primus::ping::"
	pongPrefix    = "primus::pong::"
	idPrefix      = "primus::id::"
	serverClose   = "primus::server::close"
)

// Spark is one client connection.
//
// Its methods are safe for concurrent use. Handlers (OnData, OnEnd, OnError)
// are best added in the server's connection handler, before any message is
// read; data handlers run one at a time, in order, in the spark's reading
// goroutine, so a slow handler slows only its own spark.
type Spark struct {
	srv    *Server
	id     string
	query  url.Values
	header http.Header
	addr   Address
	parent context.Context // the handshake's values, for Context
	done   chan struct{}
	link   atomic.Pointer[link] // the connection; nil while dropped (recovery) and once ended
	rec    *sparkRecovery       // nil unless the spark is resumable (recovery.go)
	rate   *sparkLimiter        // nil unless messages or bytes are limited (limits.go)
	moved  bool                 // resumed from another server (journal.go)
	kept   map[string]string    // Keep's values; guarded by mu
	// admitted: the spark holds a place in the connection limits.
	admitted bool

	mu         sync.Mutex
	state      sparkState
	writing    bool          // someone holds the write turn (write.go)
	writerDone chan struct{} // closed when the turn is given up
	queue      []outFrame
	spare      []outFrame
	queued     int64
	reason     error
	ctx        context.Context // made on the first Context call
	cancel     context.CancelFunc
	ctxDone    bool // the spark has ended: ctx is cancelled

	onData   pluginkit.Handlers[func(*Message)]
	onEnd    pluginkit.Handlers[func(error)]
	onError  pluginkit.Handlers[func(error)]
	onResume pluginkit.Handlers[func()]
	onDrop   pluginkit.Handlers[func(error)]
}

type sparkState uint8

const (
	stateOpen    sparkState = iota
	stateEnding             // End called: flushing, then close
	stateDropped            // the connection was lost; waiting for the client to resume (recovery)
	stateClosed             // ended, or ending once the read loop stops
)

func newSpark(s *Server, r *http.Request, q url.Values, c transport.Conn) *Spark {
	var id string
	if ic, ok := c.(transport.Identified); ok {
		id = ic.ID() // made with transport.Options.NewID, the server's IDGenerator
	} else {
		id = s.newID()
	}
	sp := &Spark{
		srv:    s,
		id:     id,
		query:  q,
		header: transport.TrimHeader(r.Header, s.headerBytes),
		addr:   clientAddress(r, s.trusted),
		parent: context.WithoutCancel(r.Context()),
		done:   make(chan struct{}),
		rate:   s.limits.forSpark(),
	}
	sp.link.Store(newLink(sp, c))
	return sp
}

func randomID() string { return rand.Text() }

// ID returns the spark's unique, unguessable id; the client learns it with
// id().
func (sp *Spark) ID() string { return sp.id }

// Query returns the parsed query of the handshake request (the stock
// client's _primuscb cache buster included).
func (sp *Spark) Query() url.Values { return sp.query }

// Header returns the handshake request's header.
func (sp *Spark) Header() http.Header { return sp.header }

// Address returns where the client connects from.
func (sp *Spark) Address() Address { return sp.addr }

// Context carries the values of the handshake request's context (those set
// by middleware) and is cancelled when the spark has ended.
func (sp *Spark) Context() context.Context {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.ctx == nil {
		// Made on demand: most sparks never need one, and an idle spark
		// should cost as little as possible.
		sp.ctx, sp.cancel = context.WithCancel(sp.parent)
		if sp.ctxDone {
			sp.cancel()
		}
	}
	return sp.ctx
}

// Done is closed when the spark has ended and all its handlers have run.
func (sp *Spark) Done() <-chan struct{} { return sp.done }

// OnData adds a handler for data messages.
func (sp *Spark) OnData(f func(*Message)) { sp.onData.Add(f) }

// OnEnd adds a handler run once when the spark ends, with the reason: nil
// when either side ended it normally or the client went away, otherwise
// ErrHeartbeatTimeout, ErrSlowConsumer, ErrMessageTooBig, ErrWriteTimeout or
// ErrServerClosed.
func (sp *Spark) OnEnd(f func(reason error)) { sp.onEnd.Add(f) }

// OnError adds a handler for errors that do not end the spark (a message
// that failed to decode, which is dropped) and for the reason of an abnormal
// end.
func (sp *Spark) OnError(f func(error)) { sp.onError.Add(f) }

// connected runs the plugins' connection hooks and the server's connection
// handlers.
func (sp *Spark) connected() {
	defer sp.recoverPanic()
	for _, h := range sp.srv.hooks {
		if h.Connection != nil {
			h.Connection(sp)
		}
	}
	for _, f := range sp.srv.onConnection.Get() {
		f(sp)
	}
}

// handle processes one incoming frame read from link l.
func (sp *Spark) handle(l *link, typ transport.MessageType, data []byte) {
	if l.dead.Load() {
		return // lost or closing: what is still read is the peer's, not the application's
	}
	if l.oldCreds != nil {
		sp.confirmCreds(l) // the client has its new credential
	}
	if !sp.received(len(data)) {
		return // over its rate: closing
	}
	defer sp.recoverPanic()
	m, err := incoming(sp.srv.parser, typ, data, func(s string) bool { return sp.control(l, s) })
	if err != nil {
		if sp.srv.obs != nil {
			sp.srv.obs.DecodeError()
		}
		switch {
		case errors.Is(err, ErrInvalidUTF8):
			sp.closeWith(ErrInvalidUTF8, transport.StatusInvalidPayload, "invalid UTF-8")
			return
		case errors.Is(err, ErrUnsupportedData):
			sp.closeWith(ErrUnsupportedData, transport.StatusUnsupportedData, "unsupported data: frame type does not match the parser")
			return
		}
		if sp.rec != nil {
			sp.recordReceived() // the client counted it
		}
		sp.reportError(err)
	}
	if m == nil {
		return
	}
	if sp.rec != nil {
		sp.recordReceived()
	}
	for _, h := range sp.srv.hooks {
		if h.Incoming == nil {
			continue
		}
		pass, err := h.Incoming(sp, m)
		if err != nil {
			sp.reportError(fmt.Errorf("primus: incoming transform: %w", err))
			return
		}
		if !pass {
			return
		}
	}
	for _, f := range sp.onData.Get() {
		f(m)
	}
}

// incoming turns one received frame into a data message, for sparks and
// clients alike. It returns nil for an empty frame (what a stock client
// sends for a top-level undefined), for a control message that control
// consumed, and, with the error, for a message that does not decode.
//
// Frames are validated before anything else sees them: a frame whose type
// does not match the parser's is refused with ErrUnsupportedData, a text
// frame that is not UTF-8 with ErrInvalidUTF8; the caller closes the
// connection on both.
func incoming(p parser.Parser, typ transport.MessageType, data []byte, control func(string) bool) (*Message, error) {
	if (typ == transport.Binary) != p.Binary() {
		return nil, ErrUnsupportedData
	}
	if len(data) == 0 {
		return nil, nil
	}
	checked := typ != transport.Text || parserChecksUTF8(p)
	if !checked && !utf8.Valid(data) {
		return nil, fmt.Errorf("primus: failed to decode incoming data: %w", ErrInvalidUTF8)
	}
	if s, ok := controlMessage(p, data); ok {
		if typ == transport.Text && checked && !utf8.Valid(data) {
			return nil, fmt.Errorf("primus: failed to decode incoming data: %w", ErrInvalidUTF8)
		}
		if control(s) {
			return nil, nil
		}
	}
	m := parser.NewMessage(p, data)
	if err := m.Check(); err != nil {
		return nil, fmt.Errorf("primus: failed to decode incoming data: %w", err)
	}
	return m, nil
}

// parserChecksUTF8 reports whether p's Valid refuses invalid UTF-8 itself.
func parserChecksUTF8(p parser.Parser) bool {
	if _, ok := p.(parser.Validator); !ok {
		return false
	}
	u, ok := p.(parser.UTF8Checker)
	return ok && u.ChecksUTF8()
}

var controlMarker = []byte(controlPrefix)

// maybeControl is a cheap test that lets ordinary data skip the string
// decode: parsers that keep strings verbatim (JSON, CBOR, MessagePack) have
// the marker within the first few bytes. Parsers that do not implement
// parser.StringDecoder are always asked.
func maybeControl(p parser.Parser, data []byte) bool {
	if _, ok := p.(parser.StringDecoder); !ok {
		return true
	}
	head := data[:min(len(data), len(controlPrefix)+8)]
	return bytes.Contains(head, controlMarker)
}

// controlMessage returns the decoded string when data is a control message
// (the encoding of a string that starts with "primus::").
func controlMessage(p parser.Parser, data []byte) (string, bool) {
	if !maybeControl(p, data) {
		return "", false
	}
	s, ok := parser.DecodeString(p, data)
	if !ok || !strings.HasPrefix(s, controlPrefix) {
		return "", false
	}
	return s, true
}

// control handles a control message from link l and reports whether it
// was one the server consumes. Unknown primus:: strings are data, as in
// Primus.
func (sp *Spark) control(l *link, s string) bool {
	switch {
	case strings.HasPrefix(s, pongPrefix):
		l.alive.Store(true)
		sp.observePong(s)
		return true
	case strings.HasPrefix(s, idPrefix):
		sp.writeControl(idPrefix + sp.id)
		return true
	case sp.rec != nil && strings.HasPrefix(s, ackPrefix):
		if n, ok := parseAck(s); ok {
			sp.mu.Lock()
			sp.rec.ack(n)
			acked := sp.rec.acked
			sp.mu.Unlock()
			if j := sp.srv.journal; j != nil {
				j.Confirmed(sp, acked, sp.rec.recv.Load())
			}
		}
		return true
	}
	return false
}

// heartbeat is one tick of the server's heartbeat for this spark.
func (sp *Spark) heartbeat(ping []byte) {
	l := sp.link.Load()
	if l == nil || l.dead.Load() {
		return
	}
	if !l.alive.Swap(false) {
		sp.srv.log.Debug("primus: heartbeat timeout", "spark", sp.id)
		sp.abortAsync(ErrHeartbeatTimeout)
		return
	}
	_ = sp.enqueue(ping, false, true)
	if sp.rec != nil {
		sp.confirmReceived()
	}
}

func (sp *Spark) reportError(err error) {
	sp.srv.log.Debug("primus: spark error", "spark", sp.id, "error", err)
	for _, f := range sp.onError.Get() {
		sp.call(func() { f(err) })
	}
}

// recoverPanic is deferred around user code that runs in the spark's
// reading goroutine.
func (sp *Spark) recoverPanic() {
	if v := recover(); v != nil {
		sp.HandlePanic(v, debug.Stack())
	}
}

// call runs user code that is not on the per-message path under recovery.
func (sp *Spark) call(f func()) {
	defer sp.recoverPanic()
	f()
}

// HandlePanic ends the spark because code run for it panicked: it logs the
// panic and its stack, runs Options.OnPanic, and closes the connection with
// status 1011; the spark ends with a *PanicError. With
// Options.CrashOnPanic, it panics again instead. The core calls it for its
// own handlers; plugins call it through plugin.Recover for callbacks they
// run elsewhere.
func (sp *Spark) HandlePanic(v any, stack []byte) {
	pe := &PanicError{Value: v, Stack: stack}
	sp.srv.log.Error("primus: panic in a handler; closing the spark", "spark", sp.id, "panic", fmt.Sprint(v), "stack", string(stack))
	if f := sp.srv.onPanic; f != nil {
		func() {
			defer func() {
				if v2 := recover(); v2 != nil {
					sp.srv.log.Error("primus: OnPanic panicked", "spark", sp.id, "panic", fmt.Sprint(v2))
				}
			}()
			f(sp, pe)
		}()
	}
	if sp.srv.crashOnPanic {
		panic(v)
	}
	sp.closeWith(pe, transport.StatusInternalError, "internal error")
}

// linkEnded is called by l's read loop once it has stopped: a resumable
// spark whose connection was lost is dropped and waits for its client; any
// other one ends.
func (sp *Spark) linkEnded(l *link, readErr error) {
	if l.oldCreds != nil {
		// The client may not have had the greeting of this resume: the
		// credentials it held are good again.
		sp.srv.unclaim(l.oldCreds)
		l.claim.settle()
	}
	sp.mu.Lock()
	if sp.link.Load() != l {
		// Replaced by a resume, or already done with.
		sp.mu.Unlock()
		_ = l.conn.CloseNow()
		return
	}
	var reason error
	switch {
	case sp.state == stateClosed, sp.state == stateEnding:
		reason = sp.reason // nil after End, ErrServerClosed after closeForRestart
	case l.dead.Load():
		reason = l.lost // cut by the server for a reason a client can resume from
	default:
		switch {
		case errors.Is(readErr, transport.ErrMessageTooBig):
			reason = ErrMessageTooBig
		case errors.Is(readErr, ErrInvalidUTF8):
			reason = ErrInvalidUTF8 // a transformer refused the text itself (SockJS)
		case errors.Is(readErr, ErrUnsupportedData):
			reason = ErrUnsupportedData
		}
	}
	l.dead.Store(true)
	if sp.state == stateOpen && sp.rec != nil && resumable(reason) {
		if sp.dropLocked() {
			sp.mu.Unlock()
			_ = l.conn.CloseNow()
			for _, f := range sp.onDrop.Get() {
				sp.call(func() { f(reason) })
			}
			return
		}
		reason = ErrRecoveryOverflow
	}
	wire := wireReason(reason)
	if sp.state == stateEnding && reason == nil {
		// End was under way: a client that comes back ends too.
		wire = dropEnded
	}
	if sp.state != stateClosed {
		sp.state = stateClosed
		sp.reason = reason
		sp.queue, sp.spare, sp.queued = nil, nil, 0
	}
	sp.mu.Unlock()
	sp.finish(reason, wire)
}

// wireReason is what a client that comes back to a spark that ended for
// reason is told.
func wireReason(reason error) string {
	switch {
	case errors.Is(reason, ErrRecoveryExpired):
		return dropExpired
	case errors.Is(reason, ErrRecoveryOverflow):
		return dropOverflow
	}
	return dropUnknown
}

// finish ends the spark once its state is closed and its read loop, if it
// had one, has stopped. wire is what a client that tries to resume it later
// is told.
func (sp *Spark) finish(reason error, wire string) {
	sp.mu.Lock()
	l := sp.link.Load()
	sp.link.Store(nil)
	sp.mu.Unlock()
	if l != nil {
		// Close before waiting for the writer: a write blocked on a peer
		// that stopped reading then fails at once instead of at the write
		// timeout.
		_ = l.conn.CloseNow()
	}
	sp.waitWriter()
	sp.mu.Lock()
	sp.ctxDone = true // a Context made from now on is born cancelled
	if sp.cancel != nil {
		sp.cancel()
	}
	var creds []string
	if sp.rec != nil {
		creds = sp.rec.creds
	}
	sp.mu.Unlock()
	sp.srv.remove(sp)
	sp.releaseSpark()
	sp.observeClosed(reason)
	sp.srv.retire(creds, wire)
	if j := sp.srv.journal; j != nil {
		if sp.rec != nil {
			sp.mu.Lock()
			acked := sp.rec.acked
			sp.mu.Unlock()
			j.Confirmed(sp, acked, sp.rec.recv.Load())
		}
		j.Ended(sp, reason)
	}
	if reason != nil {
		sp.reportError(reason)
	}
	for _, f := range sp.onEnd.Get() {
		sp.call(func() { f(reason) })
	}
	for _, h := range sp.srv.hooks {
		if h.Close != nil {
			sp.call(func() { h.Close(sp, reason) })
		}
	}
	for _, f := range sp.srv.onDisconnection.Get() {
		sp.call(func() { f(sp) })
	}
	close(sp.done)
	sp.srv.running.Done()
}

var (
	_ plugin.Spark        = (*Spark)(nil)
	_ plugin.PanicHandler = (*Spark)(nil)
)

// housekeeping is the server's one timer loop, running while sparks are
// connected: the heartbeat every PingInterval (when heartbeats are on), and
// the idle sweep.
func (s *Server) housekeeping(stop, stopped chan struct{}) {
	defer close(stopped)
	var beat <-chan time.Time
	if s.pingInterval > 0 {
		t := time.NewTicker(s.pingInterval)
		defer t.Stop()
		beat = t.C
	}
	sweep := time.NewTicker(idleSweep)
	defer sweep.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-beat:
			ping, err := s.parser.Encode(pingPrefix + strconv.FormatInt(now.UnixMilli(), 10))
			if err != nil {
				continue
			}
			for _, sp := range s.snapshot() {
				sp.heartbeat(ping)
			}
		case now := <-sweep.C:
			s.mu.RLock()
			for _, sp := range s.sparks {
				if l := sp.link.Load(); l != nil {
					l.sweepIdle()
				}
			}
			tombstones := s.recovery != nil && len(s.creds) > 0
			s.mu.RUnlock()
			if tombstones {
				s.purgeTombstones(now)
			}
		}
	}
}
