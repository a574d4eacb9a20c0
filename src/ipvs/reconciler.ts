/**
 * The IPVS reconciler (driver): dump the kernel's tables, diff them against the desired table, apply every op
 * in one pipelined batch, repeat on a timer so drift (hand-made ipvsadm changes, a flushed table) heals.
 *
 * - A kernel error answers one op, never the batch: it is logged with its errno and object, counted, and every
 *   other op still applies. Errors are explained where the kernel is terse (`twos` on Linux < 6.2 is ENOENT).
 * - Services not in the desired table are deleted only when tandem owns them (OwnedStore) or `manage: all`.
 * - Runs never overlap. `trigger()` asks for a run now; triggers during a run coalesce into one more run.
 * - Every run dumps: nothing is cached between runs, so after ENOBUFS or a failed dump the next run (soon:
 *   RECONCILE_RETRY_MS) starts from the kernel's truth.
 * - Typed events feed metrics: ops applied by kind, errors by errno, drift healed (ops a run needed although
 *   the desired table had not changed since the previous run, leaving out ops that had failed then).
 * - The same run also brings the connection timeouts (SET_CONFIG) and the FULLNAT table in line.
 */

import { release } from 'node:os';
import type { IpvsManageMode } from '../config/types.ts';
import type { Clock, TimerHandle } from '../lib/clock.ts';
import { ERROR_CODES, NetlinkError, TandemError, errnoName, messageOf } from '../lib/errors.ts';
import { TypedEmitter } from '../lib/events.ts';
import { RateLimitedLog, type Logger } from '../lib/log.ts';
import { diff } from './diff.ts';
import type { FullnatReport } from './fullnat.ts';
import {
  SVC_FLAGS,
  destKeyString,
  serviceKeyString,
  type Dest,
  type DestAttrs,
  type IpvsClient,
  type IpvsOp,
  type IpvsTable,
  type IpvsTimeouts,
  type ServiceAttrs,
  type ServiceKey,
} from './model.ts';
import type { OwnedStore } from './owned.ts';

/** Delay before re-dumping after a failed dump or ENOBUFS: soon enough to converge, slow enough not to spin. */
export const RECONCILE_RETRY_MS = 1000;
/** Identical op failures (same op, same errno) are logged at most once per this window; they recur every run. */
export const OP_ERROR_LOG_WINDOW_MS = 300_000;

const ENOENT = 2;
const EIO = 5;
const ESRCH = 3;
const EEXIST = 17;
const EINVAL = 22;
const ERANGE = 34;
const EAFNOSUPPORT = 97;
const ENOBUFS = 105;

/** Why a run happened. */
export type ReconcileReason = 'start' | 'periodic' | 'retry' | 'trigger' | 'once';

/** The kinds of IPVS ops, for per-kind counts. */
export type IpvsOpKind = IpvsOp['op'];

/** What happened to one op. */
export interface OpOutcome {
  op: IpvsOp;
  /** `planned`: a dry run (nothing sent). */
  status: 'applied' | 'failed' | 'planned';
  /** The kernel's error (failed ops). */
  error?: NetlinkError;
  /** A readable explanation of the failure (failed ops). */
  message?: string;
  /** True when this op counted as drift. */
  drift: boolean;
}

/** What the run did about the connection timeouts. */
export interface TimeoutsOutcome {
  status: 'unmanaged' | 'ok' | 'set' | 'planned' | 'failed' | 'skipped';
  before?: IpvsTimeouts;
  wanted?: IpvsTimeouts;
  error?: string;
}

