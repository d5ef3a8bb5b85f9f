package engineio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	ws "github.com/coder/websocket"

	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/transport"
)

// session is one Engine.IO session, and the transport.Conn the core reads
// and writes.
//
// Outgoing messages. On a WebSocket, Write writes the frame at once. On
// polling, it appends the packet to out, which the pending poll (or the
// next one) takes whole; while out holds SendBufferBytes, Write waits, so
// the spark's own send queue fills and its slow-consumer policy applies.
// Pings from the session's timer go the same way.
//
// Incoming messages. On a WebSocket, Read reads the next frame itself (no
// goroutine of the session's own). On polling, each POST decodes its
// payload into in, which Read empties; a POST waits while in holds more
// than one body's worth, so the client's next POST waits too.
//
// The upgrade. A WebSocket with the session's sid probes ("2probe" →
// "3probe"); from then on a poll returns at once, so that the client can
// pause polling; on the client's "5", the session moves onto the WebSocket:
// whatever out holds is written there first (flushing), then writes go
// straight to the WebSocket; Read empties in first, then reads the
// WebSocket. The client waits for its last POST's answer before it sends
// "5", so no message is lost or reordered in either direction.
//
// Only one GET and one POST may be under way at a time; a second one of
// either closes the session, as engine.io does.
type session struct {
	h    *handler
	id   string
	addr netip.Addr // the client address the session is bound to

	// awaitingPong mirrors the heartbeat's state for the read paths, which
	// consult it for every packet.
	awaitingPong atomic.Bool

	mu    sync.Mutex
	state sessionState
	err   error // why the session closed; Read returns it once in is empty

	closeCode   int // Close's code and reason, for a WebSocket
	closeReason string

	websocket bool     // the session runs on a WebSocket (from the start, or upgraded)
	ws        *ws.Conn // that WebSocket
	raw       net.Conn // its hijacked connection
	wsB64     bool     // its client asked for binary as base64 text (b64)
	flushing  bool     // out is being moved to the WebSocket after the upgrade

	probe      *ws.Conn // a WebSocket probing an upgrade
	probeRaw   net.Conn
	probeReady bool // the probe was answered: polls return at once

	out            []packet // packets no poll has carried yet
	outBytes       int64    // what out retains, in bytes
	polling        bool     // a GET is under way
	posting        bool     // a POST is under way
	closeDelivered bool     // a poll's answer carries the close packet

	in      []inMessage // messages the core has not read yet
	inBytes int64       // what in retains, in bytes

	tombstone *time.Timer // removes a closed session that waits for its last poll

	pingTimer *time.Timer
	pingDue   time.Time // when the timer's next action is due
	refreshed bool      // the pong timeout was extended once already

	pollWake chan struct{} // the pending poll re-checks
	outSpace chan struct{} // a waiting Write re-checks
	inWake   chan struct{} // a waiting Read re-checks
	inSpace  chan struct{} // a waiting POST re-checks
	done     chan struct{} // closed when the session is closed
}

type sessionState uint8

const (
	stateOpen    sessionState = iota
	stateClosing              // Close: out is delivered, then the close packet
	stateClosed
)

// inMessage is one received message and the bytes its buffer retains.
type inMessage struct {
	typ  transport.MessageType
	data []byte
	cost int64
}

var (
	_ transport.Conn       = (*session)(nil)
	_ transport.Identified = (*session)(nil)
)

func newSession(h *handler, id string, r *http.Request, websocket bool) *session {
	s := &session{
		h:         h,
		id:        id,
		websocket: websocket,
		pollWake:  make(chan struct{}, 1),
		outSpace:  make(chan struct{}, 1),
		inWake:    make(chan struct{}, 1),
		inSpace:   make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	if h.topts.ClientAddress != nil {
		s.addr = h.topts.ClientAddress(r)
	}
	return s
}

// ID returns the sid: the spark's id is the one the client knows.
func (s *session) ID() string { return s.id }

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (s *session) onWebSocket() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.websocket
}

