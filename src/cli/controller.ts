/** `tenet controller`: the controller daemon (store, OpenFlow listener, OVSDB to every host, REST API, service registry + DNS). */
import { Command, Option } from 'commander';
import pino from 'pino';
import { DEFAULT_DNS, DEFAULT_STATE_DIR, runDaemon } from '../daemon/index.js';
import { UsageError } from '../util/errors.js';

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function register(program: Command): void {
  program
    .command('controller')
    .description('run the controller daemon: keeps every host of the stored topology realized (logs: JSON on stderr)')
    .option('--state-dir <dir>', 'token file and embedded store', DEFAULT_STATE_DIR)
    .option('--api <host:port>', 'REST API listen address', '127.0.0.1:6680')
    .option('--openflow <host:port>', 'OpenFlow listen address', '0.0.0.0:6653')
    .option('--advertise <target>', "controller target written into each host's br-int, e.g. tcp:192.0.2.1:6653 (required with a wildcard --openflow)")
    .option('--store <store>', "'embedded' (<state-dir>/store) or etcd:http://HOST:PORT[,...]", 'embedded')
    .option('--drift-interval <seconds>', 'seconds between drift checks (0 = off)', '10')
    .option('--no-auth', 'serve the API without a bearer token')
    .option('--dns <host:port|off>', "the service registry's DNS (UDP, and TCP on a fixed port); port 0 = any free port", DEFAULT_DNS)
    .option('--agent-ttl <seconds>', "agents' lease TTL: a host whose agent misses heartbeats this long has its units rescheduled", '10')
    .addOption(new Option('--log-level <level>', 'log level').choices(LEVELS).default('info'))
    .action(async (o: { stateDir: string; api: string; openflow: string; advertise?: string; store: string; driftInterval: string; auth: boolean; dns: string; agentTtl: string; logLevel: string }) => {
      const drift = Number(o.driftInterval);
      if (!Number.isFinite(drift) || drift < 0) throw new UsageError(`--drift-interval must be a number of seconds >= 0, got '${o.driftInterval}'`);
      const ttl = Number(o.agentTtl);
      if (!Number.isInteger(ttl) || ttl < 1) throw new UsageError(`--agent-ttl must be a whole number of seconds >= 1, got '${o.agentTtl}'`);
      await runDaemon({
        stateDir: o.stateDir,
        api: o.api,
        openflow: o.openflow,
        ...(o.advertise ? { advertise: o.advertise } : {}),
        store: o.store,
        driftIntervalS: drift,
        auth: o.auth,
        dns: o.dns,
        agentLeaseTtlS: ttl,
        logger: pino({ level: o.logLevel }, pino.destination(2)),
      });
    });
}
