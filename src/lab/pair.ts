/**
 * A director pair in network namespaces: two `tandem run` daemons (dirA, dirB) and a client on one bridge.
 * Used by `tandem lab`, the netns test tier and the failover benchmark. It writes the configurations and a
 * shared key, starts and crashes daemons, and reads their JSON logs to time takeovers.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ERROR_CODES, TandemError } from '../lib/errors.ts';
import { onJsonLines } from './json-lines.ts';
import { BridgeLab, run } from './netns.ts';

/** The launcher of this checkout. */
export const TANDEM_BIN = resolve(fileURLToPath(new URL('../../bin/tandem', import.meta.url)));

export const DIRECTORS = ['dirA', 'dirB'] as const;
export type DirectorName = (typeof DIRECTORS)[number];

export interface PairOptions {
  /** Namespace name prefix; unique per concurrently running pair (<= 6 characters). */
  prefix: string;
  /** First three octets of the lab subnet, e.g. `10.99.0`. */
  subnet?: string;
  advertIntervalMs?: number;
  priorities?: Record<DirectorName, number>;
  preempt?: Record<DirectorName, boolean>;
  preemptDelayMs?: number;
  /** Election transport; default unicast. */
  mode?: 'unicast' | 'multicast';
  /** Sign adverts (enforce mode) with a shared key; default true. */
  auth?: boolean;
  /** GARP settings for both directors. */
  garp?: { repeat: number; intervalMs: number };
  /** Further unicast peers per director (e.g. the client, to capture real adverts). */
  extraPeers?: Partial<Record<DirectorName, string[]>>;
  /** Metrics endpoint per director, host:port inside its namespace. */
  metricsListen?: Partial<Record<DirectorName, string>>;
}

/** One JSON log record of a daemon, with the harness's own receive time. */
export interface LogRecord {
  msg: string;
  level: string;
  instance?: string;
  to?: string;
  from?: string;
  reason?: string;
  wall_ms?: number;
  [k: string]: unknown;
}

/** Wall-clock ms with sub-ms resolution: same formula the daemons log as `wall_ms`. */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

/** A running `tandem run` process and its parsed log. */
export class DaemonProcess {
  readonly records: LogRecord[] = [];
  readonly stderr: string[] = [];
  private waiters: Array<{ pred: (r: LogRecord) => boolean; resolve: (r: LogRecord) => void; from: number }> = [];
  readonly exited: Promise<number | null>;

