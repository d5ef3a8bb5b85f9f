package primus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/plugin"
	"github.com/go-primus/primus/transport"
	"github.com/go-primus/primus/transport/websocket"
)

// Backoff is the reconnect policy, Primus's by default: attempt 1 waits Min,
// attempt n waits a random time in [Min·Factor^(n-1), 2·Min·Factor^(n-1)),
// capped at Max.
//
// A reconnect attempt the server refuses for now — 429 Too Many Requests,
// or 502, 503 or 504 (a full server, a restarting one behind a proxy) —
// counts as a failed attempt, and the next waits at least the refusal's
// Retry-After (at most maxRetryAfter, 5 minutes). Any other refusal (401,
// 403, …: Authorize said no) ends the client with the
// *transport.HandshakeError.
type Backoff struct {
	// Min is the first wait. Zero value means 500 ms.
	Min time.Duration
	// Max caps each wait. Zero value means no cap.
	Max time.Duration
	// Factor multiplies the wait per attempt. Zero value means 2.
	Factor float64
	// Retries is the number of attempts before the client gives up. Zero
	// value means 10; negative means never reconnect. With recovery, a
	// connection the server closes before its greeting (it could not
	// answer for the spark yet) counts as a failed attempt.
	Retries int
}

// ReconnectEvent describes a scheduled reconnect attempt.
type ReconnectEvent struct {
	Attempt int           // 1 for the first attempt after a loss
	Retries int           // the attempts allowed in all
	Wait    time.Duration // the time before this attempt
	Cause   error         // why the connection was lost, or the last attempt failed
}

// ClientOptions configure a Client. A nil *ClientOptions means all
// defaults. Handlers are set here, so that none misses a message.
type ClientOptions struct {
	// Dialer opens connections. Zero value means the WebSocket dialer.
	Dialer transport.Dialer
	// Parser must match the server's. Zero value means parser.JSON.
	Parser parser.Parser
	// Header is sent with every handshake (Authorization, cookies…).
	Header http.Header
	// HTTPClient is used for handshakes and the spec request. Zero value
	// means http.DefaultClient.
	HTTPClient *http.Client
	// PingTimeout is how long the client waits for a ping before it treats
	// the server as gone and reconnects. Zero value means 1.5 × the
	// server's ping interval, read from <pathname>/spec when the client is
	// built (45 s if the spec cannot be read); negative disables it.
	PingTimeout time.Duration
	// Reconnect is the back-off policy.
	Reconnect Backoff
	// ConnectTimeout bounds each reconnect attempt. Zero value means 30 s.
	ConnectTimeout time.Duration
	// WriteTimeout bounds each write to the transport. Zero value means 10 s.
	WriteTimeout time.Duration
	// QueueSize bounds the writes kept while offline, in messages; a write
	// over it returns ErrQueueFull. Zero value means 4096.
	QueueSize int
	// QueueBytes bounds the memory the writes kept while offline hold
	// (their buffers' capacity); a write over it returns ErrQueueFull. A
	// single write larger than the bound is still kept by an empty queue.
	// Zero value means 16 MiB.
	QueueBytes int64
	// MaxMessageSize is the largest message accepted from the server.
	// Zero value means 16 MiB.
	MaxMessageSize int64
	// Plugins are set up in order when the client is built.
	Plugins []plugin.Plugin
	// Logger receives diagnostics. Zero value means silent.
	Logger *slog.Logger

	// OnOpen runs each time a connection opens (reconnections included),
	// after the offline queue has been flushed.
	OnOpen func()
	// OnData runs for each data message, in order, in the reading
	// goroutine.
	OnData func(*Message)
	// OnHeartbeat runs for each ping from the server, after the pong has
	// been written.
	OnHeartbeat func()
	// OnReconnect runs when a reconnect attempt is scheduled.
	OnReconnect func(ReconnectEvent)
	// OnError runs for errors that do not end the client (a message that
	// failed to decode, a lost connection).
	OnError func(error)
	// OnEnd runs once when the client has ended for good: nil after Close
	// or "primus::server::close", otherwise the reason (ErrReconnectFailed,
	// a *transport.HandshakeError for a refusal, a *PanicError…).
	OnEnd func(error)

	// OnResume runs after each reconnection when the server offers
	// recovery (Options.Recovery), before OnOpen: Recovered says whether the
	// client got its spark back with nothing lost in either direction;
	// when it did not (Reason: ErrRecoveryExpired, ErrRecoveryOverflow,
	// ErrRecoveryUnknown), the connection is a new spark and the
	// application should refetch the state it keeps from the server.
	OnResume func(ResumeEvent)

	// OnPanic runs when one of the client's handlers or a plugin's hook or
	// callback panics. The panic is recovered and logged at error level with
	// its stack, passed here, and the client ends with the *PanicError (its
	// connection closed with status 1011). Zero value means only the log.
	OnPanic func(*PanicError)
	// CrashOnPanic makes such a panic crash the process instead, as an
	// unrecovered panic does in Go.
	CrashOnPanic bool
}

