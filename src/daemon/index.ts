/**
 * The controller daemon: opens the store, starts the Controller and the service
 * registry and serves the REST API (registry included) and the registry's DNS. It sits above both (controller <- api <- daemon <- cli).
 */
export { startDaemon, runDaemon, storeConfig, DEFAULT_STATE_DIR, DEFAULT_DNS, REGISTRY_PREFIX, type Daemon, type DaemonOptions } from './daemon.js';
export { parseHostPort } from '../util/hostport.js';
