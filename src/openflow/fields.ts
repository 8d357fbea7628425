/**
 * OXM / NXM match fields: the registry (wire headers, sizes, OVS names) and
 * encode/decode of an OXM match. A match is a list of TLVs holding raw wire
 * bytes, so encoding is a header plus a copy and decoding allocates no values.
 */
import { OpenFlowDecodeError, OpenFlowEncodeError } from './errors.js';
import type { Reader, Writer } from './wire.js';

export const OFPXMC_NXM_0 = 0x0000;
export const OFPXMC_NXM_1 = 0x0001;
export const OFPXMC_OPENFLOW_BASIC = 0x8000;
export const OFPXMC_EXPERIMENTER = 0xffff;

/** How a field's value reads and prints in ovs-ofctl text. */
export type FieldKind = 'dec' | 'hex' | 'mac' | 'ipv4' | 'ipv6' | 'port' | 'ct_state' | 'tcp_flags' | 'hex128' | 'vid' | 'dscp' | 'label';

/** ONF experimenter id, used by experimenter OXM fields in OpenFlow 1.3 (e.g. tcp_flags). */
export const ONF_EXPERIMENTER = 0x4f4e4600;

export interface OxmField {
  /** OVS name, used when printing a match. */
  readonly name: string;
  /** OVS meta-flow name, printed by set_field (e.g. ip_dst where the match prints nw_dst). */
  readonly mfName: string;
  /** NXM/OXM name used in subfield syntax (move:, load:, ct zone=). */
  readonly nxmName: string;
  readonly aliases: readonly string[];
  /** Header used for OpenFlow 1.3 matches and set_field. */
  readonly cls: number;
  readonly field: number;
  /** Experimenter id when cls is 0xffff (the OXM header is then 8 bytes). */
  readonly exp?: number;
  /** Header used for subfields (NXM preferred, as OVS does). */
  readonly nxmCls: number;
  readonly nxmField: number;
  readonly bytes: number;
  /** Bits that carry data (e.g. 12 for dl_vlan, 20 for mpls_label). */
  readonly bits: number;
  readonly maskable: boolean;
  /** Position in OVS's nx_put_raw() order, which ovs-ofctl uses on the wire. */
  readonly order: number;
  readonly kind: FieldKind;
}

interface Def {
  name: string;
  mf?: string;
  nxm: string;
  aliases?: string[];
  oxm: [number, number];
  exp?: number;
  nx?: [number, number];
  bytes: number;
  bits?: number;
  mask: boolean;
  kind: FieldKind;
}

const B = OFPXMC_OPENFLOW_BASIC;
const N0 = OFPXMC_NXM_0;
const N1 = OFPXMC_NXM_1;

