// Package engineio is the Engine.IO transformer: Engine.IO protocol v4
// (EIO=4), written on net/http and github.com/coder/websocket, speaking it as
// the reference server engine.io 6.6 does, so that a front end built with
// Primus's "engine.io" transformer (the stock Primus client with
// engine.io-client 6) connects to a Go server unchanged.
//
//	srv, err := primus.New(&primus.Options{Transformer: engineio.New(nil)})
//
// The server mounts Engine.IO at its pathname, as Primus does: requests
// arrive as "/primus/?EIO=4&transport=polling&…". A session starts with a
// handshake over HTTP long-polling (GET polls, POST sends, packets joined
// with "\x1e", binary as "b" + base64) or directly over WebSocket, and a
// polling session upgrades to WebSocket when the client probes for it
// ("2probe", "3probe", then "5"). Each Primus message is one Engine.IO
// message packet: text as "4" + the parser's text, binary (the CBOR
// parser) as a binary frame, or base64 where binary cannot go. Engine.IO's
// own heartbeat (the server's "2", the client's "3" within PingTimeout) runs
// beside Primus's. The spark's id is the Engine.IO sid, which the stock
// client answers primus.id() with.
//
// The Go client dials it directly over WebSocket, or over long-polling:
//
//	client, err := primus.Dial(ctx, "http://127.0.0.1:8080/primus", &primus.ClientOptions{Dialer: engineio.New(nil)})
//	polling := engineio.New(&engineio.Options{Dial: engineio.DialPolling})
//
// # What the server guarantees
//
// Authorization and middleware run for every request under the pathname
// (the handshake, every poll and send, the upgrade). Browser origins are
// checked as by the other transformers, and allowed ones are echoed in CORS
// headers with credentials allowed. Every queue is bounded in bytes: what a
// polling client has not collected (Options.SendBufferBytes; beyond it the
// spark's slow-consumer policy applies), what a client sent that the spark
// has not read (one POST's worth), and each POST body (413 above twice the
// largest packet, a message of primus.Options.MaxMessageSize announced as
// maxPayload). A client that stops polling is reaped after PingInterval +
// PingTimeout; one that closes its connection mid-poll at once; a probe that
// does not complete its upgrade after UpgradeTimeout. Each session is bound
// to the client address that opened it (see
// Options.InsecureAnyClientAddress).
//
// Spark.End sends "primus::server::close" and then closes the session: on
// polling with the close packet ("1"), on a WebSocket with a close frame.
// Spark.Close cuts it: a pending poll gets the close packet, a WebSocket is
// closed; the client reconnects.
//
// # Sticky sessions
//
// A session lives in the memory of the server process that opened it. Over
// WebSocket one TCP connection carries the whole session, so any load
// balancer works; but every session starts with long-polling unless the
// client is told otherwise, and each poll and send of a session must reach
// the process that holds it, or it is refused ("Session ID unknown") and the
// client reconnects. So behind a load balancer with more than one server
// process, route by client (IP hash, or a cookie set by the balancer), or
// run WebSocket only (Options.DisablePolling here, transports:
// ["websocket"] in engine.io-client).
package engineio
