/**
 * Deterministic address allocation: endpoint IPv4/IPv6 addresses and MACs, network
 * VNIs and logical port keys.
 *
 * Choice: hash-based probing from the object's stable id, with the previous
 * allocation as a sticky input. Every object first keeps what it had before (if
 * still valid and free), fixed values from the document are reserved up front, and
 * only then do new objects probe hash(id, 0), hash(id, 1), ... until a free slot.
 * So adding an object never renumbers another one when the previous allocation is
 * given (the controller persists it), and without it the result still depends only
 * on the set of ids (never on document order), with renumbering only on a hash
 * collision. Ordering by index instead would renumber everything after an insert.
 */
import { Address4, Address6 } from 'ip-address';
import { macToNumber, numberToMac } from '../util/mac.js';

// ---- hashing ----------------------------------------------------------------------------------

/** 32-bit FNV-1a of a string (UTF-16 code units; ids are ASCII). */
export function fnv32(s: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  // final avalanche (murmur3 fmix) so short ids spread over small ranges
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/** Slot `attempt` of `id`'s probe sequence in [0, size) (size < 2^53). */
export function probeSlot(id: string, attempt: number, size: number): number {
  const hi = fnv32(id, 0x811c9dc5 ^ attempt);
  if (size <= 0x100000000) return hi % size;
  const lo = fnv32(id, 0x9747b28c ^ attempt);
  // 21 high bits keep the product exact in a double (< 2^53).
  return ((hi & 0x1fffff) * 0x100000000 + lo) % size;
}

/** Same for bigint ranges (IPv6). */
export function probeSlotBig(id: string, attempt: number, size: bigint): bigint {
  let v = 0n;
  for (let k = 0; k < 4; k++) v = (v << 32n) | BigInt(fnv32(id, (0x811c9dc5 + k * 0x9e3779b9) ^ attempt));
  return v % size;
}

/**
 * Picks a value for `id` from [lo, lo+size): previous if allowed, else the first
 * free probe. `isFree` says whether a value may be taken. Returns undefined when
 * `maxAttempts` probes fail and a linear scan finds nothing.
 */
export function allocate(id: string, lo: number, size: number, isFree: (v: number) => boolean, previous?: number, onlyPrevious = false): number | undefined {
  if (previous !== undefined && previous >= lo && previous < lo + size && isFree(previous)) return previous;
  if (onlyPrevious) return undefined;
  for (let a = 0; a < 32; a++) {
    const v = lo + probeSlot(id, a, size);
    if (isFree(v)) return v;
  }
  // Dense range: continue linearly from the first probe (deterministic).
  const start = probeSlot(id, 0, size);
  for (let i = 1; i < size; i++) {
    const v = lo + ((start + i) % size);
    if (isFree(v)) return v;
  }
  return undefined;
}

export function allocateBig(id: string, lo: bigint, size: bigint, isFree: (v: bigint) => boolean, previous?: bigint, onlyPrevious = false): bigint | undefined {
  if (previous !== undefined && previous >= lo && previous < lo + size && isFree(previous)) return previous;
  if (onlyPrevious) return undefined;
  for (let a = 0; a < 64; a++) {
    const v = lo + probeSlotBig(id, a, size);
    if (isFree(v)) return v;
  }
  const start = probeSlotBig(id, 0, size);
  const limit = size < 1000000n ? size : 1000000n;
  for (let i = 1n; i < limit; i++) {
    const v = lo + ((start + i) % size);
    if (isFree(v)) return v;
  }
  return undefined;
}

// ---- addresses --------------------------------------------------------------------------------

export interface Cidr4 {
  base: number;
  len: number;
}
export interface Cidr6 {
  base: bigint;
  len: number;
}

/** Parses "a.b.c.d" into a uint32, or undefined. */
export function parseIp4(s: string): number | undefined {
  if (!Address4.isValid(s) || s.includes('/')) return undefined;
  const p = s.split('.').map(Number);
  if (p.length !== 4) return undefined;
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

export function formatIp4(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

export function parseIp6(s: string): bigint | undefined {
  if (s.includes('/') || !Address6.isValid(s)) return undefined;
  return new Address6(s).bigInt();
}

export function formatIp6(v: bigint): string {
  return Address6.fromBigInt(v).correctForm();
}

/** Parses a CIDR; `hostBits` reports whether the address had bits set beyond the prefix. */
export function parseCidr4(s: string): (Cidr4 & { hostBits: boolean }) | undefined {
  const i = s.indexOf('/');
  if (i < 0) return undefined;
  const ip = parseIp4(s.slice(0, i));
  const len = Number(s.slice(i + 1));
  if (ip === undefined || !/^\d{1,2}$/.test(s.slice(i + 1)) || len > 32) return undefined;
  const mask = mask4(len);
  return { base: (ip & mask) >>> 0, len, hostBits: (ip & ~mask) >>> 0 !== 0 };
}

export function parseCidr6(s: string): (Cidr6 & { hostBits: boolean }) | undefined {
  const i = s.indexOf('/');
  if (i < 0) return undefined;
  const ip = parseIp6(s.slice(0, i));
  const len = Number(s.slice(i + 1));
  if (ip === undefined || !/^\d{1,3}$/.test(s.slice(i + 1)) || len > 128) return undefined;
  const mask = mask6(len);
  return { base: ip & mask, len, hostBits: (ip & ~mask & ((1n << 128n) - 1n)) !== 0n };
}

export function mask4(len: number): number {
  return len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
}
export function mask6(len: number): bigint {
  return len === 0 ? 0n : (((1n << BigInt(len)) - 1n) << BigInt(128 - len)) & ((1n << 128n) - 1n);
}

export function in4(c: Cidr4, ip: number): boolean {
  return (ip & mask4(c.len)) >>> 0 === c.base;
}
export function in6(c: Cidr6, ip: bigint): boolean {
  return (ip & mask6(c.len)) === c.base;
}
export function overlap4(a: Cidr4, b: Cidr4): boolean {
  const len = Math.min(a.len, b.len);
  return (a.base & mask4(len)) >>> 0 === (b.base & mask4(len)) >>> 0;
}
export function overlap6(a: Cidr6, b: Cidr6): boolean {
  const m = mask6(Math.min(a.len, b.len));
  return (a.base & m) === (b.base & m);
}
export function formatCidr4(c: Cidr4): string {
  return `${formatIp4(c.base)}/${c.len}`;
}
export function formatCidr6(c: Cidr6): string {
  return `${formatIp6(c.base)}/${c.len}`;
}

/** Host addresses an IPv4 subnet offers: [first, last] (network and broadcast excluded below /31). */
export function usable4(c: Cidr4): [number, number] {
  const size = 2 ** (32 - c.len);
  if (c.len >= 31) return [c.base, c.base + size - 1];
  return [c.base + 1, c.base + size - 2];
}
/** IPv6: the subnet-router anycast address (all-zero host part) is excluded. */
export function usable6(c: Cidr6): [bigint, bigint] {
  const size = 1n << BigInt(128 - c.len);
  if (c.len === 128) return [c.base, c.base];
  return [c.base + 1n, c.base + size - 1n];
}

// ---- MACs ---------------------------------------------------------------------------------------

/** Endpoint MACs IPAM hands out: locally administered unicast 0a:xx:xx:xx:xx:xx. */
export const ENDPOINT_MAC_PREFIX = 0x0a;
/** Gateway MACs: 0e:00:00 + the network's VNI, so they never collide with each other. */
export const GATEWAY_MAC_PREFIX = '0e:00:00';

/** A (validated) MAC as a number; NaN for text that is not a MAC, which equals nothing, so it never collides. */
export function parseMac(s: string): number {
  return macToNumber(s) ?? Number.NaN;
}
/** Number below 2^48 -> "0a:00:00:00:00:01". */
export const formatMac = numberToMac;
export function gatewayMac(vni: number): string {
  return formatMac(0x0e0000000000 + vni);
}

// ---- the allocation record ----------------------------------------------------------------------

/** What IPAM decided, keyed by stable ids; the controller persists it and passes it back. */
export interface Allocation {
  /** network id ("tenant/network") -> VNI */
  vni: Record<string, number>;
  /** endpoint id ("tenant/endpoint") -> address / MAC / logical port key */
  ip: Record<string, string>;
  ip6: Record<string, string>;
  mac: Record<string, string>;
  port: Record<string, number>;
}

export function emptyAllocation(): Allocation {
  return { vni: {}, ip: {}, ip6: {}, mac: {}, port: {} };
}

/** VNIs IPAM picks from (fixed VNIs may use the whole 24-bit range). */
export const AUTO_VNI_MIN = 0x1000;
export const VNI_MAX = 0xffffff;
/** Logical port keys per network (reg14/reg15); 0 means "none", 0x8000+ is reserved for the pipeline. */
export const PORT_KEY_MIN = 1;
export const PORT_KEY_MAX = 0x7fff;
