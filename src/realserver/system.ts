/**
 * The real-server adapter: the only code of src/realserver that touches the system. Sysctls are read and written
 * through /proc/sys, links are read from /sys/class/net, addresses go through the project's VipManager
 * (rtnetlink). Loading a module (`modprobe`), setting a tunnel device up or down and adding or removing a FOU/GUE
 * receive port shell out to `modprobe` and iproute2's `ip`: the fallback tunnel devices (tunl0, gre0) appear
 * when their module loads, so no link is ever created here, and the remaining operations — one RTM_NEWLINK flag
 * change and the "fou" generic netlink family — would each need codecs of their own for a handful of one-time
 * calls made by an operator command, not by the daemon. Also the state file of apply.ts.
 */

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import type { AddressFamily } from '../config/types.ts';
import { VipError, messageOf } from '../lib/errors.ts';
import { createVipManager, type VipManager } from '../vip/index.ts';
import { emptyState, type RealserverHost, type RealserverState } from './apply.ts';
import { sysctlPath } from './prepare.ts';

const execFileP = promisify(execFile);

/** Where `up` records what it changed unless told otherwise (tmpfs: cleared at boot, like the changes). */
export const DEFAULT_STATE_FILE = '/run/tandem/realserver.json';

/** IFF_UP in /sys/class/net/IF/flags. */
const IFF_UP = 0x1;

/** Runs a command; rejects with VipError carrying its stderr. */
async function run(argv: readonly string[]): Promise<string> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new VipError('empty command');
  try {
    const { stdout } = await execFileP(cmd, args, { timeout: 30_000 });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string };
    throw new VipError(`${argv.join(' ')}: ${(err.stderr ?? '').trim() || messageOf(e)}`, { cause: e });
  }
}

/** A /sys/class/net path for an interface name (never a path outside that directory). */
function sysNet(ifname: string, file?: string): string {
  if (ifname.includes('/') || ifname === '.' || ifname === '..') throw new VipError(`bad interface name ${ifname}`);
  return `/sys/class/net/${ifname}${file === undefined ? '' : `/${file}`}`;
}

/** The host this process runs on (its network namespace). */
export class SystemRealserverHost implements RealserverHost {
  private readonly vips: VipManager;

  constructor(vips: VipManager = createVipManager()) {
    this.vips = vips;
  }

  async readSysctl(key: string): Promise<number | undefined> {
    let text: string;
    try {
      text = await readFile(sysctlPath(key), 'utf8');
    } catch {
      return undefined;
    }
    const n = Number.parseInt(text.trim(), 10);
    return Number.isNaN(n) ? undefined : n;
  }

  async writeSysctl(key: string, value: number): Promise<void> {
    try {
      await writeFile(sysctlPath(key), `${value}\n`);
    } catch (e) {
      throw new VipError(`write ${value} to ${sysctlPath(key)}: ${messageOf(e)}`, { cause: e });
    }
  }

  async addresses(ifname: string): Promise<string[] | undefined> {
    if (!existsSync(sysNet(ifname))) return undefined;
    return this.vips.list(ifname);
  }

  async link(ifname: string): Promise<{ exists: boolean; up: boolean }> {
    try {
      const flags = Number.parseInt((await readFile(sysNet(ifname, 'flags'), 'utf8')).trim(), 16);
      return { exists: true, up: (flags & IFF_UP) !== 0 };
    } catch {
      return { exists: false, up: false };
    }
  }

  async fouGuePorts(): Promise<number[]> {
    let out: string;
    try {
      out = await run(['ip', 'fou', 'show']);
    } catch {
      return []; // fou not loaded: no ports
    }
    const ports: number[] = [];
    for (const line of out.split('\n')) {
      const m = /\bport (\d+) gue\b/.exec(line);
      if (m !== null) ports.push(Number(m[1]));
    }
    return ports;
  }

  async addAddress(ifname: string, address: string, prefixLength: number, family: AddressFamily): Promise<void> {
    await this.vips.add({ address, prefixLength, family, interface: ifname });
  }

  async removeAddress(ifname: string, address: string, prefixLength: number, family: AddressFamily): Promise<void> {
    await this.vips.remove({ address, prefixLength, family, interface: ifname });
  }

  async loadModule(name: string): Promise<void> {
    await run(['modprobe', name]);
  }

  async setLinkUp(ifname: string, up: boolean): Promise<void> {
    await run(['ip', 'link', 'set', 'dev', ifname, up ? 'up' : 'down']);
  }

  async addFouGuePort(port: number): Promise<void> {
    await run(['ip', 'fou', 'add', 'port', String(port), 'gue']);
  }

  async removeFouGuePort(port: number): Promise<void> {
    await run(['ip', 'fou', 'del', 'port', String(port)]);
  }

  close(): void {
    this.vips.close();
  }
}

/** The interface of the first IPv4 default route (/proc/net/route of this namespace), if any. */
export async function defaultRouteInterface(): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile('/proc/net/route', 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n').slice(1)) {
    const [iface, dest, , , , , , mask] = line.trim().split(/\s+/);
    if (iface !== undefined && dest === '00000000' && mask === '00000000') return iface;
  }
  return undefined;
}

/** The recorded state, or an empty one when the file does not exist. Throws VipError for a corrupt file. */
export async function loadState(file: string): Promise<RealserverState> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return emptyState();
    throw new VipError(`read ${file}: ${messageOf(e)}`, { cause: e });
  }
  try {
    const s = JSON.parse(text) as Partial<RealserverState>;
    if (s.version !== 1 || !Array.isArray(s.items)) throw new Error('not a version 1 state');
    return { version: 1, items: s.items };
  } catch (e) {
    throw new VipError(`${file}: ${messageOf(e)} (delete it to forget what tandem changed)`, { cause: e });
  }
}

/** Writes the state atomically (temporary file + rename), creating its directory. */
export async function saveState(file: string, state: RealserverState): Promise<void> {
  try {
    await mkdir(dirname(file), { recursive: true, mode: 0o755 });
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o644 });
    await rename(tmp, file);
  } catch (e) {
    throw new VipError(`write ${file}: ${messageOf(e)}`, { cause: e });
  }
}
