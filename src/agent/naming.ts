/** Pure naming rules of the agent: every kernel and file name it makes comes from here. */
import { createHash } from 'node:crypto';

const hash = (s: string, n: number): string => createHash('sha1').update(s).digest('hex').slice(0, n);

/** The endpoint name of an instance (contract): `@`, `.`, `:` become `-` (web@1 → web-1). */
export function endpointName(instanceId: string): string {
  return instanceId.replace(/[@.:]/g, '-');
}

/** Default namespace prefix of a host's instances: `tn-<host>`. */
export const defaultNetnsPrefix = (host: string): string => `tn-${host}`;

/** Longest namespace name we make (the kernel allows 255; shorter reads better in `ip netns`). */
export const MAX_NETNS_NAME = 64;

/** Namespace of an instance: `<prefix>-<endpointName>`, truncated with a hash when too long. */
export function instanceNetns(prefix: string, instanceId: string): string {
  const plain = `${prefix}-${endpointName(instanceId)}`;
  if (plain.length <= MAX_NETNS_NAME) return plain;
  return `${plain.slice(0, MAX_NETNS_NAME - 9)}-${hash(plain, 8)}`;
}

/**
 * br-int side veth of an instance: at most 15 characters (IFNAMSIZ), `u-` + the endpoint
 * name, or a prefix of it and a hash when longer. Distinct from the lab's `c-` containers.
 */
export function instanceHostIface(instanceId: string): string {
  const name = endpointName(instanceId);
  const plain = `u-${name}`;
  if (plain.length <= 15) return plain;
  return `u-${name.slice(0, 7)}-${hash(instanceId, 5)}`;
}

/** File-name-safe form of an instance id (records, logs, exit files). */
export function instanceFileName(instanceId: string): string {
  return endpointName(instanceId).replace(/[^A-Za-z0-9_-]/g, '_');
}
