import t from 'tap';
import { expandUnits, formatMemory, parseCpu, parseMemory, Topology, validate, type UnitInput } from '../../../src/model/index.js';
import { hostsOf, place } from '../../../src/scheduler/index.js';

const base = {
  hosts: [
    { name: 'h1', underlayIp: '198.51.100.1', ovsdb: 'tcp:192.0.2.1:6640', labels: { region: 'eu' }, resources: { cpu: 4, memory: '8Gi' } },
    { name: 'h2', underlayIp: '198.51.100.2', ovsdb: 'tcp:192.0.2.2:6640', labels: { region: 'us' } },
  ],
  tenants: [{ name: 'acme', networks: [{ name: 'web', subnet: '10.0.0.0/24' }] }],
};
const unit = (o: Partial<UnitInput> & { name: string }): UnitInput => ({ tenant: 'acme', network: 'web', command: ['sleep', 'infinity'], ...o });
const errorsOf = (units: UnitInput[]) => {
  const r = validate({ ...base, units });
  return r.ok ? [] : r.errors;
};

t.test('cpu and memory notations', async (t) => {
  t.equal(parseCpu(2), 2000);
  t.equal(parseCpu(0.25), 250);
  t.equal(parseCpu('250m'), 250);
  t.equal(parseCpu('1.5'), 1500);
  t.equal(parseMemory(4096), 4096);
  t.equal(parseMemory('512Mi'), 512 * 2 ** 20);
  t.equal(parseMemory('1.5Gi'), 1.5 * 2 ** 30);
  t.equal(parseMemory('1G'), 1e9);
  t.equal(parseMemory('10K'), 10_000);
  t.throws(() => parseCpu('two'), { code: 'EUSAGE', message: /cpu "two"/ });
  t.throws(() => parseMemory('1GB'), { code: 'EUSAGE', message: /memory "1GB"/ });
  t.equal(formatMemory(7.5 * 2 ** 30), '7.5Gi');
  t.equal(formatMemory(512 * 2 ** 20), '512Mi');
  t.equal(formatMemory(100), '100B');
  const r = validate({ ...base, units: [unit({ name: 'a', resources: { cpu: '500m', memory: '1Gi' } })] });
  t.ok(r.ok);
  if (r.ok) {
    t.same(r.doc.units[0]!.resources, { cpu: 500, memory: 2 ** 30 });
    t.same(r.doc.hosts[0]!.resources, { cpu: 4000, memory: 8 * 2 ** 30 });
  }
  t.same(errorsOf([unit({ name: 'a', resources: { cpu: '2 cores' as unknown as string, memory: '1GB' } })]), [
    { path: '/units/0/resources/cpu', message: 'must be cores (2, "1.5") or millicores ("250m")' },
    { path: '/units/0/resources/memory', message: 'must be bytes (4096) or a size like "512Mi", "2Gi", "1G"' },
  ]);
});

t.test('defaults and template expansion', async (t) => {
  const doc = Topology.parse({
    ...base,
    units: [
      unit({ name: 'web@1..3', command: 'serve --id %i', constraints: { conflicts: ['web@*'] } }),
      unit({ name: 'side@1..3', command: ['side', '%i'], constraints: { machineOf: 'web@%i' }, services: [{ name: 'http', port: 80, check: { type: 'http' } }] }),
      unit({ name: 'db', replicas: 2, constraints: { hostLabels: { region: 'eu', disk: ['ssd', 'nvme'] } } }),
    ],
  });
  const specs = expandUnits(doc.units);
  t.same(specs.map((s) => s.name), ['web@1', 'web@2', 'web@3', 'side@1', 'side@2', 'side@3', 'db']);
  t.equal(specs[1]!.command, 'serve --id 2');
  t.same(specs[4]!.command, ['side', '2']);
  t.equal(specs[4]!.machineOf, 'web@2');
  t.same(specs[0]!.conflicts, ['web@*']);
  t.same(specs[6]!.hostLabels, { region: ['eu'], disk: ['ssd', 'nvme'] });
  t.match(specs[6], { replicas: 2, global: false, cpu: 0, memory: 0, desiredState: 'launched', source: 2 });
  t.same(specs[3]!.services, [{ name: 'http', port: 80, check: { type: 'http', path: '/', intervalMs: 10_000, timeoutMs: 2_000 } }]);
  t.ok(validate({ ...base, units: doc.units }).ok, 'the example validates');
});

