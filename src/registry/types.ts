/** Service-registry data model. */

export type HealthStatus = 'passing' | 'warning' | 'critical';

export type CheckSpec =
  | { id: string; type: 'http'; url: string; intervalMs: number; timeoutMs: number }
  | { id: string; type: 'tcp'; target: string; intervalMs: number; timeoutMs: number }
  | { id: string; type: 'ttl'; ttlMs: number };

/** What a registration asks for (validated). */
export interface Registration {
  tenant: string;
  service: string;
  id: string;
  address: string;
  port: number;
  tags: string[];
  meta: Record<string, string>;
  /** Instance lease TTL, seconds: the instance disappears unless renewed within it. */
  ttl: number;
  checks: CheckSpec[];
  /** Deregister after this long continuously critical; 0 = never. */
  deregisterCriticalAfterMs: number;
}

/** Stored instance record. */
export interface InstanceRecord extends Registration {
  lease: string;
  registeredAt: string;
}

export interface CheckState {
  status: HealthStatus;
  output: string;
  updatedAt: number;
}

/** Stored health record, one per instance, written only when something changes. */
export interface HealthRecord {
  status: HealthStatus;
  checks: Record<string, CheckState>;
  /** ms epoch since the aggregate has been critical, if it is. */
  criticalSince?: number;
}

/** An instance as the API shows it. */
export interface Instance extends InstanceRecord {
  status: HealthStatus;
  checkStates: Record<string, CheckState>;
}

export interface RegistryEvent {
  type: 'register' | 'update' | 'deregister';
  revision: number;
  tenant: string;
  service: string;
  id: string;
  instance?: Instance;
}
