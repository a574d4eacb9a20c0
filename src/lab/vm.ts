/**
 * A throwaway QEMU VM for the tests that need a kernel this machine's kernel is not (IPVS above all): Debian's
 * kernel from /boot, booted under TCG with a tiny initramfs of our own (busybox-static + the virtio PCI and 9p
 * modules) that mounts the host's `/` read-only over 9p and switch_roots to `test/vm/init.sh` of this checkout.
 * The job (a command run from a directory of the host's tree, which the VM sees at the same path) writes its
 * stdout, stderr and exit code into a second, writable 9p share; the serial console is kept apart as the boot
 * log. One VM per call; nothing in the VM can write to the host except that share.
 *
 * Extension point for later tiers (NICs, taps, bridges): `qemuArgs` adds devices, and `kernelArgs` adds
 * kernel parameters that test/vm/init.sh can read from /proc/cmdline.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { basename, delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ERROR_CODES, TandemError } from '../lib/errors.ts';
import { run } from './netns.ts';

/** The checkout this module belongs to (src/lab/vm.ts -> ../..). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Where built initramfs images are cached (gitignored). */
export const VM_CACHE_DIR = join(REPO_ROOT, '.vm');
/** PID 1 inside the VM, run from the host's tree over 9p. */
export const VM_INIT_SCRIPT = join(REPO_ROOT, 'test', 'vm', 'init.sh');
/** /init of the initramfs. */
export const INITRAMFS_INIT_SCRIPT = join(REPO_ROOT, 'test', 'vm', 'initramfs-init.sh');

/** Modules the initramfs loads (with their dependencies) to reach the 9p root: virtio PCI transport + 9p. */
const INITRAMFS_MODULES = ['virtio_pci', '9pnet_virtio', '9p'] as const;
/** Busybox applets the initramfs /init uses. */
const BUSYBOX_APPLETS = ['sh', 'mount', 'umount', 'insmod', 'switch_root', 'mkdir', 'cat', 'sleep', 'echo'] as const;
/** Bump when the initramfs layout changes, so cached images are rebuilt. */
const IMAGE_FORMAT = 1;

/** A VM that booted but produced no exit code (timeout, boot failure, crash), or could not be started. */
export class VmError extends TandemError {
  /** `timeout`: killed after timeoutMs; `no-exit-code`: powered off without one; `start`: qemu did not run. */
  readonly reason: 'timeout' | 'no-exit-code' | 'start';
  /** The serial console log (kernel and init messages). */
  readonly console: string;
  /** Whatever the job wrote before the VM died. */
  readonly stdout: string;
  readonly stderr: string;
  constructor(reason: VmError['reason'], message: string, out: { console: string; stdout: string; stderr: string }, options?: { cause?: unknown }) {
    super(ERROR_CODES.lab, message, options);
    this.reason = reason;
    this.console = out.console;
    this.stdout = out.stdout;
    this.stderr = out.stderr;
  }
}

/** What a VM boots: kernel, our initramfs, the qemu binary. */
export interface VmImage {
  kernelVersion: string;
  /** The installed /boot/vmlinuz-<version>. */
  kernel: string;
  /** What qemu's -kernel gets: the uncompressed vmlinux extracted into the cache when it can be booted
   * directly (PVH entry note), which skips the real-mode setup and decompression (~3 s under TCG); else `kernel`. */
  bootKernel: string;
  initramfs: string;
  qemu: string;
}

