package primus

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
	srv     *Server
	id      string
	query   url.Values
	header  http.Header
	addr    Address
	conn    transport.Conn
	ctx     context.Context
	cancel  context.CancelFunc
	alive   atomic.Bool
	done    chan struct{}
	wake    chan struct{}
	stop    chan struct{}
	stopped chan struct{}

	mu       sync.Mutex
	state    sparkState
	queue    []outFrame
	spare    []outFrame
	queued   int64
	reason   error
	stopOnce sync.Once

	writeTimer *time.Timer // owned by the writer goroutine

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

type outFrame struct {
	data []byte
	end  bool // close the connection after writing this frame
}

func newSpark(s *Server, r *http.Request, c transport.Conn) *Spark {
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	var id string
	if ic, ok := c.(transport.Identified); ok {
		id = ic.ID()
	} else {
		id = s.newID()
	}
	sp := &Spark{
		srv:     s,
		id:      id,
		query:   r.URL.Query(),
		header:  r.Header,
		addr:    clientAddress(r, s.trusted),
		conn:    c,
		ctx:     ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
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
func (sp *Spark) Context() context.Context { return sp.ctx }

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

// Write encodes v with the server's parser and queues it. It never blocks on
// the network: when the queue would go over Options.SendQueueBytes the spark
// is closed and ErrSlowConsumer returned. It returns ErrClosed once the spark
// has ended (or is ending).
func (sp *Spark) Write(v any) error {
	if sp.srv.hasOutgoing {
		for _, h := range sp.srv.hooks {
			if h.Outgoing == nil {
				continue
			}
			out, pass, err := h.Outgoing(sp, v)
			if err != nil {
				return fmt.Errorf("primus: outgoing transform: %w", err)
			}
			if !pass {
				return nil
			}
			v = out
		}
	}
	data, err := sp.srv.encode(v)
	if err != nil {
		return err
	}
	return sp.enqueue(data, false)
}

// End writes "primus::server::close" after everything already queued and
// then closes the connection: the client ends and does not reconnect. It
// returns at once; Done tells when the spark has ended.
func (sp *Spark) End() error {
	b, err := sp.srv.parser.Encode(serverClose)
	if err != nil {
		return err
	}
	return sp.enqueue(b, true)
}

// Close closes the connection at once, dropping queued messages, without
// "primus::server::close": the client sees a lost connection and reconnects.
func (sp *Spark) Close() error {
	sp.abort(nil)
	return nil
}

// enqueue adds an encoded frame to the send queue.
func (sp *Spark) enqueue(data []byte, end bool) error {
	sp.mu.Lock()
	if sp.state != stateOpen {
		sp.mu.Unlock()
		return ErrClosed
	}
	n := int64(len(data))
	if !end && sp.queued > 0 && sp.queued+n > sp.srv.queueBytes {
		sp.mu.Unlock()
		sp.abortAsync(ErrSlowConsumer)
		return ErrSlowConsumer
	}
	sp.queue = append(sp.queue, outFrame{data: data, end: end})
	sp.queued += n
	if end {
		sp.state = stateEnding
	}
	sp.mu.Unlock()
	select {
	case sp.wake <- struct{}{}:
	default:
	}
	return nil
}

// writeControl queues a protocol message, bypassing outgoing hooks.
func (sp *Spark) writeControl(msg string) {
	if b, err := sp.srv.parser.Encode(msg); err == nil {
		_ = sp.enqueue(b, false)
	}
}

// abort closes the connection at once. reason is reported to the error and
// end handlers; nil means an intentional close.
func (sp *Spark) abort(reason error) {
	if sp.markAborted(reason) {
		sp.stopWriter()
		_ = sp.conn.CloseNow()
	}
}

// abortAsync is abort for the fan-out paths (a broadcast tripping the
// slow-consumer limit, a heartbeat tick): closing a transport can wait for
// its goroutines, and one slow client must not hold up the others.
func (sp *Spark) abortAsync(reason error) {
	if sp.markAborted(reason) {
		sp.stopWriter()
		go func() { _ = sp.conn.CloseNow() }()
	}
}

// markAborted moves the spark to closed and reports whether it was this call
// that did.
func (sp *Spark) markAborted(reason error) bool {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.state == stateClosed {
		return false
	}
	sp.state = stateClosed
	sp.reason = reason
	sp.queue, sp.queued = nil, 0
	return true
}

func (sp *Spark) stopWriter() { sp.stopOnce.Do(func() { close(sp.stop) }) }

// writeLoop is the spark's one writing goroutine.
func (sp *Spark) writeLoop() {
	defer close(sp.stopped)
	// One timer for the spark's whole life bounds each write: resetting it
	// costs nothing, where a context with a deadline per write allocates.
	sp.writeTimer = time.AfterFunc(time.Hour, func() { sp.abort(ErrWriteTimeout) })
	sp.writeTimer.Stop()
	defer sp.writeTimer.Stop()
	for {
		select {
		case <-sp.wake:
		case <-sp.stop:
			return
		}
		for {
			sp.mu.Lock()
			if sp.state == stateClosed || len(sp.queue) == 0 {
				sp.mu.Unlock()
				break
			}
			batch := sp.queue
			sp.queue, sp.spare = sp.spare[:0], nil
			sp.mu.Unlock()
			for i := range batch {
				f := batch[i]
				batch[i] = outFrame{}
				if !sp.writeFrame(f) {
					return
				}
			}
			sp.mu.Lock()
			if sp.spare == nil {
				sp.spare = batch[:0]
			}
			sp.mu.Unlock()
		}
	}
}

// writeFrame writes one frame and reports whether the writer goes on.
func (sp *Spark) writeFrame(f outFrame) bool {
	sp.writeTimer.Reset(sp.srv.writeTimeout)
	err := sp.conn.Write(context.Background(), sp.srv.frameType, f.data)
	sp.writeTimer.Stop()
	sp.mu.Lock()
	sp.queued -= int64(len(f.data))
	closed := sp.state == stateClosed
	sp.mu.Unlock()
	if closed {
		return false
	}
	if err != nil {
		sp.abort(nil) // the connection is gone; the read loop sees it too
		return false
	}
	if f.end {
		// Close with a handshake (bounded by the transport); the read loop
		// receives the peer's answer and ends the spark.
		_ = sp.conn.Close(transport.StatusNormalClosure, "")
		_ = sp.conn.CloseNow()
		return false
	}
	return true
}

// run drives the connection until it ends; it is called by Server.accept in
// the transformer's goroutine.
func (sp *Spark) run() {
	if po, ok := sp.conn.(transport.PingObserver); ok {
		po.OnPing(func() { sp.alive.Store(true) })
	}
	go sp.writeLoop()
	for _, h := range sp.srv.hooks {
		if h.Connection != nil {
			h.Connection(sp)
		}
	}
	for _, f := range sp.srv.onConnection.Get() {
		f(sp)
	}
	var readErr error
	for {
		typ, data, err := sp.conn.Read(context.Background()) // a cancellable context costs two allocations per read in coder/websocket; CloseNow ends the read instead
		if err != nil {
			readErr = err
			break
		}
		sp.handle(typ, data)
	}
	sp.finish(readErr)
}

// handle processes one incoming frame.
func (sp *Spark) handle(typ transport.MessageType, data []byte) {
	m, err := incoming(sp.srv.parser, typ, data, sp.control)
	if err != nil {
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
func incoming(p parser.Parser, typ transport.MessageType, data []byte, control func(string) bool) (*Message, error) {
	if len(data) == 0 {
		return nil, nil
	}
	if typ == transport.Binary && !p.Binary() {
		return parser.NewBinaryMessage(data), nil // passed through undecoded, as in Primus
	}
	if s, ok := controlMessage(p, data); ok && control(s) {
		return nil, nil
	}
	m := parser.NewMessage(p, data)
	if err := m.Check(); err != nil {
		return nil, fmt.Errorf("primus: failed to decode incoming data: %w", err)
	}
	return m, nil
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
		f(err)
	}
}

// finish ends the spark after its read loop has stopped.
func (sp *Spark) finish(readErr error) {
	sp.mu.Lock()
	reason := sp.reason
	if sp.state != stateClosed {
		sp.state = stateClosed
		sp.queue, sp.queued = nil, 0
		if errors.Is(readErr, transport.ErrMessageTooBig) {
			reason = ErrMessageTooBig
		}
	}
	sp.mu.Unlock()
	// Close before waiting for the writer: a write blocked on a peer that
	// stopped reading then fails at once instead of at the write timeout.
	sp.stopWriter()
	_ = sp.conn.CloseNow()
	<-sp.stopped
	sp.cancel()
	sp.srv.remove(sp)
	if reason != nil {
		sp.reportError(reason)
	}
	for _, f := range sp.onEnd.Get() {
		f(reason)
	}
	for _, h := range sp.srv.hooks {
		if h.Close != nil {
			h.Close(sp, reason)
		}
	}
	for _, f := range sp.srv.onDisconnection.Get() {
		f(sp)
	}
	close(sp.done)
}

var _ plugin.Spark = (*Spark)(nil)

// heartbeatLoop is the server's one heartbeat timer; it runs while sparks
// are connected.
func (s *Server) heartbeatLoop(stop, stopped chan struct{}) {
	defer close(stopped)
	t := time.NewTicker(s.pingInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			ping, err := s.parser.Encode(pingPrefix + strconv.FormatInt(now.UnixMilli(), 10))
			if err != nil {
				continue
			}
			for _, sp := range s.snapshot() {
				sp.heartbeat(ping)
			}
		}
	}
}