/** The outcome of one run. */
export interface ReconcileReport {
  reason: ReconcileReason;
  dryRun: boolean;
  /** True when the dump worked, every op applied, and timeouts and FULLNAT are in line. */
  ok: boolean;
  /** Set when the desired table or the dump could not be had (nothing was applied then). */
  dumpError: string | undefined;
  ops: OpOutcome[];
  applied: number;
  failed: number;
  /** Ops counted as drift (see the module comment). */
  drift: number;
  timeouts: TimeoutsOutcome;
  /** Present when a FULLNAT reconciler is wired. */
  fullnat: FullnatReport | undefined;
  /** True when client.apply rejected the whole batch (every op is then failed). */
  batchFailed: boolean;
  /** Warning from persisting the owned set, if any. */
  ownedWarning: string | undefined;
  durationMs: number;
}

/** Events for metrics and logs. */
export type ReconcilerEvent =
  | { type: 'ipvsReconciled'; reason: ReconcileReason; ok: boolean; ops: number; applied: number; failed: number; drift: number; durationMs: number }
  | { type: 'ipvsOpsApplied'; kind: IpvsOpKind; count: number }
  | { type: 'ipvsOpFailed'; kind: IpvsOpKind; errno: number; errnoName: string; object: string; message: string }
  | { type: 'ipvsDriftHealed'; ops: number }
  | { type: 'ipvsDumpFailed'; errno: number | undefined; message: string }
  | { type: 'ipvsTimeoutsSet'; timeouts: IpvsTimeouts }
  | { type: 'fullnatChanged'; action: 'replace' | 'delete'; rules: number }
  | { type: 'fullnatFailed'; message: string };

/** The part of FullnatReconciler the reconciler uses. */
export interface FullnatSync {
  reconcileOnce(opts: { dryRun?: boolean }): Promise<FullnatReport>;
}

export interface ReconcilerDeps {
  client: IpvsClient;
  clock: Clock;
  logger: Logger;
  /** The desired table, asked for at the start of every run (derive(config, health, overrides)). */
  desired: () => IpvsTable;
  owned: OwnedStore;
  /** Period of the drift-healing runs. */
  intervalMs: number;
  manage: IpvsManageMode;
  /** Desired connection timeouts in seconds (0 = leave that one); undefined or absent = not managed. */
  timeouts?: () => IpvsTimeouts | undefined;
  /** FULLNAT rules, reconciled after the IPVS ops in the same run. */
  fullnat?: FullnatSync;
  /** The kernel release for messages (default: os.release()). */
  kernelRelease?: string;
}

// ---------------------------------------------------------------------------------------------------------
// Pure helpers: op text, error explanations, fingerprints

const FWD_TEXT = { masq: 'masq', local: 'local', tunnel: 'tunnel', droute: 'route', bypass: 'bypass' } as const;
const TUNNEL_FLAG_TEXT: Record<number, string> = { 0: 'nocsum', 1: 'csum', 2: 'remcsum' };

/** The service flags as ipvsadm names them for this scheduler (`sh-fallback,sh-port`, `ops`). */
function flagsText(scheduler: string, flags: number): string[] {
  const out: string[] = [];
  const named = scheduler === 'sh' || scheduler === 'mh';
  if (flags & SVC_FLAGS.SCHED1) out.push(named ? `${scheduler}-fallback` : 'flag-1');
  if (flags & SVC_FLAGS.SCHED2) out.push(named ? `${scheduler}-port` : 'flag-2');
  if (flags & SVC_FLAGS.SCHED3) out.push('flag-3');
  return out;
}

function netmaskText(key: ServiceKey, netmask: number): string {
  if (key.family === 6) return `/${netmask}`;
  return [netmask >>> 24, (netmask >>> 16) & 0xff, (netmask >>> 8) & 0xff, netmask & 0xff].join('.');
}

function serviceAttrsText(s: ServiceAttrs & { key: ServiceKey }): string {
  const parts = [s.scheduler];
  const f = flagsText(s.scheduler, s.flags);
  if (f.length > 0) parts.push(`flags ${f.join(',')}`);
  if (s.timeoutS > 0) {
    parts.push(`persistent ${s.timeoutS}s`);
    const full = s.key.family === 6 ? 128 : 0xffffffff;
    if (s.netmask !== full) parts.push(`mask ${netmaskText(s.key, s.netmask)}`);
  }
  if (s.peName !== '') parts.push(`pe ${s.peName}`);
  if (s.flags & SVC_FLAGS.ONEPACKET) parts.push('ops');
  return parts.join(' ');
}

