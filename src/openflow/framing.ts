/**
 * Streaming frame splitter: turns arbitrary TCP chunks into whole OpenFlow
 * frames. Every frame handed out is exactly `header.length` bytes (a view, no
 * copy when the frame sits inside one chunk). A header whose length is below 8
 * can never be valid and is rejected at once with a typed error; buffered bytes
 * never exceed one maximal frame (64 KiB) plus one chunk.
 */
import { OpenFlowDecodeError } from './errors.js';

export const MAX_FRAME = 0xffff;

export class FrameSplitter {
  private pending: Buffer | null = null;
  private failed: OpenFlowDecodeError | null = null;

  /**
   * @param versions if given, a frame (other than HELLO) whose version byte is not in this set is
   *   rejected (the stream is then out of sync and cannot be trusted).
   */
  constructor(private readonly versions?: ReadonlySet<number>) {}

  /** Bytes held while waiting for the rest of a frame. */
  get buffered(): number {
    return this.pending?.length ?? 0;
  }

  /**
   * Feeds one chunk; calls onFrame for each complete frame in order. Throws
   * OpenFlowDecodeError on a malformed header; after that the splitter stays
   * failed (a byte stream cannot be resynchronised).
   */
  push(chunk: Buffer, onFrame: (frame: Buffer) => void): void {
    this.pushRaw(chunk, (buf, start, end) => onFrame(start === 0 && end === buf.length ? buf : buf.subarray(start, end)));
  }

  /** Like push(), but hands out (buffer, start, end) so a decoder can skip making a view. */
  pushRaw(chunk: Buffer, onFrame: (buf: Buffer, start: number, end: number) => void): void {
    if (this.failed) throw this.failed;
    let off = 0;
    if (this.pending) {
      // Complete the pending frame with just the bytes it needs (never copy the whole chunk).
      let p = this.pending;
      if (p.length < 8) {
        const take = Math.min(8 - p.length, chunk.length);
        p = Buffer.concat([p, chunk.subarray(0, take)]);
        off = take;
        if (p.length < 8) {
          this.pending = p;
          return;
        }
      }
      this.check(p, 0);
      const len = (p[2]! << 8) | p[3]!;
      const take = Math.min(len - p.length, chunk.length - off);
      if (take > 0) p = Buffer.concat([p, chunk.subarray(off, off + take)]);
      off += Math.max(take, 0);
      if (p.length < len) {
        this.pending = p;
        return;
      }
      this.pending = null;
      onFrame(p, 0, p.length);
    }
    const buf = chunk;
    while (buf.length - off >= 8) {
      this.check(buf, off);
      const len = (buf[off + 2]! << 8) | buf[off + 3]!;
      if (buf.length - off < len) break;
      const at = off;
      off += len;
      onFrame(buf, at, off);
    }
    if (off < buf.length) this.pending = Buffer.from(buf.subarray(off));
  }

  private check(buf: Buffer, off: number): void {
    const len = (buf[off + 2]! << 8) | buf[off + 3]!;
    if (len < 8) {
      this.failed = new OpenFlowDecodeError(`frame header claims length ${len} (< 8)`, { offset: off, len });
      throw this.failed;
    }
    // HELLO carries the sender's highest version; everything after negotiation must match.
    if (this.versions && buf[off + 1] !== 0 && !this.versions.has(buf[off]!)) {
      this.failed = new OpenFlowDecodeError(`frame with unexpected version 0x${buf[off]!.toString(16)}`, { version: buf[off] });
      throw this.failed;
    }
  }
}
