package sockjs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/igm/sockjs-go/v3/sockjs"

	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/transport"
)

// Close status codes of SockJS sessions.
const (
	// StatusDropped is the code of the close frame c[3000,"dropped"] that
	// CloseNow sends: the client sees a lost connection and reconnects.
	StatusDropped = 3000
)

// closeGrace bounds how long a close frame may take to reach a client when
// the session is closed for a fault (Close with a code other than 1000 and
// 1001, CloseNow, a refused frame): after it the connection is cut.
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
//
// Closing. A close hands sockjs-go the close frame c[code,"reason"], which
// goes out at once on a WebSocket or a receiving request under way, or
// with the client's next poll. Handing it over can wait for a write blocked
// on a client that does not read (sockjs-go holds the session's lock while
// it writes), so every close is bounded: when its time is up, cut aborts the
// blocked writes (a past write deadline on the responses, the WebSocket's
// connection closed).
type conn struct {
	h    *handler
	sess sockjs.Session
	ws   *wsConn // nil for the HTTP transports

	refused atomic.Pointer[error] // why the transformer closed the session on a client's frame

	mu       sync.Mutex
	sizes    []int64 // sizes of the messages handed to Send and not yet written, oldest first
	buffered int64   // their sum
	sending  bool    // a Send is under way
	closed   bool    // Close or CloseNow has begun
	final    bool    // a close frame is being handed to sockjs-go, or has been
	handed   bool    // it has been (or the hand-over was cut)
	cutTimer *time.Timer
	cutAt    time.Time
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
		if why := c.refused.Load(); why != nil {
			return 0, nil, fmt.Errorf("sockjs: failed to read: %w", *why)
		}
		return 0, nil, fmt.Errorf("sockjs: failed to read: %w", err)
	}
	if int64(len(msg)) > c.h.topts.MaxMessageSize {
		c.closeTooBig()
		return 0, nil, fmt.Errorf("sockjs: failed to read a message of %d bytes: %w", len(msg), transport.ErrMessageTooBig)
	}
	return transport.Text, []byte(msg), nil
}

// Why the transformer refuses what a client sent.
var (
	errTooBig      = transport.ErrMessageTooBig
	errInvalidText = fmt.Errorf("%w: %w", ErrProtocol, parser.ErrInvalidUTF8)
	errBinaryFrame = fmt.Errorf("%w: %w: a binary frame (SockJS carries text only)", ErrProtocol, transport.ErrUnsupportedData)
)

// closeTooBig closes the session because the client sent too much.
func (c *conn) closeTooBig() {
	c.refuse(errTooBig, transport.StatusMessageTooBig, "Message too big")
}

// closeInvalid closes the session because the client sent text that is not
// UTF-8 (see textChecker).
func (c *conn) closeInvalid() {
	c.refuse(errInvalidText, transport.StatusInvalidPayload, "invalid UTF-8")
}

// closeBinary closes the session because the client sent a binary frame.
func (c *conn) closeBinary() {
	c.refuse(errBinaryFrame, transport.StatusUnsupportedData, "unsupported data: SockJS carries text only")
}

// refuse closes the session because of what the client sent: Read then
// fails with an error wrapping why. It returns once the close frame is out
// (or cut), so that sockjs-go, whose read fails next, does not close the
// session first without it.
func (c *conn) refuse(why error, code int, reason string) {
	c.refused.CompareAndSwap(nil, &why)
	c.drop(code, reason, true)
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
// session.
//
// A normal closure (1000, 1001: Spark.End, a server shutting down) keeps
// the order of what was written: on the HTTP transports Close first waits
// (up to WriteTimeout, or until the session ends) for the client to collect
// the messages written before, which sockjs-go would otherwise drop, so that
// "primus::server::close" arrives before the close frame; the hand-over of
// the frame is then bounded by WriteTimeout too.
//
// Any other code closes for a fault (a slow consumer, a panic, refused
// data): the messages not yet collected are dropped, and the close frame is
// handed over at once, bounded by closeGrace. A polling client collects it
// with its next poll; a WebSocket or streaming client that does not read
// has its connection cut.
func (c *conn) Close(code int, reason string) error {
	normal := code == transport.StatusNormalClosure || code == transport.StatusGoingAway
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	if normal && c.ws == nil && c.buffered > 0 {
		timer := time.NewTimer(c.h.opts.WriteTimeout)
		defer timer.Stop()
		for c.buffered > 0 && !c.closed {
			c.mu.Unlock()
			select {
			case <-c.changed:
			case <-timer.C:
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
	bound := closeGrace
	if normal {
		bound = c.h.opts.WriteTimeout
	}
	c.armCutLocked(bound)
	c.mu.Unlock()
	c.signal()
	err := c.sess.Close(uint32(code), closeReason(code, reason))
	c.handedOver()
	if err != nil && !errors.Is(err, sockjs.ErrSessionNotOpen) {
		return fmt.Errorf("sockjs: failed to close: %w", err)
	}
	return nil
}

// CloseNow drops the session: the client gets c[3000,"dropped"] when it
// can still read one (within closeGrace), and reconnects; a WebSocket is
// closed right after. After Close, it bounds what is left of Close's
// hand-over by closeGrace instead. It never waits: a write blocked on the
// network fails within closeGrace, a write waiting for buffer space at once.
func (c *conn) CloseNow() error {
	c.mu.Lock()
	if c.final {
		if !c.handed {
			c.armCutLocked(closeGrace)
		}
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	c.drop(StatusDropped, "dropped", false)
	return nil
}

// drop closes the session with code and reason without waiting for anything
// written before, bounded by closeGrace. With wait it returns when the close
// frame has been handed over (or cut); otherwise at once.
func (c *conn) drop(code int, reason string, wait bool) {
	c.mu.Lock()
	if c.final {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.final = true
	c.armCutLocked(closeGrace)
	c.closers.Add(1)
	c.mu.Unlock()
	c.signal()

	closeSession := func() {
		defer c.closers.Done()
		_ = c.sess.Close(uint32(code), reason)
		c.handedOver()
		if c.ws != nil {
			_ = c.ws.conn.Close()
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

// armCutLocked makes sure the close under way ends within d: then cut
// aborts whatever it still waits for.
func (c *conn) armCutLocked(d time.Duration) {
	at := time.Now().Add(d)
	switch {
	case c.handed:
	case c.cutTimer == nil:
		c.cutAt = at
		c.cutTimer = time.AfterFunc(d, c.cut)
	case at.Before(c.cutAt):
		c.cutAt = at
		c.cutTimer.Reset(d)
	}
}

// handedOver records that the close frame is with sockjs-go.
func (c *conn) handedOver() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.handed = true
	if c.cutTimer != nil {
		c.cutTimer.Stop()
	}
}

// cut aborts every write blocked on the client: the responses under way
// get a write deadline in the past, and a WebSocket's connection is closed.
func (c *conn) cut() {
	c.mu.Lock()
	if c.handed {
		c.mu.Unlock()
		return
	}
	now := time.Now()
	for f := range c.writers {
		_ = http.NewResponseController(f.ResponseWriter).SetWriteDeadline(now)
	}
	c.mu.Unlock()
	if c.ws != nil {
		_ = c.ws.conn.Close()
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
