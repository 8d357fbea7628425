/**
 * OpenFlow 1.3 messages: one discriminated union, one encoder and one decoder.
 * decodeMessage() takes exactly one frame (see framing.ts) and either returns a
 * message or throws OpenFlowDecodeError; it never reads outside the frame.
 */
import { readActionList, readInstructions, writeActions, writeInstructions, ONF_VENDOR_ID, type Action, type Instruction } from './actions.js';
import { OpenFlowDecodeError, OpenFlowEncodeError } from './errors.js';
import { checkMatch, readMatch, writeMatch, type Match } from './fields.js';
import { Reader, Writer } from './wire.js';

export const OFP_VERSION = 4;
export const OFP_HEADER_LEN = 8;

export const OFPT = {
  HELLO: 0,
  ERROR: 1,
  ECHO_REQUEST: 2,
  ECHO_REPLY: 3,
  EXPERIMENTER: 4,
  FEATURES_REQUEST: 5,
  FEATURES_REPLY: 6,
  GET_CONFIG_REQUEST: 7,
  GET_CONFIG_REPLY: 8,
  SET_CONFIG: 9,
  PACKET_IN: 10,
  FLOW_REMOVED: 11,
  PORT_STATUS: 12,
  PACKET_OUT: 13,
  FLOW_MOD: 14,
  GROUP_MOD: 15,
  MULTIPART_REQUEST: 18,
  MULTIPART_REPLY: 19,
  BARRIER_REQUEST: 20,
  BARRIER_REPLY: 21,
  ROLE_REQUEST: 24,
  ROLE_REPLY: 25,
  METER_MOD: 29,
} as const;

export const OFPFC = { ADD: 0, MODIFY: 1, MODIFY_STRICT: 2, DELETE: 3, DELETE_STRICT: 4 } as const;
export const OFPGC = { ADD: 0, MODIFY: 1, DELETE: 2 } as const;
export const OFPGT = { ALL: 0, SELECT: 1, INDIRECT: 2, FF: 3 } as const;
export const OFPMC = { ADD: 0, MODIFY: 1, DELETE: 2 } as const;
export const OFPMF = { KBPS: 1, PKTPS: 2, BURST: 4, STATS: 8 } as const;
export const OFPMBT = { DROP: 1, DSCP_REMARK: 2 } as const;
export const OFPG_ANY = 0xffffffff;
export const OFPG_ALL = 0xfffffffc;
export const OFP_NO_BUFFER = 0xffffffff;
export const OFPCR_ROLE = { NOCHANGE: 0, EQUAL: 1, MASTER: 2, SLAVE: 3 } as const;
export const OFPMP = {
  DESC: 0,
  FLOW: 1,
  AGGREGATE: 2,
  TABLE: 3,
  PORT_STATS: 4,
  GROUP: 6,
  GROUP_DESC: 7,
  PORT_DESC: 13,
} as const;
export const OFPMPF_MORE = 1;

/** ONF bundle extension (EXT-230) as OVS implements it for OpenFlow 1.3. */
export const ONFT_BUNDLE_CONTROL = 2300;
export const ONFT_BUNDLE_ADD_MESSAGE = 2301;
export const OFPBCT = {
  OPEN_REQUEST: 0,
  OPEN_REPLY: 1,
  CLOSE_REQUEST: 2,
  CLOSE_REPLY: 3,
  COMMIT_REQUEST: 4,
  COMMIT_REPLY: 5,
  DISCARD_REQUEST: 6,
  DISCARD_REPLY: 7,
} as const;
export const OFPBF = { ATOMIC: 1, ORDERED: 2 } as const;

export interface FlowMod {
  cookie: bigint;
  cookieMask: bigint;
  tableId: number;
  command: number;
  idleTimeout: number;
  hardTimeout: number;
  priority: number;
  bufferId: number;
  outPort: number;
  outGroup: number;
  flags: number;
  match: Match;
  instructions: Instruction[];
}

export interface Bucket {
  weight: number;
  watchPort: number;
  watchGroup: number;
  actions: Action[];
}

export interface GroupMod {
  command: number;
  groupType: number;
  groupId: number;
  buckets: Bucket[];
}

export interface MeterBand {
  bandType: number;
  rate: number;
  burstSize: number;
  precLevel?: number;
}

export interface MeterMod {
  command: number;
  flags: number;
  meterId: number;
  bands: MeterBand[];
}

export interface PortDesc {
  portNo: number;
  hwAddr: Uint8Array;
  name: string;
  config: number;
  state: number;
  curr: number;
  advertised: number;
  supported: number;
  peer: number;
  currSpeed: number;
  maxSpeed: number;
}

export interface FlowStats {
  tableId: number;
  durationSec: number;
  durationNsec: number;
  priority: number;
  idleTimeout: number;
  hardTimeout: number;
  flags: number;
  cookie: bigint;
  packetCount: bigint;
  byteCount: bigint;
  match: Match;
  instructions: Instruction[];
}

export interface PortStats {
  portNo: number;
  /** rx_packets, tx_packets, rx_bytes, tx_bytes, rx_dropped, tx_dropped, rx_errors, tx_errors, rx_frame_err, rx_over_err, rx_crc_err, collisions */
  counters: bigint[];
  durationSec: number;
  durationNsec: number;
}

export interface GroupStats {
  groupId: number;
  refCount: number;
  packetCount: bigint;
  byteCount: bigint;
  durationSec: number;
  durationNsec: number;
  buckets: { packetCount: bigint; byteCount: bigint }[];
}

export interface GroupDesc {
  groupType: number;
  groupId: number;
  buckets: Bucket[];
}

export interface TableStats {
  tableId: number;
  activeCount: number;
  lookupCount: bigint;
  matchedCount: bigint;
}

