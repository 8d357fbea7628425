/**
 * Cross-check with OVS: load each lab host's compiled flows and groups into its
 * real br-int (ports created first so ofports match the placement), check that
 * `ovs-ofctl dump-flows` prints exactly Tenet's own text, then for a few hundred
 * generated packets compare Tenet's single-switch trace verdict (which ports the
 * packet leaves by) with `ovs-appctl ofproto/trace`.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { formatIp4 } from '../../../src/ipam/index.js';
import { loadTopology, type Endpoint } from '../../../src/model/index.js';
import { formatFlow, formatGroup } from '../../../src/openflow/index.js';
import { compile, defaultPlacement } from '../../../src/pipeline/index.js';
import { headersBetween, Tracer, type Fields, type PacketSpec } from '../../../src/trace/index.js';
import { withLab, type TestLab } from '../../helpers/lab.js';

const doc = JSON.parse(readFileSync(new URL('../../../topologies/lab-two-hosts.json', import.meta.url), 'utf8'));

const mac = (v: bigint) => v.toString(16).padStart(12, '0').replace(/(..)(?!$)/g, '$1:');

/** Tenet's header map in ofproto/trace's flow syntax. */
function flowText(inPort: number, f: Fields): string {
  // the protocol keyword goes first: ovs parses fields in order and checks prerequisites as it goes
  const type = f.get('dl_type');
  const proto = f.get('nw_proto');
  const parts = [type === 0x806n ? 'arp' : proto === 6n ? 'tcp' : proto === 17n ? 'udp' : 'icmp', `in_port=${inPort}`];
  const tun = f.get('tun_id');
  if (tun) parts.push(`tun_id=0x${tun.toString(16)}`);
  parts.push(`dl_src=${mac(f.get('dl_src')!)}`, `dl_dst=${mac(f.get('dl_dst')!)}`);
  if (type === 0x806n) {
    parts.push(`arp_op=${f.get('arp_op')}`, `arp_spa=${formatIp4(Number(f.get('arp_spa')))}`, `arp_tpa=${formatIp4(Number(f.get('arp_tpa')))}`, `arp_sha=${mac(f.get('arp_sha')!)}`);
  } else {
    parts.push(`nw_src=${formatIp4(Number(f.get('nw_src')))}`, `nw_dst=${formatIp4(Number(f.get('nw_dst')))}`, `nw_ttl=${f.get('nw_ttl')}`);
    if (proto === 6n || proto === 17n) {
      const p = proto === 6n ? 'tcp' : 'udp';
      parts.push(`${p}_src=${f.get(`${p}_src`)}`, `${p}_dst=${f.get(`${p}_dst`)}`);
    } else parts.push(`icmp_type=${f.get('icmp_type') ?? 8n}`, 'icmp_code=0');
  }
  return parts.join(',');
}

/** The OpenFlow ports ofproto/trace says the packet leaves by (sorted, unique). */
function ovsPorts(trace: string, inPort: number): number[] {
  const lines = trace.split('\n');
  const out = new Set<number>();
  lines.forEach((l, i) => {
    const next = lines[i + 1] ?? '';
    if (/skipping output to input port/.test(next)) return;
    const m = /^\s*output:(\d+)\s*$/.exec(l);
    if (m) out.add(Number(m[1]));
    else if (/^\s*IN_PORT\s*$/.test(l)) out.add(inPort);
  });
  return [...out].sort((a, b) => a - b);
}

interface Case {
  host: string;
  inPort: number;
  fields: Fields;
  what: string;
}

