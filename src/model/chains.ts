/**
 * Service chains: semantic validation and resolution (the structure is the zod
 * `Chain` in schema.ts). A chain steers traffic its classifier selects (sources,
 * destinations, protocol, ports) through ordered hops of service-function
 * instances; see docs/TOPOLOGY.md for the format and docs/PIPELINE.md for how the
 * pipeline carries it out.
 *
 * Rules checked here, each reported with its JSON Pointer:
 * - a hop is `instances` or `service`, not both, not neither; instances name
 *   endpoints of the chain's own tenant (`other/name` is a chain crossing tenants);
 *   a service resolves here through the label `service=<name>` in the tenant, and
 *   may resolve to nothing (instances register in the service registry later; the
 *   controller resolves registered ones, src/controller/services.ts);
 * - loops: an instance that is also a destination of the chain, or an endpoint
 *   that appears twice in the chain (in one hop or two);
 * - one network per chain: instances and destinations on one network (the
 *   pipeline steers by destination-MAC rewrite, which stays inside a network);
 *   sources on it too, or (named ones) on a network the tenant's router joins to
 *   it: their traffic is routed on the source's host, then classified there;
 * - classifiers that overlap (a packet two chains of the tenant would both take),
 *   reported with both chains' paths: at a source's port, and at every other port
 *   where a chain puts a table-20 classifier (an instance's egress, a symmetric
 *   chain's destination and instance ingress), so an instance shared by two chains
 *   or an instance that is another chain's source or destination is checked too;
 *   a chain's own port ranges must not overlap either (they would compile to the
 *   same flow twice). A tcp/udp chain also classifies IP fragments (OVS looks them
 *   up as port 0), so two chains between the same endpoints and protocol overlap
 *   whatever their ports;
 * - no chain on a network with an IPv6 subnet: the classifiers match IPv4 only,
 *   so IPv6 between chained endpoints would pass no service function;
 * - the chains' group keys (a 22-bit hash of the id) are unique in the document.
 */
import { fnv32 } from '../ipam/index.js';
import type { ChainDoc, SelectorDoc, TenantDoc, TopologyDoc } from './schema.js';
import { pendingUnitEndpoints } from './units.js';
import type { Chain, ChainHop, ChainInstance, Endpoint, Network, Tenant, ValidationIssue } from './types.js';

/** The chain's key: names its select groups (see pipeline chainGroup). */
export function chainKey(id: string): number {
  return fnv32(`chain:${id}`) >>> 10;
}

/** Whether the selector picks the endpoint ({} picks every endpoint). CIDRs are not used by chains. */
export function selects(sel: SelectorDoc, e: Endpoint): boolean {
  if (isAnySelector(sel)) return true;
  if (sel.networks?.includes(e.network.name)) return true;
  if (sel.endpoints?.includes(e.name)) return true;
  if (sel.labels && Object.keys(sel.labels).length && Object.entries(sel.labels).every(([k, v]) => e.labels[k] === v)) return true;
  return false;
}

export function isAnySelector(sel: SelectorDoc): boolean {
  return !sel.networks?.length && !sel.endpoints?.length && !(sel.labels && Object.keys(sel.labels).length) && !sel.cidrs?.length;
}

/** Every endpoint the chain's hops list (ingress and egress ports). */
export function chainInstances(c: Chain): Set<Endpoint> {
  const out = new Set<Endpoint>();
  for (const h of c.hops) for (const i of h.instances) out.add(i.ingress).add(i.egress);
  return out;
}

/** Destinations: endpoints of the chain's network that `to` selects (sorted by name, as the tenant's list). */
export function chainDestinations(t: Tenant, c: Chain): Endpoint[] {
  return t.endpoints.filter((e) => e.network === c.network && selects(c.to, e));
}

/**
 * Whether the tenant's router joins two networks (both IPv4, both on its list: a
 * tenant has one router, so any two of its networks are joined to each other).
 */