export interface FlowStatsRequest {
  tableId: number;
  outPort: number;
  outGroup: number;
  cookie: bigint;
  cookieMask: bigint;
  match: Match;
}

export type MultipartRequestBody =
  | { mpType: typeof OFPMP.DESC }
  | ({ mpType: typeof OFPMP.FLOW | typeof OFPMP.AGGREGATE } & FlowStatsRequest)
  | { mpType: typeof OFPMP.TABLE }
  | { mpType: typeof OFPMP.PORT_STATS; portNo: number }
  | { mpType: typeof OFPMP.GROUP; groupId: number }
  | { mpType: typeof OFPMP.GROUP_DESC }
  | { mpType: typeof OFPMP.PORT_DESC };

export type MultipartReplyBody =
  | { mpType: typeof OFPMP.DESC; mfr: string; hw: string; sw: string; serial: string; dp: string }
  | { mpType: typeof OFPMP.FLOW; flows: FlowStats[] }
  | { mpType: typeof OFPMP.AGGREGATE; packetCount: bigint; byteCount: bigint; flowCount: number }
  | { mpType: typeof OFPMP.TABLE; tables: TableStats[] }
  | { mpType: typeof OFPMP.PORT_STATS; ports: PortStats[] }
  | { mpType: typeof OFPMP.GROUP; groups: GroupStats[] }
  | { mpType: typeof OFPMP.GROUP_DESC; groups: GroupDesc[] }
  | { mpType: typeof OFPMP.PORT_DESC; ports: PortDesc[] };

type WithXid<T> = T & { xid: number };

export type OfMessage = WithXid<
  | { type: 'hello'; versions: number[] }
  | { type: 'error'; errType: number; errCode: number; experimenter?: number; data: Uint8Array }
  | { type: 'echo_request'; data: Uint8Array }
  | { type: 'echo_reply'; data: Uint8Array }
  | { type: 'features_request' }
  | {
      type: 'features_reply';
      datapathId: bigint;
      nBuffers: number;
      nTables: number;
      auxiliaryId: number;
      capabilities: number;
    }
  | { type: 'get_config_request' }
  | { type: 'get_config_reply'; flags: number; missSendLen: number }
  | { type: 'set_config'; flags: number; missSendLen: number }
  | { type: 'barrier_request' }
  | { type: 'barrier_reply' }
  | ({ type: 'flow_mod' } & FlowMod)
  | ({ type: 'group_mod' } & GroupMod)
  | ({ type: 'meter_mod' } & MeterMod)
  | {
      type: 'packet_in';
      bufferId: number;
      totalLen: number;
      reason: number;
      tableId: number;
      cookie: bigint;
      match: Match;
      data: Uint8Array;
    }
  | { type: 'packet_out'; bufferId: number; inPort: number; actions: Action[]; data: Uint8Array }
  | {
      type: 'flow_removed';
      cookie: bigint;
      priority: number;
      reason: number;
      tableId: number;
      durationSec: number;
      durationNsec: number;
      idleTimeout: number;
      hardTimeout: number;
      packetCount: bigint;
      byteCount: bigint;
      match: Match;
    }
  | { type: 'port_status'; reason: number; port: PortDesc }
  | { type: 'multipart_request'; flags: number; body: MultipartRequestBody }
  | { type: 'multipart_reply'; flags: number; body: MultipartReplyBody }
  | { type: 'role_request'; role: number; generationId: bigint }
  | { type: 'role_reply'; role: number; generationId: bigint }
  | { type: 'bundle_control'; bundleId: number; ctrlType: number; flags: number }
  /** `message` is the complete inner message; on the wire its xid is set to the outer xid (OVS checks). */
  | { type: 'bundle_add'; bundleId: number; flags: number; message: OfMessage | Uint8Array }
  /** Anything we do not model, kept raw so a peer's extension never crashes us. */
  | { type: 'unknown'; msgType: number; body: Uint8Array }
>;

export type MessageType = OfMessage['type'];

// ---- encode ---------------------------------------------------------------------------------

function header(w: Writer, type: number, xid: number): number {
  const start = w.pos;
  w.ensure(8);
  w.u8(OFP_VERSION);
  w.u8(type);
  w.u16(0);
  w.u32(xid);
  return start;
}

/**
 * packet_out whose actions are all `output` (the usual reply to a packet_in): one capacity
 * check and byte stores, the same bytes as the generic path. Returns false for anything else.
 */
function encodeOutputPacketOut(w: Writer, m: Extract<OfMessage, { type: 'packet_out' }>): boolean {
  const acts = m.actions;
  for (let i = 0; i < acts.length; i++) if (acts[i]!.type !== 'output') return false;
  const data = m.data;
  const alen = 16 * acts.length;
  const len = 24 + alen + data.length;
  if (len > 0xffff) throw new OpenFlowEncodeError(`message length ${len} exceeds 65535`, { len });
  w.ensure(len);
  const b = w.buf;
  const p = w.pos;
  const xid = m.xid;
  const bid = m.bufferId;
  const inPort = m.inPort;
  b[p] = OFP_VERSION;
  b[p + 1] = OFPT.PACKET_OUT;
  b[p + 2] = len >>> 8;
  b[p + 3] = len & 0xff;
  b[p + 4] = (xid >>> 24) & 0xff;
  b[p + 5] = (xid >>> 16) & 0xff;
  b[p + 6] = (xid >>> 8) & 0xff;
  b[p + 7] = xid & 0xff;
  b[p + 8] = (bid >>> 24) & 0xff;
  b[p + 9] = (bid >>> 16) & 0xff;
  b[p + 10] = (bid >>> 8) & 0xff;
  b[p + 11] = bid & 0xff;
  b[p + 12] = (inPort >>> 24) & 0xff;
  b[p + 13] = (inPort >>> 16) & 0xff;
  b[p + 14] = (inPort >>> 8) & 0xff;
  b[p + 15] = inPort & 0xff;
  b[p + 16] = alen >>> 8;
  b[p + 17] = alen & 0xff;
  for (let i = 18; i < 24; i++) b[p + i] = 0;
  let q = p + 24;
  for (let i = 0; i < acts.length; i++) {
    const a = acts[i] as Extract<Action, { type: 'output' }>;
    b[q] = 0; // OFPAT_OUTPUT
    b[q + 1] = 0;
    b[q + 2] = 0;
    b[q + 3] = 16;
    b[q + 4] = (a.port >>> 24) & 0xff;
    b[q + 5] = (a.port >>> 16) & 0xff;
    b[q + 6] = (a.port >>> 8) & 0xff;
    b[q + 7] = a.port & 0xff;
    b[q + 8] = (a.maxLen >>> 8) & 0xff;
    b[q + 9] = a.maxLen & 0xff;
    for (let k = 10; k < 16; k++) b[q + k] = 0;
    q += 16;
  }
  w.pos = q;
  w.bytes(data);
  return true;
}

