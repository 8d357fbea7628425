import { EmbeddedStore } from './embedded.js';
import { InvalidRequestError } from './errors.js';
import { EtcdStore } from './etcd.js';
import type { Store } from './types.js';

/** `{ kind: 'embedded', dir }` (the default for one machine) or `{ kind: 'etcd', endpoints }`. */
export type StoreConfig =
  | { kind: 'embedded'; dir: string; historyLimit?: number }
  | { kind: 'etcd'; endpoints: string[]; prefix?: string; timeoutMs?: number };

export async function openStore(cfg: StoreConfig): Promise<Store> {
  if (cfg.kind === 'embedded') return EmbeddedStore.open(cfg);
  if (cfg.kind === 'etcd') return new EtcdStore(cfg);
  throw new InvalidRequestError(`unknown store kind ${String((cfg as { kind?: unknown }).kind)}`);
}
