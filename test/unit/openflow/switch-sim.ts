/** A scriptable in-process OpenFlow 1.3 switch (TCP client) for channel tests. */
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { decodeMessage, encodeMessage, FrameSplitter, type OfMessage } from '../../../src/openflow/index.js';

export class SimSwitch {
  readonly sock: Socket;
  readonly received: OfMessage[] = [];
  private readonly splitter = new FrameSplitter();
  private waiters: { pred: (m: OfMessage) => boolean; resolve: (m: OfMessage) => void }[] = [];
  /** Return false to swallow a message (no automatic answer). */
  onMessage: (m: OfMessage, sw: SimSwitch) => boolean | void = () => true;

  constructor(
    port: number,
    readonly dpid = 0xabcn,
    readonly versions = [4],
    autoHello = true,
    tls?: ConnectionOptions,
  ) {
    this.sock = tls ? tlsConnect({ port, host: '127.0.0.1', checkServerIdentity: () => undefined, ...tls }) : connect(port, '127.0.0.1');
    this.sock.on('error', () => {});
    if (autoHello) this.sock.on(tls ? 'secureConnect' : 'connect', () => this.send({ type: 'hello', xid: 1, versions: this.versions }));
    this.sock.on('data', (chunk) => {
      try {
        this.splitter.push(chunk, (f) => this.handle(decodeMessage(f)));
      } catch {
        this.sock.destroy();
      }
    });
  }

  /**
   * Resolves with the first message (already received or arriving later) that
   * matches: tests wait on the event, not on a guessed delay.
   */
  waitFor(pred: (m: OfMessage) => boolean): Promise<OfMessage> {
    const seen = this.received.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }

  send(m: OfMessage): void {
    if (!this.sock.destroyed) this.sock.write(encodeMessage(m));
  }

  private handle(m: OfMessage): void {
    this.received.push(m);
    this.waiters = this.waiters.filter((w) => (w.pred(m) ? (w.resolve(m), false) : true));
    if (this.onMessage(m, this) === false) return;
    if (m.type === 'features_request') {
      this.send({ type: 'features_reply', xid: m.xid, datapathId: this.dpid, nBuffers: 0, nTables: 254, auxiliaryId: 0, capabilities: 0 });
    } else if (m.type === 'echo_request') this.send({ type: 'echo_reply', xid: m.xid, data: m.data });
    else if (m.type === 'barrier_request') this.send({ type: 'barrier_reply', xid: m.xid });
    else if (m.type === 'bundle_control') this.send({ ...m, ctrlType: m.ctrlType + 1 });
    else if (m.type === 'role_request') this.send({ ...m, type: 'role_reply' });
  }

  close(): void {
    this.sock.destroy();
  }
}
