package sockjs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/igm/sockjs-go/v3/sockjs"

	"github.com/go-primus/primus/transport"
)

// Close status codes of SockJS sessions.
const (
	// StatusDropped is the code of the close frame c[3000,"dropped"] that
	// CloseNow sends: the client sees a lost connection and reconnects.
	StatusDropped = 3000
)

// closeGrace bounds how long CloseNow lets a write that is under way finish,
// so that the close frame still reaches a client that reads.
const closeGrace = time.Second

// conn is one SockJS session seen as a transport.Conn.
//
// Writes. sockjs-go's Session.Send writes at once when the session has a
// receiving request (a WebSocket, a stream, a pending poll), and blocks on
// the network while it does; otherwise it appends to a buffer that has no
// bound. So on a WebSocket, Write returns when the frame is written. On the
// other transports, conn counts the bytes it has handed to Send that no
// response has carried yet (frameWriter reports each data frame written),
// and Write waits while that count would go over SendBufferBytes. The
// spark's single writer goroutine is then held, its send queue fills, and
// the core's slow-consumer policy closes the spark: nothing grows without
// bound. CloseNow ends any wait and aborts a write blocked on the network.
type conn struct {
	h    *handler
	sess sockjs.Session
	ws   *wsConn // nil for the HTTP transports

	tooBig atomic.Bool

	mu       sync.Mutex
	sizes    []int64 // sizes of the messages handed to Send and not yet written, oldest first
	buffered int64   // their sum
	sending  bool    // a Send is under way
	closed   bool    // Close or CloseNow has begun
	final    bool    // the close frame has been handed to sockjs-go, or CloseNow ran
	writers  map[*frameWriter]struct{}
	changed  chan struct{} // signalled when buffered shrinks or the conn closes
	closers  sync.WaitGroup
}

func newConn(h *handler, s sockjs.Session) *conn {
	return &conn{h: h, sess: s, changed: make(chan struct{}, 1)}
}

var _ transport.Conn = (*conn)(nil)

func (c *conn) Read(ctx context.Context) (transport.MessageType, []byte, error) {
	msg, err := c.sess.RecvCtx(ctx)
	if err != nil {
		if c.tooBig.Load() {
			return 0, nil, fmt.Errorf("sockjs: failed to read: %w", transport.ErrMessageTooBig)
		}
		return 0, nil, fmt.Errorf("sockjs: failed to read: %w", err)
	}
	if int64(len(msg)) > c.h.topts.MaxMessageSize {
		c.closeTooBig()
		return 0, nil, fmt.Errorf("sockjs: failed to read a message of %d bytes: %w", len(msg), transport.ErrMessageTooBig)
	}
	return transport.Text, []byte(msg), nil
}

// closeTooBig closes the session because the client sent too much. It
// returns once the close frame is out (or failed), so that sockjs-go, whose
// read fails next, does not close the session first without it.
func (c *conn) closeTooBig() {
	c.tooBig.Store(true)
	c.drop(transport.StatusMessageTooBig, "Message too big", true)
}

func (c *conn) Write(ctx context.Context, typ transport.MessageType, data []byte) error {
	if typ != transport.Text {
		return ErrBinary
	}
	n := int64(len(data))
	c.mu.Lock()
	for c.ws == nil && c.buffered > 0 && c.buffered+n > c.h.opts.SendBufferBytes && !c.closed {
		c.mu.Unlock()
		select {
		case <-c.changed:
		case <-ctx.Done():
			return fmt.Errorf("sockjs: failed to write: %w", ctx.Err())
		case <-c.sess.Context().Done():
			return fmt.Errorf("sockjs: failed to write: %w", ErrClosed)
		}
		c.mu.Lock()
	}
	if c.closed {
		c.mu.Unlock()
		return fmt.Errorf("sockjs: failed to write: %w", ErrClosed)
	}
	if c.ws == nil {
		c.sizes = append(c.sizes, n)
		c.buffered += n
	}
	c.sending = true
	c.mu.Unlock()

	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { _ = c.CloseNow() })
		defer stop()
	}
	err := c.sess.Send(string(data))

	c.mu.Lock()
	c.sending = false
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("sockjs: failed to write: %w", err)
	}
	return nil
}

// flushed records that a response carried the n oldest buffered messages.
func (c *conn) flushed(n int) {
	c.mu.Lock()
	n = min(n, len(c.sizes))
	for _, s := range c.sizes[:n] {
		c.buffered -= s
	}
	c.sizes = c.sizes[n:]
	if len(c.sizes) == 0 {
		c.sizes = c.sizes[:0:0] // let the old array go
	}
	c.mu.Unlock()
	c.signal()
}

