package sockjs

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/igm/sockjs-go/v3/sockjs"

	"github.com/go-primus/primus/transport"
)

// Handler returns the handler for every request under the pathname: the
// SockJS endpoints as sockjs-go serves them (the welcome text, /info, the
// iframe page, and per session /<server>/<session>/ websocket, xhr,
// xhr_send, xhr_streaming, eventsource, htmlfile, jsonp and jsonp_send),
// plus the raw WebSocket endpoint /websocket, which carries one Primus
// message per frame without SockJS framing. Each SockJS session is handed to
// accept with the request that opened it.
//
// Before sockjs-go sees a request, the handler refuses browser origins that
// opts does not allow (403); reads its body under opts.BodyTimeout (see
// readBody); bounds what a client may send (MaxFrameBytes) and refuses what
// is not valid text (see textChecker); names the session after the client's
// address (see sessionKey); keeps a bounded copy of the request for the
// session (see keptHeader); and wraps the response so that it can tell when
// the messages a session buffered have been written (see SendBufferBytes).
func (t *Transformer) Handler(opts transport.Options, accept transport.AcceptFunc) (http.Handler, error) {
	if accept == nil {
		return nil, errors.New("sockjs: nil accept function")
	}
	h := &handler{
		opts:      t.opts,
		topts:     opts,
		accept:    accept,
		sessions:  make(map[string]*conn),
		receiving: make(map[string]int),
	}
	if h.opts.MaxFrameBytes <= 0 {
		h.opts.MaxFrameBytes = frameLimit(opts.MaxMessageSize)
	}
	so := sockjs.DefaultOptions
	so.Websocket = !t.opts.DisableWebSocket
	so.RawWebsocket = !t.opts.DisableWebSocket
	so.WebsocketUpgrader = &websocket.Upgrader{
		HandshakeTimeout:  opts.HandshakeTimeout,
		EnableCompression: opts.Compression,
		// The handler has checked the origin already, against opts.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	so.WebsocketWriteTimeout = t.opts.WriteTimeout
	so.HeartbeatDelay = t.opts.HeartbeatDelay
	so.DisconnectDelay = t.opts.DisconnectDelay
	so.ResponseLimit = uint32(min(t.opts.ResponseLimit, math.MaxInt32))
	if t.opts.SockJSURL != "" {
		so.SockJSURL = t.opts.SockJSURL
	}
	if t.opts.JSessionID {
		so.JSessionID = sockjs.DefaultJSessionID
	}
	// CORS headers echo the request's origin, which the handler has
	// checked.
	so.CheckOrigin = func(*http.Request) bool { return true }
	h.sjs = sockjs.NewHandler(opts.Pathname, so, h.serve)
	return h, nil
}

// handler is one server's SockJS endpoint.
type handler struct {
	opts   Options // with MaxFrameBytes resolved
	topts  transport.Options
	accept transport.AcceptFunc
	sjs    *sockjs.Handler

	noDeadline sync.Once // the warning that bodies are read without a deadline

	mu        sync.Mutex
	sessions  map[string]*conn // running HTTP sessions (not WebSocket ones) by key (see sessionKey)
	receiving map[string]int   // receiving requests under way by session key
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.originAllowed(r) {
		refuse(w, http.StatusForbidden, "sockjs: request origin not allowed")
		return
	}
	rest := strings.TrimPrefix(r.URL.Path, h.topts.Pathname)
	if rest == "/websocket" {
		h.serveWebSocket(w, r, h.topts.MaxMessageSize, true)
		return
	}
	server, id, kind, ok := sessionPath(rest)
	if !ok {
		// The welcome text, /info, the iframe page, and what sockjs-go
		// answers with 404.
		if _, err := h.readBody(w, r, otherBodyBytes); err != nil {
			bodyFailed(w, err, otherBodyBytes)
			return
		}
		h.sjs.ServeHTTP(w, withBody(r, r.URL, nil))
		return
	}
	if kind == "websocket" {
		h.serveWebSocket(w, r, h.opts.MaxFrameBytes, false)
		return
	}
	key := h.sessionKey(id, r)
	u := r.URL
	if key != id {
		v := *r.URL
		v.Path = h.topts.Pathname + "/" + server + "/" + key + "/" + kind
		v.RawPath = ""
		u = &v
	}
	switch kind {
	case "xhr_send", "jsonp_send":
		h.serveSend(w, r, u, key, kind)
		return
	}
	if _, err := h.readBody(w, r, otherBodyBytes); err != nil {
		bodyFailed(w, err, otherBodyBytes)
		return
	}
	switch kind {
	case "xhr", "xhr_streaming", "eventsource", "htmlfile", "jsonp":
		h.serveReceiving(w, h.sessionRequest(r, u, nil), key, kind)
	default:
		h.sjs.ServeHTTP(w, withBody(r, u, nil))
	}
}

// withBody returns a shallow copy of r with the URL u and the body read.
func withBody(r *http.Request, u *url.URL, body []byte) *http.Request {
	r2 := r.WithContext(r.Context())
	r2.URL = u
	r2.Body = http.NoBody
	if len(body) > 0 {
		r2.Body = io.NopCloser(bytes.NewReader(body))
	}
	r2.ContentLength = int64(len(body))
	return r2
}

// serveSend serves xhr_send and jsonp_send: the body is read and checked
// here (see readBody and textChecker), and sockjs-go gets the bytes read.
func (h *handler) serveSend(w http.ResponseWriter, r *http.Request, u *url.URL, key, kind string) {
	body, err := h.readBody(w, r, h.opts.MaxFrameBytes)
	if err != nil {
		if errors.Is(err, errBodyTooBig) {
			if c := h.session(key); c != nil {
				c.closeTooBig()
			}
		}
		bodyFailed(w, err, h.opts.MaxFrameBytes)
		return
	}
	if !validText(sendPayload(kind, r, body), true) {
		// The session, if it is this client's and running, ends with
		// c[1007,...]; the frame reaches no one.
		if c := h.session(key); c != nil {
			c.closeInvalid()
		}
		http.Error(w, "sockjs: the payload is not valid UTF-8 text", http.StatusBadRequest)
		return
	}
	h.sjs.ServeHTTP(w, withBody(r, u, body))
}

// sessionKey is the name under which sockjs-go knows the session id of r's
// client: the id followed by the client's address (ClientAddress), unless
// InsecureAnyClientAddress is set. A request from another address than
// the one that opened a session therefore names another session: sending
// to it gets 404 and receiving from it opens a new session, exactly as for
// an id nobody uses, so that learning a session's id is not enough to read
// or write its messages, nor to tell that it exists.
func (h *handler) sessionKey(id string, r *http.Request) string {
	if h.opts.InsecureAnyClientAddress {
		return id
	}
	var addr netip.Addr
	if h.topts.ClientAddress != nil {
		addr = h.topts.ClientAddress(r)
	} else if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		addr = ap.Addr()
	}
	b := addr.Unmap().As16()
	return id + "~" + hex.EncodeToString(b[:])
}