function finish(w: Writer, start: number): void {
  const len = w.pos - start;
  if (len > 0xffff) throw new OpenFlowEncodeError(`message length ${len} exceeds 65535`, { len });
  w.set16(start + 2, len);
}

export function writeFlowModBody(w: Writer, m: FlowMod): void {
  w.ensure(40);
  w.u64(m.cookie);
  w.u64(m.cookieMask);
  w.u8(m.tableId);
  w.u8(m.command);
  w.u16(m.idleTimeout);
  w.u16(m.hardTimeout);
  w.u16(m.priority);
  w.u32(m.bufferId);
  w.u32(m.outPort);
  w.u32(m.outGroup);
  w.u16(m.flags);
  w.zeros(2);
  writeMatch(w, m.match);
  writeInstructions(w, m.instructions);
}

function writeBuckets(w: Writer, buckets: readonly Bucket[]): void {
  for (const b of buckets) {
    const start = w.pos;
    w.u16(0);
    w.u16(b.weight);
    w.u32(b.watchPort);
    w.u32(b.watchGroup);
    w.zeros(4);
    writeActions(w, b.actions);
    w.set16(start, w.pos - start);
  }
}

function writePort(w: Writer, p: PortDesc): void {
  w.u32(p.portNo);
  w.zeros(4);
  w.bytes(p.hwAddr);
  w.zeros(2);
  const name = Buffer.alloc(16);
  name.write(p.name.slice(0, 15), 'latin1');
  w.bytes(name);
  for (const v of [p.config, p.state, p.curr, p.advertised, p.supported, p.peer, p.currSpeed, p.maxSpeed]) w.u32(v);
}

function writeFlowStatsRequest(w: Writer, q: FlowStatsRequest): void {
  w.u8(q.tableId);
  w.zeros(3);
  w.u32(q.outPort);
  w.u32(q.outGroup);
  w.zeros(4);
  w.u64(q.cookie);
  w.u64(q.cookieMask);
  writeMatch(w, q.match);
}

function writeMultipartReply(w: Writer, b: MultipartReplyBody): void {
  switch (b.mpType) {
    case OFPMP.DESC:
      for (const [s, n] of [
        [b.mfr, 256],
        [b.hw, 256],
        [b.sw, 256],
        [b.serial, 32],
        [b.dp, 256],
      ] as const) {
        const buf = Buffer.alloc(n);
        buf.write(s.slice(0, n - 1), 'latin1');
        w.bytes(buf);
      }
      return;
    case OFPMP.FLOW:
      for (const f of b.flows) {
        const start = w.pos;
        w.u16(0);
        w.u8(f.tableId);
        w.zeros(1);
        w.u32(f.durationSec);
        w.u32(f.durationNsec);
        w.u16(f.priority);
        w.u16(f.idleTimeout);
        w.u16(f.hardTimeout);
        w.u16(f.flags);
        w.zeros(4);
        w.u64(f.cookie);
        w.u64(f.packetCount);
        w.u64(f.byteCount);
        writeMatch(w, f.match);
        writeInstructions(w, f.instructions);
        w.set16(start, w.pos - start);
      }
      return;
    case OFPMP.AGGREGATE:
      w.u64(b.packetCount);
      w.u64(b.byteCount);
      w.u32(b.flowCount);
      w.zeros(4);
      return;
    case OFPMP.TABLE:
      for (const t of b.tables) {
        w.u8(t.tableId);
        w.zeros(3);
        w.u32(t.activeCount);
        w.u64(t.lookupCount);
        w.u64(t.matchedCount);
      }
      return;
    case OFPMP.PORT_STATS:
      for (const p of b.ports) {
        w.u32(p.portNo);
        w.zeros(4);
        for (let i = 0; i < 12; i++) w.u64(p.counters[i] ?? 0n);
        w.u32(p.durationSec);
        w.u32(p.durationNsec);
      }
      return;
    case OFPMP.GROUP:
      for (const g of b.groups) {
        const start = w.pos;
        w.u16(0);
        w.zeros(2);
        w.u32(g.groupId);
        w.u32(g.refCount);
        w.zeros(4);
        w.u64(g.packetCount);
        w.u64(g.byteCount);
        w.u32(g.durationSec);
        w.u32(g.durationNsec);
        for (const bs of g.buckets) {
          w.u64(bs.packetCount);
          w.u64(bs.byteCount);
        }
        w.set16(start, w.pos - start);
      }
      return;
    case OFPMP.GROUP_DESC:
      for (const g of b.groups) {
        const start = w.pos;
        w.u16(0);
        w.u8(g.groupType);
        w.zeros(1);
        w.u32(g.groupId);
        writeBuckets(w, g.buckets);
        w.set16(start, w.pos - start);
      }
      return;
    case OFPMP.PORT_DESC:
      for (const p of b.ports) writePort(w, p);
      return;
  }
}

