/**
 * docs/API.md documents every route the controller's API registers: each
 * `app.get|put|post|delete('/path')` in src/api/*.ts is named there as
 * `METHOD /path` (a section heading or a line of a route table).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const apiDir = join(root, 'src/api');

/** METHOD /path for each express registration (a template part such as `${verb}` kept as it is). */
function registeredRoutes(): string[] {
  const out = new Set<string>();
  for (const f of readdirSync(apiDir).filter((n) => n.endsWith('.ts'))) {
    const src = readFileSync(join(apiDir, f), 'utf8');
    for (const m of src.matchAll(/\bapp\.(get|put|post|delete)\(\s*(['`])([^'`]+)\2/g)) out.add(`${m[1]!.toUpperCase()} ${m[3]}`);
  }
  return [...out].sort();
}

/** Whether a documented route covers a registered one (a `${x}` part stands for any one path segment). */
function covered(route: string, documented: Set<string>): boolean {
  if (documented.has(route)) return true;
  if (!route.includes('${')) return false;
  const pattern = new RegExp(`^${route.split(/\$\{\w+\}/).map((p) => p.replace(/[.*+?^()|[\]\\]/g, '\\$&')).join('[^/]+')}$`);
  return [...documented].some((d) => pattern.test(d));
}

/**
 * Every `METHOD /path` API.md mentions (a section heading, a line of a route table,
 * prose), as METHOD /path; a last segment of alternatives (`start|stop`,
 * `start | stop`) expanded; query strings dropped.
 */
function documentedRoutes(md: string): Set<string> {
  const out = new Set<string>();
  for (const m of md.matchAll(/\b(GET|PUT|POST|DELETE)\s+(\/[^\s`?[|]+)((?:\s*\|\s*[\w-]+)*)/g)) {
    const [method, path, more] = [m[1]!, m[2]!, m[3]!];
    out.add(`${method} ${path}`);
    const base = path.slice(0, path.lastIndexOf('/'));
    for (const alt of more.split('|').map((a) => a.trim()).filter(Boolean)) out.add(`${method} ${base}/${alt}`);
  }
  return out;
}

t.test('every API route is named in docs/API.md', async (t) => {
  const routes = registeredRoutes();
  t.ok(routes.length >= 15, `${routes.length} routes registered in src/api`);
  const documented = documentedRoutes(readFileSync(join(root, 'docs/API.md'), 'utf8'));
  t.same(
    routes.filter((r) => !covered(r, documented)),
    [],
    'routes docs/API.md does not name (as METHOD /path)',
  );
});

t.test('the check itself: templates, alternatives, missing routes', async (t) => {
  const doc = documentedRoutes('### `POST /v1/units/:name/start|stop` — x\n### `GET /v1/networks[?tenant=NAME]`\n### `GET /v1/events` (WebSocket)\nDELETE /v1/units/:name      -> 404\nPOST   /v1/agents/:host/x | y  ->\n');
  t.same([...doc].sort(), ['DELETE /v1/units/:name', 'GET /v1/events', 'GET /v1/networks', 'POST /v1/agents/:host/x', 'POST /v1/agents/:host/y', 'POST /v1/units/:name/start', 'POST /v1/units/:name/stop']);
  t.ok(covered('POST /v1/units/:name/${verb}', doc), 'a template route is covered by a documented instance');
  t.notOk(covered('POST /v1/units', doc), 'an undocumented route is not');
  t.notOk(covered('DELETE /v1/units/:name/${verb}', doc), 'the method counts');
});
