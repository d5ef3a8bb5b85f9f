// CBOR (RFC 8949) for the browser client: one JavaScript value to one binary
// message and back, matching the server's parser.CBOR. Small on purpose: it
// covers what JSON covers plus byte strings, undefined, -0, NaN, Infinity and
// 64-bit integers, and nothing more (no tags are written; tags read are
// skipped, except bignums 2 and 3).
//
// Encoding rules, chosen to match the Go encoder byte for byte:
//   - integers in the safe range are CBOR integers (major types 0 and 1);
//     other numbers are floats in the shortest of half, single and double
//     precision that keeps the value (NaN is f9 7e00, infinities f9 7c00 and
//     f9 fc00, -0 is f9 8000);
//   - BigInt is an integer (an error outside 64 bits);
//   - strings are text strings; Uint8Array, ArrayBuffer and other
//     ArrayBuffer views are byte strings;
//   - arrays are arrays; Map is a map with encoded keys; other objects are
//     maps of their own enumerable string keys, in insertion order, skipping
//     undefined and function values as JSON does; an object with a toJSON
//     method (a Date) is encoded as what toJSON returns;
//   - undefined is CBOR undefined (f7), null is null.
//
// Decoding gives numbers (BigInt for integers outside the safe range),
// strings, Uint8Array, arrays, plain objects (map keys become strings),
// booleans, null and undefined. Nesting deeper than 64 levels, truncated
// input, trailing bytes and invalid UTF-8 are errors.
//
// This file is part of the served library (see library.go): it runs inside
// the library's wrapper function and defines the CBOR object used there.