func (s *session) attachWebSocket(c *ws.Conn, raw net.Conn, b64 bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ws, s.raw, s.wsB64 = c, raw, b64
	if s.state == stateClosed {
		_ = raw.Close()
		_ = c.CloseNow()
	}
}

// writeContext bounds one write the session makes on its own.
func (s *session) writeContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.h.opts.WriteTimeout)
}

// Heartbeat. One timer per session: PingInterval after the handshake (and
// after each pong) it sends a ping and waits PingTimeout for the pong; a
// packet other than the pong extends that wait once, as engine.io does (a
// client busy sending may answer late). No pong in time closes the session.

func (s *session) startHeartbeat() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == stateClosed {
		return
	}
	s.pingDue = time.Now().Add(s.h.opts.PingInterval)
	s.pingTimer = time.AfterFunc(s.h.opts.PingInterval, s.heartbeat)
}

func (s *session) heartbeat() {
	s.mu.Lock()
	if s.state == stateClosed {
		s.mu.Unlock()
		return
	}
	if d := time.Until(s.pingDue); d > 0 {
		// Rescheduled while this call was on its way.
		s.pingTimer.Reset(d)
		s.mu.Unlock()
		return
	}
	if s.awaitingPong.Load() {
		s.mu.Unlock()
		s.shut(ErrPingTimeout, false)
		return
	}
	s.awaitingPong.Store(true)
	s.refreshed = false
	s.pingDue = time.Now().Add(s.h.opts.PingTimeout)
	s.pingTimer.Reset(s.h.opts.PingTimeout)
	ping := packet{typ: typePing}
	if !s.websocket || s.flushing {
		s.out = append(s.out, ping)
		s.outBytes++
		s.mu.Unlock()
		signal(s.pollWake)
		return
	}
	c, b64 := s.ws, s.wsB64
	s.mu.Unlock()
	ctx, cancel := s.writeContext()
	defer cancel()
	if err := writePacket(ctx, c, b64, ping); err != nil {
		s.shut(fmt.Errorf("%w: %w", ErrTransportClosed, err), false)
	}
}

// pong records the client's answer to the ping.
func (s *session) pong() {
	if !s.awaitingPong.Load() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == stateClosed || !s.awaitingPong.Load() {
		return
	}
	s.awaitingPong.Store(false)
	s.pingDue = time.Now().Add(s.h.opts.PingInterval)
	s.pingTimer.Reset(s.h.opts.PingInterval)
}

// alive records a packet other than the pong.
func (s *session) alive() {
	if !s.awaitingPong.Load() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == stateClosed || !s.awaitingPong.Load() || s.refreshed {
		return
	}
	s.refreshed = true
	s.pingDue = time.Now().Add(s.h.opts.PingTimeout)
	s.pingTimer.Reset(s.h.opts.PingTimeout)
}

// Writing.

func (s *session) Write(ctx context.Context, typ transport.MessageType, data []byte) error {
	p := packet{typ: typeMessage, data: data, bin: typ == transport.Binary}
	cost := int64(cap(data)) + 1
	s.mu.Lock()
	for {
		if s.state != stateOpen {
			s.mu.Unlock()
			return fmt.Errorf("engineio: failed to write: %w", ErrClosed)
		}
		if s.websocket && !s.flushing {
			c, b64 := s.ws, s.wsB64
			s.mu.Unlock()
			if err := writePacket(ctx, c, b64, p); err != nil {
				return fmt.Errorf("engineio: failed to write: %w", err)
			}
			return nil
		}
		if s.outBytes == 0 || s.outBytes+cost <= s.h.opts.SendBufferBytes {
			break
		}
		s.mu.Unlock()
		select {
		case <-s.outSpace:
		case <-s.done:
		case <-ctx.Done():
			return fmt.Errorf("engineio: failed to write: %w", ctx.Err())
		}
		s.mu.Lock()
	}
	s.out = append(s.out, p)
	s.outBytes += cost
	s.mu.Unlock()
	signal(s.pollWake)
	return nil
}

