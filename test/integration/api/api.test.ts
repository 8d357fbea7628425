/**
 * The REST API and event stream of the real controller daemon (`tenet controller`
 * as a child process) over real HTTP. No lab: the topology's hosts have dead OVSDB
 * addresses, so they are reported unreachable while the document is validated,
 * stored, planned and served. One daemon for the file, restarted once on the same
 * state dir (token and topology survive).
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import WebSocket from 'ws';
import type { EventMessage } from '../../../src/api/index.js';
import type { ApplyResult, ControllerStatus, EndpointInfo, Plan } from '../../../src/controller/types.js';
import { validate } from '../../../src/model/index.js';
import { deadHostsTopology, startApiDaemon } from '../../helpers/api-daemon.js';
import { until } from '../../helpers/net.js';

interface Reply {
  status: number;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- replies are checked field by field
  text: string;
  headers: Headers;
}

function caller(url: string, token: string | null) {
  return async (method: string, path: string, body?: unknown, opts: { token?: string | null; raw?: string } = {}): Promise<Reply> => {
    const headers: Record<string, string> = {};
    const tok = opts.token === undefined ? token : opts.token;
    if (tok !== null) headers.authorization = `Bearer ${tok}`;
    const payload = opts.raw ?? (body === undefined ? undefined : JSON.stringify(body));
    if (payload !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(url + path, { method, headers, ...(payload !== undefined ? { body: payload } : {}) });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, json, text, headers: res.headers };
  };
}

/** Collects the event stream's messages; `first` resolves with the first one. */
function openEvents(url: string, token: string | null): Promise<{ ws: WebSocket; msgs: EventMessage[]; status?: number }> {
  const ws = new WebSocket(url.replace(/^http/, 'ws') + '/v1/events', token ? { headers: { authorization: `Bearer ${token}` } } : {});
  const msgs: EventMessage[] = [];
  ws.on('message', (d) => msgs.push(JSON.parse(String(d)) as EventMessage));
  return new Promise((resolve) => {
    ws.on('unexpected-response', (_q, res) => {
      ws.terminate();
      resolve({ ws, msgs, status: res.statusCode ?? 0 });
    });
    ws.on('error', () => resolve({ ws, msgs, status: -1 }));
    ws.on('open', () => resolve({ ws, msgs }));
  });
}

