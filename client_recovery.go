package primus

import (
	"strconv"
	"strings"
	"time"

	"github.com/go-primus/primus/transport"
)

// Recovery on the Go client (see recovery.go for the protocol). When the
// server's spec says it offers recovery, the client asks for it on every
// connection, holds its writes until the server's greeting says whether the
// spark was resumed, counts the data messages it receives and confirms them
// now and then, and keeps every data message it writes until the server
// confirms it. On a resume, it writes again what the server has not
// received, then what waited offline; the application learns through
// OnResume whether anything was lost.

// ResumeEvent says how a reconnection went when the server offers
// recovery.
type ResumeEvent struct {
	// Recovered is true when the client got its spark back: every message
	// written on either side while it was away is delivered, once, in
	// order.
	Recovered bool
	// Reason is why it did not: ErrRecoveryExpired, ErrRecoveryOverflow or
	// ErrRecoveryUnknown.
	Reason error
}

// clientRecovery is the client's recovery state. The reading goroutine owns
// all but the fields marked as under Client.mu.
type clientRecovery struct {
	offered  bool           // the server offers recovery
	awaiting transport.Conn // the connection whose greeting is awaited
	greeting *time.Timer    // bounds the wait for it
	cred     string         // resumes the spark; empty before the first session
	resuming bool           // the last connection dialled asked to resume
	recv     uint64         // data messages received in this session
	recvAckd uint64         // the count the server was last told
	lost     bool           // a loss the plugins have not heard of yet
	lostErr  error
	// ungreeted: the last connection was lost before the greeting (a
	// failed reconnection attempt).
	ungreeted bool

	// Under Client.mu:
	unacked      [][]byte // data messages written in this session and not confirmed
	unackedBytes int64
	acked        uint64 // the number of the last confirmed one
}

// dialURL is the URL of the next connection: the client's own, plus what
// asks for recovery.
func (c *Client) dialURL() string {
	if !c.rs.offered {
		return c.url
	}
	u := *c.baseURL
	q := paramRecover + "=1"
	c.rs.resuming = c.rs.cred != ""
	if c.rs.resuming {
		q += "&" + paramResume + "=" + c.rs.cred + "&" + paramReceived + "=" + strconv.FormatUint(c.rs.recv, 10)
	}
	if u.RawQuery != "" {
		q = u.RawQuery + "&" + q
	}
	u.RawQuery = q
	return u.String()
}

// await starts waiting for conn's greeting.
func (r *clientRecovery) await(conn transport.Conn) {
	r.awaiting = conn
	r.greeting = time.AfterFunc(greetingTimeout, func() { _ = conn.CloseNow() })
}

// greeted ends the wait for a greeting.
func (r *clientRecovery) greeted() {
	r.awaiting = nil
	if r.greeting != nil {
		r.greeting.Stop()
		r.greeting = nil
	}
}

// sentLocked keeps a data message written until the server confirms it.
func (r *clientRecovery) sentLocked(b []byte) {
	r.unacked = append(r.unacked, b)
	r.unackedBytes += int64(cap(b))
}

// ackLocked forgets the messages the server has confirmed: n in all.
func (r *clientRecovery) ackLocked(n uint64) {
	for r.acked < n && len(r.unacked) > 0 {
		r.unackedBytes -= int64(cap(r.unacked[0]))
		r.unacked[0] = nil
		r.unacked = r.unacked[1:]
		r.acked++
	}
	if len(r.unacked) == 0 {
		r.unacked = nil
	}
}

// received counts a data message and confirms the count every ackEvery.
func (r *clientRecovery) received(c *Client, conn transport.Conn) {
	r.recv++
	if r.recv-r.recvAckd >= ackEvery {
		r.confirm(c, conn)
	}
}

// confirm tells the server how many data messages arrived, when that
// changed; after each pong, and every ackEvery messages.
func (r *clientRecovery) confirm(c *Client, conn transport.Conn) {
	if r.recv == r.recvAckd {
		return
	}
	r.sendAck(c, conn)
}

// sendAck tells the server how many data messages arrived. Sent at once
// after a greeting too: it shows the server that the client has the new
// credential, so that the one it used can be forgotten.
func (r *clientRecovery) sendAck(c *Client, conn transport.Conn) {
	r.recvAckd = r.recv
	if b, err := c.parser.Encode(ackPrefix + strconv.FormatUint(r.recv, 10)); err == nil {
		c.wmu.Lock()
		err = c.writeConn(conn, b)
		c.wmu.Unlock()
		if err != nil {
			_ = conn.CloseNow()
		}
	}
}

// session handles "primus::session::C::R": the connection is a new spark.
// What was written to the old one and not confirmed is dropped with it.
func (r *clientRecovery) session(c *Client, conn transport.Conn, s string) {
	if r.awaiting != conn {
		return
	}
	cred, reason, _ := strings.Cut(strings.TrimPrefix(s, sessionPrefix), "::")
	wasResuming := r.resuming
	r.greeted()
	r.cred, r.recv, r.recvAckd = cred, 0, 0
	c.mu.Lock()
	r.unacked, r.unackedBytes, r.acked = nil, 0, 0
	c.mu.Unlock()
	if r.lost {
		c.closeHooks(nil, true) // the loss the plugins had not heard of
	}
	r.sendAck(c, conn)
	if !c.activate(conn, true) {
		return
	}
	if wasResuming && c.opts.OnResume != nil {
		why := reasonError(reason)
		if why == nil {
			why = ErrRecoveryUnknown
		}
		c.call(func() { c.opts.OnResume(ResumeEvent{Reason: why}) })
	}
	if c.opts.OnOpen != nil {
		c.call(c.opts.OnOpen)
	}
}

// resumed handles "primus::resumed::M::C": the spark is back. The server
// has received M of the client's data messages; the others are written
// again by activate.
func (r *clientRecovery) resumed(c *Client, conn transport.Conn, s string) {
	if r.awaiting != conn {
		return
	}
	ms, cred, _ := strings.Cut(strings.TrimPrefix(s, resumedPrefix), "::")
	m, err := strconv.ParseUint(ms, 10, 64)
	if err != nil || cred == "" {
		_ = conn.CloseNow() // a broken greeting: try again
		return
	}
	r.greeted()
	r.cred = cred
	r.lost, r.lostErr = false, nil // nothing was lost after all
	c.mu.Lock()
	r.ackLocked(m)
	c.mu.Unlock()
	r.sendAck(c, conn)
	if !c.activate(conn, false) {
		return
	}
	if c.opts.OnResume != nil {
		c.call(func() { c.opts.OnResume(ResumeEvent{Recovered: true}) })
	}
	if c.opts.OnOpen != nil {
		c.call(c.opts.OnOpen)
	}
}

// give handles a server that said it offers recovery but greets without
// it: the client goes on without recovery.
func (r *clientRecovery) give(c *Client, conn transport.Conn) {
	r.greeted()
	r.offered = false
	c.mu.Lock()
	r.unacked, r.unackedBytes, r.acked = nil, 0, 0
	c.mu.Unlock()
	if r.lost {
		c.closeHooks(nil, true)
	}
	if !c.activate(conn, true) {
		return
	}
	if c.opts.OnOpen != nil {
		c.call(c.opts.OnOpen)
	}
}

// greetingTimeout bounds the wait for the server's recovery greeting; a
// connection that gets none is closed and the client reconnects.
const greetingTimeout = 30 * time.Second
