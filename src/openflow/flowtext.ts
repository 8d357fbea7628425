/**
 * Flow text in ovs-ofctl's syntax (OpenFlow 1.3 flavour): parse
 * `table=..,priority=..,<match> actions=..` into a FlowMod and print a FlowMod
 * the way `ovs-ofctl --no-stats dump-flows` does. Field order on the wire and
 * in print follows OVS (nx_put_raw / match_format), so text -> bytes matches
 * what ovs-ofctl sends and bytes -> text matches what it prints.
 */
import { bytesToMac } from '../util/mac.js';
import {
  NX_CT_F_COMMIT,
  NX_CT_F_FORCE,
  NX_CT_RECIRC_NONE,
  NX_NAT_F_DST,
  NX_NAT_F_PERSISTENT,
  NX_NAT_F_PROTO_HASH,
  NX_NAT_F_PROTO_RANDOM,
  NX_NAT_F_SRC,
  OFPP,
  NX_LEARN_F_DELETE_LEARNED,
  NX_LEARN_F_SEND_FLOW_REM,
  type Action,
  type Instruction,
  type Learn,
  type Subfield,
} from './actions.js';
import { FlowSyntaxError } from './errors.js';
import { allocValue, bigToBytes, bytesToBig, fieldByName, isAllOnes, isAllZeros, type Match, type OxmField, type OxmTlv } from './fields.js';
import {
  OFP_NO_BUFFER,
  OFPFC,
  OFPG_ALL,
  OFPG_ANY,
  OFPGC,
  OFPGT,
  OFPMBT,
  OFPMC,
  OFPMF,
  type Bucket,
  type FlowMod,
  type GroupMod,
  type MeterBand,
  type MeterMod,
} from './messages.js';

const ETH_IP = 0x0800;
const ETH_IPV6 = 0x86dd;
const ETH_ARP = 0x0806;
const ETH_RARP = 0x8035;
const ETH_MPLS = 0x8847;
const ETH_MPLS_MC = 0x8848;

const PROTOCOLS = new Map<string, [number, number?]>(Object.entries({
  ip: [ETH_IP],
  ipv4: [ETH_IP],
  ipv6: [ETH_IPV6],
  icmp: [ETH_IP, 1],
  icmp6: [ETH_IPV6, 58],
  tcp: [ETH_IP, 6],
  tcp6: [ETH_IPV6, 6],
  udp: [ETH_IP, 17],
  udp6: [ETH_IPV6, 17],
  sctp: [ETH_IP, 132],
  sctp6: [ETH_IPV6, 132],
  arp: [ETH_ARP],
  rarp: [ETH_RARP],
  mpls: [ETH_MPLS],
  mplsm: [ETH_MPLS_MC],
} as Record<string, [number, number?]>));

const PORT_NAMES: Record<string, number> = Object.assign(Object.create(null) as Record<string, number>, {
  IN_PORT: OFPP.IN_PORT,
  TABLE: OFPP.TABLE,
  NORMAL: OFPP.NORMAL,
  FLOOD: OFPP.FLOOD,
  ALL: OFPP.ALL,
  CONTROLLER: OFPP.CONTROLLER,
  LOCAL: OFPP.LOCAL,
  ANY: OFPP.ANY,
  NONE: OFPP.ANY,
});
const PORT_BY_NUM = new Map<number, string>(
  Object.entries(PORT_NAMES)
    .filter(([k]) => k !== 'NONE')
    .map(([k, v]) => [v, k]),
);

const CT_STATES = ['new', 'est', 'rel', 'rpl', 'inv', 'trk', 'snat', 'dnat'];

const FLAG_NAMES: [string, number][] = [
  ['send_flow_rem', 1],
  ['check_overlap', 2],
  ['reset_counts', 4],
  ['no_packet_counts', 8],
  ['no_byte_counts', 16],
];

function fail(msg: string, context: Record<string, unknown> = {}): never {
  throw new FlowSyntaxError(msg, context);
}

// ---- numbers and addresses ------------------------------------------------------------------

export function parseUint(s: string, bits: number, what: string): bigint {
  let v: bigint;
  if (/^0x[0-9a-f]+$/i.test(s)) v = BigInt(s);
  else if (/^[0-9]+$/.test(s)) v = BigInt(s);
  else fail(`${what}: "${s}" is not a number`, { value: s });
  if (v >> BigInt(bits) !== 0n) fail(`${what}: ${s} does not fit in ${bits} bits`, { value: s, bits });
  return v;
}

/** An unsigned number as n big-endian bytes; values below 2^48 avoid BigInt. */
function uintBytes(s: string, bits: number, n: number, what: string): Uint8Array {
  const small = s.length <= 14 && (s.startsWith('0x') || s.startsWith('0X') ? /^0x[0-9a-f]{1,12}$/i.test(s) : /^[0-9]{1,14}$/.test(s));
  if (!small) return bigToBytes(parseUint(s, bits, what), n);
  let v = Number(s);
  if (v >= 2 ** 48) return bigToBytes(parseUint(s, bits, what), n);
  if (bits < 48 && v >= 2 ** bits) fail(`${what}: ${s} does not fit in ${bits} bits`, { value: s, bits });
  const out = allocValue(n);
  for (let i = n - 1; i >= 0 && v > 0; i--) {
    out[i] = v % 256;
    v = Math.floor(v / 256);
  }
  return out;
}

function parseNum(s: string, bits: number, what: string): number {
  // Fast path for plain decimals that fit easily in a double.
  if (bits <= 32 && s.length > 0 && s.length < 10 && /^[0-9]+$/.test(s)) {
    const v = Number(s);
    if (v < 2 ** bits) return v;
  }
  return Number(parseUint(s, bits, what));
}

/** Like util/mac's macToBytes, but into the value slab: this runs once per MAC of every parsed flow. */
function parseMac(s: string, what: string): Uint8Array {
  const m = /^([0-9a-f]{1,2}):([0-9a-f]{1,2}):([0-9a-f]{1,2}):([0-9a-f]{1,2}):([0-9a-f]{1,2}):([0-9a-f]{1,2})$/i.exec(s);
  if (!m) fail(`${what}: "${s}" is not an Ethernet address`, { value: s });
  const out = allocValue(6);
  for (let i = 0; i < 6; i++) out[i] = parseInt(m[i + 1]!, 16);
  return out;
}

export function parseIpv4(s: string, what: string): number {
  // Hand-rolled (hot when parsing big flow tables): four 1-3 digit parts <= 255.
  let v = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) fail(`${what}: "${s}" is not an IPv4 address`, { value: s });
    } else if (c === 46 && digits && dots < 3) {
      v = v * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else fail(`${what}: "${s}" is not an IPv4 address`, { value: s });
  }
  if (dots !== 3 || !digits) fail(`${what}: "${s}" is not an IPv4 address`, { value: s });
  return (v * 256 + part) >>> 0;
}

export function formatIpv4(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

function parseIpv6(s: string, what: string): Uint8Array {
  const bad = () => fail(`${what}: "${s}" is not an IPv6 address`, { value: s });
  let head = s;
  let tail4: number[] = [];
  const v4 = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    head = v4[1]! + '0:0';
    const n = parseIpv4(v4[2]!, what);
    tail4 = [n >>> 16, n & 0xffff];
  }
  const halves = head.split('::');
  if (halves.length > 2) bad();
  const grp = (x: string) => (x === '' ? [] : x.split(':'));
  const a = grp(halves[0]!);
  const b = halves.length === 2 ? grp(halves[1]!) : [];
  const total = a.length + b.length;
  if (halves.length === 1 ? total !== 8 : total > 7) bad();
  const words = [...a, ...Array(8 - total).fill('0'), ...b].map((x) => {
    if (!/^[0-9a-f]{1,4}$/i.test(x)) bad();
    return parseInt(x, 16);
  });
  if (tail4.length) words.splice(6, 2, tail4[0]!, tail4[1]!);
  const out = allocValue(16);
  words.forEach((w, i) => {
    out[i * 2] = w >> 8;
    out[i * 2 + 1] = w & 255;
  });
  return out;
}