  constructor(readonly name: DirectorName, readonly child: ChildProcess) {
    onJsonLines(child.stdout, (value) => {
      const rec = value as LogRecord;
      this.records.push(rec);
      const idx = this.records.length - 1;
      this.waiters = this.waiters.filter((w) => {
        if (idx >= w.from && w.pred(rec)) {
          w.resolve(rec);
          return false;
        }
        return true;
      });
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => this.stderr.push(chunk));
    this.exited = new Promise((res) => child.once('exit', (code) => res(code)));
  }

  /** Resolves with the first record at index >= `from` matching `pred`; rejects after `timeoutMs`. */
  waitFor(pred: (r: LogRecord) => boolean, timeoutMs: number, from = 0): Promise<LogRecord> {
    const found = this.records.slice(from).find(pred);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolveP, reject) => {
      const w = { pred, resolve: (r: LogRecord) => { clearTimeout(t); resolveP(r); }, from };
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new TandemError(ERROR_CODES.lab, `${this.name}: no matching log record within ${timeoutMs} ms; stderr: ${this.stderr.join('').slice(-2000)}; last records: ${JSON.stringify(this.records.slice(-5))}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }
}

const isTransition = (to: string) => (r: LogRecord) => r.msg === 'transition' && r.to === to;
const isVipAdded = (r: LogRecord) => r.msg === 'vip added';

/** Two directors and a client on one bridge. */
export class DirectorPair {
  readonly daemons = new Map<DirectorName, DaemonProcess>();
  readonly vip: string;
  readonly advertIntervalMs: number;

  private constructor(
    readonly lab: BridgeLab,
    readonly workDir: string,
    readonly opts: Required<Omit<PairOptions, 'subnet'>> & { subnet: string },
  ) {
    this.vip = `${opts.subnet}.100`;
    this.advertIntervalMs = opts.advertIntervalMs;
  }

  static async create(o: PairOptions): Promise<DirectorPair> {
    const opts = {
      subnet: o.subnet ?? '10.99.0',
      advertIntervalMs: o.advertIntervalMs ?? 1000,
      priorities: o.priorities ?? { dirA: 150, dirB: 100 },
      preempt: o.preempt ?? { dirA: true, dirB: true },
      preemptDelayMs: o.preemptDelayMs ?? 0,
      auth: o.auth ?? true,
      garp: o.garp ?? { repeat: 5, intervalMs: 200 },
      extraPeers: o.extraPeers ?? {},
      mode: o.mode ?? 'unicast',
      metricsListen: o.metricsListen ?? {},
      prefix: o.prefix,
    };
    const lab = await BridgeLab.create({
      prefix: o.prefix,
      hosts: [
        { name: 'dirA', cidr: `${opts.subnet}.2/24` },
        { name: 'dirB', cidr: `${opts.subnet}.3/24` },
        { name: 'client', cidr: `${opts.subnet}.10/24` },
      ],
    });
    const workDir = mkdtempSync(join(tmpdir(), `tandem-${o.prefix}-`));
    const pair = new DirectorPair(lab, workDir, opts);
    pair.writeFiles();
    return pair;
  }

  /** Path of a director's configuration file. */
  configPath(name: DirectorName): string {
    return join(this.workDir, `${name}.yaml`);
  }

  /** The VRRP key shared by both directors. */
  get keyPath(): string {
    return join(this.workDir, 'vrrp.key');
  }

  private writeFiles(): void {
    writeFileSync(this.keyPath, `1 ${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    for (const name of DIRECTORS) {
      const self = this.lab.host(name).address;
      const peers = [this.lab.host(name === 'dirA' ? 'dirB' : 'dirA').address, ...(this.opts.extraPeers[name] ?? [])];
      const metrics = this.opts.metricsListen[name];
      const state = join(this.workDir, `state-${name}`);
      mkdirSync(state, { recursive: true, mode: 0o700 });
      const o = this.opts;
      writeFileSync(
        this.configPath(name),
        [
          `node: { name: ${name}, interface: eth0, state_dir: ${state} }`,
          `vrrp:`,
          this.opts.mode === 'unicast'
            ? `  transport: { mode: unicast, port: 5112, source: ${self}, peers: [${peers.join(', ')}] }`
            : `  transport: { mode: multicast, port: 5112, group: 224.0.0.18, source: ${self} }`,
          ...(o.auth ? [`  auth: { key_file: ${this.keyPath}, mode: enforce }`] : []),
          `  instances:`,
          `    - name: VI_1`,
          `      vrid: 51`,
          `      priority: ${o.priorities[name]}`,
          `      advert_interval: ${o.advertIntervalMs}ms`,
          `      preempt: ${o.preempt[name]}`,
          `      preempt_delay: ${o.preemptDelayMs}ms`,
          `      vips: [${this.vip}/32]`,
          `      garp: { repeat: ${o.garp.repeat}, interval: ${o.garp.intervalMs}ms }`,
          ...(metrics === undefined ? [] : [`metrics: { listen: "${metrics}" }`]),
          '',
        ].join('\n'),
      );
    }
  }

  /**
   * Starts a director's daemon in its namespace; `realtime` runs its event loop with SCHED_FIFO priority 50,
   * as the shipped systemd unit does (--realtime-priority 50).
   */
  start(name: DirectorName, extraArgs: string[] = [], realtime = false): DaemonProcess {
    const existing = this.daemons.get(name);
    if (existing !== undefined && existing.running) throw new TandemError(ERROR_CODES.lab, `${name} is already running`);
    const argv = [TANDEM_BIN, 'run', '-c', this.configPath(name), '--exit-with-stdin', ...(realtime ? ['--realtime-priority', '50'] : []), ...extraArgs];
    // stdin is a pipe held by this process: if the harness dies, the daemon sees EOF and stops.
    const child = this.lab.spawn(name, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    const d = new DaemonProcess(name, child);
    this.daemons.set(name, d);
    return d;
  }

  daemon(name: DirectorName): DaemonProcess {
    const d = this.daemons.get(name);
    if (d === undefined) throw new TandemError(ERROR_CODES.lab, `${name} was never started`);
    return d;
  }

  /** Waits until a daemon has logged `started`. */
  async waitStarted(name: DirectorName, timeoutMs = 15_000): Promise<void> {
    await this.daemon(name).waitFor((r) => r.msg === 'started', timeoutMs);
  }

  /** Waits until exactly one director holds the VIP and returns it. */
  async waitForSingleOwner(timeoutMs: number): Promise<DirectorName> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const owners = await this.vipOwners();
      if (owners.length === 1 && owners[0] !== undefined) return owners[0];
      if (Date.now() > deadline) throw new TandemError(ERROR_CODES.lab, `expected one VIP owner, found [${owners.join(', ')}] after ${timeoutMs} ms`);
      await sleep(20);
    }
  }

  /** Directors whose eth0 holds the VIP now. */
  async vipOwners(): Promise<DirectorName[]> {
    const out: DirectorName[] = [];
    for (const name of DIRECTORS) if ((await this.lab.addresses(name)).includes(`${this.vip}/32`)) out.push(name);
    return out;
  }

  /**
   * A machine crash: kill -9 of the daemon, then its link goes down and the VIP the killed process left on its
   * interface is dropped (a dead machine neither sends, answers nor holds addresses). Returns the kill time.
   */
  async crash(name: DirectorName): Promise<number> {
    const d = this.daemon(name);
    const at = wallNow();
    process.kill(d.pid, 'SIGKILL');
    const ns = this.lab.host(name).ns;
    await run(['ip', '-n', ns, 'link', 'set', 'eth0', 'down']);
    await run(['ip', '-n', ns, 'addr', 'del', `${this.vip}/32`, 'dev', 'eth0'], { allowFail: true });
    await d.exited;
    return at;
  }

  /** Brings a crashed director's machine back (link up); its daemon is started separately. */
  async revive(name: DirectorName): Promise<void> {
    await run(['ip', '-n', this.lab.host(name).ns, 'link', 'set', 'eth0', 'up']);
  }

  /** SIGTERM (graceful stop); returns the wall time it was sent. */
  terminate(name: DirectorName): number {
    const at = wallNow();
    process.kill(this.daemon(name).pid, 'SIGTERM');
    return at;
  }

  /**
   * Waits for `name` to become master after index `fromRecord` of its log and returns when (wall ms) it
   * logged the transition and when the VIP was in the kernel.
   */
  async waitMaster(name: DirectorName, timeoutMs: number, fromRecord = 0): Promise<{ transitionAt: number; vipAt: number }> {
    const d = this.daemon(name);
    const tr = await d.waitFor(isTransition('MASTER'), timeoutMs, fromRecord);
    const idx = d.records.indexOf(tr);
    const vip = await d.waitFor(isVipAdded, timeoutMs, idx);
    return { transitionAt: tr.wall_ms ?? 0, vipAt: vip.wall_ms ?? 0 };
  }

  /** Makes the client resolve the VIP (one UDP datagram to the discard port) and returns the MAC it learned. */
  async clientLearnVip(timeoutMs = 3000): Promise<string> {
    await this.lab.exec('client', ['bash', '-c', `echo probe > /dev/udp/${this.vip}/9`], { allowFail: true });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const n = await this.lab.neighbour('client', this.vip);
      if (n?.lladdr !== undefined && !n.state.includes('INCOMPLETE')) return n.lladdr;
      if (Date.now() > deadline) throw new TandemError(ERROR_CODES.lab, `client did not resolve ${this.vip}: ${JSON.stringify(n)}`);
      await sleep(20);
    }
  }

  /** The MAC the client's neighbour table holds for the VIP now. */
  async clientVipMac(): Promise<string | undefined> {
    return (await this.lab.neighbour('client', this.vip))?.lladdr;
  }

  /** Stops every daemon (SIGKILL after a grace period) and removes the namespaces and files. */
  async destroy(): Promise<void> {
    for (const d of this.daemons.values()) {
      if (!d.running) continue;
      process.kill(d.pid, 'SIGTERM');
      const t = setTimeout(() => d.running && process.kill(d.pid, 'SIGKILL'), 3000);
      await d.exited;
      clearTimeout(t);
    }
    await this.lab.destroy();
    rmSync(this.workDir, { recursive: true, force: true });
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Spawns a shell command and resolves with its exit code (for load generators in the benchmark). */
export function spawnShell(cmd: string): ChildProcess {
  return spawn('bash', ['-c', cmd], { stdio: 'ignore' });
}
