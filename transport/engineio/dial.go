package engineio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	ws "github.com/coder/websocket"

	"github.com/go-primus/primus/transport"
)

// handshake is the open packet's data.
type handshake struct {
	SID          string   `json:"sid"`
	Upgrades     []string `json:"upgrades"`
	PingInterval int64    `json:"pingInterval"`
	PingTimeout  int64    `json:"pingTimeout"`
	MaxPayload   int64    `json:"maxPayload"`
}

// watchdog is how long the client waits for the server's next ping, as
// engine.io-client does: the announced interval plus the timeout.
func (h *handshake) watchdog() time.Duration {
	return time.Duration(h.PingInterval+h.PingTimeout) * time.Millisecond
}

func parseOpen(p []byte) (*handshake, error) {
	pk, err := decodeText(p)
	if err != nil || pk.typ != typeOpen {
		return nil, fmt.Errorf("%w: the first packet is not an open packet: %q", ErrProtocol, short(p))
	}
	var hs handshake
	if err := json.Unmarshal(pk.data, &hs); err != nil || hs.SID == "" || hs.PingInterval <= 0 || hs.PingTimeout <= 0 {
		return nil, fmt.Errorf("%w: bad open packet %q", ErrProtocol, short(p))
	}
	return &hs, nil
}

func short(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// Dial opens an Engine.IO session to url (http, https, ws or wss; its path
// is the server's pathname, to which Engine.IO's trailing slash is added,
// and its query the connection's query) as Options.Dial says: directly over
// WebSocket (the default), or over HTTP long-polling. A refused handshake
// wraps a *transport.HandshakeError.
//
// The connection answers the server's pings and takes the server for gone
// when none comes within the announced pingInterval + pingTimeout. Text
// messages travel as "4" packets, binary ones as binary frames (polling:
// base64).
func (t *Transformer) Dial(ctx context.Context, rawURL string, opts transport.DialOptions) (transport.Conn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("engineio: failed to dial: %w", err)
	}
	base := *u
	base.Fragment = ""
	base.Path = strings.TrimSuffix(u.Path, "/") + "/"
	base.RawPath = ""
	switch u.Scheme {
	case "http", "https":
	case "ws":
		base.Scheme = "http"
	case "wss":
		base.Scheme = "https"
	default:
		return nil, fmt.Errorf("engineio: failed to dial %s: scheme must be http, https, ws or wss", rawURL)
	}
	q := base.Query()
	q.Set("EIO", "4")
	limit := opts.MaxMessageSize
	if limit <= 0 {
		limit = 1 << 20
	}
	if t.opts.Dial == DialPolling {
		q.Set("transport", "polling")
		base.RawQuery = q.Encode()
		return t.dialPolling(ctx, &base, opts, limit)
	}
	q.Set("transport", "websocket")
	base.RawQuery = q.Encode()
	base.Scheme = strings.Replace(base.Scheme, "http", "ws", 1)
	return t.dialWebSocket(ctx, base.String(), opts, limit)
}

func (t *Transformer) dialWebSocket(ctx context.Context, u string, opts transport.DialOptions, limit int64) (transport.Conn, error) {
	mode := ws.CompressionDisabled
	if opts.Compression {
		mode = ws.CompressionContextTakeover
	}
	c, resp, err := ws.Dial(ctx, u, &ws.DialOptions{
		HTTPClient:      opts.HTTPClient,
		HTTPHeader:      opts.Header,
		CompressionMode: mode,
	})
	if err != nil {
		if resp != nil && resp.StatusCode != 0 && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, fmt.Errorf("engineio: failed to dial %s: %w", u, handshakeError(resp))
		}
		return nil, fmt.Errorf("engineio: failed to dial %s: %w", u, err)
	}
	c.SetReadLimit(packetLimit(limit))
	_, b, err := c.Read(ctx)
	if err != nil {
		_ = c.CloseNow()
		return nil, fmt.Errorf("engineio: failed to open a session at %s: %w", u, err)
	}
	hs, err := parseOpen(b)
	if err != nil {
		_ = c.CloseNow()
		return nil, fmt.Errorf("engineio: failed to open a session at %s: %w", u, err)
	}
	cc := &clientWS{c: c, max: limit, writeTimeout: t.opts.WriteTimeout}
	cc.watch = time.AfterFunc(hs.watchdog(), cc.timedOut)
	cc.wait = hs.watchdog()
	return cc, nil
}

