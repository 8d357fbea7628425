/**
 * The units and agents routes of the API (issue 9; docs/API.md, docs/SCHEDULER.md):
 *
 *   POST   /v1/agents/:host                 register (or re-register onto the live lease) -> {host, leaseId, ttlS}
 *   POST   /v1/agents/:host/heartbeat       {leaseId} -> {ttlS} | 404 lease-expired
 *   PUT    /v1/agents/:host/instances       {leaseId, instances} -> 204 | 404 lease-expired
 *   GET    /v1/agents/:host/assignments?index=N&waitS=S   long poll -> {index, assignments}
 *   GET    /v1/agents                       AgentInfo[]
 *   GET    /v1/units                        UnitInfo[]
 *   POST   /v1/units                        {units: [...]} add or replace by name -> ApplyResult | 400 {issues}
 *   POST   /v1/units/:name/start|stop       desiredState launched|loaded -> ApplyResult | 404
 *   DELETE /v1/units/:name                  -> ApplyResult | 404
 */
import type express from 'express';
import type { Request, Response } from 'express';
import type { ControllerApi } from '../controller/index.js';
import type { ApiErrorBody } from './protocol.js';

/** Longest long poll of the assignments route, seconds. */
export const MAX_ASSIGNMENTS_WAIT_S = 300;

type Raw = Record<string, unknown>;
const isObj = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);

function hasUnit(controller: ControllerApi, name: string): boolean {
  const doc = controller.topology().doc;
  return isObj(doc) && Array.isArray(doc.units) && doc.units.some((u) => isObj(u) && u.name === name);
}

function notFound(res: Response, message: string): void {
  res.status(404).json({ error: 'not found', message } satisfies ApiErrorBody);
}

/** An agent call with a lease that is gone answers 404 lease-expired (the agent registers again). */
async function leased(res: Response, f: () => Promise<void>): Promise<void> {
  try {
    await f();
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ELEASE') {
      res.status(404).json({ error: 'lease-expired', message: (err as Error).message } satisfies ApiErrorBody);
      return;
    }
    throw err;
  }
}

function bodyObject(req: Request): Raw {
  return isObj(req.body) ? req.body : {};
}

function intQuery(req: Request, name: string, max: number): number | undefined {
  const v = req.query[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^\d+$/.test(v) || Number(v) > max) {
    const e = new Error(`${name} must be an integer from 0 to ${max}`) as Error & { status: number; type: string };
    e.status = 400;
    e.type = 'bad.query';
    throw e;
  }
  return Number(v);
}

export function mountUnitRoutes(app: express.Express, controller: ControllerApi): void {
  app.post('/v1/agents/:host', async (req, res) => {
    res.json(await controller.registerAgent(req.params.host as string, req.body));
  });
  app.post('/v1/agents/:host/heartbeat', async (req, res) => {
    await leased(res, async () => {
      res.json(await controller.agentHeartbeat(req.params.host as string, bodyObject(req).leaseId));
    });
  });
  app.put('/v1/agents/:host/instances', async (req, res) => {
    await leased(res, async () => {
      const b = bodyObject(req);
      await controller.reportInstances(req.params.host as string, b.leaseId, b.instances);
      res.status(204).end();
    });
  });
  app.get('/v1/agents/:host/assignments', async (req, res) => {
    const index = intQuery(req, 'index', 2 ** 32) ?? 0;
    const waitS = intQuery(req, 'waitS', MAX_ASSIGNMENTS_WAIT_S) ?? 30;
    const gone = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) gone.abort();
    });
    const r = await controller.waitAssignments(req.params.host as string, index, waitS * 1000, gone.signal);
    if (!gone.signal.aborted) res.json(r);
  });
  app.get('/v1/agents', async (_req, res) => {
    res.json(await controller.agentInfos());
  });

  app.get('/v1/units', async (_req, res) => {
    res.json(await controller.units());
  });
  app.post('/v1/units', async (req, res) => {
    res.json(await controller.submitUnits(bodyObject(req).units));
  });
  for (const [verb, state] of [['start', 'launched'], ['stop', 'loaded']] as const) {
    app.post(`/v1/units/:name/${verb}`, async (req, res) => {
      const name = req.params.name as string;
      if (!hasUnit(controller, name)) return notFound(res, `no unit '${name}'`);
      res.json(await controller.setUnitState(name, state));
    });
  }
  app.delete('/v1/units/:name', async (req, res) => {
    const name = req.params.name as string;
    if (!hasUnit(controller, name)) return notFound(res, `no unit '${name}'`);
    res.json(await controller.destroyUnit(name));
  });
}
