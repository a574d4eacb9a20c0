/**
 * `tandem ipvs apply -c FILE [--dry-run] [--verbose]`: reconcile the kernel's IPVS tables with the configuration
 * once (services and real servers, connection timeouts, FULLNAT rules and their sysctls) and print every op on
 * its own line, then a summary line. Exit 0 when everything applied, 1 when anything failed (the rest is still
 * applied), 2 on usage errors. `--dry-run` dumps and diffs but changes nothing (the owned set included).
 * `--verbose` adds the reconciler's JSON logs on stderr.
 */

import { parseArgs } from 'node:util';
import { ipvsSettings, loadConfig } from '../config/index.ts';
import type { TandemConfig } from '../config/index.ts';
import {
  FULLNAT_TABLE,
  FileOwnedStore,
  FullnatReconciler,
  MemoryOwnedStore,
  Reconciler,
  createIpvsClient,
  createNftHost,
  derive,
  deriveFullnatRules,
  formatOp,
  timeoutsFromConfig,
} from '../ipvs/index.ts';
import type { IpvsClient, IpvsTimeouts, OwnedStore, ReconcileReport } from '../ipvs/index.ts';
import { SystemClock } from '../lib/clock.ts';
import { ConfigError, TandemError, errnoName, messageOf } from '../lib/errors.ts';
import { JsonLogger, MemoryLogger, type Logger } from '../lib/log.ts';

const USAGE = 'usage: tandem ipvs apply -c FILE [--dry-run] [--verbose]';

function timeoutsText(t: IpvsTimeouts): string {
  return `tcp ${t.tcp}s tcp_fin ${t.tcpFin}s udp ${t.udp}s`;
}

/** The lines `ipvs apply` prints for a report: one per op, timeouts, FULLNAT, then the summary line. */
export function formatReport(report: ReconcileReport): string[] {
  const lines: string[] = [];
  if (report.dumpError !== undefined) lines.push(`error: ${report.dumpError}`);
  for (const o of report.ops) {
    const line = formatOp(o.op);
    if (o.status === 'failed' && o.error !== undefined) {
      const errno = Math.abs(o.error.errno);
      lines.push(`${line}  FAILED ${errnoName(errno)} (errno ${errno}): ${o.message ?? o.error.message}`);
    } else lines.push(line);
  }
  const t = report.timeouts;
  if (t.wanted !== undefined && t.before !== undefined && (t.status === 'set' || t.status === 'planned')) {
    lines.push(`~ timeouts ${timeoutsText(t.before)} -> ${timeoutsText({ tcp: t.wanted.tcp || t.before.tcp, tcpFin: t.wanted.tcpFin || t.before.tcpFin, udp: t.wanted.udp || t.before.udp })}`);
  } else if (t.status === 'failed') lines.push(`~ timeouts  FAILED: ${t.error ?? 'unknown error'}`);
  const f = report.fullnat;
  if (f !== undefined) {
    for (const s of f.sysctls) {
      if (s.status === 'set' || s.status === 'planned') lines.push(`~ sysctl ${s.name} ${s.from ?? '(none)'} -> ${s.to}`);
      else if (s.status === 'failed') lines.push(`~ sysctl ${s.name} -> ${s.to}  FAILED: ${s.error ?? 'unknown error'}`);
    }
    const table = `${FULLNAT_TABLE.family} ${FULLNAT_TABLE.name}`;
    if (f.action === 'replace') lines.push(`~ nft table ${table} (${f.rules} rule${f.rules === 1 ? '' : 's'}): ${f.reason}`);
    else if (f.action === 'delete') lines.push(`- nft table ${table}: ${f.reason}`);
    if (f.error !== undefined) lines.push(`fullnat FAILED: ${f.error}`);
  }
  const n = report.ops.length;
  const parts = [`${n} op${n === 1 ? '' : 's'}`];
  if (report.dryRun) parts.push('dry run: nothing applied');
  else parts.push(`${report.applied} applied`, `${report.failed} failed`);
  if (t.status !== 'unmanaged') parts.push(`timeouts ${t.status}`);
  if (f !== undefined) parts.push(`fullnat ${f.error !== undefined ? 'failed' : f.action === 'none' ? 'in line' : report.dryRun ? `would ${f.action}` : f.action === 'replace' ? 'replaced' : 'deleted'}`);
  if (report.dumpError !== undefined) parts.push('dump failed');
  lines.push(`ipvs apply: ${parts.join(', ')}`);
  return lines;
}

/** The owned-services store of the configuration's state directory (a dry run never writes it). */
async function openOwned(config: TandemConfig, dryRun: boolean, err: (s: string) => void): Promise<OwnedStore> {
  const { store, warning } = await FileOwnedStore.load(config.node.stateDir);
  if (warning !== undefined) err(`warning: ${warning}\n`);
  return dryRun ? new MemoryOwnedStore(store.keys()) : store;
}

/** Runs `tandem ipvs apply`; returns the exit code. */
export async function cmdIpvsApply(args: string[]): Promise<number> {
  const out = (s: string): void => void process.stdout.write(s);
  const err = (s: string): void => void process.stderr.write(s);
  let values: { config?: string; 'dry-run'?: boolean; verbose?: boolean };
  try {
    ({ values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' }, 'dry-run': { type: 'boolean' }, verbose: { type: 'boolean', short: 'v' } } }));
  } catch (e) {
    err(`tandem ipvs apply: ${messageOf(e)}\n${USAGE}\n`);
    return 2;
  }
  if (values.config === undefined) {
    err(`tandem ipvs apply: -c FILE is required\n${USAGE}\n`);
    return 2;
  }
  const dryRun = values['dry-run'] === true;
  let config: TandemConfig;
  try {
    config = loadConfig(values.config);
  } catch (e) {
    if (e instanceof ConfigError) {
      err(`${e.message}\n${e.issues.length} error${e.issues.length === 1 ? '' : 's'}\n`);
      return 1;
    }
    throw e;
  }
  const settings = ipvsSettings(config);
  const logger: Logger = values.verbose === true ? new JsonLogger((l) => process.stderr.write(l), 'debug', { node: config.node.name }) : new MemoryLogger();
  let client: IpvsClient;
  try {
    client = await createIpvsClient();
  } catch (e) {
    err(`tandem ipvs apply: cannot open IPVS: ${messageOf(e)} (needs root / CAP_NET_ADMIN and the ip_vs module)\n`);
    return 1;
  }
  try {
    const owned = await openOwned(config, dryRun, err);
    const reconciler = new Reconciler({
      client,
      clock: new SystemClock(),
      logger,
      desired: () => derive(config),
      owned,
      intervalMs: settings.reconcileIntervalMs,
      manage: settings.manage,
      timeouts: () => timeoutsFromConfig(settings.timeouts),
      fullnat: new FullnatReconciler({ host: createNftHost(), logger, desired: () => deriveFullnatRules(config) }),
    });
    const report = await reconciler.reconcileOnce({ dryRun });
    out(formatReport(report).map((l) => `${l}\n`).join(''));
    if (report.ownedWarning !== undefined) err(`warning: ${report.ownedWarning}\n`);
    return report.ok ? 0 : 1;
  } catch (e) {
    if (e instanceof TandemError) {
      err(`tandem ipvs apply: ${e.message}\n`);
      return 1;
    }
    throw e;
  } finally {
    client.close();
  }
}