// Client errors.
var (
	// ErrQueueFull is returned by Write when the offline queue is full.
	ErrQueueFull = errors.New("primus: offline queue full")
	// ErrReconnectFailed ends a client whose reconnect attempts all failed.
	ErrReconnectFailed = errors.New("primus: unable to recover: reconnect attempts exhausted")
)

// Client is a Go client for a primus (or Node Primus) server. It reconnects
// with back-off, answers heartbeats, and queues writes made while offline.
// All methods are safe for concurrent use.
type Client struct {
	url         string
	baseURL     *url.URL
	serverMax   int64 // the largest message the server takes (its spec); 0: unknown
	dialer      transport.Dialer
	parser      parser.Parser
	frameType   transport.MessageType
	dialOpts    transport.DialOptions
	pingTimeout time.Duration
	backoff     Backoff
	connectTO   time.Duration
	writeTO     time.Duration
	queueSize   int
	queueBytes  int64
	log         *slog.Logger
	opts        ClientOptions
	hooks       []plugin.ClientHooks

	wmu sync.Mutex // serialises writes and the flush of the queue

	mu        sync.Mutex
	conn      transport.Conn
	open      bool
	ended     bool
	endErr    error
	queue     []outMsg // writes waiting for a connection
	queued    int64    // what queue holds, in bytes of capacity
	idWaiters []chan string
	closed    chan struct{} // closed when the client ends
	closedCtx context.Context
	cancelAll context.CancelFunc
	done      chan struct{} // closed when every goroutine has finished
	wg        sync.WaitGroup
	// serveGoroutine is the id of the goroutine that runs the connection
	// and most handlers.
	serveGoroutine atomic.Int64
	endOnce        sync.Once
	pingTimer      *time.Timer
	serverClose    bool
	// failing is a connection closed for a protocol error; the frames it
	// still delivers are dropped. Only the reading goroutine uses it.
	failing transport.Conn

	rs clientRecovery // client_recovery.go
}

// outMsg is a write waiting for a connection.
type outMsg struct {
	b   []byte
	ctl bool // a control message: not counted by recovery
}

