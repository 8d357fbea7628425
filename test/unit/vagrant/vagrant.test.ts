/**
 * The Vagrant testbed (vagrant/): the Vagrantfile parses (`vagrant validate` when
 * vagrant is installed, `ruby -c` when ruby is), the provisioning script runs the
 * same per-host setup entry point as the lab (`tenet host setup` → src/host
 * setupHost, which src/lab calls for each lab host), and topologies/vagrant.json
 * addresses exactly the VMs the Vagrantfile makes.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { runSync } from '../../../src/util/exec.js';
import { tenet } from '../../helpers/cli.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const read = (p: string) => readFileSync(join(root, p), 'utf8');
const vagrantfile = read('vagrant/Vagrantfile');
const provision = read('vagrant/provision.sh');
const onPath = (cmd: string) => runSync(['sh', '-c', `command -v ${cmd}`], { allowFailure: true }).code === 0;
/** Lines that run something: comments and blank lines dropped. */
const codeLines = (text: string, comment: RegExp) => text.split('\n').filter((l) => l.trim() && !comment.test(l));

t.test('provisioning and the lab call the same setup entry point', async (t) => {
  // provision.sh: builds the `tenet host setup` command line and runs it (and installs it as the boot unit).
  const setupLine = codeLines(provision, /^\s*#/).find((l) => /\btenet host setup\b/.test(l));
  t.ok(setupLine, 'provision.sh runs `tenet host setup`');
  t.match(provision, /^\s*"\$\{setup\[@\]\}"\s*$/m, 'provision.sh runs that command line');
  t.match(provision, /^ExecStart=\$\{setup\[\*\]\}$/m, 'the boot unit runs the same command line');
  const options = [...(setupLine ?? '').matchAll(/(--[a-z-]+)/g)].map((m) => m[1]!);
  t.ok(options.length >= 3, `options used: ${options.join(' ')}`);
  const help = await tenet(['host', 'setup', '--help']);
  t.equal(help.code, 0, '`tenet host setup --help` exits 0');
  for (const o of options) t.match(help.stdout, new RegExp(`${o}\\b`), `tenet host setup knows ${o}`);

  // The CLI command and the lab: both call setupHost from src/host.
  const cli = read('src/cli/host.ts');
  t.match(cli, /import \{[^}]*\bsetupHost\b[^}]*\} from '\.\.\/host\/index\.js'/, 'src/cli/host.ts imports setupHost from src/host');
  t.match(cli, /\.command\('setup'\)[\s\S]*?await setupHost\(/, '`host setup` calls setupHost');
  const lab = read('src/lab/lab.ts');
  t.match(lab, /import \{[^}]*\bsetupHost\b[^}]*\} from '\.\.\/host\/index\.js'/, 'src/lab/lab.ts imports setupHost from src/host');
  t.match(lab, /async function createHost[\s\S]*?await setupHost\(\{[\s\S]*?namespace: ns,/, "the lab's createHost calls setupHost for the host's namespace");
  t.notMatch(lab, /'ovsdb-server'|'ovs-vswitchd'|'ovsdb-tool'|'add-br'/, 'the lab starts no OVS daemon and makes no bridge itself');
});

t.test('provision.sh is valid bash and reuses scripts/setup.sh', async (t) => {
  const r = runSync(['bash', '-n', join(root, 'vagrant/provision.sh')], { allowFailure: true });
  t.equal(r.code, 0, `bash -n: ${r.stderr.trim() || 'ok'}`);
  t.match(provision, /bash "\$REPO\/scripts\/setup\.sh"/, 'installs packages with scripts/setup.sh');
  t.match(provision, /tenet controller --state-dir \/var\/lib\/tenet --api 0\.0\.0\.0:\$API_PORT --openflow 0\.0\.0\.0:\$OPENFLOW_PORT --advertise tcp:\$mgmt_ip:\$OPENFLOW_PORT/, 'the controller unit');
  t.match(provision, /if \/usr\/local\/bin\/tenet agent --help >\/dev\/null 2>&1; then/, 'the agent unit only where `tenet agent` exists');
  t.match(provision, /^ExecStart=\$\{agent\[\*\]\}$/m, 'the agent unit runs the agent command line');
  const controllerHelp = await tenet(['controller', '--help']);
  for (const o of ['--state-dir', '--api', '--openflow', '--advertise']) t.match(controllerHelp.stdout, o, `tenet controller knows ${o}`);
});

