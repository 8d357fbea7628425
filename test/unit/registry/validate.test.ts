import t from 'tap';
import { MAX_META_BYTES, ValidationError, aggregate, parseDuration, parseRegistration, statusForHttp } from '../../../src/registry/index.js';

const ok = { address: '10.0.0.1', port: 80 };

t.test('a minimal registration gets defaults', async (t) => {
  const r = parseRegistration('acme', 'web', 'web-1', ok);
  t.same(r, {
    tenant: 'acme',
    service: 'web',
    id: 'web-1',
    address: '10.0.0.1',
    port: 80,
    tags: [],
    meta: {},
    ttl: 30,
    checks: [],
    deregisterCriticalAfterMs: 0,
  });
  const full = parseRegistration('acme', 'web', 'w2', {
    address: 'fd00::2',
    port: 8080,
    tags: ['v1'],
    meta: { version: '1.2' },
    ttl: '10s',
    deregisterCriticalAfter: '1m',
    checks: [
      { type: 'http', url: 'http://127.0.0.1:1/health', interval: '500ms', timeout: 0.4 },
      { type: 'tcp' },
      { type: 'tcp', interval: '300ms' },
      { id: 'hb', type: 'ttl', ttl: '15s' },
    ],
  });
  t.same(full.checks, [
    { id: 'http-0', type: 'http', url: 'http://127.0.0.1:1/health', intervalMs: 500, timeoutMs: 400 },
    { id: 'tcp-1', type: 'tcp', target: '[fd00::2]:8080', intervalMs: 10_000, timeoutMs: 2000 },
    { id: 'tcp-2', type: 'tcp', target: '[fd00::2]:8080', intervalMs: 300, timeoutMs: 300 }, // default timeout fits the interval
    { id: 'hb', type: 'ttl', ttlMs: 15_000 },
  ]);
  t.equal(full.ttl, 10);
  t.equal(full.deregisterCriticalAfterMs, 60_000);
});

t.test('bad input names the field', async (t) => {
  const bad: Array<[string, unknown[], string]> = [
    ['bad IP', ['acme', 'web', 'w', { address: '10.0.0.300', port: 80 }], 'address'],
    ['hostname instead of IP', ['acme', 'web', 'w', { address: 'example.com', port: 80 }], 'address'],
    ['port out of range', ['acme', 'web', 'w', { address: '10.0.0.1', port: 70000 }], 'port'],
    ['port zero', ['acme', 'web', 'w', { address: '10.0.0.1', port: 0 }], 'port'],
    ['port not integer', ['acme', 'web', 'w', { address: '10.0.0.1', port: 80.5 }], 'port'],
    ['port as string', ['acme', 'web', 'w', { address: '10.0.0.1', port: '80' }], 'port'],
    ['oversize metadata', ['acme', 'web', 'w', { ...ok, meta: { big: 'x'.repeat(MAX_META_BYTES) } }], 'meta'],
    ['metadata value not string', ['acme', 'web', 'w', { ...ok, meta: { n: 1 } }], 'meta.n'],
    ['bad tenant name', ['Acme!', 'web', 'w', ok], 'tenant'],
    ['bad service name', ['acme', 'we_b', 'w', ok], 'service'],
    ['bad id', ['acme', 'web', '', ok], 'id'],
    ['body not object', ['acme', 'web', 'w', 'nope'], '(body)'],
    ['bad check url', ['acme', 'web', 'w', { ...ok, checks: [{ type: 'http', url: 'ftp://x' }] }], 'checks[0].url'],
    ['unknown check type', ['acme', 'web', 'w', { ...ok, checks: [{ type: 'icmp' }] }], 'checks[0].type'],
    ['bad duration', ['acme', 'web', 'w', { ...ok, ttl: 'forever' }], 'ttl'],
    ['duplicate check id', ['acme', 'web', 'w', { ...ok, checks: [{ type: 'tcp', id: 'a' }, { type: 'tcp', id: 'a' }] }], 'checks[1].id'],
    ['timeout longer than interval', ['acme', 'web', 'w', { ...ok, checks: [{ type: 'http', url: 'http://x/', interval: '1s', timeout: '2s' }] }], 'checks[0].timeout'],
    ['tcp timeout longer than interval', ['acme', 'web', 'w', { ...ok, checks: [{ type: 'ttl', ttl: '1s' }, { type: 'tcp', interval: '100ms', timeout: '101ms' }] }], 'checks[1].timeout'],
    ['bad tcp target', ['acme', 'web', 'w', { ...ok, checks: [{ type: 'tcp', target: 'nope' }] }], 'checks[0].target'],
  ];
  for (const [title, args, field] of bad) {
    try {
      parseRegistration(...(args as [unknown, unknown, unknown, unknown]));
      t.fail(`${title}: accepted`);
    } catch (err) {
      t.type(err, ValidationError, title);
      t.equal((err as ValidationError).field, field, `${title} -> ${field}: ${(err as Error).message}`);
    }
  }
});

t.test('durations, aggregation, HTTP status rule', async (t) => {
  t.equal(parseDuration('250ms'), 250);
  t.equal(parseDuration('1.5s'), 1500);
  t.equal(parseDuration('2m'), 120_000);
  t.equal(parseDuration('1h'), 3_600_000);
  t.equal(parseDuration(3), 3000);
  t.equal(parseDuration('3 days'), undefined);
  t.equal(parseDuration(-1), undefined);
  const st = (status: 'passing' | 'warning' | 'critical') => ({ status, output: '', updatedAt: 0 });
  t.equal(aggregate([]), 'passing');
  t.equal(aggregate([st('passing'), st('warning')]), 'warning');
  t.equal(aggregate([st('warning'), st('critical'), st('passing')]), 'critical');
  t.equal(statusForHttp(204), 'passing');
  t.equal(statusForHttp(429), 'warning');
  t.equal(statusForHttp(503), 'critical');
  t.equal(statusForHttp(302), 'critical');
});
