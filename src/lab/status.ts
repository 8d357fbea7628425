import { isAlive, namespaceExists, readPid } from './lab.js';
import type { LabState } from './state.js';

export interface HostHealth {
  name: string;
  namespace: boolean;
  ovsdbServer: number | undefined;
  ovsVswitchd: number | undefined;
}

/** Live view of a lab: does each host's namespace exist, which daemons run (pids). */
export function labHealth(state: LabState): HostHealth[] {
  return state.hosts.map((h) => ({
    name: h.name,
    namespace: namespaceExists(h.namespace),
    ovsdbServer: readPid(h.pidfiles.ovsdbServer),
    ovsVswitchd: readPid(h.pidfiles.ovsVswitchd),
  }));
}

export function isHealthy(state: LabState): boolean {
  return labHealth(state).every((h) => h.namespace && h.ovsdbServer !== undefined && h.ovsVswitchd !== undefined && isAlive(h.ovsVswitchd));
}