// writeBufPool holds the buffers text frames are assembled in ("4" +
// message); larger ones than maxPooledBuf are not kept.
var writeBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

const maxPooledBuf = 64 << 10

// writePacket writes one packet as one WebSocket frame: a binary message as
// a binary frame (as base64 text when the client asked for b64), anything
// else as text.
func writePacket(ctx context.Context, c *ws.Conn, b64 bool, p packet) error {
	if p.bin && !b64 {
		return c.Write(ctx, ws.MessageBinary, p.data)
	}
	bp := writeBufPool.Get().(*[]byte)
	buf := appendText((*bp)[:0], p)
	err := c.Write(ctx, ws.MessageText, buf)
	if cap(buf) <= maxPooledBuf {
		*bp = buf[:0]
		writeBufPool.Put(bp)
	}
	return err
}

// takeLocked empties out and returns what it held.
func (s *session) takeLocked() []packet {
	pkts := s.out
	s.out, s.outBytes = nil, 0
	if len(pkts) > 0 {
		signal(s.outSpace)
	}
	return pkts
}

// poll serves a long-polling GET: it answers with what out holds, waiting
// for something to send (a ping comes every PingInterval at the latest).
func (s *session) poll(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.polling {
		s.mu.Unlock()
		// engine.io: "overlap from client". The poll under way gets the
		// close packet.
		s.shut(fmt.Errorf("%w: a second poll while one was under way", ErrProtocol), false)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s.polling = true
	s.mu.Unlock()
	for {
		var pkts []packet
		final := false
		s.mu.Lock()
		closed := s.state == stateClosed
		switch {
		case closed:
			pkts, final = []packet{{typ: typeClose}}, true
		case s.websocket:
			// The session upgraded while this poll waited.
			pkts = []packet{{typ: typeNoop}}
		case s.state == stateClosing:
			pkts, final = append(s.takeLocked(), packet{typ: typeClose}), true
		case len(s.out) > 0:
			pkts = s.takeLocked()
		case s.probeReady:
			// Let the client pause polling and complete its upgrade.
			pkts = []packet{{typ: typeNoop}}
		}
		if pkts != nil {
			// The poll is over once its answer is decided: the client may
			// poll again as soon as the answer reaches it, possibly before
			// this goroutine runs again.
			s.polling = false
			s.closeDelivered = final
		}
		s.mu.Unlock()
		if pkts != nil {
			err := respond(w, s.h.opts.WriteTimeout, "text/plain; charset=UTF-8", encodePayload(pkts))
			switch {
			case closed:
				s.bury()
			case final:
				s.shut(ErrClosed, false)
			case err != nil:
				// What the response carried is lost.
				s.shut(fmt.Errorf("%w: failed to answer a poll: %w", ErrTransportClosed, err), false)
			}
			return
		}
		select {
		case <-s.pollWake:
		case <-s.done:
		case <-r.Context().Done():
			// engine.io: "poll connection closed prematurely".
			s.mu.Lock()
			s.polling = false
			s.mu.Unlock()
			s.shut(fmt.Errorf("%w: the poll's connection closed", ErrTransportClosed), true)
			return
		}
	}
}

// post serves a POST: it decodes the payload and queues its messages for
// Read.
func (s *session) post(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Content-Type") == "application/octet-stream" {
		// Binary payloads are protocol v3's; engine.io refuses them in v4.
		s.shut(fmt.Errorf("%w: a binary payload", ErrProtocol), false)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	if s.posting {
		s.mu.Unlock()
		s.shut(fmt.Errorf("%w: a second POST while one was under way", ErrProtocol), false)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s.posting = true
	s.mu.Unlock()
	// The POST is over before its answer goes out: the client may send the
	// next one as soon as the answer reaches it.
	var once sync.Once
	done := func() {
		once.Do(func() {
			s.mu.Lock()
			s.posting = false
			s.mu.Unlock()
		})
	}
	defer done()

	body, err := s.h.readBody(w, r)
	if errors.Is(err, transport.ErrMessageTooBig) {
		s.tooBig()
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return
	}
	if err != nil {
		s.shut(fmt.Errorf("%w: failed to read a POST: %w", ErrTransportClosed, err), true)
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusBadRequest)
		return
	}

	var msgs []inMessage
	var closing, tooBig bool
	var perr error
	err = splitPayload(body, func(p packet) bool {
		switch p.typ {
		case typeMessage:
			if int64(len(p.data)) > s.h.maxMessage {
				tooBig = true
				return false
			}
			typ := transport.Text
			if p.bin {
				typ = transport.Binary
			}
			msgs = append(msgs, inMessage{typ: typ, data: p.data, cost: int64(cap(p.data))})
			if !p.bin && len(msgs) == 1 {
				// A text message is a slice of the body, which it keeps.
				msgs[0].cost = int64(cap(body))
			}
		case typePong:
			s.pong()
			return true
		case typeClose:
			closing = true
			return false
		case typePing:
			perr = fmt.Errorf("%w: a ping from the client (v4 heartbeats go the other way)", ErrProtocol)
			return false
		}
		// Messages, noops and the others count as signs of life.
		s.alive()
		return true
	})
	if tooBig {
		s.tooBig()
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return
	}
	if errors.Is(err, errNotText) {
		// The payload is text split at a separator: in bytes that are not
		// UTF-8 that means nothing. Closed as RFC 6455 asks of a WebSocket
		// text frame that is not UTF-8 (the spark ends with
		// ErrInvalidUTF8).
		s.shut(errInvalidText, false)
		s.h.refuse(w, false, errBadRequest)
		return
	}
	if err != nil {
		perr = err
	}
	if len(msgs) > 1 {
		// Copy the text messages out, so that the body can go.
		for i := range msgs {
			if msgs[i].typ == transport.Text {
				msgs[i].data = append([]byte(nil), msgs[i].data...)
				msgs[i].cost = int64(cap(msgs[i].data))
			}
		}
	}
	if len(msgs) > 0 {
		if err := s.push(r.Context(), msgs); err != nil {
			if !errors.Is(err, ErrClosed) {
				s.shut(fmt.Errorf("%w: %w", ErrTransportClosed, err), true)
			}
			w.WriteHeader(http.StatusBadRequest)
			return
		}
	}
	switch {
	case perr != nil:
		s.shut(fmt.Errorf("engineio: failed to decode a payload: %w", perr), true)
		s.h.refuse(w, false, errBadRequest)
		return
	case closing:
		// The client closed the session; a pending poll gets the close
		// packet (engine.io sends it a noop).
		s.shut(errClosedByClient, true)
	}
	done()
	_ = respond(w, s.h.opts.WriteTimeout, "text/html", []byte("ok"))
}

// readBody reads a POST body under BodyTimeout and bodyLimit.
func (h *handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > h.bodyLimit {
		return nil, transport.ErrMessageTooBig
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(h.topts.BodyTimeout))
	defer func() { _ = rc.SetReadDeadline(time.Time{}) }()
	if r.ContentLength >= 0 && r.ContentLength <= exactBodyBytes {
		body := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, err
		}
		return body, nil
	}
	// A large body is read as it arrives, not allocated on the word of its
	// Content-Length.
	body, err := io.ReadAll(io.LimitReader(r.Body, h.bodyLimit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > h.bodyLimit {
		return nil, transport.ErrMessageTooBig
	}
	return body, nil
}

// exactBodyBytes is the largest body read into a buffer of its announced
// size.
const exactBodyBytes = 64 << 10

// inLimit bounds in: one POST body's worth.
func (s *session) inLimit() int64 { return s.h.bodyLimit }

// push queues received messages for Read, waiting while in is full.
func (s *session) push(ctx context.Context, msgs []inMessage) error {
	var cost int64
	for _, m := range msgs {
		cost += m.cost
	}
	s.mu.Lock()
	for s.inBytes > 0 && s.inBytes+cost > s.inLimit() && s.state != stateClosed {
		s.mu.Unlock()
		select {
		case <-s.inSpace:
		case <-s.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		s.mu.Lock()
	}
	if s.state == stateClosed || s.websocket {
		// A POST that raced with the upgrade is a client's error.
		s.mu.Unlock()
		return ErrClosed
	}
	s.in = append(s.in, msgs...)
	s.inBytes += cost
	s.mu.Unlock()
	signal(s.inWake)
	return nil
}

// Reading.

func (s *session) Read(ctx context.Context) (transport.MessageType, []byte, error) {
	for {
		s.mu.Lock()
		if len(s.in) > 0 {
			m := s.in[0]
			s.in[0] = inMessage{}
			s.in = s.in[1:]
			s.inBytes -= m.cost
			if len(s.in) == 0 {
				s.in = nil
			}
			s.mu.Unlock()
			signal(s.inSpace)
			return m.typ, m.data, nil
		}
		if s.state == stateClosed {
			err := s.err
			s.mu.Unlock()
			return 0, nil, fmt.Errorf("engineio: failed to read: %w", err)
		}
		if s.websocket {
			c := s.ws
			s.mu.Unlock()
			return s.readWebSocket(ctx, c)
		}
		s.mu.Unlock()
		select {
		case <-s.inWake:
		case <-s.done:
		case <-ctx.Done():
			return 0, nil, fmt.Errorf("engineio: failed to read: %w", ctx.Err())
		}
	}
}

// readWebSocket reads frames until one carries a message, handling the
// other packets on the way.
func (s *session) readWebSocket(ctx context.Context, c *ws.Conn) (transport.MessageType, []byte, error) {
	for {
		typ, b, err := c.Read(ctx)
		if err != nil {
			if errors.Is(err, ws.ErrMessageTooBig) {
				s.shut(transport.ErrMessageTooBig, false)
				return 0, nil, fmt.Errorf("engineio: failed to read: %w: %w", transport.ErrMessageTooBig, err)
			}
			s.mu.Lock()
			closeErr := s.err
			s.mu.Unlock()
			if closeErr != nil {
				// The session closed first (Close, a timeout): that is the
				// reason, not the read's error that followed.
				return 0, nil, fmt.Errorf("engineio: failed to read: %w", closeErr)
			}
			err = fmt.Errorf("%w: %w", ErrTransportClosed, err)
			s.shut(err, false)
			return 0, nil, fmt.Errorf("engineio: failed to read: %w", err)
		}
		var p packet
		if typ == ws.MessageBinary {
			p = packet{typ: typeMessage, data: b, bin: true}
		} else if p, err = decodeText(b); err != nil {
			s.shut(err, false)
			return 0, nil, fmt.Errorf("engineio: failed to read: %w: %w", ErrProtocol, err)
		}
		switch p.typ {
		case typeMessage:
			s.alive()
			if int64(len(p.data)) > s.h.maxMessage {
				s.tooBig()
				return 0, nil, fmt.Errorf("engineio: failed to read a message of %d bytes: %w", len(p.data), transport.ErrMessageTooBig)
			}
			if p.bin {
				return transport.Binary, p.data, nil
			}
			return transport.Text, p.data, nil
		case typePong:
			s.pong()
		case typeClose:
			err := errClosedByClient
			s.shut(err, false)
			return 0, nil, fmt.Errorf("engineio: failed to read: %w", err)
		case typePing:
			err := fmt.Errorf("%w: a ping from the client (v4 heartbeats go the other way)", ErrProtocol)
			s.shut(err, false)
			return 0, nil, fmt.Errorf("engineio: failed to read: %w", err)
		default:
			s.alive()
		}
	}
}

// The upgrade.

// startProbe records c as the session's probing WebSocket, unless the
// session is not polling, or already probing.
func (s *session) startProbe(c *ws.Conn, raw net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateOpen || s.websocket || s.probe != nil {
		return false
	}
	s.probe, s.probeRaw = c, raw
	return true
}

// probed records that the probe was answered, and lets the pending poll
// return so that the client can pause polling.
func (s *session) probed() {
	s.mu.Lock()
	s.probeReady = true
	s.mu.Unlock()
	signal(s.pollWake)
}

// endProbe forgets a probe that failed; the session goes on polling.
func (s *session) endProbe(c *ws.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.probe == c {
		s.probe, s.probeRaw, s.probeReady = nil, nil, false
	}
}

// completeUpgrade moves the session onto c: it writes what out holds there
// first, in order, and then lets writes go to c directly and Read read it.
// It reports whether the session took c.
func (s *session) completeUpgrade(c *ws.Conn, raw net.Conn, b64 bool) bool {
	s.mu.Lock()
	if s.state == stateClosed || s.probe != c {
		s.mu.Unlock()
		return false
	}
	// A session that is closing upgrades too (its client paused polling
	// for the upgrade and polls no more); it then closes on the WebSocket,
	// as engine.io does.
	s.probe, s.probeRaw, s.probeReady = nil, nil, false
	s.websocket, s.ws, s.raw, s.wsB64 = true, c, raw, b64
	s.flushing = true
	s.mu.Unlock()
	signal(s.pollWake) // a poll still waiting answers with a noop
	signal(s.inWake)   // Read moves onto the WebSocket once in is empty
	for {
		s.mu.Lock()
		if s.state == stateClosed {
			s.mu.Unlock()
			return true
		}
		batch := s.takeLocked()
		if len(batch) == 0 {
			s.flushing = false
			closing, code, reason := s.state == stateClosing, s.closeCode, s.closeReason
			s.mu.Unlock()
			signal(s.outSpace)
			if closing {
				_ = c.Close(ws.StatusCode(code), reason)
				s.shut(ErrClosed, true)
			}
			return true
		}
		s.mu.Unlock()
		for _, p := range batch {
			ctx, cancel := s.writeContext()
			err := writePacket(ctx, c, b64, p)
			cancel()
			if err != nil {
				s.shut(fmt.Errorf("%w: %w", ErrTransportClosed, err), false)
				return true
			}
		}
	}
}

// Closing.

// Close closes the session in an orderly way: on polling, the client gets
// what was written before and then the close packet ("1"), with its
// pending poll or the next one (Close waits for it, at most WriteTimeout:
// a polling client polls again at once); on a WebSocket, a close frame with
// code and reason (the close packet has neither).
func (s *session) Close(code int, reason string) error {
	s.mu.Lock()
	if s.state != stateOpen {
		s.mu.Unlock()
		return nil
	}
	s.state = stateClosing
	s.closeCode, s.closeReason = code, reason
	if s.websocket && !s.flushing {
		c := s.ws
		s.mu.Unlock()
		signal(s.outSpace)
		err := c.Close(ws.StatusCode(code), reason)
		s.shut(ErrClosed, true)
		if err != nil && !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("engineio: failed to close: %w", err)
		}
		return nil
	}
	s.mu.Unlock()
	signal(s.pollWake)
	signal(s.outSpace)
	timer := time.NewTimer(s.h.opts.WriteTimeout)
	defer timer.Stop()
	select {
	case <-s.done:
		return nil
	case <-timer.C:
		s.shut(ErrClosed, false)
		return fmt.Errorf("engineio: failed to close: %w", context.DeadlineExceeded)
	}
}

// CloseNow closes the session at once: a pending poll gets the close packet
// (the client reconnects), a WebSocket is cut.
func (s *session) CloseNow() error {
	s.shut(ErrClosed, false)
	return nil
}

// tooBig closes the session because the client sent too much.
func (s *session) tooBig() {
	s.mu.Lock()
	c := s.ws
	s.mu.Unlock()
	if c != nil {
		_ = c.Close(ws.StatusMessageTooBig, "message too big")
	}
	s.shut(transport.ErrMessageTooBig, false)
}

// shut closes the session for err: it is removed (its sid is unknown from
// now on), its timer stopped, its WebSockets closed, and every wait ended;
// a pending poll answers with the close packet. With keepIn, Read still
// returns the messages received before.
func (s *session) shut(err error, keepIn bool) {
	s.mu.Lock()
	if s.state == stateClosed {
		s.mu.Unlock()
		return
	}
	s.state = stateClosed
	s.err = err
	s.out, s.outBytes = nil, 0
	if !keepIn {
		s.in, s.inBytes = nil, 0
	}
	if s.pingTimer != nil {
		s.pingTimer.Stop()
	}
	c, raw, probe, probeRaw := s.ws, s.raw, s.probe, s.probeRaw
	if probe != nil && s.probeReady {
		// The client answered by the probe pauses polling: it learns of
		// the close neither from a poll nor from the probe, which it does
		// not read until it has sent "5". Let that "5" arrive: the upgrade
		// handler then closes the probe, now the client's transport, and
		// the client sees its connection close. At most probeGrace.
		keep, keepRaw := probe, probeRaw
		probe, probeRaw = nil, nil
		time.AfterFunc(probeGrace, func() {
			_ = keepRaw.Close()
			_ = keep.CloseNow()
		})
	}
	// A polling client closed by the server between two polls learns it
	// with its next poll, which comes at once: the sid stays known to
	// answer that poll with the close packet (not "Session ID unknown",
	// which the client reports as an error) for closedGrace at most.
	tombstone := !s.websocket && !s.polling && !s.closeDelivered && errors.Is(err, ErrClosed) && !errors.Is(err, errClosedByClient)
	if tombstone {
		s.tombstone = time.AfterFunc(closedGrace, func() { s.h.remove(s) })
	} else {
		// Before done is closed: once the spark has ended, the sid is
		// unknown. (The session's lock is taken before the handler's,
		// never the other way round.)
		s.h.remove(s)
	}
	close(s.done)
	s.mu.Unlock()
	s.h.topts.Logger.Debug("engineio: session closed", "sid", s.id, "reason", err)
	for _, nc := range []net.Conn{raw, probeRaw} {
		if nc != nil {
			_ = nc.Close()
		}
	}
	for _, wc := range []*ws.Conn{c, probe} {
		if wc != nil {
			_ = wc.CloseNow()
		}
	}
}

// errInvalidText closes a session whose client sent a payload that is not
// UTF-8.
var errInvalidText = fmt.Errorf("%w: %w", ErrProtocol, parser.ErrInvalidUTF8)

// probeGrace bounds how long a ready probe stays open after its session
// closed, for the client's "5".
const probeGrace = time.Second

// closedGrace bounds how long a closed polling session waits for the poll
// that collects its close packet.
const closedGrace = 5 * time.Second

// errClosedByClient is the reason of a session the client closed.
var errClosedByClient = fmt.Errorf("%w: by the client", ErrClosed)

// closed reports whether the session is closed (a tombstone, if it is
// still found).
func (s *session) closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state == stateClosed
}

// bury forgets a tombstone whose close packet was collected.
func (s *session) bury() {
	s.mu.Lock()
	t := s.tombstone
	s.mu.Unlock()
	if t != nil {
		t.Stop()
	}
	s.h.remove(s)
}

// release is called when the core is done with the session.
func (s *session) release() { _ = s.CloseNow() }
