/**
 * The pipeline's table map: the one place that says what each OpenFlow table of
 * br-int does, which fields its flows may match, which they may set, and where
 * they may go next (declared as data, as Faucet's faucet_pipeline.py does, and
 * commented per stage, as OVN's northd stages are). A unit test checks every
 * compiled flow against its table's entry.
 *
 * Registers (all tables):
 *   metadata  network key = the network's VNI (24 bits) for the whole pipeline
 *   reg10     flags: bit 0 = arrived over a tunnel (already classified and policed at its source host)
 *   reg11     host key of a remote outport's host (32-bit hash of the host name), so that L2
 *             lookups are the same on every host and only table 60 knows the tunnels
 *   reg13     conntrack zone of the port the current stage polices (its ofport, unique per host)
 *   reg14     logical inport key (unique within the network)
 *   reg15     logical outport key (unique within the network)
 */

export interface TableSpec {
  readonly id: number;
  readonly name: string;
  /** What the stage does (one line, printed by `tenet trace`). */
  readonly doc: string;
  /** Match fields (OVS names, as OxmField.name) flows of this table may use. */
  readonly match: readonly string[];
  /** Fields flows of this table may write (set_field / load / move / write_metadata as "metadata"). */
  readonly set: readonly string[];
  /** Tables flows may continue to (goto_table / resubmit / ct(table=)). */
  readonly next: readonly number[];
}

export const T = {
  CLASSIFY: 0,
  PORT_SEC: 5,
  ACL_IN: 10,
  CHAIN: 20,
  ARP: 25,
  L3: 30,
  L3_RESOLVE: 35,
  L2: 40,
  ACL_OUT: 50,
  OUTPUT: 60,
} as const;

const L4 = ['nw_proto', 'tcp_dst', 'udp_dst', 'icmp_type', 'icmpv6_type'];

export const TABLES: readonly TableSpec[] = [
  {
    // Local port (by the ofport its iface-id binding got) -> network key, logical inport, ct zone.
    // Tunnel port -> network key from tun_id (VNI), flag "from tunnel", straight to L2: the source host did the rest.
    id: T.CLASSIFY,
    name: 'classify',
    doc: 'local port -> network + logical inport; tunnel -> network from VNI',
    match: ['in_port', 'tun_id'],
    set: ['metadata', 'reg10', 'reg13', 'reg14'],
    next: [T.PORT_SEC, T.L2],
  },
  {
    // Anti-spoofing: a port may only send with its own MAC, and IP/ARP only from its own addresses.
    // A service-function port (a chain instance) also forwards other endpoints' IPv4 packets: those
    // go straight to the chain table (policed at their source; see CHAIN), which drops what matches
    // none of the instance's chain positions. Its own-address traffic and ARP take the normal path.
    id: T.PORT_SEC,
    name: 'port_security',
    doc: 'drop frames whose eth_src / ip_src / arp_spa do not belong to the port (service functions: also others\' IPv4, to the chain table)',
    match: ['metadata', 'reg14', 'dl_src', 'dl_type', 'nw_src', 'ipv6_src', 'arp_spa', 'arp_sha'],
    set: [],
    next: [T.ACL_IN, T.CHAIN],
  },
  {
    // Tenant policy at the source, stateful: untracked IP goes through conntrack in the inport's
    // zone; established/related pass (allow-related); new connections meet the tenant's policies
    // in order (first match wins), then the tenant default. Allowed new connections are committed.
    id: T.ACL_IN,
    name: 'acl_ingress',
    doc: 'tenant policy (conntrack, allow-related)',
    match: ['ct_state', 'metadata', 'reg14', 'dl_type', 'nw_src', 'nw_dst', 'ipv6_src', 'ipv6_dst', ...L4],
    set: [],
    next: [T.ACL_IN, T.CHAIN],
  },
  {
    // Service chains (src/pipeline/chains.ts). The position of a packet in its chain is implied by
    // its logical inport (reg14): a chain's source port -> hop 0; hop k's instance (egress) port ->
    // hop k+1, or after the last hop on as addressed; for symmetric chains the replies likewise
    // backwards from the destination's port. "Go to hop k" = the hop's select group, whose bucket
    // sets eth_dst to the chosen instance's MAC and resubmits to L2. Tunnel traffic never gets here.
    // Below the chain flows, per service-function port: its own source address passes on, any other
    // IPv4 from it (not at one of its chain positions) is dropped.
    id: T.CHAIN,
    name: 'chain',
    doc: 'service chains: inport + classifier -> next hop (select group: eth_dst := instance MAC)',
    match: ['metadata', 'reg14', 'dl_type', 'nw_src', 'nw_dst', 'nw_proto', 'tcp_src', 'tcp_dst', 'udp_src', 'udp_dst', 'icmp_type', 'icmpv6_type'],
    // dl_dst: set in the chain groups' buckets
    set: ['dl_dst'],
    next: [T.ARP, T.L2],
  },
  {
    // Answer ARP requests for every known IP (endpoints and the gateway) of the network in the
    // switch itself: the request is turned into the reply and sent back out of its in_port.
    id: T.ARP,
    name: 'arp_responder',
    doc: 'answer ARP for every known IP and the gateway',
    match: ['metadata', 'dl_type', 'arp_op', 'arp_tpa'],
    set: ['dl_src', 'dl_dst', 'arp_op', 'arp_sha', 'arp_tha', 'arp_spa', 'arp_tpa'],
    next: [T.L3],
  },
  {
    // Distributed router: a frame to the network's gateway MAC whose ip_dst is in another network
    // the tenant's router joins is routed here, on the source host: TTL-1, eth_src = that
    // network's gateway MAC, metadata = that network.
    id: T.L3,
    name: 'l3_route',
    doc: 'route between the tenant router\'s networks (dec_ttl, eth_src, metadata)',
    match: ['metadata', 'dl_dst', 'dl_type', 'nw_dst'],
    set: ['dl_src', 'metadata'],
    next: [T.L3_RESOLVE, T.L2],
  },
  {
    // Next-hop resolution for routed packets: ip_dst -> the endpoint's MAC (no ARP needed).
    // Above it, a chain's routed sources (on another network the router joins to the chain's):
    // the packet is routed (table 30: metadata is now the chain's network) and classified here,
    // on the source's host, as if it had entered on the chain's network: chain + classifier ->
    // hop 0's select group (eth_dst := instance MAC, resubmit to L2), as table 20 does for
    // same-network sources. Replies need nothing here: an instance sends them to its gateway,
    // and after the reverse path's last hop table 20 passes them on to table 30, which routes.
    id: T.L3_RESOLVE,
    name: 'l3_resolve',
    doc: 'routed packet: ip_dst -> destination MAC; a chain\'s routed source: classifier -> hop 0 (select group)',
    match: ['metadata', 'reg14', 'dl_type', 'nw_src', 'nw_dst', 'nw_proto', 'tcp_dst', 'udp_dst', 'icmp_type'],
    // dl_dst: also set in the chain groups' buckets
    set: ['dl_dst'],
    next: [T.L2],
  },
  {
    // L2 lookup: known MAC -> logical outport (local ones also get their ct zone, and lose the
    // ingress ct state); multicast/broadcast -> the network's flood group (from a tunnel: local
    // ports only, so frames never bounce between hosts).
    // A service function's port: frames to its own IPv4/IPv6 address are conntracked (table 50) like
    // any endpoint's; what it is sent to forward (other destinations) goes straight to table 60.
    id: T.L2,
    name: 'l2_lookup',
    doc: 'eth_dst -> logical outport; broadcast -> flood group',
    match: ['metadata', 'reg10', 'dl_dst', 'dl_type', 'nw_dst'],
    // tun_id: set by the flood groups' tunnel buckets
    set: ['reg11', 'reg13', 'reg15', 'tun_id'],
    next: [T.ACL_OUT, T.OUTPUT],
  },
  {
    // Conntrack at the destination port, in its zone, so that replies leaving it are +est;
    // policy was decided at the source (table 10). Invalid packets are dropped.
    id: T.ACL_OUT,
    name: 'acl_egress',
    doc: 'conntrack at the destination port (commit), drop invalid',
    match: ['ct_state', 'dl_type'],
    set: [],
    next: [T.ACL_OUT, T.OUTPUT],
  },
  {
    // Local outport -> its ofport; remote outport (reg11 = its host's key) -> tun_id = VNI and
    // the tunnel to that host (never for frames that came from a tunnel).
    id: T.OUTPUT,
    name: 'output',
    doc: 'local port -> output; remote -> set VNI, output to tunnel',
    match: ['metadata', 'reg10', 'reg11', 'reg15'],
    set: ['tun_id'],
    next: [],
  },
];

