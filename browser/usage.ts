// A typed usage of the browser client, checked by `tsc --noEmit -p
// browser/tsconfig.json` (interop's TestTypeScriptDeclarations): it must
// compile, and each line marked @ts-expect-error must be refused, so the
// declarations in primus.d.ts are neither wrong nor too loose.

const primus = new Primus('https://example.com/?token=abc', {
  reconnect: { min: 500, max: 10000, retries: 10, factor: 2 },
  strategy: ['disconnect', 'online'],
  pingTimeout: 45000,
  timeout: 10000,
  queueSize: 100,
});
const byOptions = new Primus({ url: 'http://localhost:8080', manual: true });
byOptions.open();
const sameOrigin: Primus = Primus.connect();

primus.on('open', () => primus.write({ hello: 'world' }));
primus.on('data', (data: unknown, raw: unknown) => console.log(data, raw));
primus.on('error', (err: Error) => console.error(err.message));
primus.on('reconnect scheduled', (opts) => {
  const wait: number = opts.scheduled;
  const attempt: number = opts.attempt;
  console.log(`reconnecting in ${wait} ms (attempt ${attempt} of ${opts.retries})`);
});
primus.on('reconnect failed', (err: Error, opts) => console.log(err, opts.duration));
primus.once('end', () => console.log('ended'));
primus.on('incoming::ping', (time: number) => console.log(time));
primus.on('readyStateChange', (state) => {
  const s: 'opening' | 'open' | 'end' = state;
  console.log(s);
});
primus.on('custom event from the emitter plugin', (a: string, b: number) => console.log(a, b));
primus.off('open');
primus.removeAllListeners('data');

primus.transform('outgoing', (packet) => {
  packet.data = { wrapped: packet.data };
});
primus.transform('incoming', (packet, next) => {
  if (packet.data === 'skip') return next(null, false);
  next();
});

primus.id((id: string) => console.log(id.length));
const isOpen: boolean = primus.readyState === Primus.OPEN;
const wrote: boolean = primus.write('text');
primus.end();
primus.destroy();
console.log(isOpen, wrote, sameOrigin.pathname, Primus.CBOR.encode({ a: 1 }).byteLength);

// Plugins.
primus.send('news', { title: 'hello' }, (reply: unknown) => console.log(reply));
const chat = primus.channel('chat');
chat.on('data', (msg) => console.log(msg));
chat.write('hi');
chat.send('typing', true);
chat.end();
const sub = primus.substream('s1');
sub.on('end', () => console.log('s1 ended'));
sub.write({ a: 1 });
sub.end();

// @ts-expect-error: the url is a string
new Primus(8080);
// @ts-expect-error: back-off delays are numbers
new Primus('/', { reconnect: { min: '500' } });
// @ts-expect-error: no such strategy
new Primus('/', { strategy: ['sometimes'] as const });
// @ts-expect-error: transform types are incoming and outgoing
primus.transform('sideways', () => true);
// @ts-expect-error: id's callback takes the id
primus.id();
// @ts-expect-error: an error listener gets an Error
primus.on('error', (err: number) => console.log(err));
// @ts-expect-error: readyState is a number
const state: string = primus.readyState;
console.log(state);
