#!/usr/bin/env node
'use strict';

// Runs a check script (contract-client.js for contract items 1-8,
// plugins-client.js for items 9-11) with every stock Primus client compiled
// for the sockjs transformer and forced onto one SockJS transport the way an
// application would: through Primus's `transport` client option, which the
// client hands to sockjs-client as its options ({transports: [name]}).
//
//   node sockjs-transport.js SCRIPT URL --sockjs-transport websocket|xhr-streaming|xhr-polling|eventsource
//                            [the script's own options]
//
// Every connection also checks that sockjs-client really opened that
// transport (its `transport` property); one on another transport makes the
// run fail.

const path = require('node:path');
const buildClient = require('./build-client');

const args = buildClient.parseArgs(process.argv.slice(3));
const script = process.argv[2];
const forced = args['sockjs-transport'];
if (!script || args._.length !== 1 || !forced) {
  console.error('usage: node sockjs-transport.js SCRIPT URL --sockjs-transport NAME [options]');
  process.exit(2);
}

// The script reads its own arguments: the URL, its options, and (for
// contract-client.js) the transformer to expect in the spec.
const rest = process.argv.slice(3).filter((a, i, all) => a !== '--sockjs-transport' && all[i - 1] !== '--sockjs-transport');
process.argv = [process.argv[0], path.resolve(__dirname, script), ...rest, '--transformer', 'sockjs'];

// The library a script loads exports the Primus constructor; compile it for
// sockjs and wrap it, so that every client is made with
// {transport: {transports: [forced]}} and checks the transport it opened.
const build = buildClient.build;
buildClient.build = (opts) => `${build(Object.assign({}, opts, { transformer: 'sockjs' }))}
;(function forceSockJSTransport(Primus) {
  var forced = ${JSON.stringify(forced)};
  function Forced(url, options) {
    options = Object.assign({}, options);
    options.transport = Object.assign({}, options.transport, { transports: [forced] });
    var primus = new Primus(url, options);
    // The contract's drop is the close frame c[3000,"dropped"], and the
    // sockjs client glue reports every close code above 1000 as an 'error'
    // before reconnecting (against a stock Node server too); the stock
    // primus-multiplex client then re-emits it on every channel, where
    // Node throws without a listener. plugins-client.js counts any 'error'
    // as a failure (right for websockets, whose glue reports none), so
    // exactly this expected one is logged instead of emitted.
    var emit = primus.emit;
    primus.emit = function (ev, err) {
      if (ev === 'error' && err && err.code === 3000 && err.reason === 'dropped') {
        console.log('# expected: the drop reported as an error (close 3000 "dropped"), not emitted');
        return true;
      }
      return emit.apply(this, arguments);
    };
    primus.on('open', function () {
      var used = primus.socket && primus.socket.transport;
      if (used !== forced) {
        console.log('not ok - sockjs-client opened ' + used + ', not ' + forced);
        process.exit(1);
      }
    });
    return primus;
  }
  Forced.prototype = Primus.prototype;
  Object.setPrototypeOf(Forced, Primus);
  module.exports = Forced;
})(module.exports);
`;

console.log(`# ${script}: every stock client compiled for sockjs and forced onto its ${forced} transport`);
require(path.resolve(__dirname, script));