/** RFC 5952 text, as inet_ntop prints it. */
export function formatIpv6(b: Uint8Array): string {
  const w: number[] = [];
  for (let i = 0; i < 16; i += 2) w.push((b[i]! << 8) | b[i + 1]!);
  let bestAt = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  // IPv4-mapped addresses print their tail dotted (glibc inet_ntop).
  if (bestAt === 0 && (bestLen === 6 || (bestLen === 5 && w[5] === 0xffff))) {
    const tail = `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
    return bestLen === 6 ? `::${tail}` : `::ffff:${tail}`;
  }
  const hex = w.map((x) => x.toString(16));
  if (bestAt < 0) return hex.join(':');
  return `${hex.slice(0, bestAt).join(':')}::${hex.slice(bestAt + bestLen).join(':')}`;
}

function u32Bytes(v: number): Uint8Array {
  const out = allocValue(4);
  out[0] = v >>> 24;
  out[1] = (v >>> 16) & 255;
  out[2] = (v >>> 8) & 255;
  out[3] = v & 255;
  return out;
}

function cidrLen(mask: Uint8Array): number {
  let n = 0;
  let i = 0;
  for (; i < mask.length && mask[i] === 0xff; i++) n += 8;
  if (i < mask.length) {
    const b = mask[i]!;
    let k = 0;
    while (k < 8 && b & (0x80 >> k)) k++;
    if (((0xff << (8 - k)) & 0xff) !== b) return -1;
    n += k;
    for (i++; i < mask.length; i++) if (mask[i] !== 0) return -1;
  }
  return n;
}

function prefixMask(bytes: number, len: number): Uint8Array {
  const out = allocValue(bytes);
  for (let i = 0; i < bytes; i++) {
    const bits = Math.max(0, Math.min(8, len - i * 8));
    out[i] = (0xff << (8 - bits)) & 0xff;
  }
  return out;
}

function hexTrim(v: bigint): string {
  return v === 0n ? '0' : `0x${v.toString(16)}`;
}

// ---- ports ----------------------------------------------------------------------------------

export function parsePort(s: string, what = 'port'): number {
  const named = PORT_NAMES[s.toUpperCase()];
  if (named !== undefined) return named;
  const n = parseNum(s, 32, what);
  // OpenFlow 1.0 numbers for reserved ports (0xfff8..0xffff) mean the same ports.
  if (n >= 0xff00 && n <= 0xffff) return (0xffff0000 | n) >>> 0;
  return n;
}

export function formatPort(p: number): string {
  return PORT_BY_NUM.get(p) ?? String(p);
}

// ---- match values ---------------------------------------------------------------------------

interface Parsed {
  value: Uint8Array;
  mask?: Uint8Array;
}

function splitMask(s: string): [string, string | undefined] {
  const i = s.indexOf('/');
  return i < 0 ? [s, undefined] : [s.slice(0, i), s.slice(i + 1)];
}

const TCP_FLAGS = ['fin', 'syn', 'rst', 'psh', 'ack', 'urg', 'ece', 'cwr', 'ns', '[200]', '[400]', '[800]'];

/** Flag fields (ct_state, tcp_flags): `+a-b` (masked), `a|b` (exact over `all`), or numbers. */
function parseFlags(s: string, names: readonly string[], all: bigint, bits: number, what: string): [bigint, bigint] {
  if (/^(0x[0-9a-f]+|[0-9]+)(\/(0x[0-9a-f]+|[0-9]+))?$/i.test(s)) {
    const [v, m] = splitMask(s);
    return [parseUint(v, bits, what), m === undefined ? all : parseUint(m, bits, what)];
  }
  let value = 0n;
  let mask = 0n;
  if (s[0] === '+' || s[0] === '-') {
    const re = /([+-])([a-z]+|\[[0-9]+\])/g;
    let consumed = 0;
    for (let m = re.exec(s); m; m = re.exec(s)) {
      const bit = names.indexOf(m[2]!);
      if (bit < 0) fail(`${what}: unknown flag "${m[2]}"`, { value: s });
      mask |= 1n << BigInt(bit);
      if (m[1] === '+') value |= 1n << BigInt(bit);
      consumed += m[0].length;
    }
    if (consumed !== s.length) fail(`${what}: cannot parse "${s}"`, { value: s });
    return [value, mask];
  }
  for (const name of s.split('|')) {
    const bit = names.indexOf(name);
    if (bit < 0) fail(`${what}: unknown flag "${name}"`, { value: s });
    value |= 1n << BigInt(bit);
  }
  return [value, all];
}

function formatFlags(v: bigint, m: bigint, names: readonly string[], all: bigint): string {
  if ((m & all) === all) {
    const set = names.filter((_, i) => (v >> BigInt(i)) & 1n);
    return set.length ? set.join('|') : '0';
  }
  let s = '';
  for (let i = 0; i < names.length; i++) if ((m >> BigInt(i)) & 1n) s += ((v >> BigInt(i)) & 1n ? '+' : '-') + names[i];
  return s || '0/0';
}

function parseCtState(s: string): [bigint, bigint] {
  return parseFlags(s, CT_STATES, 0xffn, 32, 'ct_state');
}

/** Parses the text value of a match field into wire bytes (value & mask, as OVS stores it). */
export function parseFieldValue(f: OxmField, text: string): Parsed {
  const [vs, ms] = splitMask(text);
  let value: Uint8Array;
  let mask: Uint8Array | undefined;
  const n = f.bytes;
  switch (f.kind) {
    case 'mac':
      value = parseMac(vs, f.name);
      if (ms !== undefined) mask = parseMac(ms, f.name);
      break;
    case 'ipv4': {
      value = u32Bytes(parseIpv4(vs, f.name));
      if (ms !== undefined) {
        mask = /^\d+$/.test(ms) ? (Number(ms) > 32 ? fail(`${f.name}: prefix /${ms} too long`) : prefixMask(4, Number(ms))) : u32Bytes(parseIpv4(ms, f.name));
      }
      break;
    }
    case 'ipv6':
      value = parseIpv6(vs, f.name);
      if (ms !== undefined) {
        mask = /^\d+$/.test(ms) ? (Number(ms) > 128 ? fail(`${f.name}: prefix /${ms} too long`) : prefixMask(16, Number(ms))) : parseIpv6(ms, f.name);
      }
      break;
    case 'port':
      if (ms !== undefined) fail(`${f.name} cannot be masked`);
      value = bigToBytes(BigInt(parsePort(vs, f.name)), 4);
      break;
    case 'ct_state': {
      const [v, m] = parseCtState(text);
      value = bigToBytes(v, 4);
      mask = bigToBytes(m, 4);
      break;
    }
    case 'tcp_flags': {
      // The exact form is an unmasked match (OVS's tcp_flags mask is 16 bits wide).
      const [v, m] = parseFlags(text, TCP_FLAGS, 0xffffn, 16, 'tcp_flags');
      value = bigToBytes(v, 2);
      mask = bigToBytes(m, 2);
      break;
    }
    case 'vid': {
      // dl_vlan=N: a tagged frame with VID N (OFPVID_PRESENT | N).
      const vid = parseNum(vs, 12, f.name);
      value = bigToBytes(BigInt(vid | 0x1000), 2);
      if (ms !== undefined) mask = bigToBytes(parseUint(ms, 16, f.name) | 0x1000n, 2);
      break;
    }
    case 'dscp': {
      const tos = parseNum(vs, 8, f.name);
      if (tos & 3) fail(`nw_tos: ${tos} has ECN bits set`, { value: text });
      value = allocValue(1);
      value[0] = tos >> 2;
      break;
    }
    default: {
      value = uintBytes(vs, f.bits, n, f.name);
      if (ms !== undefined) mask = uintBytes(ms, f.bits, n, f.name);
    }
  }
  if (mask && !f.maskable && !isAllOnes(mask)) fail(`${f.name} cannot be masked`, { value: text });
  if (mask) {
    if (isAllOnes(mask)) return { value };
    const v = allocValue(n);
    for (let i = 0; i < n; i++) v[i] = value[i]! & mask[i]!;
    return { value: v, mask };
  }
  return { value };
}

function formatIpMasked(v: Uint8Array, m: Uint8Array | undefined, v6: boolean): string {
  const addr = v6 ? formatIpv6(v) : formatIpv4(Number(bytesToBig(v)));
  if (!m) return addr;
  const len = cidrLen(m);
  if (len >= 0) return len === m.length * 8 ? addr : `${addr}/${len}`;
  return `${addr}/${v6 ? formatIpv6(m) : formatIpv4(Number(bytesToBig(m)))}`;
}

/** Formats a value the way OVS's match printer does for this field. */
export function formatFieldValue(f: OxmField, value: Uint8Array, mask?: Uint8Array): string {
  const v = bytesToBig(value);
  const m = mask ? bytesToBig(mask) : undefined;
  switch (f.kind) {
    case 'mac':
      return mask ? `${bytesToMac(value)}/${bytesToMac(mask)}` : bytesToMac(value);
    case 'ipv4':
      return formatIpMasked(value, mask, false);
    case 'ipv6':
      return formatIpMasked(value, mask, true);
    case 'port':
      return formatPort(Number(v));
    case 'ct_state':
      return formatFlags(v, m ?? 0xffffffffn, CT_STATES, 0xffn);
    case 'tcp_flags':
      return formatFlags(v, m ?? 0xffffn, TCP_FLAGS, 0xfffn);
    case 'hex128': {
      return m === undefined ? hexTrim(v) : `${hexTrim(v)}/${hexTrim(m)}`;
    }
    case 'label':
      return m === undefined ? `0x${v.toString(16).padStart(5, '0')}` : `0x${v.toString(16).padStart(5, '0')}/0x${m.toString(16).padStart(5, '0')}`;
    case 'vid':
      return String(Number(v) & 0xfff);
    case 'dscp':
      return String(Number(v) << 2);
    case 'hex':
      if (f.bytes === 2) return `0x${v.toString(16).padStart(4, '0')}`;
      return m === undefined ? hexTrim(v) : `${hexTrim(v)}/${hexTrim(m)}`;
    case 'dec':
      return m === undefined ? v.toString() : `0x${v.toString(16)}/0x${m.toString(16)}`;
  }
}

/** set_field / load values print through OVS's mf_format (no mask). */
/** set_field / learn values print through OVS's mf_format: plain decimal or minimal hex, no mask. */
function formatSetValue(f: OxmField, value: Uint8Array): string {
  if (f.kind === 'dec' || f.kind === 'vid') return bytesToBig(value).toString();
  if (f.kind === 'hex') return hexTrim(bytesToBig(value));
  return formatFieldValue(f, value);
}

// ---- match: parse ---------------------------------------------------------------------------

function tlvOf(match: Match, name: string): OxmTlv | undefined {
  for (const t of match) if (t.field.name === name) return t;
  return undefined;
}

function num(t: OxmTlv | undefined): number | undefined {
  return t ? Number(bytesToBig(t.value)) : undefined;
}

/** Transport / ICMP names depend on the protocol, resolved once the whole match is read. */
function resolveName(name: string, ethType: number | undefined, proto: number | undefined): string {
  const v6 = ethType === ETH_IPV6;
  if (name === 'tp_src' || name === 'tp_dst') {
    const end = name.slice(3);
    if (proto === 6) return `tcp_${end}`;
    if (proto === 17) return `udp_${end}`;
    if (proto === 132) return `sctp_${end}`;
    if (proto === 1 && !v6) return end === 'src' ? 'icmp_type' : 'icmp_code';
    if (proto === 58 && v6) return end === 'src' ? 'icmpv6_type' : 'icmpv6_code';
    fail(`${name} requires tcp, udp, sctp or icmp`, { field: name });
  }
  if ((name === 'icmp_type' || name === 'icmp_code') && v6) return name === 'icmp_type' ? 'icmpv6_type' : 'icmpv6_code';
  if (name === 'nw_src' && (ethType === ETH_ARP || ethType === ETH_RARP)) return 'arp_spa';
  if (name === 'nw_dst' && (ethType === ETH_ARP || ethType === ETH_RARP)) return 'arp_tpa';
  if (name === 'nw_proto' && (ethType === ETH_ARP || ethType === ETH_RARP)) return 'arp_op';
  return name;
}

export interface ParseOptions {
  /** Flow-mod command; defaults to add. */
  command?: number;
}

export interface ParsedFlowText {
  flow: FlowMod;
}

function splitTop(s: string, seps: string): string[] {
  const out: string[] = [];
  const comma = seps.includes(',');
  const space = seps.includes(' ');
  let depth = 0;
  let start = 0;
  for (let i = 0; i <= s.length; i++) {
    const ch = i < s.length ? s.charCodeAt(i) : -1;
    if (ch === 40) depth++;
    else if (ch === 41) {
      if (--depth < 0) fail(`unbalanced parentheses in "${s}"`, { text: s });
    } else if (ch === -1 || (depth === 0 && ((comma && ch === 44) || (space && (ch === 32 || ch === 9))))) {
      if (i > start) {
        const piece = s.slice(start, i).trim();
        if (piece) out.push(piece);
      }
      start = i + 1;
    }
  }
  if (depth !== 0) fail(`unbalanced parentheses in "${s}"`, { text: s });
  return out;
}

const IGNORED_STATS = new Set(['duration', 'n_packets', 'n_bytes', 'idle_age', 'hard_age']);

/** Parses one flow in ovs-ofctl syntax into a FlowMod (xid not included). */
export function parseFlow(text: string, opts: ParseOptions = {}): FlowMod {
  const idx = text.search(/(^|[\s,])actions?=/);
  let matchPart = text;
  let actPart: string | undefined;
  if (idx >= 0) {
    const eq = text.indexOf('=', idx);
    matchPart = text.slice(0, idx);
    actPart = text.slice(eq + 1).trim();
  }
  const command = opts.command ?? OFPFC.ADD;
  const isDelete = command === OFPFC.DELETE || command === OFPFC.DELETE_STRICT;
  if (actPart === undefined && !isDelete) fail('flow has no actions', { text });

  const fm: FlowMod = {
    cookie: 0n,
    cookieMask: 0n,
    tableId: isDelete ? 0xff : 0,
    command,
    idleTimeout: 0,
    hardTimeout: 0,
    priority: 0x8000,
    bufferId: OFP_NO_BUFFER,
    outPort: OFPP.ANY,
    outGroup: OFPG_ANY,
    flags: 0,
    match: [],
    instructions: [],
  };
  const raw = new Map<string, string>();
  let ethType: number | undefined;
  let proto: number | undefined;
  for (const item of splitTop(matchPart, ', \t')) {
    const eq = item.indexOf('=');
    const key = eq < 0 ? item : item.slice(0, eq);
    const val = eq < 0 ? undefined : item.slice(eq + 1);
    const p = PROTOCOLS.get(key);
    if (p && val === undefined) {
      ethType = p[0];
      if (p[1] !== undefined) proto = p[1];
      continue;
    }
    if (val === undefined) {
      const flag = FLAG_NAMES.find(([n]) => n === key);
      if (flag) {
        fm.flags |= flag[1];
        continue;
      }
    }
    if (val === undefined) fail(`"${key}" needs a value`, { text, key });
    switch (key) {
      case 'table':
        fm.tableId = parseNum(val, 8, 'table');
        continue;
      case 'priority':
        fm.priority = parseNum(val, 16, 'priority');
        continue;
      case 'cookie': {
        const [v, m] = splitMask(val);
        fm.cookie = parseUint(v, 64, 'cookie');
        if (m !== undefined) fm.cookieMask = parseUint(m, 64, 'cookie');
        continue;
      }
      case 'idle_timeout':
        fm.idleTimeout = parseNum(val, 16, key);
        continue;
      case 'hard_timeout':
        fm.hardTimeout = parseNum(val, 16, key);
        continue;
      case 'out_port':
        fm.outPort = parsePort(val, key);
        continue;
      case 'out_group':
        fm.outGroup = parseNum(val, 32, key);
        continue;
      case 'dl_type':
      case 'eth_type':
        ethType = parseNum(val, 16, key);
        continue;
      case 'nw_proto':
      case 'ip_proto':
        proto = parseNum(val, 8, key);
        continue;
    }
    if (IGNORED_STATS.has(key)) continue;
    if (raw.has(key)) fail(`field ${key} given twice`, { text, key });
    raw.set(key, val);
  }

  const out = new Map<OxmField, Parsed>();
  const put = (f: OxmField, p: Parsed) => {
    if (out.has(f)) fail(`field ${f.name} given twice`, { text, field: f.name });
    if (p.mask && isAllZeros(p.mask)) return;
    out.set(f, p);
  };
  if (ethType !== undefined) {
    if (ethType === ETH_ARP || ethType === ETH_RARP) {
      if (proto !== undefined) put(fieldByName('arp_op')!, { value: bigToBytes(BigInt(proto), 2) });
    } else if (proto !== undefined) put(fieldByName('nw_proto')!, { value: bigToBytes(BigInt(proto), 1) });
    put(fieldByName('dl_type')!, { value: bigToBytes(BigInt(ethType), 2) });
  } else if (proto !== undefined) fail('nw_proto requires ip or ipv6', { text });

  for (const [key, val] of raw) {
    const xreg = /^xreg([0-7])$/.exec(key);
    if (xreg) {
      // OpenFlow 1.3 has no xreg OXM: OVS sends the two 32-bit halves (reg2N high, reg2N+1 low).
      const i = Number(xreg[1]);
      const [v, m] = splitMask(val);
      const vv = parseUint(v, 64, key);
      const mm = m === undefined ? (1n << 64n) - 1n : parseUint(m, 64, key);
      for (const [half, shift] of [
        [2 * i, 32n],
        [2 * i + 1, 0n],
      ] as const) {
        const hm = (mm >> shift) & 0xffffffffn;
        if (hm === 0n) continue;
        const hv = (vv >> shift) & hm;
        put(fieldByName(`reg${half}`)!, hm === 0xffffffffn ? { value: bigToBytes(hv, 4) } : { value: bigToBytes(hv, 4), mask: bigToBytes(hm, 4) });
      }
      continue;
    }
    const name = resolveName(key, ethType, proto);
    const f = fieldByName(name);
    if (!f) fail(`unknown field "${key}"`, { text, key });
    if (f.name === 'dl_vlan_pcp' && !raw.has('dl_vlan') && !raw.has('vlan_vid')) {
      // OVS expresses "any VLAN with this PCP" as vlan_vid=0x1000/0x1000 plus vlan_pcp.
      put(fieldByName('dl_vlan')!, { value: Uint8Array.of(0x10, 0), mask: Uint8Array.of(0x10, 0) });
    }
    put(f, parseFieldValue(f, val));
  }
  fm.match = [...out.entries()].sort((a, b) => a[0].order - b[0].order).map(([field, p]) => (p.mask ? { field, ...p } : { field, value: p.value }));
  if (actPart !== undefined) fm.instructions = parseInstructions(actPart);
  return fm;
}

// ---- match: print ---------------------------------------------------------------------------

/** Prints a match (and priority) in OVS's match_format order. */
export function formatMatch(match: Match, priority = 0x8000): string {
  const parts: string[] = [];
  const printed = new Set<OxmTlv>();
  const get = (n: string) => {
    const t = tlvOf(match, n);
    if (t) printed.add(t);
    return t;
  };
  const put = (n: string, label = n) => {
    const t = get(n);
    if (t) parts.push(`${label}=${formatFieldValue(t.field, t.value, t.mask)}`);
  };
  if (priority !== 0x8000) parts.push(`priority=${priority}`);
  put('pkt_mark');
  put('conj_id');
  const ct = get('ct_state');
  if (ct) parts.push(`ct_state=${formatFieldValue(ct.field, ct.value, ct.mask)}`);
  put('ct_zone');
  put('ct_mark');
  put('ct_label');

  const ethType = num(get('dl_type'));
  const protoT = get('nw_proto');
  const proto = num(protoT);
  let skipType = false;
  let skipProto = false;
  if (ethType !== undefined) {
    skipType = true;
    if (ethType === ETH_IP || ethType === ETH_IPV6) {
      const six = ethType === ETH_IPV6 ? '6' : '';
      const names: Record<number, string> = ethType === ETH_IP ? { 1: 'icmp', 6: 'tcp', 17: 'udp', 132: 'sctp' } : { 58: 'icmp6', 6: 'tcp6', 17: 'udp6', 132: 'sctp6' };
      const kw = proto !== undefined ? names[proto] : undefined;
      if (kw) {
        parts.push(kw);
        skipProto = true;
      } else parts.push(ethType === ETH_IP ? 'ip' : `ipv6`);
      void six;
    } else if (ethType === ETH_ARP) parts.push('arp');
    else if (ethType === ETH_RARP) parts.push('rarp');
    else if (ethType === ETH_MPLS) parts.push('mpls');
    else if (ethType === ETH_MPLS_MC) parts.push('mplsm');
    else skipType = false;
  }
  for (let i = 0; i < 16; i++) put(`reg${i}`);
  put('tun_id');
  put('tun_src');
  put('tun_dst');
  put('metadata');
  put('in_port');
  const vid = get('dl_vlan');
  const pcp = get('dl_vlan_pcp');
  if (vid) {
    const v = num(vid)!;
    const m = vid.mask ? Number(bytesToBig(vid.mask)) : 0x1fff;
    if (v & 0x1000 && (m === 0x1fff || m === 0x1000)) {
      if (m === 0x1fff) parts.push(`dl_vlan=${v & 0xfff}`);
      if (pcp) parts.push(`dl_vlan_pcp=${num(pcp)}`);
    } else {
      parts.push(`vlan_tci=0x${((v & 0xfff) | (v & 0x1000)).toString(16).padStart(4, '0')}/0x${m.toString(16).padStart(4, '0')}`);
    }
  } else if (pcp) parts.push(`dl_vlan_pcp=${num(pcp)}`);
  put('dl_src');
  put('dl_dst');
  if (!skipType && ethType !== undefined) parts.push(`dl_type=0x${ethType.toString(16).padStart(4, '0')}`);
  const isArp = ethType === ETH_ARP || ethType === ETH_RARP;
  if (ethType === ETH_IPV6) {
    put('ipv6_src');
    put('ipv6_dst');
    put('ipv6_label');
  } else if (isArp) {
    put('arp_spa');
    put('arp_tpa');
  } else {
    put('nw_src');
    put('nw_dst');
  }
  if (!skipProto) {
    if (isArp) put('arp_op');
    else if (protoT) parts.push(`nw_proto=${proto}`);
  }
  if (isArp) {
    put('arp_sha');
    put('arp_tha');
  }
  put('nw_tos');
  put('nw_ecn');
  put('nw_ttl');
  put('mpls_label');
  put('mpls_tc');
  put('mpls_bos');
  if (ethType === ETH_IP && proto === 1) {
    put('icmp_type');
    put('icmp_code');
  } else if (ethType === ETH_IPV6 && proto === 58) {
    put('icmpv6_type', 'icmp_type');
    put('icmpv6_code', 'icmp_code');
    put('nd_target');
    put('nd_sll');
    put('nd_tll');
  } else {
    for (const p of ['tcp', 'udp', 'sctp']) {
      put(`${p}_src`, 'tp_src');
      put(`${p}_dst`, 'tp_dst');
    }
  }
  if ((ethType === ETH_IP || ethType === ETH_IPV6) && proto === 6) put('tcp_flags');
  // Never drop a field silently: anything not placed above (a field whose
  // prerequisites are missing, or one OVS does not know) is printed last.
  for (const t of match) if (!printed.has(t)) parts.push(`${t.field.name}=${formatFieldValue(t.field, t.value, t.mask)}`);
  return parts.join(',');
}

export interface PrintableFlow {
  cookie: bigint;
  tableId: number;
  priority: number;
  idleTimeout: number;
  hardTimeout: number;
  flags: number;
  match: Match;
  instructions: Instruction[];
}

/** One flow as `ovs-ofctl --no-stats dump-flows` prints it. */
export function formatFlow(f: PrintableFlow): string {
  let s = '';
  if (f.cookie) s += `cookie=0x${f.cookie.toString(16)}, `;
  if (f.tableId) s += `table=${f.tableId}, `;
  if (f.idleTimeout) s += `idle_timeout=${f.idleTimeout}, `;
  if (f.hardTimeout) s += `hard_timeout=${f.hardTimeout}, `;
  for (const [n, bit] of FLAG_NAMES) if (f.flags & bit) s += `${n} `;
  const m = formatMatch(f.match, f.priority);
  if (m) s += `${m} `;
  return `${s}actions=${formatInstructions(f.instructions)}`;
}

// ---- actions: parse -------------------------------------------------------------------------

/** Subfield names resolve like OVS's: `in_port` here is the 16-bit NXM field. */
function subfieldByName(name: string): OxmField | undefined {
  return name === 'in_port' ? fieldByName('NXM_OF_IN_PORT') : fieldByName(name);
}

function parseSubfield(s: string, bare = false): Subfield {
  const m = (bare ? /^([A-Za-z0-9_]+)(?:\[(?:(\d+)(?:\.\.(\d+))?)?\])?$/ : /^([A-Za-z0-9_]+)\[(?:(\d+)(?:\.\.(\d+))?)?\]$/).exec(s.trim());
  if (!m) fail(`"${s}" is not a subfield (like NXM_NX_REG0[0..15])`, { text: s });
  const field = subfieldByName(m[1]!);
  if (!field) fail(`unknown field "${m[1]}"`, { text: s });
  const width = field.bits;
  if (m[2] === undefined) return { field, ofs: 0, nBits: width };
  const start = Number(m[2]);
  const end = m[3] === undefined ? start : Number(m[3]);
  if (end < start || end >= width) fail(`bit range [${start}..${end}] outside ${field.nxmName} (${width} bits)`, { text: s });
  return { field, ofs: start, nBits: end - start + 1 };
}

function formatSubfield(sf: Subfield): string {
  const w = sf.field.bits;
  if (sf.ofs === 0 && sf.nBits === w) return `${sf.field.nxmName}[]`;
  if (sf.nBits === 1) return `${sf.field.nxmName}[${sf.ofs}]`;
  return `${sf.field.nxmName}[${sf.ofs}..${sf.ofs + sf.nBits - 1}]`;
}

function parseNat(arg: string | undefined): Action {
  const a: Extract<Action, { type: 'nat' }> = { type: 'nat', flags: 0 };
  if (arg === undefined) return a;
  for (const item of splitTop(arg, ',')) {
    const eq = item.indexOf('=');
    const key = eq < 0 ? item : item.slice(0, eq);
    const val = eq < 0 ? undefined : item.slice(eq + 1);
    if (key === 'src' || key === 'dst') {
      a.flags |= key === 'src' ? NX_NAT_F_SRC : NX_NAT_F_DST;
      if (val === undefined) continue;
      const m = /^([\d.]+)(?:-([\d.]+))?(?::(\d+)(?:-(\d+))?)?$/.exec(val);
      if (!m) fail(`nat: cannot parse range "${val}" (IPv4 only)`, { text: val });
      a.ipv4Min = parseIpv4(m[1]!, 'nat');
      if (m[2]) a.ipv4Max = parseIpv4(m[2], 'nat');
      if (m[3]) a.protoMin = parseNum(m[3], 16, 'nat port');
      if (m[4]) a.protoMax = parseNum(m[4], 16, 'nat port');
    } else if (key === 'persistent') a.flags |= NX_NAT_F_PERSISTENT;
    else if (key === 'hash') a.flags |= NX_NAT_F_PROTO_HASH;
    else if (key === 'random') a.flags |= NX_NAT_F_PROTO_RANDOM;
    else fail(`nat: unknown option "${item}"`, { text: arg });
  }
  return a;
}

function parseCt(arg: string): Action {
  const a: Extract<Action, { type: 'ct' }> = { type: 'ct', flags: 0, zoneImm: 0, table: NX_CT_RECIRC_NONE, alg: 0, actions: [] };
  for (const item of splitTop(arg, ',')) {
    const { name, arg: sub } = splitAction(item);
    if (name === 'commit' && sub === undefined) a.flags |= NX_CT_F_COMMIT;
    else if (name === 'force' && sub === undefined) a.flags |= NX_CT_F_FORCE;
    else if (name === 'table' && sub !== undefined) a.table = parseNum(sub, 8, 'ct table');
    else if (name === 'zone' && sub !== undefined) {
      if (/^(0x[0-9a-f]+|\d+)$/i.test(sub)) a.zoneImm = parseNum(sub, 16, 'ct zone');
      else a.zoneSrc = parseSubfield(sub);
    } else if (name === 'alg' && sub !== undefined) a.alg = sub === 'ftp' ? 21 : sub === 'tftp' ? 69 : parseNum(sub, 16, 'ct alg');
    else if (name === 'nat') a.actions.unshift(parseNat(sub));
    else if (name === 'exec' && sub !== undefined) a.actions.push(...parseActionList(sub));
    else fail(`ct: unknown option "${item}"`, { text: arg });
  }
  return a;
}

/** Right-aligned bytes of an immediate for an n-bit destination (ceil(n/8) bytes). */
function immBytes(v: bigint, nBits: number, what: string): Uint8Array {
  if (nBits < 64 && v >> BigInt(nBits) !== 0n) fail(`${what}: value does not fit in ${nBits} bits`, { value: v.toString() });
  return bigToBytes(v, Math.ceil(nBits / 8));
}

function parseLearn(arg: string): Action {
  const a: Learn = {
    type: 'learn',
    table: 1,
    idleTimeout: 0,
    hardTimeout: 0,
    finIdleTimeout: 0,
    finHardTimeout: 0,
    priority: 0x8000,
    cookie: 0n,
    flags: 0,
    specs: [],
  };
  for (const item of splitTop(arg, ',')) {
    const i = item.search(/[=:]/);
    const key = i < 0 ? item : item.slice(0, i);
    const val = i < 0 ? '' : item.slice(i + 1);
    switch (key) {
      case 'table':
        a.table = parseNum(val, 8, 'learn table');
        if (a.table === 255) fail('learn: table 255 is not valid', { text: arg });
        continue;
      case 'priority':
        a.priority = parseNum(val, 16, 'learn priority');
        continue;
      case 'idle_timeout':
        a.idleTimeout = parseNum(val, 16, key);
        continue;
      case 'hard_timeout':
        a.hardTimeout = parseNum(val, 16, key);
        continue;
      case 'fin_idle_timeout':
        a.finIdleTimeout = parseNum(val, 16, key);
        continue;
      case 'fin_hard_timeout':
        a.finHardTimeout = parseNum(val, 16, key);
        continue;
      case 'cookie':
        a.cookie = parseUint(val, 64, 'learn cookie');
        continue;
      case 'send_flow_rem':
        a.flags |= NX_LEARN_F_SEND_FLOW_REM;
        continue;
      case 'delete_learned':
        a.flags |= NX_LEARN_F_DELETE_LEARNED;
        continue;
      case 'limit':
      case 'result_dst':
        fail(`learn: ${key} (NXAST_LEARN2) is not supported`, { text: arg });
        break;
      case 'output':
        a.specs.push({ kind: 'output', src: parseSubfield(val, true) });
        continue;
      case 'load': {
        const j = val.indexOf('->');
        if (j <= 0) fail(`learn: load needs "src->dst", got "${val}"`, { text: arg });
        const dst = parseSubfield(val.slice(j + 2), true);
        const srcText = val.slice(0, j);
        if (/^(0x[0-9a-f]+|\d+)$/i.test(srcText)) a.specs.push({ kind: 'load', dst, value: immBytes(parseUint(srcText, 128, 'learn load'), dst.nBits, 'learn load') });
        else {
          const src = parseSubfield(srcText, true);
          if (src.nBits !== dst.nBits) fail(`learn: ${srcText} and ${val.slice(j + 2)} differ in width`, { text: arg });
          a.specs.push({ kind: 'load', dst, src });
        }
        continue;
      }
    }
    // A match spec: `dst`, `dst=src` or `dst=immediate`.
    const dst = parseSubfield(key, true);
    if (val === '') {
      a.specs.push({ kind: 'match', dst, src: dst });
      continue;
    }
    let src: Subfield | undefined;
    try {
      src = parseSubfield(val, true);
    } catch {
      src = undefined;
    }
    if (src) {
      if (src.nBits !== dst.nBits) fail(`learn: ${key} and ${val} differ in width`, { text: arg });
      a.specs.push({ kind: 'match', dst, src });
    } else if (dst.ofs === 0 && dst.nBits === dst.field.bits) {
      const p = parseFieldValue(dst.field, val);
      if (p.mask) fail(`learn: ${key}=${val}: masks are not allowed`, { text: arg });
      a.specs.push({ kind: 'match', dst, value: p.value.subarray(p.value.length - Math.ceil(dst.nBits / 8)) });
    } else a.specs.push({ kind: 'match', dst, value: immBytes(parseUint(val, 128, 'learn'), dst.nBits, `learn ${key}`) });
  }
  return a;
}

function formatLearn(a: Learn): string {
  let s = `learn(table=${a.table}`;
  if (a.idleTimeout) s += `,idle_timeout=${a.idleTimeout}`;
  if (a.hardTimeout) s += `,hard_timeout=${a.hardTimeout}`;
  if (a.finIdleTimeout) s += `,fin_idle_timeout=${a.finIdleTimeout}`;
  if (a.finHardTimeout) s += `,fin_hard_timeout=${a.finHardTimeout}`;
  if (a.priority !== 0x8000) s += `,priority=${a.priority}`;
  if (a.flags & NX_LEARN_F_SEND_FLOW_REM) s += ',send_flow_rem';
  if (a.flags & NX_LEARN_F_DELETE_LEARNED) s += ',delete_learned';
  if (a.cookie) s += `,cookie=0x${a.cookie.toString(16)}`;
  for (const sp of a.specs) {
    s += ',';
    if (sp.kind === 'output') s += `output:${formatSubfield(sp.src)}`;
    else if (sp.kind === 'load') s += `load:${sp.value ? hexTrim(bytesToBig(sp.value)) : formatSubfield(sp.src)}->${formatSubfield(sp.dst)}`;
    else if (sp.value) {
      if (sp.dst.ofs === 0 && sp.dst.nBits === sp.dst.field.bits) {
        const full = new Uint8Array(sp.dst.field.bytes);
        full.set(sp.value, full.length - sp.value.length);
        s += `${sp.dst.field.mfName}=${formatSetValue(sp.dst.field, full)}`;
      } else s += `${formatSubfield(sp.dst)}=${hexTrim(bytesToBig(sp.value))}`;
    } else {
      s += formatSubfield(sp.dst);
      if (sp.src.field !== sp.dst.field || sp.src.ofs !== sp.dst.ofs) s += `=${formatSubfield(sp.src)}`;
    }
  }
  return `${s})`;
}

function splitAction(s: string): { name: string; arg: string | undefined; paren: boolean } {
  const p = s.indexOf('(');
  const c = s.indexOf(':');
  const e = s.indexOf('=');
  const cands = [p, c, e].filter((x) => x >= 0);
  if (!cands.length) return { name: s, arg: undefined, paren: false };
  const i = Math.min(...cands);
  if (i === p) {
    if (!s.endsWith(')')) fail(`"${s}": missing ")"`, { text: s });
    return { name: s.slice(0, p), arg: s.slice(p + 1, -1), paren: true };
  }
  return { name: s.slice(0, i), arg: s.slice(i + 1), paren: false };
}

/** Value/mask over a field as NXAST_REG_LOADs: one per run of set mask bits, at most 64 bits each (OVS's next_load_segment). */
function loadSegments(field: OxmField, value: bigint, mask: bigint): Action[] {
  const out: Action[] = [];
  const bits = field.bits;
  let ofs = 0;
  while (ofs < bits) {
    if (!((mask >> BigInt(ofs)) & 1n)) {
      ofs++;
      continue;
    }
    let end = ofs + 1;
    while (end < bits && end < ofs + 64 && (mask >> BigInt(end)) & 1n) end++;
    const n = end - ofs;
    out.push({ type: 'load', dst: { field, ofs, nBits: n }, value: (value >> BigInt(ofs)) & ((1n << BigInt(n)) - 1n) });
    ofs = end;
  }
  return out;
}

function parseAction(s: string): Action | Action[] {
  const { name, arg } = splitAction(s);
  const need = (): string => {
    if (arg === undefined || arg === '') fail(`action "${name}" needs an argument`, { text: s });
    return arg;
  };
  const lname = name.toLowerCase();
  if (arg === undefined && (/^\d+$/.test(name) || PORT_NAMES[name.toUpperCase()] !== undefined) && lname !== 'drop') {
    const port = parsePort(name);
    return { type: 'output', port, maxLen: port === OFPP.CONTROLLER ? 0xffff : 0 };
  }
  switch (lname) {
    case 'output': {
      const port = parsePort(need(), 'output');
      return { type: 'output', port, maxLen: port === OFPP.CONTROLLER ? 0xffff : 0 };
    }
    case 'controller': {
      if (arg === undefined) return { type: 'output', port: OFPP.CONTROLLER, maxLen: 0xffff };
      const ml = /^(?:max_len=)?(\d+)$/.exec(arg);
      if (!ml) fail(`controller: only max_len is supported, got "${arg}"`, { text: s });
      return { type: 'output', port: OFPP.CONTROLLER, maxLen: parseNum(ml[1]!, 16, 'max_len') };
    }
    case 'group':
      return { type: 'group', groupId: parseNum(need(), 32, 'group') };
    case 'set_queue':
      return { type: 'set_queue', queueId: parseNum(need(), 32, 'set_queue') };
    case 'push_vlan':
      return { type: 'push_vlan', ethertype: parseNum(need(), 16, 'push_vlan') };
    case 'pop_vlan':
    case 'strip_vlan':
      return { type: 'pop_vlan' };
    case 'dec_ttl':
      if (arg !== undefined) fail('dec_ttl with controller ids is not supported', { text: s });
      return { type: 'dec_ttl' };
    case 'ct_clear':
      return { type: 'ct_clear' };
    case 'resubmit': {
      const a = need();
      if (!s.includes('(')) return { type: 'resubmit', inPort: parsePort(a, 'resubmit'), table: 255 };
      const [p, t, extra] = a.split(',');
      if (extra !== undefined || t === undefined) fail(`resubmit: expected "(port,table)", got "${a}"`, { text: s });
      const inPort = p ? parsePort(p, 'resubmit') & 0xffff : 0xfff8;
      const table = t ? parseNum(t, 8, 'resubmit table') : 255;
      return { type: 'resubmit', inPort, table };
    }
    case 'set_field': {
      const a = need();
      const i = a.lastIndexOf('->');
      if (i < 0) fail(`set_field: expected "value->field", got "${a}"`, { text: s });
      const f = fieldByName(a.slice(i + 2));
      if (!f) fail(`set_field: unknown field "${a.slice(i + 2)}"`, { text: s });
      const p = parseFieldValue(f, a.slice(0, i));
      // OpenFlow 1.3 set_field cannot be masked: like OVS, send the masked bits as reg_loads.
      if (p.mask) return loadSegments(f, bytesToBig(p.value), bytesToBig(p.mask));
      return { type: 'set_field', field: f, value: p.value };
    }
    case 'load': {
      const a = need();
      const i = a.indexOf('->');
      if (i < 0) fail(`load: expected "value->field[bits]", got "${a}"`, { text: s });
      const dst = parseSubfield(a.slice(i + 2));
      const value = parseUint(a.slice(0, i), 128, 'load');
      if (value >> BigInt(dst.nBits) !== 0n) fail(`load: ${a.slice(0, i)} does not fit in ${dst.nBits} bits`, { text: s });
      if (dst.nBits <= 64) return { type: 'load', dst, value };
      // NXAST_REG_LOAD carries at most 64 bits: wider loads become several, as in OVS.
      return loadSegments(dst.field, value << BigInt(dst.ofs), ((1n << BigInt(dst.nBits)) - 1n) << BigInt(dst.ofs));
    }
    case 'move': {
      const a = need();
      const i = a.indexOf('->');
      if (i < 0) fail(`move: expected "src[]->dst[]", got "${a}"`, { text: s });
      const src = parseSubfield(a.slice(0, i));
      const dst = parseSubfield(a.slice(i + 2));
      if (src.nBits !== dst.nBits) fail(`move: source is ${src.nBits} bits, destination ${dst.nBits}`, { text: s });
      return { type: 'move', src, dst };
    }
    case 'conjunction': {
      const m = /^\s*(\d+)\s*,\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(need());
      if (!m) fail(`conjunction: expected "(id,k/n)", got "${arg}"`, { text: s });
      const k = Number(m[2]);
      const n = Number(m[3]);
      if (n < 2 || n > 64 || k < 1 || k > n) fail('conjunction: need 2 <= n <= 64 and 1 <= k <= n', { text: s });
      return { type: 'conjunction', id: parseNum(m[1]!, 32, 'conjunction id'), clause: k - 1, nClauses: n };
    }
    case 'ct':
      return parseCt(arg ?? '');
    case 'learn':
      return parseLearn(arg ?? '');
    case 'note': {
      const hex = need().replace(/[.\s]/g, '');
      if (!/^([0-9a-f]{2})*$/i.test(hex)) fail(`note: "${arg}" is not hex bytes`, { text: s });
      return { type: 'note', data: Buffer.from(hex, 'hex') };
    }
    default:
      fail(`unknown or unsupported action "${name}"`, { text: s });
  }
}

function parseActionList(s: string): Action[] {
  const out: Action[] = [];
  for (const item of splitTop(s, ',')) {
    if (item === 'drop') continue;
    const a = parseAction(item);
    if (Array.isArray(a)) out.push(...a);
    else out.push(a);
  }
  return out;
}

const INSTR_ORDER: Record<Instruction['type'], number> = {
  meter: 0,
  apply_actions: 1,
  clear_actions: 2,
  write_actions: 3,
  write_metadata: 4,
  goto_table: 5,
};

/** Parses the text after `actions=` into instructions (in the order OpenFlow requires). */
export function parseInstructions(s: string): Instruction[] {
  const apply: Action[] = [];
  const ins: Instruction[] = [];
  const seen = new Set<string>();
  const once = (t: string) => {
    if (seen.has(t)) fail(`instruction ${t} given twice`, { text: s });
    seen.add(t);
  };
  for (const item of splitTop(s, ',')) {
    const { name, arg } = splitAction(item);
    switch (name) {
      case 'drop':
        continue;
      case 'meter':
        once(name);
        ins.push({ type: 'meter', meterId: parseNum(arg ?? '', 32, 'meter') });
        continue;
      case 'clear_actions':
        once(name);
        ins.push({ type: 'clear_actions' });
        continue;
      case 'write_actions':
        once(name);
        ins.push({ type: 'write_actions', actions: parseActionList(arg ?? '') });
        continue;
      case 'write_metadata': {
        once(name);
        const [v, m] = splitMask(arg ?? '');
        ins.push({ type: 'write_metadata', metadata: parseUint(v, 64, name), mask: m === undefined ? (1n << 64n) - 1n : parseUint(m, 64, name) });
        continue;
      }
      case 'goto_table':
        once(name);
        ins.push({ type: 'goto_table', table: parseNum(arg ?? '', 8, name) });
        continue;
      default:
        {
          const a = parseAction(item);
          if (Array.isArray(a)) apply.push(...a);
          else apply.push(a);
        }
    }
  }
  if (apply.length) ins.push({ type: 'apply_actions', actions: apply });
  return ins.sort((a, b) => INSTR_ORDER[a.type] - INSTR_ORDER[b.type]);
}

// ---- actions: print -------------------------------------------------------------------------

function formatNat(a: Extract<Action, { type: 'nat' }>): string {
  if (!(a.flags & (NX_NAT_F_SRC | NX_NAT_F_DST))) return 'nat';
  let s = `nat(${a.flags & NX_NAT_F_SRC ? 'src' : 'dst'}`;
  if (a.ipv4Min !== undefined) {
    s += `=${formatIpv4(a.ipv4Min)}`;
    if (a.ipv4Max && a.ipv4Max !== a.ipv4Min) s += `-${formatIpv4(a.ipv4Max)}`;
    if (a.protoMin) {
      s += `:${a.protoMin}`;
      if (a.protoMax && a.protoMax !== a.protoMin) s += `-${a.protoMax}`;
    }
    s += ',';
    if (a.flags & NX_NAT_F_PERSISTENT) s += 'persistent,';
    if (a.flags & NX_NAT_F_PROTO_HASH) s += 'hash,';
    if (a.flags & NX_NAT_F_PROTO_RANDOM) s += 'random,';
  }
  return `${s.replace(/,$/, '')})`;
}

export function formatAction(a: Action): string {
  switch (a.type) {
    case 'output':
      if (a.port === OFPP.CONTROLLER) return `CONTROLLER:${a.maxLen}`;
      return a.port < OFPP.MAX ? `output:${a.port}` : formatPort(a.port);
    case 'group':
      return `group:${a.groupId}`;
    case 'set_queue':
      return `set_queue:${a.queueId}`;
    case 'push_vlan':
      return `push_vlan:0x${a.ethertype.toString(16)}`;
    case 'pop_vlan':
      return 'pop_vlan';
    case 'dec_ttl':
      return 'dec_ttl';
    case 'ct_clear':
      return 'ct_clear';
    case 'set_field':
      return `set_field:${formatSetValue(a.field, a.value)}->${a.field.mfName}`;
    case 'load':
      return `load:${hexTrim(a.value)}->${formatSubfield(a.dst)}`;
    case 'move':
      return `move:${formatSubfield(a.src)}->${formatSubfield(a.dst)}`;
    case 'resubmit': {
      const inPort = a.inPort === 0xfff8 ? '' : formatPort(a.inPort >= 0xff00 ? (0xffff0000 | a.inPort) >>> 0 : a.inPort);
      if (a.inPort !== 0xfff8 && a.table === 255) return `resubmit:${inPort}`;
      return `resubmit(${inPort},${a.table === 255 ? '' : a.table})`;
    }
    case 'conjunction':
      return `conjunction(${a.id},${a.clause + 1}/${a.nClauses})`;
    case 'note':
      return `note:${Array.from(a.data, (b) => b.toString(16).padStart(2, '0')).join('.')}`;
    case 'nat':
      return formatNat(a);
    case 'learn':
      return formatLearn(a);
    case 'ct': {
      let s = 'ct(';
      if (a.flags & NX_CT_F_COMMIT) s += 'commit,';
      if (a.flags & NX_CT_F_FORCE) s += 'force,';
      if (a.table !== NX_CT_RECIRC_NONE) s += `table=${a.table},`;
      if (a.zoneSrc) s += `zone=${formatSubfield(a.zoneSrc)},`;
      else if (a.zoneImm) s += `zone=${a.zoneImm},`;
      let rest = a.actions;
      if (rest[0]?.type === 'nat') {
        s += `${formatNat(rest[0])},`;
        rest = rest.slice(1);
      }
      if (rest.length) s += `exec(${rest.map(formatAction).join(',')}),`;
      if (a.alg) s += a.alg === 21 ? 'alg=ftp,' : a.alg === 69 ? 'alg=tftp,' : `alg=${a.alg},`;
      return `${s.replace(/,$/, '')})`;
    }
  }
}

export function formatInstructions(list: readonly Instruction[]): string {
  const parts: string[] = [];
  for (const i of list) {
    switch (i.type) {
      case 'meter':
        parts.push(`meter:${i.meterId}`);
        break;
      case 'apply_actions':
        for (const a of i.actions) parts.push(formatAction(a));
        break;
      case 'clear_actions':
        parts.push('clear_actions');
        break;
      case 'write_actions':
        parts.push(`write_actions(${i.actions.map(formatAction).join(',')})`);
        break;
      case 'write_metadata':
        parts.push(i.mask === (1n << 64n) - 1n ? `write_metadata:${hexTrim(i.metadata)}` : `write_metadata:${hexTrim(i.metadata)}/${hexTrim(i.mask)}`);
        break;
      case 'goto_table':
        parts.push(`goto_table:${i.table}`);
        break;
    }
  }
  return parts.length ? parts.join(',') : 'drop';
}

// ---- groups and meters ---------------------------------------------------------------------

const GROUP_TYPES = ['all', 'select', 'indirect', 'ff'];

/** Parses ovs-ofctl group text: `group_id=1,type=select,bucket=weight:2,actions=output:1,bucket=...`. */
export function parseGroup(text: string, command = OFPGC.ADD): GroupMod {
  const pieces = text.split(/,?\s*bucket=/);
  const head = pieces.shift()!;
  const gm: GroupMod = { command, groupType: OFPGT.ALL, groupId: 0, buckets: [] };
  let haveId = false;
  for (const item of splitTop(head, ', ')) {
    const [k, v] = splitKv(item);
    if (k === 'group_id') {
      gm.groupId = v === 'all' ? OFPG_ALL : parseNum(v ?? '', 32, 'group_id');
      haveId = true;
    } else if (k === 'type') {
      const t = GROUP_TYPES.indexOf(v ?? '');
      if (t < 0) fail(`group type "${v}" is not one of ${GROUP_TYPES.join(', ')}`, { text });
      gm.groupType = t;
    } else fail(`unknown or unsupported group option "${item}"`, { text });
  }
  if (!haveId) fail('group needs group_id', { text });
  for (const b of pieces) {
    const bucket: Bucket = { weight: gm.groupType === OFPGT.SELECT ? 1 : 0, watchPort: OFPP.ANY, watchGroup: OFPG_ANY, actions: [] };
    let rest = b.trim();
    for (;;) {
      const m = /^(weight|watch_port|watch_group|bucket_id)[:=]([^,]*)(,|$)/.exec(rest);
      if (!m) break;
      if (m[1] === 'weight') bucket.weight = parseNum(m[2]!, 16, 'weight');
      else if (m[1] === 'watch_port') bucket.watchPort = parsePort(m[2]!, 'watch_port');
      else if (m[1] === 'watch_group') bucket.watchGroup = parseNum(m[2]!, 32, 'watch_group');
      rest = rest.slice(m[0].length);
    }
    rest = rest.replace(/^actions?=/, '');
    bucket.actions = parseActionList(rest);
    gm.buckets.push(bucket);
  }
  return gm;
}

function splitKv(item: string): [string, string | undefined] {
  const i = item.search(/[=:]/);
  return i < 0 ? [item, undefined] : [item.slice(0, i), item.slice(i + 1)];
}

/** Prints a group the way ovs-ofctl dump-groups does (OpenFlow 1.3). */
export function formatGroup(g: { groupId: number; groupType: number; buckets: Bucket[] }): string {
  let s = `group_id=${g.groupId},type=${GROUP_TYPES[g.groupType] ?? 'unknown'}`;
  for (const b of g.buckets) {
    s += ',bucket=';
    if (b.weight !== (g.groupType === OFPGT.SELECT ? 1 : 0)) s += `weight:${b.weight},`;
    if (b.watchPort !== OFPP.ANY) s += `watch_port:${formatPort(b.watchPort)},`;
    if (b.watchGroup !== OFPG_ANY) s += `watch_group:${b.watchGroup},`;
    s += `actions=${b.actions.map(formatAction).join(',')}`;
  }
  return s;
}

const METER_FLAGS: [string, number][] = [
  ['kbps', OFPMF.KBPS],
  ['pktps', OFPMF.PKTPS],
  ['burst', OFPMF.BURST],
  ['stats', OFPMF.STATS],
];

/** Parses ovs-ofctl meter text: `meter=1,kbps,burst,stats,bands=type=drop,rate=1000,burst_size=100`. */
export function parseMeter(text: string, command = OFPMC.ADD): MeterMod {
  const bi = text.indexOf('bands=');
  const head = bi < 0 ? text : text.slice(0, bi);
  const mm: MeterMod = { command, flags: 0, meterId: 0, bands: [] };
  let haveId = false;
  for (const item of splitTop(head, ', ')) {
    const [k, v] = splitKv(item);
    const flag = METER_FLAGS.find(([n]) => n === k);
    if (flag && v === undefined) mm.flags |= flag[1];
    else if (k === 'meter') {
      mm.meterId = parseNum(v ?? '', 32, 'meter');
      haveId = true;
    } else fail(`unknown meter option "${item}"`, { text });
  }
  if (!haveId) fail('meter needs meter=ID', { text });
  if (!(mm.flags & (OFPMF.KBPS | OFPMF.PKTPS))) mm.flags |= OFPMF.KBPS;
  if (bi >= 0) {
    let band: MeterBand | undefined;
    for (const item of splitTop(text.slice(bi + 6), ', ')) {
      const [k, v] = splitKv(item);
      if (k === 'type') {
        const t = v === 'drop' ? OFPMBT.DROP : v === 'dscp_remark' ? OFPMBT.DSCP_REMARK : fail(`meter band type "${v}" unknown`, { text });
        band = { bandType: t, rate: 0, burstSize: 0 };
        if (t === OFPMBT.DSCP_REMARK) band.precLevel = 0;
        mm.bands.push(band);
      } else if (!band) fail('meter band must start with type=', { text });
      else if (k === 'rate') band.rate = parseNum(v ?? '', 32, 'rate');
      else if (k === 'burst_size') band.burstSize = parseNum(v ?? '', 32, 'burst_size');
      else if (k === 'prec_level') band.precLevel = parseNum(v ?? '', 8, 'prec_level');
      else fail(`unknown meter band option "${item}"`, { text });
    }
  }
  return mm;
}

/** Prints a meter in ovs-ofctl's add-meter syntax (parseMeter's inverse). */
export function formatMeter(m: { meterId: number; flags: number; bands: MeterBand[] }): string {
  let s = `meter=${m.meterId}`;
  for (const [n, bit] of METER_FLAGS) if (m.flags & bit) s += `,${n}`;
  if (m.bands.length) {
    s += ',bands=';
    s += m.bands
      .map((b) => {
        let t = `type=${b.bandType === OFPMBT.DROP ? 'drop' : b.bandType === OFPMBT.DSCP_REMARK ? 'dscp_remark' : b.bandType},rate=${b.rate}`;
        if (m.flags & OFPMF.BURST) t += `,burst_size=${b.burstSize}`;
        if (b.bandType === OFPMBT.DSCP_REMARK) t += `,prec_level=${b.precLevel ?? 0}`;
        return t;
      })
      .join(',');
  }
  return s;
}
