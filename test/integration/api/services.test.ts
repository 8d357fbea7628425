/**
 * The service registry hosted by the real `tenet controller` daemon (no lab): REST at
 * /v1/services on the API's port with the API's token, the WebSocket watch next to
 * /v1/events, `tenet services` with the client commands' TENET_API/TENET_TOKEN, the
 * controller's tenants as the registry's, DNS from the daemon's --dns port, and a
 * service hop of a chain following the registry (GET /v1/chains): unverified registrations
 * (an endpoint that does not provide the service, a meta.endpoint with another address)
 * are skipped with their reason; a labelled member's registration gives its health.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import WebSocket from 'ws';
import type { ChainInfo } from '../../../src/controller/types.js';
import { deadHostsTopology, startApiDaemon } from '../../helpers/api-daemon.js';
import { tenet } from '../../helpers/cli.js';
import { until } from '../../helpers/net.js';
import { udpResolver } from '../../helpers/registry.js';

t.test('the controller daemon serves the registry', async (t) => {
  const d = await startApiDaemon(t);
  const auth = { authorization: `Bearer ${d.token}` };
  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = auth) => {
    const res = await fetch(`${d.url}${path}`, { method, headers: { ...headers, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    const text = await res.text();
    return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
  };
  const env = { ...process.env, TENET_API: d.url, TENET_TOKEN: d.token! };
  const run = (...args: string[]) => tenet(args, { env });

  t.equal((await call('GET', '/v1/services', undefined, {})).status, 401, 'no token: 401');
  t.equal((await call('GET', '/v1/services', undefined, { authorization: 'Bearer wrong' })).status, 401, 'wrong token: 401');
  t.same((await call('GET', '/v1/services')).json, { index: (await call('GET', '/v1/services')).json!['index'], instances: [] }, 'with the API token: an empty list');
  const early = await run('services', 'register', 'red', 'ids', 'i1', '--address', '10.0.0.7', '--port', '80');
  t.equal(early.code, 1, 'no topology yet: red is no tenant of the controller');
  t.match(early.stderr, /unknown tenant "red"/);

  // The topology: tenant red with a chain a -> b through service "ids", which nobody labelled.
  const doc = deadHostsTopology();
  doc.tenants[0]!.endpoints.push({ name: 'ids-x', network: 'web', host: 'host2' }, { name: 'ids-y', network: 'web', host: 'host1' });
  doc.tenants[0]!.chains = [{ name: 'c', from: { endpoints: ['a'] }, to: { endpoints: ['b'] }, protocol: 'tcp', ports: [80], hops: [{ service: 'ids' }] }];
  const put = await call('PUT', '/v1/topology', doc);
  t.equal(put.status, 200, `applied: ${JSON.stringify(put.json)}`);
  const eps = (await call('GET', '/v1/endpoints?tenant=red')).json as unknown as { name: string; ip: string }[];
  const ipOf = (n: string) => eps.find((e) => e.name === n)!.ip.split('/')[0]!;
  const chains = async () => (await call('GET', '/v1/chains')).json as unknown as ChainInfo[];
  t.same((await chains())[0]!.hops.map((h) => [h.service, h.state, h.instances.length]), [['ids', 'dropping', 0]], 'a service nobody labelled or registered: an empty hop (failMode closed: dropping)');

  // The watch (WebSocket on the API's server, next to /v1/events).
  const ws = new WebSocket(`${d.url.replace('http', 'ws')}/v1/services/_watch?tenant=red`, { headers: auth });
  t.teardown(() => ws.terminate());
  const frames: { type: string; id?: string }[] = [];
  ws.on('message', (m) => frames.push(JSON.parse(String(m)) as { type: string; id?: string }));
  await until('watch snapshot', () => frames.length > 0, 10_000, 20);
  t.equal(frames[0]!.type, 'snapshot');
  const events = new WebSocket(`${d.url.replace('http', 'ws')}/v1/events`, { headers: auth });
  t.teardown(() => events.terminate());
  const firstEvent = await new Promise<{ type: string }>((res, rej) => {
    events.once('message', (m) => res(JSON.parse(String(m)) as { type: string }));
    events.once('error', rej);
  });
  t.equal(firstEvent.type, 'snapshot', '/v1/events still answers next to the registry watch');

  // Register through the CLI (TENET_API / TENET_TOKEN, as the other client commands).
  const r1 = await run('services', 'register', 'red', 'ids', 'x', '--address', ipOf('ids-x'), '--port', '80', '--ttl-check', '30s');
  t.equal(r1.code, 0, r1.stderr);
  t.match(r1.stdout, /^registered red\/ids\/x /);
  const r2 = await call('PUT', '/v1/services/red/ids/y', { address: '192.0.2.50', port: 80, meta: { endpoint: 'red/ids-y' }, checks: [{ id: 'agent', type: 'ttl', ttl: '30s' }] });
  t.equal(r2.status, 201, 'PUT /v1/services/red/ids/y: created');
  await until('watch saw both', () => frames.filter((f) => f.type === 'register').length >= 2, 10_000, 20);
  const list = await run('services', 'list', '--tenant', 'red', '-o', 'json');
  t.same((JSON.parse(list.stdout) as { id: string; status: string }[]).map((i) => [i.id, i.status]), [['x', 'critical'], ['y', 'critical']], 'tenet services list: both, critical until their TTL check passes');

  // Neither counts: ids-x does not provide ids (no label, no unit), y's address is not ids-y's.
  await until('both skipped', async () => ((await chains())[0]!.hops[0]!.skipped ?? []).length === 2, 10_000, 50);
  t.same(
    (await chains())[0]!.hops[0]!.skipped!.map((s) => [s.id, s.reason]),
    [
      ['x', 'endpoint "ids-x" does not provide service "ids" (not labelled service=ids, not an instance of a unit declaring it)'],
      ['y', `endpoint "ids-y" does not have address 192.0.2.50 (${ipOf('ids-y')})`],
    ],
    'GET /v1/chains: unverified registrations skipped, with the reason',
  );
  t.equal((await chains())[0]!.hops[0]!.instances.length, 0, 'and the hop stays empty');
  // ids-x labelled service=ids: a member, and x (its address) now verified: no longer skipped.
  doc.tenants[0]!.endpoints.find((e) => e.name === 'ids-x')!.labels = { service: 'ids' };
  t.equal((await call('PUT', '/v1/topology', doc)).status, 200, 'ids-x labelled service=ids');
  await until('ids-x a member', async () => (await chains())[0]!.hops[0]!.instances.length === 1, 10_000, 50);
  t.same((await chains())[0]!.hops[0]!.instances.map((i) => i.endpoint), ['red/ids-x'], 'GET /v1/chains: the labelled member');
  t.same((await chains())[0]!.hops[0]!.skipped!.map((s) => s.id), ['y'], 'only y is skipped now');

  // DNS from the daemon's own port.
  const log = readFileSync(d.logFile, 'utf8');
  const ready = log.split('\n').find((l) => l.includes('tenet controller ready'));
  const dnsAt = (JSON.parse(ready!) as { dns: string }).dns;
  t.match(dnsAt, /^127\.0\.0\.1:\d+$/, `the log names the DNS address (${dnsAt})`);
  const resolve = udpResolver(Number(dnsAt.split(':')[1]));
  t.same((await resolve('ids.red.tenet.', 'A', undefined, { recursive: false })).answers.map((a) => a.address), [], 'critical instances: no A record');
  t.equal((await call('PUT', '/v1/services/red/ids/x/checks/ttl/pass')).status, 200, 'TTL check passes');
  const a = await resolve('ids.red.tenet.', 'A', undefined, { recursive: false });
  t.same(a.answers.map((r) => r.address), [ipOf('ids-x')], `ids.red.tenet. A ${ipOf('ids-x')} from the controller's DNS`);
  t.equal((await resolve('nope.red.tenet.', 'A', undefined, { recursive: false })).header.rcode, 3, 'an unknown service: NXDOMAIN');

  // Deregistering every instance: nothing skipped; the labelled member stays (registrations never remove it).
  t.equal((await run('services', 'deregister', 'red', 'ids', 'x')).code, 0);
  t.equal((await call('DELETE', '/v1/services/red/ids/y')).status, 204);
  await until('nothing skipped', async () => (await chains())[0]!.hops[0]!.skipped === undefined, 10_000, 50);
  t.same((await chains())[0]!.hops[0]!.instances.map((i) => i.endpoint), ['red/ids-x'], 'deregistered: the labelled member stays');
});
