package primus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-primus/primus/internal/pluginkit"
	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/plugin"
	"github.com/go-primus/primus/transport"
	"github.com/go-primus/primus/transport/websocket"
)

// Version is this library's version, served in <pathname>/spec.
const Version = "0.1.0"

// Message is one received data message; see parser.Message.
type Message = parser.Message

// Raw is a message already encoded with the server's parser; writing it
// sends its bytes unchanged. See parser.Raw.
type Raw = parser.Raw

// Server turns HTTP requests under its pathname into Sparks. It is an
// http.Handler: mount it on any mux at its pathname and below
// (mux.Handle("/primus/", srv) and mux.Handle("/primus", srv)), or serve it
// alone.
//
// All methods are safe for concurrent use.
type Server struct {
	pathname     string
	parser       parser.Parser
	frameType    transport.MessageType
	transformer  transport.Transformer
	transport    http.Handler
	pingInterval time.Duration
	maxMessage   int64
	queueBytes   int64
	writeTimeout time.Duration
	handshake    time.Duration
	bodyTimeout  time.Duration
	headerBytes  int
	trusted      []netip.Prefix
	newID        func() string
	log          *slog.Logger
	onPanic      func(*Spark, *PanicError)
	crashOnPanic bool
	recovery     *Recovery // nil: off
	journal      Journal   // nil: none (journal.go)
	spec         []byte
	obs          Observer         // nil: none (observe.go)
	tname        string           // the transformer's name, for the observer
	limits       *limiter         // nil: no limits (limits.go)
	opener       transport.Opener // nil when the transformer cannot tell

	hooks       []plugin.ServerHooks
	hasOutgoing bool
	plugins     []plugin.Plugin // for the browser library
	library     libraryCache

	onConnection    pluginkit.Handlers[func(*Spark)]
	onDisconnection pluginkit.Handlers[func(*Spark)]

	mwMu      sync.Mutex
	layers    []layer
	chain     atomic.Pointer[http.Handler]
	authorize atomic.Pointer[AuthorizeFunc]

	mu        sync.RWMutex
	sparks    map[string]*Spark
	creds     map[string]*credEntry // resume credentials (recovery.go)
	closing   bool
	running   sync.WaitGroup
	hbStop    chan struct{} // non-nil while the housekeeping loop runs
	hbStopped chan struct{}
}

