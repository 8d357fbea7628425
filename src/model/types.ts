/** The validated, resolved model the compiler consumes (addresses as numbers, references as objects). */
import type { Allocation, Cidr4, Cidr6 } from '../ipam/index.js';
import type { SelectorDoc } from './schema.js';

export interface Host {
  name: string;
  underlayIp: string;
  ovsdb: string;
  datapathType: 'system' | 'netdev';
  labels: Record<string, string>;
}

export interface Network {
  /** "tenant/network" */
  id: string;
  tenant: string;
  name: string;
  v4?: Cidr4 & { gateway: number };
  v6?: Cidr6 & { gateway: bigint };
  vni: number;
  gwMac: string;
  /** Joined by the tenant's router. */
  routed: boolean;
  /** Sorted by name. */
  endpoints: Endpoint[];
}

export interface Endpoint {
  /** "tenant/endpoint" */
  id: string;
  tenant: string;
  name: string;
  network: Network;
  host: string;
  ip?: number;
  ip6?: bigint;
  mac: string;
  /** Logical port key, unique within the network (reg14 / reg15). */
  port: number;
  labels: Record<string, string>;
}

export interface Policy {
  /** "tenant/policy" */
  id: string;
  tenant: string;
  name: string;
  /** Position in the tenant's list: first match wins. */
  index: number;
  from: SelectorDoc;
  to: SelectorDoc;
  protocol: 'any' | 'tcp' | 'udp' | 'icmp';
  /** Inclusive destination port ranges; empty means all ports. */
  ports: [number, number][];
  action: 'allow' | 'deny';
  cidrs: { from4: Cidr4[]; from6: Cidr6[]; to4: Cidr4[]; to6: Cidr6[] };
}

export interface Tenant {
  name: string;
  /** Sorted by name. */
  networks: Network[];
  /** Sorted by name. */
  endpoints: Endpoint[];
  policies: Policy[];
  defaultPolicy: 'allow' | 'deny';
  router?: { networks: Network[] };
  /** Service chains, in document order (see chains.ts). */
  chains: Chain[];
  /** Chains that name unit instances not placed yet: no flows until they are (see chains.ts). */
  waitingChains?: Array<{ name: string; path: string; waitingFor: string[] }>;
}

/** One service-function instance: packets go in by `ingress`, come back out of `egress` (often the same port). */
export interface ChainInstance {
  ingress: Endpoint;
  egress: Endpoint;
  weight: number;
}

export interface ChainHop {
  /** Document order (the select group's bucket order). */
  instances: ChainInstance[];
  /** Set when the hop was given as a service name. */
  service?: string;
}

export interface Chain {
  /** "tenant/chain" */
  id: string;
  tenant: string;
  name: string;
  /** The one network the chain steers on (its instances', sources' and destinations'). */
  network: Network;
  from: SelectorDoc;
  to: SelectorDoc;
  protocol: 'any' | 'tcp' | 'udp' | 'icmp';
  /** Inclusive destination port ranges; empty means all ports. */
  ports: [number, number][];
  hops: ChainHop[];
  symmetric: boolean;
  failMode: 'open' | 'closed';
  /** 22-bit key naming the chain's select groups (hash of the id; validation rejects collisions). */
  key: number;
}

export interface Model {
  /** Sorted by name. */
  hosts: Host[];
  /** Sorted by name. */
  tenants: Tenant[];
  alloc: Allocation;
}

/** One validation problem: a JSON Pointer (RFC 6901) into the document and a plain reason. */
export interface ValidationIssue {
  path: string;
  message: string;
}