function destAttrsText(d: DestAttrs): string {
  const parts: string[] = [FWD_TEXT[d.fwd]];
  if (d.fwd === 'tunnel') {
    parts[0] = `tunnel ${d.tunnel.type}${d.tunnel.type === 'gue' ? `:${d.tunnel.port}` : ''}`;
    if (d.tunnel.flags !== 0) parts.push(TUNNEL_FLAG_TEXT[d.tunnel.flags] ?? `tun-flags ${d.tunnel.flags}`);
  }
  parts.push(`w${d.weight}`);
  if (d.upperThreshold !== 0) parts.push(`upper ${d.upperThreshold}`);
  if (d.lowerThreshold !== 0) parts.push(`lower ${d.lowerThreshold}`);
  return parts.join(' ');
}

/**
 * One op as a stable line: `+ service TCP 10.99.0.100:80 wlc`, `~ dest TCP 10.99.0.100:80 -> 10.99.0.21:80
 * route w5`, `- service FWM 7`. `+` adds, `~` edits, `-` deletes.
 */
export function formatOp(op: IpvsOp): string {
  switch (op.op) {
    case 'addService':
      return `+ service ${serviceKeyString(op.service.key)} ${serviceAttrsText(op.service)}`;
    case 'editService':
      return `~ service ${serviceKeyString(op.service.key)} ${serviceAttrsText(op.service)}`;
    case 'delService':
      return `- service ${serviceKeyString(op.key)}`;
    case 'addDest':
      return `+ dest ${serviceKeyString(op.service)} -> ${destKeyString(op.dest)} ${destAttrsText(op.dest)}`;
    case 'editDest':
      return `~ dest ${serviceKeyString(op.service)} -> ${destKeyString(op.dest)} ${destAttrsText(op.dest)}`;
    case 'delDest':
      return `- dest ${serviceKeyString(op.service)} -> ${destKeyString(op.dest)}`;
  }
}

/** The service an op is about. */
export function opServiceKey(op: IpvsOp): ServiceKey {
  return op.op === 'delService' ? op.key : op.op === 'addService' || op.op === 'editService' ? op.service.key : op.service;
}

/** The object an op is about, as text (`TCP 10.99.0.100:80` or `TCP 10.99.0.100:80 -> 10.99.0.21:80`). */
export function opObject(op: IpvsOp): string {
  const svc = serviceKeyString(opServiceKey(op));
  return 'dest' in op ? `${svc} -> ${destKeyString(op.dest)}` : svc;
}

/** Context for explaining an op's failure. */
export interface ExplainContext {
  /** The running kernel's release, e.g. `6.1.0-27-amd64`. */
  kernelRelease: string;
  /** serviceKeyString of services whose add failed in the same batch. */
  failedServices: ReadonlySet<string>;
}

/** The major.minor of a kernel release string, or undefined. */
function kernelVersion(rel: string): [number, number] | undefined {
  const m = /^(\d+)\.(\d+)/.exec(rel);
  return m === null ? undefined : [Number(m[1]), Number(m[2])];
}

/** Schedulers that need a kernel newer than IPVS itself: name -> first Linux version with it. */
const SCHEDULER_SINCE: Readonly<Record<string, readonly [number, number]>> = { twos: [6, 2], mh: [4, 18] };

