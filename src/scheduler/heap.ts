/**
 * Hosts of one candidate set ordered by load (least loaded first; ties by name).
 *
 * Lazy: a placement changes one host's load, and that host sits in the heap of every
 * candidate set it belongs to. Rather than fixing all of them, each entry remembers
 * the host's `version` when it was pushed; a popped entry whose version is old goes
 * back in with the current load. This is correct because within one placement run
 * loads only grow: an old entry's key is never above the host's true key, so it
 * surfaces no later than it should and is corrected then.
 */

export interface LoadedHost {
  /** Position of the name in sorted order: the deterministic tie-break. */
  rank: number;
  /** Dominant share: max(cpu used / cpu capacity, memory used / memory capacity); 0 when not limited. */
  share: number;
  /** Instances on the host (second key: fleet's "fewest units"). */
  count: number;
  /** Bumped on every change of share or count. */
  version: number;
}

interface Entry<H> {
  host: H;
  share: number;
  count: number;
  version: number;
}

export class LoadHeap<H extends LoadedHost> {
  private readonly a: Entry<H>[] = [];

  get size(): number {
    return this.a.length;
  }

  push(host: H): void {
    const a = this.a;
    const e: Entry<H> = { host, share: host.share, count: host.count, version: host.version };
    let i = a.length;
    a.push(e);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(e, a[p]!)) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = e;
  }

  /** The least loaded host (taken out: push it back when done), or undefined. */
  pop(): H | undefined {
    for (;;) {
      const e = this.take();
      if (!e) return undefined;
      if (e.version !== e.host.version) {
        this.push(e.host);
        continue;
      }
      return e.host;
    }
  }

  private take(): Entry<H> | undefined {
    const a = this.a;
    const top = a[0];
    const last = a.pop();
    if (top === undefined || last === undefined || a.length === 0) return top;
    const n = a.length;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && less(a[r]!, a[l]!) ? r : l;
      if (!less(a[c]!, last)) break;
      a[i] = a[c]!;
      i = c;
    }
    a[i] = last;
    return top;
  }
}

function less<H extends LoadedHost>(x: Entry<H>, y: Entry<H>): boolean {
  if (x.share !== y.share) return x.share < y.share;
  if (x.count !== y.count) return x.count < y.count;
  return x.host.rank < y.host.rank;
}
