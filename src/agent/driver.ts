/**
 * The runtime-driver interface: what the agent asks of whatever runs its instances.
 * The netns driver (netns-driver.ts) is the one built; a Docker Engine API driver
 * would implement the same surface (image pull in start, container id as handle).
 */
import type { AgentAssignment, InstanceStatus } from './types.js';

/** One instance as a driver holds it. */
export interface DriverInstance {
  status: InstanceStatus;
  assignment: AgentAssignment;
  /** Network namespace the instance's processes and checks run in. */
  netns: string;
}

export interface RuntimeDriver {
  readonly name: string;
  /**
   * Reads what an earlier run left (records on disk) and adopts what still lives:
   * same process, same namespace, nothing started twice. Call once, before converge.
   */
  recover(): Promise<DriverInstance[]>;
  /** Makes the driver run exactly `assignments`: starts new ones, changes changed ones, removes the rest. */
  converge(assignments: readonly AgentAssignment[]): Promise<void>;
  /** Makes one instance match its assignment (create, restart the process, or update in place). */
  start(assignment: AgentAssignment): Promise<DriverInstance>;
  /** Stops an instance's process and removes its namespace and port. Idempotent. */
  stop(id: string): Promise<void>;
  list(): DriverInstance[];
  /** The last `tail` lines of an instance's output (stdout and stderr together). */
  logs(id: string, tail?: number): Promise<string>;
  /** Called after every state change of any instance. */
  onChange(listener: (id: string) => void): void;
  /** Stops supervising; `stopInstances` also stops and removes every instance. */
  close(opts?: { stopInstances?: boolean }): Promise<void>;
}
