/**
 * Network-namespace topologies for the lab and the netns test tier: one namespace holds a bridge, each host is
 * a namespace joined to it by a veth pair whose inner end is `eth0`. Everything is made with iproute2 inside
 * namespaces this module creates, and removed by `destroy()`. Needs root.
 */

import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { promisify } from 'node:util';
import { TandemError, ERROR_CODES } from '../lib/errors.ts';

const execFileP = promisify(execFile);

/** One host of a lab: its namespace, interface and address. */
export interface LabHost {
  name: string;
  ns: string;
  ifname: 'eth0';
  /** Address with prefix, e.g. 10.99.0.2/24. */
  cidr: string;
  address: string;
  mac: string;
}

export interface LabSpec {
  /** Prefix for every namespace name; keep it short and unique per concurrently running lab. */
  prefix: string;
  hosts: Array<{ name: string; cidr: string; cidr6?: string }>;
}

/** Runs a command and returns stdout; throws TandemError with stderr on failure. */
export async function run(argv: readonly string[], opts: { allowFail?: boolean } = {}): Promise<string> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new TandemError(ERROR_CODES.lab, 'empty command');
  try {
    const { stdout } = await execFileP(cmd, args, { maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (e) {
    if (opts.allowFail === true) return '';
    const err = e as { stderr?: string; message: string };
    throw new TandemError(ERROR_CODES.lab, `${argv.join(' ')}: ${(err.stderr ?? err.message).trim()}`, { cause: e });
  }
}

/** A bridge lab: hosts in namespaces on one L2 segment. */
export class BridgeLab {
  readonly bridgeNs: string;
  readonly hosts: ReadonlyMap<string, LabHost>;

  private constructor(readonly prefix: string, hosts: Map<string, LabHost>) {
    this.bridgeNs = `${prefix}-br`;
    this.hosts = hosts;
  }

  /** Builds the topology (removing leftovers of an earlier run with the same prefix first). */
  static async create(spec: LabSpec): Promise<BridgeLab> {
    await BridgeLab.cleanup(spec.prefix);
    const br = `${spec.prefix}-br`;
    await run(['ip', 'netns', 'add', br]);
    await run(['ip', '-n', br, 'link', 'add', 'br0', 'type', 'bridge', 'forward_delay', '0']);
    await run(['ip', '-n', br, 'link', 'set', 'br0', 'up']);
    await run(['ip', '-n', br, 'link', 'set', 'lo', 'up']);
    const hosts = new Map<string, LabHost>();
    for (const [i, h] of spec.hosts.entries()) hosts.set(h.name, await BridgeLab.addHost(spec.prefix, h, i));
    const lab = new BridgeLab(spec.prefix, hosts);
    lab.specs = spec.hosts;
    return lab;
  }

  private specs: LabSpec['hosts'] = [];

  /** Makes host `h` (the `i`-th of the spec, which fixes its MAC) and joins it to the bridge. */
  private static async addHost(prefix: string, h: LabSpec['hosts'][number], i: number): Promise<LabHost> {
    const br = `${prefix}-br`;
    const ns = `${prefix}-${h.name}`;
    const mac = `02:00:00:00:${(0x10 + (prefix.length % 0x40)).toString(16).padStart(2, '0')}:${(i + 1).toString(16).padStart(2, '0')}`;
    await run(['ip', 'netns', 'add', ns]);
    // Inner end is created directly in the host namespace as eth0, outer end in the bridge namespace.
    await run(['ip', 'link', 'add', 'eth0', 'netns', ns, 'address', mac, 'type', 'veth', 'peer', 'name', `v-${h.name}`, 'netns', br]);
    await run(['ip', '-n', br, 'link', 'set', `v-${h.name}`, 'master', 'br0']);
    await run(['ip', '-n', br, 'link', 'set', `v-${h.name}`, 'up']);
    await run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    await run(['ip', '-n', ns, 'addr', 'add', h.cidr, 'dev', 'eth0']);
    if (h.cidr6 !== undefined) {
      await run(['ip', 'netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.eth0.accept_dad=0']);
      await run(['ip', '-n', ns, 'addr', 'add', h.cidr6, 'dev', 'eth0', 'nodad']);
    }
    await run(['ip', '-n', ns, 'link', 'set', 'eth0', 'up']);
    return { name: h.name, ns, ifname: 'eth0', cidr: h.cidr, address: h.cidr.split('/')[0] ?? h.cidr, mac };
  }

  /**
   * A host's machine crashes: its link goes down, every process in its namespace is killed with SIGKILL, and
   * the namespace is deleted, so all its kernel state (addresses, IPVS tables and sync threads) is gone as on
   * a machine that lost power. `restoreHost` brings an empty machine back.
   */
  async crashHost(name: string, beforeDelete?: () => Promise<void>): Promise<void> {
    const h = this.host(name);
    await run(['ip', '-n', h.ns, 'link', 'set', 'eth0', 'down'], { allowFail: true });
    const pids = (await run(['ip', 'netns', 'pids', h.ns], { allowFail: true })).split(/\s+/).filter((p) => /^\d+$/.test(p));
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await beforeDelete?.();
    await run(['ip', 'netns', 'delete', h.ns]);
  }

  /**
   * Re-creates a crashed host with the same name, address and MAC. The kernel frees a deleted namespace (and
   * the veth in it) asynchronously, later when something still holds a reference; after 3 s the old veth is
   * deleted from the bridge side, which removes both ends.
   */
  async restoreHost(name: string): Promise<LabHost> {
    const i = this.specs.findIndex((s) => s.name === name);
    const spec = this.specs[i];
    if (spec === undefined) throw new TandemError(ERROR_CODES.lab, `no host ${name} in lab ${this.prefix}`);
    for (let tries = 0; ; tries++) {
      const gone = (await run(['ip', '-n', this.bridgeNs, 'link', 'show', `v-${name}`], { allowFail: true })) === '';
      if (gone) break;
      if (tries === 30) await run(['ip', '-n', this.bridgeNs, 'link', 'del', `v-${name}`], { allowFail: true });
      if (tries > 200) throw new TandemError(ERROR_CODES.lab, `v-${name} still exists 20 s after ${name} crashed`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const h = await BridgeLab.addHost(this.prefix, spec, i);
    (this.hosts as Map<string, LabHost>).set(name, h);
    return h;
  }

  /** Removes every namespace whose name starts with `${prefix}-`. */
  static async cleanup(prefix: string): Promise<void> {
    const out = await run(['ip', 'netns', 'list'], { allowFail: true });
    for (const line of out.split('\n')) {
      const name = line.split(' ')[0] ?? '';
      if (name.startsWith(`${prefix}-`)) await run(['ip', 'netns', 'delete', name], { allowFail: true });
    }
  }

  host(name: string): LabHost {
    const h = this.hosts.get(name);
    if (h === undefined) throw new TandemError(ERROR_CODES.lab, `no host ${name} in lab ${this.prefix}`);
    return h;
  }

  /** Runs a command inside a host's namespace. */
  exec(host: string, argv: readonly string[], opts: { allowFail?: boolean } = {}): Promise<string> {
    return run(['ip', 'netns', 'exec', this.host(host).ns, ...argv], opts);
  }

  /** Starts a long-running process inside a host's namespace. */
  spawn(host: string, argv: readonly string[], opts: SpawnOptions = {}): ChildProcess {
    return spawn('ip', ['netns', 'exec', this.host(host).ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  }

  /** Addresses on a host's interface (`ip -j addr`), as `address/prefix`. */
  async addresses(host: string, ifname = 'eth0'): Promise<string[]> {
    const out = await this.exec(host, ['ip', '-j', 'addr', 'show', 'dev', ifname]);
    const parsed = JSON.parse(out) as Array<{ addr_info?: Array<{ local: string; prefixlen: number }> }>;
    return parsed.flatMap((l) => (l.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`));
  }

  /** The link-layer address a host's neighbour table holds for `ip`, or undefined. */
  async neighbour(host: string, ip: string): Promise<{ lladdr: string | undefined; state: string[] } | undefined> {
    const out = await this.exec(host, ['ip', '-j', 'neigh', 'show', 'to', ip, 'dev', 'eth0']);
    const rows = JSON.parse(out === '' ? '[]' : out) as Array<{ lladdr?: string; state?: string[] }>;
    const r = rows[0];
    return r === undefined ? undefined : { lladdr: r.lladdr, state: r.state ?? [] };
  }

  async destroy(): Promise<void> {
    await BridgeLab.cleanup(this.prefix);
  }
}
