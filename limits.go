package primus

import (
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/go-primus/primus/transport"
)

// Limits keep one abusive client from hurting the others (Options.Limits).
// Every limit is off at its zero value; the bursts have defaults when their
// rate is set. Client addresses are the sparks' Address: the socket's peer,
// or what TrustedProxies forward. IPv6 clients are grouped by /64 (one
// subscriber's usual allocation), so that an attacker cannot pick a new
// address for each connection.
//
// What a client over a limit gets:
//
//   - MaxConnections: a handshake answered 503 Service Unavailable with
//     Retry-After and {"error":"primus: server full"};
//   - MaxConnectionsPerAddress and NewConnectionsPerSecond: 429 Too Many
//     Requests with Retry-After and {"error": "primus: too many
//     connections"} or {"error":"primus: too many new connections"};
//   - MessagesPerSecond and BytesPerSecond: the spark is closed with 1008
//     (policy violation) and the reason "rate limited", ends with
//     ErrRateLimited, and the message that went over is dropped.
//
// The HTTP answers are given before authorization, for transformers that
// can tell a request that opens a connection from others
// (transport.Opener: the WebSocket and Engine.IO transformers). Others
// (SockJS) learn it once the connection is open: it is then closed at
// once, before it becomes a spark, with 1013 (try again later) for
// MaxConnections and 1008 for the per-address limits. Every refusal is reported to the Observer
// (ConnRefused and LimitHit).
type Limits struct {
	// MaxConnections bounds the sparks of the server (dropped ones waiting
	// for their client to resume them included). Zero value means no bound.
	MaxConnections int
	// MaxConnectionsPerAddress bounds the sparks of one client address.
	// Zero value means no bound. Mind clients behind one NAT (offices,
	// mobile carriers) when choosing it.
	MaxConnectionsPerAddress int
	// NewConnectionsPerSecond bounds the rate at which one client address
	// opens connections (a token bucket: NewConnectionsBurst at once, then
	// this many a second). Zero value means no bound.
	NewConnectionsPerSecond float64
	// NewConnectionsBurst is the bucket's size. Zero value means
	// NewConnectionsPerSecond rounded up, and at least 1.
	NewConnectionsBurst int
	// MessagesPerSecond bounds the messages one spark may send (a token
	// bucket per spark). Zero value means no bound.
	MessagesPerSecond float64
	// MessagesBurst is the bucket's size. Zero value means one second's
	// worth (MessagesPerSecond rounded up), and at least 1.
	MessagesBurst int
	// BytesPerSecond bounds the bytes of the messages one spark may send
	// (a token bucket per spark). Zero value means no bound.
	BytesPerSecond float64
	// BytesBurst is the bucket's size. It is raised to MaxMessageSize, so
	// that a message the server accepts can always pass an idle bucket.
	// Zero value means one second's worth.
	BytesBurst int
	// MaxAddresses bounds the client addresses the server remembers for
	// NewConnectionsPerSecond and MaxConnectionsPerAddress. Addresses with
	// connections are always remembered; idle ones are forgotten first
	// when the table is full (and their buckets start full again). Zero
	// value means 65536 (a few MiB).
	MaxAddresses int
}

const defaultMaxAddresses = 1 << 16

// retryAfterFull is the Retry-After of a refusal for a connection count:
// there is no telling when a connection will close.
const retryAfterFull = 5 * time.Second

// ErrRateLimited (in errors.go) ends a spark over its message or byte rate.

// limiter enforces Limits for a server.
type limiter struct {
	cfg Limits

	mu        sync.Mutex
	conns     int                       // sparks admitted
	addrs     map[netip.Addr]*addrEntry // client address (IPv6: /64) → its state
	nextSweep int                       // len(addrs) at which the table is swept again
}

type addrEntry struct {
	conns int
	rate  *rate.Limiter // nil without NewConnectionsPerSecond
}

func newLimiter(l *Limits, maxMessage int64) *limiter {
	if l == nil {
		return nil
	}
	c := *l
	if c.NewConnectionsPerSecond > 0 && c.NewConnectionsBurst <= 0 {
		c.NewConnectionsBurst = max(1, int(math.Ceil(c.NewConnectionsPerSecond)))
	}
	if c.MessagesPerSecond > 0 && c.MessagesBurst <= 0 {
		c.MessagesBurst = max(1, int(math.Ceil(c.MessagesPerSecond)))
	}
	if c.BytesPerSecond > 0 {
		if c.BytesBurst <= 0 {
			c.BytesBurst = int(math.Ceil(c.BytesPerSecond))
		}
		c.BytesBurst = int(max(int64(c.BytesBurst), maxMessage))
	}
	if c.MaxAddresses <= 0 {
		c.MaxAddresses = defaultMaxAddresses
	}
	if c.MaxConnections <= 0 && c.MaxConnectionsPerAddress <= 0 && c.NewConnectionsPerSecond <= 0 &&
		c.MessagesPerSecond <= 0 && c.BytesPerSecond <= 0 {
		return nil
	}
	return &limiter{cfg: c, addrs: map[netip.Addr]*addrEntry{}, nextSweep: c.MaxAddresses}
}

