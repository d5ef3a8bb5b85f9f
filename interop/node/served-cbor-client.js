#!/usr/bin/env node
'use strict';

// Checks our browser client with the CBOR parser against a Go test server
// started with -parser cbor, in Node with the ws package. The client is the
// library the server serves at /primus/primus.js.
//
//   node served-cbor-client.js URL
//
// Echoed messages come back byte for byte, so they test the JavaScript
// codec on both ends; broadcasts and whoami replies are encoded by the Go
// server (parser.CBOR), so they test Go-encoded CBOR read by the client.
// Prints one line per check, then "N passed, M failed".

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

if (process.argv.length !== 3) {
  console.error('usage: node served-cbor-client.js URL');
  process.exit(2);
}
const base = new URL(process.argv[2]).origin;

async function loadClient() {
  const res = await fetch(`${base}/primus/primus.js`);
  assert.equal(res.status, 200);
  const file = path.join(__dirname, `.contract-client-cbor-${process.pid}.tmp.js`);
  fs.writeFileSync(file, await res.text());
  try {
    return require(file);
  } finally {
    fs.unlinkSync(file);
  }
}

let passed = 0;
let failed = 0;
async function check(name, fn) {
  const clients = [];
  let timer;
  try {
    await Promise.race([
      fn((query) => {
        const c = new Client(`${base}/?${query || ''}`);
        c.inbox = [];
        c.waiters = [];
        c.on('data', (d) => {
          c.inbox.push(d);
          for (const w of c.waiters.splice(0)) w();
        });
        clients.push(c);
        return c;
      }),
      new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('timed out after 10 s')), 10000); }),
    ]);
    passed++;
    console.log(`ok - ${name}`);
  } catch (err) {
    failed++;
    console.log(`not ok - ${name}\n#   ${String(err && err.message).split('\n').join('\n#   ')}`);
  } finally {
    clearTimeout(timer);
    for (const c of clients) c.destroy();
  }
}

async function next(c) {
  while (!c.inbox.length) await new Promise((resolve) => c.waiters.push(resolve));
  return c.inbox.shift();
}
const opened = (c) => new Promise((resolve) => c.once('open', resolve));

let Client;

async function main() {
  Client = await loadClient();
  assert.equal(Client.prototype.parser, 'cbor');

  await check('echo: values round-trip through the JavaScript codec', async (connect) => {
    const c = connect();
    const values = ['hello', '', 'Jörg 😀', 0, -1, 42, 2 ** 40, -(2 ** 31), 1.5, 0.1, -0, 1e300, NaN, Infinity,
      true, false, null, [], {}, [1, 'two', { three: [3] }], { nested: { deep: [null, true] }, 'ü': 'ß' },
      new Uint8Array([0, 1, 2, 255]), 2n ** 64n - 1n];
    for (const v of values) c.write(v);
    for (const v of values) assert.deepEqual(await next(c), v);
  });

  await check('echo: frames are binary CBOR, pongs included', async (connect) => {
    const c = connect();
    const out = [];
    c.on('outgoing::data', (frame) => out.push(frame));
    await opened(c);
    c.write({ a: 1 });
    assert.deepEqual(await next(c), { a: 1 });
    assert.ok(out[0] instanceof Uint8Array, `frame is a ${out[0] && out[0].constructor.name}`);
    assert.equal(Buffer.from(out[0]).toString('hex'), 'a1616101');
    // The pong is written by the client's own incoming::ping listener,
    // which runs before this one.
    const pong = await new Promise((resolve) => c.once('incoming::ping', (time) => {
      const frame = out[out.length - 1];
      resolve({ time, frame, value: Client.CBOR.decode(frame) });
    }));
    assert.ok(pong.frame instanceof Uint8Array, 'the pong is not a binary frame');
    assert.equal(pong.value, `primus::pong::${pong.time}`);
  });

  await check('broadcast: a value re-encoded by the Go server decodes to the same value', async (connect) => {
    const a = connect();
    const b = connect();
    await Promise.all([opened(a), opened(b)]);
    const payload = { text: 'for everyone', n: 7, f: 2.5, list: [1, 'x', null], bytes: new Uint8Array([9, 8]), map: { k: 'v' } };
    a.write({ cmd: 'broadcast', data: payload });
    assert.deepEqual(await next(a), payload);
    assert.deepEqual(await next(b), payload);
  });

  await check('whoami: the Go-encoded reply matches id()', async (connect) => {
    const c = connect('token=abc&name=J%C3%B6rg');
    c.write({ cmd: 'whoami' });
    const me = await next(c);
    const id = await new Promise((resolve) => c.id(resolve));
    assert.equal(me.id, id);
    assert.equal(me.query.token, 'abc');
    assert.equal(me.query.name, 'Jörg');
  });

  await check('drop: reconnects and keeps working', async (connect) => {
    const c = connect();
    await opened(c);
    c.write({ cmd: 'drop' });
    await new Promise((resolve) => c.once('reconnected', resolve));
    c.write(['after', 'drop']);
    assert.deepEqual(await next(c), ['after', 'drop']);
  });

  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
