/**
 * The API server over real HTTP against an in-memory ControllerApi (FakeController):
 * routing, auth, error shapes, body limits, the event stream. The same paths against the
 * real Controller are in test/integration/api.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import t from 'tap';
import WebSocket from 'ws';
import { errorResponse, startApi, type EventMessage } from '../../../src/api/index.js';
import { TopologyError } from '../../../src/model/index.js';
import { StoreClosedError, StoreUnavailableError } from '../../../src/store/index.js';
import { UsageError } from '../../../src/util/errors.js';
import { FakeController } from '../../helpers/fake-controller.js';

const TOKEN = 'test-token-0123456789';
const doc = JSON.parse(readFileSync(new URL('../../../topologies/lab-two-hosts.json', import.meta.url), 'utf8')) as {
  hosts: unknown[];
  tenants: Array<{ name: string; networks: Array<{ name: string; subnet: string }> }>;
};

async function req(url: string, init: RequestInit & { token?: string | null } = {}): Promise<{ status: number; json: any; text: string; headers: Headers }> { // eslint-disable-line @typescript-eslint/no-explicit-any -- test replies are inspected loosely
  const headers = new Headers(init.headers);
  const tok = init.token === undefined ? TOKEN : init.token;
  if (tok !== null) headers.set('authorization', `Bearer ${tok}`);
  const res = await fetch(url, { ...init, headers });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text, headers: res.headers };
}

/** A PUT with `Transfer-Encoding: chunked` and no data at all (no Content-Length: 0 to spot). */
function putChunkedEmpty(url: string): Promise<{ status: number; json: { error?: string } }> {
  return new Promise((resolve, reject) => {
    const r = request(url, { method: 'PUT', headers: { authorization: `Bearer ${TOKEN}`, 'transfer-encoding': 'chunked', 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as { error?: string } }));
    });
    r.on('error', reject);
    r.end();
  });
}

/** Polls `cond` every 10 ms, false after `ms` (a missing effect fails the test instead of hanging it). */
async function until(cond: () => boolean, ms = 10_000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 10))) if (cond()) return true;
  return cond();
}

t.test('errorResponse maps typed errors', async (t) => {
  const r = errorResponse(new TopologyError([{ path: '/hosts/0/name', message: 'is required' }]));
  t.equal(r.status, 400);
  t.same(r.body.issues, [{ path: '/hosts/0/name', message: 'is required' }]);
  t.equal(errorResponse(new Error('boom')).status, 500);
  t.equal(errorResponse(new UsageError('bad')).status, 400);
  t.match(errorResponse(new StoreUnavailableError('etcd down')), { status: 503, body: { error: 'unavailable', message: 'etcd down' } });
  t.match(errorResponse(new StoreClosedError()), { status: 503 });
});

