/** The controller's Prometheus metrics, in a Registry it owns (served by the API's /metrics). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ControllerStatus, HostState } from './types.js';

const STATES: HostState[] = ['connecting', 'ready', 'unreachable', 'error'];

export interface ControllerMetrics {
  registry: Registry;
  reconcileSeconds: Histogram<'host' | 'kind'>;
  messages: Counter<'host'>;
  driftRepairs: Counter<'host'>;
  applies: Counter<'result'>;
}

export function createMetrics(status: () => ControllerStatus): ControllerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'tenet_' });
  new Gauge({
    name: 'tenet_topology_generation',
    help: 'Generation of the stored topology (0 = none)',
    registers: [registry],
    collect() {
      this.set(status().generation);
    },
  });
  new Gauge({
    name: 'tenet_host_state',
    help: '1 for the state each host is in, 0 for the others',
    labelNames: ['host', 'state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const h of status().hosts) for (const s of STATES) this.set({ host: h.name, state: s }, h.state === s ? 1 : 0);
    },
  });
  const perHost = (name: string, help: string, value: (h: ControllerStatus['hosts'][number]) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['host'],
      registers: [registry],
      collect() {
        this.reset();
        for (const h of status().hosts) this.set({ host: h.name }, value(h));
      },
    });
  perHost('tenet_host_realized_generation', 'Highest topology generation the host holds', (h) => h.realizedGeneration);
  perHost('tenet_host_flows', 'Flows Tenet keeps on the host', (h) => h.flows);
  perHost('tenet_host_groups', 'Groups Tenet keeps on the host', (h) => h.groups);
  perHost('tenet_host_bindings', 'Container ports bound on the host', (h) => h.bindings);
  return {
    registry,
    reconcileSeconds: new Histogram({
      name: 'tenet_reconcile_seconds',
      help: 'Time of one reconcile (diff, bundle, barrier) or drift check',
      labelNames: ['host', 'kind'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    messages: new Counter({ name: 'tenet_reconcile_messages_total', help: 'Flow and group mods sent to switches', labelNames: ['host'], registers: [registry] }),
    driftRepairs: new Counter({ name: 'tenet_drift_repairs_total', help: 'Drift checks that found and undid a change made behind our back', labelNames: ['host'], registers: [registry] }),
    applies: new Counter({ name: 'tenet_apply_total', help: 'Applies by result (changed, unchanged, invalid)', labelNames: ['result'], registers: [registry] }),
  };
}
