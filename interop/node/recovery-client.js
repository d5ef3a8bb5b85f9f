#!/usr/bin/env node
'use strict';

// Checks item 12 of the interop test server contract (recovery) against a
// server started with -recovery, using the client library it serves at
// /primus/primus.js: while {"cmd":"count"} streams numbered messages and
// the client streams its own, the server drops the connection again and
// again ({"cmd":"drop"}); every {"seq":n} must arrive exactly once and in
// order, every message the client wrote must be echoed exactly once and in
// order, and the spark id must stay the same.
//
//   node recovery-client.js URL [--count 3000] [--drops 8]
//
// Prints "ok - ..." / "not ok - ..." lines and exits non-zero on failure.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('./build-client');

const args = parseArgs(process.argv.slice(2));
const base = new URL(args._[0]).origin;
const COUNT = Number(args.count || 3000);
const DROPS = Number(args.drops || 8);

async function loadClient() {
  const res = await fetch(`${base}/primus/primus.js`);
  assert.equal(res.status, 200);
  const file = path.join(__dirname, `.recovery-client-${process.pid}.tmp.js`);
  fs.writeFileSync(file, await res.text());
  try {
    return require(file);
  } finally {
    fs.unlinkSync(file);
  }
}

async function main() {
  const spec = await (await fetch(`${base}/primus/spec`)).json();
  assert.ok(spec.recovery > 0, 'the server does not offer recovery (start it with -recovery)');
  const Primus = await loadClient();
  const primus = new Primus(`${base}/?token=abc`, { reconnect: { min: 20, max: 100, retries: 100 } });
  const recoveries = [];
  let nextSeq = 1;
  let nextEcho = 1;
  let failure = null;
  let opens = 0;
  primus.on('open', () => { opens++; });
  primus.on('recovery', (info) => recoveries.push(info));
  const done = new Promise((resolve, reject) => {
    primus.on('data', (d) => {
      if (d && typeof d === 'object' && 'seq' in d) {
        if (d.seq !== nextSeq && !failure) failure = new Error(`seq ${d.seq} arrived, want ${nextSeq}`);
        nextSeq = d.seq + 1;
      } else if (d && typeof d === 'object' && 'mine' in d) {
        if (d.mine !== nextEcho && !failure) failure = new Error(`echo ${d.mine} arrived, want ${nextEcho}`);
        nextEcho = d.mine + 1;
      }
      if (failure) reject(failure);
      if (nextSeq > COUNT && nextEcho > COUNT) resolve();
    });
    primus.on('end', () => reject(new Error('the client ended')));
    setTimeout(() => reject(new Error(`timed out: seq at ${nextSeq}, echo at ${nextEcho} of ${COUNT}`)), 120000).unref();
  });
  const id = () => new Promise((resolve) => primus.id(resolve));
  await new Promise((resolve) => primus.once('open', resolve));
  const before = await id();
  primus.write({ cmd: 'count', n: COUNT });
  let written = 0;
  const writer = setInterval(() => {
    for (let i = 0; i < 4 && written < COUNT; i++) primus.write({ mine: ++written });
    if (written >= COUNT) clearInterval(writer);
  }, 1);
  let drops = 0;
  const dropper = setInterval(() => {
    if (drops >= DROPS) {
      clearInterval(dropper);
      return;
    }
    if (primus.readyState === Primus.OPEN) {
      primus.write({ cmd: 'drop' });
      drops++;
    }
  }, 150);
  try {
    await done;
    clearInterval(dropper);
    assert.ok(drops > 0, 'no drop happened');
    assert.equal(await id(), before, 'the spark id changed');
    assert.ok(recoveries.length > 0, 'no recovery event');
    for (const r of recoveries) assert.deepEqual(r, { recovered: true }, 'a reconnection did not recover');
    console.log(`ok - ${COUNT} seq and ${COUNT} echoes exactly once, in order, across ${drops} drops (${recoveries.length} resumes, ${opens} opens)`);
  } finally {
    clearInterval(writer);
    clearInterval(dropper);
    primus.destroy();
  }
}

main().catch((err) => {
  console.log(`not ok - recovery\n#   ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