// Listed in nx_put_raw() order.
const defs: Def[] = [
  { name: 'conj_id', nxm: 'NXM_NX_CONJ_ID', oxm: [N1, 37], bytes: 4, mask: false, kind: 'dec' },
  { name: 'in_port', nxm: 'OXM_OF_IN_PORT', aliases: ['in_port_oxm'], oxm: [B, 0], bytes: 4, mask: false, kind: 'port' },
  // The 16-bit NXM in_port: what subfields (move:, load:, learn) name as NXM_OF_IN_PORT[].
  { name: 'nxm_in_port', mf: 'in_port', nxm: 'NXM_OF_IN_PORT', oxm: [N0, 0], bytes: 2, mask: false, kind: 'dec' },
  { name: 'dl_src', mf: 'eth_src', nxm: 'NXM_OF_ETH_SRC', aliases: ['eth_src'], oxm: [B, 4], nx: [N0, 2], bytes: 6, mask: true, kind: 'mac' },
  { name: 'dl_dst', mf: 'eth_dst', nxm: 'NXM_OF_ETH_DST', aliases: ['eth_dst'], oxm: [B, 3], nx: [N0, 1], bytes: 6, mask: true, kind: 'mac' },
  { name: 'dl_type', mf: 'eth_type', nxm: 'NXM_OF_ETH_TYPE', aliases: ['eth_type'], oxm: [B, 5], nx: [N0, 3], bytes: 2, mask: false, kind: 'hex' },
  { name: 'dl_vlan', mf: 'vlan_vid', nxm: 'OXM_OF_VLAN_VID', aliases: ['vlan_vid'], oxm: [B, 6], bytes: 2, bits: 13, mask: true, kind: 'vid' },
  { name: 'dl_vlan_pcp', mf: 'vlan_pcp', nxm: 'OXM_OF_VLAN_PCP', aliases: ['vlan_pcp'], oxm: [B, 7], bytes: 1, bits: 3, mask: false, kind: 'dec' },
  // NXM vlan_tci: for subfields (move:, learn) only; OpenFlow 1.3 matches use dl_vlan/dl_vlan_pcp.
  { name: 'vlan_tci', nxm: 'NXM_OF_VLAN_TCI', oxm: [N0, 4], bytes: 2, mask: true, kind: 'hex' },
  { name: 'mpls_tc', nxm: 'OXM_OF_MPLS_TC', oxm: [B, 35], bytes: 1, bits: 3, mask: false, kind: 'dec' },
  { name: 'mpls_bos', nxm: 'OXM_OF_MPLS_BOS', oxm: [B, 36], bytes: 1, bits: 1, mask: false, kind: 'dec' },
  { name: 'mpls_label', nxm: 'OXM_OF_MPLS_LABEL', oxm: [B, 34], bytes: 4, bits: 20, mask: false, kind: 'dec' },
  { name: 'nw_src', mf: 'ip_src', nxm: 'NXM_OF_IP_SRC', aliases: ['ip_src'], oxm: [B, 11], nx: [N0, 7], bytes: 4, mask: true, kind: 'ipv4' },
  { name: 'nw_dst', mf: 'ip_dst', nxm: 'NXM_OF_IP_DST', aliases: ['ip_dst'], oxm: [B, 12], nx: [N0, 8], bytes: 4, mask: true, kind: 'ipv4' },
  { name: 'ipv6_src', nxm: 'NXM_NX_IPV6_SRC', oxm: [B, 26], nx: [N1, 19], bytes: 16, mask: true, kind: 'ipv6' },
  { name: 'ipv6_dst', nxm: 'NXM_NX_IPV6_DST', oxm: [B, 27], nx: [N1, 20], bytes: 16, mask: true, kind: 'ipv6' },
  { name: 'nw_tos', mf: 'ip_dscp', nxm: 'OXM_OF_IP_DSCP', aliases: ['ip_dscp'], oxm: [B, 8], bytes: 1, bits: 6, mask: false, kind: 'dscp' },
  { name: 'nw_ecn', nxm: 'NXM_NX_IP_ECN', aliases: ['ip_ecn'], oxm: [B, 9], nx: [N1, 28], bytes: 1, bits: 2, mask: false, kind: 'dec' },
  { name: 'nw_ttl', nxm: 'NXM_NX_IP_TTL', oxm: [N1, 29], bytes: 1, mask: false, kind: 'dec' },
  { name: 'ipv6_label', nxm: 'NXM_NX_IPV6_LABEL', oxm: [B, 28], nx: [N1, 27], bytes: 4, bits: 20, mask: true, kind: 'label' },
  { name: 'nw_proto', nxm: 'NXM_OF_IP_PROTO', aliases: ['ip_proto'], oxm: [B, 10], nx: [N0, 6], bytes: 1, mask: false, kind: 'dec' },
  { name: 'tcp_src', nxm: 'NXM_OF_TCP_SRC', oxm: [B, 13], nx: [N0, 9], bytes: 2, mask: true, kind: 'dec' },
  { name: 'tcp_dst', nxm: 'NXM_OF_TCP_DST', oxm: [B, 14], nx: [N0, 10], bytes: 2, mask: true, kind: 'dec' },
  { name: 'udp_src', nxm: 'NXM_OF_UDP_SRC', oxm: [B, 15], nx: [N0, 11], bytes: 2, mask: true, kind: 'dec' },
  { name: 'udp_dst', nxm: 'NXM_OF_UDP_DST', oxm: [B, 16], nx: [N0, 12], bytes: 2, mask: true, kind: 'dec' },
  // OpenFlow 1.3 has no standard tcp_flags; OVS sends ONF's experimenter OXM (EXT-109).
  { name: 'tcp_flags', nxm: 'NXM_NX_TCP_FLAGS', oxm: [0xffff, 42], exp: 0x4f4e4600, nx: [N1, 34], bytes: 2, bits: 12, mask: true, kind: 'tcp_flags' },
  { name: 'sctp_src', nxm: 'OXM_OF_SCTP_SRC', oxm: [B, 17], bytes: 2, mask: true, kind: 'dec' },
  { name: 'sctp_dst', nxm: 'OXM_OF_SCTP_DST', oxm: [B, 18], bytes: 2, mask: true, kind: 'dec' },
  { name: 'icmp_type', nxm: 'NXM_OF_ICMP_TYPE', aliases: ['icmpv4_type'], oxm: [B, 19], nx: [N0, 13], bytes: 1, mask: false, kind: 'dec' },
  { name: 'icmp_code', nxm: 'NXM_OF_ICMP_CODE', aliases: ['icmpv4_code'], oxm: [B, 20], nx: [N0, 14], bytes: 1, mask: false, kind: 'dec' },
  { name: 'icmpv6_type', nxm: 'NXM_NX_ICMPV6_TYPE', oxm: [B, 29], nx: [N1, 21], bytes: 1, mask: false, kind: 'dec' },
  { name: 'icmpv6_code', nxm: 'NXM_NX_ICMPV6_CODE', oxm: [B, 30], nx: [N1, 22], bytes: 1, mask: false, kind: 'dec' },
  { name: 'nd_target', nxm: 'NXM_NX_ND_TARGET', oxm: [B, 31], nx: [N1, 23], bytes: 16, mask: true, kind: 'ipv6' },
  { name: 'nd_sll', nxm: 'NXM_NX_ND_SLL', oxm: [B, 32], nx: [N1, 24], bytes: 6, mask: true, kind: 'mac' },
  { name: 'nd_tll', nxm: 'NXM_NX_ND_TLL', oxm: [B, 33], nx: [N1, 25], bytes: 6, mask: true, kind: 'mac' },
  { name: 'arp_op', nxm: 'NXM_OF_ARP_OP', oxm: [B, 21], nx: [N0, 15], bytes: 2, mask: false, kind: 'dec' },
  { name: 'arp_spa', nxm: 'NXM_OF_ARP_SPA', oxm: [B, 22], nx: [N0, 16], bytes: 4, mask: true, kind: 'ipv4' },
  { name: 'arp_tpa', nxm: 'NXM_OF_ARP_TPA', oxm: [B, 23], nx: [N0, 17], bytes: 4, mask: true, kind: 'ipv4' },
  { name: 'arp_sha', nxm: 'NXM_NX_ARP_SHA', oxm: [B, 24], nx: [N1, 17], bytes: 6, mask: true, kind: 'mac' },
  { name: 'arp_tha', nxm: 'NXM_NX_ARP_THA', oxm: [B, 25], nx: [N1, 18], bytes: 6, mask: true, kind: 'mac' },
  { name: 'tun_id', nxm: 'NXM_NX_TUN_ID', aliases: ['tunnel_id'], oxm: [B, 38], nx: [N1, 16], bytes: 8, mask: true, kind: 'hex' },
  { name: 'tun_src', nxm: 'NXM_NX_TUN_IPV4_SRC', aliases: ['tun_ipv4_src'], oxm: [N1, 31], bytes: 4, mask: true, kind: 'ipv4' },
  { name: 'tun_dst', nxm: 'NXM_NX_TUN_IPV4_DST', aliases: ['tun_ipv4_dst'], oxm: [N1, 32], bytes: 4, mask: true, kind: 'ipv4' },
  ...Array.from({ length: 16 }, (_, i): Def => ({
    name: `reg${i}`,
    nxm: `NXM_NX_REG${i}`,
    oxm: [N1, i],
    bytes: 4,
    mask: true,
    kind: 'hex',
  })),
  { name: 'pkt_mark', nxm: 'NXM_NX_PKT_MARK', oxm: [N1, 33], bytes: 4, mask: true, kind: 'hex' },
  { name: 'ct_state', nxm: 'NXM_NX_CT_STATE', oxm: [N1, 105], bytes: 4, mask: true, kind: 'ct_state' },
  { name: 'ct_zone', nxm: 'NXM_NX_CT_ZONE', oxm: [N1, 106], bytes: 2, mask: false, kind: 'dec' },
  { name: 'ct_mark', nxm: 'NXM_NX_CT_MARK', oxm: [N1, 107], bytes: 4, mask: true, kind: 'hex' },
  { name: 'ct_label', nxm: 'NXM_NX_CT_LABEL', oxm: [N1, 108], bytes: 16, mask: true, kind: 'hex128' },
  { name: 'metadata', nxm: 'OXM_OF_METADATA', oxm: [B, 2], bytes: 8, mask: true, kind: 'hex' },
  // OpenFlow 1.3 basic fields Open vSwitch does not implement: decoded and encoded, printed last.
  { name: 'in_phy_port', nxm: 'OXM_OF_IN_PHY_PORT', oxm: [B, 1], bytes: 4, mask: false, kind: 'port' },
  { name: 'pbb_isid', nxm: 'OXM_OF_PBB_ISID', oxm: [B, 37], bytes: 3, bits: 24, mask: true, kind: 'hex' },
  { name: 'ipv6_exthdr', nxm: 'OXM_OF_IPV6_EXTHDR', oxm: [B, 39], bytes: 2, bits: 9, mask: true, kind: 'hex' },
  // 64-bit registers as OXM (OpenFlow 1.5 class 0x8001); for 1.3 OVS sends them as two regs.
  ...Array.from({ length: 8 }, (_, i): Def => ({
    name: `xreg${i}`,
    nxm: `OXM_OF_PKT_REG${i}`,
    oxm: [0x8001, i],
    bytes: 8,
    mask: true,
    kind: 'hex',
  })),
];

