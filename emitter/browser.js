// The browser part of the emitter plugin (primus-emitter's wire format),
// served with the client library and run once with the Primus class.
//
//   primus.send('news', {title: 'hi'});                    // {"type":0,"data":["news",{…}]}
//   primus.send('ask', 42, (answer) => console.log(answer)); // adds "id", answered by {"id":n,"type":1,"data":[…]}
//   primus.on('question', (n, ack) => ack('forty-two'));    // events from the server, with an ack when asked
//
// Received events are emitted on the client (and on multiplex channels,
// which get send() too); events whose names the client reserves (data, end,
// open, incoming::…, …) are dropped, as by primus-emitter. Unlike
// primus-emitter, the plugin's packets are consumed: data listeners do not
// see them (as with the Go plugins). Acknowledgement ids count from 1 per
// connection object and survive reconnections; an acknowledgement callback
// runs at most once.

const EVENT = 0;
const ACK = 1;

// Endpoint sends and receives emitter packets for conn (a client or a
// channel), which writes with write(value), emits events with emit, and
// knows its reserved events.
class Endpoint {
  constructor(conn) {
    this.conn = conn;
    this.ids = 1;
    this.acks = new Map();
  }

  send(args) {
    const event = args[0];
    if (typeof event !== 'string' || /^(newListener|removeListener)/.test(event)) return;
    const packet = { type: EVENT, data: args };
    if (typeof args[args.length - 1] === 'function') {
      const id = this.ids++;
      this.acks.set(id, args.pop());
      packet.id = id;
    }
    this.conn.write(packet);
  }

  // receive handles an emitter packet and reports whether data was one.
  receive(data) {
    if (data === null || typeof data !== 'object' || Array.isArray(data)) return false;
    if ((data.type !== EVENT && data.type !== ACK) || !Array.isArray(data.data)) return false;
    if (data.id && typeof data.id !== 'number') return true; // the plugin's, but invalid: dropped
    if (data.type === ACK) {
      const fn = this.acks.get(data.id);
      if (fn) {
        this.acks.delete(data.id);
        fn.apply(this.conn, data.data);
      }
      return true;
    }
    const args = data.data.slice();
    if (typeof args[0] !== 'string' || this.conn.reserved(args[0])) return true;
    if (data.id) args.push(this.ack(data.id));
    this.conn.emit(...args);
    return true;
  }

  ack(id) {
    let sent = false;
    return (...reply) => {
      if (sent) return;
      sent = true;
      this.conn.write({ id, type: ACK, data: reply });
    };
  }
}

// Primus.emitter lets other plugins (multiplex) give their objects send().
Primus.emitter = {
  Endpoint,
  // attach gives conn a send method and returns the endpoint, whose
  // receive(data) the caller runs on conn's incoming data.
  attach(conn) {
    const endpoint = new Endpoint(conn);
    conn.send = function send(...args) {
      endpoint.send(args);
      return this;
    };
    return endpoint;
  },
};

Primus.prototype.ark.emitter = function emitter(primus) {
  const endpoint = Primus.emitter.attach(primus);
  // The transformers also run for substreams (this is then the substream):
  // only the connection's own messages are looked at.
  primus.transform('incoming', function incoming(packet) {
    if (this !== primus) return undefined;
    return endpoint.receive(packet.data) ? false : undefined;
  });
};
