/**
 * Containers in the lab: a network namespace with one veth whose other end is
 * a port of its host's br-int, tagged `external_ids:iface-id` (OVN's binding
 * convention). No image, no process: callers run what they need with `exec`.
 */
import { Address4, Address6 } from 'ip-address';
import { run, type RunOptions, type RunResult } from '../util/exec.js';
import { UsageError } from '../util/errors.js';
import { plugPort, unplugPort } from '../netns/index.js';
import { hostEnv, requireRoot } from './lab.js';
import { CONTAINER_IFACE, checkContainerName, containerHostIface, containerNamespace } from './naming.js';
import { readState, writeState, type LabContainer, type LabHost, type LabState } from './state.js';

export interface ContainerSpec {
  /** Address with prefix length: 10.0.0.1/24 or fd00::1/64. */
  ip: string;
  mac?: string;
  /** Logical port id bound through external_ids:iface-id. */
  ifaceId: string;
  /** Optional default gateway inside the container. */
  gateway?: string;
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export function loadLab(name: string): LabState {
  const state = readState(name);
  if (!state) throw new UsageError(`no lab named '${name}' (see: tenet lab status)`);
  return state;
}

export function findHost(state: LabState, host: string): LabHost {
  const h = state.hosts.find((x) => x.name === host);
  if (!h) {
    throw new UsageError(`unknown host '${host}' in lab '${state.name}' (hosts: ${state.hosts.map((x) => x.name).join(', ')})`);
  }
  return h;
}

/** Validates a container spec; returns a normalised copy. Pure. */
export function checkContainerSpec(spec: ContainerSpec): ContainerSpec {
  const isV4 = Address4.isValid(spec.ip);
  if (!spec.ip.includes('/') || !(isV4 || Address6.isValid(spec.ip))) {
    throw new UsageError(`invalid --ip '${spec.ip}': give an address with prefix length, e.g. 10.0.0.1/24`);
  }
  if (spec.mac !== undefined && !MAC_RE.test(spec.mac.toLowerCase())) {
    throw new UsageError(`invalid --mac '${spec.mac}': expected six hex octets like 02:00:00:00:00:01`);
  }
  if (spec.mac !== undefined && (parseInt(spec.mac.slice(0, 2), 16) & 1) === 1) {
    throw new UsageError(`invalid --mac '${spec.mac}': a multicast address cannot be a port's address`);
  }
  if (!spec.ifaceId || /[\s,=]/.test(spec.ifaceId)) {
    throw new UsageError(`invalid --iface-id '${spec.ifaceId}': must be non-empty without spaces, commas or '='`);
  }
  if (spec.gateway !== undefined && !(Address4.isValid(spec.gateway) || Address6.isValid(spec.gateway))) {
    throw new UsageError(`invalid --gateway '${spec.gateway}'`);
  }
  return { ...spec, ...(spec.mac ? { mac: spec.mac.toLowerCase() } : {}) };
}

/** Creates a container on a lab host. On failure nothing of it is left behind. */
export async function addContainer(labName: string, hostName: string, name: string, specIn: ContainerSpec): Promise<LabContainer> {
  requireRoot();
  const state = loadLab(labName);
  const host = findHost(state, hostName);
  checkContainerName(name);
  const spec = checkContainerSpec(specIn);
  if (state.containers.some((c) => c.name === name)) {
    throw new UsageError(`container '${name}' already exists in lab '${labName}'`);
  }
  const dup = state.containers.find((c) => c.ifaceId === spec.ifaceId);
  if (dup) throw new UsageError(`iface-id '${spec.ifaceId}' is already used by container '${dup.name}'`);

  const ns = containerNamespace(state.name, name);
  const hostIface = containerHostIface(name);
  const port = await plugPort({
    namespace: ns,
    hostIface,
    hostNamespace: host.namespace,
    ovsdb: `unix:${host.ovsdbSocket}`,
    env: hostEnv(host),
    ip: spec.ip,
    ...(spec.mac ? { mac: spec.mac } : {}),
    ...(spec.gateway ? { gateway: spec.gateway } : {}),
    ifaceId: spec.ifaceId,
    externalIds: { 'tenet-lab-container': name },
  });
  const { mac, ofport } = port;
  try {
    const container: LabContainer = {
      name,
      host: host.name,
      namespace: ns,
      iface: CONTAINER_IFACE,
      hostIface,
      ip: spec.ip,
      mac,
      ifaceId: spec.ifaceId,
      ...(spec.gateway ? { gateway: spec.gateway } : {}),
      ofport,
    };
    // Re-read: another process may have added a container meanwhile.
    const fresh = loadLab(labName);
    fresh.containers.push(container);
    writeState(fresh);
    return container;
  } catch (err) {
    removeContainerResources(host, ns, hostIface);
    throw err;
  }
}

export async function delContainer(labName: string, name: string): Promise<void> {
  requireRoot();
  const state = loadLab(labName);
  const c = state.containers.find((x) => x.name === name);
  if (!c) throw new UsageError(`no container '${name}' in lab '${labName}'`);
  removeContainerResources(findHost(state, c.host), c.namespace, c.hostIface);
  const fresh = loadLab(labName);
  fresh.containers = fresh.containers.filter((x) => x.name !== name);
  writeState(fresh);
}

function removeContainerResources(host: LabHost, ns: string, hostIface: string): void {
  unplugPort({ namespace: ns, hostIface, ovsdb: `unix:${host.ovsdbSocket}`, env: hostEnv(host) });
}

/** Namespace and environment for running a command "on" a lab host or in a container. */
export function resolveTarget(state: LabState, target: string): { namespace: string; env: NodeJS.ProcessEnv } {
  const host = state.hosts.find((h) => h.name === target);
  if (host) return { namespace: host.namespace, env: hostEnv(host) };
  const c = state.containers.find((x) => x.name === target);
  if (c) return { namespace: c.namespace, env: process.env };
  const names = [...state.hosts.map((h) => h.name), ...state.containers.map((x) => x.name)];
  throw new UsageError(`unknown host or container '${target}' in lab '${state.name}' (known: ${names.join(', ')})`);
}

/** Runs argv inside a host's or a container's namespace. */
export function execIn(state: LabState, target: string, argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  if (argv.length === 0) throw new UsageError('exec: no command given');
  const { namespace, env } = resolveTarget(state, target);
  return run(['ip', 'netns', 'exec', namespace, ...argv], { ...opts, env: { ...env, ...opts.env } });
}
