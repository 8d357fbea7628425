/**
 * OpenFlow 1.3 actions and instructions, including the Nicira extensions OVS
 * provides. Each kind has a small encode/decode pair; the shapes mirror the wire
 * (e.g. `load` stays NXAST_REG_LOAD, `set_field` stays OFPAT_SET_FIELD) so that
 * decode -> encode reproduces the same bytes.
 */
import { OpenFlowDecodeError, OpenFlowEncodeError } from './errors.js';
import { fieldByNxmHeader, nxmHeader, readOxm, writeOxm, type OxmField } from './fields.js';
import { Reader, type Writer } from './wire.js';

export const NX_VENDOR_ID = 0x00002320;
export const ONF_VENDOR_ID = 0x4f4e4600;

export const OFPAT = {
  OUTPUT: 0,
  SET_QUEUE: 21,
  GROUP: 22,
  PUSH_VLAN: 17,
  POP_VLAN: 18,
  DEC_NW_TTL: 24,
  SET_FIELD: 25,
  EXPERIMENTER: 0xffff,
} as const;

export const NXAST = {
  RESUBMIT: 1,
  REG_MOVE: 6,
  REG_LOAD: 7,
  NOTE: 8,
  RESUBMIT_TABLE: 14,
  LEARN: 16,
  CONJUNCTION: 34,
  CT: 35,
  NAT: 36,
  CT_CLEAR: 43,
} as const;

/** OpenFlow 1.3 reserved port numbers. */
export const OFPP = {
  MAX: 0xffffff00,
  IN_PORT: 0xfffffff8,
  TABLE: 0xfffffff9,
  NORMAL: 0xfffffffa,
  FLOOD: 0xfffffffb,
  ALL: 0xfffffffc,
  CONTROLLER: 0xfffffffd,
  LOCAL: 0xfffffffe,
  ANY: 0xffffffff,
} as const;

/** A subfield reference like NXM_NX_REG0[0..15]. */
export interface Subfield {
  field: OxmField;
  ofs: number;
  nBits: number;
}

export const NX_CT_F_COMMIT = 1;
export const NX_CT_F_FORCE = 2;
export const NX_CT_RECIRC_NONE = 255;

export const NX_NAT_F_SRC = 1;
export const NX_NAT_F_DST = 2;
export const NX_NAT_F_PERSISTENT = 4;
export const NX_NAT_F_PROTO_HASH = 8;
export const NX_NAT_F_PROTO_RANDOM = 16;

export type Action =
  | { type: 'output'; port: number; maxLen: number }
  | { type: 'group'; groupId: number }
  | { type: 'set_queue'; queueId: number }
  | { type: 'push_vlan'; ethertype: number }
  | { type: 'pop_vlan' }
  | { type: 'dec_ttl' }
  | { type: 'set_field'; field: OxmField; value: Uint8Array }
  | { type: 'load'; dst: Subfield; value: bigint }
  | { type: 'move'; src: Subfield; dst: Subfield }
  | { type: 'resubmit'; inPort: number; table: number }
  | { type: 'conjunction'; id: number; clause: number; nClauses: number }
  | { type: 'ct'; flags: number; zoneSrc?: Subfield; zoneImm: number; table: number; alg: number; actions: Action[] }
  | {
      type: 'nat';
      flags: number;
      ipv4Min?: number;
      ipv4Max?: number;
      protoMin?: number;
      protoMax?: number;
    }
  | { type: 'ct_clear' }
  | { type: 'note'; data: Uint8Array }
  | Learn;

/** One flow_mod_spec of a learn action. Immediate values are right-aligned bytes of ceil(nBits/8). */
export type LearnSpec =
  | { kind: 'match' | 'load'; dst: Subfield; src: Subfield; value?: undefined }
  | { kind: 'match' | 'load'; dst: Subfield; value: Uint8Array; src?: undefined }
  | { kind: 'output'; src: Subfield; value?: undefined };

export interface Learn {
  type: 'learn';
  table: number;
  idleTimeout: number;
  hardTimeout: number;
  finIdleTimeout: number;
  finHardTimeout: number;
  priority: number;
  cookie: bigint;
  flags: number;
  specs: LearnSpec[];
}

export const NX_LEARN_F_SEND_FLOW_REM = 1;
export const NX_LEARN_F_DELETE_LEARNED = 2;

export type Instruction =
  | { type: 'goto_table'; table: number }
  | { type: 'write_metadata'; metadata: bigint; mask: bigint }
  | { type: 'write_actions'; actions: Action[] }
  | { type: 'apply_actions'; actions: Action[] }
  | { type: 'clear_actions' }
  | { type: 'meter'; meterId: number };

