/** `tenet lab ...`: bring a multi-host Open vSwitch lab up and down, add containers, run commands in it. */
import { spawn } from 'node:child_process';
import { Command, Option } from 'commander';
import {
  addContainer,
  applyStaticOverlay,
  delContainer,
  labDown,
  labHealth,
  labUp,
  listLabs,
  loadLab,
  requireRoot,
  resolveTarget,
  stateFile,
  type LabState,
  addEndpointContainers,
  labTopologyInfo,
  startLabAgents,
  stopLabAgents,
  labAgents,
  labAgentAlive,
} from '../lab/index.js';
import { UsageError } from '../util/errors.js';

const DEFAULT_LAB = process.env.TENET_LAB ?? 'lab';
const say = (msg: string) => process.stdout.write(`[lab] ${msg}\n`);

const nameOption = () => new Option('--name <prefix>', 'lab name (prefix of every namespace and link it makes)').default(DEFAULT_LAB);
const outputOption = () => new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table');

function intArg(what: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value)) throw new UsageError(`${what} must be a positive integer, got '${value}'`);
    return Number(value);
  };
}

export function register(program: Command): void {
  const lab = program
    .command('lab')
    .description('a multi-host Open vSwitch lab on this machine (network namespaces, userspace datapath)')
    .enablePositionalOptions()
    .addHelpText('after', '\nExample:\n  tenet lab up --hosts 3\n  tenet lab container add host1 web --ip 10.0.0.1/24 --iface-id web\n  tenet lab exec host1 ovs-ofctl -O OpenFlow13 dump-flows br-int\n  tenet lab down');

  lab
    .command('up')
    .description('create a lab: one namespace per host with its own ovsdb-server and ovs-vswitchd')
    .option('--hosts <n>', 'number of hosts', intArg('--hosts'), 3)
    .addOption(nameOption())
    .action(async (opts: { hosts: number; name: string }) => {
      await labUp({ name: opts.name, hosts: opts.hosts, onProgress: say });
      say(`inspect it with: tenet lab status --name ${opts.name}`);
    });

  lab
    .command('down')
    .description('remove every process, namespace, link and file a lab made (idempotent)')
    .addOption(nameOption())
    .action((opts: { name: string }) => {
      const removed = labDown(opts.name);
      say(removed.length ? `removed ${removed.join(', ')}` : `nothing to remove for lab '${opts.name}'`);
    });

  lab
    .command('status')
    .description('show labs, their hosts (daemon pids, addresses) and containers')
    .option('--name <prefix>', 'only this lab')
    .addOption(outputOption())
    .action((opts: { name?: string; output: string }) => {
      const names = opts.name ? [opts.name] : listLabs();
      const states = names.map((n) => loadLab(n));
      if (opts.output === 'json') {
        const out = states.map((s) => ({ ...s, health: labHealth(s) }));
        process.stdout.write(JSON.stringify(opts.name ? out[0] : out, null, 2) + '\n');
        return;
      }
      if (states.length === 0) say('no labs (create one with: tenet lab up)');
      for (const s of states) process.stdout.write(formatStatus(s));
    });

  lab
    .command('hosts')
    .description("the topology `hosts` section for this lab, and the controller target (--advertise) its hosts reach")
    .addOption(nameOption())
    .addOption(outputOption().default('json'))
    .action((opts: { name: string; output: string }) => {
      const info = labTopologyInfo(loadLab(opts.name));
      if (opts.output === 'json') {
        process.stdout.write(JSON.stringify(info, null, 2) + '\n');
        return;
      }
      process.stdout.write(`lab ${info.lab}: start the controller with --advertise ${info.advertise}\n`);
      for (const h of info.hosts) process.stdout.write(`  ${h.name.padEnd(9)} underlay ${h.underlayIp.padEnd(15)} ovsdb ${h.ovsdb}\n`);
    });

  lab
    .command('attach')
    .description("create a container for every endpoint of a running controller (its IP, MAC, iface-id and gateway); existing ones are kept")
    .addOption(nameOption())
    .option('--api <url>', 'controller API', process.env.TENET_API ?? 'http://127.0.0.1:6680')
    .option('--token <token>', 'bearer token (env TENET_TOKEN)', process.env.TENET_TOKEN)
    .option('--token-file <file>', 'read the token from this file')
    .option('--tenant <name>', 'only this tenant')
    .action(async (opts: { name: string; api: string; token?: string; tokenFile?: string; tenant?: string }) => {
      requireRoot('tenet lab attach');
      const { connect } = await import('./client.js');
      const client = connect({ api: opts.api, ...(opts.token ? { token: opts.token } : {}), ...(opts.tokenFile ? { tokenFile: opts.tokenFile } : {}) });
      const eps = await client.endpoints(opts.tenant ? { tenant: opts.tenant } : {});
      const made = await addEndpointContainers(opts.name, loadLab(opts.name), eps);
      for (const c of made) say(`container ${c.name} on ${c.host}: ${c.ip} ${c.mac}, iface-id ${c.ifaceId} (ofport ${c.ofport})`);
      say(`${made.length} container(s) created, ${eps.length - made.length} already there`);
    });

  lab
    .command('exec')
    .description('run a command inside a host or container namespace (OVS tools address that host)')
    .addOption(nameOption())
    .argument('<target>', 'host (host1, ...) or container name')
    .argument('<command...>', 'command and arguments (put -- before options of the command)')
    .passThroughOptions()
    .action(async (target: string, command: string[], opts: { name: string }) => {
      requireRoot('tenet lab exec');
      const { namespace, env } = resolveTarget(loadLab(opts.name), target);
      process.exitCode = await new Promise<number>((resolve, reject) => {
        const child = spawn('ip', ['netns', 'exec', namespace, ...command], { stdio: 'inherit', env });
        child.on('error', reject);
        child.on('exit', (code, sig) => resolve(code ?? (sig ? 128 : 1)));
      });
    });

  lab
    .command('overlay')
    .description('join every lab container in one hand-written VXLAN network (flows via ovs-ofctl; no controller)')
    .addOption(nameOption())
    .option('--vni <vni>', 'VXLAN network identifier', intArg('--vni'), 100)
    .action(async (opts: { name: string; vni: number }) => {
      requireRoot('tenet lab overlay');
      const flows = await applyStaticOverlay(loadLab(opts.name), opts.vni);
      for (const [host, f] of flows) say(`${host}: ${f.length} flows installed`);
    });

  const container = lab.command('container').description('containers: namespaces attached to a host\'s br-int');
  container
    .command('add')
    .description('create a container namespace with a veth into HOST\'s br-int, tagged external_ids:iface-id')
    .argument('<host>', 'lab host, e.g. host1')
    .argument('<name>', 'container name (unique in the lab)')
    .requiredOption('--ip <cidr>', 'address with prefix length, e.g. 10.0.0.1/24')
    .option('--mac <mac>', 'MAC address (default: random)')
    .requiredOption('--iface-id <id>', 'logical port id (external_ids:iface-id)')
    .option('--gateway <ip>', 'default route inside the container')
    .addOption(nameOption())
    .action(async (host: string, name: string, opts: { ip: string; mac?: string; ifaceId: string; gateway?: string; name: string }) => {
      const c = await addContainer(opts.name, host, name, {
        ip: opts.ip,
        ifaceId: opts.ifaceId,
        ...(opts.mac ? { mac: opts.mac } : {}),
        ...(opts.gateway ? { gateway: opts.gateway } : {}),
      });
      say(`container ${c.name} on ${c.host}: ${c.ip} ${c.mac}, port ${c.hostIface} (ofport ${c.ofport}), iface-id ${c.ifaceId}`);
    });
  container
    .command('del')
    .description('remove a container (its namespace, veth and br-int port)')
    .argument('<name>', 'container name')
    .addOption(nameOption())
    .action(async (name: string, opts: { name: string }) => {
      await delContainer(opts.name, name);
      say(`container ${name} removed`);
    });

  const agents = lab
    .command('agents')
    .description("host agents: one 'tenet agent' per lab host, recorded by pid in the lab state, stopped by 'lab down'")
    .addHelpText('after', `
Example (controller on the lab's management gateway):
  tenet lab agents start --controller http://198.18.0.1:6680 --token-file /var/lib/tenet/token
  tenet lab agents status
  tenet lab agents stop --host host2`);
  agents
    .command('start')
    .description("start an agent per lab host (they keep running after this command; logs in <lab dir>/agents/<host>/agent.log)")
    .requiredOption('--controller <url>', "the controller's API, e.g. http://198.18.0.1:6680 (tenet lab hosts prints the management gateway)")
    .option('--token-file <file>', 'bearer token file of the controller')
    .option('--no-auth', 'the controller runs with --no-auth')
    .option('--host <hosts>', 'only these hosts (comma-separated)')
    .option('--labels <host:k=v;...>', 'labels per host, e.g. "host1:zone=a,disk=ssd;host2:zone=b"')
    .addOption(nameOption())
    .action(async (opts: { controller: string; tokenFile?: string; auth: boolean; host?: string; labels?: string; name: string }) => {
      if (opts.auth && !opts.tokenFile) throw new UsageError('give --token-file FILE (the controller\'s token), or --no-auth');
      const labels: Record<string, Record<string, string>> = {};
      for (const part of (opts.labels ?? '').split(';').map((x) => x.trim()).filter(Boolean)) {
        const m = /^([a-z0-9-]+):(.*)$/.exec(part);
        if (!m) throw new UsageError(`--labels: '${part}' is not host:k=v,...`);
        labels[m[1]!] = Object.fromEntries(m[2]!.split(',').filter(Boolean).map((kv) => {
          const [k, ...v] = kv.split('=');
          if (!k || v.length === 0) throw new UsageError(`--labels: '${kv}' of ${m[1]} is not k=v`);
          return [k, v.join('=')];
        }));
      }
      const started = await startLabAgents(opts.name, {
        controller: opts.controller,
        ...(opts.auth && opts.tokenFile ? { tokenFile: opts.tokenFile } : {}),
        ...(opts.host ? { hosts: opts.host.split(',').map((x) => x.trim()).filter(Boolean) } : {}),
        labels,
        detached: true,
      });
      for (const a of started) say(`agent of ${a.host}: pid ${a.pid}, socket ${a.socket}, log ${a.logFile}`);
    });
  agents
    .command('stop')
    .description('stop the lab\'s agents by their recorded pids (their instances keep running until lab down)')
    .option('--host <hosts>', 'only these hosts (comma-separated)')
    .addOption(nameOption())
    .action(async (opts: { host?: string; name: string }) => {
      const stopped = await stopLabAgents(opts.name, opts.host?.split(',').map((x) => x.trim()).filter(Boolean));
      say(stopped.length ? `stopped the agents of ${stopped.join(', ')}` : 'no agent was running');
    });
  agents
    .command('status')
    .description('the lab\'s agents: host, pid, alive, socket, log')
    .addOption(nameOption())
    .action((opts: { name: string }) => {
      const list = labAgents(opts.name);
      if (!list.length) {
        say(`no agents in lab '${opts.name}'`);
        return;
      }
      for (const a of list) process.stdout.write(`${a.host.padEnd(8)} pid ${String(a.pid).padEnd(8)} ${labAgentAlive(a) ? 'running' : 'gone   '} ${a.socket}  ${a.logFile}\n`);
    });
}

