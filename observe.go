package primus

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Observer receives the server's events, for metrics (package metrics
// implements it on Prometheus). Set it with Options.Observer; without one,
// the cost of observation is one nil check per event.
//
// Methods are called from many goroutines at once, some of them on the
// per-message path (MessageIn, MessageOut, Queued, WriteDuration): they
// must be safe for concurrent use, must not block, and should neither lock
// nor allocate — atomic counters, or Prometheus counters resolved once per
// label value, are what they are made for. Label values passed to them
// (transformer names, reasons) come from small fixed sets; a spark id, an
// address or a room name never does.
//
// Embed NopObserver in an implementation so that it keeps compiling when
// methods are added.
type Observer interface {
	// ConnOpened: a spark was created (a new connection, not a resume).
	ConnOpened(transformer string)
	// ConnClosed: a spark ended, for reason.
	ConnClosed(transformer string, reason CloseReason)
	// ConnRefused: a request or connection was refused before it became a
	// spark; code is the HTTP status it was answered with (4xx, 5xx) or,
	// for one refused after the transport opened it, the close code (10xx).
	ConnRefused(transformer string, reason RefuseReason, code int)
	// Handshake: a spark was created d after its request arrived.
	Handshake(transformer string, d time.Duration)

	// MessageIn: a frame of n bytes was read from a client (control
	// messages included).
	MessageIn(n int)
	// MessageOut: a frame of n bytes was written to a client (control
	// messages included).
	MessageOut(n int)
	// DecodeError: a received message failed to decode (or validate).
	DecodeError()
	// WriteDuration: one write to a transport took d. Writes are sampled:
	// one in writeSample per connection.
	WriteDuration(d time.Duration)
	// Queued: a message was queued behind others for a spark whose queue
	// now holds n bytes (see Options.SendQueueBytes). Messages written at
	// once are not reported.
	Queued(n int64)
	// HeartbeatRTT: a client answered a heartbeat ping d after it was sent.
	HeartbeatRTT(d time.Duration)
	// LimitHit: a limit of Options.Limits refused a request, a connection
	// or a message.
	LimitHit(l Limit)

	// Resumed: a dropped spark was resumed (Options.Recovery), and replayed
	// messages were written to it again.
	Resumed(replayed int)
	// ResumeFailed: a client asked to resume a spark and got a new one;
	// reason is "expired", "overflow", "ended" or "unknown".
	ResumeFailed(reason string)
}

// NopObserver is an Observer that does nothing; embed it in an Observer to
// implement only some of the methods.
type NopObserver struct{}

func (NopObserver) ConnOpened(string)                     {}
func (NopObserver) ConnClosed(string, CloseReason)        {}
func (NopObserver) ConnRefused(string, RefuseReason, int) {}
func (NopObserver) Handshake(string, time.Duration)       {}
func (NopObserver) MessageIn(int)                         {}
func (NopObserver) MessageOut(int)                        {}
func (NopObserver) DecodeError()                          {}
func (NopObserver) WriteDuration(time.Duration)           {}
func (NopObserver) Queued(int64)                          {}
func (NopObserver) HeartbeatRTT(time.Duration)            {}
func (NopObserver) LimitHit(Limit)                        {}
func (NopObserver) Resumed(int)                           {}
func (NopObserver) ResumeFailed(string)                   {}

var _ Observer = NopObserver{}

// CloseReason is why a spark ended, as a small fixed set (for metric
// labels).
type CloseReason uint8

// Close reasons.
const (
	// CloseNormal: either side ended the spark, or the client went away.
	CloseNormal CloseReason = iota
	// CloseHeartbeatTimeout: ErrHeartbeatTimeout.
	CloseHeartbeatTimeout
	// CloseSlowConsumer: ErrSlowConsumer.
	CloseSlowConsumer
	// CloseOversize: ErrMessageTooBig.
	CloseOversize
	// CloseRateLimited: ErrRateLimited.
	CloseRateLimited
	// CloseShutdown: the server shut down (Shutdown, ShutdownReconnect).
	CloseShutdown
	// CloseWriteTimeout: ErrWriteTimeout.
	CloseWriteTimeout
	// CloseInvalidData: ErrInvalidUTF8 or ErrUnsupportedData.
	CloseInvalidData
	// ClosePanic: a handler panicked (*PanicError).
	ClosePanic
	// CloseRecoveryLost: a dropped spark's client did not come back in time
	// (ErrRecoveryExpired) or its messages overflowed (ErrRecoveryOverflow).
	CloseRecoveryLost
	// CloseError: any other reason.
	CloseError

	closeReasons // the number of reasons
)

