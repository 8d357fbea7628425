/**
 * The controller daemon: opens the store, starts the Controller and serves the
 * REST API over it. It sits above both (controller <- api <- daemon <- cli).
 */
export { startDaemon, runDaemon, storeConfig, DEFAULT_STATE_DIR, type Daemon, type DaemonOptions } from './daemon.js';
export { parseHostPort } from '../util/hostport.js';
