/** The controller's HTTP surface: REST + WebSocket server, and the typed client of it. */
export {
  startApi,
  createApiApp,
  attachEventStream,
  parseListen,
  errorResponse,
  HttpError,
  EVENTS_PATH,
  type ApiOptions,
  type ApiServer,
  type ApiErrorBody,
  type SnapshotMessage,
  type EventMessage,
} from './server.js';
export { tenantInfos, networkInfos, type TenantInfo, type NetworkInfo } from './views.js';
