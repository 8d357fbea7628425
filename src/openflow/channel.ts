/**
 * The switch channel: a listener (TCP or unix) that switches connect to, and
 * one SwitchConnection per switch with the OpenFlow 1.3 handshake, echo
 * keepalive with dead-peer detection, xid-correlated requests with timeouts,
 * multipart reassembly, barriers, atomic bundles and bounded write buffering.
 *
 * Writes made while handling one read are batched into a single socket write.
 */
import { EventEmitter } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TlsOptions } from 'node:tls';
import { statSync, unlinkSync } from 'node:fs';
import { errorName } from './errnames.js';
import { ChannelError, OpenFlowDecodeError, SwitchError } from './errors.js';
import { FrameSplitter } from './framing.js';
import { MultipartAssembler } from './multipart.js';
import {
  decodeFrame,
  encodeInto,
  OFP_VERSION,
  OFPBCT,
  OFPBF,
  OFPT,
  type MultipartReplyBody,
  type MultipartRequestBody,
  type OfMessage,
} from './messages.js';
import { Writer } from './wire.js';

export interface ChannelOptions {
  /** Send an echo request after this much silence from the switch. */
  echoIntervalMs?: number;
  /** Declare the switch dead after this much silence. */
  echoTimeoutMs?: number;
  /** Default timeout of request(). */
  requestTimeoutMs?: number;
  /** Handshake (HELLO + FEATURES) must finish within this. */
  handshakeTimeoutMs?: number;
  /** Bytes queued in the socket beyond which send() reports back-pressure and sendAsync() waits for 'drain'. */
  highWaterMark?: number;
  /** Hard cap of queued bytes; send() throws beyond it (a stuck switch must not eat the controller's memory). */
  maxBufferedBytes?: number;
}

const DEFAULTS: Required<ChannelOptions> = {
  echoIntervalMs: 5_000,
  echoTimeoutMs: 15_000,
  requestTimeoutMs: 10_000,
  handshakeTimeoutMs: 10_000,
  highWaterMark: 1 << 20,
  maxBufferedBytes: 64 << 20,
};

/** A message to put in a bundle; its xid is replaced by applyBundle(). */
export type BundleItem = Extract<OfMessage, { type: 'flow_mod' | 'group_mod' | 'meter_mod' }>;

export interface BundleFailure {
  /** Index of the offending item in the list (or iteration order) given to applyBundle(). */
  index: number;
  /** The item itself when applyBundle() was given an array (a streamed iterable is not kept). */
  item?: BundleItem;
  error: SwitchError;
}

/**
 * Where an applied bundle's time went (ms, performance.now() deltas), so a
 * caller can tell the controller's part from the switch's.
 */
export interface BundleTiming {
  count: number;
  /** OPEN request to its reply (one round trip). */
  openMs: number;
  /** First add encoded to the last add queued (includes waitMs). */
  sendMs: number;
  /** Part of sendMs spent blocked on back-pressure: the switch not reading as fast as we write. */
  waitMs: number;
  /** Last add queued to the barrier reply: the switch catching up on the adds. */
  barrierMs: number;
  /** COMMIT request to its reply: the switch applying the bundle. */
  commitMs: number;
}

/** The switch rejected a bundle; nothing of it was applied. */
export class BundleError extends ChannelError {
  constructor(
    message: string,
    readonly failures: BundleFailure[],
    readonly commitError?: SwitchError,
  ) {
    super('EOFBUNDLE', message, {
      failures: failures.map((f) => ({ index: f.index, error: f.error.context.name })),
      commitError: commitError?.context.name,
    });
  }
}

interface Pending {
  resolve: (m: OfMessage) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  multipart: boolean;
}

function switchError(m: Extract<OfMessage, { type: 'error' }>): SwitchError {
  const n = errorName(m.errType, m.errCode, m.experimenter);
  // The error carries (at least the start of) the offending request: keep its type and xid.
  const d = Buffer.from(m.data.buffer, m.data.byteOffset, m.data.length);
  const requestType = d.length >= 8 ? d[1] : undefined;
  const requestXid = d.length >= 8 ? d.readUInt32BE(4) : undefined;
  return new SwitchError(`switch error ${n.type}/${n.code}`, {
    errType: m.errType,
    errCode: m.errCode,
    name: `${n.type}/${n.code}`,
    xid: m.xid,
    requestType,
    requestXid,
    data: Buffer.from(m.data).toString('hex'),
  });
}

