package metrics

import (
	"errors"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/go-primus/primus"
)

// Metrics is a primus.Observer that keeps Prometheus metrics, and a
// collector of the counts of rooms, clusters and plugins added to it. One
// Metrics serves any number of servers (their metrics add up, by
// transformer); register it once per registry.
//
// The per-message methods cost a few atomic additions: every counter they
// touch is resolved once, when the Metrics is made, and connection metrics
// once per transformer.
type Metrics struct {
	connections *prometheus.GaugeVec
	opened      *prometheus.CounterVec
	closed      *prometheus.CounterVec
	refused     *prometheus.CounterVec
	handshake   *prometheus.HistogramVec

	msgsIn, bytesIn   prometheus.Counter
	msgsOut, bytesOut prometheus.Counter
	decodeErrors      prometheus.Counter
	writeDuration     prometheus.Histogram
	queueBytes        prometheus.Histogram
	heartbeatRTT      prometheus.Histogram
	limitHits         []prometheus.Counter // by primus.Limit
	resumes           prometheus.Counter
	resumeFailures    *prometheus.CounterVec
	replayed          prometheus.Counter

	tmu  sync.Mutex
	byT  atomic.Pointer[map[string]*perTransformer]
	pull *puller
}

// perTransformer is a transformer's connection metrics, resolved once.
type perTransformer struct {
	open      prometheus.Gauge
	opened    prometheus.Counter
	closed    []prometheus.Counter // by primus.CloseReason
	handshake prometheus.Observer
}

var _ primus.Observer = (*Metrics)(nil)

// Buckets of the histograms.
var (
	// latencyBuckets: handshakes and heartbeat round trips, 1 ms to 10 s.
	latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	// writeBuckets: one write to a transport, 10 µs to 2.6 s.
	writeBuckets = prometheus.ExponentialBuckets(10e-6, 4, 10)
	// queueBuckets: a spark's send queue, 1 KiB to 64 MiB.
	queueBuckets = prometheus.ExponentialBuckets(1024, 4, 9)
)

// New makes the metrics and registers them with reg
// (prometheus.DefaultRegisterer for the usual /metrics). It fails when a
// metric of the same name is registered already.
func New(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("metrics: nil registerer")
	}
	m := &Metrics{
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "primus_connections",
			Help: "Sparks connected now (dropped ones waiting to be resumed included).",
		}, []string{"transformer"}),
		opened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "primus_connections_opened_total",
			Help: "Sparks created.",
		}, []string{"transformer"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "primus_connections_closed_total",
			Help: "Sparks ended, by reason.",
		}, []string{"transformer", "reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "primus_connections_refused_total",
			Help: "Requests and connections refused before they became sparks, by reason and HTTP status (or close code).",
		}, []string{"transformer", "reason", "code"}),
		handshake: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "primus_handshake_duration_seconds",
			Help:    "Time from a request's arrival to its spark's creation (middleware, authorization and the transport's handshake).",
			Buckets: latencyBuckets,
		}, []string{"transformer"}),
		msgsIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "primus_messages_received_total",
			Help: "Frames read from clients (heartbeats and other control messages included).",
		}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "primus_received_bytes_total",
			Help: "Bytes of the frames read from clients.",
		}),
		msgsOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "primus_messages_sent_total",
			Help: "Frames written to clients (heartbeats and other control messages included).",
		}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "primus_sent_bytes_total",
			Help: "Bytes of the frames written to clients.",
		}),
		decodeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "primus_decode_errors_total",
			Help: "Messages from clients that failed to decode or validate.",
		}),
		writeDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "primus_write_duration_seconds",
			Help:    "Time one write to a transport took (one write in 64 per connection is timed).",
			Buckets: writeBuckets,
		}),
		queueBytes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "primus_send_queue_bytes",
			Help:    "Bytes in a spark's send queue when a message had to wait in it (messages written at once are not counted).",
			Buckets: queueBuckets,
		}),
		heartbeatRTT: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "primus_heartbeat_rtt_seconds",
			Help:    "Round trip of heartbeats: from a ping to the client's pong.",
			Buckets: latencyBuckets,
		}),
		resumes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "primus_resumes_total",
			Help: "Dropped sparks resumed by their client (recovery).",
		}),
		resumeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "primus_resume_failures_total",
			Help: "Resumes that failed, by reason; the client got a new spark.",
		}, []string{"reason"}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "primus_replayed_messages_total",
			Help: "Messages written again to resumed sparks.",
		}),
		pull: newPuller(),
	}
	limitHits := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "primus_limit_hits_total",
		Help: "Requests, connections and messages refused by a limit (primus.Limits).",
	}, []string{"limit"})
	for _, l := range primus.AllLimits() {
		m.limitHits = append(m.limitHits, limitHits.WithLabelValues(l.String()))
	}
	for _, r := range resumeReasons {
		m.resumeFailures.WithLabelValues(r)
	}
	empty := map[string]*perTransformer{}
	m.byT.Store(&empty)

	cs := []prometheus.Collector{
		m.connections, m.opened, m.closed, m.refused, m.handshake,
		m.msgsIn, m.bytesIn, m.msgsOut, m.bytesOut, m.decodeErrors,
		m.writeDuration, m.queueBytes, m.heartbeatRTT, limitHits,
		m.resumes, m.resumeFailures, m.replayed, m.pull,
	}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return nil, err
		}
	}
	return m, nil
}