t.test('controller API over HTTP (real controller, unreachable hosts)', async (t) => {
  const d = await startApiDaemon(t);
  const api = caller(d.url, d.token);
  const doc = deadHostsTopology();

  // Token file: created on first start, 0600, and it is the token the API wants.
  const tokenFile = join(d.stateDir, 'token');
  t.equal(statSync(tokenFile).mode & 0o777, 0o600, 'token file mode 0600');
  t.match(d.token, /^[A-Za-z0-9_-]{32,}$/);

  // /healthz is open; everything else needs the token.
  const h = await api('GET', '/healthz', undefined, { token: null });
  t.equal(h.status, 200);
  t.same(h.json, { ok: true, generation: 0 });
  for (const [method, path, token] of [
    ['GET', '/v1/status', null],
    ['GET', '/v1/status', 'not-the-token'],
    ['GET', '/metrics', null],
    ['GET', '/v1/endpoints', `${d.token}x`],
    ['PUT', '/v1/topology', null],
    ['POST', '/v1/plan', 'not-the-token'],
    ['DELETE', '/v1/topology', null],
  ] as const) {
    const r = await api(method, path, method === 'GET' || method === 'DELETE' ? undefined : doc, { token });
    t.equal(r.status, 401, `${method} ${path} with ${token === null ? 'no' : 'a wrong'} token`);
    t.same(r.json, { error: 'unauthorized', message: 'missing or wrong bearer token' });
  }
  t.equal((await openEvents(d.url, 'wrong')).status, 401, 'event stream with a wrong token');
  t.equal((await openEvents(d.url, null)).status, 401, 'event stream without a token');
  t.equal((await api('GET', '/v1/topology')).json.generation, 0, 'the refused PUT stored nothing');

  // The event stream: a snapshot first, then events as they happen.
  const ev = await openEvents(d.url, d.token);
  t.teardown(() => ev.ws.terminate());
  await until('snapshot', () => ev.msgs.length >= 1);
  const snap = ev.msgs[0]!;
  t.equal(snap.type, 'snapshot');
  if (snap.type === 'snapshot') t.match(snap.status, { generation: 0, hosts: [], realized: true });

  // An invalid document: 400 with every issue the validator finds (same list), nothing stored.
  const fixture = JSON.parse(readFileSync(new URL('../../fixtures/invalid-topologies/52-many-errors.json', import.meta.url), 'utf8')) as { document: unknown };
  const expected = validate(fixture.document);
  t.equal(expected.ok, false);
  const issues = expected.ok ? [] : expected.errors;
  t.ok(issues.length >= 3, `fixture has several errors (${issues.length})`);
  for (const [method, path] of [['PUT', '/v1/topology'], ['POST', '/v1/plan']] as const) {
    const r = await api(method, path, fixture.document);
    t.equal(r.status, 400, `${method} ${path} invalid`);
    t.equal(r.json.error, 'invalid topology');
    t.same(r.json.issues, issues, 'every issue, with its path');
  }
  const badHost = structuredClone(doc);
  (badHost.tenants[0]!.endpoints[0] as { host: string }).host = 'host9';
  const r400 = await api('PUT', '/v1/topology', badHost);
  t.same(r400.json.issues, [{ path: '/tenants/0/endpoints/0/host', message: r400.json.issues[0]?.message }]);
  t.match(r400.json.issues[0].message, /host9/);
  const malformed = await api('PUT', '/v1/topology', undefined, { raw: '{"version": 1, "hosts": [' });
  t.equal(malformed.status, 400);
  t.equal(malformed.json.error, 'invalid JSON');
  t.same((await api('GET', '/v1/topology')).json, { generation: 0, doc: null }, 'nothing stored after the 400s');

  // Plan, then apply: stored as generation 1; hosts planned as unreachable.
  const plan = (await api('POST', '/v1/plan', doc)).json as Plan;
  t.equal(plan.generation, 1);
  t.same(plan.hosts.map((p) => [p.host, p.reachable]), [['host1', false], ['host2', false]]);
  t.ok(plan.hosts.every((p) => p.add.length > 0 && p.delete.length === 0 && p.hitless), 'a first apply only adds (hitless)');
  t.match(plan.hosts[0]!.add[0], /priority=\d+.* actions=/, 'flows in ovs-ofctl syntax');
  const applied = await api('PUT', '/v1/topology', doc);
  t.equal(applied.status, 200);
  const ar = applied.json as ApplyResult;
  t.equal(ar.generation, 1);
  t.equal(ar.changed, true);
  t.same(ar.plan.hosts.map((p) => p.host), ['host1', 'host2']);
  const again = (await api('PUT', '/v1/topology', doc)).json as ApplyResult;
  t.same([again.generation, again.changed], [1, false], 'the same document again stores nothing');
  t.same((await api('GET', '/v1/topology')).json, { generation: 1, doc });

  await until('topology event', () => ev.msgs.some((m) => m.type === 'topology' && m.generation === 1));
  await until('host events', () => ev.msgs.some((m) => m.type === 'host' && m.host.state === 'unreachable'));

  // Hosts reported unreachable with the reason; wait returns (it does not block on them).
  await until('both hosts unreachable', async () => ((await api('GET', '/v1/hosts')).json as ControllerStatus['hosts']).every((x) => x.state === 'unreachable'));
  const hosts = (await api('GET', '/v1/hosts')).json as ControllerStatus['hosts'];
  t.same(hosts.map((x) => x.name), ['host1', 'host2']);
  t.ok(hosts.every((x) => /127\.0\.0\.1:1/.test(x.lastError ?? '') && x.realizedGeneration === 0 && !x.ovsdb && !x.openflow));
  const waited = (await api('GET', '/v1/wait?generation=1&timeout=10')).json as ControllerStatus;
  t.equal(waited.generation, 1);
  t.equal(waited.hosts.length, 2);
  t.equal((await api('GET', '/v1/wait?generation=x')).status, 400);

  // Read views.
  const eps = (await api('GET', '/v1/endpoints')).json as EndpointInfo[];
  t.same(eps.map((e) => e.id), ['blue/c', 'red/a', 'red/b']);
  t.ok(eps.every((e) => /^10\.0\.0\.\d+\/24$/.test(e.ip ?? '') && /^0a:/.test(e.mac) && e.gateway === '10.0.0.1'));
  t.same(((await api('GET', '/v1/endpoints?tenant=red')).json as EndpointInfo[]).map((e) => e.id), ['red/a', 'red/b']);
  t.same((await api('GET', '/v1/tenants')).json.map((x: { name: string; endpoints: number }) => [x.name, x.endpoints]), [['blue', 1], ['red', 2]]);
  t.same((await api('GET', '/v1/networks')).json.map((n: { id: string; subnet: string }) => [n.id, n.subnet]), [['blue/web', '10.0.0.0/24'], ['red/web', '10.0.0.0/24']]);

  // An invalid document (and an empty body) once generation 1 is stored: a 400 that touches nothing.
  const hostsBefore = ((await api('GET', '/v1/hosts')).json as ControllerStatus['hosts']).map((x) => [x.name, x.realizedGeneration]);
  t.equal((await api('PUT', '/v1/topology', badHost)).status, 400);
  t.equal((await api('PUT', '/v1/topology', undefined, { raw: '' })).json.error, 'empty body');
  t.same((await api('GET', '/v1/topology')).json, { generation: 1, doc }, 'generation 1 and its document stay');
  t.same((await api('GET', '/v1/endpoints')).json, eps, 'the endpoints and their addresses stay');
  t.same(((await api('GET', '/v1/hosts')).json as ControllerStatus['hosts']).map((x) => [x.name, x.realizedGeneration]), hostsBefore, 'no host was given anything new to realize');

  // A change is planned against the stored state: one more endpoint adds flows only.
  const more = structuredClone(doc);
  more.tenants[0]!.endpoints.push({ name: 'd', network: 'web', host: 'host2' });
  const p2 = (await api('POST', '/v1/plan', more)).json as Plan;
  t.equal(p2.generation, 2);
  t.ok(p2.hosts.some((p) => p.add.length > 0), 'the new endpoint adds flows');

  // Metrics: Prometheus text with the controller's and the API's series.
  const m = await api('GET', '/metrics');
  t.equal(m.status, 200);
  t.match(m.headers.get('content-type'), /^text\/plain/);
  t.match(m.text, /\ntenet_topology_generation 1\n/);
  t.match(m.text, /tenet_host_state\{host="host1",state="unreachable"\} 1/);
  t.match(m.text, /tenet_api_requests_total\{method="PUT",route="\/v1\/topology",code="400"\} 4\n/);

  // Deletes.
  t.equal((await api('DELETE', '/v1/tenants/green')).status, 404);
  const del = (await api('DELETE', '/v1/tenants/blue')).json as ApplyResult;
  t.same([del.generation, del.changed], [2, true]);
  t.same(((await api('GET', '/v1/endpoints')).json as EndpointInfo[]).map((e) => e.id), ['red/a', 'red/b']);
  await until('topology event for generation 2', () => ev.msgs.some((x) => x.type === 'topology' && x.generation === 2));
  const kept = ((await api('GET', '/v1/endpoints')).json as EndpointInfo[]).find((e) => e.id === 'red/a')!;

  // Restart on the same state dir: same token, the stored topology and its addresses survive.
  ev.ws.terminate();
  await d.stop();
  const d2 = await startApiDaemon(t, { stateDir: d.stateDir });
  t.equal(d2.token, d.token, 'the token survives a restart');
  const api2 = caller(d2.url, d2.token);
  t.same((await api2('GET', '/healthz', undefined, { token: null })).json, { ok: true, generation: 2 });
  const eps2 = (await api2('GET', '/v1/endpoints')).json as EndpointInfo[];
  t.same(eps2.find((e) => e.id === 'red/a'), kept, 'same IP and MAC after the restart');
  const all = (await api2('DELETE', '/v1/topology')).json as ApplyResult;
  t.equal(all.generation, 3);
  t.same((await api2('GET', '/v1/tenants')).json, []);
});
