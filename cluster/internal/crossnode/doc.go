// Package crossnode holds the tests of recovery across the nodes of a
// cluster (cluster Options.Recovery) on both backends. They are here, one
// package running them one after the other, rather than in each backend's
// package: each runs hundreds of clients, and packages' tests run in
// parallel.
package crossnode
