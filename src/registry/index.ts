/** Service-discovery registry: instances with leases and health checks, REST + WebSocket, DNS. */
export type * from './types.js';
export { Registry, type RegistryOptions, type Filter } from './registry.js';
export { RegistryError, ValidationError, NotFoundError, parseRegistration, parseDuration, MAX_META_BYTES } from './validate.js';
export { aggregate, statusForHttp, runHttpCheck, runTcpCheck } from './health.js';
export {
  createRegistryRouter,
  attachRegistryWatch,
  serveRegistryHttp,
  SERVICES_BASE,
  WATCH_PATH,
  DEFAULT_WATCH_BACKLOG_BYTES,
  watchSendDecision,
  type HttpOptions,
  type RegistryHttpServer,
} from './http.js';
export { startRegistryDns, resolveName, RCODE, DnsServerError, type DnsOptions, type RegistryDnsServer } from './dns.js';
export { handleRegistryRequest, type HandlerReply } from './handler.js';
