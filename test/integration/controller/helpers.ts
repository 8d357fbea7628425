/**
 * Shared by the controller integration tests: a small two-tenant topology for a
 * lab, flow dumps with durations, and an in-process controller on a lab.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { Controller, type ControllerEvent } from '../../../src/controller/index.js';
import { labTopologyHosts, type LabState } from '../../../src/lab/index.js';
import { EmbeddedStore } from '../../../src/store/index.js';
import type { TestLab } from '../../helpers/lab.js';
import { freePort } from '../../helpers/net.js';

/** acme: one network on host1+host2 (default deny, icmp allowed); globex: the same subnet on host1+host3. */
export function smallTopology(state: LabState): Record<string, unknown> & { tenants: Array<Record<string, unknown>> } {
  return {
    hosts: labTopologyHosts(state),
    tenants: [
      {
        name: 'acme',
        networks: [{ name: 'web', subnet: '10.0.0.0/24' }],
        endpoints: [
          { name: 'web-1', network: 'web', host: 'host1' },
          { name: 'web-2', network: 'web', host: 'host2' },
        ],
        policies: [{ name: 'ping', from: {}, to: {}, protocol: 'icmp', action: 'allow' }],
        defaultPolicy: 'deny',
      },
      {
        name: 'globex',
        networks: [{ name: 'web', subnet: '10.0.0.0/24' }],
        endpoints: [
          { name: 'a', network: 'web', host: 'host1' },
          { name: 'b', network: 'web', host: 'host3' },
        ],
        defaultPolicy: 'allow',
      },
    ],
  };
}

/** `ovs-ofctl dump-flows` of br-int: flow text without statistics -> duration in seconds. */
export async function dumpFlows(lab: TestLab, host: string): Promise<Map<string, number>> {
  const out = (await lab.ofctl(host, '--no-names', 'dump-flows', 'br-int')).stdout;
  const m = new Map<string, number>();
  for (const line of out.split('\n')) {
    const d = /duration=([\d.]+)s/.exec(line);
    if (!d) continue;
    const text = line.replace(/ duration=[\d.]+s,| n_packets=\d+,| n_bytes=\d+,| idle_age=\d+,| hard_age=\d+,/g, '').replace(' table=0,', '').trim();
    m.set(text, Number(d[1]));
  }
  return m;
}

/** An in-process controller on the lab's management gateway (ephemeral OpenFlow port), with a temporary embedded store. */
export async function startController(t: Test, lab: TestLab, opts: { driftIntervalMs?: number } = {}): Promise<{ controller: Controller; store: EmbeddedStore; events: ControllerEvent[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'tenet-ctl-'));
  const store = await EmbeddedStore.open({ dir });
  const gw = lab.state.mgmt.gateway;
  // The OpenFlow port must be known before the bridges are told where to connect: listen first on a fixed free port.
  const port = await freePort({ host: gw });
  const controller = await Controller.start({
    store,
    advertise: [`tcp:${gw}:${port}`],
    openflow: { host: gw, port },
    driftIntervalMs: opts.driftIntervalMs ?? 0,
    echo: { intervalMs: 1000, timeoutMs: 3000 },
    retryMs: 500,
  });
  const events: ControllerEvent[] = [];
  controller.on('event', (e) => events.push(e));
  t.teardown(async () => {
    await controller.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { controller, store, events };
}

/** Waits until every endpoint placed on a lab host has its ofport and the controller has nothing left to do. */
export async function waitBound(controller: Controller, ids: string[], timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const eps = controller.endpoints().filter((e) => ids.includes(e.id));
    if (eps.length === ids.length && eps.every((e) => e.ofport !== undefined)) {
      if (await controller.settled(end - Date.now())) return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`endpoints not bound within ${timeoutMs} ms: ${JSON.stringify(controller.endpoints().map((e) => [e.id, e.ofport]))}`);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