/** A readable explanation of why the kernel refused an op (the errno alone is terse). */
export function explainOpError(op: IpvsOp, err: NetlinkError, ctx: ExplainContext): string {
  const errno = Math.abs(err.errno);
  if ((op.op === 'addService' || op.op === 'editService') && errno === ENOENT) {
    const s = op.service.scheduler;
    const since = SCHEDULER_SINCE[s];
    const v = kernelVersion(ctx.kernelRelease);
    if (since !== undefined && (v === undefined || v[0] < since[0] || (v[0] === since[0] && v[1] < since[1]))) {
      return `scheduler ${s} needs Linux >= ${since[0]}.${since[1]} (this kernel is ${ctx.kernelRelease}); pick another scheduler for this service or upgrade the kernel`;
    }
    const pe = op.service.peName === '' ? '' : ` or persistence engine ${op.service.peName} (module ip_vs_pe_${op.service.peName})`;
    return `the kernel has no scheduler ${s} (module ip_vs_${s})${pe}; check \`modprobe ip_vs_${s}\``;
  }
  if ((op.op === 'addDest' || op.op === 'editDest' || op.op === 'delDest') && ctx.failedServices.has(serviceKeyString(op.service))) {
    return `its service ${serviceKeyString(op.service)} could not be created (see that error)`;
  }
  if ((op.op === 'addDest' || op.op === 'editDest') && errno === ERANGE) return 'weight or thresholds out of range (lower threshold above upper?)';
  if ((op.op === 'addDest' || op.op === 'editDest') && errno === EINVAL && op.dest.family !== opServiceKey(op).family) {
    return 'a real server of another address family than its service needs tunnel forwarding, and is refused while a sync daemon runs';
  }
  if (errno === EAFNOSUPPORT) return 'this kernel has no IPv6 support in IPVS';
  if (errno === EEXIST) return 'it exists already (changed behind tandem\'s back during the run); the next run reconciles it';
  if (errno === ESRCH || errno === ENOENT) return 'it does not exist (changed behind tandem\'s back during the run); the next run reconciles it';
  if (errno === ENOBUFS) return 'the netlink socket ran out of buffer space; the next run re-dumps and retries';
  return err.message;
}

/** A stable text of a desired table (service and dest order do not matter), to tell whether it changed. */
export function tableFingerprint(t: IpvsTable): string {
  const services = [...t.services]
    .map((s) => ({
      key: serviceKeyString(s.key),
      attrs: [s.scheduler, s.flags, s.timeoutS, s.netmask, s.peName],
      dests: [...s.dests]
        .map((d: Dest) => [destKeyString(d), d.fwd, d.weight, d.upperThreshold, d.lowerThreshold, d.tunnel.type, d.tunnel.port, d.tunnel.flags] as const)
        .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)),
    }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return JSON.stringify(services);
}


/** The identity of an op including its attributes (two runs that need the same change produce equal keys). */
function opIdentity(op: IpvsOp): string {
  return JSON.stringify(op);
}

function timeoutsNeedSet(wanted: IpvsTimeouts, actual: IpvsTimeouts): boolean {
  return (wanted.tcp !== 0 && wanted.tcp !== actual.tcp) || (wanted.tcpFin !== 0 && wanted.tcpFin !== actual.tcpFin) || (wanted.udp !== 0 && wanted.udp !== actual.udp);
}

// ---------------------------------------------------------------------------------------------------------
// The driver

/** Reconciles the kernel's IPVS tables with the desired table, once or periodically. */
export class Reconciler {
  readonly events = new TypedEmitter<ReconcilerEvent>();
  private readonly log: Logger;
  private readonly opErrorLog: RateLimitedLog;
  private readonly kernelRelease: string;
  /** Runs are chained here so they never overlap. */
  private chain: Promise<unknown> = Promise.resolve();
  private timer: TimerHandle | undefined;
  private started = false;
  private stopped = false;
  /** A loop run is queued and has not started yet (further triggers coalesce into it). */
  private queued = false;
  /** Fingerprint of the desired table of the last run that dumped successfully (not dry runs). */
  private lastFingerprint: string | undefined;
  /** Ops that failed in that run (they recur without being drift). */
  private lastFailed = new Set<string>();

