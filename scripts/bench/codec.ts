/**
 * codec: flow_mod encodes/s and decodes/s on one core, then packet_in ->
 * packet_out round trips over loopback from a cbench-style generator of 16
 * simulated switches (a child process), in throughput mode (each switch keeps
 * a window of packet_ins in flight) and latency mode (one in flight per
 * switch). Tenet's full stack (OpenFlowServer + decode + encode) is measured
 * against a bare responder (frame scan + canned reply, batched writes) in the
 * same run. Last line: JSON.
 *
 *   npm run bench -- codec [--seconds S] [--switches N] [--window W]
 */
import { fork } from 'node:child_process';
import { connect, createServer, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { loadavg } from 'node:os';
import {
  decodeMessage,
  encodeInto,
  encodeMessage,
  fieldByName,
  OFPP,
  OpenFlowServer,
  parseFlow,
  Writer,
  type Action,
  type OfMessage,
} from '../../src/openflow/index.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : def;
}
const say = (s: string) => console.log(`# ${s}`);

// ---------------------------------------------------------------------------------------------
// Generator (child process): 16 switches speaking just enough OpenFlow.

interface GenResult {
  answered: number;
  seconds: number;
  /** CPU seconds the responder (this process) used during the window. */
  responderCpuS?: number;
  p50us?: number;
  p99us?: number;
}

function packetIn(): Buffer {
  return encodeMessage({
    type: 'packet_in',
    xid: 0,
    bufferId: 0xffffffff,
    totalLen: 60,
    reason: 0,
    tableId: 0,
    cookie: 0n,
    match: [{ field: fieldByName('in_port')!, value: Buffer.from([0, 0, 0, 1]) }],
    data: Buffer.alloc(60, 0xab),
  });
}

async function generator(port: number, mode: 'throughput' | 'latency', nSwitches: number, seconds: number, window: number): Promise<GenResult> {
  const pin = packetIn();
  const PIN = pin.length;
  const batch = Buffer.concat(Array.from({ length: window }, () => pin));
  let measuring = false;
  let answered = 0;
  const lat: number[] = [];
  const socks: Socket[] = [];
  const kicks: (() => void)[] = [];
  let ready = 0;
  const allReady = new Promise<void>((resolve) => {
    for (let s = 0; s < nSwitches; s++) {
      const sock = connect(port, '127.0.0.1');
      sock.setNoDelay(true);
      socks.push(sock);
      let rest: Buffer | null = null;
      let sentAt = 0n;
      let started = false;
      const sendOne = () => {
        sentAt = process.hrtime.bigint();
        sock.write(pin);
      };
      sock.on('connect', () => sock.write(Buffer.from('0400001000000001000100080000001' + '0', 'hex')));
      sock.on('error', () => {});
      sock.on('data', (chunk: Buffer) => {
        let buf = rest ? Buffer.concat([rest, chunk]) : chunk;
        rest = null;
        let off = 0;
        let outs = 0;
        while (buf.length - off >= 8) {
          const len = buf.readUInt16BE(off + 2);
          if (len < 8) throw new Error('bad frame from controller');
          if (buf.length - off < len) break;
          const type = buf[off + 1];
          if (type === 13) outs++;
          else if (type === 5) {
            const fr = Buffer.alloc(32);
            buf.copy(fr, 0, off, off + 8);
            fr[1] = 6;
            fr.writeUInt16BE(32, 2);
            fr.writeBigUInt64BE(BigInt(s + 1), 8);
            fr[20] = 254;
            sock.write(fr);
            if (!started) {
              started = true;
              if (++ready === nSwitches) resolve();
            }
          } else if (type === 2) {
            const er = Buffer.from(buf.subarray(off, off + len));
            er[1] = 3;
            sock.write(er);
          }
          off += len;
        }
        if (off < buf.length) rest = Buffer.from(buf.subarray(off));
        if (!outs) return;
        if (measuring) answered += outs;
        if (mode === 'latency') {
          if (measuring) lat.push(Number(process.hrtime.bigint() - sentAt) / 1000);
          sendOne();
        } else {
          sock.write(batch.subarray(0, outs * PIN));
        }
      });
      kicks.push(() => (mode === 'latency' ? sendOne() : sock.write(batch)));
    }
  });
  await allReady;
  await new Promise((r) => setTimeout(r, 200));
  for (const kick of kicks) kick();
  await new Promise((r) => setTimeout(r, 1000)); // warm-up
  process.send?.('start');
  measuring = true;
  const t0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  measuring = false;
  process.send?.('stop');
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  for (const s of socks) s.destroy();
  const out: GenResult = { answered, seconds: secs };
  if (lat.length) {
    lat.sort((a, b) => a - b);
    out.p50us = lat[Math.floor(lat.length * 0.5)]!;
    out.p99us = lat[Math.floor(lat.length * 0.99)]!;
  }
  return out;
}

