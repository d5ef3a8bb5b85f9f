// The browser client of primus for Go: the same API as the stock Primus
// client (https://github.com/primus/primus), written anew in plain modern
// JavaScript for the Go server.
//
// The server serves this file at <pathname>/primus.js (Server.Library) inside
// a wrapper function `(root, settings, libraries)`, after cbor.js:
//   - settings are the server's facts, baked in as Primus's library() does:
//     pathname, parser, transformer, pingInterval (ms, or false), whether an
//     authorization function is set, version, global name;
//   - libraries are the browser parts of the server's plugins, each a
//     function run once with the Primus class.
// The class is exported as module.exports under CommonJS (Node, with the ws
// package for WebSocket) and as a global (`Primus`) everywhere else.
//
// Events, options and reconnection behave as in the stock client; see
// section 6 of the Primus protocol notes (shared/docs/primus-protocol.md) and
// primus.d.ts. The internal events `outgoing::*` and `incoming::*` are the
// same as the stock client's, so code that taps them keeps working.

/* global root, settings, libraries, CBOR */

const nodeRequire = (() => {
  if (typeof require !== 'function') return undefined;
  if (typeof define === 'function' && define.amd) return undefined; // eslint-disable-line no-undef
  return require; // eslint-disable-line no-undef
})();

// EventEmitter is a small emitter with the EventEmitter3 API the stock client
// has. Emitting 'error' without listeners does nothing (it never throws).
class EventEmitter {
  constructor() {
    this._events = new Map();
  }

  _add(event, fn, context, once) {
    if (typeof fn !== 'function') throw new TypeError('The listener must be a function');
    const list = this._events.get(event);
    const entry = { fn, context: context || this, once };
    if (list) list.push(entry);
    else this._events.set(event, [entry]);
    return this;
  }

  on(event, fn, context) { return this._add(event, fn, context, false); }

  addListener(event, fn, context) { return this._add(event, fn, context, false); }

  once(event, fn, context) { return this._add(event, fn, context, true); }

  // removeListener removes the listeners of event that match fn (and
  // context, and once, when given); without fn, all of event's listeners.
  removeListener(event, fn, context, once) {
    const list = this._events.get(event);
    if (!list) return this;
    if (!fn) {
      this._events.delete(event);
      return this;
    }
    const keep = list.filter((l) => l.fn !== fn
      || (once && !l.once)
      || (context && l.context !== context));
    if (keep.length) this._events.set(event, keep);
    else this._events.delete(event);
    return this;
  }

  off(event, fn, context, once) { return this.removeListener(event, fn, context, once); }

  removeAllListeners(event) {
    if (event === undefined) this._events.clear();
    else this._events.delete(event);
    return this;
  }

  listeners(event) {
    const list = this._events.get(event);
    return list ? list.map((l) => l.fn) : [];
  }

  listenerCount(event) {
    const list = this._events.get(event);
    return list ? list.length : 0;
  }

  eventNames() {
    return Array.from(this._events.keys());
  }

  // emit calls the listeners of event in order with args and reports
  // whether there were any.
  emit(event, ...args) {
    const list = this._events.get(event);
    if (!list) return false;
    if (list.some((l) => l.once)) {
      const keep = list.filter((l) => !l.once);
      if (keep.length) this._events.set(event, keep);
      else this._events.delete(event);
    }
    for (const l of list.slice()) l.fn.apply(l.context, args);
    return true;
  }
}

// Timers are named timeouts: setting a name again replaces its timer.
class Timers {
  constructor(context) {
    this.context = context;
    this.active_ = new Map();
  }

  setTimeout(name, fn, ms) {
    this.clear(name);
    const id = setTimeout(() => {
      this.active_.delete(name);
      fn.call(this.context);
    }, ms);
    this.active_.set(name, id);
  }

  active(name) { return this.active_.has(name); }

  // clear clears the named timers, or all of them without names.
  clear(...names) {
    if (!names.length) names = Array.from(this.active_.keys());
    for (const name of names) {
      const id = this.active_.get(name);
      if (id !== undefined) clearTimeout(id);
      this.active_.delete(name);
    }
  }
}

// Recovery is the reconnection back-off of the stock client (its `recovery`
// module): attempt 1 waits `min`, attempt n waits
// min(round((random + 1) * min * factor^(n-1)), max); each attempt must open
// within `reconnect timeout`; after `retries` failed attempts it gives up.
class Recovery extends EventEmitter {
  constructor(options) {
    super();
    options = options || {};
    this.min = 'min' in options ? options.min : 500;
    this.max = 'max' in options ? options.max : Infinity;
    this.retries = 'retries' in options ? options.retries : 10;
    this.factor = 'factor' in options ? options.factor : 2;
    this['reconnect timeout'] = 'reconnect timeout' in options ? options['reconnect timeout'] : 30000;
    this.attempt = null;
    this._fn = null;
    this.timers = new Timers(this);
  }

