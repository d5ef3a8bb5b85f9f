#!/usr/bin/env node
'use strict';

// node-server.js with Primus's sockjs transformer (the stock sockjs@0.3.24
// server) instead of websockets: the reference implementation our SockJS
// dialer is tested against. The contract's drop is the SockJS close frame
// c[3000,"dropped"].
//
//   node node-server-sockjs.js [--port 0] [--ping-interval ms]

const Primus = require('primus');
const { SockJSConnection } = require('sockjs/lib/transport');

// node-server.js builds `new Primus(server, {transformer: 'websockets', ...})`.
class SockJSPrimus extends Primus {
  constructor(server, options) {
    super(server, Object.assign({}, options, { transformer: 'sockjs' }));
  }
}
require.cache[require.resolve('primus')].exports = SockJSPrimus;

// node-server.js drops a spark with spark.socket.terminate(), a ws method.
SockJSConnection.prototype.terminate = function terminate() {
  this.close(3000, 'dropped');
};

require('./node-server.js');
