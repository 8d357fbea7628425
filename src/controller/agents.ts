/**
 * Agents' liveness as store leases the controller holds on their behalf (issue-9
 * contract §3): `/tenet/agents/<host>` (AgentRecord) and `/tenet/agents/<host>/instances`
 * (InstanceStatus[]) on one lease of `ttlS` seconds, renewed by the agent's heartbeats.
 * When the lease expires both keys vanish, and the leader's scheduling loop sees it.
 */
import { z } from 'zod';
import { LeaseNotFoundError, type Store } from '../store/index.js';
import { agentHostIssues, type AgentInfo, type AgentRecord, type AgentRegistration, type InstanceStatus } from '../scheduler/index.js';
import { TenetError, UsageError } from '../util/errors.js';

export const AGENTS_PREFIX = '/tenet/agents/';
export const agentKey = (host: string) => `${AGENTS_PREFIX}${host}`;
export const instancesKey = (host: string) => `${AGENTS_PREFIX}${host}/instances`;

/** The agent's lease is gone (expired, or another registration replaced it): it must register again. */
export class LeaseExpiredError extends TenetError {
  constructor(host: string, leaseId: string) {
    super('ELEASE', `the lease ${leaseId} of host ${host} expired or was replaced: register again`, { host, leaseId });
  }
}

const HostName = z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, { message: 'must be a DNS-safe host name' });
const Labels = z.record(z.string().regex(/^[a-z0-9]([a-z0-9._/-]{0,61}[a-z0-9])?$/, { message: 'label key must be DNS-safe' }), z.string().max(63));

export const AgentRegistrationSchema = z.strictObject({
  version: z.string().min(1).max(100),
  labels: Labels.optional(),
  resources: z.strictObject({ cpu: z.number().int().min(0).optional(), memory: z.number().int().min(0).optional() }).optional(),
  underlayIp: z.string().regex(/^\d{1,3}(\.\d{1,3}){3}$/, { message: 'must be an IPv4 address' }).optional(),
  ovsdb: z.string().regex(/^(tcp:[^:]+:\d+|ssl:[^:]+:\d+|unix:.+)$/, { message: 'must be tcp:IP:PORT, ssl:IP:PORT or unix:PATH' }).optional(),
  datapathType: z.enum(['netdev', 'system']).optional(),
  socket: z.string().min(1).max(4096).optional(),
});

const InstanceStatusSchema = z.strictObject({
  id: z.string().min(1).max(300),
  unit: z.string().min(1).max(300),
  endpoint: z.string().max(300),
  state: z.enum(['starting', 'running', 'exited', 'failed', 'stopped']),
  pid: z.number().int().min(1).optional(),
  restarts: z.number().int().min(0),
  exitCode: z.number().int().optional(),
  since: z.string().max(64),
  message: z.string().max(4096).optional(),
  logPath: z.string().max(4096).optional(),
});
const InstancesSchema = z.array(InstanceStatusSchema).max(10_000);

/** Parses with `schema` or throws a UsageError naming every bad field (path: message). */
function parse<T>(schema: z.ZodType<T>, v: unknown, what: string): T {
  const r = schema.safeParse(v);
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => `/${i.path.join('/')}: ${i.message}`);
  throw new UsageError(`invalid ${what}: ${issues.join('; ')}`, { issues });
}

export function checkHost(host: string): string {
  return parse(HostName, host, 'host name');
}

/** A registration body, validated (UsageError naming every bad field). */
export function parseRegistration(body: unknown): AgentRegistration {
  return parse(AgentRegistrationSchema, body, 'agent registration') as AgentRegistration;
}

/** An instances report, validated. */
export function parseInstances(v: unknown): InstanceStatus[] {
  return parse(InstancesSchema, v, 'instances') as InstanceStatus[];
}

export class AgentDirectory {
  constructor(
    private readonly store: Store,
    readonly ttlS: number,
  ) {}