// New builds a server. It refuses a parser the transformer cannot carry,
// two plugins with one name, and a plugin whose set-up fails.
func New(opts *Options) (*Server, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	s := &Server{
		pathname:     o.Pathname,
		parser:       o.Parser,
		transformer:  o.Transformer,
		pingInterval: o.PingInterval,
		maxMessage:   o.MaxMessageSize,
		queueBytes:   o.SendQueueBytes,
		writeTimeout: o.WriteTimeout,
		handshake:    o.HandshakeTimeout,
		bodyTimeout:  o.BodyTimeout,
		headerBytes:  o.HeaderBytes,
		newID:        o.IDGenerator,
		log:          o.Logger,
		onPanic:      o.OnPanic,
		crashOnPanic: o.CrashOnPanic,
		sparks:       make(map[string]*Spark),
		creds:        make(map[string]*credEntry),
		obs:          o.Observer,
	}
	if o.Recovery != nil {
		r := *o.Recovery
		if r.Window <= 0 {
			r.Window = defaultRecoveryWindow
		}
		if r.MaxBytes <= 0 {
			r.MaxBytes = defaultRecoveryMaxBytes
		}
		if r.MaxMessages <= 0 {
			r.MaxMessages = defaultRecoveryMaxMessages
		}
		s.recovery = &r
	}
	if s.pathname == "" {
		s.pathname = defaultPathname
	}
	if !strings.HasPrefix(s.pathname, "/") {
		s.pathname = "/" + s.pathname
	}
	s.pathname = strings.TrimSuffix(s.pathname, "/")
	if s.pathname == "" {
		return nil, errors.New("primus: pathname must not be the root")
	}
	if s.parser == nil {
		s.parser = parser.JSON
	}
	if s.transformer == nil {
		s.transformer = websocket.New()
	}
	if s.pingInterval == 0 {
		s.pingInterval = defaultPingInterval
	}
	if s.maxMessage <= 0 {
		s.maxMessage = defaultMaxMessageSize
	}
	if s.queueBytes <= 0 {
		s.queueBytes = defaultSendQueueBytes
	}
	if s.writeTimeout <= 0 {
		s.writeTimeout = defaultWriteTimeout
	}
	if s.handshake <= 0 {
		s.handshake = defaultHandshakeTimeout
	}
	if s.bodyTimeout <= 0 {
		s.bodyTimeout = defaultBodyTimeout
	}
	if s.headerBytes == 0 {
		s.headerBytes = defaultHeaderBytes
	}
	if s.newID == nil {
		s.newID = randomID
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	for _, p := range o.TrustedProxies {
		s.trusted = append(s.trusted, p.Masked())
	}

	s.tname = s.transformer.Name()
	s.opener, _ = s.transformer.(transport.Opener)
	s.limits = newLimiter(o.Limits, s.maxMessage)

	s.frameType = transport.Text
	if s.parser.Binary() {
		if !s.transformer.Capabilities().Binary {
			return nil, fmt.Errorf("primus: the %q parser is binary but the %q transformer carries text only; use a text parser such as parser.JSON, or a transformer with binary frames such as transport/websocket",
				s.parser.Name(), s.transformer.Name())
		}
		s.frameType = transport.Binary
	}

	th, err := s.transformer.Handler(transport.Options{
		Pathname:                s.pathname,
		MaxMessageSize:          s.maxMessage,
		OriginPatterns:          append([]string(nil), o.OriginPatterns...),
		InsecureSkipOriginCheck: o.InsecureAllowAnyOrigin,
		HandshakeTimeout:        s.handshake,
		Compression:             o.Compression,
		BodyTimeout:             s.bodyTimeout,
		HeaderBytes:             s.headerBytes,
		ClientAddress:           func(r *http.Request) netip.Addr { return clientAddress(r, s.trusted).IP },
		NewID:                   s.newID,
		Logger:                  s.log,
	}, s.accept)
	if err != nil {
		return nil, fmt.Errorf("primus: failed to set up the %q transformer: %w", s.transformer.Name(), err)
	}
	s.transport = th

	s.plugins = append([]plugin.Plugin(nil), o.Plugins...)
	seen := map[string]bool{}
	host := &serverHost{s: s}
	for _, p := range o.Plugins {
		if p == nil {
			return nil, errors.New("primus: nil plugin")
		}
		name := p.Name()
		if name == "" {
			return nil, errors.New("primus: plugin without a name")
		}
		if seen[name] {
			return nil, fmt.Errorf("primus: two plugins named %q", name)
		}
		seen[name] = true
		if sp, ok := p.(plugin.ServerPlugin); ok {
			if err := sp.SetupServer(host); err != nil {
				return nil, fmt.Errorf("primus: failed to set up plugin %q: %w", name, err)
			}
		}
	}
	host.done = true

	recovery := s.recoveryWindowMS()
	s.spec, _ = json.Marshal(struct {
		PingInterval any    `json:"pingInterval"`
		Pathname     string `json:"pathname"`
		Version      string `json:"version"`
		Parser       string `json:"parser"`
		Transformer  string `json:"transformer"`
		Recovery     int64  `json:"recovery,omitempty"`
		MaxMessage   int64  `json:"maxMessageSize"`
	}{s.pingIntervalJSON(), s.pathname, Version, s.parser.Name(), s.transformer.Name(), recovery, s.maxMessage})

	s.rebuildChain()
	return s, nil
}

// recoveryWindowMS is the recovery window published in the spec and the
// client library, in milliseconds; 0 when recovery is off.
func (s *Server) recoveryWindowMS() int64 {
	if s.recovery == nil {
		return 0
	}
	return s.recovery.Window.Milliseconds()
}

// Pathname returns the path prefix the server owns, such as "/primus".
func (s *Server) Pathname() string { return s.pathname }

// Parser returns the server's parser.
func (s *Server) Parser() parser.Parser { return s.parser }

// PingInterval returns the heartbeat interval; negative when disabled.
func (s *Server) PingInterval() time.Duration { return s.pingInterval }

// pingIntervalJSON is the interval as Primus publishes it (in the spec and
// the client library): milliseconds, or false when heartbeats are off.
func (s *Server) pingIntervalJSON() any {
	if s.pingInterval < 0 {
		return false
	}
	return s.pingInterval.Milliseconds()
}

// ServeHTTP serves <pathname>/spec and <pathname>/primus.js (both public, as
// in Primus) and hands every other request under the pathname to the
// middleware chain, the authorization function and the transformer, in that
// order. Requests outside the pathname get 404.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if p != s.pathname && !strings.HasPrefix(p, s.pathname+"/") {
		http.NotFound(w, r)
		return
	}
	if p == s.pathname+"/spec" {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(s.spec)))
		_, _ = w.Write(s.spec)
		return
	}
	if p == s.pathname+"/primus.js" {
		s.serveLibrary(w)
		return
	}
	s.mu.RLock()
	closing := s.closing
	s.mu.RUnlock()
	if closing {
		s.observeRefused(RefuseShutdown, http.StatusServiceUnavailable)
		Refuse(w, &HTTPError{Status: http.StatusServiceUnavailable, Message: ErrServerClosed.Error()})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.handshake)
	defer cancel()
	ctx = context.WithValue(ctx, requestContextKey{}, r.Context())
	ctx = s.observeStart(ctx)
	(*s.chain.Load()).ServeHTTP(w, r.WithContext(ctx))
}

