/**
 * `tenet apply` against the real controller on a 2-host lab whose switches do
 * realize the topology: the per-host progress lines, exit 0, the plan of a change
 * (hitless, only the host that changes), and the event stream's `realized` events.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import WebSocket from 'ws';
import type { EventMessage } from '../../../src/api/index.js';
import { labTopologyHosts, startLabController } from '../../../src/lab/index.js';
import { tenet } from '../../helpers/cli.js';
import { withLab } from '../../helpers/lab.js';
import { until } from '../../helpers/net.js';

t.test('tenet apply on a lab: progress per host, exit 0, hitless change', async (t) => {
  await withLab(t, { hosts: 2 }, async (lab) => {
    const stateDir = mkdtempSync(join(tmpdir(), 'tenet-apply-'));
    t.teardown(() => rmSync(stateDir, { recursive: true, force: true }));
    const ctl = await startLabController(lab.state, { stateDir, driftIntervalS: 0 });
    t.teardown(() => ctl.stop());
    const env = { ...process.env, TENET_API: ctl.url, TENET_TOKEN: ctl.token! };
    const run = (...args: string[]) => tenet(args, { env });

    const msgs: EventMessage[] = [];
    const ws = new WebSocket(`${ctl.url.replace(/^http/, 'ws')}/v1/events`, { headers: { authorization: `Bearer ${ctl.token}` } });
    t.teardown(() => ws.terminate());
    ws.on('message', (d) => msgs.push(JSON.parse(String(d)) as EventMessage));
    await until('snapshot', () => msgs.length > 0);
    t.equal(msgs[0]!.type, 'snapshot');

    const doc = {
      version: 1,
      hosts: labTopologyHosts(lab.state),
      tenants: [
        {
          name: 'acme',
          networks: [{ name: 'web', subnet: '10.0.0.0/24' }],
          endpoints: [
            { name: 'a', network: 'web', host: 'host1' },
            { name: 'b', network: 'web', host: 'host2' },
          ],
        },
      ],
    };
    const file = join(stateDir, 'doc.json');
    writeFileSync(file, JSON.stringify(doc));
    const first = await run('apply', '-f', file, '--timeout', '60');
    t.equal(first.code, 0, `${first.stdout}${first.stderr}`);
    t.match(first.stdout, /^plan: generation 1\n {2}host1: \+\d+ flows.*\(hitless\).*\n {2}host2: \+\d+ flows/);
    t.match(first.stdout, /\napplied: generation 1\n/);
    for (const h of ['host1', 'host2']) t.match(first.stdout, new RegExp(`\\n {2}${h} realized gen 1( \\(\\d+ ms\\))?\\n`), `a progress line for ${h}`);
    t.match(first.stdout, /\ngeneration 1 realized on 2 of 2 hosts\n$/);
    await until('realized events for both hosts', () => ['host1', 'host2'].every((h) => msgs.some((m) => m.type === 'realized' && m.host === h && m.generation === 1)));

    const hosts = await run('get', 'hosts');
    t.match(hosts.stdout, /\nhost1\s+ready\s+1\s+[1-9]\d*\s+\d+\s+\d+\s+[0-9a-f]{16}\s/);
    t.match(hosts.stdout, /\nhost2\s+ready\s+1\s+[1-9]/);

    // One more endpoint on host2: flows are only added (hitless) on both hosts.
    doc.tenants[0]!.endpoints.push({ name: 'c', network: 'web', host: 'host2' });
    writeFileSync(file, JSON.stringify(doc));
    const plan = await run('plan', '-f', file);
    t.match(plan.stdout, /^plan: generation 2\n {2}host1: \+\d+ flows \(hitless\)\n {2}host2: \+\d+ flows \(hitless\)\n$/);
    const second = await run('apply', '-f', file, '--timeout', '60');
    t.equal(second.code, 0, `${second.stdout}${second.stderr}`);
    t.match(second.stdout, /\ngeneration 2 realized on 2 of 2 hosts\n$/);
    t.match((await run('status')).stdout, /^generation 2: realized on 2 of 2 hosts \(2 ready\)/);
  });
});
