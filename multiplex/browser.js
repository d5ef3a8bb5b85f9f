// The browser part of the multiplex plugin (primus-multiplex's wire
// format), served with the client library and run once with the Primus
// class.
//
//   const news = primus.channel('news');   // subscribes: [1, id, "news"]
//   news.on('data', (msg) => …);            // [0, id, "news", msg] from the server
//   news.write('hello');                    // [0, id, "news", "hello"]
//   news.end();                             // [2, id, "news"]
//
// Each channel object has its own random id, kept across reconnections:
// after one, every live channel subscribes again, before the messages
// queued while offline are sent. A channel gets the connection's events
// (open, close, reconnect, error, …) and ends when the server unsubscribes
// it or the connection ends for good. With the emitter plugin, channels
// have send() and receive events too. Unlike primus-multiplex, the plugin's
// packets are consumed (data listeners of the connection do not see them),
// packets for channels this client does not have are dropped instead of
// throwing, and falsy payloads (0, '', false, null) are sent.

const MESSAGE = 0;
const SUBSCRIBE = 1;
const UNSUBSCRIBE = 2;

// isPacket reports whether data has the shape of a multiplex packet.
function isPacket(data) {
  return Array.isArray(data) && (data.length === 3 || data.length === 4)
    && (data[0] === MESSAGE || data[0] === SUBSCRIBE || data[0] === UNSUBSCRIBE)
    && typeof data[1] === 'string' && typeof data[2] === 'string';
}

class Channel extends Primus.EventEmitter {
  constructor(mux, name) {
    super();
    this.mux = mux;
    this.conn = mux.primus;
    this.name = name;
    this.channel = name; // primus-multiplex's name for it
    this.id = Math.random().toString(35).slice(2, 15);
    this.readyState = this.conn.readyState;
    this.ended = false;
    if (Primus.emitter) this.emitter = Primus.emitter.attach(this);
  }

  packet(type, data) {
    const p = [type, this.id, this.name];
    if (data !== undefined) p.push(data);
    return p;
  }

  // write sends data on the channel; it is queued while the connection is
  // not open. It returns false once the channel has ended.
  write(data) {
    if (this.ended) return false;
    return this.conn.write(this.packet(MESSAGE, data));
  }

  // end unsubscribes (after writing data, when given) and ends the channel.
  end(data) {
    if (this.ended) return this;
    if (data !== undefined) this.write(data);
    this.conn.write(this.packet(UNSUBSCRIBE));
    this.close();
    return this;
  }

  // close ends the channel locally, without telling the server.
  close() {
    if (this.ended) return;
    this.ended = true;
    this.mux.remove(this);
    setTimeout(() => {
      this.emit('close');
      this.emit('end');
      this.removeAllListeners();
    }, 0);
  }

  receive(payload) {
    if (this.emitter && this.emitter.receive(payload)) return;
    this.emit('data', payload);
  }

  reserved(evt) {
    return this.conn.reserved(evt);
  }
}

// Mux is one client's channels.
class Mux {
  constructor(primus) {
    this.primus = primus;
    this.channels = new Map(); // name + "\n" + id → Channel

    // Subscribe (again) as soon as the connection is open: readyStateChange
    // comes before the queued messages are flushed and before open. A
    // resumed spark (recovery) still has its subscriptions.
    primus.on('readyStateChange', (state) => {
      for (const ch of this.channels.values()) ch.readyState = primus.readyState;
      if (state !== 'open' || primus.resumed) return;
      for (const ch of this.channels.values()) primus.write(ch.packet(SUBSCRIBE));
    });
    for (const ev of Object.keys(primus.reserved.events)) {
      if (ev === 'data' || ev === 'end') continue;
      primus.on(ev, (...args) => {
        for (const ch of Array.from(this.channels.values())) ch.emit(ev, ...args);
      });
    }
    primus.on('end', () => {
      for (const ch of Array.from(this.channels.values())) ch.close();
    });
    const mux = this;
    primus.transform('incoming', function incoming(packet) {
      if (this !== primus) return undefined; // a substream's message
      const data = packet.data;
      if (!isPacket(data)) return undefined;
      const ch = mux.channels.get(data[2] + '\n' + data[1]);
      if (!ch) return false; // a late packet for a channel we no longer have
      if (data[0] === MESSAGE) ch.receive(data[3]);
      else if (data[0] === UNSUBSCRIBE) ch.close();
      return false;
    });
  }

  channel(name) {
    const ch = new Channel(this, String(name));
    this.channels.set(ch.name + '\n' + ch.id, ch);
    if (this.primus.readyState === Primus.OPEN) this.primus.write(ch.packet(SUBSCRIBE));
    return ch;
  }

  remove(ch) {
    this.channels.delete(ch.name + '\n' + ch.id);
  }
}

Primus.prototype.ark.multiplex = function multiplex(primus) {
  const mux = new Mux(primus);
  primus.channel = (name) => mux.channel(name);
};