export const FIELDS: readonly OxmField[] = defs.map((d, order) => ({
  name: d.name,
  mfName: d.mf ?? d.name,
  nxmName: d.nxm,
  aliases: d.aliases ?? [],
  cls: d.oxm[0],
  field: d.oxm[1],
  ...(d.exp !== undefined ? { exp: d.exp } : {}),
  nxmCls: (d.nx ?? d.oxm)[0],
  nxmField: (d.nx ?? d.oxm)[1],
  bytes: d.bytes,
  bits: d.bits ?? d.bytes * 8,
  maskable: d.mask,
  order,
  kind: d.kind,
}));

const byName = new Map<string, OxmField>();
const byHeader = new Map<number, OxmField>();
const byExpHeader = new Map<string, OxmField>();
for (const f of FIELDS) {
  byName.set(f.name, f);
  if (!byName.has(f.mfName)) byName.set(f.mfName, f);
  byName.set(f.nxmName, f);
  for (const a of f.aliases) byName.set(a, f);
  if (f.exp !== undefined) byExpHeader.set(`${f.exp}:${f.field}`, f);
  else byHeader.set((f.cls << 7) | f.field, f);
  byHeader.set((f.nxmCls << 7) | f.nxmField, f);
}
// The basic class (every packet_in's in_port) by plain array index: cheaper than the Map.
const basicByField: (OxmField | undefined)[] = Array.from({ length: 128 }, (_, i) => byHeader.get((OFPXMC_OPENFLOW_BASIC << 7) | i));

