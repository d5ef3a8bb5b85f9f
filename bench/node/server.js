#!/usr/bin/env node
'use strict';

// The incumbent for the benchmark: a stock Node.js Primus server (primus@8.0.9,
// websockets transformer on ws, json parser) doing exactly what
// cmd/primus-testserver and bench/cmd/rawserver do for the load tool: echo
// every data message to its sender, and write X to every connection on
// {"cmd":"broadcast","data":X}.
//
//   node server.js [--port 0] [--ping-interval 30000]
//
// Listens on 127.0.0.1, prints "listening <port>" as its first line once it
// accepts connections, and exits on SIGTERM/SIGINT.

const http = require('node:http');
const Primus = require('primus');

function flag(name, def) {
  const i = process.argv.indexOf('--' + name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

const port = Number(flag('port', 0));
const pingInterval = Number(flag('ping-interval', 30000));

const server = http.createServer();
const primus = new Primus(server, {
  transformer: 'websockets',
  parser: 'json',
  pathname: '/primus',
  pingInterval,
  maxLength: 16 << 20, // the Go servers' limit too
});

primus.on('connection', (spark) => {
  spark.on('data', (msg) => {
    if (msg !== null && typeof msg === 'object' && msg.cmd === 'broadcast') {
      primus.write(msg.data);
      return;
    }
    spark.write(msg);
  });
});

primus.on('log', (level, ...rest) => {
  if (level === 'error' || level === 'warn') console.error(level, ...rest);
});

server.listen(port, '127.0.0.1', 16384, () => {
  console.log(`listening ${server.address().port}`);
});

function shutdown() {
  primus.destroy({ timeout: 0 }, () => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref(); // do not wait for stragglers
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
