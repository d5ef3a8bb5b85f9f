// Package substream is the substream plugin: named streams over one primus
// connection, wire-compatible with the npm substream 0.2.0 (section 8.4 of
// the protocol notes), so that a browser running the stock plugin client
// talks to a Go server unchanged.
//
// A message on a substream is {"substream": name, "args": payload}; the
// payload "substream::end" ends the stream on the receiving side, without an
// answer. A stream exists on one side once that side creates it — nothing is
// sent then — and a packet is the plugin's only when its receiver has a
// stream of that name: otherwise it is ordinary data. Both sides create
// streams lazily, by name.
//
// # Server
//
// Create a Substream, pass it in primus.Options.Plugins, and open streams
// on a connection, typically when it arrives:
//
//	ss := substream.New(nil)
//	srv, err := primus.New(&primus.Options{Plugins: []plugin.Plugin{ss}})
//	srv.OnConnection(func(sp *primus.Spark) {
//		logs, _ := ss.Stream(sp, "logs", &substream.StreamOptions{
//			OnData: func(m *primus.Message) { … },
//		})
//		_ = logs.Write("welcome")
//	})
//
// # Go client
//
// The client side is a Client value passed in primus.ClientOptions.Plugins:
//
//	sc := substream.NewClient()
//	c, err := primus.Dial(ctx, url, &primus.ClientOptions{Plugins: []plugin.Plugin{sc}})
//	logs, err := sc.Stream("logs", &substream.StreamOptions{OnData: func(m *primus.Message) { … }})
//
// A server's streams end with their connection; a client's outlive
// reconnections and end with the client, as with the npm plugin. A
// connection has at most Options.MaxStreams (1024) streams open on the
// server; over it Stream returns ErrTooManyStreams. A panic in a stream's
// handlers ends its connection (status 1011, a *primus.PanicError), as a
// panic in the connection's own handlers does; the other streams of an
// ending connection still end and run their handlers. Either side
// may End a stream, after which a new stream of the same name may be
// created. A substream works inside a multiplex channel too (streams over a
// channel subscription).
package substream
