/**
 * Pure naming and addressing rules of the lab. Every name a lab creates in the
 * kernel (namespaces, links) or on disk is derived here from the lab prefix, so
 * `lab down` can find everything again even without a state file.
 */
import { createHash } from 'node:crypto';
import { UsageError } from '../util/errors.js';

/** Lab prefixes: short (they become part of 15-character interface names) and dash-free (dash is the separator). */
export const PREFIX_RE = /^[a-z][a-z0-9]{0,7}$/;
/** Container names: DNS-label-like and short. */
export const CONTAINER_RE = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;
export const MAX_HOSTS = 200;
export const MAX_LABS = 256;

export function checkPrefix(prefix: string): string {
  if (!PREFIX_RE.test(prefix)) {
    throw new UsageError(
      `invalid lab name '${prefix}': use 1-8 characters, a lowercase letter then lowercase letters or digits`,
      { prefix },
    );
  }
  return prefix;
}

export function checkContainerName(name: string): string {
  if (!CONTAINER_RE.test(name)) {
    throw new UsageError(
      `invalid container name '${name}': use 1-32 lowercase letters, digits or '-', not starting or ending with '-'`,
      { name },
    );
  }
  return name;
}

export const hostName = (index: number): string => `host${index}`;
export const hostNamespace = (prefix: string, host: string): string => `${prefix}-${host}`;
export const fabricNamespace = (prefix: string): string => `${prefix}-fabric`;
export const containerNamespace = (prefix: string, name: string): string => `${prefix}-c-${name}`;
/** Linux bridge in the root namespace joining every host's management link. */
export const mgmtBridge = (prefix: string): string => `${prefix}-mgmt`;
/** Root-namespace end of host `index`'s management veth. */
export const mgmtVethRoot = (prefix: string, index: number): string => `${prefix}-m${index}`;
/** Fabric-namespace end of host `index`'s underlay veth. */
export const fabricPort = (index: number): string => `h${index}`;
export const HOST_MGMT_IFACE = 'mgmt0';
export const HOST_UNDERLAY_IFACE = 'phy0';
export const CONTAINER_IFACE = 'eth0';
export { INTEGRATION_BRIDGE, UNDERLAY_BRIDGE, OVSDB_TCP_PORT } from '../host/plan.js';

/** Host-side veth name of a container (unique within the host, at most 15 characters). */
export function containerHostIface(name: string): string {
  const plain = `c-${name}`;
  if (plain.length <= 15) return plain;
  const hash = createHash('sha1').update(name).digest('hex').slice(0, 5);
  return `c-${name.slice(0, 7)}-${hash}`;
}

/** Management network of lab number `index`: 198.18.<index>.0/24 (RFC 2544 benchmarking range). */
export function mgmtSubnet(labIndex: number): { cidr: string; gateway: string; host: (i: number) => string } {
  return {
    cidr: `198.18.${labIndex}.0/24`,
    gateway: `198.18.${labIndex}.1`,
    host: (i: number) => `198.18.${labIndex}.${10 + i}`,
  };
}

/** Underlay addresses live in the lab's own fabric namespace, so every lab may use the same ones. */
export const UNDERLAY_PREFIX_LEN = 24;
export const underlayIp = (hostIndex: number): string => `203.0.113.${10 + hostIndex}`;

/** Tunnel port name on one host towards a peer host. */
export const tunnelPort = (peerHost: string): string => `vx-${peerHost}`.slice(0, 15);
