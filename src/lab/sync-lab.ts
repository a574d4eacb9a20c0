/**
 * The connection-sync lab: two directors running `tandem run` with a `sync` section, two DR real servers and a
 * client, each in its own network namespace on one bridge. IPVS is per network namespace (its table, its
 * sync threads), so each director namespace is a separate IPVS machine; a director "crashes" by losing its
 * link, having every process killed with SIGKILL and its namespace deleted, which throws away its whole
 * kernel state (VIP, IPVS table, sync threads) as a power loss would, and comes back as an empty machine.
 * Needs root and a kernel with IPVS (the vm tier's VM).
 *
 * ```
 *   cli 10.99.0.10 --+                      +-- rs1 10.99.0.21, rs2 10.99.0.22  DR: VIP on lo, echo server :80
 *   dirA 10.99.0.2 --+-- br0 (bridge ns) ---+
 *   dirB 10.99.0.3 --+                      +-- rs3 10.99.1.31, rs4 10.99.1.32  NAT: echo server :81,
 *     (+ 10.99.1.2/.3)                                                default via 10.99.1.1 (a VIP)
 *   VIP 10.99.0.100: :80 DR and :81 NAT, rr; the master also holds 10.99.1.1, the NAT real servers' gateway
 *   sync 224.0.0.81:8848 syncid 51 on eth0; resync over tcp :5113
 * ```
 */

import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ERROR_CODES, TandemError } from '../lib/errors.ts';
import { writeKeyPairFiles } from '../sync/index.ts';
import { onJsonLines } from './json-lines.ts';
import { BridgeLab } from './netns.ts';
import { DaemonProcess, TANDEM_BIN, type DirectorName, type LogRecord } from './pair.ts';

const FIXTURES = resolve(fileURLToPath(new URL('../../test/fixtures/sync', import.meta.url)));
const PYTHON = '/usr/bin/python3';

export const SYNC_LAB_VIP = '10.99.0.100';
/** The DR service's port (and the lab's default). */
export const SYNC_LAB_PORT = 80;
/** The NAT service's port. */
export const SYNC_LAB_NAT_PORT = 81;
/** The NAT real servers' gateway: a second VIP, held by the master. */
export const NAT_GATEWAY = '10.99.1.1';

export interface SyncLabOptions {
  prefix: string;
  priorities?: Record<DirectorName, number>;
  advertIntervalMs?: number;
  repairInterval?: string;
  resyncTimeout?: string;
  /** Drop this percentage of every director's outgoing sync multicast (netem), also after a restore; 0 = none. */
  syncLossPercent?: number;
}

/** A director's parsed JSON log (a `tandem run` process or a VM running one). */
export interface DirectorLog {
  readonly records: LogRecord[];
  waitFor(pred: (r: LogRecord) => boolean, timeoutMs: number, from?: number): Promise<LogRecord>;
}

/** What the sync failover scenario needs from a lab (directors in namespaces, or in VMs). */
export interface SyncLabLike {
  start(name: DirectorName): DirectorLog;
  crash(name: DirectorName): Promise<void>;
  restore(name: DirectorName): Promise<void>;
  /** The director's connection table as `ipvsadm -Lnc` prints it ('' when it cannot be read). */
  connections(name: DirectorName): Promise<string>;
  startClient(busyIntervalS?: number, idleIntervalS?: number, port?: number): LabClient;
  /** Opens up to `n` idle connections to VIP:`port` from the client, one every `gapS` s, and holds them. */
  holdConnections(n: number, gapS: number, port?: number): HeldConnections;
  /** `name`'s outgoing sync datagrams that went through the loss emulation: passed on and dropped. */
  syncLoss(name: DirectorName): Promise<{ sent: number; dropped: number }>;
  destroy(): Promise<void>;
}

/**
 * Starts a lab real server in its namespace: DR (VIP on lo, arp_ignore/arp_announce) on :80, or NAT (default
 * route via the gateway VIP) on :81; resolves when its echo server listens.
 */