export class SwitchConnection extends EventEmitter {
  datapathId = 0n;
  nTables = 0;
  readonly remote: string;
  private readonly opts: Required<ChannelOptions>;
  private readonly splitter = new FrameSplitter(new Set([OFP_VERSION]));
  private readonly out = new Writer(1 << 16);
  private readonly pending = new Map<number, Pending>();
  private readonly parts = new MultipartAssembler();
  private xid = 0x1000;
  private bundleId = 1;
  private lastRx = Date.now();
  private echoTimer: NodeJS.Timeout | null = null;
  private inRead = false;
  private flushScheduled = false;
  private closed = false;
  /** Bundle adds in flight: xid -> where an error for it goes (several bundles may run at once). */
  private readonly bundleXids = new Map<number, (err: SwitchError) => void>();

  constructor(
    readonly socket: Socket,
    opts: ChannelOptions = {},
  ) {
    super();
    this.opts = { ...DEFAULTS, ...opts };
    this.remote = socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : 'unix';
    socket.setNoDelay?.(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('close', () => this.shutdown(new ChannelError('EOFCLOSED', `switch ${this.name} closed the connection`, { dpid: this.dpidHex })));
    socket.on('error', (e) => this.shutdown(new ChannelError('EOFSOCKET', `socket error: ${e.message}`, { dpid: this.dpidHex })));
  }

  get dpidHex(): string {
    return this.datapathId.toString(16).padStart(16, '0');
  }

  get name(): string {
    return this.datapathId ? this.dpidHex : this.remote;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Changes the keepalive timing of this connection (takes effect at the next tick). */
  setKeepalive(echoIntervalMs: number, echoTimeoutMs: number): void {
    this.opts.echoIntervalMs = echoIntervalMs;
    this.opts.echoTimeoutMs = echoTimeoutMs;
    if (this.echoTimer) {
      clearInterval(this.echoTimer);
      this.startKeepalive();
    }
  }

  private startKeepalive(): void {
    this.echoTimer = setInterval(() => this.keepalive(), Math.max(10, Math.min(this.opts.echoIntervalMs, this.opts.echoTimeoutMs / 3)));
    this.echoTimer.unref();
  }

  /** Next transaction id (never 0, wraps at 2^32). */
  nextXid(): number {
    this.xid = (this.xid + 1) >>> 0 || 1;
    return this.xid;
  }

  /** Runs the handshake: HELLO exchange and FEATURES (datapath id). */
  async handshake(): Promise<void> {
    let onHello: (m: OfMessage) => void = () => {};
    let onClose: (e: Error) => void = () => {};
    const hello = new Promise<OfMessage>((resolve, reject) => {
      onHello = resolve;
      onClose = reject;
      this.once('hello', onHello);
      this.once('close', onClose);
    });
    this.send({ type: 'hello', xid: this.nextXid(), versions: [OFP_VERSION] });
    const timer = setTimeout(
      () => this.shutdown(new ChannelError('EOFHANDSHAKE', `handshake with ${this.remote} timed out`, { remote: this.remote })),
      this.opts.handshakeTimeoutMs,
    );
    try {
      const h = (await hello) as Extract<OfMessage, { type: 'hello' }>;
      if (!h.versions.includes(OFP_VERSION)) {
        this.send({ type: 'error', xid: h.xid, errType: 0, errCode: 0, data: Buffer.from('OpenFlow 1.3 required') });
        this.flush();
        const e = new ChannelError('EOFVERSION', `switch ${this.remote} does not speak OpenFlow 1.3 (offers ${h.versions.join(',')})`, {
          versions: h.versions,
        });
        this.shutdown(e);
        throw e;
      }
      const f = await this.request({ type: 'features_request', xid: 0 }, this.opts.handshakeTimeoutMs);
      if (f.type !== 'features_reply') throw new ChannelError('EOFHANDSHAKE', `expected features_reply, got ${f.type}`, {});
      this.datapathId = f.datapathId;
      this.nTables = f.nTables;
    } finally {
      clearTimeout(timer);
      this.off('hello', onHello);
      this.off('close', onClose);
    }
    this.lastRx = Date.now();
    if (!this.closed) this.startKeepalive();
  }

  private keepalive(): void {
    const idle = Date.now() - this.lastRx;
    if (idle >= this.opts.echoTimeoutMs) {
      this.shutdown(new ChannelError('EOFDEAD', `switch ${this.name} silent for ${idle} ms (echo timeout)`, { dpid: this.dpidHex, idleMs: idle }));
      this.socket.destroy();
      return;
    }
    if (idle >= this.opts.echoIntervalMs) {
      this.send({ type: 'echo_request', xid: this.nextXid(), data: Buffer.alloc(0) });
    }
  }

  private onData(chunk: Buffer): void {
    this.lastRx = Date.now();
    this.inRead = true;
    try {
      this.splitter.pushRaw(chunk, this.frameHandler);
    } catch (e) {
      // A broken frame stream cannot be resynchronised: drop the connection, keep the process.
      this.emit('protocol-error', e);
      this.shutdown(e instanceof OpenFlowDecodeError ? new ChannelError('EOFPROTOCOL', e.message, e.context) : (e as Error));
      this.socket.destroy();
    } finally {
      this.inRead = false;
    }
    if (this.out.pos > 0) this.flush();
  }

  private readonly frameHandler = (buf: Buffer, start: number, end: number) => this.onFrame(buf, start, end);

  private onFrame(buf: Buffer, start: number, end: number): void {
    let m: OfMessage;
    try {
      m = decodeFrame(buf, start, end);
    } catch (e) {
      // A message we cannot decode is reported and skipped; whoever waits on its xid is told.
      this.emit('protocol-error', e);
      const xid = buf.readUInt32BE(start + 4);
      const p = this.pending.get(xid);
      if (p) this.settle(xid, undefined, e as Error);
      return;
    }
    switch (m.type) {
      case 'hello':
        this.emit('hello', m);
        return;
      case 'echo_request':
        this.send({ type: 'echo_reply', xid: m.xid, data: m.data });
        return;
      case 'error': {
        const err = switchError(m);
        if (this.pending.has(m.xid)) this.settle(m.xid, undefined, err);
        else {
          const sink = this.bundleXids.get(m.xid);
          if (sink) sink(err);
          else this.emit('switch-error', err);
        }
        return;
      }
      case 'multipart_reply': {
        const p = this.pending.get(m.xid);
        if (!p) return;
        let body: MultipartReplyBody | undefined;
        try {
          body = this.parts.add(m.xid, m.flags, m.body);
        } catch (e) {
          this.settle(m.xid, undefined, e as Error);
          return;
        }
        if (body) this.settle(m.xid, { ...m, flags: 0, body });
        else p.timer.refresh();
        return;
      }
      case 'echo_reply':
      case 'features_reply':
      case 'get_config_reply':
      case 'barrier_reply':
      case 'role_reply':
      case 'bundle_control':
        if (this.pending.has(m.xid)) this.settle(m.xid, m);
        return;
      default:
        // A throwing application handler is its bug, not the switch's: report it and keep
        // the connection (otherwise it would look like a protocol error and drop the switch).
        try {
          if (this.listenerCount('message')) this.emit('message', m);
          if (m.type === 'packet_in') this.emit('packet_in', m);
          else if (m.type === 'port_status') this.emit('port_status', m);
        } catch (e) {
          if (this.listenerCount('handler-error')) this.emit('handler-error', e, m);
          else queueMicrotask(() => {
            throw e;
          });
        }
    }
  }

  private settle(xid: number, m?: OfMessage, err?: Error): void {
    const p = this.pending.get(xid);
    if (!p) return;
    this.pending.delete(xid);
    clearTimeout(p.timer);
    if (p.multipart) this.parts.forget(xid);
    if (err) p.reject(err);
    else p.resolve(m!);
  }

  /** Bytes waiting in the socket and in the batch buffer. */
  get buffered(): number {
    return this.socket.writableLength + this.out.pos;
  }

  /**
   * Queues a message (xid as given). Returns false when the caller should wait
   * (sendAsync / drained()) before sending more. Throws past maxBufferedBytes.
   */
  send(m: OfMessage): boolean {
    if (this.closed) throw new ChannelError('EOFCLOSED', `switch ${this.name} is disconnected`, { dpid: this.dpidHex });
    // socket.writableLength is a getter chain: read it once per send.
    const queued = this.socket.writableLength;
    if (queued + this.out.pos > this.opts.maxBufferedBytes) {
      throw new ChannelError('EOFBACKPRESSURE', `switch ${this.name}: ${this.buffered} bytes queued (limit ${this.opts.maxBufferedBytes})`, {
        dpid: this.dpidHex,
        buffered: this.buffered,
      });
    }
    encodeInto(this.out, m);
    // Inside a read the batch is written once at its end (onData), so nothing was flushed here.
    if (this.inRead) return queued + this.out.pos < this.opts.highWaterMark;
    if (this.out.pos >= 1 << 16) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushLater);
    }
    return this.buffered < this.opts.highWaterMark;
  }

