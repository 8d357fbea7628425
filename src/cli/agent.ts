/** `tenet agent`: the host agent (src/agent): registers this host, runs the units the scheduler assigns to it. */
import { hostname } from 'node:os';
import { Command, Option } from 'commander';
import pino from 'pino';
import { startAgent, type LogFn } from '../agent/index.js';
import { parseControllerUrl, parseLabels, parseOvsdb, parseUnderlayIp } from '../agent/options.js';
import { parseCpu, parseMemory } from '../model/units.js';
import { UsageError } from '../util/errors.js';
import { readTokenFile } from '../util/token.js';

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const DEFAULT_TOKEN_FILE = '/var/lib/tenet/token';

interface AgentCliOptions {
  host: string;
  controller: string;
  token?: string;
  tokenFile?: string;
  auth: boolean;
  stateDir?: string;
  ovsdb: string;
  advertiseOvsdb?: string;
  hostNetns?: string;
  netnsPrefix?: string;
  labels?: string;
  cpu?: string;
  memory?: string;
  underlayIp?: string;
  datapathType?: 'netdev' | 'system';
  isolate: 'auto' | 'on' | 'off';
  stopOnExit: boolean;
  logLevel: string;
}

export function register(program: Command): void {
  program
    .command('agent')
    .description('run the host agent: register this host with the controller, keep its lease, run the units assigned to it (netns driver), report their state (logs: JSON on stderr)')
    .option('--host <name>', "this host's name, as in the topology's hosts", hostname())
    .addOption(new Option('--controller <url>', "the controller's API").env('TENET_API').default('http://127.0.0.1:6680'))
    .addOption(new Option('--token <token>', 'bearer token').env('TENET_TOKEN'))
    .option('--token-file <file>', `file holding the bearer token (default ${DEFAULT_TOKEN_FILE})`)
    .option('--no-auth', 'the controller runs without a token (--no-auth there too)')
    .option('--state-dir <dir>', 'instance records, logs, agent.sock (default /var/lib/tenet/agent/<host>)')
    .option('--ovsdb <addr>', "this host's OVSDB, for adding ports to br-int", 'unix:/var/run/openvswitch/db.sock')
    .option('--advertise-ovsdb <addr>', 'OVSDB address the controller should use for this host (registered; default --ovsdb when it is tcp:)')
    .option('--host-netns <ns>', 'network namespace br-int lives in (a lab host); default the agent\'s own')
    .option('--netns-prefix <p>', 'prefix of instance namespaces (default tn-<host>)')
    .option('--labels <k=v,...>', 'host labels offered to unit constraints, e.g. zone=a,disk=ssd')
    .option('--cpu <cores>', 'CPU offered to units: cores (4, 1.5) or millicores (500m)')
    .option('--memory <size>', 'memory offered to units: bytes or 512Mi, 8Gi, 2G')
    .option('--underlay-ip <ip>', "this host's tunnel endpoint address (registered)")
    .addOption(new Option('--datapath-type <t>', "br-int's datapath (registered)").choices(['netdev', 'system']))
    .addOption(new Option('--isolate <mode>', 'own PID/mount/UTS namespaces per instance (unshare): auto = when available').choices(['auto', 'on', 'off']).default('auto'))
    .option('--stop-on-exit', 'stop every instance when the agent exits (default: leave them running for the next agent to adopt)', false)
    .addOption(new Option('--log-level <level>', 'log level').choices(LEVELS).default('info'))
    .addHelpText(
      'after',
      `
The agent speaks only HTTP to the controller (POST /v1/agents/<host>, heartbeat, long-poll of
its assignments, status reports; services in the registry). While the controller is away it
retries with backoff and logs the outage once; instances keep running. On SIGTERM/SIGINT it
exits leaving instances running: a restarted agent adopts them (same pid, nothing started twice).
Containers reach the agent at $TENET_AGENT_SOCKET (logs, their own service registrations).
See docs/AGENT.md.

Example:
  tenet agent --host host1 --controller http://192.0.2.1:6680 --token-file /var/lib/tenet/token \\
    --labels zone=a --cpu 4 --memory 8Gi --underlay-ip 192.0.2.11`,
    )
    .action(async (o: AgentCliOptions) => {
      if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(o.host)) throw new UsageError(`--host: '${o.host}' must be a DNS label (lowercase letters, digits, '-')`);
      const controller = parseControllerUrl(o.controller);
      let token: string | null = null;
      if (o.auth) {
        if (o.token) token = o.token;
        else {
          const file = o.tokenFile ?? DEFAULT_TOKEN_FILE;
          const t = readTokenFile(file);
          if (!t) throw new UsageError(`cannot read a token from ${file} (give --token-file FILE, TENET_TOKEN, or --no-auth)`);
          token = t;
        }
      }
      const labels = o.labels !== undefined ? parseLabels(o.labels) : undefined;
      const resources: { cpu?: number; memory?: number } = {};
      if (o.cpu !== undefined) resources.cpu = wrap('--cpu', () => parseCpu(/^\d+(\.\d+)?$/.test(o.cpu!) ? Number(o.cpu) : o.cpu!));
      if (o.memory !== undefined) resources.memory = wrap('--memory', () => parseMemory(/^\d+$/.test(o.memory!) ? Number(o.memory) : o.memory!));
      const logger = pino({ level: o.logLevel, base: { host: o.host } }, pino.destination(2));
      const log: LogFn = (level, msg, ctx) => logger[level](ctx ?? {}, msg);
      const agent = await startAgent({
        host: o.host,
        controller,
        token,
        stateDir: o.stateDir ?? `/var/lib/tenet/agent/${o.host}`,
        ovsdb: parseOvsdb(o.ovsdb),
        ...(o.advertiseOvsdb ? { advertiseOvsdb: parseOvsdb(o.advertiseOvsdb, '--advertise-ovsdb') } : {}),
        ...(o.hostNetns ? { hostNetns: o.hostNetns } : {}),
        ...(o.netnsPrefix ? { netnsPrefix: o.netnsPrefix } : {}),
        ...(labels ? { labels } : {}),
        ...(Object.keys(resources).length ? { resources } : {}),
        ...(o.underlayIp ? { underlayIp: parseUnderlayIp(o.underlayIp) } : {}),
        ...(o.datapathType ? { datapathType: o.datapathType } : {}),
        isolate: o.isolate,
        log,
      });
      await new Promise<void>((resolve) => {
        const stop = (sig: string) => {
          log('info', `${sig}: stopping the agent${o.stopOnExit ? ' and its instances' : ''}`);
          void agent.close({ stopInstances: o.stopOnExit }).then(resolve, (err: Error) => {
            log('error', `stopping failed: ${err.message}`);
            resolve();
          });
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
    });
}

function wrap<T>(option: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw new UsageError(`${option}: ${(err as Error).message}`);
  }
}
