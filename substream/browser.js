// The browser part of the substream plugin (the substream package's wire
// format), served with the client library and run once with the Primus
// class.
//
//   const s1 = primus.substream('s1');  // nothing is sent
//   s1.on('data', (msg) => …);           // {"substream":"s1","args":msg} from the server
//   s1.write('hello');                   // {"substream":"s1","args":"hello"}
//   s1.end();                            // {"substream":"s1","args":"substream::end"}
//
// A packet is the substream's only when this client has created a
// substream of that name; others reach the data listeners as they are.
// Substream messages go through the client's message transformers, with
// the substream as the connection, as in the substream package. A
// substream gets the connection's events (open, close, reconnect, …) and
// ends, locally, when the connection ends for good or when the server ends
// it.

const END = 'substream::end';

class Substream extends Primus.EventEmitter {
  constructor(primus, name) {
    super();
    this.primus = primus;
    this.stream = primus;
    this.name = name;
    this.readyState = primus.readyState;
  }

  // write sends msg on the substream (queued while the connection is not
  // open); false once the substream has ended.
  write(msg) {
    if (!this.stream) return false;
    this.primus.transforms(this.primus, this, 'outgoing', msg);
    return true;
  }

  // _write is where the outgoing transformers deliver.
  _write(msg) {
    return this.primus._write({ substream: this.name, args: msg });
  }

  // end ends the substream, telling the server unless it asked for it
  // (received) or the connection has ended (local).
  end(msg, received) {
    if (!this.stream) return this;
    if (msg !== undefined && msg !== null) this.write(msg);
    if (!received) this._write(END);
    delete this.primus.streams[this.name];
    this.stream = null;
    this.emit('close');
    this.emit('end');
    this.removeAllListeners();
    return this;
  }

  // mine handles packet when it is this substream's and reports whether it
  // was.
  mine(packet) {
    if (packet === null || typeof packet !== 'object' || packet.substream !== this.name) return false;
    if (packet.args === END) {
      this.end(undefined, true);
      return true;
    }
    this.primus.transforms(this.primus, this, 'incoming', packet.args);
    return true;
  }

  reserved(evt) {
    return this.primus.reserved(evt);
  }
}

Primus.prototype.ark.substream = function substream(primus) {
  primus.streams = {};
  primus.substream = (name) => {
    name = String(name);
    if (!primus.streams[name]) primus.streams[name] = new Substream(primus, name);
    return primus.streams[name];
  };
  for (const ev of Object.keys(primus.reserved.events)) {
    if (ev === 'data') continue;
    primus.on(ev, (...args) => {
      for (const s of Object.values(primus.streams)) {
        if (ev === 'end') {
          s.end(undefined, true); // the connection has ended: nothing to tell
        } else {
          if (ev === 'readyStateChange') s.readyState = primus.readyState;
          s.emit(ev, ...args);
        }
      }
    });
  }
  primus.transform('incoming', function incoming(packet) {
    if (this !== primus) return undefined; // a substream's own message
    for (const s of Object.values(primus.streams)) {
      if (s.mine(packet.data)) return false;
    }
    return undefined;
  });
};