// final is the end of the middleware chain: authorization, then the
// transformer.
func (s *Server) final(w http.ResponseWriter, r *http.Request) {
	// A CORS preflight carries no credentials by design, so asking it for
	// them would refuse every cross-origin client; the request it precedes
	// is authorized as usual.
	//
	// Limits come first, so that a flood of handshakes is refused before it
	// costs an authorization each.
	if !s.limitRequest(w, r) {
		return
	}
	if fn := s.authorize.Load(); fn != nil && !isPreflight(r) {
		if err := (*fn)(r); err != nil {
			s.log.Info("primus: request refused by Authorize", "remote", r.RemoteAddr, "error", err)
			s.observeRefused(RefuseAuthorize, statusOf(err))
			Refuse(w, err)
			return
		}
	}
	if err := r.Context().Err(); err != nil {
		s.observeRefused(RefuseHandshakeTimeout, http.StatusServiceUnavailable)
		Refuse(w, &HTTPError{Status: http.StatusServiceUnavailable, Message: "primus: handshake timeout"})
		return
	}
	// The handshake timeout bounds middleware and authorization. The
	// transformer's requests may outlive it (SockJS polling and streaming
	// requests stay open for many seconds), so the transformer gets a context
	// that ends with the request itself and keeps the middleware's values.
	if rc, ok := r.Context().Value(requestContextKey{}).(context.Context); ok {
		r = r.WithContext(transformerContext{Context: rc, values: r.Context()})
	}
	s.transport.ServeHTTP(w, r)
}

func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
}

// requestContextKey holds the request's own context under the handshake
// timeout's.
type requestContextKey struct{}

// transformerContext ends with the request but has the values of the
// middleware's context.
type transformerContext struct {
	context.Context
	values context.Context
}

func (c transformerContext) Value(key any) any { return c.values.Value(key) }