  reconnect() {
    return this.backoff((err, opts) => {
      opts.duration = Date.now() - opts.start;
      if (err) this.emit('reconnect failed', err, opts);
      else this.emit('reconnected', opts);
    }, this.attempt);
  }

  backoff(fn, opts) {
    opts = opts || this.attempt || {};
    if (opts.backoff) return this; // an attempt is already scheduled
    for (const key of ['reconnect timeout', 'retries', 'factor', 'max', 'min']) {
      if (!(key in opts)) opts[key] = this[key];
    }
    opts.start = +opts.start || Date.now();
    opts.duration = +opts.duration || 0;
    opts.attempt = +opts.attempt || 0;
    if (opts.attempt === opts.retries) {
      fn(new Error('Unable to recover'), opts);
      return this;
    }
    opts.backoff = true;
    opts.attempt++;
    this.attempt = opts;
    opts.scheduled = opts.attempt !== 1
      ? Math.min(Math.round((Math.random() + 1) * opts.min * opts.factor ** (opts.attempt - 1)), opts.max)
      : opts.min;

    this.timers.setTimeout('reconnect', () => {
      opts.duration = Date.now() - opts.start;
      opts.backoff = false;
      this.timers.clear('reconnect', 'timeout');
      let called = false;
      const connect = this._fn = (err) => {
        if (called) return;
        called = true;
        this.reset();
        if (err) this.backoff(fn, opts);
        else fn(undefined, opts);
      };
      this.emit('reconnect', opts, connect);
      this.timers.setTimeout('timeout', () => {
        const err = new Error('Failed to reconnect in a timely manner');
        opts.duration = Date.now() - opts.start;
        this.emit('reconnect timeout', err, opts);
        connect(err);
      }, opts['reconnect timeout']);
    }, opts.scheduled);

    this.emit('reconnect scheduled', opts);
    return this;
  }

  reconnecting() { return !!this.attempt; }

  // reconnected ends the current attempt, failed when err is set.
  reconnected(err) {
    if (this._fn) this._fn(err);
    return this;
  }

  reset() {
    this._fn = this.attempt = null;
    this.timers.clear('reconnect', 'timeout');
    return this;
  }
}

// cacheBuster returns the value of the _primuscb query parameter that makes
// every connection URL unique: the time in milliseconds in base 64, with a
// counter appended when two are made in one millisecond.
const cacheBuster = (() => {
  const alphabet = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_';
  const encode = (n) => {
    let s = '';
    do {
      s = alphabet[n % 64] + s;
      n = Math.floor(n / 64);
    } while (n > 0);
    return s;
  };
  let prev = '';
  let seed = 0;
  return () => {
    const now = encode(Date.now());
    if (now !== prev) {
      seed = 0;
      prev = now;
      return now;
    }
    return now + '.' + encode(seed++);
  };
})();

const u2028 = /\u2028/g;
const u2029 = /\u2029/g;

// parsers encode one value into one message and back. A plugin's library
// may add one for a custom server parser (Primus.parsers[name] = {binary,
// encoder, decoder}).
const parsers = {
  json: {
    binary: false,
    encoder(data, fn) {
      let out;
      try {
        out = JSON.stringify(data);
      } catch (err) {
        return fn(err);
      }
      return fn(undefined, out);
    },
    // decoder passes binary frames through undecoded, as Primus does.
    decoder(data, fn) {
      if (typeof data !== 'string') return fn(undefined, data);
      let out;
      try {
        out = JSON.parse(data);
      } catch (err) {
        return fn(err);
      }
      return fn(undefined, out);
    },
  },
  cbor: {
    binary: true,
    encoder(data, fn) {
      let out;
      try {
        out = CBOR.encode(data);
      } catch (err) {
        return fn(err);
      }
      return fn(undefined, out);
    },
    decoder(data, fn) {
      let out;
      try {
        out = CBOR.decode(data);
      } catch (err) {
        return fn(err);
      }
      return fn(undefined, out);
    },
  },
};

// findFactory returns the global named name, or the npm module when running
// under CommonJS (Node).
function findFactory(name, module) {
  if (typeof globalThis !== 'undefined' && typeof globalThis[name] === 'function') {
    return { Factory: globalThis[name], native: true };
  }
  if (nodeRequire) {
    try {
      return { Factory: nodeRequire(module), native: false };
    } catch (e) { /* not installed */ }
  }
  return { Factory: undefined, native: false };
}

// sendAndClose wires the parts every transport shares: outgoing::data sends
// on the open socket, outgoing::reconnect opens anew, and outgoing::end
// detaches the socket (take returns it and forgets it) and closes it.
function sendAndClose(primus, current, take) {
  primus.on('outgoing::data', (message) => {
    const socket = current();
    if (!socket || socket.readyState !== 1) return;
    try {
      socket.send(message);
    } catch (err) {
      primus.emit('incoming::error', err);
    }
  });

  primus.on('outgoing::reconnect', () => primus.emit('outgoing::open'));

  primus.on('outgoing::end', () => {
    const s = take();
    if (!s) return;
    s.onerror = s.onopen = s.onclose = s.onmessage = () => {};
    try {
      s.close();
    } catch (e) { /* already closed */ }
  });
}

