package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/go-primus/primus/cluster"
	"github.com/go-primus/primus/emitter"
	"github.com/go-primus/primus/multiplex"
	"github.com/go-primus/primus/rooms"
	"github.com/go-primus/primus/substream"
)

// The counts of rooms, clusters and plugins are read when Prometheus
// scrapes, from the Stats methods those packages have (they never import
// Prometheus). Each kind is a small interface, so that anything with the
// same counts can be added.

// RoomsSource is *rooms.Rooms.
type RoomsSource interface{ Stats() rooms.Stats }

// ClusterSource is *cluster.Cluster.
type ClusterSource interface {
	ID() string
	Stats() cluster.Stats
}

// EmitterSource is *emitter.Emitter (or *emitter.Client).
type EmitterSource interface{ Stats() emitter.Stats }

// MultiplexSource is *multiplex.Multiplex.
type MultiplexSource interface{ Stats() multiplex.Stats }

// SubstreamSource is *substream.Substream.
type SubstreamSource interface{ Stats() substream.Stats }

var (
	_ RoomsSource     = (*rooms.Rooms)(nil)
	_ ClusterSource   = (*cluster.Cluster)(nil)
	_ EmitterSource   = (*emitter.Emitter)(nil)
	_ MultiplexSource = (*multiplex.Multiplex)(nil)
	_ SubstreamSource = (*substream.Substream)(nil)
)

// AddRooms adds the counts of r: primus_rooms, primus_room_members and
// primus_room_memberships (summed over every Rooms added).
func (m *Metrics) AddRooms(r RoomsSource) {
	m.pull.add(func(p *puller) { p.rooms = append(p.rooms, r) })
}

// AddCluster adds the counters of a cluster node: primus_cluster_*, with
// the node's id as the node label.
func (m *Metrics) AddCluster(c ClusterSource) {
	m.pull.add(func(p *puller) { p.clusters = append(p.clusters, c) })
}

// AddEmitter adds the acknowledgements of an emitter:
// primus_emitter_acks_pending and primus_emitter_ack_timeouts_total.
func (m *Metrics) AddEmitter(e EmitterSource) {
	m.pull.add(func(p *puller) { p.emitters = append(p.emitters, e) })
}

// AddMultiplex adds the channels open on a multiplex: primus_multiplex_channels.
func (m *Metrics) AddMultiplex(mx MultiplexSource) {
	m.pull.add(func(p *puller) { p.multiplexes = append(p.multiplexes, mx) })
}

// AddSubstream adds the streams open on a substream plugin: primus_substreams.
func (m *Metrics) AddSubstream(ss SubstreamSource) {
	m.pull.add(func(p *puller) { p.substreams = append(p.substreams, ss) })
}

// puller is the collector of the counts read at a scrape.
type puller struct {
	mu          sync.Mutex
	rooms       []RoomsSource
	clusters    []ClusterSource
	emitters    []EmitterSource
	multiplexes []MultiplexSource
	substreams  []SubstreamSource

	roomCount, roomMembers, roomMemberships                     *prometheus.Desc
	published, received, dropped, unknown, malformed, queue, up *prometheus.Desc
	duplicates, gaps, lag                                       *prometheus.Desc
	acksPending, ackTimeouts                                    *prometheus.Desc
	channels, streams                                           *prometheus.Desc
}