// accept runs one connection; it is the transformer's AcceptFunc. A
// connection that resumes a dropped spark (recovery) becomes that spark's
// new link; any other one is a new spark.
func (s *Server) accept(r *http.Request, c transport.Conn) {
	q := r.URL.Query()
	recoverable := s.recovery != nil && q.Has(paramRecover)
	var failure string // why the resume the client asked for failed
	if cred := q.Get(paramResume); recoverable && cred != "" {
		n, _ := strconv.ParseUint(q.Get(paramReceived), 10, 64)
		sp, hold, why := s.claim(cred)
		if sp != nil {
			l := newLink(sp, c)
			if why = sp.resume(l, n, cred, hold); why == "" {
				l.run(sp.resumed)
				return
			}
		}
		if why == dropUnknown && s.journal != nil {
			var took bool
			if took, why = s.resumeMoved(r, q, c, cred, n); took {
				return
			}
		}
		s.observeResumeFailed(why)
		if why == dropEnded {
			// The application ended the spark while the client was away:
			// it ends too, as if it had been there.
			if b, err := s.parser.Encode(serverClose); err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), s.writeTimeout)
				_ = c.Write(ctx, s.frameType, b)
				cancel()
			}
			_ = c.Close(transport.StatusNormalClosure, "")
			return
		}
		failure = why
	}
	sp := newSpark(s, r, q, c)
	if !s.admitSpark(sp, c) {
		return
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		sp.releaseSpark()
		_ = c.Close(transport.StatusGoingAway, "server shutting down")
		return
	}
	if _, dup := s.sparks[sp.id]; dup {
		s.mu.Unlock()
		sp.releaseSpark()
		s.log.Error("primus: IDGenerator returned a duplicate id", "id", sp.id)
		_ = c.Close(transport.StatusInternalError, "duplicate id")
		return
	}
	s.sparks[sp.id] = sp
	s.running.Add(1) // Done when the spark has finished, maybe in another goroutine
	if s.hbStop == nil {
		s.hbStop, s.hbStopped = make(chan struct{}), make(chan struct{})
		go s.housekeeping(s.hbStop, s.hbStopped)
	}
	s.mu.Unlock()
	s.observeOpened(r)
	if recoverable {
		sp.rec = &sparkRecovery{cfg: s.recovery}
	}
	if s.journal != nil {
		s.journal.Opened(sp)
	}
	if recoverable {
		sp.offerRecovery(failure) // the first message the client receives
	}
	sp.link.Load().run(sp.connected)
}

func (s *Server) remove(sp *Spark) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sparks[sp.id] == sp {
		delete(s.sparks, sp.id)
	}
	if len(s.sparks) == 0 && s.hbStop != nil {
		close(s.hbStop)
		s.hbStop = nil
	}
}

// OnConnection adds a handler run for each new spark, before any of its
// messages is read: set the spark's handlers there. Handlers run in the
// spark's reading goroutine, in the order they were added.
func (s *Server) OnConnection(f func(*Spark)) { s.onConnection.Add(f) }

// OnDisconnection adds a handler run once for each spark that has ended,
// after the spark's own end handlers.
func (s *Server) OnDisconnection(f func(*Spark)) { s.onDisconnection.Add(f) }

// Write broadcasts v to every connected spark. The value is encoded once
// (once per spark only when a plugin transforms outgoing messages), and the
// call never waits for a slow client: a spark whose queue is full is closed
// with ErrSlowConsumer. It returns an encoding error, or ErrServerClosed.
func (s *Server) Write(v any) error {
	if s.hasOutgoing {
		s.mu.RLock()
		closing := s.closing
		s.mu.RUnlock()
		if closing {
			return ErrServerClosed
		}
		var first error
		s.ForEach(func(sp *Spark) bool {
			if err := sp.Write(v); err != nil && first == nil && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrSlowConsumer) {
				first = err
			}
			return true
		})
		return first
	}
	data, err := s.encode(v)
	if err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closing {
		return ErrServerClosed
	}
	if s.journal != nil {
		return s.journal.Append(nil, data)
	}
	for _, sp := range s.sparks {
		_ = sp.enqueue(data, false, false)
	}
	return nil
}

func (s *Server) encode(v any) ([]byte, error) {
	if r, ok := v.(Raw); ok {
		return r, nil
	}
	b, err := s.parser.Encode(v)
	if err != nil {
		return nil, fmt.Errorf("primus: failed to encode outgoing data: %w", err)
	}
	return b, nil
}