/**
 * Appends one encoded message to `w`. On failure nothing is appended, so a bad
 * message can never corrupt a stream of batched messages.
 */
export function encodeInto(w: Writer, m: OfMessage): void {
  const start = w.pos;
  try {
    encodeOne(w, m);
  } catch (e) {
    w.pos = start;
    if (e instanceof OpenFlowEncodeError) throw e;
    // Out-of-range numbers (RangeError from Buffer writes) and the like.
    throw new OpenFlowEncodeError(`cannot encode ${m.type}: ${(e as Error).message}`, { type: m.type });
  }
}

function encodeOne(w: Writer, m: OfMessage): void {
  switch (m.type) {
    case 'hello': {
      const s = header(w, OFPT.HELLO, m.xid);
      if (m.versions.length) {
        let bitmap = 0;
        for (const v of m.versions) {
          if (v < 0 || v > 31) throw new OpenFlowEncodeError(`HELLO version ${v} out of range`, { version: v });
          bitmap |= 1 << v;
        }
        w.u16(1); // OFPHET_VERSIONBITMAP
        w.u16(8);
        w.u32(bitmap >>> 0);
      }
      return finish(w, s);
    }
    case 'error': {
      const s = header(w, OFPT.ERROR, m.xid);
      w.u16(m.errType);
      if (m.errType === 0xffff) {
        w.u16(m.errCode);
        w.u32(m.experimenter ?? 0);
      } else w.u16(m.errCode);
      w.bytes(m.data);
      return finish(w, s);
    }
    case 'echo_request':
    case 'echo_reply': {
      const s = header(w, m.type === 'echo_request' ? OFPT.ECHO_REQUEST : OFPT.ECHO_REPLY, m.xid);
      w.bytes(m.data);
      return finish(w, s);
    }
    case 'features_request':
      return finish(w, header(w, OFPT.FEATURES_REQUEST, m.xid));
    case 'features_reply': {
      const s = header(w, OFPT.FEATURES_REPLY, m.xid);
      w.u64(m.datapathId);
      w.u32(m.nBuffers);
      w.u8(m.nTables);
      w.u8(m.auxiliaryId);
      w.zeros(2);
      w.u32(m.capabilities);
      w.u32(0);
      return finish(w, s);
    }
    case 'get_config_request':
      return finish(w, header(w, OFPT.GET_CONFIG_REQUEST, m.xid));
    case 'get_config_reply':
    case 'set_config': {
      const s = header(w, m.type === 'set_config' ? OFPT.SET_CONFIG : OFPT.GET_CONFIG_REPLY, m.xid);
      w.u16(m.flags);
      w.u16(m.missSendLen);
      return finish(w, s);
    }
    case 'barrier_request':
      return finish(w, header(w, OFPT.BARRIER_REQUEST, m.xid));
    case 'barrier_reply':
      return finish(w, header(w, OFPT.BARRIER_REPLY, m.xid));
    case 'flow_mod': {
      const s = header(w, OFPT.FLOW_MOD, m.xid);
      writeFlowModBody(w, m);
      return finish(w, s);
    }
    case 'group_mod': {
      const s = header(w, OFPT.GROUP_MOD, m.xid);
      w.u16(m.command);
      w.u8(m.groupType);
      w.zeros(1);
      w.u32(m.groupId);
      writeBuckets(w, m.buckets);
      return finish(w, s);
    }
    case 'meter_mod': {
      const s = header(w, OFPT.METER_MOD, m.xid);
      w.u16(m.command);
      w.u16(m.flags);
      w.u32(m.meterId);
      for (const b of m.bands) {
        w.u16(b.bandType);
        w.u16(16);
        w.u32(b.rate);
        w.u32(b.burstSize);
        if (b.bandType === OFPMBT.DSCP_REMARK) {
          w.u8(b.precLevel ?? 0);
          w.zeros(3);
        } else w.zeros(4);
      }
      return finish(w, s);
    }
    case 'packet_in': {
      const s = header(w, OFPT.PACKET_IN, m.xid);
      w.u32(m.bufferId);
      w.u16(m.totalLen);
      w.u8(m.reason);
      w.u8(m.tableId);
      w.u64(m.cookie);
      writeMatch(w, m.match);
      w.zeros(2);
      w.bytes(m.data);
      return finish(w, s);
    }
    case 'packet_out': {
      if (encodeOutputPacketOut(w, m)) return;
      const s = header(w, OFPT.PACKET_OUT, m.xid);
      w.u32(m.bufferId);
      w.u32(m.inPort);
      const lenAt = w.pos;
      w.u16(0);
      w.zeros(6);
      const a0 = w.pos;
      writeActions(w, m.actions);
      w.set16(lenAt, w.pos - a0);
      w.bytes(m.data);
      return finish(w, s);
    }
    case 'flow_removed': {
      const s = header(w, OFPT.FLOW_REMOVED, m.xid);
      w.u64(m.cookie);
      w.u16(m.priority);
      w.u8(m.reason);
      w.u8(m.tableId);
      w.u32(m.durationSec);
      w.u32(m.durationNsec);
      w.u16(m.idleTimeout);
      w.u16(m.hardTimeout);
      w.u64(m.packetCount);
      w.u64(m.byteCount);
      writeMatch(w, m.match);
      return finish(w, s);
    }
    case 'port_status': {
      const s = header(w, OFPT.PORT_STATUS, m.xid);
      w.u8(m.reason);
      w.zeros(7);
      writePort(w, m.port);
      return finish(w, s);
    }
    case 'multipart_request': {
      const s = header(w, OFPT.MULTIPART_REQUEST, m.xid);
      const b = m.body;
      w.u16(b.mpType);
      w.u16(m.flags);
      w.zeros(4);
      if (b.mpType === OFPMP.FLOW || b.mpType === OFPMP.AGGREGATE) writeFlowStatsRequest(w, b);
      else if (b.mpType === OFPMP.PORT_STATS) {
        w.u32(b.portNo);
        w.zeros(4);
      } else if (b.mpType === OFPMP.GROUP) {
        w.u32(b.groupId);
        w.zeros(4);
      }
      return finish(w, s);
    }
    case 'multipart_reply': {
      const s = header(w, OFPT.MULTIPART_REPLY, m.xid);
      w.u16(m.body.mpType);
      w.u16(m.flags);
      w.zeros(4);
      writeMultipartReply(w, m.body);
      return finish(w, s);
    }
    case 'role_request':
    case 'role_reply': {
      const s = header(w, m.type === 'role_request' ? OFPT.ROLE_REQUEST : OFPT.ROLE_REPLY, m.xid);
      w.u32(m.role);
      w.zeros(4);
      w.u64(m.generationId);
      return finish(w, s);
    }
    case 'bundle_control': {
      const s = header(w, OFPT.EXPERIMENTER, m.xid);
      w.u32(ONF_VENDOR_ID);
      w.u32(ONFT_BUNDLE_CONTROL);
      w.u32(m.bundleId);
      w.u16(m.ctrlType);
      w.u16(m.flags);
      return finish(w, s);
    }
    case 'bundle_add': {
      const s = header(w, OFPT.EXPERIMENTER, m.xid);
      w.u32(ONF_VENDOR_ID);
      w.u32(ONFT_BUNDLE_ADD_MESSAGE);
      w.u32(m.bundleId);
      w.u16(0);
      w.u16(m.flags);
      const inner = w.pos;
      if (m.message instanceof Uint8Array) w.bytes(m.message);
      else encodeOne(w, m.message);
      // The bundled message carries the outer xid (EXT-230; OVS rejects anything else).
      w.buf.writeUInt32BE(m.xid >>> 0, inner + 4);
      return finish(w, s);
    }
    case 'unknown': {
      const s = header(w, m.msgType, m.xid);
      w.bytes(m.body);
      return finish(w, s);
    }
  }
}