async function pool<T, R>(items: T[], n: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

t.test('Tenet trace verdicts equal ofproto/trace on real switches', async (t) => {
  await withLab(t, { hosts: 2 }, async (lab: TestLab) => {
    const model = loadTopology(doc);
    const placement = defaultPlacement(model);
    const result = compile(model, placement);
    const dir = mkdtempSync(join(tmpdir(), 'tenet-xcheck-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));

    for (const h of model.hosts) {
      const hp = placement.hosts[h.name]!;
      const args: string[] = [];
      for (const [peer, port] of Object.entries(hp.tunnels)) {
        args.push('--', 'add-port', 'br-int', `vx-${peer}`, '--', 'set', 'interface', `vx-${peer}`, 'type=vxlan', `options:remote_ip=${lab.host(peer).underlayIp}`, 'options:key=flow', `ofport_request=${port}`);
      }
      for (const port of Object.values(hp.ports)) args.push('--', 'add-port', 'br-int', `p${port}`, '--', 'set', 'interface', `p${port}`, 'type=internal', `ofport_request=${port}`);
      const v = await lab.vsctl(h.name, ...args.slice(1));
      t.equal(v.code, 0, v.stderr);
      const gf = join(dir, `${h.name}.groups`);
      const ff = join(dir, `${h.name}.flows`);
      writeFileSync(gf, result.host(h.name).groups.map(formatGroup).join('\n') + '\n');
      writeFileSync(ff, result.host(h.name).flows.map(formatFlow).join('\n') + '\n');
      const g = await lab.ofctl(h.name, 'add-groups', 'br-int', gf);
      t.equal(g.code, 0, g.stderr);
      const f = await lab.ofctl(h.name, '--bundle', 'add-flows', 'br-int', ff);
      t.equal(f.code, 0, f.stderr);
      // the switch prints back exactly what Tenet printed
      const dump = await lab.ofctl(h.name, '--no-stats', 'dump-flows', 'br-int');
      const theirs = dump.stdout.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('cookie=')).sort();
      t.same(theirs, result.host(h.name).flows.map(formatFlow).sort(), `${h.name}: dump-flows equals Tenet's flows`);
      const dg = await lab.ofctl(h.name, 'dump-groups', 'br-int');
      const groups = dg.stdout.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('group_id=')).sort();
      t.same(groups, result.host(h.name).groups.map(formatGroup).sort(), `${h.name}: dump-groups equals Tenet's groups`);
    }

    // generated packets
    const eps = model.tenants.flatMap((x) => x.endpoints);
    const specs: PacketSpec[] = [
      { protocol: 'icmp' },
      { protocol: 'tcp', dport: 80 },
      { protocol: 'tcp', dport: 8085 },
      { protocol: 'tcp', dport: 22 },
      { protocol: 'tcp', dport: 23 },
      { protocol: 'udp', dport: 53 },
      { protocol: 'arp' },
    ];
    const cases: Case[] = [];
    const bigMac = (e: Endpoint) => BigInt('0x' + e.mac.replace(/:/g, ''));
    for (const src of eps) {
      const inPort = placement.hosts[src.host]!.ports[src.id]!;
      for (const dst of eps) {
        for (const spec of specs) cases.push({ host: src.host, inPort, fields: headersBetween(src, dst, spec), what: `${src.id} -> ${dst.id} ${spec.protocol}/${spec.dport ?? ''}` });
      }
      const other = eps.find((e) => e !== src && e.tenant === src.tenant)!;
      cases.push({ host: src.host, inPort, fields: headersBetween(src, other, { protocol: 'tcp', dport: 80, set: { nw_src: BigInt(other.ip!) } }), what: `${src.id} spoofing IP` });
      cases.push({ host: src.host, inPort, fields: headersBetween(src, other, { protocol: 'tcp', dport: 80, set: { dl_src: bigMac(other) } }), what: `${src.id} spoofing MAC` });
      cases.push({ host: src.host, inPort, fields: headersBetween(src, other, { protocol: 'tcp', dport: 80, ttl: 1 }), what: `${src.id} TTL 1` });
      cases.push({ host: src.host, inPort, fields: headersBetween(src, other, { protocol: 'arp', set: { arp_tpa: BigInt(src.ip! + 77) } }), what: `${src.id} ARP broadcast` });
      // the same packets arriving over the tunnel at every other host
      for (const h of model.hosts) {
        if (h.name === src.host) continue;
        const tun = placement.hosts[h.name]!.tunnels[src.host]!;
        for (const dst of eps.filter((e) => e.network === src.network)) {
          const f = headersBetween(src, dst, { protocol: 'tcp', dport: 80 });
          f.set('tun_id', BigInt(src.network.vni));
          cases.push({ host: h.name, inPort: tun, fields: f, what: `tunnel ${src.host}->${h.name} ${src.id} -> ${dst.id}` });
        }
        const b = headersBetween(src, src, { protocol: 'arp', set: { arp_tpa: BigInt(src.ip! + 77) } });
        b.set('tun_id', BigInt(src.network.vni));
        cases.push({ host: h.name, inPort: tun, fields: b, what: `tunnel broadcast ${src.id}` });
      }
    }
    t.ok(cases.length >= 200, `${cases.length} packets`);

    const tracer = new Tracer(result, { followTunnels: false });
    const ovs = await pool(cases, 4, async (c) => (await lab.appctl(c.host, 'ofproto/trace', 'br-int', flowText(c.inPort, c.fields))).stdout);
    let agree = 0;
    let delivered = 0;
    cases.forEach((c, i) => {
      tracer.resetConntrack();
      const r = tracer.trace(c.host, c.inPort, c.fields);
      const ours = [...new Set(r.outcomes.flatMap((o) => (o.kind === 'delivered' || o.kind === 'tunneled' ? [o.port] : [])))].sort((a, b) => a - b);
      const theirs = ovsPorts(ovs[i]!, c.inPort);
      if (ours.length) delivered++;
      if (JSON.stringify(ours) === JSON.stringify(theirs)) agree++;
      else t.fail(`${c.host} ${c.what}: tenet ${JSON.stringify(ours)} ovs ${JSON.stringify(theirs)}\n${flowText(c.inPort, c.fields)}\n${ovs[i]}`);
    });
    t.equal(agree, cases.length, `${agree}/${cases.length} verdicts agree (${delivered} forwarded, ${cases.length - delivered} dropped)`);
    t.ok(delivered > 50 && cases.length - delivered > 50, 'both outcomes well represented');
  });
});
