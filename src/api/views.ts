/**
 * Pure views of the controller's model for GET /v1/tenants and /v1/networks:
 * addresses as strings, references as names (the Model itself holds numbers and objects).
 */
import { formatCidr4, formatCidr6, formatIp4, formatIp6 } from '../ipam/index.js';
import type { Model } from '../model/index.js';

export interface TenantInfo {
  name: string;
  networks: string[];
  endpoints: number;
  policies: number;
  defaultPolicy: 'allow' | 'deny';
  /** Networks joined by the tenant's router (absent: no router). */
  router?: string[];
}

export interface NetworkInfo {
  /** "tenant/network" */
  id: string;
  tenant: string;
  name: string;
  subnet?: string;
  gateway?: string;
  subnet6?: string;
  gateway6?: string;
  vni: number;
  routed: boolean;
  endpoints: number;
}

export function tenantInfos(model: Model | null): TenantInfo[] {
  if (!model) return [];
  return model.tenants.map((t) => ({
    name: t.name,
    networks: t.networks.map((n) => n.name),
    endpoints: t.endpoints.length,
    policies: t.policies.length,
    defaultPolicy: t.defaultPolicy,
    ...(t.router ? { router: t.router.networks.map((n) => n.name) } : {}),
  }));
}

export function networkInfos(model: Model | null, tenant?: string): NetworkInfo[] {
  if (!model) return [];
  const out: NetworkInfo[] = [];
  for (const t of model.tenants) {
    if (tenant !== undefined && t.name !== tenant) continue;
    for (const n of t.networks) {
      out.push({
        id: n.id,
        tenant: n.tenant,
        name: n.name,
        ...(n.v4 ? { subnet: formatCidr4(n.v4), gateway: formatIp4(n.v4.gateway) } : {}),
        ...(n.v6 ? { subnet6: formatCidr6(n.v6), gateway6: formatIp6(n.v6.gateway) } : {}),
        vni: n.vni,
        routed: n.routed,
        endpoints: n.endpoints.length,
      });
    }
  }
  return out;
}
