// TypeScript declarations for the browser client of primus for Go, served by
// the server at <pathname>/primus.js (see primus.js). In a page the client is
// the global `Primus`; under CommonJS it is the module's export.
//
//   const primus = new Primus('https://example.com/?token=abc');
//   primus.on('data', (data) => console.log(data));
//   primus.write({ hello: 'world' });
//
// The plugin methods (send, channel, substream) exist only when the server
// runs the matching plugin (emitter, multiplex, substream).

export = Primus;
export as namespace Primus;

/** An EventEmitter with the EventEmitter3 API (Primus.EventEmitter). */
declare class PrimusEventEmitter {
  on(event: string, listener: (...args: any[]) => void, context?: unknown): this;
  addListener(event: string, listener: (...args: any[]) => void, context?: unknown): this;
  once(event: string, listener: (...args: any[]) => void, context?: unknown): this;
  off(event: string, listener?: (...args: any[]) => void, context?: unknown, once?: boolean): this;
  removeListener(event: string, listener?: (...args: any[]) => void, context?: unknown, once?: boolean): this;
  removeAllListeners(event?: string): this;
  /** Calls the listeners of event with args; says whether there were any. */
  emit(event: string, ...args: any[]): boolean;
  listeners(event: string): Array<(...args: any[]) => void>;
  listenerCount(event: string): number;
  eventNames(): string[];
}

declare class Primus extends PrimusEventEmitter {
  /**
   * Connects to the server at url (its scheme, host, port and query; the
   * path is the server's pathname, baked into the library). Without a url,
   * the page's origin. The connection opens on the next tick unless
   * options.manual.
   */
  constructor(url?: string, options?: Primus.Options);
  constructor(options: Primus.Options & { url?: string; uri?: string });

  static connect(url?: string, options?: Primus.Options): Primus;

  static readonly OPENING: 1;
  static readonly CLOSED: 2;
  static readonly OPEN: 3;

  /** The CBOR codec the client uses with the server's cbor parser. */
  static readonly CBOR: {
    encode(value: unknown): Uint8Array;
    decode(data: ArrayBuffer | ArrayBufferView): unknown;
  };

  /** Parsers by name; a plugin's library may add one for a custom parser. */
  static parsers: Record<string, Primus.Parser>;

  /** The server's settings, baked in when the library was served. */
  readonly pathname: string;
  readonly parser: string;
  readonly transformer: string;
  readonly authorization: boolean;
  readonly version: string;
  /** The server's recovery window in ms (Options.Recovery); 0 when it does not offer recovery. */
  readonly recoveryWindow: number;
  /**
   * With recovery: true when the last connection resumed the spark, so that
   * nothing was lost in either direction while it was away; false when it
   * is a new spark (the application should refetch what it keeps).
   */
  recovered: boolean;

  readyState: Primus.ReadyState;
  /** Whether the client believes the network is up. */
  online: boolean;
  options: Primus.Options;
  /** Messages written while the connection was not open, sent on open. */
  buffer: unknown[];
  /** The transport's socket (a WebSocket, a SockJS or an engine.io-client Socket), null when closed. */
  socket: unknown;
  url: URL;

  on<E extends keyof Primus.Events>(event: E, listener: Primus.Events[E], context?: unknown): this;
  /** Events of plugins and applications (the emitter plugin's events). */
  on<E extends string>(event: E extends keyof Primus.Events ? never : E, listener: (...args: any[]) => void, context?: unknown): this;
  addListener<E extends keyof Primus.Events>(event: E, listener: Primus.Events[E], context?: unknown): this;
  /** Events of plugins and applications (the emitter plugin's events). */
  addListener<E extends string>(event: E extends keyof Primus.Events ? never : E, listener: (...args: any[]) => void, context?: unknown): this;
  once<E extends keyof Primus.Events>(event: E, listener: Primus.Events[E], context?: unknown): this;
  /** Events of plugins and applications (the emitter plugin's events). */
  once<E extends string>(event: E extends keyof Primus.Events ? never : E, listener: (...args: any[]) => void, context?: unknown): this;

  /** Opens the connection (done by the constructor unless options.manual). */
  open(): this;
  /**
   * Sends data: encoded with the server's parser and written at once, or
   * queued until the connection opens. Always returns true.
   */
  write(data: unknown): boolean;
  /** Closes the connection for good, after writing data when given. */
  end(data?: unknown): this;
  /** Ends the connection and removes every listener. */
  destroy(): boolean;
  /** Calls fn with this connection's spark id on the server. */
  id(fn: (id: string) => void): this | void;
  /**
   * Adds a message transformer. With one parameter it is synchronous and
   * returns false to swallow the message; with two it calls next when done.
   */
  transform(type: 'incoming' | 'outgoing', fn: (packet: Primus.Packet, next: Primus.Next) => boolean | void): this;
  /** Whether event is one of the client's own events. */
  reserved(event: string): boolean;
  /** A plugin's per-client initialiser, or all of them. */
  plugin(name: string): ((primus: Primus, options: Primus.Options) => void) | undefined;
  plugin(): Record<string, (primus: Primus, options: Primus.Options) => void>;

  // emitter plugin

  /**
   * Sends event with args to the server (emitter plugin). A function as
   * the last argument is called with the server's acknowledgement.
   */
  send(event: string, ...args: unknown[]): this;

  // multiplex plugin

