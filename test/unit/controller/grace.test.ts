/**
 * Startup grace of the scheduling loop (r3#5): for one agent TTL after being elected, the
 * hosts of the stored placement count as live with their saved registrations, so a new
 * leader does not move every instance while the agents are still re-registering.
 */
import t from 'tap';
import { graceRegistrations } from '../../../src/controller/scheduling.js';
import { currentOf, place, schedulingInput, type AgentRegistration, type PlacementRecord } from '../../../src/scheduler/index.js';

const doc = {
  version: 1,
  hosts: [
    { name: 'host1', underlayIp: '192.0.2.1', ovsdb: 'tcp:192.0.2.1:6640' },
    { name: 'host2', underlayIp: '192.0.2.2', ovsdb: 'tcp:192.0.2.2:6640' },
  ],
  tenants: [{ name: 'acme', networks: [{ name: 'web', subnet: '10.0.1.0/24' }] }],
  units: [{ name: 'web@1..2', tenant: 'acme', network: 'web', command: 'x', constraints: { conflicts: ['web@*'] } }],
};
const reg: AgentRegistration = { version: '1', resources: { memory: 2 ** 30 } };
const placement: PlacementRecord = {
  assignments: [
    { id: 'web@1', unit: 'web@1..2', host: 'host1' },
    { id: 'web@2', unit: 'web@1..2', host: 'host2' },
  ],
  unplaceable: [],
  at: new Date(0).toISOString(),
  agents: { host1: reg, host2: reg },
};

t.test('a host of the stored placement whose agent has not re-registered yet keeps its instances', async (t) => {
  const live = { host1: reg }; // host2's agent is still in its re-register backoff
  const grace = graceRegistrations(live, placement);
  t.same(grace, { host2: reg }, 'host2 counts as live with its saved registration');
  const input = schedulingInput(doc, { ...live, ...grace })!;
  const r = place(input.units, input.hosts, currentOf(placement));
  t.same(r.moved, [], 'nothing moves');
  t.same(r.assignments.map((a) => `${a.id}@${a.host}`).sort(), ['web@1@host1', 'web@2@host2']);

  // Without the grace the same pass takes web@2 away from host2.
  const bare = schedulingInput(doc, live)!;
  t.ok(place(bare.units, bare.hosts, currentOf(placement)).moved.length > 0, 'without grace: host2 is gone');
});

t.test('skipped (invalid) hosts and live hosts are not added; no placement: nothing', async (t) => {
  t.same(graceRegistrations({ host1: reg }, placement, new Map([['host2', 'bad underlay IP']])), {});
  t.same(graceRegistrations({ host1: reg, host2: reg }, placement), {});
  t.same(graceRegistrations({}, undefined), {});
  t.same(graceRegistrations({}, { ...placement, agents: {} }), { host1: { version: 'grace' }, host2: { version: 'grace' } }, 'no saved registration: a bare one');
});
