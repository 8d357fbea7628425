/**
 * Streaming JSON framer for OVSDB's JSON-RPC: messages are concatenated JSON
 * objects with no delimiter, so we scan bytes, tracking string/escape state and
 * nesting depth, and cut a frame when depth returns to zero. Reads may split a
 * message or coalesce several; both are handled. A frame larger than
 * `maxFrameBytes` is rejected before it is buffered further, so a hostile or
 * broken peer cannot make us hold unbounded memory.
 *
 * Multi-byte UTF-8 sequences never contain bytes below 0x80, so scanning for
 * the ASCII structural characters byte by byte is safe.
 */
import { OvsdbFramingError } from './errors.js';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;

export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024;

export class JsonFramer {
  private depth = 0;
  private inString = false;
  private escape = false;
  /** Chunks (or chunk tails) holding the start of the frame being read. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private failed: OvsdbFramingError | undefined;

  constructor(readonly maxFrameBytes: number = DEFAULT_MAX_FRAME_BYTES) {}

  /** Bytes buffered for an incomplete frame. */
  get bufferedBytes(): number {
    return this.pendingBytes;
  }

  /**
   * Feeds bytes; calls `onMessage` for every complete message, in order.
   * Throws OvsdbFramingError on garbage, invalid JSON or an oversized frame;
   * after that the framer stays failed (the stream cannot be resynchronised).
   * The framer may keep a view of `chunk` until its frame completes: do not
   * reuse the buffer (socket 'data' buffers are never reused).
   */
  push(chunk: Buffer, onMessage: (msg: unknown) => void): void {
    if (this.failed) throw this.failed;
    let start = this.depth > 0 ? 0 : -1; // start of the current frame inside chunk
    const n = chunk.length;
    for (let i = 0; i < n; i++) {
      if (this.inString) {
        // Most bytes are inside strings: jump to the next quote, then decide
        // whether it is escaped by counting the backslashes right before it
        // (a backslash carried over from the previous chunk counts as one).
        const q = chunk.indexOf(QUOTE, i);
        const end = q === -1 ? n : q;
        let j = end - 1;
        while (j >= i && chunk[j] === BACKSLASH) j--;
        let run = end - 1 - j;
        if (j < i && this.escape) run++;
        this.escape = false;
        if (q === -1) {
          this.escape = run % 2 === 1;
          break;
        }
        if (run % 2 === 0) this.inString = false;
        i = q;
        continue;
      }
      const b = chunk[i]!;
      if (this.depth === 0) {
        // Between messages only whitespace may appear; a message is an object.
        if (b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09) continue;
        if (b !== LBRACE) {
          throw this.fail(`unexpected byte 0x${b.toString(16)} between messages`, { offset: i });
        }
        start = i;
        this.depth = 1;
        continue;
      }
      if (b === QUOTE) this.inString = true;
      else if (b === LBRACE || b === LBRACKET) this.depth++;
      else if (b === RBRACE || b === RBRACKET) {
        if (--this.depth === 0) {
          const size = this.pendingBytes + (i + 1 - start);
          if (size > this.maxFrameBytes) throw this.oversized(size);
          let text: string;
          if (this.pendingBytes === 0) text = chunk.toString('utf8', start, i + 1);
          else {
            this.pending.push(chunk.subarray(start, i + 1));
            text = Buffer.concat(this.pending, size).toString('utf8');
            this.pending = [];
            this.pendingBytes = 0;
          }
          let msg: unknown;
          try {
            msg = JSON.parse(text);
          } catch (err) {
            throw this.fail(`invalid JSON in frame: ${(err as Error).message}`, { preview: text.slice(0, 200) }, err);
          }
          start = -1;
          onMessage(msg);
        }
      }
    }
    if (this.depth > 0 && start >= 0) {
      const tail = n - start;
      if (this.pendingBytes + tail > this.maxFrameBytes) throw this.oversized(this.pendingBytes + tail);
      // Socket reads hand us fresh buffers, so keep a view; copy only a small
      // tail, so it does not pin a large chunk in memory.
      this.pending.push(tail * 2 < n ? Buffer.from(chunk.subarray(start)) : chunk.subarray(start));
      this.pendingBytes += tail;
    }
  }

  private oversized(size: number): OvsdbFramingError {
    return this.fail(`frame exceeds ${this.maxFrameBytes} bytes`, { size, maxFrameBytes: this.maxFrameBytes });
  }

  private fail(message: string, context: Record<string, unknown>, cause?: unknown): OvsdbFramingError {
    this.pending = [];
    this.pendingBytes = 0;
    this.failed = new OvsdbFramingError(message, context, cause === undefined ? undefined : { cause });
    return this.failed;
  }
}
