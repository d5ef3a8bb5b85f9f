package engineio

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	ws "github.com/coder/websocket"

	"github.com/go-primus/primus/transport"
)

// Handler returns the handler for every request under the pathname, as
// Primus mounts engine.io there: the stock client requests
// "<pathname>/?EIO=4&transport=polling&…", and the path below the pathname
// does not matter, only the query does. It serves Engine.IO v4's handshake
// (polling or WebSocket), long-polling GETs and POSTs for a sid, and the
// upgrade of a polling session to WebSocket, and refuses the rest with
// engine.io's error answers.
//
// Before anything else the handler refuses browser origins that opts does
// not allow (403), and echoes the allowed ones in CORS headers with
// credentials allowed, answering preflights itself.
func (t *Transformer) Handler(opts transport.Options, accept transport.AcceptFunc) (http.Handler, error) {
	if accept == nil {
		return nil, errors.New("engineio: nil accept function")
	}
	if t.opts.DisableWebSocket && t.opts.DisablePolling {
		return nil, errors.New("engineio: both transports are disabled")
	}
	if opts.NewID == nil {
		return nil, errors.New("engineio: transport options without NewID")
	}
	h := &handler{
		opts:     t.opts,
		topts:    opts,
		accept:   accept,
		sessions: make(map[string]*session),
	}
	h.maxMessage = opts.MaxMessageSize
	if h.maxMessage <= 0 || h.maxMessage > math.MaxInt64/4 {
		h.maxMessage = math.MaxInt64 / 4
	}
	// The largest packet: a message of the maximum size, as base64 when it
	// is binary ("b" + base64), or as text ("4" + text, shorter).
	h.frameLimit = 1 + int64(base64.StdEncoding.EncodedLen(int(min(h.maxMessage, math.MaxInt32))))
	if h.maxMessage > math.MaxInt32 {
		h.frameLimit = 1 + 4*((h.maxMessage+2)/3)
	}
	// A POST body carries as many packets as fit in maxPayload bytes of
	// data as engine.io-client counts them (a single larger packet goes
	// alone); base64 and the separators can double what it counts for tiny
	// binary messages.
	h.bodyLimit = 2 * h.frameLimit
	if handlerHook != nil {
		handlerHook(t, h)
	}
	return h, nil
}

// handlerHook, when set (by the tests), learns of every handler made.
var handlerHook func(*Transformer, *handler)

// handler is one server's Engine.IO endpoint.
type handler struct {
	opts       Options
	topts      transport.Options
	accept     transport.AcceptFunc
	maxMessage int64 // largest message a client may send
	frameLimit int64 // largest packet a client may send
	bodyLimit  int64 // largest POST body

	mu       sync.Mutex
	sessions map[string]*session
}

// Engine.IO's error answers: code and message as engine.io sends them.
type refusal struct {
	code    int
	message string
	status  int
}

var (
	errUnknownTransport    = refusal{0, "Transport unknown", http.StatusBadRequest}
	errUnknownSID          = refusal{1, "Session ID unknown", http.StatusBadRequest}
	errBadHandshakeMethod  = refusal{2, "Bad handshake method", http.StatusBadRequest}
	errBadRequest          = refusal{3, "Bad request", http.StatusBadRequest}
	errForbidden           = refusal{4, "Forbidden", http.StatusForbidden}
	errUnsupportedProtocol = refusal{5, "Unsupported protocol version", http.StatusBadRequest}
)

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	upgrade := isUpgrade(r)
	if !h.originAllowed(r) {
		h.refuse(w, upgrade, errForbidden)
		return
	}
	h.cors(w, r)
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		h.preflight(w, r)
		return
	}
	q := r.URL.Query()
	name := q.Get("transport")
	if !h.enabled(name) {
		h.refuse(w, upgrade, errUnknownTransport)
		return
	}
	sid := q.Get("sid")
	if sid == "" {
		h.handshake(w, r, q, name, upgrade)
		return
	}
	s := h.session(sid)
	if s != nil && s.closed() && (upgrade || r.Method != http.MethodGet || name != "polling") {
		s = nil // a closed session only answers its last poll
	}
	if s == nil || !h.sameClient(s, r) {
		h.refuse(w, upgrade, errUnknownSID)
		return
	}
	if q.Get("EIO") != "4" {
		h.refuse(w, upgrade, errBadRequest)
		return
	}
	switch {
	case upgrade && name == "websocket":
		h.upgrade(w, r, s, q.Has("b64"))
	case !upgrade && name == "polling" && !s.onWebSocket():
		switch r.Method {
		case http.MethodGet:
			s.poll(w, r)
		case http.MethodPost:
			s.post(w, r)
		default:
			// engine.io answers other methods on a session with a bare 500.
			w.WriteHeader(http.StatusInternalServerError)
		}
	default:
		// A poll for a session on WebSocket (engine.io's transport
		// mismatch), a WebSocket without an upgrade, an upgrade to polling.
		h.refuse(w, upgrade, errBadRequest)
	}
}

