#!/usr/bin/env node
'use strict';

// Checks behaviours of our own client that the contract run does not reach:
// the reconnection back-off and its limits, the connect timeout, the ping
// timeout, the offline queue's size, manual opening, outgoing::url, and the
// ping timeout compiled from the server's ping interval. The client is the
// library the Go test server serves at /primus/primus.js; the server must run
// with -ping-interval 1s.
//
//   node served-client-behaviour.js URL [--client served|stock]
//
// With --client stock the same checks run with the stock Primus client
// (build-client.js), which shows that they describe Primus's behaviour.
//
// Prints one line per check, then "N passed, M failed".

const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');

const { build, parseArgs } = require('./build-client');

const args = parseArgs(process.argv.slice(2));
if (args._.length !== 1 || !['served', 'stock', undefined].includes(args.client)) {
  console.error('usage: node served-client-behaviour.js URL [--client served|stock]');
  process.exit(2);
}
const base = new URL(args._[0]).origin;

async function loadClient() {
  let source;
  if (args.client === 'stock') {
    source = build({ pingInterval: 1000 });
  } else {
    const res = await fetch(`${base}/primus/primus.js`);
    assert.equal(res.status, 200);
    source = await res.text();
  }
  const file = path.join(__dirname, `.contract-client-behaviour-${process.pid}.tmp.js`);
  fs.writeFileSync(file, source);
  try {
    return require(file);
  } finally {
    fs.unlinkSync(file);
  }
}

let Client;
let passed = 0;
let failed = 0;

async function check(name, fn) {
  const clients = [];
  const cleanups = [];
  let timer;
  try {
    await Promise.race([
      fn((url, options) => {
        const c = new Client(url, options);
        c.events = [];
        c.inbox = [];
        for (const ev of ['open', 'close', 'end', 'error', 'reconnect', 'reconnect scheduled', 'reconnected',
          'reconnect failed', 'online', 'offline', 'timeout']) {
          c.on(ev, () => c.events.push(ev));
        }
        c.on('data', (d) => c.inbox.push(d));
        clients.push(c);
        return c;
      }, (f) => cleanups.push(f)),
      new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('timed out after 15 s')), 15000); }),
    ]);
    passed++;
    console.log(`ok - ${name}`);
  } catch (err) {
    failed++;
    console.log(`not ok - ${name}\n#   ${String(err && err.message).split('\n').join('\n#   ')}`);
    for (const c of clients) console.log(`#   events: ${c.events.join(', ')}`);
  } finally {
    clearTimeout(timer);
    for (const c of clients) c.destroy();
    for (const f of cleanups) await f();
  }
}

const once = (em, ev) => new Promise((resolve) => em.once(ev, (...args) => resolve(args)));

// listen starts a TCP server that accepts connections and says nothing (a
// server that hangs), or, with refuse, a port with nothing listening.
async function hangingServer(cleanup) {
  const sockets = new Set();
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  cleanup(() => new Promise((resolve) => {
    for (const s of sockets) s.destroy();
    srv.close(resolve);
  }));
  return `http://127.0.0.1:${srv.address().port}`;
}

async function closedPort() {
  const srv = net.createServer();
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = srv.address().port;
  await new Promise((resolve) => srv.close(resolve));
  return `http://127.0.0.1:${port}`;
}

