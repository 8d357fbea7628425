/**
 * Small, allocation-conscious builders for the codec's own FlowMod / GroupMod
 * objects. Values shared by many flows (a network's metadata TLV, an endpoint's
 * MAC TLV) are built once and reused: flows are treated as immutable.
 */
import {
  fieldByName,
  OFPP,
  parseFlow,
  NX_CT_F_COMMIT,
  NX_CT_RECIRC_NONE,
  type Action,
  type Bucket,
  type FlowMod,
  type GroupMod,
  type Instruction,
  type OxmField,
  type OxmTlv,
  OFP_NO_BUFFER,
  OFPFC,
  OFPG_ANY,
  OFPGC,
  OFPGT,
} from '../openflow/index.js';
import { macToBytes } from '../util/mac.js';

function f(name: string): OxmField {
  const x = fieldByName(name);
  if (!x) throw new Error(`codec has no field ${name}`);
  return x;
}

export const FLD = {
  in_port: f('in_port'),
  tun_id: f('tun_id'),
  metadata: f('metadata'),
  reg10: f('reg10'),
  reg11: f('reg11'),
  reg13: f('reg13'),
  reg14: f('reg14'),
  reg15: f('reg15'),
  dl_src: f('dl_src'),
  dl_dst: f('dl_dst'),
  dl_type: f('dl_type'),
  nw_src: f('nw_src'),
  nw_dst: f('nw_dst'),
  ipv6_src: f('ipv6_src'),
  ipv6_dst: f('ipv6_dst'),
  nw_proto: f('nw_proto'),
  tcp_src: f('tcp_src'),
  tcp_dst: f('tcp_dst'),
  udp_src: f('udp_src'),
  udp_dst: f('udp_dst'),
  arp_op: f('arp_op'),
  arp_spa: f('arp_spa'),
  arp_tpa: f('arp_tpa'),
  arp_sha: f('arp_sha'),
  arp_tha: f('arp_tha'),
  ct_state: f('ct_state'),
} as const;

export const ETH = { IP: 0x0800, IP6: 0x86dd, ARP: 0x0806 } as const;

// Values are a few bytes each and never mutated once in a flow, so they are carved from
// shared slabs (as the codec's parser does): a typed array with an ArrayBuffer of its own
// costs twice the memory and, at ~400k values per full compile, ~0.5 s of allocation and
// GC (an ArrayBuffer is also tracked by the scavenger). A slab lives while any value cut
// from it does: at most 16 KiB held per live value.
const SLAB = 16 * 1024;
let slab = new ArrayBuffer(SLAB);
let slabPos = 0;
/** n zeroed bytes, a view into a shared slab. Callers must not mutate them once used in a flow. */
export function bytes(n: number): Uint8Array {
  if (slabPos + n > SLAB) {
    slab = new ArrayBuffer(SLAB);
    slabPos = 0;
  }
  const b = new Uint8Array(slab, slabPos, n);
  slabPos += n;
  return b;
}

export function u16(v: number): Uint8Array {
  const b = bytes(2);
  b[0] = v >>> 8;
  b[1] = v;
  return b;
}
export function u32(v: number): Uint8Array {
  const b = bytes(4);
  b[0] = v >>> 24;
  b[1] = v >>> 16;
  b[2] = v >>> 8;
  b[3] = v;
  return b;
}
// Byte arrays are never mutated once in a flow, so small values (ofports, logical
// port keys) share one array each: a 100k-endpoint compile otherwise allocates
// millions of 4-byte Uint8Arrays, and GC was half its time.
// Preallocated: assigning index 30000 of an empty array turns it into a dictionary (hash) array.
const U32_SMALL = new Array<Uint8Array | undefined>(0x10000);
/** u32(v), shared for v < 65536. Callers must not mutate the result. */
export function u32s(v: number): Uint8Array {
  if (v >= 0 && v < 0x10000) return (U32_SMALL[v] ??= u32(v));
  return u32(v);
}
export function u64(v: number): Uint8Array {
  const hi = Math.floor(v / 0x100000000);
  const lo = v >>> 0;
  const out = bytes(8);
  out[0] = hi >>> 24;
  out[1] = hi >>> 16;
  out[2] = hi >>> 8;
  out[3] = hi;
  out[4] = lo >>> 24;
  out[5] = lo >>> 16;
  out[6] = lo >>> 8;
  out[7] = lo;
  return out;
}
/** A validated MAC's bytes (the model only holds valid ones; a bad one is a bug, so it throws). */
export function mac(s: string): Uint8Array {
  const b = macToBytes(s, bytes(6));
  if (!b) throw new TypeError(`not a MAC address: "${s}"`);
  return b;
}
export function ip6bytes(v: bigint): Uint8Array {
  const out = bytes(16);
  for (let i = 15; i >= 0; i--) {
    out[i] = Number(v & 255n);
    v >>= 8n;
  }
  return out;
}
function allOnes(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 255) return false;
  return true;
}

