#!/usr/bin/env node
'use strict';

// A real Node Primus server (websockets transformer, json parser) that
// implements items 1-8 of the interop test server contract
// (shared/docs/testserver-contract.md), for testing clients against the stock
// server.
//
//   node node-server.js [--port 0] [--ping-interval ms]
//
// Listens on 127.0.0.1, prints "listening <port>" as its first line once it
// accepts connections, and exits on SIGTERM/SIGINT.

const http = require('node:http');
const Primus = require('primus');
const { parseArgs } = require('./build-client');

const args = parseArgs(process.argv.slice(2));
const port = Number(args.port || 0);
const pingInterval = args['ping-interval'] !== undefined ? Number(args['ping-interval']) : 30000;

const server = http.createServer();
const primus = new Primus(server, {
  transformer: 'websockets',
  parser: 'json',
  pathname: '/primus',
  pingInterval,
  maxLength: 16 << 20, // room for the 1 MiB echo and then some
});

primus.authorize((req, done) => {
  if (req.query.token === 'bad') {
    const err = new Error('invalid token');
    err.statusCode = 401;
    return done(err);
  }
  done();
});

const commands = {
  broadcast: (spark, msg) => spark.write(msg.data),
  close: (spark) => spark.end(),
  whoami: (spark) => spark.write({ id: spark.id, query: spark.query }),
  // An abrupt TCP close: no primus::server::close, so the client reconnects.
  drop: (spark) => spark.socket.terminate(),
};

primus.on('connection', (spark) => {
  spark.on('data', (msg) => {
    const isCmd = msg !== null && typeof msg === 'object' && !Array.isArray(msg) &&
      Object.prototype.hasOwnProperty.call(commands, msg.cmd);
    if (isCmd) commands[msg.cmd](spark, msg);
    else spark.write(msg);
  });
});

primus.on('log', (level, ...rest) => {
  if (level === 'error' || level === 'warn') console.error(level, ...rest);
});

server.listen(port, '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});

function shutdown() {
  primus.destroy({ timeout: 0 }, () => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref(); // do not wait for stragglers
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