// Dial connects to a server. rawURL is the server's address with its
// pathname and the connection's query, such as
// "http://127.0.0.1:8080/primus?token=abc" (ws:// and wss:// work too; an
// empty path means "/primus"). Dial returns once the first connection is
// open, or with the error that prevented it: a refusal wraps a
// *transport.HandshakeError carrying the HTTP status and body.
func Dial(ctx context.Context, rawURL string, opts *ClientOptions) (*Client, error) {
	var o ClientOptions
	if opts != nil {
		o = *opts
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("primus: bad url: %w", err)
	}
	switch u.Scheme {
	case "http", "https", "ws", "wss":
	default:
		return nil, fmt.Errorf("primus: bad url %q: scheme must be http, https, ws or wss", rawURL)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = defaultPathname
	}
	c := &Client{
		url:         u.String(),
		baseURL:     u,
		dialer:      o.Dialer,
		parser:      o.Parser,
		pingTimeout: o.PingTimeout,
		backoff:     o.Reconnect,
		connectTO:   o.ConnectTimeout,
		writeTO:     o.WriteTimeout,
		queueSize:   o.QueueSize,
		queueBytes:  o.QueueBytes,
		log:         o.Logger,
		opts:        o,
		closed:      make(chan struct{}),
		done:        make(chan struct{}),
	}
	if c.dialer == nil {
		c.dialer = websocket.New()
	}
	if c.parser == nil {
		c.parser = parser.JSON
	}
	c.closedCtx, c.cancelAll = context.WithCancel(context.Background())
	c.frameType = transport.Text
	if c.parser.Binary() {
		c.frameType = transport.Binary
	}
	if c.backoff.Min <= 0 {
		c.backoff.Min = 500 * time.Millisecond
	}
	if c.backoff.Factor <= 0 {
		c.backoff.Factor = 2
	}
	if c.backoff.Retries == 0 {
		c.backoff.Retries = 10
	}
	if c.connectTO <= 0 {
		c.connectTO = 30 * time.Second
	}
	if c.writeTO <= 0 {
		c.writeTO = 10 * time.Second
	}
	if c.queueSize <= 0 {
		c.queueSize = 4096
	}
	if c.queueBytes <= 0 {
		c.queueBytes = 16 << 20
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = 16 << 20
	}
	c.dialOpts = transport.DialOptions{Header: o.Header, HTTPClient: o.HTTPClient, MaxMessageSize: o.MaxMessageSize}

	seen := map[string]bool{}
	host := &clientHost{c: c}
	for _, p := range o.Plugins {
		if p == nil || p.Name() == "" {
			return nil, errors.New("primus: nil or unnamed plugin")
		}
		if seen[p.Name()] {
			return nil, fmt.Errorf("primus: two plugins named %q", p.Name())
		}
		seen[p.Name()] = true
		if cp, ok := p.(plugin.ClientPlugin); ok {
			if err := cp.SetupClient(host); err != nil {
				return nil, fmt.Errorf("primus: failed to set up plugin %q: %w", p.Name(), err)
			}
		}
	}

	sp, err := fetchSpec(ctx, o.HTTPClient, u)
	if err != nil {
		c.log.Warn("primus: could not read the server's spec; using a 45s ping timeout and no recovery", "error", err)
	}
	c.rs.offered = err == nil && sp.recovery > 0
	c.serverMax = sp.maxMessage
	if c.pingTimeout == 0 {
		c.pingTimeout = 45 * time.Second
		if err == nil {
			if iv := sp.pingInterval; iv <= 0 {
				c.pingTimeout = -1
			} else {
				c.pingTimeout = iv + (iv+1)/2
			}
		}
	}

	conn, err := c.dialer.Dial(ctx, c.dialURL(), c.dialOpts)
	if err != nil {
		c.cancelAll()
		return nil, fmt.Errorf("primus: failed to connect: %w", err)
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.serve(conn)
	}()
	go func() {
		c.wg.Wait()
		close(c.done)
	}()
	return c, nil
}

// spec is what the client reads of <pathname>/spec.
type spec struct {
	pingInterval time.Duration // negative: heartbeats off
	recovery     time.Duration // the recovery window; 0: off
	maxMessage   int64         // the largest message the server takes; 0: unknown
}

