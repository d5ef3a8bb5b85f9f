package websocket

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-primus/primus/transport"
)

// Idle connections.
//
// A goroutine's stack grows while it handles messages and stays grown, and
// an idle connection's reading goroutine is most of what the connection
// costs. So on the server side, Read waits for the next message itself, a
// few calls deep, by peeking at the library's reader (which it owns: see
// hijackRecorder), rather than deep inside the library; and the core can
// wake such a wait (transport.IdleReader) to move the connection's reading
// to a fresh goroutine, whose small stack is all an idle connection then
// holds. The peek reads the socket into the library's reader as the library
// would, so it costs no extra system call.
//
// The library reads br itself only in Read (one goroutine, ours) and in
// Close's handshake, which waitMessage keeps out of the way of.

// waitState coordinates waitMessage with Wake and Close.
type waitState struct {
	brMu sync.Mutex // held by waitMessage while it uses br, and by Close's handshake

	mu       sync.Mutex
	peeking  bool          // waitMessage waits in br.Peek
	woken    bool          // Wake has interrupted that wait
	closing  chan struct{} // non-nil once Close began; closed when its handshake is over
	detached atomic.Bool   // the core finishes the connection (Detach)
}

// aLongTimeAgo is a read deadline that has passed: it interrupts a read.
var aLongTimeAgo = time.Unix(1, 0)

// waitMessage waits until br holds the next message's first byte (or the
// read fails: the error is left for the library's read to report). It
// returns transport.ErrWoken when Wake interrupted it.
func (c *conn) waitMessage() error {
	w := &c.wait
	w.brMu.Lock()
	defer w.brMu.Unlock()
	if c.br.Buffered() > 0 {
		return nil
	}
	w.mu.Lock()
	if w.closing != nil {
		w.mu.Unlock()
		return nil
	}
	w.peeking = true
	w.mu.Unlock()

	_, _ = c.br.Peek(1)

	w.mu.Lock()
	w.peeking = false
	woken := w.woken && w.closing == nil // Close clears the deadline itself
	w.woken = false
	if woken {
		_ = c.raw.SetReadDeadline(time.Time{})
	}
	w.mu.Unlock()
	if woken {
		return transport.ErrWoken
	}
	return nil
}

// Wake interrupts a Read waiting for the next message: it returns
// transport.ErrWoken, nothing lost. A Read receiving a message is not
// disturbed.
func (c serverConn) Wake() {
	w := &c.wait
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.peeking && !w.woken && w.closing == nil {
		w.woken = true
		_ = c.raw.SetReadDeadline(aLongTimeAgo)
	}
}

// Detach lets the transformer's goroutine end when the core's AcceptFunc
// returns while the connection is open: the core closes it when it is done.
func (c serverConn) Detach() { c.wait.detached.Store(true) }

// closingChan returns the channel closed when Close's handshake is over, or
// nil when Close has not begun.
func (c *conn) closingChan() chan struct{} {
	c.wait.mu.Lock()
	defer c.wait.mu.Unlock()
	return c.wait.closing
}

// beginClose gets br out of a waiting Read's hands for Close's handshake,
// which reads the peer's answer from it. It returns what to call when the
// handshake is over, or nil when another Close got there first.
func (c *conn) beginClose() (done func()) {
	w := &c.wait
	ch := make(chan struct{})
	w.mu.Lock()
	if w.closing != nil {
		w.mu.Unlock()
		return nil
	}
	w.closing = ch
	if w.peeking {
		_ = c.raw.SetReadDeadline(aLongTimeAgo)
	}
	w.mu.Unlock()
	w.brMu.Lock()
	_ = c.raw.SetReadDeadline(time.Time{})
	return func() {
		w.brMu.Unlock()
		close(ch)
	}
}