export function routerJoins(a: Network, b: Network): boolean {
  return a !== b && a.routed && b.routed && !!a.v4 && !!b.v4;
}

/**
 * Whether `e` is a possible source of chain `c` by network: on the chain's network,
 * or (named by `from`: {} means the chain's network only) on a network the tenant's
 * router joins to it; traffic from such a source is routed, then classified.
 */
export function onSourceNetwork(c: Pick<Chain, 'network' | 'from'>, e: Endpoint): boolean {
  return e.network === c.network || (!isAnySelector(c.from) && routerJoins(e.network, c.network));
}

/** Whether a source of the chain is on another network (its traffic is routed to the chain's network first). */
export function isRoutedSource(c: Chain, e: Endpoint): boolean {
  return e.network !== c.network;
}

/**
 * Sources: endpoints that `from` selects, other than the chain's instances and
 * destinations, on the chain's network or on one the tenant's router joins to it
 * (see onSourceNetwork).
 */
export function chainSources(t: Tenant, c: Chain): Endpoint[] {
  const inst = chainInstances(c);
  const dst = new Set(chainDestinations(t, c));
  return t.endpoints.filter((e) => onSourceNetwork(c, e) && selects(c.from, e) && !inst.has(e) && !dst.has(e));
}

const paths = new WeakMap<Chain, string>();

/** A chain that names unit instances not placed yet: it has no flows until they are. */
export interface WaitingChain {
  name: string;
  /** JSON Pointer of the chain in the document. */
  path: string;
  /** Endpoint names of the unplaced instances it names. */
  waitingFor: string[];
}

/**
 * Resolves a tenant's chains. Chains that wait for unplaced unit instances go to `waiting`. `endpoints` are the tenant's endpoints that have a
 * network (by name).
 */