// OVS's own NXM aliases that name the same field under the other header.
byName.set('OXM_OF_IPV4_SRC', byName.get('nw_src')!);
byName.set('OXM_OF_IPV4_DST', byName.get('nw_dst')!);
byName.set('OXM_OF_TUNNEL_ID', byName.get('tun_id')!);
byName.set('OXM_OF_ETH_SRC', byName.get('dl_src')!);
byName.set('OXM_OF_ETH_DST', byName.get('dl_dst')!);

export function fieldByName(name: string): OxmField | undefined {
  return byName.get(name);
}

export function fieldByHeader(cls: number, field: number): OxmField | undefined {
  return cls === OFPXMC_OPENFLOW_BASIC ? basicByField[field] : byHeader.get((cls << 7) | field);
}

/** 32-bit NXM header of a field as used by reg_move / reg_load / ct zone. */
export function nxmHeader(f: OxmField): number {
  return ((f.nxmCls << 16) | (f.nxmField << 9) | f.bytes) >>> 0;
}

export function fieldByNxmHeader(header: number): OxmField | undefined {
  return byHeader.get((((header >>> 16) & 0xffff) << 7) | ((header >>> 9) & 0x7f));
}

export interface OxmTlv {
  field: OxmField;
  value: Uint8Array;
  mask?: Uint8Array;
}