// fetchSpec reads <pathname>/spec.
func fetchSpec(ctx context.Context, hc *http.Client, u *url.URL) (spec, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	su := *u
	switch su.Scheme {
	case "ws":
		su.Scheme = "http"
	case "wss":
		su.Scheme = "https"
	}
	su.Path = strings.TrimSuffix(su.Path, "/") + "/spec"
	su.RawQuery = ""
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, su.String(), nil)
	if err != nil {
		return spec{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return spec{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return spec{}, fmt.Errorf("primus: spec answered HTTP %d", resp.StatusCode)
	}
	var raw struct {
		PingInterval json.RawMessage `json:"pingInterval"`
		Recovery     float64         `json:"recovery"`
		MaxMessage   int64           `json:"maxMessageSize"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&raw); err != nil {
		return spec{}, err
	}
	sp := spec{recovery: time.Duration(raw.Recovery * float64(time.Millisecond)), maxMessage: raw.MaxMessage}
	if string(raw.PingInterval) == "false" {
		sp.pingInterval = -1
		return sp, nil
	}
	ms, err := strconv.ParseFloat(string(raw.PingInterval), 64)
	if err != nil {
		return spec{}, fmt.Errorf("primus: bad pingInterval in spec: %w", err)
	}
	sp.pingInterval = time.Duration(ms * float64(time.Millisecond))
	return sp, nil
}

// serve runs connections until the client ends: it opens conn, reads it
// until it is lost, and reconnects.
func (c *Client) serve(conn transport.Conn) {
	c.serveGoroutine.Store(goroutineID())
	next := 1 // the number of the next reconnection attempt
	for conn != nil {
		cause := c.runConn(conn)
		if cause == nil {
			return
		}
		if !c.rs.ungreeted {
			next = 1
		}
		// A connection lost before the server's recovery greeting was a
		// failed attempt: the back-off goes on from there (a server that
		// says "try again" does not get a tight loop of reconnections).
		conn, next = c.reconnect(cause, next)
	}
	// The client ended while offline (Close, a refusal, or reconnect
	// attempts exhausted): the plugins last heard that it would reconnect.
	c.rs.lost = false
	c.closeHooks(c.Err(), false)
}

// runConn flushes the queue on conn, reads it until it ends, and returns
// nil when the client has ended for good, or the cause of the loss. With
// recovery, the connection is activated when the server's first message
// says whether it resumed the spark (client_recovery.go).
func (c *Client) runConn(conn transport.Conn) error {
	if c.rs.offered {
		c.rs.await(conn)
	} else {
		if !c.activate(conn, true) {
			_ = conn.Close(transport.StatusNormalClosure, "")
			return nil
		}
		if c.opts.OnOpen != nil {
			c.call(c.opts.OnOpen)
		}
	}
	var readErr error
	for {
		typ, data, err := conn.Read(context.Background())
		if err != nil {
			readErr = err
			break
		}
		c.handle(conn, typ, data)
	}
	c.failing = nil
	awaited := c.rs.awaiting == conn
	c.rs.ungreeted = awaited
	c.rs.greeted()
	c.mu.Lock()
	c.open = false
	c.conn = nil
	if c.pingTimer != nil {
		c.pingTimer.Stop()
		c.pingTimer = nil
	}
	ended, serverClose := c.ended, c.serverClose
	c.mu.Unlock()
	_ = conn.CloseNow()
	reconnecting := !ended && !serverClose && c.backoff.Retries > 0
	if c.rs.offered && reconnecting {
		// The plugins hear of the loss only if the spark does not come
		// back: on a resume nothing was lost.
		if !awaited {
			c.rs.lost, c.rs.lostErr = true, readErr
		}
	} else {
		c.closeHooks(readErr, reconnecting)
	}
	switch {
	case ended:
		return nil
	case serverClose:
		c.end(nil)
		return nil
	case c.backoff.Retries < 0:
		c.end(fmt.Errorf("primus: connection lost: %w", readErr))
		return nil
	}
	c.reportError(fmt.Errorf("primus: connection lost: %w", readErr))
	return readErr
}

// closeHooks runs the plugins' Close hooks, and any that a resume held back.
func (c *Client) closeHooks(reason error, reconnecting bool) {
	if c.rs.lost {
		c.rs.lost = false
		if reconnecting {
			reason = c.rs.lostErr // the loss they had not heard of
		}
	}
	for _, h := range c.hooks {
		if h.Close != nil {
			c.call(func() { h.Close(c, reason, reconnecting) })
		}
	}
}

// activate makes conn the current connection, runs the plugins' Open hooks
// (when open: a new spark; a resumed one keeps its state and gets the
// Resume hooks) and flushes what waits onto it before any new write, so
// that order is kept: with recovery, the messages the resumed spark has not
// received first, then the offline queue.
func (c *Client) activate(conn transport.Conn, open bool) bool {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return false
	}
	c.conn = conn
	c.serverClose = false
	c.mu.Unlock()
	// What Open hooks write (a multiplex resubscription) goes out before the
	// writes queued while offline, which may depend on it. Writes made
	// meanwhile through Write join the queue.
	ow := &openWriter{c: c, conn: conn}
	for _, h := range c.hooks {
		if open && h.Open != nil {
			c.call(func() { h.Open(ow) })
		}
		if !open && h.Resume != nil {
			c.call(func() { h.Resume(ow) })
		}
	}
	ow.done.Store(true)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	resend := c.rs.unacked // with recovery: written before, not received
	queue := c.queue
	c.queue, c.queued = nil, 0
	if len(c.idWaiters) > 0 {
		// An ID asked on a lost connection may never have been answered:
		// ask again (a second answer finds no one waiting).
		if b, err := c.parser.Encode(idPrefix); err == nil {
			queue = append([]outMsg{{b: b, ctl: true}}, queue...)
		}
	}
	c.mu.Unlock()
	for _, b := range resend {
		if err := c.writeConn(conn, b); err != nil {
			c.mu.Lock()
			if !c.ended {
				c.requeueLocked(queue)
			}
			c.mu.Unlock()
			_ = conn.CloseNow() // the read loop sees it and reconnects
			return true
		}
	}
	for i, m := range queue {
		if !m.ctl && c.rs.offered {
			c.mu.Lock()
			c.rs.sentLocked(m.b)
			c.mu.Unlock()
		}
		if err := c.writeConn(conn, m.b); err != nil {
			c.mu.Lock()
			if !c.ended {
				if m.ctl || !c.rs.offered {
					c.requeueLocked(queue[i:len(queue):len(queue)])
				} else {
					c.requeueLocked(queue[i+1 : len(queue) : len(queue)]) // m is unacked: resent on a resume
				}
			}
			c.mu.Unlock()
			// Not open: new writes join the queue behind the ones put
			// back, instead of going to the dead connection (and, with
			// recovery, into the unconfirmed ones ahead of them).
			_ = conn.CloseNow() // the read loop sees it and reconnects
			return true
		}
	}
	c.mu.Lock()
	c.open = true
	c.resetPingTimerLocked(conn)
	c.mu.Unlock()
	return true
}

// requeueLocked puts writes back at the front of the offline queue.
func (c *Client) requeueLocked(ms []outMsg) {
	c.queue = append(ms, c.queue...)
	for _, m := range ms {
		c.queued += int64(cap(m.b))
	}
}

func (c *Client) writeConn(conn transport.Conn, b []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.writeTO)
	defer cancel()
	return conn.Write(ctx, c.frameType, b)
}

func (c *Client) resetPingTimerLocked(conn transport.Conn) {
	if c.pingTimeout <= 0 {
		return
	}
	if c.pingTimer != nil {
		c.pingTimer.Stop()
	}
	c.pingTimer = time.AfterFunc(c.pingTimeout, func() {
		c.log.Debug("primus: no ping from the server; reconnecting")
		c.reportError(ErrHeartbeatTimeout)
		_ = conn.CloseNow()
	})
}

// reconnect waits and dials with back-off, from attempt number from; it
// returns the new connection and the number of the attempt after it, or nil
// when the client has ended.
func (c *Client) reconnect(cause error, from int) (transport.Conn, int) {
	var floor time.Duration // the last refusal's Retry-After
	for attempt := from; attempt <= c.backoff.Retries; attempt++ {
		wait := c.backoff.Min
		if attempt > 1 {
			base := float64(c.backoff.Min) * math.Pow(c.backoff.Factor, float64(attempt-1))
			wait = time.Duration(math.Round((rand.Float64() + 1) * base))
		}
		if c.backoff.Max > 0 && wait > c.backoff.Max {
			wait = c.backoff.Max
		}
		wait, floor = max(wait, floor), 0
		if c.opts.OnReconnect != nil {
			ev := ReconnectEvent{Attempt: attempt, Retries: c.backoff.Retries, Wait: wait, Cause: cause}
			c.call(func() { c.opts.OnReconnect(ev) })
		}
		t := time.NewTimer(wait)
		select {
		case <-c.closed:
			t.Stop()
			return nil, 0
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(c.closedCtx, c.connectTO)
		conn, err := c.dialer.Dial(ctx, c.dialURL(), c.dialOpts)
		cancel()
		if err == nil {
			return conn, attempt + 1
		}
		var he *transport.HandshakeError
		if errors.As(err, &he) {
			if !refusedForNow(he.StatusCode) {
				c.end(fmt.Errorf("primus: reconnect refused: %w", err))
				return nil, 0
			}
			floor = retryAfter(he.Header)
		}
		select {
		case <-c.closed:
			return nil, 0
		default:
		}
		c.log.Debug("primus: reconnect attempt failed", "attempt", attempt, "error", err)
		cause = err
	}
	c.end(fmt.Errorf("%w: %w", ErrReconnectFailed, cause))
	return nil, 0
}

// refusedForNow reports whether a handshake refused with status may succeed
// later: a limit, a full server, a proxy whose upstream is restarting.
func refusedForNow(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// maxRetryAfter caps the wait a refusal's Retry-After asks for.
const maxRetryAfter = 5 * time.Minute

// retryAfter is the wait a refusal's Retry-After header asks for, in
// seconds or as an HTTP date; 0 without one.
func retryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.Atoi(v); err == nil {
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = time.Until(t)
	}
	return min(max(d, 0), maxRetryAfter)
}

// handle processes one incoming frame.
func (c *Client) handle(conn transport.Conn, typ transport.MessageType, data []byte) {
	if conn == c.failing {
		return
	}
	defer c.recoverPanic()
	m, err := incoming(c.parser, typ, data, func(s string) bool { return c.control(conn, s) })
	if c.rs.awaiting == conn {
		// The first message was not the recovery greeting: this server
		// does not resume after all.
		c.rs.give(c, conn)
	}
	if c.rs.offered && (m != nil || (err != nil && errors.Is(err, parser.ErrDecode))) {
		c.rs.received(c, conn)
	}
	if err != nil {
		code := 0
		switch {
		case errors.Is(err, ErrInvalidUTF8):
			code = transport.StatusInvalidPayload
		case errors.Is(err, ErrUnsupportedData):
			code = transport.StatusUnsupportedData
		}
		c.reportError(err)
		if code != 0 {
			// The server broke the protocol: drop the connection, as a
			// browser does, and reconnect.
			c.failing = conn
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				closeConn(conn, code, "invalid message")
			}()
			return
		}
	}
	if m == nil {
		return
	}
	for _, h := range c.hooks {
		if h.Incoming == nil {
			continue
		}
		pass, err := h.Incoming(c, m)
		if err != nil {
			c.reportError(fmt.Errorf("primus: incoming transform: %w", err))
			return
		}
		if !pass {
			return
		}
	}
	if c.opts.OnData != nil {
		c.opts.OnData(m)
	}
}

func (c *Client) control(conn transport.Conn, s string) bool {
	switch {
	case strings.HasPrefix(s, pingPrefix):
		c.mu.Lock()
		if c.conn == conn {
			c.resetPingTimerLocked(conn)
		}
		c.mu.Unlock()
		if b, err := c.parser.Encode(pongPrefix + s[len(pingPrefix):]); err == nil {
			c.wmu.Lock()
			err = c.writeConn(conn, b)
			c.wmu.Unlock()
			if err != nil {
				_ = conn.CloseNow()
			} else {
				if c.rs.offered {
					c.rs.confirm(c, conn)
				}
				if c.opts.OnHeartbeat != nil {
					c.call(c.opts.OnHeartbeat)
				}
			}
		}
		return true
	case strings.HasPrefix(s, idPrefix):
		id := s[len(idPrefix):]
		c.mu.Lock()
		waiters := c.idWaiters
		c.idWaiters = nil
		c.mu.Unlock()
		for _, w := range waiters {
			w <- id
		}
		return true
	case s == serverClose:
		c.mu.Lock()
		c.serverClose = true
		c.mu.Unlock()
		return true
	case c.rs.offered && strings.HasPrefix(s, sessionPrefix):
		c.rs.session(c, conn, s)
		return true
	case c.rs.offered && strings.HasPrefix(s, resumedPrefix):
		c.rs.resumed(c, conn, s)
		return true
	case c.rs.offered && strings.HasPrefix(s, ackPrefix):
		if n, ok := parseAck(s); ok {
			c.mu.Lock()
			c.rs.ackLocked(n)
			c.mu.Unlock()
		}
		return true
	case strings.HasPrefix(s, "primus::server::"):
		return true
	}
	return false
}

// Write encodes v and sends it, or queues it while the client is offline
// (flushed in order when a connection opens). It returns ErrClosed after
// the client ended, ErrQueueFull when the offline queue is full, and
// ErrMessageTooBig for a message over the server's MaxMessageSize (read
// from its spec). A write that fails on a dying connection is queued again
// for the next one.
func (c *Client) Write(v any) error {
	b, pass, err := c.encodeOutgoing(v)
	if err != nil || !pass {
		return err
	}
	return c.writeEncoded(b)
}

// encodeOutgoing runs the outgoing hooks on v and encodes the result; pass
// is false when a hook dropped it.
func (c *Client) encodeOutgoing(v any) (b []byte, pass bool, err error) {
	for _, h := range c.hooks {
		if h.Outgoing == nil {
			continue
		}
		out, pass, err := h.Outgoing(c, v)
		if err != nil {
			return nil, false, fmt.Errorf("primus: outgoing transform: %w", err)
		}
		if !pass {
			return nil, false, nil
		}
		v = out
	}
	if r, ok := v.(Raw); ok {
		return r, true, nil
	}
	if b, err = c.parser.Encode(v); err != nil {
		return nil, false, fmt.Errorf("primus: failed to encode outgoing data: %w", err)
	}
	return b, true, nil
}

// openWriter is the plugin.Client that Open hooks get: while the hooks run,
// its writes go to the new connection at once, ahead of the offline queue;
// afterwards it is the client itself.
type openWriter struct {
	c    *Client
	conn transport.Conn
	done atomic.Bool
}

func (w *openWriter) Write(v any) error {
	if w.done.Load() {
		return w.c.Write(v)
	}
	b, pass, err := w.c.encodeOutgoing(v)
	if err != nil || !pass {
		return err
	}
	w.c.wmu.Lock()
	defer w.c.wmu.Unlock()
	if w.c.rs.offered {
		w.c.mu.Lock()
		w.c.rs.sentLocked(b)
		w.c.mu.Unlock()
	}
	if err := w.c.writeConn(w.conn, b); err != nil {
		_ = w.conn.CloseNow() // the read loop sees it and reconnects
		return fmt.Errorf("primus: failed to write: %w", err)
	}
	return nil
}

func (c *Client) writeEncoded(b []byte) error { return c.writeMsg(outMsg{b: b}) }

// writeMsg writes m on the current connection, or queues it while offline.
// With recovery, a data message written is kept until the server confirms
// it, so that it is written again to a resumed spark that did not get it.
func (c *Client) writeMsg(m outMsg) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.serverMax > 0 && int64(len(m.b)) > c.serverMax {
		c.mu.Unlock()
		// The server would close the connection on it, and a write that
		// failed is tried again: never send it.
		return fmt.Errorf("%w: %d bytes, the server takes %d", ErrMessageTooBig, len(m.b), c.serverMax)
	}
	n := int64(cap(m.b))
	held, heldBytes := len(c.queue)+len(c.rs.unacked), c.queued+c.rs.unackedBytes
	if !m.ctl && held > 0 && (held >= c.queueSize || heldBytes+n > c.queueBytes) {
		c.mu.Unlock()
		return ErrQueueFull
	}
	if !c.open {
		c.queue = append(c.queue, m)
		c.queued += n
		c.mu.Unlock()
		return nil
	}
	conn := c.conn
	data := !m.ctl && c.rs.offered
	if data {
		c.rs.sentLocked(m.b)
	}
	c.mu.Unlock()
	if err := c.writeConn(conn, m.b); err != nil {
		c.mu.Lock()
		c.open = false
		if !c.ended && !data {
			c.queue = append([]outMsg{m}, c.queue...)
			c.queued += n
		}
		c.mu.Unlock()
		_ = conn.CloseNow()
	}
	return nil
}

// ID asks the server for this connection's spark id ("primus::id::").
func (c *Client) ID(ctx context.Context) (string, error) {
	ch := make(chan string, 1)
	c.mu.Lock()
	c.idWaiters = append(c.idWaiters, ch)
	c.mu.Unlock()
	b, err := c.parser.Encode(idPrefix)
	if err == nil {
		err = c.writeMsg(outMsg{b: b, ctl: true})
	}
	if err != nil {
		return "", err
	}
	select {
	case id := <-ch:
		return id, nil
	case <-c.done:
		return "", ErrClosed
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// Done is closed when the client has ended and its goroutines have exited.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the client ended (nil while running, after Close and after
// an intentional end by the server).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endErr
}

// Close ends the client: it closes the connection without reconnecting,
// drops queued writes and waits for the client's goroutines to exit.
//
// Called from one of the client's own handlers (OnData, OnOpen, …), Close
// cannot wait for the goroutine it runs on: it ends the client and returns,
// and Done tells when the goroutines have exited.
func (c *Client) Close() error {
	c.end(nil)
	if goroutineID() == c.serveGoroutine.Load() {
		return nil
	}
	<-c.done
	return nil
}

// goroutineID returns the calling goroutine's id, read from its stack
// header ("goroutine 42 [running]:"). It is used only to keep Close from
// waiting for itself.
func goroutineID() int64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = b[len("goroutine "):]
	var id int64
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			break
		}
		id = id*10 + int64(ch-'0')
	}
	return id
}

// end marks the client ended once, with a reason.
func (c *Client) end(reason error) { c.endWith(reason, transport.StatusNormalClosure, "") }

// endWith marks the client ended once, with a reason, and closes its
// connection with a status.
func (c *Client) endWith(reason error, code int, text string) {
	first := false
	c.endOnce.Do(func() {
		first = true
		c.mu.Lock()
		c.ended = true
		c.open = false
		c.endErr = reason
		c.queue, c.queued = nil, 0
		c.rs.unacked, c.rs.unackedBytes = nil, 0
		conn := c.conn
		if c.pingTimer != nil {
			c.pingTimer.Stop()
			c.pingTimer = nil
		}
		c.mu.Unlock()
		close(c.closed)
		c.cancelAll()
		if conn != nil {
			// The reading goroutine is running (it clears conn when it
			// stops), so the wait group cannot be at zero here.
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				if code == transport.StatusNormalClosure {
					_ = conn.Close(code, text)
				} else {
					closeConn(conn, code, text)
				}
			}()
		}
	})
	// Outside the Once: an OnEnd that panics ends nothing more, and must
	// not wait for itself.
	if first && c.opts.OnEnd != nil {
		c.call(func() { c.opts.OnEnd(reason) })
	}
}

func (c *Client) reportError(err error) {
	c.log.Debug("primus: client error", "error", err)
	if c.opts.OnError != nil {
		c.call(func() { c.opts.OnError(err) })
	}
}

// recoverPanic is deferred around the client's handlers and hooks.
func (c *Client) recoverPanic() {
	if v := recover(); v != nil {
		c.HandlePanic(v, debug.Stack())
	}
}

// call runs user code under recovery.
func (c *Client) call(f func()) {
	defer c.recoverPanic()
	f()
}

// HandlePanic ends the client because one of its handlers, or a plugin's
// hook or callback, panicked: it logs the panic and its stack, runs
// ClientOptions.OnPanic, and ends the client with a *PanicError, closing
// its connection with status 1011. With ClientOptions.CrashOnPanic, it
// panics again instead.
func (c *Client) HandlePanic(v any, stack []byte) {
	pe := &PanicError{Value: v, Stack: stack}
	c.log.Error("primus: panic in a client handler; ending the client", "panic", fmt.Sprint(v), "stack", string(stack))
	if f := c.opts.OnPanic; f != nil {
		func() {
			defer func() {
				if v2 := recover(); v2 != nil {
					c.log.Error("primus: OnPanic panicked", "panic", fmt.Sprint(v2))
				}
			}()
			f(pe)
		}()
	}
	if c.opts.CrashOnPanic {
		panic(v)
	}
	c.endWith(pe, transport.StatusInternalError, "internal error")
}

var (
	_ plugin.Client       = (*Client)(nil)
	_ plugin.PanicHandler = (*Client)(nil)
)

type clientHost struct{ c *Client }

func (h *clientHost) Install(hooks plugin.ClientHooks) { h.c.hooks = append(h.c.hooks, hooks) }
func (h *clientHost) Parser() parser.Parser            { return h.c.parser }
func (h *clientHost) Logger() *slog.Logger             { return h.c.log }
func (h *clientHost) Client() plugin.Client            { return h.c }