export function resolveChains(
  doc: TopologyDoc,
  td: TenantDoc,
  tp: string,
  byName: ReadonlyMap<string, Endpoint>,
  networkNames: ReadonlySet<string>,
  errors: ValidationIssue[],
  waiting: WaitingChain[] = [],
): Chain[] {
  const err = (path: string, message: string) => errors.push({ path, message });
  const chains: Chain[] = [];
  const tenantEps = [...byName.values()];
  // Unit instances not placed yet: naming one is not an error; the chain waits for it.
  const pending = pendingUnitEndpoints(doc).get(td.name) ?? new Set<string>();
  const seenName = new Map<string, number>();
  td.chains.forEach((cd: ChainDoc, ci) => {
    const cp = `${tp}/chains/${ci}`;
    const first = seenName.get(cd.name);
    if (first !== undefined) err(`${cp}/name`, `duplicate chain name "${cd.name}" (first at ${tp}/chains/${first}/name)`);
    else seenName.set(cd.name, ci);
    let ok = true;
    const waitsFor = new Set<string>();
    const bad = (path: string, message: string) => {
      ok = false;
      err(path, message);
    };

    // selectors
    for (const side of ['from', 'to'] as const) {
      const s = cd[side];
      s.networks?.forEach((n, k) => {
        if (!networkNames.has(n)) bad(`${cp}/${side}/networks/${k}`, `unknown network "${n}" in tenant "${td.name}"`);
      });
      s.endpoints?.forEach((n, k) => {
        if (byName.has(n)) return;
        if (pending.has(n)) waitsFor.add(n);
        else bad(`${cp}/${side}/endpoints/${k}`, `unknown endpoint "${n}" in tenant "${td.name}"`);
      });
      if (s.cidrs?.length) bad(`${cp}/${side}/cidrs`, 'chain selectors take networks, endpoints and labels, not CIDRs (a chain steers between endpoints)');
    }
    const ports: [number, number][] = [];
    if (cd.ports !== undefined) {
      if (cd.protocol !== 'tcp' && cd.protocol !== 'udp') bad(`${cp}/ports`, `ports need protocol tcp or udp, not ${cd.protocol}`);
      cd.ports.forEach((p, k) => {
        const r: [number, number] = typeof p === 'number' ? [p, p] : [p.from, p.to];
        if (r[0] > r[1]) bad(`${cp}/ports/${k}`, `port range ${r[0]}-${r[1]} is empty`);
        const o = ports.findIndex(([lo, hi]) => lo <= r[1] && r[0] <= hi);
        if (r[0] <= r[1] && o >= 0) bad(`${cp}/ports/${k}`, `port range ${r[0]}-${r[1]} overlaps ${cp}/ports/${o}`);
        ports.push(r);
      });
    }

    // hops
    const where = new Map<Endpoint, string>();
    const hops: ChainHop[] = [];
    const ref = (name: string, path: string): Endpoint | undefined => {
      const slash = name.indexOf('/');
      if (slash >= 0) {
        const tn = name.slice(0, slash);
        if (tn !== td.name) {
          bad(path, `chains cannot cross tenants: "${name}" is in tenant "${tn}", the chain in "${td.name}"`);
          return undefined;
        }
        name = name.slice(slash + 1);
      }
      const e = byName.get(name);
      if (!e && pending.has(name)) waitsFor.add(name);
      else if (!e) bad(path, `unknown endpoint "${name}" in tenant "${td.name}"`);
      return e;
    };
    const use = (e: Endpoint, path: string) => {
      const prev = where.get(e);
      if (prev !== undefined) bad(path, `endpoint "${e.name}" appears twice in the chain (first at ${prev}): a loop`);
      else where.set(e, path);
    };
    cd.hops.forEach((hd, hi) => {
      const hp = `${cp}/hops/${hi}`;
      const instances: ChainInstance[] = [];
      if ((hd.instances === undefined) === (hd.service === undefined)) {
        bad(hp, 'a hop needs either "instances" or "service"');
        hops.push({ instances });
        return;
      }
      if (hd.instances) {
        hd.instances.forEach((id, k) => {
          const ip = `${hp}/instances/${k}`;
          if (typeof id === 'string') {
            const e = ref(id, ip);
            if (e) use(e, ip), instances.push({ ingress: e, egress: e, weight: 1 });
            return;
          }
          if (id.endpoint !== undefined && (id.ingress !== undefined || id.egress !== undefined)) return bad(ip, 'give "endpoint" or an "ingress"/"egress" pair, not both');
          if (id.endpoint !== undefined) {
            const e = ref(id.endpoint, `${ip}/endpoint`);
            if (e) use(e, `${ip}/endpoint`), instances.push({ ingress: e, egress: e, weight: id.weight });
            return;
          }
          if (id.ingress === undefined || id.egress === undefined) return bad(ip, 'an instance needs "endpoint", or both "ingress" and "egress"');
          const a = ref(id.ingress, `${ip}/ingress`);
          const b = ref(id.egress, `${ip}/egress`);
          if (a) use(a, `${ip}/ingress`);
          if (b && b !== a) use(b, `${ip}/egress`);
          if (a && b) instances.push({ ingress: a, egress: b, weight: id.weight });
        });
        hops.push({ instances });
        return;
      }
      // A service hop's instances here are its labelled endpoints (possibly none): the
      // controller puts the registry's instances of the service in their place when it
      // has any (src/controller/services.ts), so a service nobody labelled is not an
      // error; the hop is empty (its failMode applies) until an instance registers.
      const svc = hd.service!;
      for (const e of tenantEps) if (e.labels['service'] === svc) {
        use(e, `${hp}/service`);
        instances.push({ ingress: e, egress: e, weight: 1 });
      }
      hops.push({ instances, service: svc });
    });
    if (!ok) return;
    // It names unit instances the scheduler has not placed yet: the whole chain waits (no flows, no
    // partly steered traffic) until every one of them is an endpoint; it is reported as waiting.
    if (waitsFor.size) {
      waiting.push({ name: cd.name, path: cp, waitingFor: [...waitsFor].sort() });
      return;
    }

    // one network: the instances', else (every hop an empty service) the destinations'
    const inst = [...where.keys()];
    const named = isAnySelector(cd.to) ? [] : tenantEps.filter((e) => selects(cd.to, e));
    const network: Network | undefined = inst[0]?.network ?? named[0]?.network;
    if (!network) {
      err(`${cp}/to`, isAnySelector(cd.to) ? 'no hop has an instance yet (services nobody labelled) and /to selects every endpoint: name the destinations so the chain\'s network is known' : 'selects no endpoint');
      return;
    }
    for (const [e, path] of where) if (e.network !== network) bad(path, `instance "${e.name}" is on network "${e.network.name}", the chain's first instance on "${network.name}": a chain steers within one network`);
    // The classifiers match IPv4 only: on a dual-stack network IPv6 between chained endpoints would bypass the chain.
    if (network.v6) bad(cp, `network "${network.name}" has an IPv6 subnet (subnet6): chains steer IPv4 only, so IPv6 between the chained endpoints would pass no service function; put the chain on an IPv4-only network`);
    const chain: Chain = {
      id: `${td.name}/${cd.name}`,
      tenant: td.name,
      name: cd.name,
      network,
      from: cd.from,
      to: cd.to,
      protocol: cd.protocol,
      ports,
      hops,
      symmetric: cd.symmetric,
      failMode: cd.failMode,
      key: chainKey(`${td.name}/${cd.name}`),
    };
    // {} (everything) means everything on the chain's network; named ones must be on it
    const selected = tenantEps.filter((e) => selects(cd.to, e) && (!isAnySelector(cd.to) || e.network === network));
    if (!selected.length) bad(`${cp}/to`, 'selects no endpoint');
    for (const e of selected) {
      if (where.has(e)) bad(where.get(e)!, `instance "${e.name}" is also a destination of the chain (/to): a loop`);
      else if (e.network !== network) bad(`${cp}/to`, `destination "${e.name}" is on network "${e.network.name}", the chain's instances on "${network.name}": a chain steers within one network`);
    }
    // Sources may be on another network the tenant's router joins to the chain's: routed, then classified.
    if (!isAnySelector(cd.from))
      for (const e of tenantEps)
        if (selects(cd.from, e) && !where.has(e) && !onSourceNetwork(chain, e))
          bad(
            `${cp}/from`,
            `source "${e.name}" is on network "${e.network.name}", which the tenant's router does not join to the chain's network "${network.name}": a chain's sources are on its network or on one routed to it (add both networks to /tenants/.../router)`,
          );
    if (!ok) return;
    paths.set(chain, cp);
    chains.push(chain);
  });
  const reported = checkShadowing(chains, tenantEps, err);
  checkPortClassifiers(chains, tenantEps, reported, err);
  return chains;
}