const scratch = new Writer(1 << 16);

/** Encodes one message into a fresh Buffer. For bulk sends, use encodeInto() on a shared Writer. */
export function encodeMessage(m: OfMessage): Buffer {
  encodeInto(scratch, m);
  return scratch.copyOut();
}

// ---- decode ---------------------------------------------------------------------------------

function fixedLen(type: string, len: number, want: number): void {
  if (len !== want) throw new OpenFlowDecodeError(`${type}: length ${len}, expected ${want}`, { type, len, want });
}

/**
 * The next record of a list whose records start with their own u16 length
 * (buckets, flow stats, group stats, group desc), as a reader bounded to it.
 */
function nextRecord(r: Reader, what: string, valid: (len: number) => boolean): Reader {
  const start = r.pos;
  const len = r.u16();
  if (!valid(len)) throw new OpenFlowDecodeError(`${what} length ${len} invalid`, { len });
  r.pos = start;
  return r.sub(len, what);
}

function readBuckets(r: Reader): Bucket[] {
  const out: Bucket[] = [];
  while (r.left > 0) {
    const b = nextRecord(r, 'bucket', (len) => len >= 16 && len % 8 === 0);
    b.skip(2);
    const weight = b.u16();
    const watchPort = b.u32();
    const watchGroup = b.u32();
    b.skip(4);
    out.push({ weight, watchPort, watchGroup, actions: readActionList(b) });
  }
  return out;
}

function readCString(b: Buffer): string {
  const nul = b.indexOf(0);
  return b.toString('latin1', 0, nul < 0 ? b.length : nul);
}

function readPort(r: Reader): PortDesc {
  const portNo = r.u32();
  r.skip(4);
  const hwAddr = r.bytes(6);
  r.skip(2);
  const name = readCString(r.bytes(16));
  const v: number[] = [];
  for (let i = 0; i < 8; i++) v.push(r.u32());
  return {
    portNo,
    hwAddr,
    name,
    config: v[0]!,
    state: v[1]!,
    curr: v[2]!,
    advertised: v[3]!,
    supported: v[4]!,
    peer: v[5]!,
    currSpeed: v[6]!,
    maxSpeed: v[7]!,
  };
}

function readFlowStatsRequest(r: Reader): FlowStatsRequest {
  const tableId = r.u8();
  r.skip(3);
  const outPort = r.u32();
  const outGroup = r.u32();
  r.skip(4);
  const cookie = r.u64();
  const cookieMask = r.u64();
  return { tableId, outPort, outGroup, cookie, cookieMask, match: readMatch(r) };
}

function readMultipartRequest(r: Reader, mpType: number): MultipartRequestBody {
  switch (mpType) {
    case OFPMP.DESC:
    case OFPMP.TABLE:
    case OFPMP.GROUP_DESC:
    case OFPMP.PORT_DESC:
      return { mpType } as MultipartRequestBody;
    case OFPMP.FLOW:
    case OFPMP.AGGREGATE:
      return { mpType, ...readFlowStatsRequest(r) };
    case OFPMP.PORT_STATS: {
      const portNo = r.u32();
      r.skip(4);
      return { mpType, portNo };
    }
    case OFPMP.GROUP: {
      const groupId = r.u32();
      r.skip(4);
      return { mpType, groupId };
    }
    default:
      throw new OpenFlowDecodeError(`unsupported multipart request type ${mpType}`, { mpType });
  }
}