export const TABLE_BY_ID: ReadonlyMap<number, TableSpec> = new Map(TABLES.map((t) => [t.id, t]));

/** Priorities used across tables (higher wins). */
export const PRIO = {
  CT_UNTRACKED: 3000,
  CT_INVALID: 2900,
  CT_ESTABLISHED: 2800,
  ARP_PASS: 2800,
  /** Policy i of a tenant: POLICY_TOP - i. */
  POLICY_TOP: 2000,
  CT_COMMIT: 1000,
  /** L3 resolve: a chain's classifier for a routed source, above the resolve flows (NORMAL). */
  CHAIN_ROUTED: 150,
  FLOOD_FROM_TUNNEL: 110,
  /** L2: a service function's own addresses (conntracked) before its untracked MAC flow. */
  SF_OWN: 105,
  NORMAL: 100,
  /** Port security: others' IPv4 from a service function, below its own-address flows. Chain table: its own source passes, below the chain flows. */
  SF_FOREIGN: 90,
  /** Chain table: other foreign-source IPv4 from a service function (matches none of its chain positions). */
  SF_FOREIGN_DROP: 80,
  GATEWAY_DROP: 50,
  TENANT_DEFAULT: 10,
  MISS: 0,
} as const;

/** Flood group ids: all ports + remote hosts, or (from a tunnel) local ports only. */
export function floodGroup(vni: number, fromTunnel: boolean): number {
  return vni * 2 + (fromTunnel ? 1 : 0);
}

/**
 * Select group of hop `hop` of the chain with key `key` (22 bits), forward or for replies:
 * 0x80000000 | key << 8 | hop << 1 | reply. Never collides with flood groups (2*VNI+1 < 2^25).
 */
export function chainGroup(key: number, hop: number, reply: boolean): number {
  return (0x80000000 + key * 256 + hop * 2 + (reply ? 1 : 0)) >>> 0;
}
export function isChainGroup(groupId: number): boolean {
  return groupId >= 0x80000000;
}

/** Bit 0 of reg10: the packet came in over a tunnel. */
export const FLAG_FROM_TUNNEL = 1;