/** Two chains of a tenant that one packet could both match at a source's port: reported with both paths. Returns the pairs reported ("i j"). */
function checkShadowing(chains: Chain[], eps: Endpoint[], err: (path: string, message: string) => void): Set<string> {
  const reported = new Set<string>();
  const sets = chains.map((c) => {
    const inst = chainInstances(c);
    const dst = eps.filter((e) => e.network === c.network && selects(c.to, e));
    const dset = new Set(dst);
    const src = eps.filter((e) => onSourceNetwork(c, e) && selects(c.from, e) && !inst.has(e) && !dset.has(e));
    return { src: new Set(src), dst };
  });
  for (let j = 0; j < chains.length; j++)
    for (let i = 0; i < j; i++) {
      const a = chains[i]!;
      const b = chains[j]!;
      if (a.protocol !== 'any' && b.protocol !== 'any' && a.protocol !== b.protocol) continue;
      const pa = classifiedPorts(a);
      const pb = classifiedPorts(b);
      const port = pa.flatMap(([lo, hi]) => pb.filter(([l2, h2]) => l2 <= hi && lo <= h2).map(([l2]) => Math.max(lo, l2)))[0];
      const proto = a.protocol !== 'any' ? a.protocol : b.protocol;
      const s = [...sets[i]!.src].find((e) => sets[j]!.src.has(e));
      const d = sets[i]!.dst.find((e) => sets[j]!.dst.includes(e));
      if (s && d && port !== undefined) {
        const what = `${proto === 'any' ? 'a packet' : `${proto}${proto === 'tcp' || proto === 'udp' ? (port === 0 ? ' fragments (OVS sees no ports in them)' : ` port ${port}`) : ''}`} from "${s.name}" to "${d.name}"`;
        err(paths.get(b)!, `classifier overlaps chain "${a.name}" (${paths.get(a)}): ${what} matches both chains`);
        reported.add(`${i} ${j}`);
        continue;
      }
      // A symmetric chain also classifies its replies (destination -> source, by source port),
      // which can meet the other chain's forward classifier whatever the ports.
      for (const [x, y, sx, sy] of [[a, b, sets[i]!, sets[j]!], [b, a, sets[j]!, sets[i]!]] as const) {
        if (!x.symmetric) continue;
        const from = sx.dst.find((e) => sy.src.has(e));
        const to = [...sx.src].find((e) => sy.dst.includes(e));
        if (!from || !to) continue;
        err(paths.get(b)!, `classifier overlaps the replies of symmetric chain "${x.name}" (${paths.get(x)}): ${proto === 'any' ? 'a packet' : proto} from "${from.name}" to "${to.name}" matches ${x === a ? 'this chain' : `chain "${y.name}"`} and the replies of "${x.name}"`);
        reported.add(`${i} ${j}`);
        break;
      }
    }
  return reported;
}