function readMultipartReply(r: Reader, mpType: number): MultipartReplyBody {
  switch (mpType) {
    case OFPMP.DESC:
      return {
        mpType,
        mfr: readCString(r.bytes(256)),
        hw: readCString(r.bytes(256)),
        sw: readCString(r.bytes(256)),
        serial: readCString(r.bytes(32)),
        dp: readCString(r.bytes(256)),
      };
    case OFPMP.FLOW: {
      const flows: FlowStats[] = [];
      while (r.left > 0) {
        const f = nextRecord(r, 'flow stats', (len) => len >= 56);
        f.skip(2);
        const tableId = f.u8();
        f.skip(1);
        const durationSec = f.u32();
        const durationNsec = f.u32();
        const priority = f.u16();
        const idleTimeout = f.u16();
        const hardTimeout = f.u16();
        const flags = f.u16();
        f.skip(4);
        const cookie = f.u64();
        const packetCount = f.u64();
        const byteCount = f.u64();
        const match = readMatch(f);
        flows.push({
          tableId,
          durationSec,
          durationNsec,
          priority,
          idleTimeout,
          hardTimeout,
          flags,
          cookie,
          packetCount,
          byteCount,
          match,
          instructions: readInstructions(f),
        });
      }
      return { mpType, flows };
    }
    case OFPMP.AGGREGATE: {
      const packetCount = r.u64();
      const byteCount = r.u64();
      const flowCount = r.u32();
      r.skip(4);
      return { mpType, packetCount, byteCount, flowCount };
    }
    case OFPMP.TABLE: {
      const tables: TableStats[] = [];
      while (r.left > 0) {
        const tableId = r.u8();
        r.skip(3);
        tables.push({ tableId, activeCount: r.u32(), lookupCount: r.u64(), matchedCount: r.u64() });
      }
      return { mpType, tables };
    }
    case OFPMP.PORT_STATS: {
      const ports: PortStats[] = [];
      while (r.left > 0) {
        const portNo = r.u32();
        r.skip(4);
        const counters: bigint[] = [];
        for (let i = 0; i < 12; i++) counters.push(r.u64());
        ports.push({ portNo, counters, durationSec: r.u32(), durationNsec: r.u32() });
      }
      return { mpType, ports };
    }
    case OFPMP.GROUP: {
      const groups: GroupStats[] = [];
      while (r.left > 0) {
        const g = nextRecord(r, 'group stats', (len) => len >= 40 && (len - 40) % 16 === 0);
        g.skip(4);
        const groupId = g.u32();
        const refCount = g.u32();
        g.skip(4);
        const packetCount = g.u64();
        const byteCount = g.u64();
        const durationSec = g.u32();
        const durationNsec = g.u32();
        const buckets: GroupStats['buckets'] = [];
        while (g.left > 0) buckets.push({ packetCount: g.u64(), byteCount: g.u64() });
        groups.push({ groupId, refCount, packetCount, byteCount, durationSec, durationNsec, buckets });
      }
      return { mpType, groups };
    }
    case OFPMP.GROUP_DESC: {
      const groups: GroupDesc[] = [];
      while (r.left > 0) {
        const g = nextRecord(r, 'group desc', (len) => len >= 8);
        g.skip(2);
        const groupType = g.u8();
        g.skip(1);
        const groupId = g.u32();
        groups.push({ groupType, groupId, buckets: readBuckets(g) });
      }
      return { mpType, groups };
    }
    case OFPMP.PORT_DESC: {
      const ports: PortDesc[] = [];
      while (r.left > 0) ports.push(readPort(r));
      return { mpType, ports };
    }
    default:
      throw new OpenFlowDecodeError(`unsupported multipart reply type ${mpType}`, { mpType });
  }
}

export function readFlowModBody(r: Reader): FlowMod {
  const cookie = r.u64();
  const cookieMask = r.u64();
  const tableId = r.u8();
  const command = r.u8();
  const idleTimeout = r.u16();
  const hardTimeout = r.u16();
  const priority = r.u16();
  const bufferId = r.u32();
  const outPort = r.u32();
  const outGroup = r.u32();
  const flags = r.u16();
  r.skip(2);
  const match = readMatch(r);
  return {
    cookie,
    cookieMask,
    tableId,
    command,
    idleTimeout,
    hardTimeout,
    priority,
    bufferId,
    outPort,
    outGroup,
    flags,
    match,
    instructions: readInstructions(r),
  };
}

/**
 * Decodes exactly one frame. `frame.length` must equal the header's length
 * (framing.ts guarantees it); values are views into `frame`, not copies.
 */
export function decodeMessage(frame: Buffer): OfMessage {
  return decodeFrame(frame, 0, frame.length);
}