export const OFPIT = {
  GOTO_TABLE: 1,
  WRITE_METADATA: 2,
  WRITE_ACTIONS: 3,
  APPLY_ACTIONS: 4,
  CLEAR_ACTIONS: 5,
  METER: 6,
} as const;

// ---- encode ---------------------------------------------------------------------------------

function nxHeader(w: Writer, len: number, subtype: number): void {
  w.u16(OFPAT.EXPERIMENTER);
  w.u16(len);
  w.u32(NX_VENDOR_ID);
  w.u16(subtype);
}

function ofsNbits(sf: Subfield): number {
  return (sf.ofs << 6) | (sf.nBits - 1);
}

function checkSubfield(sf: Subfield): void {
  if (sf.nBits < 1 || sf.ofs < 0 || sf.ofs + sf.nBits > sf.field.bits) {
    throw new OpenFlowEncodeError(`subfield ${sf.field.nxmName}[${sf.ofs}..${sf.ofs + sf.nBits - 1}] out of range`, {
      field: sf.field.name,
    });
  }
}

export function writeAction(w: Writer, a: Action): void {
  switch (a.type) {
    case 'output':
      w.ensure(16);
      w.u16(OFPAT.OUTPUT);
      w.u16(16);
      w.u32(a.port);
      w.u16(a.maxLen);
      w.zeros(6);
      return;
    case 'group':
      w.u16(OFPAT.GROUP);
      w.u16(8);
      w.u32(a.groupId);
      return;
    case 'set_queue':
      w.u16(OFPAT.SET_QUEUE);
      w.u16(8);
      w.u32(a.queueId);
      return;
    case 'push_vlan':
      w.u16(OFPAT.PUSH_VLAN);
      w.u16(8);
      w.u16(a.ethertype);
      w.zeros(2);
      return;
    case 'pop_vlan':
    case 'dec_ttl':
      w.u16(a.type === 'pop_vlan' ? OFPAT.POP_VLAN : OFPAT.DEC_NW_TTL);
      w.u16(8);
      w.zeros(4);
      return;
    case 'set_field': {
      const start = w.pos;
      w.u16(OFPAT.SET_FIELD);
      w.u16(0);
      writeOxm(w, { field: a.field, value: a.value });
      w.pad8(start);
      w.set16(start + 2, w.pos - start);
      return;
    }
    case 'load':
      checkSubfield(a.dst);
      nxHeader(w, 24, NXAST.REG_LOAD);
      w.u16(ofsNbits(a.dst));
      w.u32(nxmHeader(a.dst.field));
      w.u64(a.value);
      return;
    case 'move':
      checkSubfield(a.src);
      checkSubfield(a.dst);
      if (a.src.nBits !== a.dst.nBits) throw new OpenFlowEncodeError('move: source and destination widths differ', {});
      nxHeader(w, 24, NXAST.REG_MOVE);
      w.u16(a.src.nBits);
      w.u16(a.src.ofs);
      w.u16(a.dst.ofs);
      w.u32(nxmHeader(a.src.field));
      w.u32(nxmHeader(a.dst.field));
      return;
    case 'resubmit':
      // ovs-ofctl always sends the table form, even for resubmit:PORT.
      nxHeader(w, 16, NXAST.RESUBMIT_TABLE);
      w.u16(a.inPort);
      w.u8(a.table);
      w.zeros(3);
      return;
    case 'conjunction':
      nxHeader(w, 16, NXAST.CONJUNCTION);
      w.u8(a.clause);
      w.u8(a.nClauses);
      w.u32(a.id);
      return;
    case 'ct_clear':
      nxHeader(w, 16, NXAST.CT_CLEAR);
      w.zeros(6);
      return;
    case 'note': {
      const start = w.pos;
      nxHeader(w, 0, NXAST.NOTE);
      w.bytes(a.data);
      if (w.pos - start < 16) w.zeros(16 - (w.pos - start));
      w.pad8(start);
      w.set16(start + 2, w.pos - start);
      return;
    }
    case 'learn': {
      const start = w.pos;
      nxHeader(w, 0, NXAST.LEARN);
      w.u16(a.idleTimeout);
      w.u16(a.hardTimeout);
      w.u16(a.priority);
      w.u64(a.cookie);
      w.u16(a.flags);
      w.u8(a.table);
      w.u8(0);
      w.u16(a.finIdleTimeout);
      w.u16(a.finHardTimeout);
      for (const sp of a.specs) {
        const nBits = sp.kind === 'output' ? sp.src.nBits : sp.dst.nBits;
        const dstType = sp.kind === 'match' ? 0 : sp.kind === 'load' ? 1 << 11 : 2 << 11;
        if (nBits < 1 || nBits > 0x3ff) throw new OpenFlowEncodeError(`learn: ${nBits}-bit spec`, {});
        w.u16(nBits | dstType | (sp.value !== undefined ? 1 << 13 : 0));
        if (sp.value !== undefined) {
          const n = 2 * Math.ceil(nBits / 16);
          if (sp.value.length > n) throw new OpenFlowEncodeError('learn: immediate value too long', {});
          w.zeros(n - sp.value.length);
          w.bytes(sp.value);
        } else {
          checkSubfield(sp.src);
          w.u32(nxmHeader(sp.src.field));
          w.u16(sp.src.ofs);
        }
        if (sp.kind !== 'output') {
          checkSubfield(sp.dst);
          w.u32(nxmHeader(sp.dst.field));
          w.u16(sp.dst.ofs);
        }
      }
      w.pad8(start);
      w.set16(start + 2, w.pos - start);
      return;
    }
    case 'ct': {
      const start = w.pos;
      nxHeader(w, 0, NXAST.CT);
      w.u16(a.flags);
      if (a.zoneSrc) {
        checkSubfield(a.zoneSrc);
        w.u32(nxmHeader(a.zoneSrc.field));
        w.u16(ofsNbits(a.zoneSrc));
      } else {
        w.u32(0);
        w.u16(a.zoneImm);
      }
      w.u8(a.table);
      w.zeros(3);
      w.u16(a.alg);
      for (const inner of a.actions) writeAction(w, inner);
      w.set16(start + 2, w.pos - start);
      return;
    }
    case 'nat': {
      const start = w.pos;
      nxHeader(w, 0, NXAST.NAT);
      w.zeros(2);
      w.u16(a.flags);
      const rpAt = w.pos;
      w.u16(0);
      let rp = 0;
      if (a.ipv4Min) (rp |= 1), w.u32(a.ipv4Min);
      if (a.ipv4Max) (rp |= 2), w.u32(a.ipv4Max);
      if (a.ipv4Min !== undefined || a.ipv4Max !== undefined) {
        if (a.protoMin) (rp |= 16), w.u16(a.protoMin);
        if (a.protoMax) (rp |= 32), w.u16(a.protoMax);
      }
      w.set16(rpAt, rp);
      w.pad8(start);
      w.set16(start + 2, w.pos - start);
      return;
    }
  }
}

