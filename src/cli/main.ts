/**
 * The `tandem` command: argument parsing and wiring only.
 *   tandem run -c FILE [--log-level debug|info|warn|error]
 *   tandem check -c FILE
 *   tandem lab [--advert-interval 1s]
 *   tandem ipvs apply|list|save ...
 *   tandem realserver up|down|check ...
 *   tandem --version
 */

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/index.ts';
import { SystemClock } from '../lib/clock.ts';
import { ConfigError, TandemError, messageOf } from '../lib/errors.ts';
import { JsonLogger, LOG_LEVELS, type LogLevel } from '../lib/log.ts';
import { setRealtimePriority } from '../lib/realtime.ts';
import { loadAuthKeys, startDaemon } from './wire.ts';
import { loadSyncKeyFiles } from './wire-sync.ts';

const USAGE = `usage:
  tandem run -c FILE [--log-level debug|info|warn|error] [--realtime-priority 1..99]
                                                           run the daemon in the foreground (JSON logs)
  tandem check -c FILE                                     validate a configuration (exit 0 valid, 1 invalid)
  tandem lab [--advert-interval 1s]                        a director pair in network namespaces, with a failover (root)
  tandem ipvs apply -c FILE [--dry-run]                    reconcile the kernel's IPVS tables once and print the ops
  tandem ipvs list -n [--stats|--rate|--timeout|--daemon]  the IPVS tables, byte-identical to ipvsadm -Ln
  tandem ipvs save -n                                      the IPVS tables as ipvsadm -Sn prints them
  tandem realserver up|down|check --vip ADDR --mode dr|tun prepare or check a real server for DR / TUN
  tandem sync keygen --dir DIR --name NAME [--force]       write a CURVE key pair for the sync channel
  tandem --version`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function cmdCheck(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } } });
  if (values.config === undefined) {
    process.stderr.write(`tandem check: -c FILE is required\n${USAGE}\n`);
    return 2;
  }
  try {
    const config = loadConfig(values.config);
    loadAuthKeys(config);
    loadSyncKeyFiles(config);
    const n = config.vrrp.instances.length;
    process.stdout.write(`${values.config}: valid (${n} instance${n === 1 ? '' : 's'})\n`);
    return 0;
  } catch (e) {
    if (e instanceof TandemError) {
      process.stderr.write(`${e.message}\n`);
      if (e instanceof ConfigError) process.stderr.write(`${e.issues.length} error${e.issues.length === 1 ? '' : 's'}\n`);
      return 1;
    }
    throw e;
  }
}

async function cmdRun(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' }, 'log-level': { type: 'string' }, 'realtime-priority': { type: 'string' }, 'exit-with-stdin': { type: 'boolean' } } });
  if (values.config === undefined) {
    process.stderr.write(`tandem run: -c FILE is required\n${USAGE}\n`);
    return 2;
  }
  const rtPriority = Number(values['realtime-priority'] ?? 0);
  if (!Number.isInteger(rtPriority) || rtPriority < 0 || rtPriority > 99) {
    process.stderr.write('tandem run: --realtime-priority must be 0 (off) or 1..99\n');
    return 2;
  }
  const level = (values['log-level'] ?? 'info') as LogLevel;
  if (!(level in LOG_LEVELS)) {
    process.stderr.write(`tandem run: --log-level must be one of ${Object.keys(LOG_LEVELS).join(', ')}\n`);
    return 2;
  }
  // A closed log pipe (EPIPE) must not stop the election: stop writing logs instead.
  let logsOpen = true;
  process.stdout.on('error', () => {
    logsOpen = false;
  });
  const logger = new JsonLogger((l) => {
    if (logsOpen) process.stdout.write(l);
  }, level);
  let config;
  try {
    config = loadConfig(values.config);
  } catch (e) {
    if (e instanceof TandemError) {
      logger.log('error', 'invalid configuration', { error: e.message });
      return 1;
    }
    throw e;
  }
  const log = logger.child({ node: config.node.name });
  let daemon;
  try {
    daemon = await startDaemon(config, new SystemClock(), log);
  } catch (e) {
    log.log('error', 'cannot start', { error: messageOf(e) });
    return 1;
  }
  const d = daemon;
  if (rtPriority > 0) {
    try {
      setRealtimePriority(rtPriority);
      log.log('info', 'event loop runs with real-time priority', { policy: 'SCHED_FIFO', priority: rtPriority });
    } catch (e) {
      log.log('warn', 'cannot use real-time priority; adverts may be late under CPU load', { error: messageOf(e) });
    }
  }
  return await new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.log('info', 'stopping', { signal });
      // Bounded: a stuck kernel call must not keep a stopping director alive forever.
      const guard = setTimeout(() => {
        log.log('error', 'graceful stop timed out', {});
        resolve(1);
      }, 5000);
      d.stop().then(
        () => {
          clearTimeout(guard);
          resolve(0);
        },
        (e: unknown) => {
          clearTimeout(guard);
          log.log('error', 'stop failed', { error: messageOf(e) });
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    // For harnesses (lab, tests): stop when whoever started us goes away and closes our stdin.
    if (values['exit-with-stdin'] === true) process.stdin.on('end', () => stop('stdin closed')).resume();
  });
}

async function cmdSyncKeygen(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { dir: { type: 'string' }, name: { type: 'string' }, force: { type: 'boolean' } } });
  if (values.dir === undefined || values.name === undefined) {
    process.stderr.write(`tandem sync keygen: --dir DIR and --name NAME are required\n${USAGE}\n`);
    return 2;
  }
  try {
    const { writeKeyPairFiles } = await import('../sync/index.ts');
    const f = writeKeyPairFiles(values.dir, values.name, { force: values.force === true });
    process.stdout.write(`${f.secretPath} (secret, 0600)\n${f.publicPath} (public: copy it to the peer director)\n`);
    return 0;
  } catch (e) {
    if (e instanceof TandemError) {
      process.stderr.write(`${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case '--version':
    case 'version':
      process.stdout.write(`tandem ${version()}\n`);
      return 0;
    case 'check':
      return cmdCheck(rest);
    case 'run':
      return cmdRun(rest);
    case 'lab': {
      const { cmdLab } = await import('./lab.ts');
      return cmdLab(rest);
    }
    case 'ipvs': {
      const [sub, ...args] = rest;
      if (sub === 'apply') return (await import('./ipvs-apply.ts')).cmdIpvsApply(args);
      if (sub === 'list' || sub === 'save') return (await import('./ipvs-list.ts')).cmdIpvsList(sub, args);
      process.stderr.write(`tandem ipvs: expected apply, list or save\n${USAGE}\n`);
      return 2;
    }
    case 'realserver':
      return (await import('./realserver.ts')).cmdRealserver(rest);
    case 'sync': {
      const [sub, ...args] = rest;
      if (sub === 'keygen') return cmdSyncKeygen(args);
      process.stderr.write(`tandem sync: expected keygen\n${USAGE}\n`);
      return 2;
    }
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(`${USAGE}\n`);
      return cmd === undefined ? 2 : 0;
    default:
      process.stderr.write(`tandem: unknown command ${cmd}\n${USAGE}\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`tandem: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
