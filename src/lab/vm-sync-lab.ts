/**
 * The connection-sync lab with two QEMU VMs as the directors: each VM boots Debian's kernel (its own IPVS),
 * gets a tap NIC on a bridge held by a network namespace of this host, configures its IPVS services and runs
 * `tandem run` from this checkout; real servers and the client are further namespaces on that bridge (the same
 * topology and addresses as src/lab/sync-lab.ts). A crash is `kill -9` of the VM's qemu: the machine with its
 * kernel state is gone at once. Needs root, qemu and what src/lab/vm.ts needs; two TCG VMs are slow, so take
 * the machine's VM lock for the whole run.
 */

import type { ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ERROR_CODES, TandemError } from '../lib/errors.ts';
import { jsonLineSplitter } from './json-lines.ts';
import { BridgeLab, run } from './netns.ts';
import { TANDEM_BIN, type DirectorName, type LogRecord } from './pair.ts';
import {
  LAB_INNER_ADDRESS,
  SyncLab,
  labDirectorIpvsCommands,
  netemCounts,
  startLabClient,
  startLabHolder,
  startLabRealServer,
  syncLossCommands,
  type DirectorLog,
  type HeldConnections,
  type LabClient,
  type SyncLabLike,
  type SyncLabOptions,
} from './sync-lab.ts';
import { REPO_ROOT, runInVm, shQuote } from './vm.ts';

const ADDRESS: Record<DirectorName, string> = { dirA: '10.99.0.2', dirB: '10.99.0.3' };
const MAC: Record<DirectorName, string> = { dirA: '52:54:00:99:00:02', dirB: '52:54:00:99:00:03' };
const PEER: Record<DirectorName, DirectorName> = { dirA: 'dirB', dirB: 'dirA' };
/** Inside the VM the results share is mounted here (test/vm/init.sh). */
const SHARE_IN_VM = '/run/tandem-results';

/** A director VM's log, parsed from the job's stdout as it streams out of the share. */
class VmDirector implements DirectorLog {
  readonly records: LogRecord[] = [];
  qemu: ChildProcess | undefined;
  done: Promise<unknown> = Promise.resolve();
  /** Resolves when the tap is on the bridge (with the error, if attaching failed). */
  attached: Promise<unknown> = Promise.resolve();
  /** Feeds the job's stdout; lines that are not JSON (ipvsadm output, node warnings) are skipped. */
  readonly feed = jsonLineSplitter((value) => this.records.push(value as LogRecord));

  async waitFor(pred: (r: LogRecord) => boolean, timeoutMs: number, from = 0): Promise<LogRecord> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = this.records.slice(from).find(pred);
      if (r !== undefined) return r;
      if (Date.now() > deadline) throw new TandemError(ERROR_CODES.lab, `VM director: no matching log record within ${timeoutMs} ms; last records: ${JSON.stringify(this.records.slice(-5))}`);
      await new Promise((res) => setTimeout(res, 100));
    }
  }
}

export class VmSyncLab implements SyncLabLike {
  private readonly directors = new Map<DirectorName, VmDirector>();
  private readonly boots = new Map<DirectorName, number>();
  private servers: ChildProcess[] = [];

  private constructor(
    readonly lab: BridgeLab,
    readonly workDir: string,
    readonly opts: Required<SyncLabOptions>,
  ) {}

  static async create(o: SyncLabOptions): Promise<VmSyncLab> {
    const opts: Required<SyncLabOptions> = {
      prefix: o.prefix,
      priorities: o.priorities ?? { dirA: 200, dirB: 100 },
      // Two TCG VMs share two host cores: 2 s adverts keep a slow moment from looking like a dead master.
      advertIntervalMs: o.advertIntervalMs ?? 2000,
      repairInterval: o.repairInterval ?? '3s',
      resyncTimeout: o.resyncTimeout ?? '60s',
      syncLossPercent: o.syncLossPercent ?? 0,
    };
    const lab = await BridgeLab.create({
      prefix: o.prefix,
      hosts: [
        { name: 'rs1', cidr: '10.99.0.21/24' },
        { name: 'rs2', cidr: '10.99.0.22/24' },
        { name: 'rs3', cidr: '10.99.1.31/24' },
        { name: 'rs4', cidr: '10.99.1.32/24' },
        { name: 'cli', cidr: '10.99.0.10/24' },
      ],
    });
    const workDir = mkdtempSync(join(tmpdir(), `tandem-${o.prefix}-`));
    const l = new VmSyncLab(lab, workDir, opts);
    // Configurations as the VMs see them: keys and files in the results share.
    SyncLab.writeDirectorFiles(workDir, ADDRESS, opts, () => '/var/lib/tandem', join(workDir, 'keys'));
    for (const rs of ['rs1', 'rs2']) l.servers.push(await startLabRealServer(lab, rs, 'dr'));
    for (const rs of ['rs3', 'rs4']) l.servers.push(await startLabRealServer(lab, rs, 'nat'));
    return l;
  }

  private tap(name: DirectorName): string {
    return `${this.opts.prefix}t-${name}`.slice(0, 15);
  }

  private shareDir(name: DirectorName): string {
    return join(this.workDir, `vm-${name}-${this.boots.get(name) ?? 0}`);
  }