t.test('routes, auth and errors over HTTP', async (t) => {
  const ctl = new FakeController();
  const api = await startApi(ctl, { listen: '127.0.0.1:0', token: TOKEN, bodyLimit: '64kb' });
  t.teardown(() => api.close());
  const u = (p: string) => `${api.url}${p}`;

  const h = await req(u('/healthz'), { token: null });
  t.equal(h.status, 200);
  t.same(h.json, { ok: true, generation: 0 });

  for (const [path, token] of [['/v1/status', null], ['/v1/status', 'wrong'], ['/metrics', null]] as const) {
    const r = await req(u(path), { token });
    t.equal(r.status, 401, `${path} with token ${token}`);
    t.equal(r.json.error, 'unauthorized');
    t.equal(r.headers.get('www-authenticate'), 'Bearer');
  }

  // An invalid document: 400 with every issue; nothing applied.
  const bad = structuredClone(doc);
  bad.tenants[0]!.networks[1]!.subnet = '10.1.0.0/16'; // overlaps front
  (bad.hosts[0] as { name: string }).name = 'Bad_Name';
  const r400 = await req(u('/v1/topology'), { method: 'PUT', body: JSON.stringify(bad) });
  t.equal(r400.status, 400);
  t.equal(r400.json.error, 'invalid topology');
  t.ok(r400.json.issues.length >= 1);
  t.ok(r400.json.issues.every((i: { path: string; message: string }) => typeof i.path === 'string' && i.message));
  t.equal(ctl.generation, 0);

  const planBad = await req(u('/v1/plan'), { method: 'POST', body: '{"version":1,"hosts":"x"}' });
  t.equal(planBad.status, 400);
  t.same(planBad.json.issues.map((i: { path: string }) => i.path), ['/hosts']);

  const malformed = await req(u('/v1/topology'), { method: 'PUT', body: '{"version":', headers: { 'content-type': 'application/json' } });
  t.equal(malformed.status, 400);
  t.equal(malformed.json.error, 'invalid JSON');
  t.match(malformed.json.message, /not valid JSON/);

  const empty = await req(u('/v1/topology'), { method: 'PUT' });
  t.equal(empty.status, 400);
  t.equal(empty.json.error, 'empty body');

  const big = await req(u('/v1/plan'), { method: 'POST', body: JSON.stringify({ pad: 'x'.repeat(100_000) }) });
  t.equal(big.status, 413);
  t.equal(big.json.error, 'too large');

  // Apply (any content type, as `curl -d @file` sends), then the read routes.
  const ok = await req(u('/v1/topology'), { method: 'PUT', body: JSON.stringify(doc), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  t.equal(ok.status, 200);
  t.equal(ok.json.generation, 1);
  t.equal(ok.json.changed, true);
  t.same((await req(u('/v1/topology'))).json, { generation: 1, doc });
  const tenants = (await req(u('/v1/tenants'))).json;
  t.same(tenants.map((x: { name: string }) => x.name), ['blue', 'red']);
  t.same(tenants[0].router, ['back', 'front']);
  const nets = (await req(u('/v1/networks?tenant=blue'))).json;
  t.same(nets.map((n: { id: string; subnet: string }) => [n.id, n.subnet]), [['blue/back', '10.2.0.0/24'], ['blue/front', '10.1.0.0/24']]);
  const eps = (await req(u('/v1/endpoints?tenant=blue&network=front'))).json;
  t.same(eps.map((e: { id: string }) => e.id), ['blue/f1', 'blue/f2']);
  t.match(eps[0].ip, /^10\.1\.0\.\d+\/24$/);
  const hosts = (await req(u('/v1/hosts'))).json;
  t.same(hosts.map((x: { name: string; state: string }) => [x.name, x.state]), [['host1', 'unreachable'], ['host2', 'unreachable']]);
  t.equal((await req(u('/v1/status'))).json.generation, 1);
  const chunkedEmpty = await putChunkedEmpty(u('/v1/topology'));
  t.match(chunkedEmpty, { status: 400, json: { error: 'empty body' } }, 'a chunked body with no data is empty too, not {}');
  t.equal(ctl.generation, 1, 'and nothing was applied');
  t.same(ctl.model()!.tenants.map((x) => x.name), tenants.map((x: { name: string }) => x.name));
  t.equal((await req(u('/v1/wait?generation=1&timeout=1'))).json.generation, 1);
  t.equal((await req(u('/v1/wait?timeout=forever'))).status, 400);
  t.equal((await req(u('/v1/wait?generation=1.5'))).status, 400);
  t.equal((await req(u('/v1/wait?timeout=601'))).status, 400);
  t.equal((await req(u('/v1/endpoints?tenant=a&tenant=b'))).status, 400);
  t.equal((await req(u('/v1/nope'))).status, 404);
  t.equal((await req(u('/v1/events'))).status, 426);

  t.equal((await req(u('/v1/tenants/nosuch'), { method: 'DELETE' })).status, 404);
  const del = await req(u('/v1/tenants/red'), { method: 'DELETE' });
  t.equal(del.status, 200);
  t.equal(del.json.generation, 2);
  t.same(ctl.model()!.tenants.map((x) => x.name), ['blue']);
  const delAll = await req(u('/v1/topology'), { method: 'DELETE' });
  t.equal(delAll.json.generation, 3);
  t.same(ctl.model()!.tenants, []);

  const m = await req(u('/metrics'));
  t.equal(m.status, 200);
  t.match(m.headers.get('content-type'), /text\/plain/);
  t.match(m.text, /tenet_api_requests_total\{method="PUT",route="\/v1\/topology",code="400"\} 3/, 'invalid document + two empty bodies; the unparsable one never reached the route');
  t.match(m.text, /tenet_api_requests_total\{method="GET",route="none",code="401"\} 3/);
});

t.test('a /v1/wait whose client goes away is cancelled', async (t) => {
  const ctl = new FakeController();
  ctl.holdWaits = true;
  const api = await startApi(ctl, { listen: '127.0.0.1:0', token: TOKEN });
  t.teardown(() => api.close());
  const client = new AbortController();
  const pending = fetch(`${api.url}/v1/wait?generation=5&timeout=600`, { headers: { authorization: `Bearer ${TOKEN}` }, signal: client.signal }).catch((e: Error) => e.name);
  t.ok(await until(() => ctl.waits.length === 1), 'the wait reached the controller');
  t.equal(ctl.abortedWaits, 0);
  client.abort();
  t.equal(await pending, 'AbortError');
  t.ok(await until(() => ctl.abortedWaits === 1), "the controller's wait was aborted");
});

t.test('event stream: auth, snapshot first, then events', async (t) => {
  const ctl = new FakeController();
  const api = await startApi(ctl, { listen: '127.0.0.1:0', token: TOKEN });
  t.teardown(() => api.close());
  const wsUrl = api.url.replace('http:', 'ws:') + '/v1/events';

  const refused = await new Promise<number>((resolve) => {
    const ws = new WebSocket(wsUrl);
    ws.on('unexpected-response', (_q, res) => resolve(res.statusCode ?? 0));
    ws.on('error', () => resolve(-1));
  });
  t.equal(refused, 401);

  const ws = new WebSocket(`${wsUrl}?token=${TOKEN}`);
  t.teardown(() => ws.terminate());
  const msgs: EventMessage[] = [];
  const got = (n: number) =>
    new Promise<void>((resolve) => {
      const check = () => (msgs.length >= n ? resolve() : setTimeout(check, 10));
      check();
    });
  ws.on('message', (d) => msgs.push(JSON.parse(String(d)) as EventMessage));
  await got(1);
  t.equal(msgs[0]!.type, 'snapshot');
  await ctl.apply(doc);
  ctl.emit('event', { type: 'drift', host: 'host1', summary: '1 restored', flows: ['table=0 actions=drop'], at: 'now' });
  await got(3);
  t.same(msgs.slice(1).map((m) => m.type), ['topology', 'drift']);
  t.equal(ctl.listenerCount('event'), 1, 'one controller listener, fanned out');
  await api.close();
  t.equal(ctl.listenerCount('event'), 0, 'close removes it');
});