export interface VmRunOptions {
  /** argv run inside the VM (looked up on the VM's PATH, which is the host's). */
  command: readonly string[];
  /** Working directory inside the VM; an absolute host path (the VM sees the host's tree). Default: the checkout. */
  cwd?: string;
  /** Default 2048: node under TCG wants room. */
  memoryMb?: number;
  /** vCPUs; more than one uses multi-threaded TCG. Default: min(2, host cores). */
  cpus?: number;
  /** The VM is killed after this long; the run then throws VmError('timeout'). */
  timeoutMs: number;
  /** Extra environment for the command (the VM sets PATH, HOME=/tmp, TMPDIR=/tmp, TANDEM_VM=1). */
  env?: Readonly<Record<string, string>>;
  /** Host directory shared writable with the VM for job.sh, stdout, stderr, exit-code and timings. Default: a
   * fresh temporary directory, removed afterwards. A given directory is kept (and must be empty or new). */
  shareDir?: string;
  /** Called with the job's output as it is written (polled from the share), e.g. to stream it. */
  onOutput?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
  /** Called with serial console output as it arrives. */
  onConsole?: (chunk: Buffer) => void;
  /** Extra qemu arguments (devices for later tiers: NICs, taps). */
  qemuArgs?: readonly string[];
  /** Extra kernel command line parameters (`tandem.ip=ADDR/PREFIX` makes init.sh configure eth0). */
  kernelArgs?: readonly string[];
  /** Start qemu inside this network namespace (`ip netns exec`), e.g. where its tap devices go on a bridge. */
  netns?: string;
  /** Called with the qemu process once spawned (a test may `kill -9` it: a machine crash). */
  onSpawn?: (qemu: ChildProcess) => void;
}

export interface VmTimings {
  /** Kernel uptime when test/vm/init.sh started (kernel + initramfs; excludes qemu start and firmware). */
  bootToInitS: number | undefined;
  /** Host wall time from spawning qemu until the share showed that init.sh had started (polled, +-0.2 s). */
  initWallMs: number | undefined;
  /** The job's own duration (VM uptime at its end minus at its start). */
  jobS: number | undefined;
  /** Host wall time of the whole run, qemu start to exit. */
  wallMs: number;
}

export interface VmRunResult {
  /** The job's exit code. */
  exitCode: number;
  /** The job's stdout and stderr, read from the results share (not the console). */
  stdout: string;
  stderr: string;
  /** Serial console log. */
  console: string;
  timings: VmTimings;
}

// ---------------------------------------------------------------------------------------------- the image

function missing(what: string, fix: string): TandemError {
  return new TandemError(ERROR_CODES.lab, `${what}: ${fix} (scripts/setup does)`);
}