// packetLimit is the largest packet carrying a message of limit bytes.
func packetLimit(limit int64) int64 {
	if limit > math.MaxInt64/2 {
		return math.MaxInt64
	}
	return 1 + 4*((limit+2)/3)
}

// handshakeError reads the start of a refusal.
func handshakeError(resp *http.Response) *transport.HandshakeError {
	he := &transport.HandshakeError{StatusCode: resp.StatusCode, Header: resp.Header}
	if resp.Body != nil {
		he.Body, _ = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	}
	return he
}

// clientWS is a session over a WebSocket, from the client's side. Read is
// called from one goroutine at a time, and so is Write.
type clientWS struct {
	c            *ws.Conn
	max          int64
	writeTimeout time.Duration
	watch        *time.Timer // closes the connection when no ping came in time
	wait         time.Duration

	mu       sync.Mutex
	timedout bool
}

var _ transport.Conn = (*clientWS)(nil)

func (c *clientWS) timedOut() {
	c.mu.Lock()
	c.timedout = true
	c.mu.Unlock()
	_ = c.c.CloseNow()
}

func (c *clientWS) Read(ctx context.Context) (transport.MessageType, []byte, error) {
	for {
		typ, b, err := c.c.Read(ctx)
		if err != nil {
			c.mu.Lock()
			timedout := c.timedout
			c.mu.Unlock()
			switch {
			case timedout:
				return 0, nil, fmt.Errorf("engineio: failed to read: %w", ErrPingTimeout)
			case errors.Is(err, ws.ErrMessageTooBig):
				return 0, nil, fmt.Errorf("engineio: failed to read: %w: %w", transport.ErrMessageTooBig, err)
			}
			return 0, nil, fmt.Errorf("engineio: failed to read: %w: %w", ErrTransportClosed, err)
		}
		var p packet
		if typ == ws.MessageBinary {
			p = packet{typ: typeMessage, data: b, bin: true}
		} else if p, err = decodeText(b); err != nil {
			_ = c.c.Close(ws.StatusProtocolError, "")
			return 0, nil, fmt.Errorf("engineio: failed to read: %w: %w", ErrProtocol, err)
		}
		switch p.typ {
		case typeMessage:
			if int64(len(p.data)) > c.max {
				_ = c.c.Close(ws.StatusMessageTooBig, "")
				return 0, nil, fmt.Errorf("engineio: failed to read a message of %d bytes: %w", len(p.data), transport.ErrMessageTooBig)
			}
			if p.bin {
				return transport.Binary, p.data, nil
			}
			return transport.Text, p.data, nil
		case typePing:
			c.watch.Reset(c.wait)
			wctx, cancel := context.WithTimeout(context.Background(), c.writeTimeout)
			err := c.c.Write(wctx, ws.MessageText, []byte{typePong})
			cancel()
			if err != nil {
				_ = c.c.CloseNow()
				return 0, nil, fmt.Errorf("engineio: failed to answer a ping: %w", err)
			}
		case typeClose:
			_ = c.c.CloseNow()
			return 0, nil, fmt.Errorf("engineio: failed to read: %w: by the server", ErrClosed)
		}
	}
}

func (c *clientWS) Write(ctx context.Context, typ transport.MessageType, data []byte) error {
	if err := writePacket(ctx, c.c, false, packet{typ: typeMessage, data: data, bin: typ == transport.Binary}); err != nil {
		return fmt.Errorf("engineio: failed to write: %w", err)
	}
	return nil
}

func (c *clientWS) Close(code int, reason string) error {
	c.watch.Stop()
	return c.c.Close(ws.StatusCode(code), reason)
}

func (c *clientWS) CloseNow() error {
	c.watch.Stop()
	return c.c.CloseNow()
}

