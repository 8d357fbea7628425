/**
 * The controller following a service registry (no switches): a registry given in
 * ControllerOptions is followed from the start (the first compile after a restart
 * already has its members and checks), and registry changes within the hold-down
 * window resolve and recompile once.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import t from 'tap';
import { Controller } from '../../../src/controller/index.js';
import type { RegisteredInstance, ServiceChange, ServiceSource } from '../../../src/controller/services.js';
import { EmbeddedStore } from '../../../src/store/index.js';
import { freePort } from '../../helpers/net.js';

const doc = async () => ({
  hosts: [{ name: 'host1', underlayIp: '203.0.113.1', ovsdb: `tcp:127.0.0.1:${await freePort({ host: '127.0.0.1' })}`, datapathType: 'netdev' }],
  tenants: [
    {
      name: 'acme',
      networks: [{ name: 'net', subnet: '10.1.0.0/24' }],
      endpoints: [
        { name: 'client', network: 'net', host: 'host1', ip: '10.1.0.10' },
        { name: 'server', network: 'net', host: 'host1', ip: '10.1.0.20' },
        { name: 'ids-1', network: 'net', host: 'host1', ip: '10.1.0.51', labels: { service: 'ids' } },
      ],
      chains: [{ name: 'web', from: { endpoints: ['client'] }, to: { endpoints: ['server'] }, protocol: 'tcp', ports: [80], hops: [{ service: 'ids' }] }],
    },
  ],
});

/** A registry in memory: one instance of acme/ids standing for ids-1. */
class FakeRegistry implements ServiceSource {
  inst: RegisteredInstance = { tenant: 'acme', service: 'ids', id: 'i1', address: '10.1.0.51', status: 'critical' };
  readonly fns = new Set<(c: ServiceChange) => void>();
  instances(): readonly RegisteredInstance[] {
    return [this.inst];
  }
  onChange(fn: (c: ServiceChange) => void): () => void {
    this.fns.add(fn);
    return () => this.fns.delete(fn);
  }
  set(status: RegisteredInstance['status']): void {
    this.inst = { ...this.inst, status };
    for (const fn of this.fns) fn({ type: 'update', tenant: 'acme', service: 'ids', id: 'i1', instance: this.inst });
  }
}

t.test('followed from the start, changes held down', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tenet-ctl-follow-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const base = { advertise: ['tcp:127.0.0.1:1'], openflow: { host: '127.0.0.1', port: 0 }, driftIntervalMs: 0, scheduler: false as const };
  let store = await EmbeddedStore.open({ dir });
  const first = await Controller.start({ store, ...base });
  await first.apply(await doc());
  await first.close();
  await store.close();

  // Restart with the registry in the options.
  const lines: string[] = [];
  const sink = new Writable({ write: (chunk: Buffer, _enc, done) => (lines.push(String(chunk)), done()) });
  const reg = new FakeRegistry();
  store = await EmbeddedStore.open({ dir });
  const c = await Controller.start({ store, ...base, services: reg, logger: pino({ level: 'info' }, sink) });
  t.teardown(async () => {
    await c.close();
    await store.close();
  });
  t.equal(reg.fns.size, 1, 'subscribed during start');
  const health = () => c.chains()[0]!.hops[0]!.instances.map((i) => `${i.endpoint.split('/')[1]} ${i.health}`);
  // No switch here, so the health shows "port missing"; that the start read the registry's critical
  // check shows below: the burst ending "passing" is a change (from critical) and recompiles.
  t.same(health(), ['ids-1 port missing'], 'the labelled member');

  // A flapping check: 9 flips within the window, from critical (read at start) to passing: one recompile.
  const recompiles = () => lines.filter((l) => l.includes('service registry changed chain members or health')).length;
  const before = recompiles();
  for (let i = 0; i < 9; i++) reg.set(i % 2 === 0 ? 'passing' : 'critical');
  await new Promise((r) => setTimeout(r, 50));
  t.equal(recompiles(), before, 'nothing resolved inside the window');
  await new Promise((r) => setTimeout(r, 400));
  t.equal(recompiles(), before + 1, 'one recompile for the whole burst');
  // A flap that ends where it began: resolved once, the same key, no recompile.
  reg.set('critical');
  reg.set('passing');
  await new Promise((r) => setTimeout(r, 400));
  t.equal(recompiles(), before + 1, 'a flip and back within the window: no recompile');
  await c.close();
  t.equal(reg.fns.size, 0, 'close stops following');
});
