/** The scheduler's inputs and outputs (pure data; no I/O). */

/** What placement needs of a unit. model's UnitSpec (src/model/units.ts) fits it as is. */
export interface PlacementUnit {
  name: string;
  /** Instances (ids `name` when 1, `name.1` … `name.N` otherwise). Ignored for global units. */
  replicas: number;
  /** One instance on every eligible host (ids `name:host`). */
  global: boolean;
  /** Millicores. */
  cpu: number;
  /** Bytes. */
  memory: number;
  /** Key → accepted values: every key must match, any of its values. */
  hostLabels: Readonly<Record<string, readonly string[]>>;
  /** Globs of unit names that must not share a host with this one (checked both ways). */
  conflicts: readonly string[];
  /** Co-locate with this unit: both placed on one host, or neither. */
  machineOf?: string;
  /** Pin to this host. */
  host?: string;
  /** `inactive` units are not placed (and lose their current placement). Default launched. */
  desiredState?: 'inactive' | 'loaded' | 'launched';
}

/** A host as the scheduler sees it. A missing capacity means "not limited". */
export interface PlacementHost {
  name: string;
  labels: Readonly<Record<string, string>>;
  /** Millicores offered to units. */
  cpu?: number;
  /** Bytes offered to units. */
  memory?: number;
}

/** Instance id → host name: where instances run now. */
export type CurrentPlacement = ReadonlyMap<string, string> | Readonly<Record<string, string>>;

export interface Assignment {
  /** Instance id: `web`, `web.2` (replicas), `agent:host3` (global). */
  id: string;
  unit: string;
  host: string;
}

/** One constraint and the hosts it took out of the running (each host named under the first constraint that excluded it). */
export interface Exclusion {
  constraint: string;
  /** How many hosts this constraint excluded. */
  count: number;
  /** The first 20 of them, in the order the reason names them (most free room first for cpu and memory). */
  hosts: string[];
}

export interface Unplaceable {
  id: string;
  unit: string;
  /** One line: which constraint excluded which hosts. */
  reason: string;
  excluded: Exclusion[];
}

/** An instance that had to leave its host (the host is gone, or the unit's pin or labels no longer allow it). */
export interface Move {
  id: string;
  unit: string;
  from: string;
  /** Undefined: no host could take it (see `unplaceable`). */
  to?: string;
  reason: string;
}

export interface PlacementResult {
  /** Every instance with a host after this call: kept ones (in `current`'s order), then new ones in placement order. */
  assignments: Assignment[];
  /** Instances given a host in this call (new ones and moved ones), in placement order. */
  placed: Assignment[];
  moved: Move[];
  /** Current placements of instances no longer wanted (unit gone or inactive, replicas scaled down, global unit no longer eligible). */
  removed: Assignment[];
  unplaceable: Unplaceable[];
}