  constructor(private readonly deps: ReconcilerDeps) {
    this.log = deps.logger.child({ component: 'ipvs' });
    this.opErrorLog = new RateLimitedLog(this.log, () => deps.clock.now(), OP_ERROR_LOG_WINDOW_MS);
    this.kernelRelease = deps.kernelRelease ?? release();
  }

  /** Runs once now (after any run in progress) and returns what it did. `dryRun`: dump and diff, change nothing. */
  reconcileOnce(opts: { dryRun?: boolean } = {}): Promise<ReconcileReport> {
    return this.exclusive(() => this.run('once', opts.dryRun === true));
  }

  /** Starts the periodic runs: one at once, then one every intervalMs after the previous run ends. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.request('start');
  }

  /** Asks for a run as soon as possible; triggers while a run is queued coalesce into it. */
  trigger(): void {
    this.request('trigger');
  }

  /** Stops the periodic runs and waits for a run in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.cancelTimer();
    await this.chain.catch(() => undefined);
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.chain.then(fn, fn);
    this.chain = p.catch(() => undefined);
    return p;
  }

  private cancelTimer(): void {
    if (this.timer !== undefined) {
      this.deps.clock.clearTimer(this.timer);
      this.timer = undefined;
    }
  }

  private request(reason: ReconcileReason): void {
    if (this.stopped || this.queued) return;
    this.queued = true;
    this.cancelTimer();
    void this.exclusive(async () => {
      this.queued = false;
      if (this.stopped) return;
      const report = await this.run(reason, false);
      this.arm(report);
    });
  }

  /** Arms the next periodic run: soon after a dump failure or ENOBUFS, else after the interval. */
  private arm(report: ReconcileReport): void {
    if (!this.started || this.stopped) return;
    this.cancelTimer();
    const enobufs = report.ops.some((o) => o.error !== undefined && Math.abs(o.error.errno) === ENOBUFS);
    const retry = report.dumpError !== undefined || enobufs || report.batchFailed;
    const delay = retry ? Math.min(RECONCILE_RETRY_MS, this.deps.intervalMs) : this.deps.intervalMs;
    this.timer = this.deps.clock.setTimer(delay, () => {
      this.timer = undefined;
      this.request(retry ? 'retry' : 'periodic');
    });
  }