/**
 * What a chain matches in table 20 at one port (logical inport): packets to `dst`
 * (from `src`, when given) whose L4 is the chain's protocol and ports, on the
 * destination port (`field: 'dst'`) or, for replies, the source port.
 */
interface PortClassifier {
  chain: number;
  role: string;
  dst: ReadonlySet<Endpoint>;
  src?: ReadonlySet<Endpoint>;
  field: 'dst' | 'src';
}

/**
 * The ports a chain's classifier matches: its ranges and 0, which is how OVS sees
 * IP fragments (pipeline/chains.ts steers them with the chain); none given: all.
 */
function classifiedPorts(c: Chain): [number, number][] {
  return c.ports.length ? [...c.ports, [0, 0]] : [[0, 65535]];
}

/** Whether two chains' L4 matches (protocol, ports on `fa`/`fb`) can both hold for one packet. */
function l4Overlap(a: Chain, fa: 'dst' | 'src', b: Chain, fb: 'dst' | 'src'): [number, number] | 'any' | undefined {
  if (a.protocol !== 'any' && b.protocol !== 'any' && a.protocol !== b.protocol) return undefined;
  if (!a.ports.length || !b.ports.length || fa !== fb) return 'any';
  for (const [lo, hi] of classifiedPorts(a)) for (const [l2, h2] of classifiedPorts(b)) if (l2 <= hi && lo <= h2) return [Math.max(lo, l2), fa === 'dst' ? 1 : 0];
  return undefined;
}

const firstCommon = (x: ReadonlySet<Endpoint>, y: ReadonlySet<Endpoint>): Endpoint | undefined => {
  const [small, big] = x.size <= y.size ? [x, y] : [y, x];
  for (const e of small) if (big.has(e)) return e;
  return undefined;
};

/**
 * Every table-20 classifier a chain places, by port: the forward one at each
 * source and each instance's egress (to the destinations), and for a symmetric
 * chain the replies' at each destination (to the sources) and each instance's
 * ingress (from the destinations to the sources). Two chains whose classifiers at
 * one port can match the same packet would compile to ambiguous (or identical)
 * flows: the packet's position would be one chain's or the other's. Pairs already
 * reported by checkShadowing are not reported again.
 */
