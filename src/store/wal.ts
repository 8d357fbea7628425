/**
 * Write-ahead-log framing, pure: each record is
 *   u32 LE payload length | u32 LE CRC-32 of the payload | payload (UTF-8 JSON)
 * A reader stops at the first frame that is short, oversized or fails its CRC: that is
 * the torn tail a crash (kill -9, power loss mid-write) leaves behind.
 */

const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (IEEE, as zlib). */
export function crc32(buf: Uint8Array, start = 0, end = buf.length): number {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export const FRAME_HEADER = 8;
/** Upper bound on one record; a larger length field can only be garbage. */
export const MAX_FRAME = 64 * 1024 * 1024;

export function encodeFrame(payload: string): Buffer {
  const len = Buffer.byteLength(payload);
  const buf = Buffer.allocUnsafe(FRAME_HEADER + len);
  buf.write(payload, FRAME_HEADER, 'utf8');
  buf.writeUInt32LE(len, 0);
  buf.writeUInt32LE(crc32(buf, FRAME_HEADER, FRAME_HEADER + len), 4);
  return buf;
}

export interface DecodedFrames {
  payloads: string[];
  /** Byte offset just after the last good frame. */
  goodLength: number;
  /** Why decoding stopped before the end of the buffer, if it did. */
  tornReason?: 'short-header' | 'short-payload' | 'bad-length' | 'bad-crc';
}

export function decodeFrames(buf: Buffer): DecodedFrames {
  const payloads: string[] = [];
  let off = 0;
  while (off < buf.length) {
    if (buf.length - off < FRAME_HEADER) return { payloads, goodLength: off, tornReason: 'short-header' };
    const len = buf.readUInt32LE(off);
    const crc = buf.readUInt32LE(off + 4);
    if (len > MAX_FRAME) return { payloads, goodLength: off, tornReason: 'bad-length' };
    if (buf.length - off - FRAME_HEADER < len) return { payloads, goodLength: off, tornReason: 'short-payload' };
    const start = off + FRAME_HEADER;
    if (crc32(buf, start, start + len) !== crc) return { payloads, goodLength: off, tornReason: 'bad-crc' };
    payloads.push(buf.toString('utf8', start, start + len));
    off = start + len;
  }
  return { payloads, goodLength: off };
}

const NAME_DIGITS = 16;
export function segmentName(firstLsn: number): string {
  return `wal-${String(firstLsn).padStart(NAME_DIGITS, '0')}.log`;
}
export function snapshotName(lsn: number): string {
  return `snap-${String(lsn).padStart(NAME_DIGITS, '0')}.bin`;
}
/** Parses `wal-N.log` / `snap-N.bin`; undefined for any other file. */
export function parseName(name: string): { kind: 'wal' | 'snap'; lsn: number } | undefined {
  const m = /^(wal|snap)-(\d{16})\.(log|bin)$/.exec(name);
  if (!m) return undefined;
  if ((m[1] === 'wal') !== (m[3] === 'log')) return undefined;
  return { kind: m[1] as 'wal' | 'snap', lsn: Number(m[2]) };
}