/** A TLV as the codec stores it: value already masked, all-ones mask dropped. */
export function tlv(field: OxmField, value: Uint8Array, mask?: Uint8Array): OxmTlv {
  if (!mask || allOnes(mask)) return { field, value };
  const v = bytes(value.length);
  for (let i = 0; i < v.length; i++) v[i] = value[i]! & mask[i]!;
  return { field, value: v, mask };
}

const ETH_TLV = {
  ip: tlv(FLD.dl_type, u16(ETH.IP)),
  ip6: tlv(FLD.dl_type, u16(ETH.IP6)),
  arp: tlv(FLD.dl_type, u16(ETH.ARP)),
};
export const M = {
  ip: ETH_TLV.ip,
  ip6: ETH_TLV.ip6,
  arp: ETH_TLV.arp,
  arpRequest: tlv(FLD.arp_op, u16(1)),
  tcp: tlv(FLD.nw_proto, Uint8Array.of(6)),
  udp: tlv(FLD.nw_proto, Uint8Array.of(17)),
  icmp: tlv(FLD.nw_proto, Uint8Array.of(1)),
  icmp6: tlv(FLD.nw_proto, Uint8Array.of(58)),
  // ct_state bits: new=0 est=1 rel=2 rpl=3 inv=4 trk=5
  ctNewTrk: tlv(FLD.ct_state, u32(0x21), u32(0x21)),
  fromTunnel: tlv(FLD.reg10, u32(1), u32(1)),
  notFromTunnel: tlv(FLD.reg10, u32(0), u32(1)),
  multicast: tlv(FLD.dl_dst, mac('01:00:00:00:00:00'), mac('01:00:00:00:00:00')),
} as const;

export function metadataTlv(vni: number): OxmTlv {
  return tlv(FLD.metadata, u64(vni));
}


/*
 * V8 keeps an object field that has only ever held numbers in "double" representation,
 * and then boxes the value in a HeapNumber owned by each object. bufferId, outPort and
 * outGroup (and a bucket's watchPort and watchGroup, a chain group's groupId) hold 0xffffffff, above the small-
 * integer range, so every compiled flow carried three 16-byte boxes of its own: over 3 M
 * allocations for the benchmark's 1 M distinct flows, ~15 % of the objects a full compile
 * makes. One object of each literal shape (same property names, same order: literals of
 * one shape share V8's hidden class) made at load time with non-number placeholders gives
 * these fields the general "tagged" representation, so every flow and bucket points at
 * the same constant instead. This changes no value anyone can observe.
 */
// OFPP is an object whose ANY field is itself a boxed double: each read of OFPP.ANY
// makes a fresh HeapNumber. Read it once.
const PORT_ANY: number = OFPP.ANY;

export const TAGGED_SHAPES: readonly unknown[] = [
  {
    cookie: 0n,
    cookieMask: 0n,
    tableId: 0,
    command: 0,
    idleTimeout: 0,
    hardTimeout: 0,
    priority: 0,
    bufferId: null,
    outPort: null,
    outGroup: null,
    flags: 0,
    match: null,
    instructions: null,
  },
  { weight: 0, watchPort: null, watchGroup: null, actions: null },
  { command: 0, groupType: 0, groupId: null, buckets: null },
];