  /** One run. Never throws: every failure is in the report. */
  private async run(reason: ReconcileReason, dryRun: boolean): Promise<ReconcileReport> {
    const { client, clock, owned } = this.deps;
    const t0 = clock.now();
    const report: ReconcileReport = {
      reason,
      dryRun,
      ok: false,
      dumpError: undefined,
      ops: [],
      applied: 0,
      failed: 0,
      drift: 0,
      timeouts: { status: 'unmanaged' },
      fullnat: undefined,
      batchFailed: false,
      ownedWarning: undefined,
      durationMs: 0,
    };
    const finish = (): ReconcileReport => {
      report.durationMs = clock.now() - t0;
      const fullnatOk = report.fullnat === undefined || report.fullnat.error === undefined;
      report.ok = report.dumpError === undefined && report.failed === 0 && report.timeouts.status !== 'failed' && fullnatOk;
      this.events.emit({
        type: 'ipvsReconciled',
        reason,
        ok: report.ok,
        ops: report.ops.length,
        applied: report.applied,
        failed: report.failed,
        drift: report.drift,
        durationMs: report.durationMs,
      });
      return report;
    };

    let desired: IpvsTable;
    let actual: IpvsTable;
    try {
      desired = this.deps.desired();
    } catch (e) {
      report.dumpError = `the desired IPVS table could not be derived: ${messageOf(e)}`;
      this.log.log('error', 'desired IPVS table unavailable', { error: messageOf(e) });
      return finish();
    }
    try {
      actual = await client.dump();
    } catch (e) {
      const errno = e instanceof NetlinkError ? e.errno : undefined;
      report.dumpError = `IPVS dump failed: ${messageOf(e)}`;
      this.events.emit({ type: 'ipvsDumpFailed', errno, message: messageOf(e) });
      this.log.log('warn', 'IPVS dump failed; the next run dumps again', { error: messageOf(e), errno, reason });
      return finish();
    }

    const manageAll = this.deps.manage === 'all';
    const ops = diff(desired, actual, { mayDelete: (k) => manageAll || owned.has(k) });
    const fingerprint = tableFingerprint(desired);
    const driftPossible = !dryRun && this.lastFingerprint !== undefined && this.lastFingerprint === fingerprint;
    const isDrift = (op: IpvsOp): boolean => driftPossible && !this.lastFailed.has(opIdentity(op));

    if (dryRun) report.ops = ops.map((op) => ({ op, status: 'planned', drift: false }));
    else {
      await this.applyBatch(ops, desired, actual, isDrift, report);
      this.lastFingerprint = fingerprint;
    }

    report.timeouts = await this.reconcileTimeouts(dryRun);
    if (this.deps.fullnat !== undefined) {
      const fr = await this.deps.fullnat.reconcileOnce({ dryRun });
      report.fullnat = fr;
      if (fr.error !== undefined) {
        this.events.emit({ type: 'fullnatFailed', message: fr.error });
        this.log.log('error', 'FULLNAT rules not in line', { error: fr.error });
      } else if (fr.action !== 'none' && !dryRun) this.events.emit({ type: 'fullnatChanged', action: fr.action, rules: fr.rules });
    }
    return finish();
  }

  /**
   * Applies one batch and records the outcome in `report`: per-op results, events, logs, the owned set (owned
   * before the add is sent; dropped again when the add failed or the service was deleted).
   */
  private async applyBatch(ops: IpvsOp[], desired: IpvsTable, actual: IpvsTable, isDrift: (op: IpvsOp) => boolean, report: ReconcileReport): Promise<void> {
    const { client, owned } = this.deps;
    const reason = report.reason;
    const ownedBefore = new Set(owned.keys());
    // Own what is about to be created before creating it: a crash after the kernel add must not leave a
    // service tandem made but does not know it owns.
    for (const op of ops) if (op.op === 'addService') owned.add(op.service.key);
    // Services the configuration names that exist already are managed from now on (adopted).
    const actualKeys = new Set(actual.services.map((s) => serviceKeyString(s.key)));
    for (const s of desired.services) if (actualKeys.has(serviceKeyString(s.key))) owned.add(s.key);
    const preWarning = ops.some((o) => o.op === 'addService') ? await owned.save() : undefined;

    let results: Array<{ ok: true } | { ok: false; error: NetlinkError }>;
    let batchError: string | undefined;
    if (ops.length === 0) results = [];
    else {
      try {
        results = await client.apply(ops);
      } catch (e) {
        // The batch as a whole failed (a socket error, or a request the client refused to encode): no op is
        // known to have applied. The next run (soon) re-dumps.
        batchError = `the batch of ${ops.length} ops failed as a whole, none is known to have applied: ${messageOf(e)}`;
        const err = e instanceof NetlinkError ? e : new NetlinkError(e instanceof TandemError && e.code === ERROR_CODES.codec ? EINVAL : EIO, 'apply', `${ops.length} ops`, { cause: e });
        results = ops.map(() => ({ ok: false as const, error: err }));
        report.batchFailed = true;
        this.log.log('error', 'IPVS batch failed', { error: messageOf(e), ops: ops.length });
      }
    }
    const failedServices = new Set<string>();
    ops.forEach((op, i) => {
      const r = results[i];
      if (op.op === 'addService' && (r === undefined || !r.ok)) failedServices.add(serviceKeyString(op.service.key));
    });
    const appliedByKind = new Map<IpvsOpKind, number>();
    const failedNow = new Set<string>();
    ops.forEach((op, i) => {
      const r = results[i] ?? { ok: false as const, error: new NetlinkError(ENOBUFS, op.op, opObject(op)) };
      const drift = isDrift(op);
      if (r.ok) {
        report.applied++;
        appliedByKind.set(op.op, (appliedByKind.get(op.op) ?? 0) + 1);
        if (op.op === 'delService') owned.delete(op.key);
        report.ops.push({ op, status: 'applied', drift });
        if (drift) report.drift++;
        return;
      }
      report.failed++;
      failedNow.add(opIdentity(op));
      if (op.op === 'addService' && !ownedBefore.has(serviceKeyString(op.service.key))) owned.delete(op.service.key);
      const message = batchError ?? explainOpError(op, r.error, { kernelRelease: this.kernelRelease, failedServices });
      report.ops.push({ op, status: 'failed', error: r.error, message, drift });
      const errno = Math.abs(r.error.errno);
      this.events.emit({ type: 'ipvsOpFailed', kind: op.op, errno, errnoName: errnoName(errno), object: opObject(op), message });
      this.opErrorLog.log(`${opIdentity(op)}|${errno}`, 'error', 'IPVS op failed', {
        op: formatOp(op),
        object: opObject(op),
        errno,
        error: errnoName(errno),
        message,
      });
    });
    for (const [kind, count] of appliedByKind) this.events.emit({ type: 'ipvsOpsApplied', kind, count });
    if (report.drift > 0) {
      this.events.emit({ type: 'ipvsDriftHealed', ops: report.drift });
      this.log.log('warn', 'IPVS drift healed: the kernel was changed behind tandem', {
        ops: report.ops.filter((o) => o.drift && o.status === 'applied').map((o) => formatOp(o.op)),
      });
    }
    if (ops.length > 0) this.log.log('info', 'IPVS reconciled', { reason, ops: ops.length, applied: report.applied, failed: report.failed, drift: report.drift });
    const postWarning = await owned.save();
    report.ownedWarning = postWarning ?? preWarning;
    if (report.ownedWarning !== undefined) this.log.log('warn', 'owned IPVS services not persisted', { warning: report.ownedWarning });
    this.lastFailed = failedNow;
  }