t.test('validation errors name the JSON path', async (t) => {
  t.same(errorsOf([unit({ name: 'a', tenant: 'nope' })]), [{ path: '/units/0/tenant', message: 'unknown tenant "nope"' }]);
  t.same(errorsOf([unit({ name: 'a', network: 'db' })]), [{ path: '/units/0/network', message: 'unknown network "db" in tenant "acme"' }]);
  t.same(errorsOf([unit({ name: 'a', constraints: { host: 'h9' } })]), [{ path: '/units/0/constraints/host', message: 'unknown host "h9"' }]);
  t.same(errorsOf([unit({ name: 'a', constraints: { machineOf: 'b' } })]), [{ path: '/units/0/constraints/machineOf', message: 'unknown unit "b" (for unit "a")' }]);
  t.same(errorsOf([unit({ name: 'a', constraints: { machineOf: 'a' } })]), [{ path: '/units/0/constraints/machineOf', message: 'unit "a" cannot be machineOf itself' }]);
  t.same(
    errorsOf([unit({ name: 'a', constraints: { machineOf: 'b' } }), unit({ name: 'b', constraints: { machineOf: 'c' } }), unit({ name: 'c', constraints: { machineOf: 'a' } })]),
    [
      { path: '/units/0/constraints/machineOf', message: 'machineOf cycle: a → b → c → a' },
      { path: '/units/1/constraints/machineOf', message: 'machineOf cycle: b → c → a → b' },
      { path: '/units/2/constraints/machineOf', message: 'machineOf cycle: c → a → b → c' },
    ],
  );
  t.same(errorsOf([unit({ name: 'a', replicas: 2 }), unit({ name: 'b', constraints: { machineOf: 'a' } })]), [
    { path: '/units/1/constraints/machineOf', message: 'machineOf needs single-instance units (no replicas, not global): "b" → "a"' },
  ]);
  t.same(errorsOf([unit({ name: 'web@1..3' }), unit({ name: 'web@2' })]), [{ path: '/units/1/name', message: 'duplicate unit "web@2" (also from /units/0/name)' }]);
  t.same(errorsOf([unit({ name: 'a' }), unit({ name: 'a' })]), [{ path: '/units/1/name', message: 'duplicate unit "a" (also from /units/0/name)' }]);
  t.same(errorsOf([unit({ name: 'web@3..1' })]), [{ path: '/units/0/name', message: 'template range 3..1 is empty' }]);
  t.same(errorsOf([unit({ name: 'side@1..2', constraints: { machineOf: 'web@%i' } }), unit({ name: 'web@1' })]), [
    { path: '/units/0/constraints/machineOf', message: 'unknown unit "web@2" (for unit "side@2")' },
  ]);
  t.same(errorsOf([unit({ name: 'g', global: true, replicas: 2, constraints: { host: 'h1' } })]), [
    { path: '/units/0/replicas', message: 'a global unit runs one instance per eligible host; it cannot also have replicas' },
    { path: '/units/0/constraints/host', message: 'a global unit cannot be pinned to one host' },
  ]);
  t.same(errorsOf([unit({ name: 'a', services: [{ name: 'http', port: 80 }, { name: 'http', port: 81 }] })]), [
    { path: '/units/0/services/1/name', message: 'duplicate service "http" (first at /units/0/services/0/name)' },
  ]);
  // Structure, from the schema
  t.same(errorsOf([unit({ name: 'Web', desiredState: 'running' as 'launched', constraints: { conflicts: ['a b'] } })]), [
    { path: '/units/0/name', message: 'must be a DNS-safe name, optionally with an instance ("web@blue", "web@3") or a template range ("web@1..3")' },
    { path: '/units/0/constraints/conflicts/0', message: 'must be a glob over unit names (letters, digits, "-", "@", ".", * and ?)' },
    { path: '/units/0/desiredState', message: 'must be one of "inactive", "loaded", "launched"' },
  ]);
  t.same(errorsOf([{ name: 'a', tenant: 'acme', network: 'web' } as UnitInput]), [{ path: '/units/0/command', message: 'is required' }]);
  t.same(errorsOf([unit({ name: 'a', command: [] })]), [{ path: '/units/0/command', message: 'must be at least 1' }]);
  t.same(errorsOf([unit({ name: 'a', extra: 1 } as unknown as UnitInput)]), [{ path: '/units/0', message: 'unknown field "extra"' }]);
});

t.test('a valid document places through hostsOf (host resources, labels)', async (t) => {
  const r = validate({ ...base, units: [unit({ name: 'eu', constraints: { hostLabels: { region: 'eu' } }, resources: { memory: '4Gi' } }), unit({ name: 'big', resources: { memory: '64Gi' }, constraints: { hostLabels: { region: 'eu' } } })] });
  t.ok(r.ok);
  if (!r.ok) return;
  const p = place(expandUnits(r.doc.units), hostsOf(r.doc));
  t.same(p.assignments, [{ id: 'eu', unit: 'eu', host: 'h1' }]);
  t.same(p.unplaceable.map((u) => u.reason), ['hostLabels region=eu: excludes h2 (region=us); memory 64Gi: no host has that much free (h1 has 4Gi free)']);
});