export type Match = OxmTlv[];

/** Appends one OXM TLV (header + value [+ mask]). */
export function writeOxm(w: Writer, t: OxmTlv): void {
  const f = t.field;
  if (t.value.length !== f.bytes || (t.mask && t.mask.length !== f.bytes)) {
    throw new OpenFlowEncodeError(`OXM ${f.name}: value must be ${f.bytes} bytes`, { field: f.name });
  }
  const hasMask = t.mask !== undefined;
  const exp = f.exp !== undefined ? 4 : 0;
  w.ensure(8 + f.bytes * 2);
  w.u16(f.cls);
  w.u8((f.field << 1) | (hasMask ? 1 : 0));
  w.u8(exp + (hasMask ? f.bytes * 2 : f.bytes));
  if (exp) w.u32(f.exp!);
  w.bytes(t.value);
  if (hasMask) w.bytes(t.mask!);
}

/** ofp_match (type OXM) with padding to 8 bytes. */
export function writeMatch(w: Writer, m: Match): void {
  const start = w.pos;
  w.u16(1); // OFPMT_OXM
  w.u16(0);
  for (let i = 0; i < m.length; i++) writeOxm(w, m[i]!);
  w.set16(start + 2, w.pos - start);
  w.pad8(start);
}

// Whether the OXM whose header readOxmHeader() read last carries a mask (a module variable
// rather than a returned pair: the packet_in check walks every OXM without allocating).
let oxmHasMask = false;

/** Reads and checks one OXM header; unknown fields are a typed error (we cannot print or re-encode them faithfully). */
function readOxmHeader(r: Reader): OxmField {
  const cls = r.u16();
  const fb = r.u8();
  const len = r.u8();
  const hasMask = (fb & 1) === 1;
  const fieldNo = fb >> 1;
  let f: OxmField | undefined;
  let exp = 0;
  if (cls === OFPXMC_EXPERIMENTER) {
    const id = r.u32();
    exp = 4;
    f = byExpHeader.get(`${id}:${fieldNo}`);
    if (!f) throw new OpenFlowDecodeError(`unsupported experimenter OXM 0x${id.toString(16)} field ${fieldNo}`, { cls, experimenter: id, field: fieldNo });
  } else f = fieldByHeader(cls, fieldNo);
  if (!f) throw new OpenFlowDecodeError(`unknown OXM field class 0x${cls.toString(16)} field ${fieldNo}`, { cls, field: fieldNo });
  const want = exp + (hasMask ? f.bytes * 2 : f.bytes);
  if (len !== want) throw new OpenFlowDecodeError(`OXM ${f.name}: length ${len}, expected ${want}`, { field: f.name, len });
  oxmHasMask = hasMask;
  return f;
}