  private async reconcileTimeouts(dryRun: boolean): Promise<TimeoutsOutcome> {
    const wanted = this.deps.timeouts?.();
    if (wanted === undefined) return { status: 'unmanaged' };
    let before: IpvsTimeouts;
    try {
      before = await this.deps.client.getTimeouts();
    } catch (e) {
      this.log.log('warn', 'cannot read IPVS timeouts', { error: messageOf(e) });
      return { status: 'failed', wanted, error: messageOf(e) };
    }
    if (!timeoutsNeedSet(wanted, before)) return { status: 'ok', before, wanted };
    if (dryRun) return { status: 'planned', before, wanted };
    try {
      await this.deps.client.setTimeouts(wanted);
      this.events.emit({ type: 'ipvsTimeoutsSet', timeouts: wanted });
      this.log.log('info', 'IPVS timeouts set', { before, wanted });
      return { status: 'set', before, wanted };
    } catch (e) {
      this.log.log('error', 'cannot set IPVS timeouts', { error: messageOf(e), wanted });
      return { status: 'failed', before, wanted, error: messageOf(e) };
    }
  }
}

/** The desired timeouts (seconds, 0 = leave) of the `ipvs.timeouts` configuration, or undefined when unset. */
export function timeoutsFromConfig(t: { tcpMs: number | undefined; tcpFinMs: number | undefined; udpMs: number | undefined } | undefined): IpvsTimeouts | undefined {
  if (t === undefined) return undefined;
  return { tcp: (t.tcpMs ?? 0) / 1000, tcpFin: (t.tcpFinMs ?? 0) / 1000, udp: (t.udpMs ?? 0) / 1000 };
}
