/** `tenet host setup|teardown`: the per-host setup the lab runs for each of its hosts, on this machine. */
import { Command, Option } from 'commander';
import { setupHost, teardownHost, type OvsMode, type DatapathType } from '../host/index.js';
import { UsageError } from '../util/errors.js';

const say = (msg: string) => process.stdout.write(`[host] ${msg}\n`);

function requireRoot(what: string): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) throw new UsageError(`${what} must run as root (it configures Open vSwitch and interfaces)`);
}

const ovsOption = () =>
  new Option('--ovs <mode>', "which Open vSwitch: 'system' (the running openvswitch-switch), 'own' (daemons started in --run-dir), 'auto' (system when its socket answers)")
    .choices(['auto', 'system', 'own'])
    .default('auto');
const runDirOption = () => new Option('--run-dir <dir>', 'run directory of the Open vSwitch instance (default: /var/run/openvswitch for system, /run/tenet/host for own)');
const namespaceOption = () => new Option('--namespace <ns>', "the host is this network namespace (as a lab host is); default: this machine's own network stack");

interface SetupOpts {
  name: string;
  underlayIp: string;
  underlayIface?: string;
  ovsdbListen?: string;
  datapathType: DatapathType;
  ovs: OvsMode;
  runDir?: string;
  namespace?: string;
  systemId?: string;
  output: 'text' | 'json';
}

export function register(program: Command): void {
  const host = program
    .command('host')
    .description('prepare this machine as a Tenet host (the same setup the lab runs for each of its hosts)')
    .addHelpText(
      'after',
      '\nExample (a VM whose eth2 holds 192.168.57.11/24):\n  tenet host setup --name host1 --underlay-ip 192.168.57.11/24 --ovsdb-listen 192.168.56.11\n  tenet host teardown',
    );

  host
    .command('setup')
    .description('Open vSwitch (system or own daemons), br-phy holding the underlay NIC with the underlay IP, br-int; idempotent')
    .requiredOption('--name <host>', "the host's name in the topology (Open_vSwitch external_ids:hostname)")
    .requiredOption('--underlay-ip <cidr>', 'tunnel endpoint address with prefix length, e.g. 192.168.57.11/24 (moved onto br-phy)')
    .option('--underlay-iface <iface>', 'the underlay NIC (default: the interface that holds --underlay-ip)')
    .option('--ovsdb-listen <ip[:port]>', 'listen for the controller on OVSDB TCP (port 6640 unless given)')
    .addOption(new Option('--datapath-type <type>', 'datapath of the bridges').choices(['netdev', 'system']).default('netdev'))
    .addOption(ovsOption())
    .addOption(runDirOption())
    .addOption(namespaceOption())
    .option('--system-id <id>', 'Open_vSwitch external_ids:system-id (default: --name)')
    .addOption(new Option('-o, --output <format>', "'json': the topology's hosts entry for this host").choices(['text', 'json']).default('text'))
    .action(async (o: SetupOpts) => {
      requireRoot('tenet host setup');
      const r = await setupHost({
        name: o.name,
        underlayIp: o.underlayIp,
        datapathType: o.datapathType,
        ovs: o.ovs,
        ...(o.underlayIface ? { underlayIface: o.underlayIface } : {}),
        ...(o.ovsdbListen ? { ovsdbListen: o.ovsdbListen } : {}),
        ...(o.runDir ? { runDir: o.runDir } : {}),
        ...(o.namespace ? { namespace: o.namespace } : {}),
        ...(o.systemId ? { systemId: o.systemId } : {}),
        ...(o.output === 'text' ? { onProgress: say } : {}),
      });
      const entry = { name: o.name, underlayIp: r.underlayIp.split('/')[0], ovsdb: r.ovsdbTarget ?? `unix:${r.ovsdbSocket}`, datapathType: r.datapathType };
      if (o.output === 'json') process.stdout.write(JSON.stringify({ host: entry, ovs: r.ovs, runDir: r.runDir, started: r.started, underlayIface: r.underlayIface }, null, 2) + '\n');
      else say(`ready; its topology entry: ${JSON.stringify(entry)}`);
    });

  host
    .command('teardown')
    .description('undo setup: the underlay IP back on its NIC, br-int and br-phy deleted, own daemons stopped')
    .addOption(ovsOption())
    .addOption(runDirOption())
    .addOption(namespaceOption())
    .action(async (o: { ovs: OvsMode; runDir?: string; namespace?: string }) => {
      requireRoot('tenet host teardown');
      await teardownHost({ ovs: o.ovs, ...(o.runDir ? { runDir: o.runDir } : {}), ...(o.namespace ? { namespace: o.namespace } : {}), onProgress: say });
    });
}
