/** A registry on a fresh embedded store with HTTP (+WS) and DNS on loopback, torn down by t.teardown. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import dns2 from 'dns2';
import { Registry, serveRegistryHttp, startRegistryDns, type RegistryOptions } from '../../src/registry/index.js';
import { EmbeddedStore } from '../../src/store/index.js';
import { until as waitUntil } from './net.js';

export const TOKEN = 'test-token-0123456789';

/**
 * dns2's UDP client on loopback, without its retry over TCP (so a truncated answer is
 * seen as such). The cast: dns2's typings lack the `retryOverTCP` option it supports.
 */
export function udpResolver(port: number) {
  const opts = { dns: '127.0.0.1', port, timeout: 2000, retryOverTCP: false };
  return dns2.UDPClient(opts as Parameters<typeof dns2.UDPClient>[0]);
}

export async function registryFixture(t: Test, opts: Partial<RegistryOptions> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'tenet-reg-'));
  const store = await EmbeddedStore.open({ dir, leaseCheckMs: 50 });
  const registry = await Registry.start({ store, tenants: ['acme', 'blue'], sweepMs: 50, ...opts });
  const http = await serveRegistryHttp(registry, { token: TOKEN });
  const dns = await startRegistryDns(registry, { ttl: 5 });
  t.teardown(async () => {
    await dns.close();
    await http.close();
    await registry.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const api = async (method: string, path: string, body?: unknown, token: string | null = TOKEN) => {
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${http.url}${path}`, {
      method,
      headers,
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
  };
  const resolve = udpResolver(dns.port);
  const query = async (name: string, type: 'A' | 'AAAA' | 'SRV' | 'TXT') => {
    const p = await resolve(name, type, undefined, { recursive: false });
    return { rcode: p.header.rcode, answers: p.answers, additionals: p.additionals };
  };
  const until = (what: string, pred: () => boolean | Promise<boolean>, timeoutMs = 10_000) => waitUntil(what, pred, timeoutMs);
  return { store, registry, http, dns, api, query, until };
}