function checkPortClassifiers(chains: Chain[], eps: Endpoint[], reported: ReadonlySet<string>, err: (path: string, message: string) => void): void {
  const byPort = new Map<Endpoint, PortClassifier[]>();
  const add = (port: Endpoint, pc: PortClassifier) => {
    const l = byPort.get(port);
    if (l) l.push(pc);
    else byPort.set(port, [pc]);
  };
  chains.forEach((c, ci) => {
    const inst = chainInstances(c);
    const dstList = eps.filter((e) => e.network === c.network && selects(c.to, e));
    const dst = new Set(dstList);
    const src = new Set(eps.filter((e) => onSourceNetwork(c, e) && selects(c.from, e) && !inst.has(e) && !dst.has(e)));
    for (const s of src) add(s, { chain: ci, role: 'a source', dst, field: 'dst' });
    c.hops.forEach((h, k) => {
      for (const i of h.instances) {
        add(i.egress, { chain: ci, role: `an instance of hop ${k}`, dst, field: 'dst' });
        if (c.symmetric) add(i.ingress, { chain: ci, role: `an instance of hop ${k} (replies)`, dst: src, src: dst, field: 'src' });
      }
    });
    if (c.symmetric) for (const d of dstList) add(d, { chain: ci, role: 'a destination (replies)', dst: src, field: 'src' });
  });
  const done = new Set(reported);
  for (const [port, pcs] of byPort)
    for (let y = 1; y < pcs.length; y++)
      for (let x = 0; x < y; x++) {
        const p = pcs[x]!;
        const q = pcs[y]!;
        if (p.chain === q.chain) continue;
        const [i, j] = p.chain < q.chain ? [p.chain, q.chain] : [q.chain, p.chain];
        if (done.has(`${i} ${j}`)) continue;
        const a = chains[p.chain]!;
        const b = chains[q.chain]!;
        const l4 = l4Overlap(a, p.field, b, q.field);
        if (!l4) continue;
        const to = firstCommon(p.dst, q.dst);
        if (!to) continue;
        let from: Endpoint | undefined;
        if (p.src && q.src) {
          from = firstCommon(p.src, q.src);
          if (!from) continue;
        } else from = p.src ? [...p.src][0] : q.src ? [...q.src][0] : undefined;
        const proto = a.protocol !== 'any' ? a.protocol : b.protocol;
        const what = `${proto === 'any' ? 'a packet' : proto}${l4 === 'any' ? '' : l4[0] === 0 ? ' fragments (OVS sees no ports in them)' : ` ${l4[1] ? 'to' : 'from'} port ${l4[0]}`}${from ? ` from "${from.name}"` : ''} to "${to.name}"`;
        done.add(`${i} ${j}`);
        const [first, second] = p.chain < q.chain ? [p, q] : [q, p];
        const c1 = chains[first.chain]!;
        const c2 = chains[second.chain]!;
        err(
          paths.get(c2)!,
          `classifier overlaps chain "${c1.name}" (${paths.get(c1)}) at the port of "${port.name}" (${second.role} of this chain, ${first.role} of "${c1.name}"): ${what} entering from "${port.name}" matches both chains, which steer it differently`,
        );
      }
}

/** Chain group keys must be unique in the document (like host keys). */
export function checkChainKeys(tenants: Tenant[], errors: ValidationIssue[]): void {
  const seen = new Map<number, Chain>();
  for (const t of tenants)
    for (const c of t.chains) {
      const o = seen.get(c.key);
      // the same id twice is a duplicate name, reported as such
      if (o && o.id !== c.id) errors.push({ path: paths.get(c) ?? '', message: `chain key (hash of the id) collides with chain ${o.id} (${paths.get(o)}); rename the chain` });
      else if (!o) seen.set(c.key, c);
    }
}