// transports connect the client to the server's transformer. Each is called
// once per client (this = the client) and works through the internal
// events: it listens to outgoing::open, outgoing::data, outgoing::end and
// outgoing::reconnect, and emits incoming::open, incoming::data,
// incoming::error and incoming::end.
const transports = {
  websockets() {
    const primus = this;
    const { Factory, native } = findFactory('WebSocket', 'ws');
    if (!Factory) {
      return primus.critical(new Error('primus: no WebSocket implementation: this runtime has no global WebSocket; in Node.js, install the `ws` package'));
    }
    let socket = null;

    primus.on('outgoing::open', () => {
      primus.emit('outgoing::end');
      let url;
      try {
        url = primus.uri({ protocol: 'ws:', query: true });
        socket = native ? new Factory(url) : new Factory(url, [], primus.transport);
        socket.binaryType = 'arraybuffer';
        primus.socket = socket;
      } catch (err) {
        primus.emit('error', err);
        return;
      }
      const current = socket;
      socket.onopen = () => primus.emit('incoming::open');
      // A browser's error event says nothing (not even a refusal's status);
      // the ws package's says what happened.
      socket.onerror = (e) => primus.emit('incoming::error', e && (e.message || e.error) ? e
        : new Error(`the WebSocket connection to ${url.split('?')[0]} failed`));
      socket.onclose = (e) => {
        if (current === socket) socket = null;
        primus.emit('incoming::end', e);
      };
      socket.onmessage = (e) => primus.emit('incoming::data', e.data);
    });

    sendAndClose(primus, () => socket, () => { const s = socket; socket = null; return s; });
    return undefined;
  },

  // sockjs uses the SockJS client the page has loaded (window.SockJS), or
  // the sockjs-client package in Node.js.
  sockjs() {
    const primus = this;
    const { Factory } = findFactory('SockJS', 'sockjs-client');
    if (!Factory) {
      return primus.critical(new Error('primus: the server uses the SockJS transformer but SockJS is not loaded: '
        + 'add <script src="…/sockjs.min.js"></script> (sockjs-client 1.x) before primus.js; in Node.js, install the `sockjs-client` package'));
    }
    let socket = null;

    primus.on('outgoing::open', () => {
      primus.emit('outgoing::end');
      try {
        socket = new Factory(primus.uri({ protocol: 'http:', query: true }), null, Object.assign({}, primus.transport, {
          info: { websocket: !primus.AVOID_WEBSOCKETS, cookie_needed: true },
        }));
        primus.socket = socket;
      } catch (err) {
        primus.emit('error', err);
        return;
      }
      const current = socket;
      socket.onopen = () => primus.emit('incoming::open');
      socket.onerror = (e) => primus.emit('incoming::error', e);
      socket.onclose = (e) => {
        if (current === socket) socket = null;
        // SockJS reports refusals and failures only as close codes.
        if (e && e.code > 1000) primus.emit('incoming::error', e);
        primus.emit('incoming::end', e);
      };
      socket.onmessage = (e) => primus.emit('incoming::data', e.data);
    });

    sendAndClose(primus, () => socket, () => { const s = socket; socket = null; return s; });
    return undefined;
  },

  // engine.io uses the engine.io-client the page has loaded (window.eio,
  // engine.io-client 6.x's browser build), or the engine.io-client package
  // in Node.js. Options as Primus's own engine.io glue sets them: no
  // remembered upgrade, timestamped requests, polling then WebSocket (only
  // polling with websockets: false; transport.transports overrides), and
  // text messages as they are, binary ones as binary (base64 when the parser
  // is not binary, as Primus forces).
  'engine.io'() {
    const primus = this;
    let factory;
    if (typeof globalThis !== 'undefined' && typeof globalThis.eio === 'function') {
      factory = (opts) => globalThis.eio(opts);
    } else if (nodeRequire) {
      try {
        const { Socket } = nodeRequire('engine.io-client');
        factory = (opts) => new Socket(opts);
      } catch (e) { /* not installed */ }
    }
    if (!factory) {
      return primus.critical(new Error('primus: the server uses the engine.io transformer but engine.io-client is not loaded: '
        + 'add <script src="…/engine.io.min.js"></script> (engine.io-client 6.x, which defines eio) before primus.js; in Node.js, install the `engine.io-client` package'));
    }
    let socket = null;
    const binary = !!(Primus.parsers[primus.parser] && Primus.parsers[primus.parser].binary);

    const detach = () => {
      const s = socket;
      socket = null;
      if (s) s.off();
      return s;
    };

    primus.on('outgoing::open', () => {
      primus.emit('outgoing::end');
      try {
        const url = primus.uri({ protocol: 'http:', query: true, object: true });
        socket = factory(Object.assign({
          transports: primus.AVOID_WEBSOCKETS ? ['polling'] : ['polling', 'websocket'],
        }, primus.transport, {
          hostname: primus.url.hostname,
          port: String(url.port),
          secure: url.secure,
          query: url.query,
          path: primus.pathname,
          rememberUpgrade: false,
          timestampRequests: true,
          forceBase64: !binary,
        }));
        socket.binaryType = 'arraybuffer';
        primus.socket = socket;
      } catch (err) {
        primus.emit('error', err);
        return;
      }
      const current = socket;
      socket.on('open', () => primus.emit('incoming::open'));
      socket.on('error', (e) => primus.emit('incoming::error', e));
      socket.on('close', (reason, description) => {
        if (current !== socket) return;
        socket = null;
        primus.emit('incoming::end', { reason, description });
      });
      // Binary messages reach data listeners as ArrayBuffers, as over the
      // websockets transformer (engine.io-client gives Node.js Buffers).
      socket.on('message', (data) => primus.emit('incoming::data', typeof data === 'string' || data instanceof ArrayBuffer
        ? data : data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)));
    });

    primus.on('outgoing::data', (message) => {
      if (!socket || socket.readyState !== 'open') return;
      try {
        socket.send(message);
      } catch (err) {
        primus.emit('incoming::error', err);
      }
    });

    primus.on('outgoing::reconnect', () => primus.emit('outgoing::open'));

    primus.on('outgoing::end', () => {
      const s = detach();
      if (!s) return;
      try {
        s.close();
      } catch (e) { /* already closed */ }
    });
    return undefined;
  },
};