export function writeActions(w: Writer, actions: readonly Action[]): void {
  for (let i = 0; i < actions.length; i++) writeAction(w, actions[i]!);
}

export function writeInstruction(w: Writer, ins: Instruction): void {
  switch (ins.type) {
    case 'goto_table':
      w.u16(OFPIT.GOTO_TABLE);
      w.u16(8);
      w.u8(ins.table);
      w.zeros(3);
      return;
    case 'write_metadata':
      w.u16(OFPIT.WRITE_METADATA);
      w.u16(24);
      w.zeros(4);
      w.u64(ins.metadata);
      w.u64(ins.mask);
      return;
    case 'apply_actions':
    case 'write_actions': {
      const start = w.pos;
      w.u16(ins.type === 'apply_actions' ? OFPIT.APPLY_ACTIONS : OFPIT.WRITE_ACTIONS);
      w.u16(0);
      w.zeros(4);
      writeActions(w, ins.actions);
      w.set16(start + 2, w.pos - start);
      return;
    }
    case 'clear_actions':
      w.u16(OFPIT.CLEAR_ACTIONS);
      w.u16(8);
      w.zeros(4);
      return;
    case 'meter':
      w.u16(OFPIT.METER);
      w.u16(8);
      w.u32(ins.meterId);
      return;
  }
}

export function writeInstructions(w: Writer, list: readonly Instruction[]): void {
  for (let i = 0; i < list.length; i++) writeInstruction(w, list[i]!);
}

// ---- decode ---------------------------------------------------------------------------------

function readSubfield(header: number, ofsNbits: number): Subfield {
  const field = fieldByNxmHeader(header);
  if (!field) throw new OpenFlowDecodeError(`unknown NXM field header 0x${header.toString(16)}`, { header });
  const sf = { field, ofs: ofsNbits >> 6, nBits: (ofsNbits & 0x3f) + 1 };
  if (sf.ofs + sf.nBits > field.bits) {
    throw new OpenFlowDecodeError(`subfield ${field.nxmName}[${sf.ofs}..] out of range`, { field: field.name });
  }
  return sf;
}