export function flow(tableId: number, priority: number, cookie: bigint, match: OxmTlv[], instructions: Instruction[]): FlowMod {
  // The codec keeps match fields in OVS's wire order; most callers already list them so.
  // Otherwise a stable insertion sort in place (what Array.prototype.sort gives, without its
  // work array: a few fields, for every policy flow).
  for (let i = 1; i < match.length; i++) {
    const m = match[i]!;
    let j = i - 1;
    if (match[j]!.field.order <= m.field.order) continue;
    do {
      match[j + 1] = match[j]!;
      j--;
    } while (j >= 0 && match[j]!.field.order > m.field.order);
    match[j + 1] = m;
  }
  return {
    cookie,
    cookieMask: 0n,
    tableId,
    command: OFPFC.ADD,
    idleTimeout: 0,
    hardTimeout: 0,
    priority,
    bufferId: OFP_NO_BUFFER,
    outPort: PORT_ANY,
    outGroup: OFPG_ANY,
    flags: 0,
    match,
    instructions,
  };
}

const GOTO = new Map<number, Instruction>();
/** Shared goto_table instructions (flows are immutable, so one object per table serves all). */
export const goto = (table: number): Instruction => {
  let g = GOTO.get(table);
  if (!g) GOTO.set(table, (g = { type: 'goto_table', table }));
  return g;
};
export const apply = (actions: Action[]): Instruction => ({ type: 'apply_actions', actions });
export const writeMeta = (vni: number): Instruction => ({ type: 'write_metadata', metadata: BigInt(vni), mask: 0xffffffffffffffffn });
export const setField = (field: OxmField, value: Uint8Array): Action => ({ type: 'set_field', field, value });
const OUTPUTS = new Array<Action | undefined>(0x10000); // preallocated, see U32_SMALL
/** Output action; shared per port below 65536 (actions are immutable). */
export const output = (port: number): Action => (port >= 0 && port < 0x10000 ? (OUTPUTS[port] ??= { type: 'output', port, maxLen: 0 }) : { type: 'output', port, maxLen: 0 });

const zoneReg = { field: FLD.reg13, ofs: 0, nBits: 16 };
export const ctRecirc = (table: number): Action => ({ type: 'ct', flags: 0, zoneImm: 0, table, alg: 0, actions: [], zoneSrc: zoneReg });
export const CT_COMMIT: Action = { type: 'ct', flags: NX_CT_F_COMMIT, zoneImm: 0, table: NX_CT_RECIRC_NONE, alg: 0, actions: [], zoneSrc: zoneReg };
export const CT_CLEAR: Action = { type: 'ct_clear' };
export const DEC_TTL: Action = { type: 'dec_ttl' };
export const IN_PORT: Action = output(OFPP.IN_PORT);

/** ARP request -> reply, in place; the per-address set_fields go between these. */
export const ARP_SWAP = {
  ethSrcToDst: { type: 'move', src: { field: FLD.dl_src, ofs: 0, nBits: 48 }, dst: { field: FLD.dl_dst, ofs: 0, nBits: 48 } } as Action,
  opReply: setField(FLD.arp_op, u16(2)),
  shaToTha: { type: 'move', src: { field: FLD.arp_sha, ofs: 0, nBits: 48 }, dst: { field: FLD.arp_tha, ofs: 0, nBits: 48 } } as Action,
  spaToTpa: { type: 'move', src: { field: FLD.arp_spa, ofs: 0, nBits: 32 }, dst: { field: FLD.arp_tpa, ofs: 0, nBits: 32 } } as Action,
};

export function group(groupId: number, buckets: Action[][]): GroupMod {
  return allGroup(groupId, buckets.map(bucket));
}
/** A bucket of an ALL group (immutable once in a group, so one object can serve many groups). */
export function bucket(actions: Action[]): Bucket {
  return { weight: 0, watchPort: PORT_ANY, watchGroup: OFPG_ANY, actions };
}
/** An ALL group of ready buckets. */
export function allGroup(groupId: number, buckets: Bucket[]): GroupMod {
  return { command: OFPGC.ADD, groupType: OFPGT.ALL, groupId, buckets };
}

/** Flows that are the same on every host, written in ovs-ofctl syntax and parsed by the codec. */
export function parsedFlows(cookie: bigint, lines: string[]): FlowMod[] {
  return lines.map((l) => ({ ...parseFlow(l), cookie }));
}

/** [value, mask] pairs covering the inclusive port range (prefix decomposition). */
export function portMasks(lo: number, hi: number): [number, number][] {
  const out: [number, number][] = [];
  let p = lo;
  while (p <= hi) {
    let size = 1;
    while (size < 0x10000 && (p & (size * 2 - 1)) === 0 && p + size * 2 - 1 <= hi) size *= 2;
    out.push([p, 0xffff & ~(size - 1)]);
    p += size;
  }
  return out;
}