// resumeReasons are the reasons of Observer.ResumeFailed.
var resumeReasons = []string{"expired", "overflow", "ended", "unknown"}

// transformer returns the transformer's metrics, making them on first use.
func (m *Metrics) transformer(name string) *perTransformer {
	if p := (*m.byT.Load())[name]; p != nil {
		return p
	}
	m.tmu.Lock()
	defer m.tmu.Unlock()
	old := *m.byT.Load()
	if p := old[name]; p != nil {
		return p
	}
	p := &perTransformer{
		open:      m.connections.WithLabelValues(name),
		opened:    m.opened.WithLabelValues(name),
		handshake: m.handshake.WithLabelValues(name),
	}
	for _, r := range primus.CloseReasons() {
		p.closed = append(p.closed, m.closed.WithLabelValues(name, r.String()))
	}
	next := maps.Clone(old)
	next[name] = p
	m.byT.Store(&next)
	return p
}

// ConnOpened implements primus.Observer.
func (m *Metrics) ConnOpened(transformer string) {
	p := m.transformer(transformer)
	p.open.Inc()
	p.opened.Inc()
}

// ConnClosed implements primus.Observer.
func (m *Metrics) ConnClosed(transformer string, reason primus.CloseReason) {
	p := m.transformer(transformer)
	p.open.Dec()
	if int(reason) < len(p.closed) {
		p.closed[reason].Inc()
	}
}

// ConnRefused implements primus.Observer.
func (m *Metrics) ConnRefused(transformer string, reason primus.RefuseReason, code int) {
	m.refused.WithLabelValues(transformer, reason.String(), strconv.Itoa(code)).Inc()
}

// Handshake implements primus.Observer.
func (m *Metrics) Handshake(transformer string, d time.Duration) {
	m.transformer(transformer).handshake.Observe(d.Seconds())
}

// MessageIn implements primus.Observer.
func (m *Metrics) MessageIn(n int) {
	m.msgsIn.Inc()
	m.bytesIn.Add(float64(n))
}

// MessageOut implements primus.Observer.
func (m *Metrics) MessageOut(n int) {
	m.msgsOut.Inc()
	m.bytesOut.Add(float64(n))
}

// DecodeError implements primus.Observer.
func (m *Metrics) DecodeError() { m.decodeErrors.Inc() }

// WriteDuration implements primus.Observer.
func (m *Metrics) WriteDuration(d time.Duration) { m.writeDuration.Observe(d.Seconds()) }

// Queued implements primus.Observer.
func (m *Metrics) Queued(n int64) { m.queueBytes.Observe(float64(n)) }

// HeartbeatRTT implements primus.Observer.
func (m *Metrics) HeartbeatRTT(d time.Duration) { m.heartbeatRTT.Observe(d.Seconds()) }

// LimitHit implements primus.Observer.
func (m *Metrics) LimitHit(l primus.Limit) {
	if int(l) < len(m.limitHits) {
		m.limitHits[l].Inc()
	}
}

// Resumed implements primus.Observer.
func (m *Metrics) Resumed(replayed int) {
	m.resumes.Inc()
	m.replayed.Add(float64(replayed))
}

// ResumeFailed implements primus.Observer.
func (m *Metrics) ResumeFailed(reason string) {
	for _, r := range resumeReasons {
		if r == reason {
			m.resumeFailures.WithLabelValues(r).Inc()
			return
		}
	}
	m.resumeFailures.WithLabelValues("unknown").Inc()
}