/** decodeMessage() of the frame buf[start, end), without making a view of it first. */
export function decodeFrame(buf: Buffer, start: number, end: number): OfMessage {
  const flen = end - start;
  if (start < 0 || end > buf.length || flen < OFP_HEADER_LEN) throw new OpenFlowDecodeError(`frame of ${flen} bytes is shorter than a header`, {});
  const version = buf[start]!;
  const type = buf[start + 1]!;
  const len = (buf[start + 2]! << 8) | buf[start + 3]!;
  const xid = ((buf[start + 4]! << 24) | (buf[start + 5]! << 16) | (buf[start + 6]! << 8) | buf[start + 7]!) >>> 0;
  if (len !== flen) throw new OpenFlowDecodeError(`header length ${len} != frame length ${flen}`, { len, frameLen: flen });
  // HELLO may carry any version (negotiation); everything else must be 1.3.
  if (version !== OFP_VERSION && type !== OFPT.HELLO) {
    throw new OpenFlowDecodeError(`unsupported OpenFlow version 0x${version.toString(16)}`, { version, type, xid });
  }
  const r = new Reader(buf, start + 8, end, 'message');
  try {
    // packet_in is the hot message: a small function of its own stays optimised, the big switch may not.
    return type === OFPT.PACKET_IN ? decodePacketIn(r, xid) : decodeBody(r, type, xid, len, version);
  } catch (e) {
    if (e instanceof OpenFlowDecodeError) {
      e.context.msgType = type;
      e.context.xid = xid;
      throw e;
    }
    // Anything else is a bug in a decoder; still never let it escape untyped.
    throw new OpenFlowDecodeError(`malformed message type ${type}: ${(e as Error).message}`, { msgType: type, xid });
  }
}

/** The packet_in member of OfMessage. */
export type PacketIn = Extract<OfMessage, { type: 'packet_in' }>;

/**
 * A decoded packet_in: a view over its frame. The fixed fields are read at decode time and the
 * whole frame is checked then (so nothing can fail later); `match` and `data` are built on first
 * access. A handler that takes the in_port with packetInPort() and echoes `data` in a packet_out
 * allocates one view instead of a match array, an OXM object and its value view. Both are
 * accessors on the prototype and can be assigned; spreading (`{ ...m }`) does not copy them.
 */
class DecodedPacketIn {
  readonly type = 'packet_in' as const;
  #match: Match | undefined = undefined;
  #data: Uint8Array | undefined = undefined;
  readonly #frame: Buffer;
  readonly #matchAt: number;
  readonly #dataAt: number;
  readonly #end: number;
  /** Frame offset of the unmasked in_port value, -1 if none (or once match was replaced). */
  #inPortAt: number;

  constructor(
    public xid: number,
    public bufferId: number,
    public totalLen: number,
    public reason: number,
    public tableId: number,
    public cookie: bigint,
    frame: Buffer,
    matchAt: number,
    dataAt: number,
    end: number,
    inPortAt: number,
  ) {
    this.#frame = frame;
    this.#matchAt = matchAt;
    this.#dataAt = dataAt;
    this.#end = end;
    this.#inPortAt = inPortAt;
  }