  /** send(), then waits for the socket to drain if it is above the high-water mark. */
  async sendAsync(m: OfMessage): Promise<void> {
    if (!this.send(m)) await this.drained();
  }

  /** Resolves once queued bytes are below the high-water mark. */
  drained(): Promise<void> {
    this.flush();
    if (this.socket.writableLength < this.opts.highWaterMark || this.closed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onDrain = () => {
        this.off('close', onClose);
        resolve();
      };
      const onClose = (e: Error) => {
        this.socket.off('drain', onDrain);
        reject(e);
      };
      this.socket.once('drain', onDrain);
      this.once('close', onClose);
    });
  }

  private readonly flushLater = () => this.flush();

  /** Writes everything batched so far in one socket write. */
  flush(): void {
    this.flushScheduled = false;
    if (this.out.pos === 0 || this.closed) return;
    this.socket.write(this.out.take());
  }

  /**
   * Sends a request and resolves with its reply (same xid); a switch ERROR for
   * that xid rejects with SwitchError. A request with xid 0 gets a fresh xid.
   */
  request(m: OfMessage, timeoutMs = this.opts.requestTimeoutMs): Promise<OfMessage> {
    const msg = m.xid ? m : { ...m, xid: this.nextXid() };
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(new ChannelError('EOFCLOSED', `switch ${this.name} is disconnected`, { dpid: this.dpidHex }));
        return;
      }
      const timer = setTimeout(
        () => this.settle(msg.xid, undefined, new ChannelError('EOFTIMEOUT', `${msg.type} to ${this.name} timed out after ${timeoutMs} ms`, { xid: msg.xid, type: msg.type })),
        timeoutMs,
      );
      this.pending.set(msg.xid, { resolve, reject, timer, multipart: msg.type === 'multipart_request' });
      try {
        this.send(msg);
      } catch (e) {
        this.settle(msg.xid, undefined, e as Error);
      }
    });
  }

  async barrier(timeoutMs?: number): Promise<void> {
    await this.request({ type: 'barrier_request', xid: 0 }, timeoutMs);
  }

  /** A multipart request, resolved with all parts merged. */
  async multipart(body: MultipartRequestBody, timeoutMs?: number): Promise<MultipartReplyBody> {
    const r = await this.request({ type: 'multipart_request', xid: 0, flags: 0, body }, timeoutMs);
    if (r.type !== 'multipart_reply') throw new ChannelError('EOFPROTOCOL', `expected multipart_reply, got ${r.type}`, {});
    return r.body;
  }

  async roleRequest(role: number, generationId = 0n): Promise<{ role: number; generationId: bigint }> {
    const r = await this.request({ type: 'role_request', xid: 0, role, generationId });
    if (r.type !== 'role_reply') throw new ChannelError('EOFPROTOCOL', `expected role_reply, got ${r.type}`, {});
    return { role: r.role, generationId: r.generationId };
  }

  /**
   * Applies the items atomically in one ONF bundle (ordered + atomic). If the
   * switch rejects any item (when added or at commit), the bundle is discarded
   * and BundleError names the offending items by index. `items` may be any
   * iterable (e.g. a generator producing flows as they are sent, so a huge
   * table never sits in memory as objects); each item's xid is replaced.
   */
  async applyBundle(items: Iterable<BundleItem>, opts: { timeoutMs?: number; flags?: number } = {}): Promise<BundleTiming> {
    const flags = opts.flags ?? OFPBF.ATOMIC | OFPBF.ORDERED;
    const list = Array.isArray(items) ? (items as readonly BundleItem[]) : undefined;
    const timeoutMs = opts.timeoutMs ?? Math.max(this.opts.requestTimeoutMs, 60_000 + (list?.length ?? 0) / 10);
    const bundleId = this.bundleId++;
    const ctl = async (ctrlType: number) => {
      const r = await this.request({ type: 'bundle_control', xid: 0, bundleId, ctrlType, flags }, timeoutMs);
      if (r.type !== 'bundle_control' || r.ctrlType !== ctrlType + 1) {
        throw new ChannelError('EOFPROTOCOL', `bundle ${bundleId}: unexpected reply to control ${ctrlType}`, { bundleId });
      }
    };
    const xids: number[] = [];
    const errors: BundleFailure[] = [];
    const failures = () => [...errors].sort((a, b) => a.index - b.index);
    try {
      const t0 = performance.now();
      await ctl(OFPBCT.OPEN_REQUEST);
      const t1 = performance.now();
      let waitMs = 0;
      let i = 0;
      for (const item of items) {
        const xid = this.nextXid();
        xids.push(xid);
        const index = i++;
        this.bundleXids.set(xid, (error) => errors.push({ index, item: list?.[index], error }));
        // The codec gives the inner message the outer xid (OVS requires them equal).
        if (!this.send({ type: 'bundle_add', xid, bundleId, flags, message: item })) {
          const w = performance.now();
          await this.drained();
          waitMs += performance.now() - w;
        }
      }
      const count = i;
      const t2 = performance.now();
      // Errors for adds arrive in order before the barrier reply.
      await this.barrier(timeoutMs);
      const t3 = performance.now();
      let f = failures();
      if (f.length) {
        await ctl(OFPBCT.DISCARD_REQUEST).catch(() => undefined);
        throw new BundleError(`bundle ${bundleId}: switch rejected ${f.length} of ${count} messages; bundle discarded`, f);
      }
      try {
        await ctl(OFPBCT.COMMIT_REQUEST);
        return { count, openMs: t1 - t0, sendMs: t2 - t1, waitMs, barrierMs: t3 - t2, commitMs: performance.now() - t3 };
      } catch (e) {
        f = failures();
        throw new BundleError(
          `bundle ${bundleId}: commit failed${f.length ? ` at item ${f.map((x) => x.index).join(', ')}` : ''}; nothing applied`,
          f,
          e instanceof SwitchError ? e : undefined,
        );
      }
    } finally {
      for (const xid of xids) this.bundleXids.delete(xid);
    }
  }

  /** Closes the connection (the switch will reconnect per its own policy). */
  close(): void {
    this.shutdown(new ChannelError('EOFCLOSED', `connection to ${this.name} closed locally`, { dpid: this.dpidHex }));
    this.socket.destroy();
  }

  private shutdown(reason: Error): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    if (this.echoTimer) clearInterval(this.echoTimer);
    for (const xid of [...this.pending.keys()]) this.settle(xid, undefined, reason);
    this.socket.end();
    this.emit('close', reason);
  }
}