var closeReasonNames = [closeReasons]string{
	"normal", "heartbeat_timeout", "slow_consumer", "oversize", "rate_limited", "server_shutdown",
	"write_timeout", "invalid_data", "panic", "recovery_lost", "error",
}

// String returns the reason's label: "normal", "heartbeat_timeout",
// "slow_consumer", "oversize", "rate_limited", "server_shutdown",
// "write_timeout", "invalid_data", "panic", "recovery_lost" or "error".
func (r CloseReason) String() string {
	if r < closeReasons {
		return closeReasonNames[r]
	}
	return "error"
}

// CloseReasons returns every close reason, for pre-resolving labels.
func CloseReasons() []CloseReason {
	out := make([]CloseReason, closeReasons)
	for i := range out {
		out[i] = CloseReason(i)
	}
	return out
}

// closeReasonOf maps a spark's end reason to its label; closing tells that
// the server is shutting down.
func closeReasonOf(reason error, closing bool) CloseReason {
	switch {
	case reason == nil:
		if closing {
			return CloseShutdown
		}
		return CloseNormal
	case errors.Is(reason, ErrServerClosed):
		return CloseShutdown
	case errors.Is(reason, ErrHeartbeatTimeout):
		return CloseHeartbeatTimeout
	case errors.Is(reason, ErrSlowConsumer):
		return CloseSlowConsumer
	case errors.Is(reason, ErrMessageTooBig):
		return CloseOversize
	case errors.Is(reason, ErrRateLimited):
		return CloseRateLimited
	case errors.Is(reason, ErrWriteTimeout):
		return CloseWriteTimeout
	case errors.Is(reason, ErrInvalidUTF8), errors.Is(reason, ErrUnsupportedData):
		return CloseInvalidData
	case errors.Is(reason, ErrPanic):
		return ClosePanic
	case errors.Is(reason, ErrRecoveryExpired), errors.Is(reason, ErrRecoveryOverflow):
		return CloseRecoveryLost
	}
	return CloseError
}

// RefuseReason is why a request or connection was refused before it became
// a spark.
type RefuseReason uint8

// Refusal reasons.
const (
	// RefuseAuthorize: the Authorize function refused the request.
	RefuseAuthorize RefuseReason = iota
	// RefuseHandshakeTimeout: middleware and authorization took longer than
	// HandshakeTimeout.
	RefuseHandshakeTimeout
	// RefuseShutdown: the server is shutting down.
	RefuseShutdown
	// RefuseMaxConnections: Limits.MaxConnections.
	RefuseMaxConnections
	// RefuseMaxConnectionsPerAddress: Limits.MaxConnectionsPerAddress.
	RefuseMaxConnectionsPerAddress
	// RefuseConnectionRate: Limits.NewConnectionsPerSecond.
	RefuseConnectionRate

	refuseReasons
)

var refuseReasonNames = [refuseReasons]string{
	"authorize", "handshake_timeout", "server_shutdown", "max_connections", "max_connections_per_address", "connection_rate",
}

// String returns the reason's label: "authorize", "handshake_timeout",
// "server_shutdown", "max_connections", "max_connections_per_address" or
// "connection_rate".
func (r RefuseReason) String() string {
	if r < refuseReasons {
		return refuseReasonNames[r]
	}
	return "unknown"
}

// Limit names one of the limits of Options.Limits.
type Limit uint8

// Limits.
const (
	// LimitConnections: Limits.MaxConnections.
	LimitConnections Limit = iota
	// LimitConnectionsPerAddress: Limits.MaxConnectionsPerAddress.
	LimitConnectionsPerAddress
	// LimitConnectionRate: Limits.NewConnectionsPerSecond.
	LimitConnectionRate
	// LimitMessageRate: Limits.MessagesPerSecond.
	LimitMessageRate
	// LimitByteRate: Limits.BytesPerSecond.
	LimitByteRate

	limitCount
)

