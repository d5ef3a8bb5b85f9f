#!/usr/bin/env node
'use strict';

// node-server.js with Primus's engine.io transformer (the stock
// engine.io@6.6 server) instead of websockets: the reference implementation
// the engine.io checks are run against, so that they are known to be sound,
// and our Go dialer is tested against. The contract's drop closes the
// Engine.IO session without primus::server::close: a WebSocket is closed, a
// pending poll gets the close packet.
//
//   node node-server-engineio.js [--port 0] [--ping-interval ms]
//                                [--eio-ping-interval ms] [--eio-ping-timeout ms]

const Primus = require('primus');
const { Socket } = require('engine.io');
const { parseArgs } = require('./build-client');

const args = parseArgs(process.argv.slice(2));
const transport = {};
if (args['eio-ping-interval'] !== undefined) transport.pingInterval = Number(args['eio-ping-interval']);
if (args['eio-ping-timeout'] !== undefined) transport.pingTimeout = Number(args['eio-ping-timeout']);

// node-server.js builds `new Primus(server, {transformer: 'websockets', ...})`.
class EnginePrimus extends Primus {
  constructor(server, options) {
    super(server, Object.assign({}, options, { transformer: 'engine.io', transport }));
  }
}
require.cache[require.resolve('primus')].exports = EnginePrimus;

// node-server.js drops a spark with spark.socket.terminate(), a ws method:
// close the Engine.IO session, discarding what it buffered.
Socket.prototype.terminate = function terminate() {
  this.close(true);
};

require('./node-server.js');