func (c *conn) signal() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

func (c *conn) addWriter(f *frameWriter) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writers == nil {
		c.writers = make(map[*frameWriter]struct{})
	}
	c.writers[f] = struct{}{}
}

func (c *conn) removeWriter(f *frameWriter) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.writers, f)
}

// Close sends the SockJS close frame c[code,"reason"] and closes the
// session. On the HTTP transports it first waits (up to WriteTimeout, or
// until the session ends) for the client to collect the messages written
// before, which sockjs-go would otherwise drop: Spark.End's
// "primus::server::close" must arrive before the close frame. A polling
// client collects the close frame with its next poll.
func (c *conn) Close(code int, reason string) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	if c.ws == nil && c.buffered > 0 {
		timer := time.NewTimer(c.h.opts.WriteTimeout)
		defer timer.Stop()
		for c.buffered > 0 && !c.closed {
			c.mu.Unlock()
			select {
			case <-c.changed:
			case <-timer.C:
				c.mu.Lock()
				c.closed = true
				c.mu.Unlock()
				_ = c.CloseNow()
				return fmt.Errorf("sockjs: failed to close: %w", context.DeadlineExceeded)
			case <-c.sess.Context().Done():
				return nil
			}
			c.mu.Lock()
		}
		if c.closed {
			c.mu.Unlock()
			return nil
		}
	}
	c.closed = true
	c.final = true
	// The close frame, and a heartbeat that may hold the session's lock,
	// must not wait for a client that does not read.
	c.setWriteDeadlinesLocked(time.Now().Add(c.h.opts.WriteTimeout))
	c.mu.Unlock()
	c.signal()
	if err := c.sess.Close(uint32(code), closeReason(code, reason)); err != nil && !errors.Is(err, sockjs.ErrSessionNotOpen) {
		return fmt.Errorf("sockjs: failed to close: %w", err)
	}
	return nil
}

// CloseNow drops the session: the client gets c[3000,"dropped"] when it
// can still read one (within closeGrace), and reconnects; a WebSocket is
// closed right after. A write blocked on the network fails within
// closeGrace; a write waiting for buffer space fails at once. After Close it
// does nothing more.
func (c *conn) CloseNow() error {
	c.drop(StatusDropped, "dropped", false)
	return nil
}

// drop closes the session with code and reason without waiting for anything
// written before. With wait it returns when the close frame has been
// handed over; otherwise at once.
func (c *conn) drop(code int, reason string, wait bool) {
	c.mu.Lock()
	if c.final {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.final = true
	sending := c.sending // it may have just finished: it is only a hint
	c.setWriteDeadlinesLocked(time.Now().Add(closeGrace))
	c.closers.Add(1)
	c.mu.Unlock()
	c.signal()

	var raw net.Conn
	if c.ws != nil {
		raw = c.ws.raw
	}
	if raw != nil && sending {
		// The Send under way holds the session's lock: let it finish or
		// fail within closeGrace.
		_ = raw.SetWriteDeadline(time.Now().Add(closeGrace))
	}
	closeSession := func() {
		defer c.closers.Done()
		var t *time.Timer
		if raw != nil {
			t = time.AfterFunc(closeGrace, func() { _ = raw.Close() })
		}
		_ = c.sess.Close(uint32(code), reason)
		if raw != nil {
			t.Stop()
			_ = raw.Close()
		}
	}
	if wait {
		closeSession()
		return
	}
	// sockjs-go's Close waits for the session's lock, which a write or a
	// heartbeat may hold until it fails (within closeGrace); do not make the
	// caller (a timer, the heartbeat loop) wait for that.
	go closeSession()
}

// setWriteDeadlinesLocked bounds the writes to the session's responses.
func (c *conn) setWriteDeadlinesLocked(deadline time.Time) {
	for f := range c.writers {
		_ = http.NewResponseController(f.ResponseWriter).SetWriteDeadline(deadline)
	}
}

// release is called when the session's AcceptFunc has returned.
func (c *conn) release() {
	_ = c.CloseNow()
	c.closers.Wait()
}

// closeReason gives the SockJS reasons for the core's close codes.
func closeReason(code int, reason string) string {
	if reason != "" {
		return reason
	}
	switch code {
	case transport.StatusNormalClosure:
		return "Normal closure"
	case transport.StatusGoingAway:
		return "Going away"
	case transport.StatusMessageTooBig:
		return "Message too big"
	case transport.StatusInternalError:
		return "Internal error"
	case StatusDropped:
		return "dropped"
	}
	return ""
}