export async function startLabRealServer(lab: BridgeLab, name: string, mode: 'dr' | 'nat'): Promise<ChildProcess> {
  if (mode === 'dr') {
    for (const kv of ['net.ipv4.conf.all.arp_ignore=1', 'net.ipv4.conf.all.arp_announce=2', 'net.ipv4.conf.eth0.arp_ignore=1', 'net.ipv4.conf.eth0.arp_announce=2']) {
      await lab.exec(name, ['sysctl', '-qw', kv]);
    }
    await lab.exec(name, ['ip', 'addr', 'add', `${SYNC_LAB_VIP}/32`, 'dev', 'lo']);
  } else {
    // Replies must go back through the director that un-NATs them: the gateway is the master's second VIP.
    await lab.exec(name, ['ip', 'route', 'add', 'default', 'via', NAT_GATEWAY]);
  }
  const port = mode === 'dr' ? SYNC_LAB_PORT : SYNC_LAB_NAT_PORT;
  const child = lab.spawn(name, [PYTHON, '-u', join(FIXTURES, 'echo_server.py'), name, String(port)]);
  await new Promise<void>((resolveP, reject) => {
    const t = setTimeout(() => reject(new TandemError(ERROR_CODES.lab, `${name}: echo server did not start`)), 30_000);
    child.stdout?.once('data', () => {
      clearTimeout(t);
      resolveP();
    });
  });
  return child;
}