func (h *handler) enabled(name string) bool {
	switch name {
	case "polling":
		return !h.opts.DisablePolling
	case "websocket":
		return !h.opts.DisableWebSocket
	}
	return false
}

// handshake opens a session, over polling or WebSocket, and hands it to the
// core.
func (h *handler) handshake(w http.ResponseWriter, r *http.Request, q url.Values, name string, upgrade bool) {
	switch {
	case r.Method != http.MethodGet:
		h.refuse(w, upgrade, errBadHandshakeMethod)
		return
	case (name == "websocket") != upgrade:
		h.refuse(w, upgrade, errBadRequest)
		return
	case q.Get("EIO") != "4":
		// Protocol v3 (no EIO, or EIO=3) is engine.io 3's; v4 clients
		// (engine.io-client 4 and later) always send EIO=4.
		h.refuse(w, upgrade, errUnsupportedProtocol)
		return
	case q.Has("j"):
		// JSONP polling, which engine.io-client 4 and later never use.
		h.refuse(w, upgrade, errBadRequest)
		return
	}
	sid := h.topts.NewID()
	s := newSession(h, sid, r, name == "websocket")
	if !h.register(s) {
		h.refuse(w, upgrade, errBadRequest)
		return
	}
	if name == "polling" {
		err := respond(w, h.opts.WriteTimeout, "text/plain; charset=UTF-8", h.openPacket(sid, !h.opts.DisableWebSocket))
		if err != nil {
			h.topts.Logger.Debug("engineio: failed to answer a handshake", "remote", r.RemoteAddr, "error", err)
			s.shut(fmt.Errorf("%w: %w", ErrTransportClosed, err), false)
			return
		}
	} else {
		c, raw, err := h.acceptWebSocket(w, r)
		if err != nil {
			h.topts.Logger.Debug("engineio: websocket handshake failed", "remote", r.RemoteAddr, "error", err)
			s.shut(fmt.Errorf("%w: %w", ErrTransportClosed, err), false)
			return
		}
		s.attachWebSocket(c, raw, q.Has("b64"))
		ctx, cancel := s.writeContext()
		err = c.Write(ctx, ws.MessageText, h.openPacket(sid, false))
		cancel()
		if err != nil {
			s.shut(fmt.Errorf("%w: %w", ErrTransportClosed, err), false)
			return
		}
	}
	s.startHeartbeat()
	req := h.sparkRequest(r)
	// The session runs in a goroutine of its own: the handshake's request
	// is over (polling) or its serving goroutine is not needed (WebSocket).
	go func() {
		defer s.release()
		h.accept(req, s)
	}()
}

// openPacket is the handshake's "0" packet.
func (h *handler) openPacket(sid string, websocket bool) []byte {
	upgrades := []string{}
	if websocket {
		upgrades = append(upgrades, "websocket")
	}
	b, _ := json.Marshal(struct {
		SID          string   `json:"sid"`
		Upgrades     []string `json:"upgrades"`
		PingInterval int64    `json:"pingInterval"`
		PingTimeout  int64    `json:"pingTimeout"`
		MaxPayload   int64    `json:"maxPayload"`
	}{sid, upgrades, h.opts.PingInterval.Milliseconds(), h.opts.PingTimeout.Milliseconds(), h.maxMessage})
	return append([]byte{typeOpen}, b...)
}

// sparkRequest is the request the spark keeps for its life: the
// handshake's, with its headers trimmed to HeaderBytes and without body.
func (h *handler) sparkRequest(r *http.Request) *http.Request {
	r2 := r.WithContext(r.Context())
	r2.Header = transport.TrimHeader(r.Header, h.topts.HeaderBytes)
	r2.Body = http.NoBody
	r2.GetBody = nil
	r2.Trailer = nil
	r2.Form, r2.PostForm, r2.MultipartForm = nil, nil, nil
	r2.Response = nil
	return r2
}

// register adds s to the running sessions, unless its id is taken.
func (h *handler) register(s *session) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, dup := h.sessions[s.id]; dup {
		h.topts.Logger.Error("engineio: IDGenerator returned a duplicate id", "id", s.id)
		return false
	}
	h.sessions[s.id] = s
	return true
}

func (h *handler) remove(s *session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sessions[s.id] == s {
		delete(h.sessions, s.id)
	}
}

func (h *handler) session(sid string) *session {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sessions[sid]
}

// sameClient reports whether r comes from the address that opened s, or
// the session is not bound to one.
func (h *handler) sameClient(s *session, r *http.Request) bool {
	if h.opts.InsecureAnyClientAddress || h.topts.ClientAddress == nil {
		return true
	}
	return h.topts.ClientAddress(r) == s.addr
}