var limitNames = [limitCount]string{"connections", "connections_per_address", "connection_rate", "message_rate", "byte_rate"}

// String returns the limit's label: "connections",
// "connections_per_address", "connection_rate", "message_rate" or
// "byte_rate".
func (l Limit) String() string {
	if l < limitCount {
		return limitNames[l]
	}
	return "unknown"
}

// AllLimits returns every limit, for pre-resolving labels.
func AllLimits() []Limit {
	out := make([]Limit, limitCount)
	for i := range out {
		out[i] = Limit(i)
	}
	return out
}

// writeSample: one write in this many, per connection, is timed for
// Observer.WriteDuration (a power of two).
const writeSample = 64

// handshakeStartKey holds when a request reached ServeHTTP, with an
// Observer.
type handshakeStartKey struct{}

// observeStart notes when a handshake began, for Observer.Handshake.
func (s *Server) observeStart(ctx context.Context) context.Context {
	if s.obs == nil {
		return ctx
	}
	return context.WithValue(ctx, handshakeStartKey{}, time.Now())
}

// observeOpened reports a new spark made from request r.
func (s *Server) observeOpened(r *http.Request) {
	if s.obs == nil {
		return
	}
	s.obs.ConnOpened(s.tname)
	if t, ok := r.Context().Value(handshakeStartKey{}).(time.Time); ok {
		s.obs.Handshake(s.tname, time.Since(t))
	}
}

// observeRefused reports a refusal.
func (s *Server) observeRefused(reason RefuseReason, code int) {
	if s.obs != nil {
		s.obs.ConnRefused(s.tname, reason, code)
	}
}

// observeResumeFailed reports a resume that failed for the wire reason why.
func (s *Server) observeResumeFailed(why string) {
	if s.obs != nil {
		s.obs.ResumeFailed(why)
	}
}

// observeClosed reports the end of sp.
func (sp *Spark) observeClosed(reason error) {
	s := sp.srv
	if s.obs == nil {
		return
	}
	s.mu.RLock()
	closing := s.closing
	s.mu.RUnlock()
	s.obs.ConnClosed(s.tname, closeReasonOf(reason, closing))
}

// observePong reports the round trip of a heartbeat from the client's
// "primus::pong::<ms>", which echoes the ping's time. A time that is not
// one the server could have sent (a client's own invention) is ignored.
func (sp *Spark) observePong(s string) {
	o := sp.srv.obs
	if o == nil {
		return
	}
	ms, err := strconv.ParseInt(strings.TrimPrefix(s, pongPrefix), 10, 64)
	if err != nil {
		return
	}
	rtt := time.Since(time.UnixMilli(ms))
	if rtt < 0 || rtt > 2*sp.srv.pingInterval {
		return
	}
	o.HeartbeatRTT(rtt)
}

// startWrite begins a write to l by its write turn's holder: with an
// Observer, one write in writeSample is timed, and it returns its start.
func (sp *Spark) startWrite(l *link) time.Time {
	if sp.srv.obs == nil {
		return time.Time{}
	}
	l.writes++
	if l.writes&(writeSample-1) != 1 {
		return time.Time{}
	}
	return time.Now()
}

// wrote reports a frame of n bytes written to a client, begun at t0 (from
// startWrite).
func (sp *Spark) wrote(t0 time.Time, n int) {
	o := sp.srv.obs
	if o == nil {
		return
	}
	o.MessageOut(n)
	if !t0.IsZero() {
		o.WriteDuration(time.Since(t0))
	}
}

// observeQueued reports a spark's queue after a message joined it.
func (sp *Spark) observeQueued(n int64) {
	if o := sp.srv.obs; o != nil {
		o.Queued(n)
	}
}

// statusOf is the HTTP status Refuse answers err with.
func statusOf(err error) int {
	var sc interface{ StatusCode() int }
	if errors.As(err, &sc) && sc.StatusCode() >= 400 && sc.StatusCode() <= 599 {
		return sc.StatusCode()
	}
	return http.StatusUnauthorized
}