function readNx(r: Reader, len: number): Action {
  const vendor = r.u32();
  if (vendor !== NX_VENDOR_ID) {
    throw new OpenFlowDecodeError(`unsupported experimenter action 0x${vendor.toString(16)}`, { vendor });
  }
  const subtype = r.u16();
  const fixed = (n: number) => {
    if (len !== n) throw new OpenFlowDecodeError(`NX action ${subtype}: length ${len}, expected ${n}`, { subtype, len });
  };
  switch (subtype) {
    case NXAST.RESUBMIT:
    case NXAST.RESUBMIT_TABLE: {
      fixed(16);
      const inPort = r.u16();
      const table = r.u8();
      r.skip(3);
      return { type: 'resubmit', inPort, table: subtype === NXAST.RESUBMIT ? 255 : table };
    }
    case NXAST.REG_MOVE: {
      fixed(24);
      const nBits = r.u16();
      const srcOfs = r.u16();
      const dstOfs = r.u16();
      const src = fieldByNxmHeader(r.u32());
      const dst = fieldByNxmHeader(r.u32());
      if (!src || !dst) throw new OpenFlowDecodeError('move: unknown field', {});
      if (nBits < 1 || srcOfs + nBits > src.bits || dstOfs + nBits > dst.bits) {
        throw new OpenFlowDecodeError('move: bit range out of field', { nBits, srcOfs, dstOfs });
      }
      return { type: 'move', src: { field: src, ofs: srcOfs, nBits }, dst: { field: dst, ofs: dstOfs, nBits } };
    }
    case NXAST.REG_LOAD: {
      fixed(24);
      const on = r.u16();
      const dst = readSubfield(r.u32(), on);
      return { type: 'load', dst, value: r.u64() };
    }
    case NXAST.CONJUNCTION: {
      fixed(16);
      const clause = r.u8();
      const nClauses = r.u8();
      return { type: 'conjunction', clause, nClauses, id: r.u32() };
    }
    case NXAST.CT_CLEAR:
      fixed(16);
      r.skip(6);
      return { type: 'ct_clear' };
    case NXAST.NOTE:
      return { type: 'note', data: r.bytes(len - 10) };
    case NXAST.LEARN: {
      if (len < 32) throw new OpenFlowDecodeError(`learn action length ${len} < 32`, { len });
      const b = r.sub(len - 10, 'learn');
      const a: Learn = {
        type: 'learn',
        idleTimeout: b.u16(),
        hardTimeout: b.u16(),
        priority: b.u16(),
        cookie: b.u64(),
        flags: b.u16(),
        table: b.u8(),
        finIdleTimeout: 0,
        finHardTimeout: 0,
        specs: [],
      };
      b.skip(1);
      a.finIdleTimeout = b.u16();
      a.finHardTimeout = b.u16();
      while (b.left >= 2) {
        const h = b.u16();
        if (h === 0) break; // padding
        const nBits = h & 0x3ff;
        const imm = (h >> 13) & 1;
        const dstType = (h >> 11) & 3;
        if (dstType === 3 || h >> 14) throw new OpenFlowDecodeError(`learn: bad spec header 0x${h.toString(16)}`, { header: h });
        const sub = (): Subfield => {
          const header = b.u32();
          const ofs = b.u16();
          return readSubfield(header, (ofs << 6) | (nBits - 1));
        };
        let value: Uint8Array | undefined;
        let src: Subfield | undefined;
        if (imm) {
          if (dstType === 2) throw new OpenFlowDecodeError('learn: output from an immediate', {});
          value = b.bytes(2 * Math.ceil(nBits / 16)).subarray(2 * Math.ceil(nBits / 16) - Math.ceil(nBits / 8));
        } else src = sub();
        if (dstType === 2) a.specs.push({ kind: 'output', src: src! });
        else {
          const kind = dstType === 0 ? ('match' as const) : ('load' as const);
          const dst = sub();
          a.specs.push(value ? { kind, dst, value } : { kind, dst, src: src! });
        }
      }
      while (b.left > 0) if (b.u8() !== 0) throw new OpenFlowDecodeError('learn: nonzero padding', {});
      return a;
    }
    case NXAST.CT: {
      if (len < 24) throw new OpenFlowDecodeError(`ct action length ${len} < 24`, { len });
      const flags = r.u16();
      const zoneHeader = r.u32();
      const zoneVal = r.u16();
      const table = r.u8();
      r.skip(3);
      const alg = r.u16();
      const actions = readActionList(r.sub(len - 24, 'ct actions'));
      const base = { type: 'ct' as const, flags, table, alg, actions };
      return zoneHeader ? { ...base, zoneSrc: readSubfield(zoneHeader, zoneVal), zoneImm: 0 } : { ...base, zoneImm: zoneVal };
    }
    case NXAST.NAT: {
      if (len < 16) throw new OpenFlowDecodeError(`nat action length ${len} < 16`, { len });
      const body = r.sub(len - 10, 'nat');
      body.skip(2);
      const flags = body.u16();
      const rp = body.u16();
      const a: Action = { type: 'nat', flags };
      if (rp & ~0x33) throw new OpenFlowDecodeError('nat: IPv6 ranges are not supported', { rangePresent: rp });
      if (rp & 1) a.ipv4Min = body.u32();
      if (rp & 2) a.ipv4Max = body.u32();
      if (rp & 16) a.protoMin = body.u16();
      if (rp & 32) a.protoMax = body.u16();
      return a;
    }
    default:
      throw new OpenFlowDecodeError(`unsupported Nicira action subtype ${subtype}`, { subtype });
  }
}