export interface ListenOptions {
  /** TCP port (0 = ephemeral) and host, or a unix socket path. */
  port?: number;
  host?: string;
  path?: string;
  /** Serve OpenFlow over TLS (OVS `ssl:` targets); e.g. { key, cert, ca, requestCert: true }. */
  tls?: TlsOptions;
}

/**
 * Accepts switch connections. Emits 'connect' (conn) after a successful
 * handshake, 'disconnect' (conn, reason) when a handshaken switch goes away,
 * 'handshake-error' (err, remote) for peers that fail the handshake, and
 * 'server-error' (ChannelError EOFSERVER) when the listening socket fails
 * after listen() succeeded (e.g. EMFILE on accept); the server keeps running.
 */
export class OpenFlowServer extends EventEmitter {
  private server: Server | null = null;
  readonly connections = new Set<SwitchConnection>();
  private readonly opts: ChannelOptions;

  constructor(opts: ChannelOptions = {}) {
    super();
    this.opts = { ...opts };
  }

  /** Keepalive timing for current and future connections. */
  setKeepalive(echoIntervalMs: number, echoTimeoutMs: number): void {
    this.opts.echoIntervalMs = echoIntervalMs;
    this.opts.echoTimeoutMs = echoTimeoutMs;
    for (const c of this.connections) c.setKeepalive(echoIntervalMs, echoTimeoutMs);
  }