function defaultUrl() {
  try {
    if (typeof location !== 'undefined' && location.origin && location.origin !== 'null') return location.origin;
  } catch (e) { /* no location */ }
  return 'http://127.0.0.1';
}

// toError turns what a transport reports (an Error, a string, an event or
// a SockJS close object) into an Error.
function toError(e) {
  if (e instanceof Error) return e;
  if (typeof e === 'string') return new Error(e);
  if (e && typeof e === 'object') {
    const inner = e.error instanceof Error ? e.error : undefined;
    const message = e.message || (inner && inner.message) || e.reason
      || (e.code ? `connection closed with code ${e.code}` : 'connection failed');
    const err = new Error(message);
    for (const key of ['code', 'reason', 'type']) {
      if (e[key] !== undefined) err[key] = e[key];
    }
    if (inner) err.cause = inner;
    return err;
  }
  return new Error(String(e));
}

let networkEvents = false;
let startOnline = true;
try {
  networkEvents = typeof navigator !== 'undefined' && 'onLine' in navigator
    && typeof window !== 'undefined' && typeof window.addEventListener === 'function';
  if (networkEvents && !navigator.onLine) startOnline = false;
} catch (e) { /* no browser */ }

// Primus is one connection to the server, re-established when it drops.
class Primus extends EventEmitter {
  constructor(url, options) {
    super();
    if (url !== null && typeof url === 'object') {
      options = url;
      url = options.url || options.uri || defaultUrl();
    } else {
      options = options || {};
    }
    if ('ping' in options || 'pong' in options) {
      return this.critical(new Error('The `ping` and `pong` options have been removed'));
    }
    const primus = this;

    options.queueSize = 'queueSize' in options ? options.queueSize : Infinity;
    options.timeout = 'timeout' in options ? options.timeout : 10e3;
    options.reconnect = 'reconnect' in options ? options.reconnect : {};
    options.pingTimeout = 'pingTimeout' in options ? options.pingTimeout : primus.defaultPingTimeout;
    options.strategy = 'strategy' in options ? options.strategy : [];
    options.transport = 'transport' in options ? options.transport : {};

    primus.buffer = [];
    primus.writable = true;
    primus.readable = true;
    primus.url = new URL(url || defaultUrl(), defaultUrl());
    primus.readyState = Primus.CLOSED;
    primus.options = options;
    primus.timers = new Timers(primus);
    primus.socket = null;
    primus.disconnect = false;
    primus.transport = options.transport;
    primus.transformers = { outgoing: [], incoming: [] };
    primus.recovery = new Recovery(options.reconnect);
    // Resumable connections (the server's Options.Recovery): see greeted().
    primus.recovered = false;
    primus.resumed = false;
    primus.rs = {
      offered: primus.recoveryWindow > 0 && options.recovery !== false,
      cred: '', // resumes the spark; empty before the first session
      resuming: false, // the connection being opened asked to resume
      awaiting: false, // waiting for the server's greeting
      recv: 0, // data messages received in this session
      recvAckd: 0, // the count the server was last told
      unacked: [], // data packets written in this session, not confirmed
      acked: 0, // the number of the last confirmed one
    };

    // Strategies: disconnect (unexpected close after open), online (the
    // browser is back online), timeout (the first connection failed). A
    // server with an authorization function leaves timeout out, so that a
    // refused client gives up.
    let strategy = options.strategy;
    if (typeof strategy === 'string') strategy = strategy.split(/\s?,\s?/g);
    if (strategy === false) {
      strategy = [];
    } else if (!strategy.length) {
      strategy = ['disconnect', 'online'];
      if (!primus.authorization) strategy.push('timeout');
    }
    options.strategy = strategy.join(',').toLowerCase();

    if ('websockets' in options) primus.AVOID_WEBSOCKETS = !options.websockets;
    if ('network' in options) primus.NETWORK_EVENTS = options.network;

    const parser = Primus.parsers[primus.parser];
    if (!parser) {
      return primus.critical(new Error(`primus: the server's parser "${primus.parser}" has no browser part; add one with Primus.parsers["${primus.parser}"]`));
    }
    primus.encoder = parser.encoder;
    primus.decoder = parser.decoder;

    if (!options.manual) {
      primus.timers.setTimeout('open', () => {
        primus.timers.clear('open');
        primus.open();
      }, 0);
    }
    primus.initialise(options);
  }