func newPuller() *puller {
	node := []string{"node"}
	return &puller{
		roomCount:       prometheus.NewDesc("primus_rooms", "Rooms with members on this node.", nil, nil),
		roomMembers:     prometheus.NewDesc("primus_room_members", "Sparks in at least one room on this node.", nil, nil),
		roomMemberships: prometheus.NewDesc("primus_room_memberships", "Memberships (a spark in a room) on this node.", nil, nil),
		published:       prometheus.NewDesc("primus_cluster_published_total", "Messages handed to the broker for the other nodes.", node, nil),
		received:        prometheus.NewDesc("primus_cluster_received_total", "Messages received from the other nodes.", node, nil),
		dropped:         prometheus.NewDesc("primus_cluster_dropped_total", "Messages for other nodes that were lost (queue full, broker or registry failure).", node, nil),
		unknown:         prometheus.NewDesc("primus_cluster_unknown_total", "Writes to spark ids the registry did not know (sent to every node instead), and messages for sparks that had left.", node, nil),
		malformed:       prometheus.NewDesc("primus_cluster_malformed_total", "Messages from the broker that were not the cluster's.", node, nil),
		queue:           prometheus.NewDesc("primus_cluster_queue_bytes", "Bytes waiting to be published to the other nodes.", node, nil),
		up:              prometheus.NewDesc("primus_cluster_broker_up", "1 while the broker is reachable and takes messages, 0 otherwise.", node, nil),
		duplicates:      prometheus.NewDesc("primus_cluster_duplicates_total", "With durable channels: copies of messages a retried publish made, dropped on arrival.", node, nil),
		gaps:            prometheus.NewDesc("primus_cluster_gaps_total", "With durable channels: times the stream had trimmed messages this node had not read (lost for it).", node, nil),
		lag:             prometheus.NewDesc("primus_cluster_catchup_lag_seconds", "With durable channels: the age of the stream entry this node delivered last (how far behind it reads).", node, nil),
		acksPending:     prometheus.NewDesc("primus_emitter_acks_pending", "Emitter acknowledgements waited for now.", nil, nil),
		ackTimeouts:     prometheus.NewDesc("primus_emitter_ack_timeouts_total", "Emitter acknowledgements that timed out.", nil, nil),
		channels:        prometheus.NewDesc("primus_multiplex_channels", "Multiplex channels open on every connection.", nil, nil),
		streams:         prometheus.NewDesc("primus_substreams", "Substreams open on every connection.", nil, nil),
	}
}

func (p *puller) add(f func(*puller)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

// Describe implements prometheus.Collector.
func (p *puller) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		p.roomCount, p.roomMembers, p.roomMemberships,
		p.published, p.received, p.dropped, p.unknown, p.malformed, p.queue, p.up,
		p.duplicates, p.gaps, p.lag,
		p.acksPending, p.ackTimeouts, p.channels, p.streams,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: a family is there once a source
// of its kind was added.
func (p *puller) Collect(ch chan<- prometheus.Metric) {
	p.mu.Lock()
	rms, cls, ems, mxs, sss := p.rooms, p.clusters, p.emitters, p.multiplexes, p.substreams
	p.mu.Unlock()

	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	if len(rms) > 0 {
		var st rooms.Stats
		for _, r := range rms {
			s := r.Stats()
			st.Rooms += s.Rooms
			st.Members += s.Members
			st.Memberships += s.Memberships
		}
		gauge(p.roomCount, float64(st.Rooms))
		gauge(p.roomMembers, float64(st.Members))
		gauge(p.roomMemberships, float64(st.Memberships))
	}
	for _, c := range cls {
		id, st := c.ID(), c.Stats()
		counter(p.published, st.Published, id)
		counter(p.received, st.Received, id)
		counter(p.dropped, st.Dropped, id)
		counter(p.unknown, st.Unknown, id)
		counter(p.malformed, st.Malformed, id)
		gauge(p.queue, float64(st.QueueBytes), id)
		up := 0.0
		if st.BrokerUp {
			up = 1
		}
		gauge(p.up, up, id)
		if st.Durable {
			counter(p.duplicates, st.Duplicates, id)
			counter(p.gaps, st.Gaps, id)
			gauge(p.lag, st.Lag.Seconds(), id)
		}
	}
	if len(ems) > 0 {
		var st emitter.Stats
		for _, e := range ems {
			s := e.Stats()
			st.PendingAcks += s.PendingAcks
			st.AckTimeouts += s.AckTimeouts
		}
		gauge(p.acksPending, float64(st.PendingAcks))
		counter(p.ackTimeouts, st.AckTimeouts)
	}
	if len(mxs) > 0 {
		n := 0
		for _, mx := range mxs {
			n += mx.Stats().Subscriptions
		}
		gauge(p.channels, float64(n))
	}
	if len(sss) > 0 {
		n := 0
		for _, ss := range sss {
			n += ss.Stats().Streams
		}
		gauge(p.streams, float64(n))
	}
}