  async listen(where: ListenOptions): Promise<{ port?: number; path?: string }> {
    const server = where.tls
      ? createTlsServer({ rejectUnauthorized: true, ...where.tls }, (sock) => this.accept(sock))
      : createServer((sock) => this.accept(sock));
    // A client that fails the TLS handshake is reported, never thrown.
    server.on('tlsClientError', (e: Error, sock: Socket) => this.emit('handshake-error', new ChannelError('EOFTLS', `TLS: ${e.message}`, {}), sock.remoteAddress ?? 'unknown'));
    this.server = server;
    if (where.path) {
      // Replace a stale socket left by a previous run, never anything else.
      let st: ReturnType<typeof statSync> | undefined;
      try {
        st = statSync(where.path);
      } catch {
        st = undefined;
      }
      if (st && !st.isSocket()) throw new ChannelError('EOFLISTEN', `${where.path} exists and is not a socket`, { path: where.path });
      if (st) unlinkSync(where.path);
    }
    await new Promise<void>((resolve, reject) => {
      const fail = (e: NodeJS.ErrnoException) =>
        reject(new ChannelError('EOFLISTEN', `cannot listen on ${where.path ?? `${where.host ?? '127.0.0.1'}:${where.port ?? 0}`}: ${e.message}`, { errno: e.code }));
      server.once('error', fail);
      const ok = () => {
        server.off('error', fail);
        resolve();
      };
      if (where.path) server.listen(where.path, ok);
      else server.listen(where.port ?? 0, where.host ?? '127.0.0.1', ok);
    });
    // Later listener failures (EMFILE on accept, ...) are reported as events, every
    // time: an 'error' without a listener would crash the controller.
    server.on('error', (e: NodeJS.ErrnoException) =>
      this.emit('server-error', new ChannelError('EOFSERVER', `listener: ${e.message}`, { errno: e.code })),
    );
    const addr = server.address();
    return typeof addr === 'string' ? { path: addr } : { port: addr?.port };
  }