  // initialise wires the internal events, the transport, the plugins and the
  // network events.
  initialise(options) {
    const primus = this;

    primus.recovery
      .on('reconnected', (opts) => primus.emit('reconnected', opts))
      .on('reconnect failed', (err, opts) => {
        primus.emit('end');
        primus.emit('reconnect failed', err, opts);
      })
      .on('reconnect timeout', (err, opts) => primus.emit('reconnect timeout', err, opts))
      .on('reconnect scheduled', (opts) => primus.emit('reconnect scheduled', opts))
      .on('reconnect', (opts, connect) => {
        primus.emit('outgoing::reconnect');
        primus.emit('reconnect', opts, connect);
      });

    primus.on('outgoing::open', () => {
      const before = primus.readyState;
      primus.readyState = Primus.OPENING;
      if (before !== primus.readyState) primus.emit('readyStateChange', 'opening');
    });

    primus.on('incoming::open', () => {
      if (primus.rs.offered) {
        // Nothing goes out until the server says whether it resumed the
        // spark: the first message it sends.
        primus.rs.awaiting = true;
        primus.rs.resuming = !!primus.rs.cred;
        return;
      }
      primus._established();
    });

    // _established completes an open: the connection is usable from here on.
    primus._established = (resend, info) => {
      const before = primus.readyState;
      const reconnection = primus.recovery.reconnecting();
      if (reconnection) primus.recovery.reconnected();
      primus.writable = true;
      primus.readable = true;
      if (!primus.online) {
        primus.online = true;
        primus.emit('online');
      }
      // What the resumed spark has not received goes first, in order.
      if (resend) for (const packet of resend) primus.emit('outgoing::data', packet);
      primus.readyState = Primus.OPEN;
      if (before !== primus.readyState) primus.emit('readyStateChange', 'open');
      primus.heartbeat();
      if (primus.buffer.length) {
        const queued = primus.buffer;
        primus.buffer = [];
        for (const [data, ctl] of queued) primus._write(data, ctl);
      }
      if (info && reconnection) primus.emit('recovery', info);
      primus.emit('open');
    };

    // The pong is written by this listener, as in the stock client: removing
    // the incoming::ping listeners stops the pongs.
    primus.on('incoming::ping', (time) => {
      primus.online = true;
      primus.heartbeat();
      primus.emit('outgoing::pong', time);
      primus._write('primus::pong::' + time, true);
      primus.confirm();
    });

    primus.on('incoming::error', (e) => {
      const connecting = primus.timers.active('connect');
      const err = toError(e);
      // A failed reconnection attempt is not an error: it schedules the next.
      if (primus.recovery.reconnecting()) {
        primus.recovery.reconnected(err);
        return;
      }
      primus.emit('error', err);
      if (connecting) {
        if (primus.options.strategy.includes('timeout')) primus.recovery.reconnect();
        else primus.end();
      }
    });

    primus.on('incoming::data', (raw) => {
      primus.decoder(raw, (err, data) => {
        const rs = primus.rs;
        if (err) {
          if (rs.offered && !rs.awaiting) primus.received();
          primus.emit('error', err);
          return;
        }
        if (primus.protocol(data)) return;
        if (rs.awaiting) {
          // Not a greeting: this server does not resume after all.
          rs.offered = rs.awaiting = false;
          primus._established();
        }
        if (rs.offered) primus.received();
        primus.transforms(primus, primus, 'incoming', data, raw);
      });
    });

    primus.on('incoming::end', () => {
      const before = primus.readyState;
      const greeting = primus.rs.awaiting;
      primus.rs.awaiting = false;
      // primus::server::close came first: the server ended us on purpose.
      if (primus.disconnect) {
        primus.disconnect = false;
        primus.end();
        return;
      }
      primus.readyState = Primus.CLOSED;
      if (before !== primus.readyState) primus.emit('readyStateChange', 'end');
      if (greeting && primus.options.strategy.includes('disconnect')) {
        // Lost before the server's greeting: try again.
        primus.recovery.reconnect();
        return;
      }
      if (primus.timers.active('connect')) primus.end();
      if (before !== Primus.OPEN) {
        if (primus.recovery.reconnecting()) primus.recovery.reconnect();
        return;
      }
      primus.writable = false;
      primus.readable = false;
      primus.timers.clear();
      primus.emit('close');
      if (primus.options.strategy.includes('disconnect')) {
        primus.recovery.reconnect();
        return;
      }
      primus.emit('outgoing::end');
      primus.emit('end');
    });

    const transport = Primus.transports[primus.transformer];
    if (!transport) {
      return primus.critical(new Error(`primus: the server's transformer "${primus.transformer}" has no browser part`));
    }
    transport.call(primus);

    for (const name of Object.keys(primus.ark)) primus.ark[name].call(primus, primus, options);

    if (!primus.NETWORK_EVENTS) return primus;

    primus.offlineHandler = () => {
      if (!primus.online) return;
      primus.online = false;
      primus.emit('offline');
      primus.end();
      // A reconnection in progress starts afresh when we are back online.
      primus.recovery.reset();
    };
    primus.onlineHandler = () => {
      if (primus.online) return;
      primus.online = true;
      primus.emit('online');
      if (primus.options.strategy.includes('online')) primus.recovery.reconnect();
    };
    window.addEventListener('offline', primus.offlineHandler, false);
    window.addEventListener('online', primus.onlineHandler, false);
    return primus;
  }

