/**
 * The daemon on etcd (`--store etcd:URL`): the topology survives a restart of the
 * daemon through etcd, with the same generation and addresses. No switches needed:
 * the hosts' OVSDB addresses are dead (they are reported unreachable).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import t from 'tap';
import { startDaemon } from '../../../src/daemon/index.js';
import { startEtcd } from '../../helpers/etcd.js';
import { freePort } from '../../helpers/net.js';

t.test('controller on etcd', async (t) => {
  const etcd = await startEtcd();
  t.teardown(() => etcd.stop());
  const dir = mkdtempSync(join(tmpdir(), 'tenet-ctl-etcd-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const opts = {
    stateDir: dir,
    api: '127.0.0.1:0',
    openflow: '127.0.0.1:0',
    advertise: 'tcp:127.0.0.1:6653',
    store: `etcd:${etcd.endpoint}`,
    driftIntervalS: 0,
    auth: false,
    logger: pino({ level: 'silent' }),
  };
  const doc = {
    hosts: [{ name: 'h1', underlayIp: '203.0.113.1', ovsdb: `tcp:127.0.0.1:${await freePort({ host: '127.0.0.1' })}`, datapathType: 'netdev' }],
    tenants: [{ name: 'acme', networks: [{ name: 'n', subnet: '10.9.0.0/24' }], endpoints: [{ name: 'e1', network: 'n', host: 'h1' }] }],
  };
  const d1 = await startDaemon(opts);
  t.equal(d1.store.kind, 'etcd');
  t.equal(d1.token, null, 'auth off: no token');
  const r = await d1.controller.apply(doc);
  t.equal(r.generation, 1);
  const eps = d1.controller.endpoints();
  const s = await d1.controller.waitRealized(1, 10_000);
  t.equal(s.hosts[0]?.state, 'unreachable');
  await d1.close();

  const d2 = await startDaemon(opts);
  t.teardown(() => d2.close());
  t.equal(d2.controller.topology().generation, 1, 'generation from etcd');
  t.same(d2.controller.endpoints(), eps, 'same endpoints and addresses from etcd');
  const res = await fetch(`${d2.api.url}/v1/topology`);
  t.equal(res.status, 200, 'API without auth');
  t.same(((await res.json()) as { doc: unknown }).doc, doc);
});
