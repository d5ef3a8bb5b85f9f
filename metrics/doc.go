// Package metrics keeps Prometheus metrics of primus servers, on
// github.com/prometheus/client_golang. The core never imports Prometheus:
// it reports its events to a primus.Observer, which *Metrics implements, and
// rooms, clusters and plugins expose counts (their Stats methods) that
// *Metrics reads when Prometheus scrapes.
//
//	m, err := metrics.New(prometheus.DefaultRegisterer)
//	if err != nil {
//		log.Fatal(err)
//	}
//	srv, err := primus.New(&primus.Options{Observer: m})
//	r := rooms.New(srv, nil)
//	m.AddRooms(r)
//	mux.Handle("/metrics", promhttp.Handler())
//
// Every name starts with primus_ and every label comes from a small fixed
// set (a transformer's name, a reason, a limit, a status code, a cluster
// node's id): never a spark id, an address or a room name. The list, with
// the scrape configuration and a few queries, is in the README's Metrics
// section.
//
// With metrics on, a message costs a few atomic additions: no lock, no
// allocation, no label lookup (every counter on the per-message path is
// resolved once).
package metrics
