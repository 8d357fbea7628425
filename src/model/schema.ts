/**
 * The topology document: the zod schema is the single source of truth for the
 * structure (the validator parses with it, scripts/gen-schema.ts publishes it as
 * topologies/schema.json). Semantic rules that need the whole document (overlaps,
 * references, duplicates) live in validate.ts.
 */
import { z } from 'zod';
import { HostResources, Unit } from './units.js';

/** RFC 1123 label: what Tenet uses in port names, DNS names and object ids. */
export const DNS_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const nameMsg = 'must be DNS-safe: 1-63 lowercase letters, digits or "-", not starting or ending with "-"';
export const Name = z.string().regex(DNS_NAME, { message: nameMsg });

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
// Loose shape check; ip-address does the real parse in validate.ts.
const IPV6 = /^[0-9a-fA-F:.]{2,45}$/;
export const Ipv4 = z.string().regex(IPV4, { message: 'must be an IPv4 address like 10.0.0.1' });
export const Ipv6 = z.string().regex(IPV6, { message: 'must be an IPv6 address like fd00::1' });
export const Cidr4 = z.string().regex(/^[0-9.]+\/\d{1,2}$/, { message: 'must be an IPv4 CIDR like 10.0.0.0/24' });
export const Cidr6 = z.string().regex(/^[0-9a-fA-F:.]+\/\d{1,3}$/, { message: 'must be an IPv6 CIDR like fd00::/64' });
export const Mac = z
  .string()
  .regex(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/, { message: 'must be a lowercase MAC address like 0a:00:00:00:00:01' });
const Labels = z.record(z.string().regex(/^[a-z0-9]([a-z0-9._/-]{0,61}[a-z0-9])?$/, { message: 'label key ' + nameMsg }), z.string().max(63));

export const Host = z.strictObject({
  name: Name,
  underlayIp: Ipv4.describe('IPv4 address of the host on the underlay (tunnel endpoint)'),
  ovsdb: z
    .string()
    .regex(/^(tcp:[^:]+:\d+|ssl:[^:]+:\d+|unix:.+)$/, { message: 'must be tcp:IP:PORT, ssl:IP:PORT or unix:PATH' })
    .describe('OVSDB address of the host'),
  datapathType: z.enum(['system', 'netdev']).default('system'),
  labels: Labels.default({}),
  resources: HostResources.optional(),
});

export const Network = z.strictObject({
  name: Name,
  subnet: Cidr4.optional().describe('IPv4 subnet'),
  gateway: Ipv4.optional().describe('IPv4 gateway; default: first address of the subnet'),
  subnet6: Cidr6.optional().describe('IPv6 subnet'),
  gateway6: Ipv6.optional().describe('IPv6 gateway; default: first address of subnet6'),
  vni: z.number().int().min(1).max(0xffffff).optional().describe('fixed VXLAN network identifier; IPAM picks one otherwise'),
});

export const Endpoint = z.strictObject({
  name: Name,
  network: Name,
  host: Name,
  ip: Ipv4.optional(),
  ip6: Ipv6.optional(),
  mac: Mac.optional(),
  labels: Labels.default({}),
});

export const Selector = z
  .strictObject({
    networks: z.array(Name).optional(),
    endpoints: z.array(Name).optional(),
    labels: Labels.optional(),
    cidrs: z.array(z.union([Cidr4, Cidr6])).optional(),
  })
  .describe('matches endpoints in any of the listed networks, any listed endpoint, endpoints carrying all labels, or addresses in the CIDRs; {} matches everything in the tenant');

const PortRange = z.union([
  z.number().int().min(1).max(65535),
  z.strictObject({ from: z.number().int().min(1).max(65535), to: z.number().int().min(1).max(65535) }),
]);

export const Policy = z.strictObject({
  name: Name,
  from: Selector.default({}),
  to: Selector.default({}),
  protocol: z.enum(['any', 'tcp', 'udp', 'icmp']).default('any'),
  ports: z.array(PortRange).optional().describe('destination ports (tcp/udp only); omitted: all'),
  action: z.enum(['allow', 'deny']),
});

/** An endpoint of the chain's tenant: "name" ("tenant/name" is accepted only to report chains that cross tenants). */
const EndpointRef = z.string().regex(/^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\/)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, { message: 'must be an endpoint name' });

export const ChainInstance = z.union([
  EndpointRef,
  z.strictObject({
    endpoint: EndpointRef.optional().describe('one port for both directions (the common case)'),
    ingress: EndpointRef.optional().describe('port the chain sends packets into (with egress)'),
    egress: EndpointRef.optional().describe('port the instance sends them back out of (with ingress)'),
    weight: z.number().int().min(1).max(100).default(1),
  }),
]);

export const ChainHop = z.strictObject({
  instances: z.array(ChainInstance).min(1).optional().describe('service-function instances (endpoints)'),
  service: Name.optional().describe('service name: its instances registered in the service registry (verified), else the endpoints labelled service=<name>; empty until one exists'),
});

export const Chain = z.strictObject({
  name: Name,
  from: Selector.default({}),
  to: Selector.describe('destinations (explicit: a chain to everything would include its own instances)'),
  protocol: z.enum(['any', 'tcp', 'udp', 'icmp']).default('any'),
  ports: z.array(PortRange).optional().describe('destination ports (tcp/udp only); omitted: all'),
  hops: z.array(ChainHop).min(1).max(32).describe('in order; each hop is load-balanced over its instances'),
  symmetric: z.boolean().default(false).describe('replies traverse the same instances in reverse order'),
  failMode: z.enum(['open', 'closed']).default('closed').describe('a hop with no healthy instance: open skips it, closed drops'),
});

export const Router = z.strictObject({
  networks: z.array(Name).optional().describe('networks the router joins; default: all networks of the tenant'),
});

export const Tenant = z.strictObject({
  name: Name,
  networks: z.array(Network).default([]),
  router: Router.optional(),
  endpoints: z.array(Endpoint).default([]),
  policies: z.array(Policy).max(1000).default([]).describe('evaluated in order, first match wins'),
  defaultPolicy: z.enum(['allow', 'deny']).default('allow').describe('verdict for new connections no policy matches'),
  chains: z.array(Chain).max(1000).default([]).describe('service chains (src/model/chains.ts)'),
});

export const Topology = z.strictObject({
  $schema: z.string().optional(),
  version: z.literal(1).default(1),
  hosts: z.array(Host).default([]),
  tenants: z.array(Tenant).default([]),
  units: z.array(Unit).default([]).describe('units for the scheduler (src/model/units.ts)'),
});

export type TopologyInput = z.input<typeof Topology>;
export type TopologyDoc = z.output<typeof Topology>;
export type HostDoc = z.output<typeof Host>;
export type TenantDoc = z.output<typeof Tenant>;
export type NetworkDoc = z.output<typeof Network>;
export type EndpointDoc = z.output<typeof Endpoint>;
export type PolicyDoc = z.output<typeof Policy>;
export type SelectorDoc = z.output<typeof Selector>;
export type ChainDoc = z.output<typeof Chain>;

/** JSON Schema of the document (draft 2020-12), as published in topologies/schema.json. */
export function topologyJsonSchema(): Record<string, unknown> {
  const s = z.toJSONSchema(Topology, { io: 'input' }) as Record<string, unknown>;
  return { ...s, $id: 'https://tenet.invalid/topology.schema.json', title: 'Tenet topology' };
}
