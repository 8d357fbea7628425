/**
 * codec: flow_mod encodes/s and decodes/s on one core, then packet_in ->
 * packet_out round trips over loopback from a cbench-style generator of 16
 * simulated switches (a child process), in throughput mode (each switch keeps
 * a window of packet_ins in flight) and latency mode (one in flight per
 * switch). Tenet's full stack (OpenFlowServer + decode + encode) is measured
 * against a bare responder (frame scan + canned reply, batched writes) in the
 * same run. Last line: JSON.
 *
 *   npm run bench -- codec [--seconds S] [--rounds R] [--switches N] [--window W] [--js-generator] [--no-ovs]
 */
import { fork, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, createServer, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { loadavg, tmpdir } from 'node:os';
import {
  decodeMessage,
  encodeInto,
  encodeMessage,
  fieldByName,
  OFPP,
  OpenFlowServer,
  packetInPort,
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
  /** Mean round trip (C generator); with one packet_in per switch in flight, ~ switches / rate. */
  meanus?: number;
  /** Fewest and most replies any one switch got (C generator): fairness between switches. */
  minSwitch?: number;
  maxSwitch?: number;
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
/** A responder under test: its port, how to stop it, and (if not this process) its CPU seconds so far. */
interface Responder {
  port: number;
  stop: Stop;
  cpuSeconds?: () => number;
}

/** Tenet: the real OpenFlowServer, full decode of every packet_in, full encode of each packet_out. */
async function tenetResponder(): Promise<Responder> {
  const server = new OpenFlowServer({ echoIntervalMs: 60_000, echoTimeoutMs: 180_000 });
  const flood: Action[] = [{ type: 'output', port: OFPP.FLOOD, maxLen: 0 }];
  server.on('connect', (conn) => {
    conn.on('packet_in', (m: OfMessage) => {
      if (m.type !== 'packet_in') return;
      const inPort = packetInPort(m) ?? OFPP.CONTROLLER;
      conn.send({ type: 'packet_out', xid: m.xid, bufferId: m.bufferId, inPort, actions: flood, data: m.data });
    });
  });
  const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
  return { port: port!, stop: () => server.close() };
}

/** Reference: a bare responder that scans frames and writes canned replies, one write per read. */
async function bareResponder(): Promise<Responder> {
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

/**
 * Second reference: OVS's own C controller, `ovs-testcontroller --noflow` (Debian package
 * openvswitch-testcontroller), which answers each packet_in with a packet_out (flood; the
 * generator's frames have a multicast source MAC, so nothing is learned). Latency modes only:
 * its lswitch drops packet_outs once 100 are queued on a connection, so a 256-deep throughput
 * window loses replies and stalls. Null when the binary is not installed.
 */
async function ovsTestController(): Promise<Responder | null> {
  if (spawnSync('ovs-testcontroller', ['--version'], { encoding: 'utf8' }).status !== 0) return null;
  const port = await new Promise<number>((resolve) => {
    const probe = createServer();
    probe.listen(0, '127.0.0.1', () => {
      const p = (probe.address() as { port: number }).port;
      probe.close(() => resolve(p));
    });
  });
  const dir = mkdtempSync(join(tmpdir(), 'tenet-ovstc-'));
  const child = spawn('ovs-testcontroller', ['--noflow', '-O', 'OpenFlow13', `--unixctl=${join(dir, 'tc.ctl')}`, `ptcp:${port}:127.0.0.1`], {
    stdio: 'ignore',
    env: { ...process.env, OVS_RUNDIR: dir },
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  for (let i = 0; ; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const c = connect(port, '127.0.0.1');
      c.once('connect', () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
    if (up) break;
    if (i === 100 || child.exitCode !== null) {
      await stop();
      say('ovs-testcontroller did not start listening; skipped');
      return null;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  // utime + stime of the process, clock ticks (USER_HZ = 100 on Linux).
  const cpuSeconds = () => {
    const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  };
  return { port, stop, cpuSeconds };
}

/**
 * The same generator in C (cbench is C): a JavaScript generator pays ~10-15 us of event-loop
 * work per socket event, which in latency mode queues every round trip behind the other
 * switches' events. Compiled with gcc at run time when available, else the JS one is used.
 */
const C_GENERATOR = String.raw`/* cbench-style OpenFlow 1.3 load generator: N switches, packet_in -> packet_out. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXSW 256
#define PIN 102
struct sw { int fd; unsigned char buf[1 << 17]; int have; int ready; double sent; long answered; };
static struct sw sws[MAXSW];
static unsigned char pin[PIN];
static unsigned char *batch;
static double *lat; static long nlat, caplat = 1 << 22;

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e6 + t.tv_nsec / 1e3; }
static void wr(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) { ssize_t k = send(fd, c, n, 0); if (k < 0) { if (errno == EINTR) continue; perror("send"); exit(1); } c += k; n -= k; }
}
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }

int main(int argc, char **argv) {
  if (argc < 6) { fprintf(stderr, "usage: port mode nsw seconds window\n"); return 2; }
  int port = atoi(argv[1]); int latency = !strcmp(argv[2], "latency"); int n = atoi(argv[3]);
  double secs = atof(argv[4]); int window = atoi(argv[5]);
  if (n > MAXSW) n = MAXSW;
  memset(pin, 0, PIN);
  pin[0] = 4; pin[1] = 10; pin[2] = 0; pin[3] = PIN;
  memset(pin + 8, 0xff, 4); pin[12] = 0; pin[13] = 60;          /* buffer_id, total_len */
  pin[24] = 0; pin[25] = 1; pin[26] = 0; pin[27] = 12;           /* match type OXM, len 12 */
  pin[28] = 0x80; pin[29] = 0; pin[30] = 0; pin[31] = 4;         /* OXM in_port */
  pin[35] = 1;
  memset(pin + 42, 0xab, 60);
  batch = malloc((size_t)PIN * window);
  for (int i = 0; i < window; i++) memcpy(batch + (size_t)i * PIN, pin, PIN);
  lat = malloc(sizeof(double) * caplat);
  int ep = epoll_create1(0);
  for (int i = 0; i < n; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    a.sin_addr.s_addr = htonl(0x7f000001);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return 1; }
    int one = 1; setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sws[i].fd = fd;
    unsigned char hello[16] = {4, 0, 0, 16, 0, 0, 0, 1, 0, 1, 0, 8, 0, 0, 0, 0x10};
    wr(fd, hello, 16);
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = i };
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
  int ready = 0, measuring = 0, kicked = 0; long answered = 0;
  double t0 = now(), tkick = 0, tstart = 0, tend = 0;
  struct epoll_event evs[64];
  for (;;) {
    double t = now();
    if (ready == n && !kicked && t - t0 > 0) {
      if (tkick == 0) tkick = t + 200000;
      if (t >= tkick) {
        kicked = 1;
        for (int i = 0; i < n; i++) { if (latency) { sws[i].sent = now(); wr(sws[i].fd, pin, PIN); } else wr(sws[i].fd, batch, (size_t)PIN * window); }
        tstart = now() + 1000000;
      }
    }
    if (kicked && !measuring && t >= tstart && tend == 0) {
      measuring = 1; tend = t + secs * 1e6; printf("start\n"); fflush(stdout); answered = 0; nlat = 0; tstart = t;
      for (int i = 0; i < n; i++) sws[i].answered = 0;
    }
    if (measuring && t >= tend) break;
    int k = epoll_wait(ep, evs, 64, 10);
    for (int e = 0; e < k; e++) {
      struct sw *s = &sws[evs[e].data.u32];
      ssize_t r = recv(s->fd, s->buf + s->have, sizeof s->buf - s->have, MSG_DONTWAIT);
      if (r <= 0) { if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue; fprintf(stderr, "controller closed\n"); return 1; }
      s->have += r;
      int off = 0, outs = 0;
      while (s->have - off >= 8) {
        int len = (s->buf[off + 2] << 8) | s->buf[off + 3];
        if (len < 8) { fprintf(stderr, "bad frame\n"); return 1; }
        if (s->have - off < len) break;
        int type = s->buf[off + 1];
        if (type == 13) outs++;
        else if (type == 5) {
          unsigned char fr[32] = {0}; memcpy(fr, s->buf + off, 8); fr[1] = 6; fr[3] = 32;
          fr[15] = (unsigned char)(evs[e].data.u32 + 1); fr[20] = 254;
          wr(s->fd, fr, 32);
          if (!s->ready) { s->ready = 1; ready++; }
        } else if (type == 2) {
          unsigned char *er = s->buf + off; er[1] = 3; wr(s->fd, er, len);
        }
        off += len;
      }
      memmove(s->buf, s->buf + off, s->have - off); s->have -= off;
      if (!outs) continue;
      if (measuring) { answered += outs; s->answered += outs; }
      if (latency) {
        double tn = now();
        if (measuring && nlat < caplat) lat[nlat++] = tn - s->sent;
        s->sent = now(); wr(s->fd, pin, PIN);
      } else {
        while (outs > 0) { int m = outs > window ? window : outs; wr(s->fd, batch, (size_t)PIN * m); outs -= m; }
      }
    }
  }
  double el = (now() - tstart) / 1e6;
  printf("stop\n"); fflush(stdout);
  double p50 = 0, p99 = 0, sum = 0;
  long amin = sws[0].answered, amax = sws[0].answered;
  for (int i = 1; i < n; i++) { if (sws[i].answered < amin) amin = sws[i].answered; if (sws[i].answered > amax) amax = sws[i].answered; }
  for (long i = 0; i < nlat; i++) sum += lat[i];
  if (nlat) { qsort(lat, nlat, sizeof(double), cmp); p50 = lat[(long)(nlat * 0.5)]; p99 = lat[(long)(nlat * 0.99)]; }
  printf("{\"answered\":%ld,\"seconds\":%.6f,\"minSwitch\":%ld,\"maxSwitch\":%ld", answered, el, amin, amax);
  if (nlat) printf(",\"p50us\":%.2f,\"p99us\":%.2f,\"meanus\":%.2f", p50, p99, sum / nlat);
  printf("}\n");
  for (int i = 0; i < n; i++) close(sws[i].fd);
  return 0;
}
`;

function buildCGenerator(): string | null {
  if (process.argv.includes('--js-generator')) return null;
  const dir = mkdtempSync(join(tmpdir(), 'tenet-cbench-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'cbench.c'), C_GENERATOR);
  const r = spawnSync('gcc', ['-O2', '-o', join(dir, 'cbench'), join(dir, 'cbench.c')], { encoding: 'utf8' });
  if (r.status !== 0) {
    say(`gcc unavailable or failed (${(r.stderr || String(r.error)).split('\n')[0]}); using the JavaScript generator`);
    return null;
  }
  return join(dir, 'cbench');
}

let cGenerator: string | null = null;

const ownCpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

function runCGenerator(bin: string, port: number, mode: string, n: number, secs: number, window: number, cpuSeconds = ownCpuSeconds): Promise<GenResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, [String(port), mode, String(n), String(secs), String(window)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let cpu0 = 0;
    let cpuS = 0;
    let buf = '';
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line === 'start') cpu0 = cpuSeconds();
        else if (line === 'stop') cpuS = cpuSeconds() - cpu0;
        else if (line.startsWith('{')) resolve({ ...(JSON.parse(line) as GenResult), responderCpuS: cpuS });
      }
    });
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code) reject(new Error(`C generator exited ${code}`));
    });
  });
}

function runGenerator(port: number, mode: string, n: number, secs: number, window: number, cpuSeconds?: () => number): Promise<GenResult> {
  if (cGenerator) return runCGenerator(cGenerator, port, mode, n, secs, window, cpuSeconds);
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), ['--generator', String(port), mode, String(n), String(secs), String(window)], {
      execArgv: process.execArgv,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const cpu = cpuSeconds ?? ownCpuSeconds;
    let cpu0 = 0;
    let cpuS = 0;
    child.on('message', (m) => {
      if (m === 'start') cpu0 = cpu();
      else if (m === 'stop') cpuS = cpu() - cpu0;
      else resolve({ ...(m as GenResult), responderCpuS: cpuS });
    });
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code) reject(new Error(`generator exited ${code}`));
    });
  });
}