if (process.argv[2] === '--generator') {
  const [port, mode, n, secs, win] = process.argv.slice(3);
  const r = await generator(Number(port), mode as 'throughput' | 'latency', Number(n), Number(secs), Number(win));
  process.send!(r);
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// Responders

type Stop = () => Promise<void>;

/** Tenet: the real OpenFlowServer, full decode of every packet_in, full encode of each packet_out. */
async function tenetResponder(): Promise<{ port: number; stop: Stop }> {
  const server = new OpenFlowServer({ echoIntervalMs: 60_000, echoTimeoutMs: 180_000 });
  const flood: Action[] = [{ type: 'output', port: OFPP.FLOOD, maxLen: 0 }];
  server.on('connect', (conn) => {
    conn.on('packet_in', (m: OfMessage) => {
      if (m.type !== 'packet_in') return;
      let inPort = OFPP.CONTROLLER;
      for (const t of m.match) if (t.field.name === 'in_port') inPort = ((t.value[0]! << 24) | (t.value[1]! << 16) | (t.value[2]! << 8) | t.value[3]!) >>> 0;
      conn.send({ type: 'packet_out', xid: m.xid, bufferId: m.bufferId, inPort, actions: flood, data: m.data });
    });
  });
  const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
  return { port: port!, stop: () => server.close() };
}

/** Reference: a bare responder that scans frames and writes canned replies, one write per read. */
async function bareResponder(): Promise<{ port: number; stop: Stop }> {
  const socks = new Set<Socket>();
  const server = createServer((sock) => {
    socks.add(sock);
    sock.setNoDelay(true);
    sock.on('error', () => {});
    sock.on('close', () => socks.delete(sock));
    sock.write(Buffer.from('04000010000000010001000800000010', 'hex'));
    sock.write(Buffer.from('0405000800000002', 'hex'));
    let rest: Buffer | null = null;
    let out = Buffer.allocUnsafe(1 << 16);
    sock.on('data', (chunk: Buffer) => {
      const buf = rest ? Buffer.concat([rest, chunk]) : chunk;
      rest = null;
      let off = 0;
      let o = 0;
      while (buf.length - off >= 8) {
        const len = buf.readUInt16BE(off + 2);
        if (buf.length - off < len) break;
        if (buf[off + 1] === 10) {
          // packet_in: data starts after the match (+2 pad)
          const mlen = buf.readUInt16BE(off + 26);
          const dataAt = off + 24 + ((mlen + 7) & ~7) + 2;
          const dlen = off + len - dataAt;
          const plen = 24 + 16 + dlen;
          if (o + plen > out.length) {
            sock.write(out.subarray(0, o));
            out = Buffer.allocUnsafe(1 << 16);
            o = 0;
          }
          out[o] = 4;
          out[o + 1] = 13;
          out.writeUInt16BE(plen, o + 2);
          buf.copy(out, o + 4, off + 4, off + 8);
          out.writeUInt32BE(0xffffffff, o + 8);
          out.writeUInt32BE(1, o + 12);
          out.writeUInt16BE(16, o + 16);
          out.fill(0, o + 18, o + 24);
          out.writeUInt32BE(0x00000010, o + 24);
          out.writeUInt32BE(0xfffffffb, o + 28);
          out.fill(0, o + 32, o + 40);
          buf.copy(out, o + 40, dataAt, dataAt + dlen);
          o += plen;
        }
        off += len;
      }
      if (off < buf.length) rest = Buffer.from(buf.subarray(off));
      if (o) {
        sock.write(out.subarray(0, o));
        out = out.length - o > 4096 ? out.subarray(o) : Buffer.allocUnsafe(1 << 16);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    stop: async () => {
      for (const s of socks) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function runGenerator(port: number, mode: string, n: number, secs: number, window: number): Promise<GenResult> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), ['--generator', String(port), mode, String(n), String(secs), String(window)], {
      execArgv: process.execArgv,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let cpu0: NodeJS.CpuUsage | undefined;
    let cpuS = 0;
    child.on('message', (m) => {
      if (m === 'start') cpu0 = process.cpuUsage();
      else if (m === 'stop') {
        const d = process.cpuUsage(cpu0);
        cpuS = (d.user + d.system) / 1e6;
      } else resolve({ ...(m as GenResult), responderCpuS: cpuS });
    });
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code) reject(new Error(`generator exited ${code}`));
    });
  });
}

// ---------------------------------------------------------------------------------------------

const SECONDS = Number(arg('seconds', '3'));
const SWITCHES = Number(arg('switches', '16'));
const WINDOW = Number(arg('window', '256'));

// 1. flow_mod encode / decode on one core.
const fm: OfMessage = {
  type: 'flow_mod',
  xid: 1,
  ...parseFlow('table=60,priority=100,metadata=0x5,ip,nw_dst=10.0.1.2 actions=set_field:0x64->tun_id,output:3'),
};
const w = new Writer(1 << 20);
const frame = encodeMessage(fm);
/** Operations per CPU-second of this thread ("on one core"), median of 5 windows; and per wall second. */
const rate = (fn: () => void, windowMs = 300) => {
  for (let i = 0; i < 50_000; i++) fn();
  const cpu: number[] = [];
  const wall: number[] = [];
  for (let k = 0; k < 5; k++) {
    let n = 0;
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    while (performance.now() - t0 < windowMs) {
      for (let i = 0; i < 10_000; i++) fn();
      n += 10_000;
    }
    const el = (performance.now() - t0) / 1000;
    const d = process.cpuUsage(c0);
    cpu.push(n / ((d.user + d.system) / 1e6));
    wall.push(n / el);
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[2]!;
  return { cpu: med(cpu), wall: med(wall) };
};
const enc = rate(() => {
  if (w.pos > (1 << 20) - 512) w.pos = 0;
  encodeInto(w, fm);
});
const encodePerS = enc.cpu;
say(`flow_mod encode: ${Math.round(enc.cpu)}/CPU-s (${Math.round(enc.wall)}/wall-s), ${frame.length} bytes each`);
const dec = rate(() => {
  decodeMessage(frame);
});
const decodePerS = dec.cpu;
say(`flow_mod decode: ${Math.round(dec.cpu)}/CPU-s (${Math.round(dec.wall)}/wall-s)`);

// 2. packet_in -> packet_out, Tenet vs bare responder, throughput and latency mode,
//    interleaved over several rounds (the machine is shared: medians, same conditions for both).
const ROUNDS = Number(arg('rounds', '3'));
const runs: Record<string, GenResult[]> = {};
for (let round = 0; round < ROUNDS; round++) {
  for (const mode of ['throughput', 'latency', 'latency1'] as const) {
    for (const [impl, make] of (round % 2
      ? [
          ['bare', bareResponder],
          ['tenet', tenetResponder],
        ]
      : [
          ['tenet', tenetResponder],
          ['bare', bareResponder],
        ]) as [string, typeof tenetResponder][]) {
      const r = await make();
      try {
        // latency1: one switch, one packet in flight: the bare round trip, free of queueing
        // behind the other switches' events in the (JavaScript) generator.
        const g = await runGenerator(r.port, mode === 'latency1' ? 'latency' : mode, mode === 'latency1' ? 1 : SWITCHES, SECONDS, WINDOW);
        (runs[`${impl}_${mode}`] ??= []).push(g);
        const perS = g.answered / g.seconds;
        say(
          `round ${round + 1}/${ROUNDS} ${impl} ${mode}: ${Math.round(perS)} packet_in->packet_out/s` +
            ` (${Math.round(g.answered / (g.responderCpuS || 1))} per responder CPU-s)` +
            (g.p50us !== undefined ? `, p50 ${g.p50us.toFixed(1)} us, p99 ${g.p99us!.toFixed(1)} us` : ''),
        );
      } finally {
        await r.stop();
      }
    }
  }
}
const med = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const per = (k: string) => Math.round(med(runs[k]!.map((g) => g.answered / g.seconds)));
const perCpu = (k: string) => Math.round(med(runs[k]!.map((g) => g.answered / (g.responderCpuS || 1))));
const lat = (k: string, q: 'p50us' | 'p99us') => Number(med(runs[k]!.map((g) => g[q]!)).toFixed(1));
console.log(
  JSON.stringify({
    encode_per_s: Math.round(encodePerS),
    decode_per_s: Math.round(decodePerS),
    encode_per_wall_s: Math.round(enc.wall),
    decode_per_wall_s: Math.round(dec.wall),
    pktin_pktout_per_s: per('tenet_throughput'),
    pktin_pktout_per_responder_cpu_s: perCpu('tenet_throughput'),
    latency_p50_us: lat('tenet_latency', 'p50us'),
    latency_p99_us: lat('tenet_latency', 'p99us'),
    latency_mode_per_s: per('tenet_latency'),
    latency_1sw_p50_us: lat('tenet_latency1', 'p50us'),
    latency_1sw_p99_us: lat('tenet_latency1', 'p99us'),
    bare_latency_1sw_p50_us: lat('bare_latency1', 'p50us'),
    bare_latency_1sw_p99_us: lat('bare_latency1', 'p99us'),
    bare_pktin_pktout_per_s: per('bare_throughput'),
    bare_pktin_pktout_per_responder_cpu_s: perCpu('bare_throughput'),
    bare_latency_p50_us: lat('bare_latency', 'p50us'),
    bare_latency_p99_us: lat('bare_latency', 'p99us'),
    ratio_vs_bare: Number((per('tenet_throughput') / per('bare_throughput')).toFixed(3)),
    cpu_ratio_vs_bare: Number((perCpu('tenet_throughput') / perCpu('bare_throughput')).toFixed(3)),
    load_average_1m: Number(loadavg()[0]!.toFixed(2)),
    rounds: ROUNDS,
    switches: SWITCHES,
    window: WINDOW,
    seconds: SECONDS,
  }),
);