/** Reads one OXM TLV (value and mask are views into the frame). */
export function readOxm(r: Reader): OxmTlv {
  const f = readOxmHeader(r);
  const value = r.view(f.bytes, 'OXM value');
  if (!oxmHasMask) return { field: f, value };
  return { field: f, value, mask: r.view(f.bytes, 'OXM mask') };
}

const IN_PORT = byName.get('in_port')!;

/**
 * Checks an ofp_match exactly as readMatch() does (same typed errors) without building it, and
 * leaves r past its padding. Returns the frame offset of an unmasked in_port value, or -1.
 */
export function checkMatch(r: Reader): number {
  const start = r.pos;
  const type = r.u16();
  const len = r.u16();
  if (type !== 1) throw new OpenFlowDecodeError(`match type ${type} is not OXM`, { type });
  if (len < 4) throw new OpenFlowDecodeError(`match length ${len} < 4`, { len });
  const body = r.sub(len - 4, 'match');
  let inPortAt = -1;
  while (body.left > 0) {
    const f = readOxmHeader(body);
    if (f === IN_PORT && !oxmHasMask) inPortAt = body.pos;
    body.skip(f.bytes, 'OXM value');
    if (oxmHasMask) body.skip(f.bytes, 'OXM mask');
  }
  const padded = (len + 7) & ~7;
  r.skip(padded - (r.pos - start));
  return inPortAt;
}

/** Reads an ofp_match (incl. padding). */
export function readMatch(r: Reader): Match {
  const start = r.pos;
  const type = r.u16();
  const len = r.u16();
  if (type !== 1) throw new OpenFlowDecodeError(`match type ${type} is not OXM`, { type });
  if (len < 4) throw new OpenFlowDecodeError(`match length ${len} < 4`, { len });
  const body = r.sub(len - 4, 'match');
  const out: Match = [];
  while (body.left > 0) out.push(readOxm(body));
  const padded = (len + 7) & ~7;
  r.skip(padded - (r.pos - start));
  return out;
}

// ---- value helpers shared by the text layer -------------------------------------------------

const scratch8 = new DataView(new ArrayBuffer(8));

// Small values (a few bytes each, 100k+ flows) are carved from shared slabs: one typed-array
// object per value instead of a typed array plus its own ArrayBuffer, which halves the
// memory of a parsed flow table and most of the GC work of keeping it.
const SLAB = 64 * 1024;
let slab = new Uint8Array(SLAB);
let slabPos = 0;

/** A zeroed n-byte array (a view into a shared slab for small n). */
export function allocValue(n: number): Uint8Array {
  if (n > 256) return new Uint8Array(n);
  if (slabPos + n > SLAB) {
    slab = new Uint8Array(SLAB);
    slabPos = 0;
  }
  const v = slab.subarray(slabPos, slabPos + n);
  slabPos += n;
  return v;
}

export function bigToBytes(v: bigint, n: number): Uint8Array {
  const out = allocValue(n);
  // Whole 64-bit words through a DataView: far cheaper than byte-wise BigInt shifts.
  let x = BigInt.asUintN(n * 8, v);
  for (let end = n; end > 0; end -= 8) {
    scratch8.setBigUint64(0, BigInt.asUintN(64, x));
    const take = Math.min(8, end);
    for (let i = 0; i < take; i++) out[end - take + i] = scratch8.getUint8(8 - take + i);
    x >>= 64n;
  }
  return out;
}

export function bytesToBig(b: Uint8Array): bigint {
  let v = 0n;
  let i = 0;
  for (; i + 8 <= b.length; i += 8) {
    for (let k = 0; k < 8; k++) scratch8.setUint8(k, b[i + k]!);
    v = (v << 64n) | scratch8.getBigUint64(0);
  }
  for (; i < b.length; i++) v = (v << 8n) | BigInt(b[i]!);
  return v;
}

export function allOnes(n: number): Uint8Array {
  return allocValue(n).fill(0xff);
}

export function isAllOnes(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0xff) return false;
  return true;
}

export function isAllZeros(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}