async function main() {
  Client = await loadClient();

  await check('defaults: ping timeout from the server (interval + round(interval / 2)), strategy, back-off', async (connect) => {
    const c = connect(base, { manual: true });
    assert.equal(c.options.pingTimeout, 1500);
    assert.equal(connect(base, { manual: true, pingTimeout: false }).options.pingTimeout, false);
    assert.equal(Client.prototype.authorization, true, 'the test server has an authorization function');
    assert.equal(c.options.strategy, 'disconnect,online', 'with authorization, the default strategy has no timeout');
    assert.equal(c.options.timeout, 10000);
    const r = c.recovery;
    assert.deepEqual([r.min, r.max, r.retries, r.factor, r['reconnect timeout']], [500, Infinity, 10, 2, 30000],
      'the back-off defaults');
  });

  await check('back-off: attempt 1 waits min, then min*factor^(n-1) to twice that; after retries: end, reconnect failed', async (connect) => {
    const url = await closedPort();
    const c = connect(url, { strategy: 'timeout', reconnect: { min: 40, factor: 2, retries: 3 } });
    const scheduled = [];
    c.on('reconnect scheduled', (o) => scheduled.push({ attempt: o.attempt, scheduled: o.scheduled, retries: o.retries }));
    const [err] = await once(c, 'reconnect failed');
    assert.equal(err.message, 'Unable to recover');
    assert.deepEqual(scheduled.map((s) => s.attempt), [1, 2, 3]);
    assert.equal(scheduled[0].scheduled, 40);
    assert.ok(scheduled[1].scheduled >= 80 && scheduled[1].scheduled <= 160, `attempt 2 waited ${scheduled[1].scheduled}`);
    assert.ok(scheduled[2].scheduled >= 160 && scheduled[2].scheduled <= 320, `attempt 3 waited ${scheduled[2].scheduled}`);
    // The first failure is an error; those of the attempts are not.
    assert.deepEqual(c.events.filter((e) => e === 'error'), ['error']);
    const tail = c.events.slice(-2);
    assert.deepEqual(tail, ['end', 'reconnect failed']);
    assert.equal(c.events.filter((e) => e === 'open').length, 0);
  });

  await check('back-off: max caps the delay', async (connect) => {
    const url = await closedPort();
    const c = connect(url, { strategy: 'timeout', reconnect: { min: 30, factor: 10, max: 50, retries: 3 } });
    const delays = [];
    c.on('reconnect scheduled', (o) => delays.push(o.scheduled));
    await once(c, 'reconnect failed');
    assert.deepEqual(delays, [30, 50, 50]);
  });

  await check('connect timeout: a server that never answers gives timeout, then end (no timeout strategy)', async (connect, cleanup) => {
    const url = await hangingServer(cleanup);
    const c = connect(url, { timeout: 200 });
    const start = Date.now();
    await once(c, 'end');
    assert.ok(Date.now() - start >= 190, `ended after ${Date.now() - start} ms`);
    assert.deepEqual(c.events.filter((e) => e !== 'close'), ['timeout', 'end']);
  });

  await check('connect timeout with the timeout strategy: reconnects', async (connect, cleanup) => {
    const url = await hangingServer(cleanup);
    const c = connect(url, { timeout: 100, strategy: 'timeout', reconnect: { min: 20, retries: 1, 'reconnect timeout': 100 } });
    await once(c, 'reconnect failed');
    assert.deepEqual(c.events.slice(0, 3), ['timeout', 'reconnect scheduled', 'reconnect']);
  });

  await check('ping timeout: a server silent for pingTimeout is taken for gone: offline, close, reconnect, online, open', async (connect) => {
    // The server pings every second; a 300 ms ping timeout expires first.
    const c = connect(`${base}/`, { pingTimeout: 300 });
    await once(c, 'open');
    await once(c, 'online');
    await new Promise((resolve) => (c.events.filter((e) => e === 'open').length >= 2 ? resolve() : c.once('open', resolve)));
    const order = c.events.filter((e) => ['open', 'offline', 'close', 'reconnect', 'online'].includes(e));
    assert.deepEqual(order.slice(0, 6), ['open', 'offline', 'close', 'reconnect', 'online', 'open']);
  });

  await check('queueSize: only the newest messages written before open are kept', async (connect) => {
    const c = connect(`${base}/`, { queueSize: 2 });
    for (const m of ['one', 'two', 'three', 'four']) c.write(m);
    await once(c, 'open');
    c.write('after');
    while (c.inbox.length < 3) await once(c, 'data');
    assert.deepEqual(c.inbox, ['three', 'four', 'after']);
  });

  await check('manual: no connection until open(); readyStateChange follows', async (connect) => {
    const c = connect(`${base}/`, { manual: true });
    const states = [];
    c.on('readyStateChange', (s) => states.push(s));
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(c.readyState, Client.CLOSED);
    assert.deepEqual(c.events, []);
    c.open();
    await once(c, 'open');
    c.end();
    assert.deepEqual(states, ['opening', 'open', 'end']);
    assert.deepEqual(c.events, ['open', 'close', 'end']);
  });

  await check('outgoing::url: listeners may change the connection URL', async (connect) => {
    const c = connect(`${base}/?a=1`);
    c.on('outgoing::url', (o) => { o.query += '&added=yes'; });
    c.write({ cmd: 'whoami' });
    const [me] = await once(c, 'data');
    assert.equal(me.query.a, '1');
    assert.equal(me.query.added, 'yes');
  });

  await check('end() while reconnecting stops the reconnection', async (connect) => {
    const c = connect(`${base}/`, { reconnect: { min: 200 } });
    await once(c, 'open');
    c.write({ cmd: 'drop' });
    await once(c, 'reconnect scheduled');
    c.end();
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.deepEqual(c.events, ['open', 'close', 'reconnect scheduled', 'end']);
  });

  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