// perAddress reports whether any limit needs the address table.
func (lm *limiter) perAddress() bool {
	return lm.cfg.MaxConnectionsPerAddress > 0 || lm.cfg.NewConnectionsPerSecond > 0
}

// addrKey is the table's key for a client address: IPv6 addresses by /64.
func addrKey(ip netip.Addr) netip.Addr {
	if ip.Is6() && !ip.Is4In6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip.Unmap()
}

// entry returns the address's entry, making it; lm.mu is held.
func (lm *limiter) entry(key netip.Addr, now time.Time) *addrEntry {
	e := lm.addrs[key]
	if e != nil {
		return e
	}
	if len(lm.addrs) >= lm.nextSweep {
		lm.sweep(now)
	}
	e = &addrEntry{}
	if lm.cfg.NewConnectionsPerSecond > 0 {
		e.rate = rate.NewLimiter(rate.Limit(lm.cfg.NewConnectionsPerSecond), lm.cfg.NewConnectionsBurst)
	}
	lm.addrs[key] = e
	return e
}

// sweep forgets addresses without connections: first those whose bucket is
// full again (forgetting them changes nothing), then, while the table is
// still over its bound, any. Then the table may grow by a quarter of its
// bound before the next sweep, so that sweeping costs O(1) per address
// however full of connected addresses the table is. lm.mu is held.
func (lm *limiter) sweep(now time.Time) {
	for k, e := range lm.addrs {
		if e.conns == 0 && (e.rate == nil || e.rate.TokensAt(now) >= float64(e.rate.Burst())) {
			delete(lm.addrs, k)
		}
	}
	if len(lm.addrs) >= lm.cfg.MaxAddresses {
		for k, e := range lm.addrs {
			if e.conns == 0 {
				delete(lm.addrs, k)
			}
		}
	}
	lm.nextSweep = max(lm.cfg.MaxAddresses, len(lm.addrs)+lm.cfg.MaxAddresses/4)
}

// refusal is a limit's answer to a connection.
type refusal struct {
	reason RefuseReason
	limit  Limit
	retry  time.Duration
}

// precheck is the limits' look at a request that opens a connection, before
// it is authorized: it takes a token of the address's connection rate, and
// checks (without taking a place) that the connection counts have room,
// unless resuming (a resumed spark keeps its place). The counts are checked
// again, strictly, when the connection is accepted (admit).
func (lm *limiter) precheck(ip netip.Addr, resuming bool) *refusal {
	now := time.Now()
	lm.mu.Lock()
	defer lm.mu.Unlock()
	if !resuming && lm.cfg.MaxConnections > 0 && lm.conns >= lm.cfg.MaxConnections {
		return &refusal{RefuseMaxConnections, LimitConnections, retryAfterFull}
	}
	if !lm.perAddress() {
		return nil
	}
	key := addrKey(ip)
	e := lm.entry(key, now)
	if !resuming && lm.cfg.MaxConnectionsPerAddress > 0 && e.conns >= lm.cfg.MaxConnectionsPerAddress {
		return &refusal{RefuseMaxConnectionsPerAddress, LimitConnectionsPerAddress, retryAfterFull}
	}
	if e.rate != nil {
		r := e.rate.ReserveN(now, 1)
		if d := r.DelayFrom(now); d > 0 {
			r.CancelAt(now)
			return &refusal{RefuseConnectionRate, LimitConnectionRate, d}
		}
	}
	return nil
}

// admit takes a place for a new spark from ip, or refuses it. rated tells
// that precheck took the connection's rate token already.
func (lm *limiter) admit(ip netip.Addr, rated bool) *refusal {
	now := time.Now()
	lm.mu.Lock()
	defer lm.mu.Unlock()
	if lm.cfg.MaxConnections > 0 && lm.conns >= lm.cfg.MaxConnections {
		return &refusal{RefuseMaxConnections, LimitConnections, retryAfterFull}
	}
	if lm.perAddress() {
		e := lm.entry(addrKey(ip), now)
		if lm.cfg.MaxConnectionsPerAddress > 0 && e.conns >= lm.cfg.MaxConnectionsPerAddress {
			return &refusal{RefuseMaxConnectionsPerAddress, LimitConnectionsPerAddress, retryAfterFull}
		}
		if !rated && e.rate != nil && !e.rate.AllowN(now, 1) {
			return &refusal{RefuseConnectionRate, LimitConnectionRate, 0}
		}
		e.conns++
	}
	lm.conns++
	return nil
}

