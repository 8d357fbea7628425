/**
 * A minimal OpenFlow 1.3 "switch" for capturing exactly what ovs-ofctl sends:
 * it answers the handshake, echo, barrier, config, port-desc and bundle control
 * requests and records every other frame verbatim.
 */
import { createServer, type Server } from 'node:net';
import { FrameSplitter } from '../../../src/openflow/framing.js';
import { decodeMessage, encodeMessage, OFPBCT, OFPMP, type OfMessage } from '../../../src/openflow/messages.js';
import { run } from '../../../src/util/exec.js';

export interface Capture {
  frames: Buffer[];
}

function reply(m: OfMessage): OfMessage | null {
  switch (m.type) {
    case 'features_request':
      return { type: 'features_reply', xid: m.xid, datapathId: 0x1n, nBuffers: 0, nTables: 254, auxiliaryId: 0, capabilities: 0x4f };
    case 'echo_request':
      return { type: 'echo_reply', xid: m.xid, data: m.data };
    case 'barrier_request':
      return { type: 'barrier_reply', xid: m.xid };
    case 'get_config_request':
      return { type: 'get_config_reply', xid: m.xid, flags: 0, missSendLen: 128 };
    case 'multipart_request':
      if (m.body.mpType === OFPMP.PORT_DESC) return { type: 'multipart_reply', xid: m.xid, flags: 0, body: { mpType: OFPMP.PORT_DESC, ports: [] } };
      return null;
    case 'bundle_control':
      return { type: 'bundle_control', xid: m.xid, bundleId: m.bundleId, ctrlType: m.ctrlType + 1, flags: m.flags };
    default:
      return null;
  }
}

/** Frames ovs-ofctl sent for `args` (the target is appended), minus handshake chatter. */
export async function captureOfctl(args: string[], extra: string[] = []): Promise<Buffer[]> {
  const frames: Buffer[] = [];
  const server: Server = createServer((sock) => {
    const split = new FrameSplitter();
    sock.write(encodeMessage({ type: 'hello', xid: 1, versions: [4] }));
    sock.on('data', (chunk) => {
      split.push(chunk, (frame) => {
        if (frame[1] === 18 && frame.readUInt16BE(8) === 12) {
          // TABLE_FEATURES request (ovs-ofctl probes it): answer with an empty reply.
          const r = Buffer.from(frame.subarray(0, 16));
          r[1] = 19;
          r.writeUInt16BE(16, 2);
          r.writeUInt16BE(0, 10);
          sock.write(r);
          return;
        }
        let m: OfMessage;
        try {
          m = decodeMessage(frame);
        } catch {
          frames.push(Buffer.from(frame));
          return;
        }
        if (m.type === 'hello') return;
        const r = reply(m);
        if (r) {
          if (m.type === 'bundle_control' && m.ctrlType !== OFPBCT.OPEN_REQUEST && m.ctrlType !== OFPBCT.COMMIT_REQUEST) frames.push(Buffer.from(frame));
          else if (m.type === 'bundle_control') frames.push(Buffer.from(frame));
          sock.write(encodeMessage(r));
          return;
        }
        frames.push(Buffer.from(frame));
      });
    });
    sock.on('error', () => {});
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  const port = (server.address() as { port: number }).port;
  try {
    await run(['ovs-ofctl', '-O', 'OpenFlow13', '--no-names', ...extra, args[0]!, `tcp:127.0.0.1:${port}`, ...args.slice(1)], { timeoutMs: 10_000 });
  } finally {
    server.close();
  }
  return frames;
}
