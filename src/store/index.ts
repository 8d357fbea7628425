/** State store: etcd v3 semantics, embedded (durable log) or etcd-backed. */
export type * from './types.js';
export * from './errors.js';
export { EmbeddedStore, openEmbeddedStore, type EmbeddedStoreOptions, type RecoveryInfo } from './embedded.js';
export { EtcdStore, type EtcdStoreOptions } from './etcd.js';
export { openStore, type StoreConfig } from './open.js';
export { Election, DEFAULT_ELECTION_KEY, type ElectionOptions, type LeaderRecord } from './election.js';