// release gives back the place of a spark from ip.
func (lm *limiter) release(ip netip.Addr) {
	lm.mu.Lock()
	defer lm.mu.Unlock()
	lm.conns--
	if !lm.perAddress() {
		return
	}
	key := addrKey(ip)
	if e := lm.addrs[key]; e != nil {
		e.conns--
		if e.conns <= 0 && e.rate == nil {
			delete(lm.addrs, key)
		}
	}
}

// sparkLimiter is a spark's message and byte rates; nil when neither is
// limited. Only the spark's reading goroutine uses it.
type sparkLimiter struct {
	msgs  *rate.Limiter
	bytes *rate.Limiter
}

func (lm *limiter) forSpark() *sparkLimiter {
	if lm == nil || (lm.cfg.MessagesPerSecond <= 0 && lm.cfg.BytesPerSecond <= 0) {
		return nil
	}
	sl := &sparkLimiter{}
	if lm.cfg.MessagesPerSecond > 0 {
		sl.msgs = rate.NewLimiter(rate.Limit(lm.cfg.MessagesPerSecond), lm.cfg.MessagesBurst)
	}
	if lm.cfg.BytesPerSecond > 0 {
		sl.bytes = rate.NewLimiter(rate.Limit(lm.cfg.BytesPerSecond), lm.cfg.BytesBurst)
	}
	return sl
}

// allow takes a message of n bytes from the buckets, or reports the limit
// it went over.
func (sl *sparkLimiter) allow(n int) (Limit, bool) {
	now := time.Now()
	if sl.msgs != nil && !sl.msgs.AllowN(now, 1) {
		return LimitMessageRate, false
	}
	if sl.bytes != nil && !sl.bytes.AllowN(now, n) {
		return LimitByteRate, false
	}
	return 0, true
}

// received is the first look at a frame of n bytes read from link l: it is
// reported to the Observer and taken from the spark's rates. A spark over
// its rate is closed with 1008, and the frame dropped (false).
func (sp *Spark) received(n int) bool {
	if o := sp.srv.obs; o != nil {
		o.MessageIn(n)
	}
	if sp.rate == nil {
		return true
	}
	if lim, ok := sp.rate.allow(n); !ok {
		if o := sp.srv.obs; o != nil {
			o.LimitHit(lim)
		}
		sp.srv.log.Info("primus: spark over its rate; closing it", "spark", sp.id, "limit", lim.String(), "address", sp.addr.IP)
		sp.closeWith(ErrRateLimited, transport.StatusPolicyViolation, "rate limited")
		return false
	}
	return true
}

// opens reports whether r opens a connection, as far as the transformer
// can tell before it does.
func (s *Server) opens(r *http.Request) bool {
	return s.opener != nil && s.opener.Opens(r)
}

// limitRequest applies the limits to a request that opens a connection; it
// answers and reports false when the request is refused.
func (s *Server) limitRequest(w http.ResponseWriter, r *http.Request) bool {
	if s.limits == nil || !s.opens(r) {
		return true
	}
	ip := clientAddress(r, s.trusted).IP
	rf := s.limits.precheck(ip, s.recovery != nil && r.URL.Query().Get(paramResume) != "")
	if rf == nil {
		return true
	}
	status := http.StatusTooManyRequests
	if rf.reason == RefuseMaxConnections {
		status = http.StatusServiceUnavailable
	}
	s.reportRefusal(rf, status, ip)
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(rf.retry.Seconds()))))
	Refuse(w, &HTTPError{Status: status, Message: "primus: " + rf.text()})
	return false
}

// admitSpark takes a place for a new spark, or closes its connection and
// reports false.
func (s *Server) admitSpark(sp *Spark, c transport.Conn) bool {
	if s.limits == nil {
		return true
	}
	rf := s.limits.admit(sp.addr.IP, s.opener != nil)
	if rf == nil {
		sp.admitted = true
		return true
	}
	code := transport.StatusPolicyViolation
	if rf.reason == RefuseMaxConnections {
		code = transport.StatusTryAgainLater
	}
	s.reportRefusal(rf, code, sp.addr.IP)
	closeConn(c, code, rf.text())
	return false
}

// text is what a client refused by rf is told.
func (rf *refusal) text() string {
	switch rf.reason {
	case RefuseMaxConnections:
		return "server full"
	case RefuseConnectionRate:
		return "too many new connections"
	}
	return "too many connections"
}

// reportRefusal counts and logs a connection refused by a limit, with the
// HTTP status or close code the client got.
func (s *Server) reportRefusal(rf *refusal, code int, ip netip.Addr) {
	if o := s.obs; o != nil {
		o.LimitHit(rf.limit)
	}
	s.observeRefused(rf.reason, code)
	s.log.Info("primus: connection refused by a limit", "limit", rf.limit.String(), "address", ip)
}

// releaseSpark gives back an admitted spark's place.
func (sp *Spark) releaseSpark() {
	if sp.admitted {
		sp.srv.limits.release(sp.addr.IP)
	}
}
