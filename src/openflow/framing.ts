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
    if (this.failed) throw this.failed;
    let buf = chunk;
    if (this.pending) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = null;
    }
    let off = 0;
    while (buf.length - off >= 8) {
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
      if (buf.length - off < len) break;
      const frame = buf.subarray(off, off + len);
      off += len;
      onFrame(frame);
    }
    if (off < buf.length) this.pending = Buffer.from(buf.subarray(off));
  }
}
