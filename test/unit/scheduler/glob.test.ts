import t from 'tap';
import { compileGlob } from '../../../src/scheduler/index.js';

t.test('globs over unit names', async (t) => {
  const cases: Array<[string, string, boolean]> = [
    ['web', 'web', true],
    ['web', 'web@1', false],
    ['web@*', 'web@1', true],
    ['web@*', 'web', false],
    ['web@?', 'web@7', true],
    ['web@?', 'web@12', false],
    ['*-db', 'acme-db', true],
    ['*-db', 'acme-db2', false],
    ['a*b*c', 'a-x-b-y-c', true],
    ['a*b*c', 'a-x-c', false],
    ['web.1', 'web.1', true],
    ['web.*', 'webx1', false],
    ['*', 'anything', true],
  ];
  for (const [glob, name, want] of cases) t.equal(compileGlob(glob)(name), want, `${glob} ${want ? 'matches' : 'does not match'} ${name}`);
  t.equal(compileGlob('web@*'), compileGlob('web@*'), 'compiled once');
});