  /** Boots a director VM: NIC, IPVS services, a table dumper for `connections`, then `tandem run`. */
  start(name: DirectorName): DirectorLog {
    this.boots.set(name, (this.boots.get(name) ?? 0) + 1);
    const share = this.shareDir(name);
    mkdirSync(join(share, 'keys'), { recursive: true, mode: 0o700 });
    for (const f of [`${name}.key`, `${PEER[name]}.pub`]) {
      copyFileSync(join(this.workDir, 'keys', f), join(share, 'keys', f));
    }
    const config = readFileSync(join(this.workDir, `${name}.yaml`), 'utf8').replaceAll(join(this.workDir, 'keys'), `${SHARE_IN_VM}/keys`);
    writeFileSync(join(share, 'tandem.yaml'), config);
    // Loss emulation runs inside the VM (its kernel has netem; the host's may not): this director's own outgoing
    // sync datagrams are dropped on its eth0.
    const loss = this.opts.syncLossPercent > 0 ? syncLossCommands('eth0', this.opts.syncLossPercent).map((args) => ['tc', ...args].map(shQuote).join(' ')) : [];
    const script = [
      `ip addr add ${LAB_INNER_ADDRESS[name]} dev eth0`,
      'sysctl -qw net.ipv4.ip_forward=1',
      ...labDirectorIpvsCommands().map((argv) => argv.map(shQuote).join(' ')),
      ...loss,
      // The table and the qdisc counters, once a second, for `connections` and `syncDrops`.
      `(while sleep 1; do ipvsadm -Lnc > ${SHARE_IN_VM}/conns.tmp 2>/dev/null && mv ${SHARE_IN_VM}/conns.tmp ${SHARE_IN_VM}/conns; tc -s qdisc show dev eth0 > ${SHARE_IN_VM}/tc.tmp 2>/dev/null && mv ${SHARE_IN_VM}/tc.tmp ${SHARE_IN_VM}/tc; done) &`,
      `exec ${shQuote(TANDEM_BIN)} run -c ${SHARE_IN_VM}/tandem.yaml`,
    ].join('\n');
    const d = new VmDirector();
    this.directors.set(name, d);
    const tap = this.tap(name);
    d.done = runInVm({
      command: ['sh', '-c', script],
      cwd: REPO_ROOT,
      timeoutMs: 1_800_000,
      memoryMb: 1024,
      cpus: 1,
      shareDir: share,
      netns: this.lab.bridgeNs,
      qemuArgs: ['-netdev', `tap,id=n0,ifname=${tap},script=no,downscript=no`, '-device', `virtio-net-pci,netdev=n0,mac=${MAC[name]}`],
      kernelArgs: [`tandem.ip=${ADDRESS[name]}/24`],
      onSpawn: (q) => {
        d.qemu = q;
        d.attached = this.attachTap(name).catch((e: unknown) => e);
      },
      onOutput: (stream, chunk) => {
        if (stream === 'stdout') d.feed(chunk);
      },
    }).catch((e: unknown) => e);
    return d;
  }

  /** Puts the VM's tap on the bridge once qemu has made it. */
  private async attachTap(name: DirectorName): Promise<void> {
    const tap = this.tap(name);
    for (let i = 0; i < 300; i++) {
      if ((await run(['ip', '-n', this.lab.bridgeNs, 'link', 'show', tap], { allowFail: true })) !== '') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await run(['ip', '-n', this.lab.bridgeNs, 'link', 'set', tap, 'master', 'br0']);
    await run(['ip', '-n', this.lab.bridgeNs, 'link', 'set', tap, 'up']);
  }

  /** kill -9 of the VM's qemu; resolves when it is gone and its tap with it. */
  async crash(name: DirectorName): Promise<void> {
    const d = this.directors.get(name);
    if (d?.qemu === undefined) throw new TandemError(ERROR_CODES.lab, `${name} is not running`);
    d.qemu.kill('SIGKILL');
    await d.done;
    for (let i = 0; i < 100; i++) {
      if ((await run(['ip', '-n', this.lab.bridgeNs, 'link', 'show', this.tap(name)], { allowFail: true })) === '') return;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** A crashed VM needs nothing before it boots again: `start` boots a fresh machine. */
  async restore(_name: DirectorName): Promise<void> {}

  async connections(name: DirectorName): Promise<string> {
    return readFile(join(this.shareDir(name), 'conns'), 'utf8').catch(() => '');
  }

  startClient(busyIntervalS = 0.02, idleIntervalS = 15, port = 80): LabClient {
    return startLabClient(this.lab, busyIntervalS, idleIntervalS, port);
  }

  /** The client namespace is on this host, as for `startClient`. */
  holdConnections(n: number, gapS: number, port = 80): HeldConnections {
    return startLabHolder(this.lab, n, gapS, port);
  }

  /** What netem did to `name`'s outgoing sync datagrams in its VM (as of the VM's last once-a-second dump). */
  async syncLoss(name: DirectorName): Promise<{ sent: number; dropped: number }> {
    return netemCounts(await readFile(join(this.shareDir(name), 'tc'), 'utf8').catch(() => ''));
  }

  async destroy(): Promise<void> {
    for (const d of this.directors.values()) {
      d.qemu?.kill('SIGKILL');
      await d.done;
    }
    for (const s of this.servers) s.kill('SIGKILL');
    await this.lab.destroy();
    rmSync(this.workDir, { recursive: true, force: true });
  }
}
