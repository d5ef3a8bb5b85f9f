#!/usr/bin/env node
'use strict';

// Checks items 9-11 of the test server contract (emitter, multiplex,
// substream) with our own client, as the server serves it at
// /primus/primus.js with the browser parts of its plugins, in Node with the
// ws package. The server must run with -plugins emitter,multiplex,substream.
//
//   node served-plugins-client.js URL
//
// Prints one line per check, then "N passed, M failed", and exits non-zero
// if any check failed.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

if (process.argv.length !== 3) {
  console.error('usage: node served-plugins-client.js URL');
  process.exit(2);
}
const base = new URL(process.argv[2]).origin;

async function loadClient() {
  const res = await fetch(`${base}/primus/primus.js`);
  assert.equal(res.status, 200);
  const file = path.join(__dirname, `.contract-client-plugins-${process.pid}.tmp.js`);
  fs.writeFileSync(file, await res.text());
  try {
    return require(file);
  } finally {
    fs.unlinkSync(file);
  }
}

let Client;
let passed = 0;
let failed = 0;

// check runs one named check with a timeout and destroys its clients.
async function check(name, fn) {
  const clients = [];
  let timer;
  try {
    await Promise.race([
      fn(() => {
        const c = new Client(`${base}/`);
        c.inbox = [];
        c.opens = 0;
        c.on('data', (d) => c.inbox.push(d));
        c.on('open', () => c.opens++);
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

const once = (em, ev) => new Promise((resolve) => em.once(ev, (...args) => resolve(args)));
const opened = (c) => (c.readyState === Client.OPEN ? Promise.resolve() : once(c, 'open'));
const tick = () => new Promise((resolve) => setTimeout(resolve, 50));

async function main() {
  Client = await loadClient();
  for (const m of ['send', 'channel', 'substream']) {
    assert.equal(typeof new Client(`${base}/`, { manual: true })[m], 'function', `the served client has no ${m}()`);
  }

  await check('emitter: echo with an acknowledgement', async (connect) => {
    const c = connect();
    const reply = await new Promise((resolve) => c.send('echo', { a: [1, 'x'] }, (...args) => resolve(args)));
    assert.deepEqual(reply, [{ a: [1, 'x'] }]);
  });

  await check('emitter: ping-me is answered with pong and the same payload', async (connect) => {
    const c = connect();
    const pong = once(c, 'pong');
    c.send('ping-me', { n: 7 });
    assert.deepEqual(await pong, [{ n: 7 }]);
  });

  await check('emitter: ask -> question with an ack -> answer', async (connect) => {
    const c = connect();
    c.on('question', (payload, ack) => {
      assert.equal(typeof ack, 'function', 'question came without an ack callback');
      ack({ got: payload });
    });
    const answer = once(c, 'answer');
    c.send('ask', 'what?');
    assert.deepEqual(await answer, [{ got: 'what?' }]);
    assert.deepEqual(c.inbox, [], 'emitter packets reached the data listeners');
  });

  await check('multiplex: chat echoes on the same channel, news reaches every subscriber', async (connect) => {
    const a = connect();
    const b = connect();
    const chat = a.channel('chat');
    const echoed = once(chat, 'data');
    chat.write({ hello: 'chat' });
    assert.deepEqual(await echoed, [{ hello: 'chat' }]);

    const na = a.channel('news');
    const nb = b.channel('news');
    await Promise.all([opened(a), opened(b)]);
    // Both subscriptions are in place once a round trip on each connection
    // has completed after them.
    await Promise.all([a, b].map((c) => new Promise((resolve) => c.id(resolve))));
    const got = Promise.all([once(na, 'data'), once(nb, 'data')]);
    na.write('extra! extra!');
    assert.deepEqual(await got, [['extra! extra!'], ['extra! extra!']]);
    await tick();
    assert.deepEqual(a.inbox.concat(b.inbox), [], 'multiplex packets (or echoed SUBSCRIBEs) reached the data listeners');
  });

  await check('multiplex: after a drop the channel resubscribes with the same id and keeps working', async (connect) => {
    const c = connect();
    const chat = c.channel('chat');
    const id = chat.id;
    const first = once(chat, 'data');
    chat.write('before');
    assert.deepEqual(await first, ['before']);
    c.write({ cmd: 'drop' });
    await once(c, 'reconnected');
    await tick(); // the old connection's late close must not end the new subscription
    let ended = false;
    chat.on('end', () => { ended = true; });
    const again = once(chat, 'data');
    chat.write('after');
    assert.deepEqual(await again, ['after']);
    assert.equal(chat.id, id);
    assert.equal(ended, false, 'the channel ended');
  });

  await check('multiplex: end unsubscribes; the server does not echo it', async (connect) => {
    const c = connect();
    const chat = c.channel('chat');
    await opened(c);
    const ended = once(chat, 'end');
    chat.end();
    await ended;
    assert.equal(chat.write('too late'), false);
    c.write('plain');
    await new Promise((resolve) => c.once('data', resolve));
    assert.deepEqual(c.inbox, ['plain']);
  });

  await check('substream: s1 echoes; ending it is not echoed', async (connect) => {
    const c = connect();
    const s1 = c.substream('s1');
    const echoed = once(s1, 'data');
    s1.write({ on: 's1' });
    assert.deepEqual((await echoed)[0], { on: 's1' });
    const ended = once(s1, 'end');
    s1.end();
    await ended;
    assert.equal(s1.write('too late'), false);
    c.write('after the substream');
    await new Promise((resolve) => c.once('data', resolve));
    assert.deepEqual(c.inbox, ['after the substream'], 'substream packets reached the data listeners');
  });

  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
