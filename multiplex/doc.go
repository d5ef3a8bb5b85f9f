// Package multiplex is the multiplex plugin: named channels over one
// primus connection, wire-compatible with the npm primus-multiplex
// (cayasso's, and its maintained fork @cocalc/primus-multiplex 1.1.0; section
// 8.3 of the protocol notes), so that a browser running the stock plugin
// client talks to a Go server unchanged.
//
// Every packet is an array [type, id, channel] or [type, id, channel,
// payload], type 0 MESSAGE, 1 SUBSCRIBE, 2 UNSUBSCRIBE. The id is chosen by
// the client for each channel instance, so one connection may hold several
// subscriptions to one channel name, each distinct. Such arrays are consumed
// by the plugin; other arrays are ordinary data.
//
// # Server
//
// Create a Multiplex, pass it in primus.Options.Plugins and declare
// channels. Each subscription is a Spark with its own data and end handlers:
//
//	mx := multiplex.New(nil)
//	srv, err := primus.New(&primus.Options{Plugins: []plugin.Plugin{mx}})
//	chat := mx.Channel("chat")
//	chat.OnConnection(func(cs *multiplex.Spark) {
//		cs.OnData(func(m *primus.Message) { _ = chat.Write(m.Raw()) }) // to every subscriber
//	})
//
// A subscription to a name that has no channel is refused with an
// UNSUBSCRIBE, which ends the client's channel instance.
//
// # Go client
//
// The client side is a Client value passed in primus.ClientOptions.Plugins;
// Client.Channel subscribes:
//
//	mc := multiplex.NewClient()
//	c, err := primus.Dial(ctx, url, &primus.ClientOptions{Plugins: []plugin.Plugin{mc}})
//	chat, err := mc.Channel("chat", &multiplex.ChannelOptions{OnData: func(m *primus.Message) { … }})
//	err = chat.Write("hello")
//
// After a reconnection every channel instance subscribes again with its id,
// ahead of the writes queued while offline.
//
// # Differences from the npm plugin, on purpose
//
//   - Falsy payloads (0, "", false, null) are sent; the npm plugin drops
//     them, and a MESSAGE without a payload is delivered here as null.
//   - A subscription lives on its connection: the late close of an old
//     connection never ends the subscription a reconnected client made with
//     the same id on its new one.
//   - The server sends one UNSUBSCRIBE when it ends a subscription (the npm
//     server sends two), and none in answer to the client's.
//   - The server never sends the client an array for a channel instance the
//     client does not own (the npm client throws on those); channels are
//     declared, not created by whatever name a client sends.
//   - Multiplex packets do not reach the connection's data handlers.
//   - A connection holds at most Options.MaxSubscriptions subscriptions
//     (1024 by default), each with an id of at most Options.MaxIDBytes
//     (128); a subscription over either limit is refused with an
//     UNSUBSCRIBE.
//
// # Panics
//
// A panic in a channel's handlers (connection, data, end, disconnection) or
// in a plugin inside the channel ends the whole connection, as a panic in
// the connection's own handlers does: status 1011 and a *primus.PanicError
// on the server, the client ended with it on a Go client. The other handlers
// of an ending subscription still run.
//
// # Plugins inside a channel
//
// A channel hosts plugins of its own: on the server Channel.Use, on a client
// ChannelOptions.Plugins. Each subscription is then a connection for them,
// so that an emitter.Emitter on a channel sends events and acknowledgements
// over it, as the npm emitter and multiplex plugins do together (an emitter
// packet inside a multiplex packet).
package multiplex
