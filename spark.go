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
	conn   transport.Conn
	space  transport.WriteSpace     // nil when conn cannot say; see write.go
	wdl    transport.WriteDeadliner // nil when conn has no write deadline
	parent context.Context          // the handshake's values, for Context
	idle   transport.IdleReader     // nil when conn cannot move its reading
	alive  atomic.Bool
	dead   atomic.Bool // closing or closed: incoming messages are dropped
	done   chan struct{}
	reads  atomic.Uint32 // messages read, for sweepIdle
	fresh  atomic.Bool   // the reading goroutine is new and has read nothing
	swept  uint32        // reads at sweepIdle's last look; the housekeeping loop's
	// detached is set once the reading left the transformer's goroutine;
	// the reading goroutine's.
	detached bool

	mu         sync.Mutex
	state      sparkState
	writing    bool          // someone holds the write turn (write.go)
	writerDone chan struct{} // closed when the turn is given up, for finish
	queue      []outFrame
	spare      []outFrame
	queued     int64
	reason     error
	ctx        context.Context // made on the first Context call
	cancel     context.CancelFunc
	ctxDone    bool        // the spark has ended: ctx is cancelled
	writeTimer *time.Timer // for transports without write deadlines; made when first needed

	onData  pluginkit.Handlers[func(*Message)]
	onEnd   pluginkit.Handlers[func(error)]
	onError pluginkit.Handlers[func(error)]
}

type sparkState uint8

const (
	stateOpen   sparkState = iota
	stateEnding            // End called: flushing, then close
	stateClosed
)

func newSpark(s *Server, r *http.Request, c transport.Conn) *Spark {
	var id string
	if ic, ok := c.(transport.Identified); ok {
		id = ic.ID() // made with transport.Options.NewID, the server's IDGenerator
	} else {
		id = s.newID()
	}
	sp := &Spark{
		srv:    s,
		id:     id,
		query:  r.URL.Query(),
		header: transport.TrimHeader(r.Header, s.headerBytes),
		addr:   clientAddress(r, s.trusted),
		conn:   c,
		parent: context.WithoutCancel(r.Context()),
		done:   make(chan struct{}),
	}
	sp.space, _ = c.(transport.WriteSpace)
	sp.wdl, _ = c.(transport.WriteDeadliner)
	sp.idle, _ = c.(transport.IdleReader)
	sp.alive.Store(true)
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

// run drives the connection until it ends; it is called by Server.accept in
// the transformer's goroutine.
func (sp *Spark) run() {
	if po, ok := sp.conn.(transport.PingObserver); ok {
		po.OnPing(func() { sp.alive.Store(true) })
	}
	sp.connected()
	if sp.idle != nil {
		// Read from a goroutine of its own from the start, so that the
		// handshake's (grown) stack is not what the connection keeps.
		sp.detached = true
		sp.idle.Detach()
		sp.fresh.Store(true)
		go sp.readLoop()
		return
	}
	sp.readLoop()
}

// readLoop reads the connection until it ends. When the housekeeping loop
// wakes an idle connection's read (transport.IdleReader), the loop goes on
// in a fresh goroutine, whose small stack is all the idle spark then holds,
// and this one (its stack grown by the messages it handled) ends.
func (sp *Spark) readLoop() {
	var readErr error
	for {
		typ, data, err := sp.conn.Read(context.Background()) // a cancellable context costs two allocations per read in coder/websocket; CloseNow ends the read instead
		if err != nil {
			if errors.Is(err, transport.ErrWoken) && sp.detached {
				sp.fresh.Store(true)
				go sp.readLoop()
				return
			}
			readErr = err
			break
		}
		sp.reads.Add(1)
		if sp.fresh.Load() {
			sp.fresh.Store(false)
		}
		sp.handle(typ, data)
	}
	sp.finish(readErr)
}

// sweepIdle is the housekeeping loop's look at one spark: a spark whose
// reading goroutine has handled messages and that has read nothing since
// the last look is woken, so that its reading moves to a fresh goroutine.
func (sp *Spark) sweepIdle() {
	if sp.idle == nil || sp.fresh.Load() {
		return
	}
	if r := sp.reads.Load(); r != sp.swept {
		sp.swept = r
		return
	}
	sp.idle.Wake()
}

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

// handle processes one incoming frame.
func (sp *Spark) handle(typ transport.MessageType, data []byte) {
	if sp.dead.Load() {
		return // closing: what is still read is the peer's, not the application's
	}
	defer sp.recoverPanic()
	m, err := incoming(sp.srv.parser, typ, data, sp.control)
	if err != nil {
		switch {
		case errors.Is(err, ErrInvalidUTF8):
			sp.closeWith(ErrInvalidUTF8, transport.StatusInvalidPayload, "invalid UTF-8")
			return
		case errors.Is(err, ErrUnsupportedData):
			sp.closeWith(ErrUnsupportedData, transport.StatusUnsupportedData, "unsupported data: frame type does not match the parser")
			return
		}
		sp.reportError(err)
	}
	if m == nil {
		return
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

// control handles a control message and reports whether it was one the
// server consumes. Unknown primus:: strings are data, as in Primus.
func (sp *Spark) control(s string) bool {
	switch {
	case strings.HasPrefix(s, pongPrefix):
		sp.alive.Store(true)
		return true
	case strings.HasPrefix(s, idPrefix):
		sp.writeControl(idPrefix + sp.id)
		return true
	}
	return false
}

// heartbeat is one tick of the server's heartbeat for this spark.
func (sp *Spark) heartbeat(ping []byte) {
	if !sp.alive.Swap(false) {
		sp.srv.log.Debug("primus: heartbeat timeout", "spark", sp.id)
		sp.abortAsync(ErrHeartbeatTimeout)
		return
	}
	_ = sp.enqueue(ping, false)
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

// finish ends the spark after its read loop has stopped.
func (sp *Spark) finish(readErr error) {
	sp.mu.Lock()
	reason := sp.reason
	if sp.state != stateClosed {
		sp.state = stateClosed
		sp.dead.Store(true)
		sp.queue, sp.spare, sp.queued = nil, nil, 0
		switch {
		case errors.Is(readErr, transport.ErrMessageTooBig):
			reason = ErrMessageTooBig
		case errors.Is(readErr, ErrInvalidUTF8):
			reason = ErrInvalidUTF8 // a transformer refused the text itself (SockJS)
		case errors.Is(readErr, ErrUnsupportedData):
			reason = ErrUnsupportedData
		}
	}
	sp.mu.Unlock()
	// Close before waiting for the writer: a write blocked on a peer that
	// stopped reading then fails at once instead of at the write timeout.
	_ = sp.conn.CloseNow()
	sp.waitWriter()
	sp.mu.Lock()
	sp.ctxDone = true // a Context made from now on is born cancelled
	if sp.cancel != nil {
		sp.cancel()
	}
	sp.mu.Unlock()
	sp.srv.remove(sp)
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

// idleSweep is how often the housekeeping loop looks for idle sparks to
// move to a fresh reading goroutine: a spark is moved after one to two of
// these without a message.
const idleSweep = time.Second

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
		case <-sweep.C:
			s.mu.RLock()
			for _, sp := range s.sparks {
				sp.sweepIdle()
			}
			s.mu.RUnlock()
		}
	}
}
