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

/**
 * The name the agent gives an instance's kernel objects and files: its endpoint name plus a
 * hash of the raw instance id. The endpoint name alone is unique only within a tenant
 * (acme's `web@1` and other's `web-1` are both `web-1`); instance ids are unique in the whole
 * document (unit names are), so the hash keeps two tenants' instances apart on one host.
 */
export function instanceLocalName(instanceId: string): string {
  return `${endpointName(instanceId)}-${hash(instanceId, 6)}`;
}

/** Namespace of an instance: `<prefix>-<endpointName>-<hash>`, truncated (with a hash of the whole) when too long. */
export function instanceNetns(prefix: string, instanceId: string): string {
  const plain = `${prefix}-${instanceLocalName(instanceId)}`;
  if (plain.length <= MAX_NETNS_NAME) return plain;
  return `${plain.slice(0, MAX_NETNS_NAME - 9)}-${hash(plain, 8)}`;
}

/**
 * br-int side veth of an instance: at most 15 characters (IFNAMSIZ): `u-`, the first 5
 * characters of the endpoint name and 8 hex of a hash of the instance id. Distinct from the
 * lab's `c-` containers.
 */
export function instanceHostIface(instanceId: string): string {
  return `u-${endpointName(instanceId).slice(0, 5)}${hash(instanceId, 8)}`;
}

/** File-name-safe form of an instance (records, logs, exit files): its local name. */
export function instanceFileName(instanceId: string): string {
  return instanceLocalName(instanceId).replace(/[^A-Za-z0-9_-]/g, '_');
}