  // protocol handles the primus:: control messages and reports whether msg
  // was one. Unknown primus:: strings are data, as in Primus.
  protocol(msg) {
    if (typeof msg !== 'string' || !msg.startsWith('primus::')) return false;
    const last = msg.indexOf(':', 8);
    const value = msg.slice(last + 2);
    switch (msg.slice(8, last)) {
      case 'ping':
        this.emit('incoming::ping', +value);
        return true;
      case 'server':
        if (value === 'close') this.disconnect = true;
        return true;
      case 'id':
        this.emit('incoming::id', value);
        return true;
      case 'session':
      case 'resumed':
        if (!this.rs.offered) return false;
        this.greeted(msg.slice(8, last), value);
        return true;
      case 'ack':
        if (!this.rs.offered) return false;
        this.acknowledged(+value);
        return true;
      default:
        return false;
    }
  }

  // greeted handles the server's greeting on a connection that asked for
  // recovery: "session" (a new spark; value is "credential::reason", the
  // reason why a resume failed) or "resumed" ("count::credential": the
  // spark is back and has received count of our data messages).
  greeted(kind, value) {
    const rs = this.rs;
    if (!rs.awaiting) return;
    rs.awaiting = false;
    const sep = value.indexOf('::');
    const first = sep < 0 ? value : value.slice(0, sep);
    const second = sep < 0 ? '' : value.slice(sep + 2);
    if (kind === 'resumed') {
      rs.cred = second;
      this.acknowledged(+first);
      this.recovered = this.resumed = true;
      this.ackGreeting();
      this._established(rs.unacked.slice(), { recovered: true });
      return;
    }
    const resuming = rs.resuming;
    rs.cred = first;
    rs.recv = rs.recvAckd = 0;
    rs.unacked = [];
    rs.acked = 0;
    this.recovered = false;
    this.resumed = false;
    this.ackGreeting();
    this._established(null, resuming ? { recovered: false, reason: second || 'unknown' } : null);
  }

  // ackGreeting queues, first, an ack of what was received: it shows the
  // server that we have the credential the greeting carried, so that the
  // one we used can be forgotten.
  ackGreeting() {
    const rs = this.rs;
    rs.recvAckd = rs.recv;
    this.buffer.unshift(['primus::ack::' + rs.recv, true]);
  }

  // acknowledged forgets the data packets the server has received: n in all.
  acknowledged(n) {
    const rs = this.rs;
    while (rs.acked < n && rs.unacked.length) {
      rs.unacked.shift();
      rs.acked++;
    }
  }

  // received counts a data message (recovery) and confirms the count every
  // 64 messages.
  received() {
    const rs = this.rs;
    rs.recv++;
    if (rs.recv - rs.recvAckd >= 64) this.confirm();
  }

  // confirm tells the server how many data messages arrived, when that
  // changed; after each pong, and every 64 messages.
  confirm() {
    const rs = this.rs;
    if (!rs.offered || rs.recv === rs.recvAckd) return;
    rs.recvAckd = rs.recv;
    this._write('primus::ack::' + rs.recv, true);
  }