// dialPolling opens a session over HTTP long-polling: the handshake GET,
// then a goroutine that polls and one that sends.
func (t *Transformer) dialPolling(ctx context.Context, base *url.URL, opts transport.DialOptions, limit int64) (transport.Conn, error) {
	hc := opts.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("engineio: failed to dial: %w", err)
	}
	copyHeader(req.Header, opts.Header)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("engineio: failed to dial %s: %w", base, err)
	}
	if resp.StatusCode != http.StatusOK {
		err := handshakeError(resp)
		resp.Body.Close()
		return nil, fmt.Errorf("engineio: failed to dial %s: %w", base, err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("engineio: failed to read the handshake of %s: %w", base, err)
	}
	first, _, _ := bytes.Cut(body, []byte{separator})
	hs, err := parseOpen(first)
	if err != nil {
		return nil, fmt.Errorf("engineio: failed to open a session at %s: %w", base, err)
	}
	sess := *base
	q := sess.Query()
	q.Set("sid", hs.SID)
	sess.RawQuery = q.Encode()
	cctx, cancel := context.WithCancel(context.Background())
	c := &clientPolling{
		hc:         hc,
		url:        sess.String(),
		header:     opts.Header,
		max:        limit,
		maxPayload: hs.MaxPayload,
		bufBytes:   t.opts.SendBufferBytes,
		ctx:        cctx,
		cancel:     cancel,
		in:         make(chan inMessage),
		outWake:    make(chan struct{}, 1),
		outSpace:   make(chan struct{}, 1),
		sent:       make(chan struct{}),
	}
	if c.maxPayload <= 0 {
		c.maxPayload = 1 << 20
	}
	c.watch = time.AfterFunc(hs.watchdog(), func() { c.fail(ErrPingTimeout) })
	c.wait = hs.watchdog()
	c.wg.Add(2)
	go c.pollLoop()
	go c.sendLoop()
	return c, nil
}

func copyHeader(dst, src http.Header) {
	for k, v := range src {
		dst[k] = append([]string(nil), v...)
	}
}

// clientPolling is a session over HTTP long-polling, from the client's
// side: one goroutine polls and hands messages to Read one by one (so it
// polls again only once Read took them all), another POSTs what Write
// queued, in order, joined into payloads of at most the server's maxPayload.
type clientPolling struct {
	hc         *http.Client
	url        string
	header     http.Header
	max        int64
	maxPayload int64
	bufBytes   int64
	watch      *time.Timer
	wait       time.Duration

	ctx    context.Context // ends when the connection closes
	cancel context.CancelFunc
	wg     sync.WaitGroup
	in     chan inMessage

	mu       sync.Mutex
	err      error    // why the connection ended
	out      []packet // packets to send
	outBytes int64
	closing  bool          // Close: send out, then the close packet
	outWake  chan struct{} // the sender re-checks
	outSpace chan struct{} // a waiting Write re-checks
	sent     chan struct{} // closed when the close packet went out
}

var _ transport.Conn = (*clientPolling)(nil)

// fail ends the connection for err (the first reason wins).
func (c *clientPolling) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	c.watch.Stop()
	c.cancel()
}

func (c *clientPolling) reason() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		return ErrClosed
	}
	return c.err
}

func (c *clientPolling) do(method string, body []byte) ([]byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(c.ctx, method, c.url, r)
	if err != nil {
		return nil, err
	}
	copyHeader(req.Header, c.header)
	if body != nil {
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTransportClosed, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 2*packetLimit(c.max)+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTransportClosed, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s answered HTTP %d: %s", ErrTransportClosed, method, resp.StatusCode, short(b))
	}
	return b, nil
}

func (c *clientPolling) pollLoop() {
	defer c.wg.Done()
	for c.ctx.Err() == nil {
		payload, err := c.do(http.MethodGet, nil)
		if err != nil {
			c.fail(err)
			return
		}
		err = splitPayload(payload, func(p packet) bool {
			switch p.typ {
			case typeMessage:
				if int64(len(p.data)) > c.max {
					err = fmt.Errorf("engineio: a message of %d bytes: %w", len(p.data), transport.ErrMessageTooBig)
					return false
				}
				m := inMessage{typ: transport.Text, data: p.data}
				if p.bin {
					m.typ = transport.Binary
				}
				select {
				case c.in <- m:
				case <-c.ctx.Done():
					return false
				}
			case typePing:
				c.watch.Reset(c.wait)
				c.queue(packet{typ: typePong}, true)
			case typeClose:
				err = fmt.Errorf("%w: by the server", ErrClosed)
				return false
			}
			return true
		})
		if err != nil {
			c.fail(err)
			return
		}
	}
}