  /**
   * Reuses the host's live lease (an agent restarted within the TTL), else grants one.
   * `docHosts` (the stored document's hosts): a registration whose host entry would make the
   * effective document invalid (model Host schema, an underlay IP of another host or agent)
   * is refused with a UsageError naming the field, instead of stalling every placement.
   */
  async register(host: string, body: unknown, docHosts?: unknown): Promise<{ host: string; leaseId: string; ttlS: number }> {
    checkHost(host);
    const registration = parseRegistration(body);
    if (docHosts !== undefined) {
      const others: Record<string, AgentRegistration> = {};
      for (const [h, v] of await this.live()) if (h !== host) others[h] = v.record.registration;
      const issues = agentHostIssues(host, registration, docHosts, others).map((i) => `${i.path}: ${i.message}`);
      if (issues.length) throw new UsageError(`invalid agent registration: ${issues.join('; ')}`, { issues });
    }
    const prev = await this.record(host);
    let leaseId: string | undefined;
    if (prev && (await this.store.leaseTimeToLive(prev.leaseId)) > 0) {
      try {
        await this.store.keepAlive(prev.leaseId);
        leaseId = prev.leaseId;
      } catch (err) {
        if (!(err instanceof LeaseNotFoundError)) throw err;
      }
    }
    const fresh = leaseId === undefined;
    leaseId ??= (await this.store.grantLease(this.ttlS)).id;
    const record: AgentRecord = { host, registration, registeredAt: new Date().toISOString(), leaseId };
    const ops: Array<{ type: 'put'; key: string; value: string; lease: string }> = [{ type: 'put', key: agentKey(host), value: JSON.stringify(record), lease: leaseId }];
    if (fresh) ops.push({ type: 'put', key: instancesKey(host), value: '[]', lease: leaseId });
    await this.store.txn({ compare: [], success: ops });
    return { host, leaseId, ttlS: this.ttlS };
  }

  async heartbeat(host: string, leaseId: unknown): Promise<{ ttlS: number }> {
    const lease = await this.ownLease(host, leaseId);
    try {
      return { ttlS: await this.store.keepAlive(lease) };
    } catch (err) {
      if (err instanceof LeaseNotFoundError) throw new LeaseExpiredError(host, lease);
      throw err;
    }
  }

  async reportInstances(host: string, leaseId: unknown, instances: unknown): Promise<void> {
    const lease = await this.ownLease(host, leaseId);
    const list = parseInstances(instances);
    try {
      await this.store.put(instancesKey(host), JSON.stringify(list), { lease });
    } catch (err) {
      if (err instanceof LeaseNotFoundError) throw new LeaseExpiredError(host, lease);
      throw err;
    }
  }

  /** The registered (live) agents: records and their instances, by host. */
  async live(): Promise<Map<string, { record: AgentRecord; instances: InstanceStatus[] }>> {
    const r = await this.store.range(AGENTS_PREFIX, { prefix: true });
    const out = new Map<string, { record: AgentRecord; instances: InstanceStatus[] }>();
    const instances = new Map<string, InstanceStatus[]>();
    for (const kv of r.kvs) {
      const rest = kv.key.slice(AGENTS_PREFIX.length);
      if (rest.endsWith('/instances')) instances.set(rest.slice(0, -'/instances'.length), JSON.parse(kv.value) as InstanceStatus[]);
      else if (!rest.includes('/')) out.set(rest, { record: JSON.parse(kv.value) as AgentRecord, instances: [] });
    }
    for (const [host, v] of out) v.instances = instances.get(host) ?? [];
    return out;
  }

  /** Live agents, then `lost` ones (last record seen, not alive), by host name. */
  async infos(lost: ReadonlyMap<string, AgentRecord> = new Map()): Promise<AgentInfo[]> {
    const live = await this.live();
    const out: AgentInfo[] = [...live.values()].map(({ record, instances }) => ({ host: record.host, alive: true, registration: record.registration, registeredAt: record.registeredAt, instances }));
    for (const [host, r] of lost) if (!live.has(host)) out.push({ host, alive: false, registration: r.registration, registeredAt: r.registeredAt, instances: [] });
    return out.sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : 0));
  }

  private async record(host: string): Promise<AgentRecord | undefined> {
    const kv = await this.store.get(agentKey(host));
    return kv ? (JSON.parse(kv.value) as AgentRecord) : undefined;
  }

  /** The lease the caller names, if it is still the host's (else LeaseExpiredError). */
  private async ownLease(host: string, leaseId: unknown): Promise<string> {
    checkHost(host);
    if ((typeof leaseId !== 'string' && typeof leaseId !== 'number') || String(leaseId) === '') throw new UsageError('leaseId is required (from POST /v1/agents/:host)');
    const lease = String(leaseId);
    const rec = await this.record(host);
    if (!rec || rec.leaseId !== lease) throw new LeaseExpiredError(host, lease);
    return lease;
  }
}
