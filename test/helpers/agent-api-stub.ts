/**
 * A stand-in for the controller's agent API (issue-9 contract) with the real registry
 * mounted at /v1/services: lets the agent's loop be tested on a real lab before and
 * apart from the scheduler. Assignments are set by the test; leases are plain timers.
 */
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import type { Test } from 'tap';
import type { AgentAssignment, AgentRegistration, InstanceStatus } from '../../src/agent/index.js';
import { Registry, createRegistryRouter } from '../../src/registry/index.js';
import { EmbeddedStore } from '../../src/store/index.js';

export const STUB_TOKEN = 'stub-token-0123456789';

export interface AgentApiStub {
  url: string;
  registry: Registry;
  registrations: Map<string, AgentRegistration & { leaseId: number; registeredAt: number }>;
  instances: Map<string, InstanceStatus[]>;
  /** Count of POST /v1/agents/:host per host. */
  registerCount: Map<string, number>;
  setAssignments(host: string, list: AgentAssignment[]): void;
  /** Forget every lease (as a restarted controller whose leases expired). */
  expireLeases(): void;
  /** Stop listening (the controller is away); `resume` listens again on the same port. */
  pause(): Promise<void>;
  resume(): Promise<void>;
}

export async function startAgentApiStub(t: Test, opts: { ttlS?: number; tenants?: string[] } = {}): Promise<AgentApiStub> {
  const ttlS = opts.ttlS ?? 3;
  const dir = mkdtempSync(join(tmpdir(), 'tenet-agentstub-'));
  const store = await EmbeddedStore.open({ dir, leaseCheckMs: 50 });
  const registry = await Registry.start({ store, tenants: opts.tenants ?? ['acme'], sweepMs: 50 });
  const registrations: AgentApiStub['registrations'] = new Map();
  const instances = new Map<string, InstanceStatus[]>();
  const registerCount = new Map<string, number>();
  const assignments = new Map<string, { index: number; list: AgentAssignment[] }>();
  const leases = new Map<string, { id: number; timer: NodeJS.Timeout }>();
  const changed = new EventEmitter();
  changed.setMaxListeners(100);
  let nextLease = 1;

  const keep = (host: string, id: number) => {
    clearTimeout(leases.get(host)?.timer);
    const timer = setTimeout(() => {
      leases.delete(host);
      instances.delete(host);
    }, ttlS * 1000);
    timer.unref();
    leases.set(host, { id, timer });
  };

  const app = express();
  app.use('/v1/services', createRegistryRouter(registry, { token: STUB_TOKEN }));
  app.use(express.json());
  app.use((req, res, next) => {
    if (req.headers.authorization !== `Bearer ${STUB_TOKEN}`) {
      res.status(401).json({ error: 'unauthorized', message: 'bad token' });
      return;
    }
    next();
  });
  app.post('/v1/agents/:host', (req, res) => {
    const host = req.params.host;
    registerCount.set(host, (registerCount.get(host) ?? 0) + 1);
    const id = leases.get(host)?.id ?? nextLease++;
    keep(host, id);
    registrations.set(host, { ...(req.body as AgentRegistration), leaseId: id, registeredAt: Date.now() });
    res.json({ host, leaseId: id, ttlS });
  });
  app.post('/v1/agents/:host/heartbeat', (req, res) => {
    const l = leases.get(req.params.host);
    if (!l || l.id !== (req.body as { leaseId: number }).leaseId) {
      res.status(404).json({ error: 'lease-expired', message: 'no such lease' });
      return;
    }
    keep(req.params.host, l.id);
    res.json({ ttlS });
  });
  app.put('/v1/agents/:host/instances', (req, res) => {
    const l = leases.get(req.params.host);
    const body = req.body as { leaseId: number; instances: InstanceStatus[] };
    if (!l || l.id !== body.leaseId) {
      res.status(404).json({ error: 'lease-expired', message: 'no such lease' });
      return;
    }
    instances.set(req.params.host, body.instances);
    res.status(204).end();
  });
  app.get('/v1/agents/:host/assignments', (req, res) => {
    const host = req.params.host;
    const want = Number(req.query.index ?? 0);
    const waitS = Number(req.query.waitS ?? 30);
    const answer = () => {
      const cur = assignments.get(host) ?? { index: 1, list: [] };
      res.json({ index: cur.index, assignments: cur.list });
    };
    const cur = assignments.get(host) ?? { index: 1, list: [] };
    if (want === 0 || want !== cur.index) return answer();
    const onChange = (h: string) => {
      if (h !== host) return;
      cleanup();
      answer();
    };
    const timer = setTimeout(() => {
      cleanup();
      answer();
    }, waitS * 1000);
    const cleanup = () => {
      clearTimeout(timer);
      changed.off('change', onChange);
    };
    changed.on('change', onChange);
    res.on('close', cleanup);
  });

  let server: Server = createServer(app);
  const sockets = new Set<import('node:net').Socket>();
  const track = (s: Server) => s.on('connection', (c) => {
    sockets.add(c);
    c.on('close', () => sockets.delete(c));
  });
  track(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const close = () =>
    new Promise<void>((r) => {
      for (const c of sockets) c.destroy();
      server.close(() => r());
    });
  t.teardown(async () => {
    await close();
    for (const l of leases.values()) clearTimeout(l.timer);
    await registry.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    registry,
    registrations,
    instances,
    registerCount,
    setAssignments(host, list) {
      const cur = assignments.get(host) ?? { index: 1, list: [] };
      assignments.set(host, { index: cur.index + 1, list });
      changed.emit('change', host);
    },
    expireLeases() {
      for (const l of leases.values()) clearTimeout(l.timer);
      leases.clear();
    },
    pause: close,
    async resume() {
      server = createServer(app);
      track(server);
      await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    },
  };
}