/** Compares kernel versions like `sort -V` would for the parts that matter (numbers numerically). */
function compareVersions(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

/** The newest /boot/vmlinuz-<ver> whose modules are installed in /lib/modules/<ver>. */
export function findKernel(): { version: string; path: string } {
  let names: string[];
  try {
    names = readdirSync('/boot').filter((n) => n.startsWith('vmlinuz-'));
  } catch {
    names = [];
  }
  if (names.length === 0) throw missing('no /boot/vmlinuz-*', 'install linux-image-amd64');
  const usable = names
    .map((n) => n.slice('vmlinuz-'.length))
    .filter((v) => existsSync(`/lib/modules/${v}/modules.dep`))
    .sort(compareVersions);
  const version = usable.at(-1);
  if (version === undefined) {
    throw missing(`found ${names.map((n) => `/boot/${n}`).join(', ')} but no matching /lib/modules/<version>/modules.dep`, 'reinstall linux-image-amd64');
  }
  return { version, path: `/boot/vmlinuz-${version}` };
}

/** A program on PATH, or undefined. */
function which(program: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter)) {
    const p = join(dir, program);
    try {
      if (statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

function findQemu(): string {
  const qemu = which('qemu-system-x86_64');
  if (qemu === undefined) throw missing('qemu-system-x86_64 not found on PATH', 'install qemu-system-x86');
  return qemu;
}

/** True when an ELF file has a PT_INTERP header, i.e. needs a dynamic loader the initramfs does not have. */
function isDynamicElf(bytes: Buffer): boolean {
  if (bytes.length < 64 || bytes.readUInt32BE(0) !== 0x7f454c46 || bytes[4] !== 2) return true; // not ELF64: treat as unusable
  const phoff = Number(bytes.readBigUInt64LE(0x20));
  const phentsize = bytes.readUInt16LE(0x36);
  const phnum = bytes.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    const off = phoff + i * phentsize;
    if (off + 4 > bytes.length) return true;
    if (bytes.readUInt32LE(off) === 3) return true; // PT_INTERP
  }
  return false;
}

function readBusybox(): Buffer {
  const path = '/bin/busybox';
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch {
    throw missing('no /bin/busybox', 'install busybox-static');
  }
  if (isDynamicElf(bytes)) throw missing('/bin/busybox is not a static binary', 'install busybox-static (it replaces the dynamic busybox package)');
  return bytes;
}

/** The .ko files to load, in dependency order, for `modules` of kernel `version` (via `modprobe --show-depends`). */
async function moduleFiles(version: string, modules: readonly string[]): Promise<string[]> {
  if (which('modprobe') === undefined) throw missing('modprobe not found', 'install kmod');
  const files: string[] = [];
  for (const m of modules) {
    const out = await run(['modprobe', '-S', version, '--show-depends', m]);
    for (const line of out.split('\n')) {
      const match = /^insmod (\S+)/.exec(line.trim());
      const file = match?.[1];
      if (file !== undefined && !files.includes(file)) files.push(file);
    }
  }
  for (const f of files) {
    if (!f.endsWith('.ko')) throw new TandemError(ERROR_CODES.lab, `module ${f} is compressed; the VM initramfs only loads plain .ko files (busybox insmod)`);
  }
  return files;
}

/** True when an ELF image has the Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY), which qemu boots directly. */
export function hasPvhNote(elf: Buffer): boolean {
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2) return false;
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (ph + 56 > elf.length || elf.readUInt32LE(ph) !== 4) continue; // PT_NOTE
    const start = Number(elf.readBigUInt64LE(ph + 8));
    const end = Math.min(elf.length, start + Number(elf.readBigUInt64LE(ph + 32)));
    let at = start;
    while (at + 12 <= end) {
      const namesz = elf.readUInt32LE(at);
      const descsz = elf.readUInt32LE(at + 4);
      const type = elf.readUInt32LE(at + 8);
      const name = elf.subarray(at + 12, at + 12 + namesz).toString('latin1');
      if (name === 'Xen\0' && type === 18) return true;
      at += 12 + Math.ceil(namesz / 4) * 4 + Math.ceil(descsz / 4) * 4;
    }
  }
  return false;
}

/**
 * The uncompressed vmlinux inside an xz-compressed bzImage (Debian's), cached as `.vm/vmlinux-<version>`, or
 * undefined when it cannot be had (other compression, no xz, no PVH note): then qemu boots the bzImage.
 */
async function pvhKernel(kernel: { version: string; path: string }, cacheDir: string): Promise<string | undefined> {
  const out = join(cacheDir, `vmlinux-${kernel.version}`);
  const s = statSync(kernel.path);
  const key = `${kernel.path} ${s.size} ${s.mtimeMs}`;
  if (existsSync(out) && (await readFile(`${out}.key`, 'utf8').catch(() => '')).trim() === key) return out;
  if (which('xz') === undefined) return undefined;
  const bz = readFileSync(kernel.path);
  const at = bz.indexOf(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]));
  if (at < 0) return undefined;
  const elf = await new Promise<Buffer | undefined>((done) => {
    const xz = spawn('xz', ['-dc', '--single-stream'], { stdio: ['pipe', 'pipe', 'ignore'] });
    const chunks: Buffer[] = [];
    xz.stdout.on('data', (c: Buffer) => chunks.push(c));
    xz.once('error', () => done(undefined));
    xz.once('close', (code) => done(code === 0 ? Buffer.concat(chunks) : undefined));
    xz.stdin.on('error', () => undefined); // xz stops reading at the end of the stream
    xz.stdin.end(bz.subarray(at));
  });
  if (elf === undefined || !hasPvhNote(elf)) return undefined;
  await mkdir(cacheDir, { recursive: true });
  const tmp = `${out}.${process.pid}.${randomBytes(4).toString('hex')}`;
  await writeFile(tmp, elf);
  await rename(tmp, out);
  await writeFile(`${out}.key.${process.pid}`, `${key}\n`);
  await rename(`${out}.key.${process.pid}`, `${out}.key`);
  return out;
}

