// Package emitter is the emitter plugin: named events with arguments and
// acknowledgements over a primus connection, wire-compatible with the npm
// primus-emitter 3.1.1 (section 8.1 of the protocol notes), so that a
// browser running the stock plugin client talks to a Go server unchanged.
//
// On the wire an event is {"type":0,"data":[event, args…]} plus "id":n when
// the sender wants an acknowledgement (ids count from 1 per connection and
// direction), and the acknowledgement is {"id":n,"type":1,"data":[args…]}.
// Emitter packets are consumed by the plugin: data handlers never see them
// (the npm plugin also hands them to data listeners; ours does not).
//
// # Server
//
// Create an Emitter, pass it in primus.Options.Plugins and register
// handlers:
//
//	em := emitter.New(nil)
//	srv, err := primus.New(&primus.Options{Plugins: []plugin.Plugin{em}})
//	em.On("chat", func(ev *emitter.Event) {
//		var text string
//		if err := ev.Args.Decode(&text); err != nil {
//			return
//		}
//		_ = ev.Ack("received")                  // the sender's callback
//		_ = em.Broadcast("chat", ev.Spark.ID(), text) // everyone
//	})
//
// Send, SendAck and SendAckFunc address one connection; Broadcast all of
// them. SendAck waits for the acknowledgement with a context and
// Options.AckTimeout, and fails with ErrDisconnected when the connection ends
// first. A connection waits for at most Options.MaxPendingAcks (1024)
// acknowledgements at once; over it SendAck and SendAckFunc return
// ErrTooManyPending without sending, so that a peer that never answers
// cannot grow the server's memory.
//
// # Go client
//
// The client side is a Client value: create it, register its handlers,
// pass it in primus.ClientOptions.Plugins, and use it — its methods act on
// that client:
//
//	events := emitter.NewClient(nil)
//	events.On("chat", func(ev *emitter.Event) { … })
//	c, err := primus.Dial(ctx, url, &primus.ClientOptions{Plugins: []plugin.Plugin{events}})
//	reply, err := events.SendAck(ctx, "chat", "hello")
//
// # Types
//
// Arguments arrive as Args, one message each, decoded on demand into any
// Go type (Args.Decode). The generic On decodes an event's first argument
// into a type of your choice, and Result an acknowledgement's:
//
//	emitter.On(em, "move", func(ev *emitter.Event, m Move) { … })
//	n, err := emitter.Result[int](events.SendAck(ctx, "count"))
//
// # Handlers and blocking
//
// Handlers run in the reading goroutine of their connection, in order. A
// handler must not block on an acknowledgement from its own connection
// (SendAck): that acknowledgement is read by the goroutine that waits. Use
// SendAckFunc there, or a goroutine.
//
// A panic in a handler or an acknowledgement callback, wherever it runs (a
// SendAckFunc callback runs in a timer's goroutine when the wait times
// out), ends the connection it was run for as the core ends it for a
// panicking data handler: status 1011, the *primus.PanicError as the end
// reason, Options.OnPanic; everything else goes on.
//
// # Channels
//
// An Emitter (or Client) can also run inside a multiplex channel (see
// multiplex.Channel.Use and multiplex.ChannelOptions.Plugins): its events
// then travel over the channel, as emitter packets inside multiplex packets,
// which is what the npm plugins do together.
package emitter