const CBOR = (() => {
  const MAX_DEPTH = 64;
  const textEncoder = new TextEncoder();
  const textDecoder = new TextDecoder('utf-8', { fatal: true });

  // Writer is a growable byte buffer.
  class Writer {
    constructor() {
      this.buf = new Uint8Array(256);
      this.view = new DataView(this.buf.buffer);
      this.len = 0;
    }

    reserve(n) {
      if (this.len + n <= this.buf.length) return;
      let size = this.buf.length * 2;
      while (size < this.len + n) size *= 2;
      const next = new Uint8Array(size);
      next.set(this.buf.subarray(0, this.len));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }

    byte(b) {
      this.reserve(1);
      this.buf[this.len++] = b;
    }

    bytes(b) {
      this.reserve(b.length);
      this.buf.set(b, this.len);
      this.len += b.length;
    }

    // head writes a major type with its argument in the shortest form.
    head(major, n) {
      const m = major << 5;
      if (typeof n === 'bigint') {
        if (n < 0x100000000n) return this.head(major, Number(n));
        this.reserve(9);
        this.buf[this.len] = m | 27;
        this.view.setBigUint64(this.len + 1, n);
        this.len += 9;
        return undefined;
      }
      if (n < 24) {
        this.byte(m | n);
      } else if (n < 0x100) {
        this.reserve(2);
        this.buf[this.len] = m | 24;
        this.buf[this.len + 1] = n;
        this.len += 2;
      } else if (n < 0x10000) {
        this.reserve(3);
        this.buf[this.len] = m | 25;
        this.view.setUint16(this.len + 1, n);
        this.len += 3;
      } else if (n < 0x100000000) {
        this.reserve(5);
        this.buf[this.len] = m | 26;
        this.view.setUint32(this.len + 1, n);
        this.len += 5;
      } else {
        this.reserve(9);
        this.buf[this.len] = m | 27;
        this.view.setBigUint64(this.len + 1, BigInt(n));
        this.len += 9;
      }
      return undefined;
    }

    result() {
      return this.buf.slice(0, this.len);
    }
  }

  // half returns the IEEE 754 half-precision bits of v when v converts to
  // half precision without loss, or -1.
  function half(v) {
    if (Math.fround(v) !== v) return -1;
    const f = new DataView(new ArrayBuffer(4));
    f.setFloat32(0, v);
    const bits = f.getUint32(0);
    const sign = (bits >>> 16) & 0x8000;
    const exp = (bits >>> 23) & 0xff;
    const mant = bits & 0x7fffff;
    if (exp === 0 && mant === 0) return sign; // ±0
    const e = exp - 127;
    if (e >= -14 && e <= 15) { // normal half
      if (mant & 0x1fff) return -1;
      return sign | ((e + 15) << 10) | (mant >>> 13);
    }
    if (e >= -24 && e < -14) { // subnormal half
      const full = mant | 0x800000; // 24 significant bits
      const shift = 13 + (-14 - e);
      if (full & ((1 << shift) - 1)) return -1;
      return sign | (full >>> shift);
    }
    return -1;
  }

  function encodeFloat(w, v) {
    if (Number.isNaN(v)) return w.bytes([0xf9, 0x7e, 0x00]);
    if (v === Infinity) return w.bytes([0xf9, 0x7c, 0x00]);
    if (v === -Infinity) return w.bytes([0xf9, 0xfc, 0x00]);
    const h = half(v);
    if (h >= 0) return w.bytes([0xf9, h >>> 8, h & 0xff]);
    if (Math.fround(v) === v) {
      w.reserve(5);
      w.buf[w.len] = 0xfa;
      w.view.setFloat32(w.len + 1, v);
      w.len += 5;
      return undefined;
    }
    w.reserve(9);
    w.buf[w.len] = 0xfb;
    w.view.setFloat64(w.len + 1, v);
    w.len += 9;
    return undefined;
  }

  function encodeInteger(w, n) {
    if (n >= 0) w.head(0, n);
    else if (typeof n === 'bigint') w.head(1, -1n - n);
    else w.head(1, -1 - n);
  }

  const skipped = (v) => v === undefined || typeof v === 'function' || typeof v === 'symbol';

  function encodeValue(w, v, depth) {
    if (depth > MAX_DEPTH) throw new RangeError('CBOR: value nested too deeply (or circular)');
    switch (typeof v) {
      case 'undefined':
      case 'function':
      case 'symbol':
        return w.byte(0xf7);
      case 'boolean':
        return w.byte(v ? 0xf5 : 0xf4);
      case 'number':
        if (Number.isSafeInteger(v) && !Object.is(v, -0)) return encodeInteger(w, v);
        return encodeFloat(w, v);
      case 'bigint':
        if (v > 0xffffffffffffffffn || v < -0x10000000000000000n) {
          throw new RangeError('CBOR: BigInt out of the 64-bit range');
        }
        return encodeInteger(w, v);
      case 'string': {
        const b = textEncoder.encode(v);
        w.head(3, b.length);
        return w.bytes(b);
      }
      default:
        break;
    }
    if (v === null) return w.byte(0xf6);
    if (v instanceof Uint8Array || ArrayBuffer.isView(v) || v instanceof ArrayBuffer) {
      const b = v instanceof ArrayBuffer
        ? new Uint8Array(v)
        : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
      w.head(2, b.length);
      return w.bytes(b);
    }
    if (Array.isArray(v)) {
      w.head(4, v.length);
      for (const item of v) encodeValue(w, item, depth + 1);
      return undefined;
    }
    if (v instanceof Map) {
      w.head(5, v.size);
      for (const [k, item] of v) {
        encodeValue(w, k, depth + 1);
        encodeValue(w, item, depth + 1);
      }
      return undefined;
    }
    if (typeof v.toJSON === 'function') return encodeValue(w, v.toJSON(), depth + 1);
    const keys = Object.keys(v).filter((k) => !skipped(v[k]));
    w.head(5, keys.length);
    for (const k of keys) {
      encodeValue(w, k, depth + 1);
      encodeValue(w, v[k], depth + 1);
    }
    return undefined;
  }

  // encode returns the CBOR encoding of value as a Uint8Array.
  function encode(value) {
    const w = new Writer();
    encodeValue(w, value, 0);
    return w.result();
  }

  const BREAK = Symbol('break');

  class Reader {
    constructor(bytes) {
      this.buf = bytes;
      this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      this.pos = 0;
    }

    need(n) {
      if (this.pos + n > this.buf.length) throw new SyntaxError('CBOR: unexpected end of data');
    }

    u8() {
      this.need(1);
      return this.buf[this.pos++];
    }

    // arg reads the argument of a head with additional information ai; -1
    // means indefinite length.
    arg(ai) {
      if (ai < 24) return ai;
      let n;
      switch (ai) {
        case 24:
          return this.u8();
        case 25:
          this.need(2);
          n = this.view.getUint16(this.pos);
          this.pos += 2;
          return n;
        case 26:
          this.need(4);
          n = this.view.getUint32(this.pos);
          this.pos += 4;
          return n;
        case 27: {
          this.need(8);
          const big = this.view.getBigUint64(this.pos);
          this.pos += 8;
          return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
        }
        case 31:
          return -1;
        default:
          throw new SyntaxError(`CBOR: invalid additional information ${ai}`);
      }
    }

    length(ai) {
      const n = this.arg(ai);
      if (typeof n === 'bigint') throw new RangeError('CBOR: length too large');
      return n;
    }

    chunks(major, ai) {
      const parts = [];
      let total = 0;
      for (;;) {
        const b = this.u8();
        if (b === 0xff) break;
        if (b >> 5 !== major || (b & 31) === 31) throw new SyntaxError('CBOR: invalid chunk in an indefinite-length string');
        const n = this.length(b & 31);
        this.need(n);
        parts.push(this.buf.subarray(this.pos, this.pos + n));
        this.pos += n;
        total += n;
      }
      const out = new Uint8Array(total);
      let off = 0;
      for (const p of parts) {
        out.set(p, off);
        off += p.length;
      }
      return out;
    }

    bytesOf(major, ai) {
      if (ai === 31) return this.chunks(major, ai);
      const n = this.length(ai);
      this.need(n);
      const b = this.buf.slice(this.pos, this.pos + n);
      this.pos += n;
      return b;
    }

    value(depth) {
      if (depth > MAX_DEPTH) throw new RangeError('CBOR: data nested too deeply');
      const b = this.u8();
      const major = b >> 5;
      const ai = b & 31;
      switch (major) {
        case 0: {
          const n = this.arg(ai);
          if (n === -1) throw new SyntaxError('CBOR: indefinite-length integer');
          return n;
        }
        case 1: {
          const n = this.arg(ai);
          if (n === -1) throw new SyntaxError('CBOR: indefinite-length integer');
          if (typeof n === 'bigint') return -1n - n;
          const neg = -1 - n;
          return Number.isSafeInteger(neg) ? neg : -1n - BigInt(n);
        }
        case 2:
          return this.bytesOf(2, ai);
        case 3:
          return textDecoder.decode(this.bytesOf(3, ai));
        case 4: {
          const n = this.length(ai);
          const out = [];
          if (n === -1) {
            for (;;) {
              const item = this.value(depth + 1);
              if (item === BREAK) break;
              out.push(item);
            }
          } else {
            for (let i = 0; i < n; i++) out.push(this.item(depth + 1));
          }
          return out;
        }
        case 5: {
          const n = this.length(ai);
          const out = {};
          for (let i = 0; n === -1 || i < n; i++) {
            const k = n === -1 ? this.value(depth + 1) : this.item(depth + 1);
            if (k === BREAK) break;
            const v = this.item(depth + 1);
            const key = typeof k === 'string' ? k : String(k);
            Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true });
          }
          return out;
        }
        case 6: {
          const tag = this.arg(ai);
          if (tag === -1) throw new SyntaxError('CBOR: indefinite-length tag');
          const inner = this.item(depth + 1);
          if ((tag === 2 || tag === 3) && inner instanceof Uint8Array) {
            let n = 0n;
            for (const x of inner) n = (n << 8n) | BigInt(x);
            if (tag === 3) n = -1n - n;
            return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
          }
          return inner;
        }
        default:
          return this.simple(ai);
      }
    }

    simple(ai) {
      let v;
      switch (ai) {
        case 20: return false;
        case 21: return true;
        case 22: return null;
        case 23: return undefined;
        case 24:
          this.u8();
          return undefined;
        case 25:
          this.need(2);
          v = fromHalf(this.view.getUint16(this.pos));
          this.pos += 2;
          return v;
        case 26:
          this.need(4);
          v = this.view.getFloat32(this.pos);
          this.pos += 4;
          return v;
        case 27:
          this.need(8);
          v = this.view.getFloat64(this.pos);
          this.pos += 8;
          return v;
        case 31:
          return BREAK;
        default:
          if (ai < 20) return undefined; // unassigned simple value
          throw new SyntaxError(`CBOR: invalid simple value ${ai}`);
      }
    }

    // item is value that must not be a break.
    item(depth) {
      const v = this.value(depth);
      if (v === BREAK) throw new SyntaxError('CBOR: unexpected break');
      return v;
    }
  }

  function fromHalf(h) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) return sign * mant * 2 ** -24;
    if (exp === 31) return mant ? NaN : sign * Infinity;
    return sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }

  function toBytes(data) {
    if (data instanceof Uint8Array) return data;
    if (data instanceof ArrayBuffer) return new Uint8Array(data);
    if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    throw new TypeError('CBOR: cannot decode a ' + (data === null ? 'null' : typeof data) + ' (binary data expected)');
  }

  // decode returns the value encoded in data (a Uint8Array, an ArrayBuffer
  // or another ArrayBuffer view).
  function decode(data) {
    const r = new Reader(toBytes(data));
    const v = r.item(0);
    if (r.pos !== r.buf.length) throw new SyntaxError('CBOR: extra data after the value');
    return v;
  }

  return { encode, decode };
})();