// raceRetries bounds the attempts at a receiving request that sockjs-go
// refuses only because it has not yet detached the session's previous one.
const raceRetries = 8

// serveReceiving hands a receiving request (a poll or a stream), as
// sessionRequest made it, to sockjs-go, through a frameWriter.
//
// sockjs-go detaches a receiving request from its session in a goroutine of
// its own after the request ends, so a client that polls again at once can
// find the old one still attached, and gets "c[2010,\"Another connection
// still open\"]" (and drops the connection) for no reason. When that answer
// comes while no other receiving request of the session is under way, the
// handler drops it and serves the request again a moment later, keeping
// what the first attempt already sent.
func (h *handler) serveReceiving(w http.ResponseWriter, r *http.Request, key, kind string) {
	h.mu.Lock()
	h.receiving[key]++
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		if h.receiving[key]--; h.receiving[key] == 0 {
			delete(h.receiving, key)
		}
		h.mu.Unlock()
	}()
	resp := &response{}
	for attempt := 0; ; attempt++ {
		fw := &frameWriter{ResponseWriter: w, h: h, id: key, kind: kind, resp: resp, retry: attempt < raceRetries}
		if attempt > 0 {
			fw.skip = preludeWrites(kind)
		}
		h.sjs.ServeHTTP(fw, r)
		fw.done()
		if !fw.raced || r.Context().Err() != nil {
			return
		}
		timer := time.NewTimer(time.Millisecond << attempt)
		select {
		case <-timer.C:
		case <-r.Context().Done():
			timer.Stop()
			return
		}
	}
}

