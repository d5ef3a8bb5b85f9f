#!/usr/bin/env node
'use strict';

// Holds the browser client's CBOR codec (browser/cbor.js, as served in the
// library) to the shared test vectors (browser/testdata/cbor-vectors.json),
// the same vectors the Go parser is held to in interop/cbor_vectors_test.go.
//
//   node cbor-vectors.js LIBRARY.js VECTORS.json
//
// Every vector's bytes must decode to its value; the vectors whose "encode"
// is absent, "both" or "js" must encode to exactly its bytes. Prints one line
// per failure, then "N passed, M failed", and exits non-zero on a failure.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

if (process.argv.length !== 4) {
  console.error('usage: node cbor-vectors.js LIBRARY.js VECTORS.json');
  process.exit(2);
}
const Primus = require(path.resolve(process.argv[2]));
const vectors = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));
const { encode, decode } = Primus.CBOR;

// value turns a vector's JSON value into the JavaScript value it stands for.
function value(v) {
  if (Array.isArray(v)) return v.map(value);
  if (v === null || typeof v !== 'object') return v;
  const keys = Object.keys(v);
  if (keys.length === 1) {
    switch (keys[0]) {
      case '$bytes': return Uint8Array.from(Buffer.from(v.$bytes, 'hex'));
      case '$float': return { NaN, Infinity, '-Infinity': -Infinity, '-0': -0 }[v.$float];
      case '$bigint': return BigInt(v.$bigint);
      case '$undefined': return undefined;
      default: break;
    }
  }
  const out = {};
  for (const k of keys) Object.defineProperty(out, k, { value: value(v[k]), enumerable: true, writable: true, configurable: true });
  return out;
}

const hex = (bytes) => Buffer.from(bytes).toString('hex');
let passed = 0;
let failed = 0;
function check(name, fn) {
  try {
    fn();
    passed++;
  } catch (err) {
    failed++;
    console.log(`not ok - ${name}\n#   ${String(err.message).split('\n').join('\n#   ')}`);
  }
}

for (const vec of vectors) {
  const want = value(vec.value);
  const bytes = Uint8Array.from(Buffer.from(vec.hex, 'hex'));
  check(`decode ${vec.name}`, () => {
    assert.deepEqual(decode(bytes), want);
    assert.deepEqual(decode(bytes.buffer), want, 'from an ArrayBuffer');
  });
  if (!vec.encode || vec.encode === 'both' || vec.encode === 'js') {
    check(`encode ${vec.name}`, () => {
      const got = encode(want);
      assert.ok(got instanceof Uint8Array, 'encode must return a Uint8Array');
      assert.equal(hex(got), vec.hex);
    });
  }
}

// Errors the decoder must report rather than guess around.
for (const [name, h] of [
  ['truncated integer', '19ff'],
  ['truncated text', '6461'],
  ['trailing bytes', '0000'],
  ['break outside an indefinite item', 'ff'],
  ['invalid UTF-8', '62c328'],
  ['reserved additional information', '1c'],
  ['nesting deeper than 64', '81'.repeat(65) + '00'],
]) {
  check(`decode error: ${name}`, () => assert.throws(() => decode(Buffer.from(h, 'hex'))));
}
check('encode error: circular value', () => {
  const a = [];
  a.push(a);
  assert.throws(() => encode(a), RangeError);
});
check('encode skips undefined and functions in objects, as JSON does', () => {
  assert.equal(hex(encode({ a: 1, b: undefined, c() {} })), 'a1616101');
});
check('encode a Date as its JSON string', () => {
  assert.equal(hex(encode(new Date(0))), hex(encode('1970-01-01T00:00:00.000Z')));
});
check('encode a Map with non-string keys', () => {
  assert.equal(hex(encode(new Map([[1, 'a']]))), 'a1016161');
});
check('a Buffer is a byte string', () => {
  assert.equal(hex(encode(Buffer.from([1, 2]))), '420102');
});

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
