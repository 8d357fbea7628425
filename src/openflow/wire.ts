/**
 * Byte-level helpers. Writer encodes into one growing Buffer (no per-field
 * allocation); Reader checks every read against the end of the current frame so
 * a decoder can never read past it, and turns short input into a typed error.
 */
import { OpenFlowDecodeError } from './errors.js';

export class Writer {
  buf: Buffer;
  pos = 0;
  private readonly size: number;

  constructor(size = 4096) {
    this.size = size;
    this.buf = Buffer.allocUnsafe(size);
  }

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v & 0xff;
  }

  u16(v: number): void {
    this.ensure(2);
    const b = this.buf;
    b[this.pos] = (v >>> 8) & 0xff;
    b[this.pos + 1] = v & 0xff;
    this.pos += 2;
  }

  u32(v: number): void {
    this.ensure(4);
    // Byte stores beat writeUInt32BE (argument validation) on the hot path.
    const b = this.buf;
    const p = this.pos;
    b[p] = (v >>> 24) & 0xff;
    b[p + 1] = (v >>> 16) & 0xff;
    b[p + 2] = (v >>> 8) & 0xff;
    b[p + 3] = v & 0xff;
    this.pos = p + 4;
  }

  u64(v: bigint): void {
    this.ensure(8);
    this.buf.writeBigUInt64BE(BigInt.asUintN(64, v), this.pos);
    this.pos += 8;
  }

  bytes(src: Uint8Array): void {
    const n = src.length;
    this.ensure(n);
    if (n <= 16) {
      const b = this.buf;
      for (let i = 0; i < n; i++) b[this.pos + i] = src[i]!;
    } else this.buf.set(src, this.pos);
    this.pos += n;
  }

  zeros(n: number): void {
    this.ensure(n);
    if (n <= 16) {
      const b = this.buf;
      for (let i = 0; i < n; i++) b[this.pos + i] = 0;
    } else this.buf.fill(0, this.pos, this.pos + n);
    this.pos += n;
  }

  /** Pads with zeros so that (pos - start) is a multiple of 8. */
  pad8(start: number): void {
    const rem = (this.pos - start) % 8;
    if (rem) this.zeros(8 - rem);
  }

  set16(at: number, v: number): void {
    this.buf[at] = (v >>> 8) & 0xff;
    this.buf[at + 1] = v & 0xff;
  }

  /**
   * Hands out everything written so far without copying; later writes go to
   * the unused tail (or a new buffer), so the returned bytes are never touched again.
   */
  take(): Buffer {
    const n = this.pos;
    const out = this.buf.subarray(0, n);
    // Keep writing into the tail only while it can hold another batch like this one: a tail
    // that is too small makes ensure() allocate and copy in the middle of the next batch
    // (and shrinks the buffer batch after batch).
    const rest = this.buf.length - n;
    this.buf = rest >= Math.max(1024, n) ? this.buf.subarray(n) : Buffer.allocUnsafe(Math.max(this.size, 2 * n));
    this.pos = 0;
    return out;
  }

  /** Copy of what was written; the writer is reset for reuse. */
  copyOut(): Buffer {
    const out = Buffer.from(this.buf.subarray(0, this.pos));
    this.pos = 0;
    return out;
  }
}

export class Reader {
  // The frame's ArrayBuffer and offset, fetched once per frame (shared with sub-readers):
  // the typed-array getters cost about as much as making the view itself.
  private ab: ArrayBufferLike | null = null;
  private base = 0;

  constructor(
    readonly buf: Buffer,
    public pos: number,
    readonly end: number,
    readonly what = 'message',
  ) {}

  need(n: number, what = this.what): void {
    if (n < 0 || this.pos + n > this.end) {
      throw new OpenFlowDecodeError(`truncated ${what}: need ${n} bytes at offset ${this.pos}, have ${this.end - this.pos}`, {
        offset: this.pos,
        need: n,
        have: this.end - this.pos,
      });
    }
  }

  get left(): number {
    return this.end - this.pos;
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }

  // Byte loads after need(): readUInt*BE would check the bounds a second time.
  u16(): number {
    this.need(2);
    const b = this.buf;
    const p = this.pos;
    this.pos = p + 2;
    return (b[p]! << 8) | b[p + 1]!;
  }

  u32(): number {
    this.need(4);
    const b = this.buf;
    const p = this.pos;
    this.pos = p + 4;
    return ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
  }

  u64(): bigint {
    this.need(8);
    const b = this.buf;
    const p = this.pos;
    this.pos = p + 8;
    // Zero (the usual cookie) without allocating a BigInt.
    if ((b[p]! | b[p + 1]! | b[p + 2]! | b[p + 3]! | b[p + 4]! | b[p + 5]! | b[p + 6]! | b[p + 7]!) === 0) return 0n;
    return b.readBigUInt64BE(p);
  }

  /** A view (no copy) of the next n bytes. */
  bytes(n: number, what?: string): Buffer {
    this.need(n, what);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  /** Like bytes() but a plain Uint8Array view: cheaper to create than a Buffer on the hot path. */
  view(n: number, what?: string): Uint8Array {
    this.need(n, what);
    if (this.ab === null) {
      this.ab = this.buf.buffer;
      this.base = this.buf.byteOffset;
    }
    const v = new Uint8Array(this.ab, this.base + this.pos, n);
    this.pos += n;
    return v;
  }

  skip(n: number, what?: string): void {
    this.need(n, what);
    this.pos += n;
  }

  /** A reader over the next n bytes; this reader moves past them. */
  sub(n: number, what: string): Reader {
    this.need(n, what);
    const r = new Reader(this.buf, this.pos, this.pos + n, what);
    r.ab = this.ab;
    r.base = this.base;
    this.pos += n;
    return r;
  }
}
