// Package bench measures a Primus server next to the physical limit of its
// transport and next to the incumbent: our cmd/primus-testserver, a raw
// coder/websocket server with no Primus layer (bench/cmd/rawserver), and the
// stock Node.js Primus 8 server (bench/node/server.js). It starts each server
// as a process of its own, drives it over loopback WebSockets speaking the
// Primus wire protocol (JSON strings; "primus::ping::N" is answered with
// "primus::pong::N"), and reads the server's CPU time and memory from /proc.
//
// The scenarios are closed-loop echo, pipelined echo, broadcast (the time
// until every receiver has a message) and idle connections (memory per
// connection, then a broadcast across all of them). Run measures each
// scenario on each server in turn, a fresh server process per measurement,
// repeats the round and reports medians, with the ratios our/raw and
// our/node for every figure, as a markdown table and as JSON.
//
// bench/run.sh builds everything and runs the full comparison; Smoke is the
// short run CI uses so that the tool cannot rot.
package bench