// ---------------------------------------------------------------------------------------------

cGenerator = buildCGenerator();
say(`generator: ${cGenerator ? 'C (compiled with gcc)' : 'JavaScript'}`);
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

// 2. packet_in -> packet_out, Tenet vs bare responder (and ovs-testcontroller in latency mode),
//    throughput and latency mode, interleaved over several rounds (the machine is shared:
//    medians, same conditions for all).
const ROUNDS = Number(arg('rounds', '3'));
const haveOvs = !process.argv.includes('--no-ovs') && (await ovsTestController().then(async (r) => (r ? (await r.stop(), true) : false)));
say(`ovs-testcontroller reference: ${haveOvs ? 'yes (latency modes)' : 'no (not installed, or --no-ovs)'}`);
const runs: Record<string, GenResult[]> = {};
for (let round = 0; round < ROUNDS; round++) {
  for (const mode of ['throughput', 'latency', 'latency1'] as const) {
    const impls: [string, () => Promise<Responder | null>][] = [
      ['tenet', tenetResponder],
      ['bare', bareResponder],
    ];
    if (haveOvs && mode !== 'throughput') impls.push(['ovs', ovsTestController]);
    if (round % 2) impls.reverse();
    for (const [impl, make] of impls) {
      const r = await make();
      if (!r) continue;
      try {
        // latency1: one switch, one packet in flight: the bare round trip, free of queueing
        // behind the other switches.
        const g = await runGenerator(r.port, mode === 'latency1' ? 'latency' : mode, mode === 'latency1' ? 1 : SWITCHES, SECONDS, WINDOW, r.cpuSeconds);
        (runs[`${impl}_${mode}`] ??= []).push(g);
        const perS = g.answered / g.seconds;
        say(
          `round ${round + 1}/${ROUNDS} ${impl} ${mode}: ${Math.round(perS)} packet_in->packet_out/s` +
            ` (${Math.round(g.answered / (g.responderCpuS || 1))} per responder CPU-s)` +
            (g.p50us !== undefined ? `, p50 ${g.p50us.toFixed(1)} us, p99 ${g.p99us!.toFixed(1)} us` : '') +
            (g.meanus !== undefined ? `, mean ${g.meanus.toFixed(1)} us` : '') +
            (g.minSwitch !== undefined && mode !== 'latency1' ? `, per switch ${g.minSwitch}..${g.maxSwitch}` : ''),
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
const lat = (k: string, q: 'p50us' | 'p99us' | 'meanus') => (runs[k]?.[0]?.[q] === undefined ? null : Number(med(runs[k]!.map((g) => g[q]!)).toFixed(1)));
const ovsFigures = haveOvs
  ? {
      ovs_testcontroller_latency_p50_us: lat('ovs_latency', 'p50us'),
      ovs_testcontroller_latency_p99_us: lat('ovs_latency', 'p99us'),
      ovs_testcontroller_latency_mean_us: lat('ovs_latency', 'meanus'),
      ovs_testcontroller_latency_mode_per_s: per('ovs_latency'),
      ovs_testcontroller_latency_1sw_p50_us: lat('ovs_latency1', 'p50us'),
    }
  : {};
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
    latency_mean_us: lat('tenet_latency', 'meanus'),
    latency_mode_per_s: per('tenet_latency'),
    latency_1sw_p50_us: lat('tenet_latency1', 'p50us'),
    latency_1sw_p99_us: lat('tenet_latency1', 'p99us'),
    bare_latency_1sw_p50_us: lat('bare_latency1', 'p50us'),
    bare_latency_1sw_p99_us: lat('bare_latency1', 'p99us'),
    bare_pktin_pktout_per_s: per('bare_throughput'),
    bare_pktin_pktout_per_responder_cpu_s: perCpu('bare_throughput'),
    bare_latency_p50_us: lat('bare_latency', 'p50us'),
    bare_latency_p99_us: lat('bare_latency', 'p99us'),
    bare_latency_mean_us: lat('bare_latency', 'meanus'),
    bare_latency_mode_per_s: per('bare_latency'),
    ...ovsFigures,
    ratio_vs_bare: Number((per('tenet_throughput') / per('bare_throughput')).toFixed(3)),
    cpu_ratio_vs_bare: Number((perCpu('tenet_throughput') / perCpu('bare_throughput')).toFixed(3)),
    latency_ratio_vs_bare: Number((lat('tenet_latency', 'p50us')! / lat('bare_latency', 'p50us')!).toFixed(3)),
    load_average_1m: Number(loadavg()[0]!.toFixed(2)),
    rounds: ROUNDS,
    generator: cGenerator ? 'c' : 'js',
    switches: SWITCHES,
    window: WINDOW,
    seconds: SECONDS,
  }),
);