/** Starts the lab client in the `cli` namespace: a busy and an idle connection to VIP:`port`. */
export function startLabClient(lab: BridgeLab, busyIntervalS: number, idleIntervalS: number, port: number): LabClient {
  const child = lab.spawn('cli', [PYTHON, '-u', join(FIXTURES, 'conn_client.py'), SYNC_LAB_VIP, String(port), String(busyIntervalS), String(idleIntervalS)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  return new LabClient(child);
}

/** Starts conn_holder.py in the lab's `cli` namespace: up to `n` connections to VIP:`port`, one every `gapS` s. */
export function startLabHolder(lab: BridgeLab, n: number, gapS: number, port: number): HeldConnections {
  const child = lab.spawn('cli', [PYTHON, '-u', join(FIXTURES, 'conn_holder.py'), SYNC_LAB_VIP, String(port), String(n), String(gapS)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  return new HeldConnections(child);
}

/** The IPVS services of a lab director as ipvsadm commands (DR :80 to rs1/rs2, NAT :81 to rs3/rs4). */
export function labDirectorIpvsCommands(): string[][] {
  const dr = `${SYNC_LAB_VIP}:${SYNC_LAB_PORT}`;
  const nat = `${SYNC_LAB_VIP}:${SYNC_LAB_NAT_PORT}`;
  return [
    ['ipvsadm', '-A', '-t', dr, '-s', 'rr'],
    ...['10.99.0.21', '10.99.0.22'].map((rs) => ['ipvsadm', '-a', '-t', dr, '-r', `${rs}:${SYNC_LAB_PORT}`, '-g']),
    ['ipvsadm', '-A', '-t', nat, '-s', 'rr'],
    ...['10.99.1.31', '10.99.1.32'].map((rs) => ['ipvsadm', '-a', '-t', nat, '-r', `${rs}:${SYNC_LAB_NAT_PORT}`, '-m']),
  ];
}

/** A director's address on the NAT real servers' subnet. */
export const LAB_INNER_ADDRESS: Record<DirectorName, string> = { dirA: '10.99.1.2/24', dirB: '10.99.1.3/24' };

/** What the netem qdisc 30: did, from `tc -s qdisc show`: packets it passed on and packets it dropped. */
export function netemCounts(tcOutput: string): { sent: number; dropped: number } {
  const m = /qdisc netem 30:[^\n]*\n\s*Sent \d+ bytes (\d+) pkt \(dropped (\d+)/.exec(tcOutput);
  return m === null ? { sent: 0, dropped: 0 } : { sent: Number(m[1]), dropped: Number(m[2]) };
}

/** The tc commands that drop `percent`% of the UDP datagrams to port 8848 leaving `dev` (and nothing else). */
export function syncLossCommands(dev: string, percent: number, srcAddress?: string): string[][] {
  return [
    ['qdisc', 'add', 'dev', dev, 'root', 'handle', '1:', 'prio'],
    ['qdisc', 'add', 'dev', dev, 'parent', '1:3', 'handle', '30:', 'netem', 'loss', `${percent}%`],
    ['filter', 'add', 'dev', dev, 'parent', '1:0', 'protocol', 'ip', 'prio', '1', 'u32', 'match', 'ip', 'protocol', '17', '0xff', 'match', 'ip', 'dport', '8848', '0xffff',
      ...(srcAddress !== undefined ? ['match', 'ip', 'src', `${srcAddress}/32`] : []), 'flowid', '1:3'],
  ];
}

/** The client ports of the connections from the lab client to VIP:`port` in an `ipvsadm -Lnc` table. */
export function clientPortsIn(table: string, port = SYNC_LAB_PORT): Set<number> {
  const s = new Set<number>();
  for (const m of table.matchAll(/10\.99\.0\.10:(\d+)\s+10\.99\.0\.100:(\d+)/g)) if (Number(m[2]) === port) s.add(Number(m[1]));
  return s;
}

/** One JSON line of the lab client (test/fixtures/sync/conn_client.py). */
export interface ClientEvent {
  ev: 'up' | 'echo' | 'error' | 'summary';
  conn?: 'busy' | 'idle';
  t: number;
  [k: string]: unknown;
}

/** The client process and its events. */
export class LabClient {
  readonly events: ClientEvent[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<number | null>;

  constructor(readonly child: ChildProcess) {
    onJsonLines(child.stdout, (value) => this.events.push(value as ClientEvent));
    child.stderr?.setEncoding('utf8').on('data', (c: string) => this.stderr.push(c));
    this.exited = new Promise((r) => child.once('exit', (code) => r(code)));
  }

  /** Waits for an event matching `pred`; rejects after `timeoutMs` (with what the client said). */
  async waitFor(pred: (e: ClientEvent) => boolean, timeoutMs: number): Promise<ClientEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const e = this.events.find(pred);
      if (e !== undefined) return e;
      if (Date.now() > deadline) throw new TandemError(ERROR_CODES.lab, `client: no matching event within ${timeoutMs} ms; events ${JSON.stringify(this.events.slice(-5))}; stderr ${this.stderr.join('').slice(-1000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Closes the client's stdin and returns its summary. */
  async finish(timeoutMs = 90_000): Promise<ClientEvent> {
    this.child.stdin?.end();
    return this.waitFor((e) => e.ev === 'summary', timeoutMs);
  }
}

/**
 * Connections held open by test/fixtures/sync/conn_holder.py: each sent one line and is idle since, so the
 * master's kernel synced it once (the sync message for its third packet) and never again.
 */
export class HeldConnections {
  /** Every connection opened so far: its client port and when it was opened (epoch ms). */
  readonly conns: Array<{ cport: number; t: number }> = [];
  /** Resolves with the number opened when the holder stopped opening (all `n`, or `stopOpening`). */
  readonly finished: Promise<number>;
  readonly exited: Promise<number | null>;
  private readonly stderr: string[] = [];

  constructor(readonly child: ChildProcess) {
    this.exited = new Promise((r) => child.once('close', (code) => r(code)));
    child.stderr?.setEncoding('utf8').on('data', (c: string) => this.stderr.push(c));
    // A write after the holder died (EPIPE) shows up as its exit, not as an unhandled stream error.
    child.stdin?.on('error', () => undefined);
    this.finished = new Promise<number>((resolveP, reject) => {
      onJsonLines(child.stdout, (value) => {
        const o = value as { cport?: number; t?: number; done?: boolean; opened?: number };
        if (o.done === true) resolveP(o.opened ?? this.conns.length);
        else if (o.cport !== undefined && o.t !== undefined) this.conns.push({ cport: o.cport, t: o.t * 1000 });
      });
      void this.exited.then((code) =>
        reject(new TandemError(ERROR_CODES.lab, `conn_holder exited (${String(code)}) after opening ${this.conns.length} connections: ${this.stderr.join('').slice(-1000)}`)),
      );
    });
    // A caller that only closes must not see the rejection of an exit after `done` as unhandled.
    this.finished.catch(() => undefined);
  }

  /** Stops opening new connections; `finished` resolves once the holder has stopped. */
  stopOpening(): void {
    if (this.child.stdin?.writable === true) this.child.stdin.write('stop\n');
  }

  /** Closes every held connection (the holder exits); resolves when it has exited, killing it after `timeoutMs`. */
  async close(timeoutMs = 30_000): Promise<void> {
    this.child.stdin?.end();
    const t = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(t);
  }
}

export class SyncLab implements SyncLabLike {
  readonly daemons = new Map<DirectorName, DaemonProcess>();
  private servers: ChildProcess[] = [];

  private constructor(
    readonly lab: BridgeLab,
    readonly workDir: string,
    readonly opts: Required<SyncLabOptions>,
  ) {}

  static async create(o: SyncLabOptions): Promise<SyncLab> {
    const opts: Required<SyncLabOptions> = {
      prefix: o.prefix,
      priorities: o.priorities ?? { dirA: 200, dirB: 100 },
      advertIntervalMs: o.advertIntervalMs ?? 1000,
      repairInterval: o.repairInterval ?? '3s',
      resyncTimeout: o.resyncTimeout ?? '30s',
      syncLossPercent: o.syncLossPercent ?? 0,
    };
    const lab = await BridgeLab.create({
      prefix: o.prefix,
      hosts: [
        { name: 'dirA', cidr: '10.99.0.2/24' },
        { name: 'dirB', cidr: '10.99.0.3/24' },
        { name: 'rs1', cidr: '10.99.0.21/24' },
        { name: 'rs2', cidr: '10.99.0.22/24' },
        { name: 'rs3', cidr: '10.99.1.31/24' },
        { name: 'rs4', cidr: '10.99.1.32/24' },
        { name: 'cli', cidr: '10.99.0.10/24' },
      ],
    });
    const workDir = mkdtempSync(join(tmpdir(), `tandem-${o.prefix}-`));
    const l = new SyncLab(lab, workDir, opts);
    l.writeFiles();
    for (const rs of ['rs1', 'rs2']) await l.startRealServer(rs, 'dr');
    for (const rs of ['rs3', 'rs4']) await l.startRealServer(rs, 'nat');
    for (const d of ['dirA', 'dirB'] as const) await l.prepareDirector(d);
    return l;
  }

  /** Writes the two directors' configurations and CURVE key pairs into `dir` (shared with the VM lab). */
  static writeDirectorFiles(dir: string, addresses: Record<DirectorName, string>, opts: Required<SyncLabOptions>, stateDir: (name: DirectorName) => string, keyDir = join(dir, 'keys')): void {
    mkdirSync(keyDir, { recursive: true, mode: 0o700 });
    for (const d of ['dirA', 'dirB'] as const) writeKeyPairFiles(keyDir, d, { force: true });
    for (const name of ['dirA', 'dirB'] as const) {
      const other = name === 'dirA' ? 'dirB' : 'dirA';
      const self = addresses[name];
      const peer = addresses[other];
      writeFileSync(
        join(dir, `${name}.yaml`),
        [
          `node: { name: ${name}, interface: eth0, state_dir: ${stateDir(name)} }`,
          'vrrp:',
          `  transport: { mode: unicast, port: 5112, source: ${self}, peers: [${peer}] }`,
          '  instances:',
          '    - name: VI_1',
          '      vrid: 51',
          `      priority: ${opts.priorities[name]}`,
          `      advert_interval: ${opts.advertIntervalMs}ms`,
          `      vips: [${SYNC_LAB_VIP}/32, ${NAT_GATEWAY}/32]`,
          'sync:',
          '  interface: eth0',
          '  sync_id: 51',
          `  listen: tcp://${self}:5113`,
          `  peer: tcp://${peer}:5113`,
          `  curve: { secret_key_file: ${join(keyDir, `${name}.key`)}, peer_public_key_file: ${join(keyDir, `${other}.pub`)} }`,
          `  resync_timeout: ${opts.resyncTimeout}`,
          `  repair_interval: ${opts.repairInterval}`,
          '',
        ].join('\n'),
      );
    }
  }

  configPath(name: DirectorName): string {
    return join(this.workDir, `${name}.yaml`);
  }

  private writeFiles(): void {
    for (const d of ['dirA', 'dirB'] as const) mkdirSync(join(this.workDir, `state-${d}`), { recursive: true, mode: 0o700 });
    SyncLab.writeDirectorFiles(this.workDir, { dirA: this.lab.host('dirA').address, dirB: this.lab.host('dirB').address }, this.opts, (d) => join(this.workDir, `state-${d}`));
  }

  private async startRealServer(name: string, mode: 'dr' | 'nat'): Promise<void> {
    this.servers.push(await startLabRealServer(this.lab, name, mode));
  }

  /**
   * The director's IPVS services (what `virtual_servers` would derive): VIP:80 DR to rs1/rs2 and VIP:81 NAT to
   * rs3/rs4, round robin; its address on the NAT real servers' subnet and forwarding on (NAT replies are
   * forwarded packets).
   */
  async prepareDirector(name: DirectorName): Promise<void> {
    await this.lab.exec(name, ['ip', 'addr', 'add', LAB_INNER_ADDRESS[name], 'dev', 'eth0']);
    await this.lab.exec(name, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    for (const argv of labDirectorIpvsCommands()) await this.lab.exec(name, argv);
    if (this.opts.syncLossPercent > 0) await this.lossOnSync(name, this.opts.syncLossPercent);
  }

  /** Starts a director's `tandem run`. */
  start(name: DirectorName): DaemonProcess {
    const child = this.lab.spawn(name, [TANDEM_BIN, 'run', '-c', this.configPath(name), '--exit-with-stdin'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const d = new DaemonProcess(name, child);
    this.daemons.set(name, d);
    return d;
  }

  daemon(name: DirectorName): DaemonProcess {
    const d = this.daemons.get(name);
    if (d === undefined) throw new TandemError(ERROR_CODES.lab, `${name} was never started`);
    return d;
  }

  /** Machine crash (see the module comment); resolves when the daemon is dead and the namespace gone. */
  async crash(name: DirectorName): Promise<void> {
    const d = this.daemons.get(name);
    // The kernel sync threads die with a machine; stopped here so nothing keeps the namespace alive.
    await this.lab.crashHost(name, async () => {
      for (const state of ['master', 'backup']) await this.lab.exec(name, ['ipvsadm', '--stop-daemon', state], { allowFail: true });
    });
    if (d !== undefined) await d.exited;
  }

  /** Brings a crashed director's machine back, empty, with its IPVS service configured (not its daemon). */
  async restore(name: DirectorName): Promise<void> {
    await this.lab.restoreHost(name);
    await this.prepareDirector(name);
  }

  /** Drops `percent`% of the director's outgoing sync datagrams (UDP to port 8848) with netem; nothing else. */
  async lossOnSync(name: DirectorName, percent: number): Promise<void> {
    for (const args of syncLossCommands('eth0', percent)) await this.lab.exec(name, ['tc', ...args]);
  }

  /** What netem did to the director's outgoing sync datagrams. */
  async syncLoss(name: DirectorName): Promise<{ sent: number; dropped: number }> {
    return netemCounts(await this.lab.exec(name, ['tc', '-s', 'qdisc', 'show', 'dev', 'eth0'], { allowFail: true }));
  }

  /** Starts a client: a busy and an idle connection to VIP:`port` (see conn_client.py). */
  startClient(busyIntervalS = 0.02, idleIntervalS = 15, port = SYNC_LAB_PORT): LabClient {
    return startLabClient(this.lab, busyIntervalS, idleIntervalS, port);
  }

  holdConnections(n: number, gapS: number, port = SYNC_LAB_PORT): HeldConnections {
    return startLabHolder(this.lab, n, gapS, port);
  }

  /** The director's connection table, as `ipvsadm -Lnc` rows. */
  connections(name: DirectorName): Promise<string> {
    return this.lab.exec(name, ['ipvsadm', '-Lnc'], { allowFail: true });
  }

  async destroy(): Promise<void> {
    for (const d of this.daemons.values()) {
      if (!d.running) continue;
      try {
        process.kill(d.pid, 'SIGTERM');
      } catch {
        continue;
      }
      const t = setTimeout(() => d.running && process.kill(d.pid, 'SIGKILL'), 5000);
      await d.exited;
      clearTimeout(t);
    }
    for (const s of this.servers) s.kill('SIGKILL');
    await this.lab.destroy();
    rmSync(this.workDir, { recursive: true, force: true });
  }
}
