#!/usr/bin/env node
'use strict';

// Runs a check script (contract-client.js for contract items 1-8,
// plugins-client.js for items 9-11) with every stock Primus client compiled
// for the engine.io transformer (or, with the script's --client served, the
// client the server serves), on a chosen engine.io-client release and in a
// chosen mode:
//
//   node engineio-transport.js SCRIPT URL --eio-client 6.5|6.6 --eio-mode polling|upgrade|websocket
//                              [the script's own options]
//
// The client library is Primus's library(true) (without the browser bundle
// of engine.io-client, which throws in Node); its engine.io glue takes the
// global `eio` factory when there is one, and this script provides it, made
// from the chosen package (engine.io-client 6.5.x, Primus's own range, is
// installed as "engine.io-client-6.5"). The modes:
//   polling    Primus's `websockets: false` client option: long-polling only;
//   upgrade    Primus's defaults: polling, upgraded to WebSocket;
//   websocket  engine.io-client told transports: ["websocket"].
// Every connection checks that it runs on the transport its mode says; in
// upgrade mode a probe may fail only because its socket is closing, at least
// one upgrade must complete, and a connection must not stay on polling for
// long; a violation makes the run fail.

const path = require('node:path');
const buildClient = require('./build-client');

const args = buildClient.parseArgs(process.argv.slice(3));
const script = process.argv[2];
const version = args['eio-client'];
const mode = args['eio-mode'];
const packages = { '6.5': 'engine.io-client-6.5', '6.6': 'engine.io-client' };
if (!script || args._.length !== 1 || !packages[version] || !['polling', 'upgrade', 'websocket'].includes(mode)) {
  console.error('usage: node engineio-transport.js SCRIPT URL --eio-client 6.5|6.6 --eio-mode polling|upgrade|websocket [options]');
  process.exit(2);
}
const pkg = packages[version];
const { Socket, protocol } = require(pkg);
const installed = require(`${pkg}/package.json`).version;
if (protocol !== 4) {
  console.error(`${pkg} speaks Engine.IO protocol ${protocol}, not 4`);
  process.exit(2);
}

// The script reads its own arguments: the URL, its options, and (for
// contract-client.js) the transformer to expect in the spec.
const own = new Set(['--eio-client', '--eio-mode']);
const rest = process.argv.slice(3).filter((a, i, all) => !own.has(a) && !own.has(all[i - 1]));
process.argv = [process.argv[0], path.resolve(__dirname, script), ...rest, '--transformer', 'engine.io'];

let violations = 0;
let upgraded = 0;
function violation(msg) {
  violations++;
  console.log(`not ok - ${msg}`);
}

// The factory Primus's engine.io glue calls with its options (path,
// forceBase64, timestampRequests, rememberUpgrade, transports, query, …).
const served = args.client === 'served';
globalThis.eio = function eio(opts) {
  opts = Object.assign({}, opts);
  if (mode === 'websocket') opts.transports = ['websocket'];
  // Our served client is not built here: its polling mode is asked of
  // engine.io-client directly.
  if (mode === 'polling' && served) opts.transports = ['polling'];
  const socket = new Socket(opts);
  socket.on('open', () => {
    const want = mode === 'websocket' ? 'websocket' : 'polling';
    if (socket.transport.name !== want) violation(`engine.io-client opened on ${socket.transport.name}, not ${want}`);
    if (mode !== 'upgrade') return;
    // An upgrade takes a few round trips (and waits for the requests under
    // way); a socket still open and still polling after 3 s has not
    // upgraded. (The contract's heartbeat check keeps a socket that long.)
    const timer = setTimeout(() => {
      if (socket.readyState === 'open' && socket.transport.name !== 'websocket') violation('still polling 3 s after the open');
    }, 3000);
    timer.unref();
    socket.on('close', () => clearTimeout(timer));
  });
  socket.on('upgrade', (transport) => {
    upgraded++;
    if (mode !== 'upgrade') violation(`engine.io-client upgraded to ${transport.name} in ${mode} mode`);
  });
  // A probe also fails when its socket closes (a check ends its clients, the
  // server drops one): against the reference server too. A probe that fails
  // on a socket that stays open is a real failure.
  socket.on('upgradeError', (err) => {
    const msg = `upgrade failed: ${err && err.message}`;
    if (socket.readyState !== 'open') {
      console.log(`# ${msg} (the socket is ${socket.readyState})`);
      return;
    }
    const timer = setTimeout(() => {
      if (socket.readyState === 'open') violation(`${msg}, and the socket stayed open`);
      else console.log(`# ${msg}, then the socket closed`);
    }, 1000);
    timer.unref();
    socket.on('close', () => {
      clearTimeout(timer);
      console.log(`# ${msg}, then the socket closed`);
    });
  });
  return socket;
};

process.on('exit', () => {
  if (mode === 'upgrade' && upgraded === 0) violation('no connection upgraded to websocket');
  console.log(`# engine.io-client ${installed} (${mode}): ${upgraded} upgrades, ${violations} transport violations`);
  if (violations) process.exitCode = 1;
});

// Primus's `websockets: false` client option makes its engine.io glue ask
// for polling only; pass it to every client the script makes.
if (mode === 'polling') {
  const build = buildClient.build;
  buildClient.build = (opts) => `${build(Object.assign({}, opts, { transformer: 'engine.io' }))}
;(function pollingOnly(Primus) {
  function Polling(url, options) {
    return new Primus(url, Object.assign({}, options, { websockets: false }));
  }
  Polling.prototype = Primus.prototype;
  Object.setPrototypeOf(Polling, Primus);
  module.exports = Polling;
})(module.exports);
`;
} else {
  const build = buildClient.build;
  buildClient.build = (opts) => build(Object.assign({}, opts, { transformer: 'engine.io' }));
}

console.log(`# ${script}: ${served ? 'the served client' : 'every stock client compiled for engine.io'}, engine.io-client ${installed}, ${mode}`);
require(path.resolve(__dirname, script));
