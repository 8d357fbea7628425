/**
 * One assignment as the controller sends it to an agent (the issue-9 contract), for the
 * agent's tests: instance `id` in tenant acme, network web, at 10.0.0.<n>/24 with a MAC
 * ending in <n>. `over` replaces any field.
 */
import { endpointName, type AgentAssignment } from '../../src/agent/index.js';

export function agentAssignment(id: string, n = 5, over: Partial<AgentAssignment> = {}, macPrefix = '02:00:00:00:00'): AgentAssignment {
  return {
    id,
    unit: id.split('@')[0]!,
    tenant: 'acme',
    network: 'web',
    desiredState: 'launched',
    command: ['sleep', '1000'],
    env: {},
    restart: 'always',
    endpoint: { id: `acme/${endpointName(id)}`, name: endpointName(id), ip: `10.0.0.${n}/24`, mac: `${macPrefix}:${n.toString(16).padStart(2, '0')}`, gateway: '10.0.0.1' },
    services: [],
    ...over,
  };
}
