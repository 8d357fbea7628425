/** What goes over the wire between the API server and its clients (no server code: the CLI imports it). */
import type { ControllerEvent, ControllerStatus } from '../controller/index.js';
import type { ValidationIssue } from '../model/index.js';

export const EVENTS_PATH = '/v1/events';

/** Every error answer has this shape; `issues` only for an invalid topology. */
export interface ApiErrorBody {
  error: string;
  message: string;
  issues?: ValidationIssue[];
}

/** First message on the event stream. */
export interface SnapshotMessage {
  type: 'snapshot';
  status: ControllerStatus;
  at: string;
}

export type EventMessage = SnapshotMessage | ControllerEvent;