function readAction(r: Reader): Action {
  const start = r.pos;
  const type = r.u16();
  const len = r.u16();
  if (len < 8 || len % 8 !== 0) throw new OpenFlowDecodeError(`action length ${len} is not a positive multiple of 8`, { type, len });
  r.pos = start;
  r.need(len, 'action');
  const body = new Reader(r.buf, start + 4, start + len, 'action');
  r.pos = start + len;
  const fixed = (n: number) => {
    if (len !== n) throw new OpenFlowDecodeError(`action ${type}: length ${len}, expected ${n}`, { type, len });
  };
  switch (type) {
    case OFPAT.OUTPUT: {
      fixed(16);
      const port = body.u32();
      return { type: 'output', port, maxLen: body.u16() };
    }
    case OFPAT.GROUP:
      fixed(8);
      return { type: 'group', groupId: body.u32() };
    case OFPAT.SET_QUEUE:
      fixed(8);
      return { type: 'set_queue', queueId: body.u32() };
    case OFPAT.PUSH_VLAN:
      fixed(8);
      return { type: 'push_vlan', ethertype: body.u16() };
    case OFPAT.POP_VLAN:
      fixed(8);
      return { type: 'pop_vlan' };
    case OFPAT.DEC_NW_TTL:
      fixed(8);
      return { type: 'dec_ttl' };
    case OFPAT.SET_FIELD: {
      const t = readOxm(body);
      if (t.mask) throw new OpenFlowDecodeError('set_field with a mask is not valid in OpenFlow 1.3', { field: t.field.name });
      return { type: 'set_field', field: t.field, value: t.value };
    }
    case OFPAT.EXPERIMENTER:
      return readNx(body, len);
    default:
      throw new OpenFlowDecodeError(`unsupported action type ${type}`, { type });
  }
}

export function readActionList(r: Reader): Action[] {
  const out: Action[] = [];
  while (r.left > 0) out.push(readAction(r));
  return out;
}

export function readInstructions(r: Reader): Instruction[] {
  const out: Instruction[] = [];
  while (r.left > 0) {
    const start = r.pos;
    const type = r.u16();
    const len = r.u16();
    if (len < 8 || len % 8 !== 0) throw new OpenFlowDecodeError(`instruction length ${len} is not a positive multiple of 8`, { type, len });
    r.pos = start;
    const body = r.sub(len, 'instruction');
    body.skip(4);
    const fixed = (n: number) => {
      if (len !== n) throw new OpenFlowDecodeError(`instruction ${type}: length ${len}, expected ${n}`, { type, len });
    };
    switch (type) {
      case OFPIT.GOTO_TABLE:
        fixed(8);
        out.push({ type: 'goto_table', table: body.u8() });
        break;
      case OFPIT.WRITE_METADATA:
        fixed(24);
        body.skip(4);
        out.push({ type: 'write_metadata', metadata: body.u64(), mask: body.u64() });
        break;
      case OFPIT.WRITE_ACTIONS:
      case OFPIT.APPLY_ACTIONS:
        body.skip(4);
        out.push({ type: type === OFPIT.APPLY_ACTIONS ? 'apply_actions' : 'write_actions', actions: readActionList(body) });
        break;
      case OFPIT.CLEAR_ACTIONS:
        fixed(8);
        out.push({ type: 'clear_actions' });
        break;
      case OFPIT.METER:
        fixed(8);
        out.push({ type: 'meter', meterId: body.u32() });
        break;
      default:
        throw new OpenFlowDecodeError(`unsupported instruction type ${type}`, { type });
    }
  }
  return out;
}
