/** Limits of unit documents: the expansion cap and long machineOf chains (R1 #2, #6). */
import t from 'tap';
import { MAX_EXPANDED_UNITS, expandUnits, expandedCount, Topology, validate, type UnitInput } from '../../../src/model/index.js';

const base = {
  hosts: [{ name: 'h1', underlayIp: '198.51.100.1', ovsdb: 'tcp:192.0.2.1:6640' }],
  tenants: [{ name: 'acme', networks: [{ name: 'web', subnet: '10.0.0.0/24' }] }],
};
const unit = (o: Partial<UnitInput> & { name: string }): UnitInput => ({ tenant: 'acme', network: 'web', command: ['sleep', 'infinity'], ...o });
const errorsOf = (units: UnitInput[]) => {
  const r = validate({ ...base, units });
  return r.ok ? [] : r.errors;
};

t.test('templates together may not expand beyond the cap (R1 #2)', async (t) => {
  // Each range is within the per-template limit; together they are not.
  const units = [unit({ name: 'a@1..60000' }), unit({ name: 'b@1..60000' })];
  t.equal(expandedCount(units), 120_000);
  t.same(errorsOf(units), [{ path: '/units', message: `the units expand to 120000 units (templates included); at most ${MAX_EXPANDED_UNITS} are allowed` }]);
  // expandUnits itself refuses too, for callers that skip validation.
  t.same(expandUnits(Topology.parse({ ...base, units }).units), []);
  // Exactly at the cap is fine (and bad ranges count nothing).
  const at = [unit({ name: 'a@1..60000' }), unit({ name: 'b@1..39999' }), unit({ name: 'c' })];
  t.equal(expandedCount([...at, unit({ name: 'd@5..1' })]), MAX_EXPANDED_UNITS);
  t.same(errorsOf(at), []);
});

t.test('a long machineOf chain validates in one pass (R1 #6)', async (t) => {
  // 3,000 document units, each machineOf the previous: following the chain from every
  // unit (with a path search per step) took seconds.
  const n = 3000;
  const chain = Array.from({ length: n }, (_, i) => unit({ name: `c${i}`, ...(i ? { constraints: { machineOf: `c${i - 1}` } } : {}) }));
  t.same(errorsOf(chain), []);
  // Closed into a cycle: every unit on it is reported once, each message bounded.
  const cycle = [unit({ name: 'c0', constraints: { machineOf: `c${n - 1}` } }), ...chain.slice(1)];
  const errors = errorsOf(cycle);
  t.equal(errors.length, n);
  t.same(errors[3], { path: '/units/3/constraints/machineOf', message: `machineOf cycle: c3 → c2 → c1 → c0 → c${n - 1} → c${n - 2} → c${n - 3} → c${n - 4} → c${n - 5} → c${n - 6} → … (${n - 10} more) → c3` });
  // A unit leading into a cycle is not on it: only the cycle's units are reported.
  t.same(errorsOf([unit({ name: 'a', constraints: { machineOf: 'b' } }), unit({ name: 'b', constraints: { machineOf: 'a' } }), unit({ name: 'x', constraints: { machineOf: 'a' } })]), [
    { path: '/units/0/constraints/machineOf', message: 'machineOf cycle: a → b → a' },
    { path: '/units/1/constraints/machineOf', message: 'machineOf cycle: b → a → b' },
  ]);
});