  get match(): Match {
    // Checked by checkMatch() at decode time: cannot throw here.
    return (this.#match ??= readMatch(new Reader(this.#frame, this.#matchAt, this.#dataAt - 2, 'message')));
  }

  set match(m: Match) {
    this.#match = m;
    this.#inPortAt = -1;
  }

  get data(): Uint8Array {
    const f = this.#frame;
    return (this.#data ??= new Uint8Array(f.buffer, f.byteOffset + this.#dataAt, this.#end - this.#dataAt));
  }

  set data(d: Uint8Array) {
    this.#data = d;
  }

  /** in_port straight from the frame (undefined when not there or match was replaced). */
  frameInPort(): number | undefined {
    const p = this.#inPortAt;
    if (p < 0) return undefined;
    const b = this.#frame;
    return ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
  }
}

/**
 * The packet's ingress port: the unmasked in_port of the packet_in's match, or undefined.
 * On a decoded packet_in this reads the frame without building the match.
 */
export function packetInPort(m: PacketIn): number | undefined {
  if (m instanceof DecodedPacketIn) {
    const p = m.frameInPort();
    if (p !== undefined) return p;
  }
  for (const t of m.match) {
    if (t.field.name === 'in_port' && !t.mask) {
      const v = t.value;
      return ((v[0]! << 24) | (v[1]! << 16) | (v[2]! << 8) | v[3]!) >>> 0;
    }
  }
  return undefined;
}

function decodePacketIn(r: Reader, xid: number): OfMessage {
  const bufferId = r.u32();
  const totalLen = r.u16();
  const reason = r.u8();
  const tableId = r.u8();
  const cookie = r.u64();
  const matchAt = r.pos;
  const inPortAt = checkMatch(r);
  r.skip(2);
  return new DecodedPacketIn(xid, bufferId, totalLen, reason, tableId, cookie, r.buf, matchAt, r.pos, r.end, inPortAt);
}

function decodeBody(r: Reader, type: number, xid: number, len: number, version: number): OfMessage {
  switch (type) {
    case OFPT.HELLO: {
      const versions: number[] = [];
      while (r.left >= 4) {
        const et = r.u16();
        const el = r.u16();
        if (el < 4) throw new OpenFlowDecodeError(`hello element length ${el} < 4`, { el });
        const body = r.sub(el - 4, 'hello element');
        r.skip(Math.min(r.left, ((el + 7) & ~7) - el));
        if (et === 1) {
          for (let word = 0; body.left >= 4; word++) {
            const bits = body.u32();
            for (let b = 0; b < 32; b++) if (bits & (1 << b)) versions.push(word * 32 + b);
          }
        }
      }
      if (!versions.length) versions.push(version);
      return { type: 'hello', xid, versions };
    }
    case OFPT.ERROR: {
      const errType = r.u16();
      const errCode = r.u16();
      if (errType === 0xffff) {
        const experimenter = r.u32();
        return { type: 'error', xid, errType, errCode, experimenter, data: r.bytes(r.left) };
      }
      return { type: 'error', xid, errType, errCode, data: r.bytes(r.left) };
    }
    case OFPT.ECHO_REQUEST:
      return { type: 'echo_request', xid, data: r.bytes(r.left) };
    case OFPT.ECHO_REPLY:
      return { type: 'echo_reply', xid, data: r.bytes(r.left) };
    case OFPT.FEATURES_REQUEST:
      fixedLen('features_request', len, 8);
      return { type: 'features_request', xid };
    case OFPT.FEATURES_REPLY: {
      fixedLen('features_reply', len, 32);
      const datapathId = r.u64();
      const nBuffers = r.u32();
      const nTables = r.u8();
      const auxiliaryId = r.u8();
      r.skip(2);
      return { type: 'features_reply', xid, datapathId, nBuffers, nTables, auxiliaryId, capabilities: r.u32() };
    }
    case OFPT.GET_CONFIG_REQUEST:
      fixedLen('get_config_request', len, 8);
      return { type: 'get_config_request', xid };
    case OFPT.GET_CONFIG_REPLY:
    case OFPT.SET_CONFIG: {
      fixedLen('config', len, 12);
      const flags = r.u16();
      return { type: type === OFPT.SET_CONFIG ? 'set_config' : 'get_config_reply', xid, flags, missSendLen: r.u16() };
    }
    case OFPT.BARRIER_REQUEST:
      fixedLen('barrier_request', len, 8);
      return { type: 'barrier_request', xid };
    case OFPT.BARRIER_REPLY:
      fixedLen('barrier_reply', len, 8);
      return { type: 'barrier_reply', xid };
    case OFPT.FLOW_MOD:
      return { type: 'flow_mod', xid, ...readFlowModBody(r) };
    case OFPT.GROUP_MOD: {
      const command = r.u16();
      const groupType = r.u8();
      r.skip(1);
      const groupId = r.u32();
      return { type: 'group_mod', xid, command, groupType, groupId, buckets: readBuckets(r) };
    }
    case OFPT.METER_MOD: {
      const command = r.u16();
      const flags = r.u16();
      const meterId = r.u32();
      const bands: MeterBand[] = [];
      while (r.left > 0) {
        const bandType = r.u16();
        const bl = r.u16();
        if (bl !== 16) throw new OpenFlowDecodeError(`meter band length ${bl} != 16`, { bl });
        const rate = r.u32();
        const burstSize = r.u32();
        if (bandType === OFPMBT.DSCP_REMARK) {
          bands.push({ bandType, rate, burstSize, precLevel: r.u8() });
          r.skip(3);
        } else {
          bands.push({ bandType, rate, burstSize });
          r.skip(4);
        }
      }
      return { type: 'meter_mod', xid, command, flags, meterId, bands };
    }
    case OFPT.PACKET_IN:
      return decodePacketIn(r, xid);
    case OFPT.PACKET_OUT: {
      const bufferId = r.u32();
      const inPort = r.u32();
      const actionsLen = r.u16();
      r.skip(6);
      const actions = readActionList(r.sub(actionsLen, 'packet_out actions'));
      return { type: 'packet_out', xid, bufferId, inPort, actions, data: r.view(r.left) };
    }
    case OFPT.FLOW_REMOVED: {
      const cookie = r.u64();
      const priority = r.u16();
      const reason = r.u8();
      const tableId = r.u8();
      const durationSec = r.u32();
      const durationNsec = r.u32();
      const idleTimeout = r.u16();
      const hardTimeout = r.u16();
      const packetCount = r.u64();
      const byteCount = r.u64();
      const match = readMatch(r);
      return {
        type: 'flow_removed',
        xid,
        cookie,
        priority,
        reason,
        tableId,
        durationSec,
        durationNsec,
        idleTimeout,
        hardTimeout,
        packetCount,
        byteCount,
        match,
      };
    }
    case OFPT.PORT_STATUS: {
      fixedLen('port_status', len, 80);
      const reason = r.u8();
      r.skip(7);
      return { type: 'port_status', xid, reason, port: readPort(r) };
    }
    case OFPT.MULTIPART_REQUEST:
    case OFPT.MULTIPART_REPLY: {
      const mpType = r.u16();
      const flags = r.u16();
      r.skip(4);
      if (type === OFPT.MULTIPART_REQUEST) return { type: 'multipart_request', xid, flags, body: readMultipartRequest(r, mpType) };
      return { type: 'multipart_reply', xid, flags, body: readMultipartReply(r, mpType) };
    }
    case OFPT.ROLE_REQUEST:
    case OFPT.ROLE_REPLY: {
      fixedLen('role', len, 24);
      const role = r.u32();
      r.skip(4);
      return { type: type === OFPT.ROLE_REQUEST ? 'role_request' : 'role_reply', xid, role, generationId: r.u64() };
    }
    case OFPT.EXPERIMENTER: {
      const experimenter = r.u32();
      const expType = r.u32();
      if (experimenter === ONF_VENDOR_ID && expType === ONFT_BUNDLE_CONTROL) {
        const bundleId = r.u32();
        const ctrlType = r.u16();
        const flags = r.u16();
        r.skip(r.left); // properties (none used by OVS for 1.3)
        return { type: 'bundle_control', xid, bundleId, ctrlType, flags };
      }
      if (experimenter === ONF_VENDOR_ID && expType === ONFT_BUNDLE_ADD_MESSAGE) {
        const bundleId = r.u32();
        r.skip(2);
        const flags = r.u16();
        r.need(8, 'bundled message header');
        const innerLen = r.buf.readUInt16BE(r.pos + 2);
        if (innerLen < 8) throw new OpenFlowDecodeError(`bundled message length ${innerLen} < 8`, { innerLen });
        const inner = r.bytes(innerLen, 'bundled message');
        return { type: 'bundle_add', xid, bundleId, flags, message: decodeMessage(inner) };
      }
      r.pos -= 8; // keep the experimenter header in the raw body
      return { type: 'unknown', xid, msgType: type, body: r.bytes(r.left) };
    }
    default:
      return { type: 'unknown', xid, msgType: type, body: r.bytes(r.left) };
  }
}