  /** The channel of that name (multiplex plugin), subscribed on creation. */
  channel(name: string): Primus.Channel;

  // substream plugin

  /** The substream of that name (substream plugin). */
  substream(name: string): Primus.Substream;
}

declare namespace Primus {
  type ReadyState = 1 | 2 | 3;

  const EventEmitter: typeof PrimusEventEmitter;
  type EventEmitter = PrimusEventEmitter;

  interface ReconnectOptions {
    /** Delay of the first attempt, ms. Default 500. */
    min?: number;
    /** Longest delay, ms. Default Infinity. */
    max?: number;
    /** Attempts before giving up. Default 10. */
    retries?: number;
    /** Back-off factor. Default 2. */
    factor?: number;
    /** Time an attempt has to open, ms. Default 30000. */
    'reconnect timeout'?: number;
  }

  /** The state of a reconnection, passed to the reconnect events. */
  interface Attempt extends Required<ReconnectOptions> {
    /** This attempt's number, from 1. */
    attempt: number;
    /** The delay before this attempt, ms. */
    scheduled: number;
    /** When the reconnection started (ms since the epoch). */
    start: number;
    /** Time spent reconnecting so far, ms. */
    duration: number;
    backoff: boolean;
  }

  type Strategy = 'disconnect' | 'online' | 'timeout';

  interface Options {
    /** Connect timeout of the first connection, ms; 0 or false for none. Default 10000. */
    timeout?: number | false;
    /**
     * How long to wait for the server's next ping before taking the
     * connection for dead, ms, or false. Default: the server's ping interval
     * × 1.5.
     */
    pingTimeout?: number | false;
    /** Back-off of reconnections. */
    reconnect?: ReconnectOptions;
    /**
     * When to reconnect: a comma-separated list or an array, or false for
     * never. Default disconnect, online, and timeout unless the server has
     * an authorization function.
     */
    strategy?: string | Strategy[] | false;
    /** Do not connect until open() is called. */
    manual?: boolean;
    /** Use the browser's online/offline events. Default: when available. */
    network?: boolean;
    /** SockJS and engine.io only: allow (true) or avoid (false) WebSocket (engine.io then only polls). */
    websockets?: boolean;
    /** Options for the transport (ws in Node, SockJS options, engine.io-client options such as transports). */
    transport?: Record<string, unknown>;
    /** Most messages kept while offline; the oldest is dropped. Default Infinity. */
    queueSize?: number;
    /**
     * Resume the spark after a lost connection when the server offers
     * recovery. Default true; false connects as the stock client does.
     */
    recovery?: boolean;
  }

  /** How a reconnection went when the server offers recovery. */
  interface RecoveryInfo {
    /** The spark came back: every message of the gap is delivered, once, in order. */
    recovered: boolean;
    /** Why not: "expired", "overflow" or "unknown". */
    reason?: string;
  }

  interface Events {
    open: () => void;
    data: (data: any, raw: unknown) => void;
    error: (err: Error) => void;
    end: () => void;
    close: () => void;
    destroy: () => void;
    timeout: () => void;
    online: () => void;
    offline: () => void;
    reconnect: (attempt: Attempt) => void;
    'reconnect scheduled': (attempt: Attempt) => void;
    reconnected: (attempt: Attempt) => void;
    /** After each reconnection when the server offers recovery, before open. */
    recovery: (info: RecoveryInfo) => void;
    'reconnect timeout': (err: Error, attempt: Attempt) => void;
    'reconnect failed': (err: Error, attempt: Attempt) => void;
    readyStateChange: (state: 'opening' | 'open' | 'end') => void;
    'incoming::ping': (time: number) => void;
    'outgoing::pong': (time: number) => void;
    'incoming::id': (id: string) => void;
    'incoming::data': (raw: unknown) => void;
    'outgoing::data': (encoded: string | Uint8Array) => void;
    'outgoing::url': (options: Record<string, unknown>) => void;
  }

  interface Packet {
    data: any;
  }

  /**
   * Completes an asynchronous message transformer: an error drops the
   * message (and is emitted), false swallows it.
   */
  type Next = (err?: Error | null, swallow?: false) => void;

  interface Parser {
    binary: boolean;
    encoder(data: unknown, fn: (err: Error | undefined, encoded?: string | Uint8Array) => void): void;
    decoder(data: unknown, fn: (err: Error | undefined, decoded?: unknown) => void): void;
  }

  /** A named channel on the connection (multiplex plugin). */
  interface Channel extends EventEmitter {
    readonly name: string;
    /** Sends data on the channel (queued while the connection is down). */
    write(data: unknown): boolean;
    /** Sends event with args on the channel (multiplex with emitter). */
    send(event: string, ...args: unknown[]): this;
    /** Unsubscribes and ends the channel. */
    end(): this;
    on(event: 'data', listener: (data: any) => void): this;
    on(event: 'end', listener: () => void): this;
    on(event: string, listener: (...args: any[]) => void): this;
  }

  /** A named substream of the connection (substream plugin). */
  interface Substream extends EventEmitter {
    readonly name: string;
    /** Sends data on the substream. */
    write(data: unknown): boolean;
    /** Ends the substream (tells the server). */
    end(): this;
    on(event: 'data', listener: (data: any) => void): this;
    on(event: 'end', listener: () => void): this;
    on(event: string, listener: (...args: any[]) => void): this;
  }
}