t.test('the agent command line of provision.sh', async (t) => {
  const help = await tenet(['agent', '--help']);
  if (help.code !== 0) {
    t.plan(0, 'this Tenet has no agent command yet (provision.sh installs no agent unit then)');
    return;
  }
  const start = provision.indexOf('agent=(/usr/local/bin/tenet agent');
  const line = provision.slice(start, provision.indexOf(')\n', start));
  const options = [...line.matchAll(/\s(--[a-z-]+)/g)].map((m) => m[1]!);
  t.ok(options.length >= 4, `options used: ${options.join(' ')}`);
  for (const o of options) t.match(help.stdout, new RegExp(`${o}\\b`), `tenet agent knows ${o}`);
});

t.test('Vagrantfile: Debian 12 box, addresses of topologies/vagrant.json', async (t) => {
  t.match(vagrantfile, /BOX = ENV\.fetch\("TENET_BOX", "debian\/bookworm64"\)/, 'box debian/bookworm64');
  const mgmt = /^MGMT_NET = "([\d.]+)"$/m.exec(vagrantfile)?.[1];
  const underlay = /^UNDERLAY_NET = "([\d.]+)"$/m.exec(vagrantfile)?.[1];
  t.ok(mgmt && underlay, `networks ${mgmt}.0/24 and ${underlay}.0/24`);
  t.match(vagrantfile, /HOSTS = Integer\(ENV\.fetch\("TENET_HOSTS", "3"\)\)/, 'TENET_HOSTS hosts, 3 by default');
  t.match(vagrantfile, /args: \["host", "host#\{i\}", mgmt_ip\(i\), "#\{underlay_ip\(i\)\}\/24", CONTROLLER_IP\]/, 'each host is provisioned with its addresses');

  type Host = { name: string; underlayIp: string; ovsdb: string; datapathType: string };
  const topo = JSON.parse(read('topologies/vagrant.json')) as { hosts: Host[] };
  t.same(
    topo.hosts.map(({ name, underlayIp, ovsdb, datapathType }) => ({ name, underlayIp, ovsdb, datapathType })),
    [1, 2, 3].map((i) => ({ name: `host${i}`, underlayIp: `${underlay}.${10 + i}`, ovsdb: `tcp:${mgmt}.${10 + i}:6640`, datapathType: 'netdev' })),
    'topologies/vagrant.json: the VMs hostN with the Vagrantfile’s addresses',
  );
  const demo = JSON.parse(read('topologies/demo.json')) as { hosts: Host[] };
  const withoutAddresses = (d: { hosts: Host[] }) => ({ ...d, hosts: d.hosts.map(({ underlayIp: _u, ovsdb: _o, ...rest }) => rest) });
  t.same(withoutAddresses(topo), withoutAddresses(demo), 'otherwise topologies/demo.json as it is (tenants, units, host labels)');
  const v = await tenet(['validate', join(root, 'topologies/vagrant.json')]);
  t.equal(v.code, 0, v.stdout.trim());
});

t.test('ruby -c Vagrantfile', { skip: onPath('ruby') ? false : 'ruby not installed' }, async (t) => {
  const r = runSync(['ruby', '-c', join(root, 'vagrant/Vagrantfile')], { allowFailure: true });
  t.equal(r.code, 0, (r.stdout + r.stderr).trim());
});

t.test('vagrant validate', { skip: onPath('vagrant') ? false : 'vagrant not installed' }, async (t) => {
  // A copy, so validating leaves no .vagrant/ or token file in the repository.
  const dir = mkdtempSync(join(tmpdir(), 'tenet-vagrant-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'repo/vagrant'), { recursive: true });
  for (const f of ['Vagrantfile', 'provision.sh']) copyFileSync(join(root, 'vagrant', f), join(dir, 'repo/vagrant', f));
  const env = { ...process.env, VAGRANT_CWD: join(dir, 'repo/vagrant'), VAGRANT_HOME: join(dir, 'home'), VAGRANT_CHECKPOINT_DISABLE: '1', VAGRANT_DEFAULT_PROVIDER: 'virtualbox' };
  for (const hosts of ['3']) {
    const r = runSync(['vagrant', 'validate', '--ignore-provider'], { allowFailure: true, env: { ...env, TENET_HOSTS: hosts }, timeoutMs: 120_000 });
    t.equal(r.code, 0, `TENET_HOSTS=${hosts}: ${(r.stdout + r.stderr).trim()}`);
  }
  const bad = runSync(['vagrant', 'validate', '--ignore-provider'], { allowFailure: true, env: { ...env, TENET_HOSTS: '0' }, timeoutMs: 120_000 });
  t.not(bad.code, 0, 'TENET_HOSTS=0 is refused');
  t.match(bad.stdout + bad.stderr, /TENET_HOSTS must be from 1 to 200, got 0/);
});
