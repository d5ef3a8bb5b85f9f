// Package sockjs is the SockJS transformer, built on
// github.com/igm/sockjs-go/v3. It speaks SockJS protocol 0.3 under the
// server's pathname exactly as Primus's "sockjs" transformer does, so the
// stock Primus client compiled for sockjs (with sockjs-client) connects to
// it, and falls back from WebSocket to xhr-streaming, eventsource, htmlfile
// and the polling transports where WebSocket is not available. Each SockJS
// message is one Primus message (the parser's text); SockJS carries text
// only, so a binary parser is refused by primus.New.
//
//	srv, err := primus.New(&primus.Options{Transformer: sockjs.New(nil)})
//
// The Go client dials it over SockJS's websocket transport:
//
//	client, err := primus.Dial(ctx, "http://127.0.0.1:8080/primus", &primus.ClientOptions{Dialer: sockjs.New(nil)})
//
// # What the server guarantees
//
// Authorization and middleware run for every request under the pathname, so
// a refused client gets the same answer from /primus/info as from each
// transport's first request. A session's spark has the query, headers and
// address of the request that opened the session. Writes are bounded: see
// Options.SendBufferBytes. Spark.End sends "primus::server::close" and then
// the close frame c[1000,"Normal closure"]; Spark.Close sends
// c[3000,"dropped"], after which the client reconnects. A spark closed for
// a fault (a slow consumer, a panic) gets its code and reason, such as
// c[1008,"slow consumer"], within about a second, or its connection is cut.
//
// What a client sends is checked before sockjs-go or the core sees it:
//
//   - Every request body is read within primus.Options.BodyTimeout; a client
//     that trickles one gets 408 and its connection closed.
//   - A frame over Options.MaxFrameBytes, or a message over the server's
//     MaxMessageSize, closes the session with 1009.
//   - Text that is not valid UTF-8, and a JSON escape of half a surrogate
//     pair (which sockjs-go would turn into U+FFFD unnoticed), close the
//     session with 1007 on every transport, the raw /websocket endpoint
//     included; a binary WebSocket message closes it with 1003. The message
//     reaches no one.
//   - A session keeps a bounded copy of the request that opened it
//     (primus.Options.HeaderBytes, plus the few headers SockJS and the
//     client's address need), whatever the size of the client's headers.
//
// # Sessions belong to their client
//
// A SockJS session id travels in every URL of the session (polling and
// sending requests, logs, proxies), so knowing it must not be enough to use
// the session. A session belongs to the client address that opened it (the
// socket's peer, or the address primus.Options.TrustedProxies forward): a
// request for it from any other address is answered as if the session did
// not exist, 404 for a send and a new session for a poll, so that it is not
// even revealed. The websocket transport needs no such check: one
// connection carries the whole session. Options.InsecureAnyClientAddress
// turns the binding off, for clients whose address changes from one request
// to the next (rotating NATs, several egress addresses); behind a load
// balancer, list it in TrustedProxies so that the binding sees the clients'
// own addresses.
//
// # Sticky sessions
//
// A SockJS session lives in the memory of the server process that opened
// it. Over SockJS's websocket transport one TCP connection carries the whole
// session, so any load balancer works. Every other transport (xhr-streaming,
// xhr-polling, eventsource, htmlfile, jsonp) makes a series of HTTP
// requests — a receiving request plus one request per message sent — and
// each must reach the process that holds the session; elsewhere it gets 404
// or opens a new session, and the client reconnects. So behind a load
// balancer with more than one server process, route by client (IP hash, or a
// cookie: Options.JSessionID sets the JSESSIONID cookie that some balancers
// stick on) whenever clients may fall back from WebSocket: browsers behind
// proxies that strip WebSocket upgrades, and clients told to use other
// transports. With a single process, or when every client uses the
// websocket transport, no stickiness is needed.
package sockjs