  private accept(sock: Socket): void {
    const conn = new SwitchConnection(sock, this.opts);
    conn.on('protocol-error', (e) => this.emit('protocol-error', e, conn));
    conn.on('switch-error', (e) => this.emit('switch-error', e, conn));
    conn.handshake().then(
      () => {
        if (conn.isClosed) return;
        // A switch that reconnects before its old connection was found dead: the old one is stale.
        for (const old of this.connections) if (old.datapathId === conn.datapathId) old.close();
        this.connections.add(conn);
        conn.once('close', (reason) => {
          this.connections.delete(conn);
          this.emit('disconnect', conn, reason);
        });
        this.emit('connect', conn);
      },
      (e) => {
        conn.close();
        this.emit('handshake-error', e, conn.remote);
      },
    );
  }

  /** A connected switch by datapath id. */
  get(datapathId: bigint): SwitchConnection | undefined {
    for (const c of this.connections) if (c.datapathId === datapathId) return c;
    return undefined;
  }

  /** Resolves with the next switch that connects (optionally a given dpid). */
  waitForSwitch(datapathId?: bigint, timeoutMs = 30_000): Promise<SwitchConnection> {
    const existing = datapathId === undefined ? [...this.connections][0] : this.get(datapathId);
    if (existing) return Promise.resolve(existing);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('connect', onConnect);
        reject(new ChannelError('EOFTIMEOUT', `no switch${datapathId !== undefined ? ` ${datapathId.toString(16)}` : ''} connected within ${timeoutMs} ms`, {}));
      }, timeoutMs);
      const onConnect = (c: SwitchConnection) => {
        if (datapathId !== undefined && c.datapathId !== datapathId) return;
        clearTimeout(timer);
        this.off('connect', onConnect);
        resolve(c);
      };
      this.on('connect', onConnect);
    });
  }

  async close(): Promise<void> {
    for (const c of this.connections) c.close();
    const s = this.server;
    this.server = null;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}