// upgrade takes a WebSocket for a polling session: it answers the client's
// probe ("2probe" with "3probe"), makes the pending poll return so that the
// client can pause polling, and on the client's "5" moves the session onto
// the WebSocket. Anything else, or no "5" within UpgradeTimeout, closes the
// WebSocket; the session goes on polling.
func (h *handler) upgrade(w http.ResponseWriter, r *http.Request, s *session, b64 bool) {
	c, raw, err := h.acceptWebSocket(w, r)
	if err != nil {
		h.topts.Logger.Debug("engineio: websocket handshake failed", "remote", r.RemoteAddr, "error", err)
		return
	}
	if !s.startProbe(c, raw) {
		// engine.io accepts a second upgrade, or one for a session already
		// on WebSocket, and closes it at once.
		_ = raw.Close()
		_ = c.CloseNow()
		return
	}
	handedOver := false
	defer func() {
		if !handedOver {
			s.endProbe(c)
			_ = raw.Close()
			_ = c.CloseNow()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.UpgradeTimeout)
	defer cancel()
	for {
		typ, b, err := c.Read(ctx)
		if err != nil || typ != ws.MessageText {
			return
		}
		switch string(b) {
		case "2probe":
			if c.Write(ctx, ws.MessageText, []byte("3probe")) != nil {
				return
			}
			s.probed()
		case "5":
			handedOver = s.completeUpgrade(c, raw, b64)
			if !handedOver {
				// The session closed meanwhile; the client has made this
				// WebSocket its transport: close it properly.
				_ = c.Close(ws.StatusNormalClosure, "")
			}
			return
		default:
			return
		}
	}
}

// acceptWebSocket completes a WebSocket handshake, keeping the hijacked
// connection for CloseNow. The origin has been checked already.
func (h *handler) acceptWebSocket(w http.ResponseWriter, r *http.Request) (*ws.Conn, net.Conn, error) {
	mode := ws.CompressionDisabled
	if h.topts.Compression {
		mode = ws.CompressionContextTakeover
	}
	hr := &hijackRecorder{ResponseWriter: w}
	c, err := ws.Accept(hr, r, &ws.AcceptOptions{InsecureSkipVerify: true, CompressionMode: mode})
	if err != nil {
		if hr.conn != nil {
			_ = hr.conn.Close()
		}
		return nil, nil, err
	}
	c.SetReadLimit(h.frameLimit)
	return c, hr.conn, nil
}

// hijackRecorder keeps the connection that ws.Accept hijacks.
type hijackRecorder struct {
	http.ResponseWriter
	conn net.Conn
}

func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	h.conn = c
	return c, brw, err
}

func (h *hijackRecorder) Unwrap() http.ResponseWriter { return h.ResponseWriter }

func isUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// refuse answers with an Engine.IO error: for plain HTTP the status and the
// JSON body {"code":N,"message":"…"}; for a WebSocket upgrade, as engine.io
// refuses one, 400 with the message as text (403 for an origin).
func (h *handler) refuse(w http.ResponseWriter, upgrade bool, e refusal) {
	if upgrade {
		status := http.StatusBadRequest
		if e == errForbidden {
			status = http.StatusForbidden
		}
		w.Header().Set("Connection", "close")
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Length", strconv.Itoa(len(e.message)))
		w.WriteHeader(status)
		_, _ = io.WriteString(w, e.message)
		return
	}
	body, _ := json.Marshal(struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{e.code, e.message})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.status)
	_, _ = w.Write(body)
}

// originAllowed applies the server's origin policy to browser requests: no
// Origin header (not a browser) passes, the request's own host passes, and
// so do hosts matching OriginPatterns.
func (h *handler) originAllowed(r *http.Request) bool { return h.topts.OriginAllowed(r) }

// cors echoes an allowed origin, with credentials allowed: a page on
// another allowed origin polls with its cookies, as Primus's cors
// middleware lets it.
func (h *handler) cors(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	hd := w.Header()
	hd.Set("Access-Control-Allow-Origin", origin)
	hd.Set("Access-Control-Allow-Credentials", "true")
	hd.Add("Vary", "Origin")
}

// preflightMaxAge is how long a browser may cache a preflight's answer.
const preflightMaxAge = 24 * time.Hour

// preflight answers a CORS preflight for the polling requests.
func (h *handler) preflight(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
		hd.Set("Access-Control-Allow-Headers", req)
	}
	hd.Set("Access-Control-Max-Age", strconv.Itoa(int(preflightMaxAge.Seconds())))
	hd.Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
}

// respond writes a whole 200 response, bounded by timeout.
func respond(w http.ResponseWriter, timeout time.Duration, contentType string, body []byte) error {
	hd := w.Header()
	hd.Set("Content-Type", contentType)
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	hd.Set("Cache-Control", "no-store")
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(timeout))
	// The connection may serve other requests after this one.
	defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(body); err != nil {
		return err
	}
	return rc.Flush()
}