// Spark returns the connected spark with the id.
func (s *Server) Spark(id string) (*Spark, bool) {
	s.mu.RLock()
	sp, ok := s.sparks[id]
	s.mu.RUnlock()
	return sp, ok
}

// Count returns the number of connected sparks.
func (s *Server) Count() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.sparks)
}

// ForEach calls f for every spark connected when it is called, until f
// returns false. f may write to, end or close sparks.
func (s *Server) ForEach(f func(*Spark) bool) {
	for _, sp := range s.snapshot() {
		if !f(sp) {
			return
		}
	}
}

func (s *Server) snapshot() []*Spark {
	s.mu.RLock()
	defer s.mu.RUnlock()
	all := make([]*Spark, 0, len(s.sparks))
	for _, sp := range s.sparks {
		all = append(all, sp)
	}
	return all
}

// shutdownBatch is how many sparks Shutdown ends before it yields and checks
// its context.
const shutdownBatch = 256

// Shutdown stops accepting connections, ends every spark with
// "primus::server::close" (so clients do not reconnect), and waits until
// their queued messages are written and their connections closed. When ctx
// ends first, it closes whatever is left at once and returns ctx's error.
// net/http's Server.Shutdown does not wait for WebSocket connections; hook
// this in with RegisterOnShutdown (see the package example).
func (s *Server) Shutdown(ctx context.Context) error {
	return s.shutdown(ctx, (*Spark).End)
}

// ShutdownReconnect stops accepting connections and closes every spark's
// connection without "primus::server::close", so that clients reconnect —
// to this server once it has restarted, or to another node — instead of
// ending: Primus's destroy({ reconnect: true }), for restarts and rolling
// deploys. Messages still queued are written first, within ctx. Sparks end
// with ErrServerClosed; a client that tries to resume one (recovery) gets a
// new spark unless another node has the session (cluster). When ctx ends
// first, it closes whatever is left at once and returns ctx's error.
func (s *Server) ShutdownReconnect(ctx context.Context) error {
	return s.shutdown(ctx, (*Spark).closeForRestart)
}

// shutdown stops accepting, ends every spark with end, and waits for them.
func (s *Server) shutdown(ctx context.Context, end func(*Spark) error) error {
	s.mu.Lock()
	s.closing = true
	stopped := s.hbStopped
	s.mu.Unlock()

	for i, sp := range s.snapshot() {
		sp.mu.Lock()
		dropped := sp.state == stateDropped
		sp.mu.Unlock()
		if dropped {
			sp.endDropped(ErrServerClosed, dropUnknown)
		} else {
			_ = end(sp)
		}
		if (i+1)%shutdownBatch == 0 {
			runtime.Gosched()
			if ctx.Err() != nil {
				break
			}
		}
	}
	done := make(chan struct{})
	go func() {
		s.running.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		for _, sp := range s.snapshot() {
			sp.abort(ErrServerClosed)
			sp.endDropped(ErrServerClosed, dropUnknown)
		}
		<-done
	}
	if stopped != nil {
		<-stopped
	}
	return err
}

// serverHost is what plugins see of the server at set-up.
type serverHost struct {
	s    *Server
	done bool
}

func (h *serverHost) Install(hooks plugin.ServerHooks) {
	if h.done {
		panic("primus: plugin hooks installed after the server was built")
	}
	h.s.hooks = append(h.s.hooks, hooks)
	if hooks.Outgoing != nil {
		h.s.hasOutgoing = true
	}
}
func (h *serverHost) Parser() parser.Parser { return h.s.parser }
func (h *serverHost) Logger() *slog.Logger  { return h.s.log }
func (h *serverHost) Write(v any) error     { return h.s.Write(v) }
func (h *serverHost) Spark(id string) (plugin.Spark, bool) {
	sp, ok := h.s.Spark(id)
	if !ok {
		return nil, false
	}
	return sp, true
}
func (h *serverHost) ForEach(f func(plugin.Spark) bool) {
	h.s.ForEach(func(sp *Spark) bool { return f(sp) })
}