// queue adds p to what the sender sends (a pong ahead of the messages).
func (c *clientPolling) queue(p packet, first bool) {
	c.mu.Lock()
	if first {
		c.out = append([]packet{p}, c.out...)
	} else {
		c.out = append(c.out, p)
	}
	c.outBytes += int64(len(p.data)) + 1
	c.mu.Unlock()
	signal(c.outWake)
}

func (c *clientPolling) sendLoop() {
	defer c.wg.Done()
	for {
		c.mu.Lock()
		batch, size := c.out, int64(1)
		// engine.io-client's rule: as many packets as fit in maxPayload,
		// and at least one.
		for i, p := range c.out {
			size += int64(encodedLen(p)) + 1
			if i > 0 && size > c.maxPayload {
				batch = c.out[:i]
				break
			}
		}
		closing := c.closing && len(batch) == len(c.out)
		c.out = c.out[len(batch):]
		if len(c.out) == 0 {
			c.out = nil
		}
		for _, p := range batch {
			c.outBytes -= int64(len(p.data)) + 1
		}
		c.mu.Unlock()
		if len(batch) > 0 {
			signal(c.outSpace)
		}
		if closing {
			batch = append(batch, packet{typ: typeClose})
		}
		if len(batch) > 0 {
			if _, err := c.do(http.MethodPost, encodePayload(batch)); err != nil {
				c.fail(err)
				return
			}
			if closing {
				close(c.sent)
				c.fail(ErrClosed)
				return
			}
			continue
		}
		select {
		case <-c.outWake:
		case <-c.ctx.Done():
			return
		}
	}
}

func (c *clientPolling) Read(ctx context.Context) (transport.MessageType, []byte, error) {
	select {
	case m := <-c.in:
		return m.typ, m.data, nil
	case <-c.ctx.Done():
		return 0, nil, fmt.Errorf("engineio: failed to read: %w", c.reason())
	case <-ctx.Done():
		return 0, nil, fmt.Errorf("engineio: failed to read: %w", ctx.Err())
	}
}

func (c *clientPolling) Write(ctx context.Context, typ transport.MessageType, data []byte) error {
	p := packet{typ: typeMessage, data: bytes.Clone(data), bin: typ == transport.Binary}
	if p.data == nil {
		p.data = []byte{}
	}
	n := int64(len(p.data)) + 1
	c.mu.Lock()
	for c.outBytes > 0 && c.outBytes+n > c.bufBytes && !c.closing {
		c.mu.Unlock()
		select {
		case <-c.outSpace:
		case <-c.ctx.Done():
			return fmt.Errorf("engineio: failed to write: %w", c.reason())
		case <-ctx.Done():
			return fmt.Errorf("engineio: failed to write: %w", ctx.Err())
		}
		c.mu.Lock()
	}
	if c.closing || c.ctx.Err() != nil {
		c.mu.Unlock()
		return fmt.Errorf("engineio: failed to write: %w", c.reason())
	}
	c.out = append(c.out, p)
	c.outBytes += n
	c.mu.Unlock()
	signal(c.outWake)
	return nil
}

// Close sends what Write queued and then the close packet, waiting a
// bounded time for it, and ends the connection. The close packet has no
// code or reason.
func (c *clientPolling) Close(int, string) error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return c.CloseNow()
	}
	c.closing = true
	c.mu.Unlock()
	signal(c.outWake)
	signal(c.outSpace)
	timer := time.NewTimer(defaultWriteTimeout)
	defer timer.Stop()
	select {
	case <-c.sent:
	case <-c.ctx.Done():
	case <-timer.C:
	}
	return c.CloseNow()
}

// CloseNow ends the connection at once and waits for its goroutines.
func (c *clientPolling) CloseNow() error {
	c.fail(ErrClosed)
	c.wg.Wait()
	return nil
}