function formatStatus(s: LabState): string {
  const health = new Map(labHealth(s).map((h) => [h.name, h]));
  const lines = [
    `lab ${s.name} (${s.status}) — state ${stateFile(s.name)}`,
    `  management ${s.mgmt.cidr} via ${s.mgmt.bridge} (controller side ${s.mgmt.gateway}); underlay ${s.fabric.cidr} in ${s.fabric.namespace}`,
    `  HOST      NAMESPACE           MGMT            UNDERLAY        OVSDB                   ovsdb-server  ovs-vswitchd`,
  ];
  for (const h of s.hosts) {
    const hh = health.get(h.name);
    const pid = (p: number | undefined) => (p ? `pid ${p}` : 'DOWN');
    lines.push(
      `  ${h.name.padEnd(9)} ${h.namespace.padEnd(19)} ${h.mgmtIp.padEnd(15)} ${h.underlayIp.padEnd(15)} ${h.ovsdbTcp.padEnd(23)} ${pid(hh?.ovsdbServer).padEnd(13)} ${pid(hh?.ovsVswitchd)}`,
    );
  }
  if (s.containers.length) {
    lines.push(`  CONTAINER         HOST      IP                  MAC                IFACE-ID`);
    for (const c of s.containers) {
      lines.push(`  ${c.name.padEnd(17)} ${c.host.padEnd(9)} ${c.ip.padEnd(19)} ${c.mac.padEnd(18)} ${c.ifaceId}`);
    }
  }
  if (s.agents?.length) {
    lines.push(`  AGENT     PID       STATE    CONTROLLER`);
    for (const a of s.agents) lines.push(`  ${a.host.padEnd(9)} ${String(a.pid).padEnd(9)} ${(labAgentAlive(a) ? 'running' : 'gone').padEnd(8)} ${a.controller}`);
  }
  return lines.join('\n') + '\n';
}