  // transforms runs the message transformers of type ('incoming' or
  // 'outgoing') in order on data, then emits data (incoming) or writes it
  // (outgoing) on connection. A transformer with one parameter is
  // synchronous and returns false to swallow the message; one with two gets
  // a callback next(err, false-to-swallow).
  transforms(primus, connection, type, data, raw) {
    const packet = { data };
    const fns = primus.transformers[type];
    const step = (index) => {
      const fn = fns[index];
      if (!fn) {
        if (type === 'incoming') connection.emit('data', packet.data, raw);
        else connection._write(packet.data);
        return;
      }
      if (fn.length === 1) {
        if (fn.call(connection, packet) === false) return;
        step(index + 1);
        return;
      }
      fn.call(connection, packet, (err, arg) => {
        if (err) {
          connection.emit('error', err);
          return;
        }
        if (arg === false) return;
        step(index + 1);
      });
    };
    step(0);
    return this;
  }

  // transform adds a message transformer of type 'incoming' or 'outgoing'.
  transform(type, fn) {
    if (!(type in this.transformers)) return this.critical(new Error('Invalid transformer type'));
    this.transformers[type].push(fn);
    return this;
  }

  // id calls fn with the id of this connection's spark on the server.
  id(fn) {
    // The stock client answers from the engine.io sid, which is the spark id
    // (transport.Identified); a resumed spark keeps the id of its first one.
    if (this.socket && this.socket.id && !this.rs.offered) return fn(this.socket.id);
    this._write('primus::id::', true);
    return this.once('incoming::id', fn);
  }

  // open connects; it is called by the constructor unless options.manual.
  open() {
    if (!this.recovery.reconnecting() && this.options.timeout) this.timeout();
    this.emit('outgoing::open');
    return this;
  }

  // write sends data, or queues it until the connection opens. It always
  // returns true (there is no back-pressure).
  write(data) {
    this.transforms(this, this, 'outgoing', data);
    return true;
  }

  // _write encodes and sends data below the transformers, or queues it
  // while the connection is not open (dropping the oldest when queueSize is
  // reached). ctl marks a protocol message; with recovery, every other one
  // is kept until the server confirms it, to be written again to a resumed
  // spark that did not get it.
  _write(data, ctl) {
    const primus = this;
    if (primus.readyState !== Primus.OPEN) {
      if (primus.buffer.length === primus.options.queueSize) primus.buffer.splice(0, 1);
      primus.buffer.push([data, !!ctl]);
      return false;
    }
    primus.encoder(data, (err, packet) => {
      if (err) {
        primus.emit('error', err);
        return;
      }
      if (packet === undefined) return; // JSON has no encoding for undefined
      if (typeof packet === 'string') {
        if (packet.includes('\u2028')) packet = packet.replace(u2028, '\\u2028');
        if (packet.includes('\u2029')) packet = packet.replace(u2029, '\\u2029');
      }
      if (!ctl && primus.rs.offered) primus.rs.unacked.push(packet);
      primus.emit('outgoing::data', packet);
    });
    return true;
  }

  // heartbeat restarts the ping timeout: a server silent for pingTimeout ms
  // is taken for gone (offline, then the connection is closed and
  // re-established).
  heartbeat() {
    if (!this.options.pingTimeout) return this;
    this.timers.setTimeout('heartbeat', () => {
      if (!this.online) return;
      this.online = false;
      this.emit('offline');
      this.emit('incoming::end');
    }, this.options.pingTimeout);
    return this;
  }

  // timeout starts the connect timer of the first connection.
  timeout() {
    const primus = this;
    const remove = () => {
      primus.removeListener('error', remove)
        .removeListener('open', remove)
        .removeListener('end', remove);
      primus.timers.clear('connect');
    };
    primus.timers.setTimeout('connect', () => {
      remove();
      if (primus.readyState === Primus.OPEN || primus.recovery.reconnecting()) return;
      primus.emit('timeout');
      if (primus.options.strategy.includes('timeout')) primus.recovery.reconnect();
      else primus.end();
    }, primus.options.timeout);
    return primus.on('error', remove).on('open', remove).on('end', remove);
  }

  // end closes the connection for good, after writing data when given.
  end(data) {
    if (this.readyState === Primus.CLOSED && !this.timers.active('connect') && !this.timers.active('open')) {
      if (this.recovery.reconnecting()) {
        this.recovery.reset();
        this.emit('end');
      }
      return this;
    }
    if (data !== undefined) this.write(data);
    this.writable = false;
    this.readable = false;
    const before = this.readyState;
    this.readyState = Primus.CLOSED;
    if (before !== this.readyState) this.emit('readyStateChange', 'end');
    this.timers.clear();
    this.recovery.reset();
    this.emit('outgoing::end');
    this.emit('close');
    this.emit('end');
    return this;
  }

  // destroy ends the connection and removes every listener. It returns
  // false when the client was already destroyed.
  destroy() {
    if (this.destroyed) return false;
    this.end();
    this.destroyed = true;
    this.timers.clear();
    this.recovery.reset();
    this.recovery.removeAllListeners();
    this.socket = null;
    this.emit('destroy');
    this.removeAllListeners();
    if (this.NETWORK_EVENTS && this.offlineHandler) {
      window.removeEventListener('offline', this.offlineHandler);
      window.removeEventListener('online', this.onlineHandler);
    }
    return true;
  }

