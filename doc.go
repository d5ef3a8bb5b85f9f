// Package primus is real-time communication between browsers (or Go
// programs) and a Go server, with one small API whatever runs underneath: a
// Go port of the Node library Primus, wire-compatible with its stock client.
//
// A [Server] is an http.Handler that owns every request under its pathname
// (default "/primus"). Each client connection becomes a [Spark] with an id,
// the handshake's query, headers and address, Write and End, and handlers for
// data, end and errors. The server broadcasts, finds sparks by id, iterates
// them, runs named HTTP middleware and an authorization function before a
// connection opens, sends heartbeats, and shuts down gracefully.
//
// Underneath, a transformer (package transport) carries whole messages —
// WebSocket by default — and a parser (package parser) encodes them — JSON by
// default, CBOR for binary. Plugins (package plugin) add protocols on top of
// ordinary messages. Changing any of the three changes an option, not the
// application.
//
// [Dial] connects a Go [Client]: it reconnects with back-off, answers
// heartbeats and detects a silent server, and queues writes made while
// offline.
//
// # Protocol
//
// Every message is one parser-encoded value in one transport frame. The
// Primus control messages are strings encoded the same way:
// "primus::ping::<ms>" (server to client, every PingInterval),
// "primus::pong::<ms>" (the answer), "primus::id::" (asks the spark id, which
// comes back as "primus::id::<id>") and "primus::server::close" (the server
// ends the connection on purpose: the client must not reconnect). Other
// strings starting with "primus::" are ordinary data, as in Primus.
//
// # Concurrency
//
// Each spark has one reading goroutine, which runs its data handlers in order,
// and one writing goroutine fed by a queue bounded in bytes. Writes never
// block on the network: a client that cannot keep up is disconnected with
// [ErrSlowConsumer] instead of growing the server's memory or holding up a
// broadcast.
package primus