// receivers returns the number of receiving requests of the session under
// way.
func (h *handler) receivers(key string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.receiving[key]
}

// serveWebSocket hands a WebSocket upgrade to sockjs-go, keeping the
// hijacked connection (for CloseNow) and inspecting each incoming frame
// (see wsConn); raw is the endpoint without SockJS framing.
//
// sockjs-go serves a WebSocket session in the goroutine that upgraded it,
// for as long as the session lasts. Were that net/http's goroutine, the
// client's whole request would stay reachable (from its stack, and from the
// server's connection state) for the session's life. So sockjs-go runs in a
// goroutine of its own, with the request sessionRequest made, and the
// handler returns as soon as the connection is hijacked.
func (h *handler) serveWebSocket(w http.ResponseWriter, r *http.Request, limit int64, raw bool) {
	ws := &wsConn{limit: limit, raw: raw, ready: make(chan struct{})}
	hj := &hijacker{w: w, ws: ws, hijacked: make(chan struct{})}
	sr := h.sessionRequest(r, r.URL, ws)
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.sjs.ServeHTTP(hj, sr)
	}()
	select {
	case <-hj.hijacked:
	case <-done: // refused before the upgrade
	}
}

// sessionPath splits "/<server>/<session>/<kind>" as sockjs-go does (no
// dots in the first two segments).
func sessionPath(p string) (server, id, kind string, ok bool) {
	parts := strings.Split(p, "/")
	if len(parts) != 4 || parts[0] != "" || parts[1] == "" || parts[2] == "" || parts[3] == "" ||
		strings.Contains(parts[1], ".") || strings.Contains(parts[2], ".") {
		return "", "", "", false
	}
	return parts[1], parts[2], parts[3], true
}

// serve runs one SockJS session; sockjs-go calls it in a goroutine of its
// own once the session is open.
func (h *handler) serve(s sockjs.Session) {
	// The request that opened the session. A polling session's current
	// request changes with each poll, so take it before anything else;
	// every request of a session carries the same query.
	r := s.Request()
	c := newConn(h, s)
	defer c.release()
	info := infoOf(r)
	if info != nil {
		// The core sees the client's URL, not the session's key.
		r = r.WithContext(r.Context())
		r.URL = info.url
	}
	if info != nil && info.ws != nil {
		c.ws = info.ws
		info.ws.sess.Store(c)
		close(info.ws.ready)
	} else {
		h.mu.Lock()
		h.sessions[s.ID()] = c
		h.mu.Unlock()
		defer func() {
			h.mu.Lock()
			if h.sessions[s.ID()] == c {
				delete(h.sessions, s.ID())
			}
			h.mu.Unlock()
		}()
	}
	h.accept(r, c)
}

// session returns the running HTTP session with the key.
func (h *handler) session(key string) *conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sessions[key]
}

// originAllowed applies the server's origin policy to browser requests: no
// Origin header (not a browser) passes, the request's own host passes, and
// so do hosts matching OriginPatterns.
func (h *handler) originAllowed(r *http.Request) bool { return h.topts.OriginAllowed(r) }

// refuse answers with status and the JSON body {"error": msg}.
func refuse(w http.ResponseWriter, status int, msg string) {
	body, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
