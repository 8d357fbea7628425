/**
 * Property test: mutate valid topologies at random (seeded), and check that the
 * validator never throws, and that whatever it accepts compiles, conforms to the
 * table map, and traces without error.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { validate } from '../../../src/model/index.js';
import { compile, flowProblems, groupProblems } from '../../../src/pipeline/index.js';
import { traceBetween } from '../../../src/trace/index.js';

const load = (f: string) => JSON.parse(readFileSync(new URL(`../../../topologies/${f}`, import.meta.url), 'utf8'));
const seeds = [load('two-tenants.json'), load('lab-two-hosts.json')];

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 0x100000000;
  };
}

type J = unknown;
const POOL: J[] = [
  null, 0, -1, 1.5, 4096, 16777215, 16777216, '', 'x', 'web', 'db', 'host1', 'host9', 'acme', 'Bad_Name', '10.0.1.10', '10.0.1.1', '10.0.2.10',
  '10.0.0.0/16', '10.0.1.0/24', '10.0.1.0/30', '10.0.1.0/33', 'fd00:1::5', 'fd00:1::/64', '02:00:00:00:02:10', '01:00:00:00:00:01', 'tcp', 'udp',
  'icmp', 'allow', 'deny', true, [], {}, ['web'], { role: 'web' }, [22], [{ from: 90, to: 80 }],
];

function paths(v: J, at: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  out.push(at);
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...at, i], out));
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) paths(x, [...at, k], out);
  return out;
}

function mutate(doc: J, r: () => number): J {
  const d = structuredClone(doc) as Record<string, J>;
  const n = 1 + Math.floor(r() * 2);
  for (let i = 0; i < n; i++) {
    const ps = paths(d).filter((p) => p.length > 0);
    const p = ps[Math.floor(r() * ps.length)]!;
    let parent = d as Record<string | number, J>;
    for (const k of p.slice(0, -1)) parent = parent[k] as Record<string | number, J>;
    const last = p[p.length - 1]!;
    const op = r();
    if (op < 0.25) {
      if (Array.isArray(parent)) parent.splice(Number(last), 1);
      else delete parent[last];
    } else if (op < 0.45 && Array.isArray(parent)) parent.push(structuredClone(parent[Number(last)]));
    else if (op < 0.55 && Array.isArray(parent) && parent.length > 1) parent.reverse();
    else parent[last] = structuredClone(POOL[Math.floor(r() * POOL.length)]);
  }
  return d;
}

t.test('mutated topologies: validator never throws and never accepts what the compiler rejects', async (t) => {
  const r = rng(20261125);
  let accepted = 0;
  let rejected = 0;
  const N = 400;
  for (let i = 0; i < N; i++) {
    const doc = mutate(seeds[i % seeds.length], r);
    let res: ReturnType<typeof validate>;
    try {
      res = validate(doc);
    } catch (e) {
      t.fail(`validator threw on case ${i}: ${(e as Error).stack}\n${JSON.stringify(doc)}`);
      continue;
    }
    if (!res.ok) {
      rejected++;
      if (res.errors.some((e) => typeof e.path !== 'string' || !e.message)) t.fail(`malformed error in case ${i}`);
      continue;
    }
    accepted++;
    try {
      const c = compile(res.model);
      for (const h of res.model.hosts) {
        const hr = c.host(h.name);
        for (const f of hr.flows) {
          const pr = flowProblems(f);
          if (pr.length) t.fail(`case ${i}: ${pr.join('; ')}`);
        }
        for (const g of hr.groups) if (groupProblems(g).length) t.fail(`case ${i}: group ${g.groupId}`);
      }
      // a few traces between the first endpoints of each tenant
      const eps = res.model.tenants.flatMap((x) => x.endpoints).filter((e) => e.ip !== undefined);
      for (let k = 0; k + 1 < Math.min(eps.length, 4); k++) traceBetween(c, eps[k]!.id, eps[k + 1]!.id, { protocol: 'tcp', dport: 80 });
    } catch (e) {
      t.fail(`accepted case ${i} failed to compile/trace: ${(e as Error).stack}\n${JSON.stringify(doc)}`);
    }
  }
  t.ok(accepted > 20, `${accepted} mutants accepted`);
  t.ok(rejected > 100, `${rejected} mutants rejected`);
});