  // uri builds the connection URL from the URL given to the constructor
  // (scheme, host, port, credentials and query) and the server's pathname.
  // Listeners of outgoing::url may change the options first.
  uri(options) {
    const url = this.url;
    options = options || {};
    const qsa = !!options.query;
    options.protocol = 'protocol' in options ? options.protocol : 'http:';
    options.query = qsa ? url.search.slice(1) : '';
    options.secure = 'secure' in options ? options.secure : url.protocol === 'https:' || url.protocol === 'wss:';
    options.auth = 'auth' in options ? options.auth
      : (url.username ? url.username + (url.password ? ':' + url.password : '') : '');
    options.pathname = 'pathname' in options ? options.pathname : this.pathname;
    options.port = 'port' in options ? +options.port : (+url.port || (options.secure ? 443 : 80));
    const query = new URLSearchParams(options.query);
    query.set('_primuscb', cacheBuster());
    if (this.rs && this.rs.offered) {
      query.set('_primus_recover', '1');
      if (this.rs.cred) {
        query.set('_primus_resume', this.rs.cred);
        query.set('_primus_received', String(this.rs.recv));
      }
    }
    options.query = query.toString();
    this.emit('outgoing::url', options);

    if (options.object) return options;
    const scheme = options.secure ? options.protocol.replace(':', 's:') : options.protocol;
    const defaultPort = options.secure ? 443 : 80;
    const host = url.hostname + (options.port && options.port !== defaultPort ? ':' + options.port : '');
    let out = scheme + '//' + (options.auth ? options.auth + '@' : '') + host + (options.pathname || '');
    if (qsa) out += '?' + options.query;
    return out;
  }

  // reserved reports whether evt is an event of the client itself, which
  // plugins must not use for their own events.
  reserved(evt) {
    return /^(incoming|outgoing)::/.test(evt) || evt in Primus.prototype.reserved.events;
  }

  // plugin returns the named plugin's per-client initialiser, or all of
  // them.
  plugin(name) {
    if (name) return this.ark[name];
    return Object.assign({}, this.ark);
  }

  // emits returns a function that emits event with its arguments (after
  // parser(next, ...args) when given; next(err, args) replaces them).
  emits(event, parser) {
    const self = this;
    if (typeof parser !== 'function') return (...args) => self.emit(event, ...args);
    return (...args) => {
      parser.call(self, (err, returned) => {
        if (err) {
          self.emit('error', err);
          return;
        }
        const out = returned === undefined ? args : (returned === null ? [] : returned);
        self.emit(event, ...out);
      }, ...args);
      return true;
    };
  }

  clone(obj) { return Object.assign({}, obj); }

  merge(target, ...objs) { return Object.assign(target, ...objs); }

  // critical reports an error that makes the client unusable: to the error
  // listeners if there are any, otherwise it throws.
  critical(err) {
    if (this.emit('error', err)) return this;
    throw err;
  }

  static connect(url, options) {
    return new Primus(url, options);
  }
}

Primus.OPENING = 1; // connecting
Primus.CLOSED = 2; // no connection
Primus.OPEN = 3; // connected

Primus.EventEmitter = EventEmitter;
Primus.parsers = parsers;
Primus.transports = transports;
Primus.CBOR = CBOR;

Primus.prototype.AVOID_WEBSOCKETS = false;
Primus.prototype.NETWORK_EVENTS = networkEvents;
Primus.prototype.online = startOnline;

// ark holds the per-client initialisers of plugins: a plugin's library adds
// Primus.prototype.ark[name] = function (primus, options) {…}, called for
// every client at the end of its construction, in plugin order.
Primus.prototype.ark = {};

Primus.prototype.reserved.events = {
  'reconnect scheduled': 1,
  'reconnect timeout': 1,
  readyStateChange: 1,
  'reconnect failed': 1,
  reconnected: 1,
  recovery: 1,
  reconnect: 1,
  offline: 1,
  timeout: 1,
  destroy: 1,
  online: 1,
  error: 1,
  close: 1,
  open: 1,
  data: 1,
  end: 1,
};

// The server's settings, baked in when the library is served.
Primus.prototype.pathname = settings.pathname;
Primus.prototype.parser = settings.parser;
Primus.prototype.transformer = settings.transformer;
Primus.prototype.authorization = !!settings.authorization;
Primus.prototype.version = settings.version;
Primus.prototype.recoveryWindow = settings.recovery || 0;
Primus.prototype.defaultPingTimeout = typeof settings.pingInterval === 'number' && settings.pingInterval > 0
  ? settings.pingInterval + Math.round(settings.pingInterval / 2)
  : false;

for (const library of libraries) library(Primus);

if (typeof module === 'object' && module && module.exports) {
  module.exports = Primus; // eslint-disable-line no-undef
} else if (root) {
  root[settings.global || 'Primus'] = Primus;
}