/** One entry of a newc cpio archive. */
interface CpioEntry {
  name: string;
  mode: number;
  data?: Buffer;
  rdevMajor?: number;
  rdevMinor?: number;
}

/** A newc ("070701") cpio archive, the format the kernel unpacks as an initramfs (uncompressed is fine). */
export function cpioNewc(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let offset = 0;
  const push = (b: Buffer): void => {
    parts.push(b);
    offset += b.length;
  };
  const pad4 = (): void => {
    const n = (4 - (offset % 4)) % 4;
    if (n > 0) push(Buffer.alloc(n));
  };
  const hex = (n: number): string => n.toString(16).padStart(8, '0');
  const all: CpioEntry[] = [...entries, { name: 'TRAILER!!!', mode: 0 }];
  all.forEach((e, i) => {
    const data = e.data ?? Buffer.alloc(0);
    const name = Buffer.from(`${e.name}\0`);
    const isTrailer = e.name === 'TRAILER!!!';
    const fields = [
      isTrailer ? 0 : i + 1, // ino
      e.mode,
      0, // uid
      0, // gid
      isTrailer ? 1 : (e.mode & 0o170000) === 0o040000 ? 2 : 1, // nlink
      0, // mtime
      data.length,
      0, // devmajor
      0, // devminor
      e.rdevMajor ?? 0,
      e.rdevMinor ?? 0,
      name.length,
      0, // check
    ];
    push(Buffer.from(`070701${fields.map(hex).join('')}`, 'ascii'));
    push(name);
    pad4();
    if (data.length > 0) {
      push(data);
      pad4();
    }
  });
  return Buffer.concat(parts, offset);
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

/**
 * The VM image: the newest installed kernel (its vmlinux extracted for direct PVH boot where possible) and an
 * initramfs for it, built into `.vm/` and rebuilt when the kernel, its modules, busybox or
 * test/vm/initramfs-init.sh change. Throws TandemError naming the missing
 * package.
 */
export async function ensureVmImage(opts: { cacheDir?: string } = {}): Promise<VmImage> {
  const cacheDir = opts.cacheDir ?? VM_CACHE_DIR;
  const qemu = findQemu();
  const kernel = findKernel();
  if (which('ipvsadm') === undefined) throw missing('ipvsadm not found on PATH (the VM runs the host\'s tools)', 'install ipvsadm');
  const busybox = readBusybox();
  let initScript: Buffer;
  try {
    initScript = readFileSync(INITRAMFS_INIT_SCRIPT);
  } catch (e) {
    throw new TandemError(ERROR_CODES.lab, `cannot read ${INITRAMFS_INIT_SCRIPT}: ${(e as Error).message}`, { cause: e });
  }
  const modules = await moduleFiles(kernel.version, INITRAMFS_MODULES);

  const key = createHash('sha256');
  key.update(`format ${IMAGE_FORMAT}\nkernel ${kernel.version}\n`);
  key.update(createHash('sha256').update(busybox).digest());
  key.update(initScript);
  for (const m of modules) {
    const s = statSync(m);
    key.update(`${m} ${s.size} ${s.mtimeMs}\n`);
  }
  const digest = key.digest('hex');
  const initramfs = join(cacheDir, `initramfs-${kernel.version}.cpio`);
  const keyFile = `${initramfs}.key`;
  const bootKernel = (await pvhKernel(kernel, cacheDir)) ?? kernel.path;
  const image: VmImage = { kernelVersion: kernel.version, kernel: kernel.path, bootKernel, initramfs, qemu };
  if (existsSync(initramfs) && (await readFile(keyFile, 'utf8').catch(() => '')).trim() === digest) return image;

  const entries: CpioEntry[] = [];
  for (const d of ['bin', 'dev', 'proc', 'sys', 'newroot', 'lib', 'lib/modules']) entries.push({ name: d, mode: S_IFDIR | 0o755 });
  entries.push({ name: 'dev/console', mode: S_IFCHR | 0o600, rdevMajor: 5, rdevMinor: 1 });
  entries.push({ name: 'dev/null', mode: S_IFCHR | 0o666, rdevMajor: 1, rdevMinor: 3 });
  entries.push({ name: 'bin/busybox', mode: S_IFREG | 0o755, data: busybox });
  for (const a of BUSYBOX_APPLETS) entries.push({ name: `bin/${a}`, mode: S_IFLNK | 0o777, data: Buffer.from('busybox') });
  const names: string[] = [];
  for (const m of modules) {
    const name = basename(m);
    if (names.includes(name)) throw new TandemError(ERROR_CODES.lab, `two initramfs modules named ${name}`);
    names.push(name);
    entries.push({ name: `lib/modules/${name}`, mode: S_IFREG | 0o644, data: readFileSync(m) });
  }
  entries.push({ name: 'modules.order', mode: S_IFREG | 0o644, data: Buffer.from(`${names.join('\n')}\n`) });
  entries.push({ name: 'init', mode: S_IFREG | 0o755, data: initScript });

  await mkdir(cacheDir, { recursive: true });
  // Written under unique names and renamed, so concurrent runs never see half an image.
  const tmp = `${initramfs}.${process.pid}.${randomBytes(4).toString('hex')}`;
  await writeFile(tmp, cpioNewc(entries));
  await rename(tmp, initramfs);
  await writeFile(`${keyFile}.${process.pid}`, `${digest}\n`);
  await rename(`${keyFile}.${process.pid}`, keyFile);
  return image;
}

// ---------------------------------------------------------------------------------------------- running

/** `'...'` quoting for POSIX sh. */
export function shQuote(s: string): string {
  return `'${s.replaceAll("'", "'\\''")}'`;
}

/** The job script test/vm/init.sh runs: cd, exports, exec. */
export function jobScript(command: readonly string[], cwd: string, env: Readonly<Record<string, string>>): string {
  const lines = ['# written by src/lab/vm.ts; run by test/vm/init.sh inside the VM', `cd ${shQuote(cwd)} || exit 126`];
  for (const [k, v] of Object.entries(env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new TandemError(ERROR_CODES.usage, `invalid environment variable name ${JSON.stringify(k)}`);
    lines.push(`export ${k}=${shQuote(v)}`);
  }
  lines.push(`exec ${command.map(shQuote).join(' ')}`);
  return `${lines.join('\n')}\n`;
}

/** The kernel command line. */
function kernelCommandLine(extra: readonly string[]): string {
  if (/\s/.test(VM_INIT_SCRIPT)) throw new TandemError(ERROR_CODES.lab, `the checkout path must not contain white space (kernel command line): ${VM_INIT_SCRIPT}`);
  return [
    'console=ttyS0',
    'panic=-1',
    'quiet',
    'loglevel=3',
    'rdinit=/init',
    // Boot speed under TCG: no keyboard/mouse controller probing, no spectre-style mitigations, trust the TSC.
    'i8042.noaux',
    'i8042.nokbd',
    'i8042.nopnp',
    'mitigations=off',
    'tsc=reliable',
    'tandem.vm=1',
    `tandem.init=${VM_INIT_SCRIPT}`,
    `tandem.repo=${REPO_ROOT}`,
    ...extra,
  ].join(' ');
}

/** qemu's argv for one run. */
export function qemuArgv(image: VmImage, o: { memoryMb: number; cpus: number; shareDir: string; qemuArgs: readonly string[]; kernelArgs: readonly string[] }): string[] {
  if (/,/.test(o.shareDir)) throw new TandemError(ERROR_CODES.lab, `the share directory must not contain a comma (qemu option syntax): ${o.shareDir}`);
  return [
    '-accel', o.cpus > 1 ? 'tcg,thread=multi' : 'tcg',
    '-machine', 'pc',
    '-cpu', 'max',
    '-smp', String(o.cpus),
    '-m', String(o.memoryMb),
    '-nodefaults',
    '-no-user-config',
    '-display', 'none',
    '-serial', 'stdio',
    '-no-reboot',
    '-kernel', image.bootKernel,
    '-initrd', image.initramfs,
    '-append', kernelCommandLine(o.kernelArgs),
    '-virtfs', 'local,path=/,mount_tag=rootfs,security_model=none,readonly=on,multidevs=remap',
    '-virtfs', `local,path=${o.shareDir},mount_tag=results,security_model=none,multidevs=remap`,
    // The checkout again, mounted at its own path by init.sh after the tmpfs mounts: a checkout under /tmp
    // (CI clones anywhere) would otherwise be hidden by the VM's tmpfs on /tmp.
    '-virtfs', `local,path=${REPO_ROOT},mount_tag=project,security_model=none,readonly=on,multidevs=remap`,
    ...o.qemuArgs,
  ];
}

/** Reads a file's bytes from `offset` on (nothing if it does not exist yet). */
async function readFrom(path: string, offset: number): Promise<Buffer> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch {
    return Buffer.alloc(0);
  }
  try {
    const { size } = await fh.stat();
    if (size <= offset) return Buffer.alloc(0);
    const buf = Buffer.alloc(size - offset);
    const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

function parseTimings(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k !== undefined && v !== undefined && Number.isFinite(Number(v))) m.set(k, Number(v));
  }
  return m;
}

const CONSOLE_MAX = 4 * 1024 * 1024;

/**
 * Boots a fresh VM, runs `command` in it and returns the job's exit code and output. Throws VmError when the VM
 * gives no exit code (timeout, boot failure) and TandemError when something it needs is missing.
 */
export async function runInVm(opts: VmRunOptions): Promise<VmRunResult> {
  if (opts.command.length === 0) throw new TandemError(ERROR_CODES.usage, 'runInVm: empty command');
  const cwd = opts.cwd ?? REPO_ROOT;
  if (!isAbsolute(cwd)) throw new TandemError(ERROR_CODES.usage, `runInVm: cwd must be absolute (the VM sees the host's tree): ${cwd}`);
  if (!existsSync(cwd)) throw new TandemError(ERROR_CODES.usage, `runInVm: cwd ${cwd} does not exist on the host, so not in the VM either`);
  const image = await ensureVmImage();
  const cpus = opts.cpus ?? Math.min(2, availableParallelism());
  const memoryMb = opts.memoryMb ?? 2048;

  const ownShare = opts.shareDir === undefined;
  const shareDir = opts.shareDir ?? (await mkdtemp(join(tmpdir(), 'tandem-vm-')));
  await mkdir(shareDir, { recursive: true });
  for (const f of ['exit-code', 'stdout', 'stderr', 'timings']) await rm(join(shareDir, f), { force: true });
  await writeFile(join(shareDir, 'job.sh'), jobScript(opts.command, cwd, opts.env ?? {}));

  const argv = qemuArgv(image, { memoryMb, cpus, shareDir, qemuArgs: opts.qemuArgs ?? [], kernelArgs: opts.kernelArgs ?? [] });
  const started = performance.now();
  let consoleLog = '';
  let initWallMs: number | undefined;
  let timedOut = false;
  let spawnError: Error | undefined;

  // `ip netns exec` execs qemu, so the pid stays qemu's.
  const child =
    opts.netns === undefined
      ? spawn(image.qemu, argv, { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('ip', ['netns', 'exec', opts.netns, image.qemu, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  opts.onSpawn?.(child);
  // qemu must not outlive us: killed when this process exits, and on SIGINT/SIGTERM/SIGHUP, which are then
  // re-raised with their default action unless someone else listens for them.
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  const onSignal = (sig: NodeJS.Signals): void => {
    child.kill('SIGKILL');
    for (const s of signals) process.removeListener(s, onSignal);
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  };
  process.once('exit', killOnExit);
  for (const s of signals) process.on(s, onSignal);
  const onData = (chunk: Buffer): void => {
    consoleLog += chunk.toString('utf8');
    if (consoleLog.length > CONSOLE_MAX) consoleLog = consoleLog.slice(-CONSOLE_MAX / 2);
    opts.onConsole?.(chunk);
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);

  // Poll the share: stream output, and notice when init.sh has started.
  const offsets = { stdout: 0, stderr: 0 };
  let polling = false;
  const poll = async (): Promise<void> => {
    if (polling) return;
    polling = true;
    try {
      if (initWallMs === undefined && existsSync(join(shareDir, 'timings'))) initWallMs = performance.now() - started;
      if (opts.onOutput !== undefined) {
        for (const stream of ['stdout', 'stderr'] as const) {
          const chunk = await readFrom(join(shareDir, stream), offsets[stream]);
          if (chunk.length > 0) {
            offsets[stream] += chunk.length;
            opts.onOutput(stream, chunk);
          }
        }
      }
    } finally {
      polling = false;
    }
  };
  const ticker = setInterval(() => void poll(), 200);
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, opts.timeoutMs);

  const qemuExit = await new Promise<number | null>((resolveExit) => {
    child.once('error', (e) => {
      spawnError = e;
      resolveExit(null);
    });
    child.once('close', (code) => resolveExit(code));
  });
  clearTimeout(timer);
  clearInterval(ticker);
  process.removeListener('exit', killOnExit);
  for (const s of signals) process.removeListener(s, onSignal);
  while (polling) await new Promise((r) => setTimeout(r, 10));
  await poll();
  const wallMs = performance.now() - started;

  const read = (f: string): Promise<string> => readFile(join(shareDir, f), 'utf8').catch(() => '');
  const [stdout, stderr, exitText, timingText] = await Promise.all([read('stdout'), read('stderr'), read('exit-code'), read('timings')]);
  if (ownShare) await rm(shareDir, { recursive: true, force: true });

  const out = { console: consoleLog, stdout, stderr };
  const tail = (s: string, lines: number): string => (s.trim() === '' ? '(console empty)' : s.trimEnd().split('\n').slice(-lines).join('\n'));
  if (spawnError !== undefined) throw new VmError('start', `cannot start ${image.qemu}: ${spawnError.message}`, out, { cause: spawnError });
  if (timedOut) {
    throw new VmError('timeout', `VM timed out after ${(opts.timeoutMs / 1000).toFixed(0)} s running ${opts.command.join(' ')}; last console lines:\n${tail(consoleLog, 15)}`, out);
  }
  const exitCode = /^\d+$/.test(exitText.trim()) ? Number(exitText.trim()) : undefined;
  if (exitCode === undefined) {
    const stage = timingText === '' ? 'before test/vm/init.sh started (kernel or initramfs failure)' : 'after init.sh started but before the job finished';
    throw new VmError('no-exit-code', `VM stopped (qemu exit ${String(qemuExit)}) without an exit code, ${stage}; last console lines:\n${tail(consoleLog, 25)}`, out);
  }
  const t = parseTimings(timingText);
  const jobStart = t.get('job-start');
  const jobEnd = t.get('job-end');
  return {
    exitCode,
    stdout,
    stderr,
    console: consoleLog,
    timings: {
      bootToInitS: t.get('init'),
      initWallMs,
      jobS: jobStart !== undefined && jobEnd !== undefined ? jobEnd - jobStart : undefined,
      wallMs,
    },
  };
}

/** True inside a VM booted by runInVm (the kernel command line carries tandem.vm=1). */
export function insideTandemVm(): boolean {
  try {
    return readFileSync('/proc/cmdline', 'utf8').split(/\s+/).includes('tandem.vm=1');
  } catch {
    return false;
  }
}
