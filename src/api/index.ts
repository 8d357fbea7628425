/** The controller's HTTP surface: REST + WebSocket server, and the typed client of it. */
export {
  startApi,
  createApiApp,
  attachEventStream,
  errorResponse,
  HttpError,
  type ApiOptions,
  type ApiServer,
  type ApiExtension,
} from './server.js';
export { EVENTS_PATH, type ApiErrorBody, type SnapshotMessage, type EventMessage } from './protocol.js';
export { tenantInfos, networkInfos, type TenantInfo, type NetworkInfo } from './views.js';
export { ApiClient, ApiError, DEFAULT_API_URL, type ApiClientOptions, type EndpointFilter } from './client.js';
/** Re-exported for the API's users: how issues read in every message. */
export { formatIssues } from '../util/issues.js';
