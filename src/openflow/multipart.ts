/**
 * Multipart reassembly: a reply may arrive in many parts with OFPMPF_REPLY_MORE;
 * the parts of one xid are merged into one body. Bounded: a peer that never
 * ends a reply cannot grow memory past `maxEntries`.
 */
import { OpenFlowDecodeError } from './errors.js';
import { OFPMP, OFPMPF_MORE, type MultipartReplyBody } from './messages.js';

type ListKey = 'flows' | 'tables' | 'ports' | 'groups';

function listOf(b: MultipartReplyBody): { key: ListKey; items: unknown[] } | null {
  switch (b.mpType) {
    case OFPMP.FLOW:
      return { key: 'flows', items: b.flows };
    case OFPMP.TABLE:
      return { key: 'tables', items: b.tables };
    case OFPMP.PORT_STATS:
    case OFPMP.PORT_DESC:
      return { key: 'ports', items: b.ports };
    case OFPMP.GROUP:
    case OFPMP.GROUP_DESC:
      return { key: 'groups', items: b.groups };
    default:
      return null;
  }
}

export class MultipartAssembler {
  private readonly open = new Map<number, { body: MultipartReplyBody; entries: number }>();

  constructor(private readonly maxEntries = 2_000_000) {}

  /** Adds one part; returns the merged body once the last part (no MORE flag) arrives. */
  add(xid: number, flags: number, body: MultipartReplyBody): MultipartReplyBody | undefined {
    const cur = this.open.get(xid);
    if (cur && cur.body.mpType !== body.mpType) {
      this.open.delete(xid);
      throw new OpenFlowDecodeError(`multipart xid ${xid}: part of type ${body.mpType} after type ${cur.body.mpType}`, { xid });
    }
    let merged = body;
    let entries = listOf(body)?.items.length ?? 1;
    if (cur) {
      const a = listOf(cur.body);
      const b = listOf(body);
      if (!a || !b) {
        this.open.delete(xid);
        throw new OpenFlowDecodeError(`multipart type ${body.mpType} cannot have several parts`, { xid });
      }
      a.items.push(...b.items);
      merged = cur.body;
      entries += cur.entries;
      if (entries > this.maxEntries) {
        this.open.delete(xid);
        throw new OpenFlowDecodeError(`multipart xid ${xid} exceeds ${this.maxEntries} entries`, { xid });
      }
    }
    if (flags & OFPMPF_MORE) {
      this.open.set(xid, { body: merged, entries });
      return undefined;
    }
    this.open.delete(xid);
    return merged;
  }

  /** Drops a partial reply (request timed out or was abandoned). */
  forget(xid: number): void {
    this.open.delete(xid);
  }

  get pending(): number {
    return this.open.size;
  }
}
