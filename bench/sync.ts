/**
 * bench:sync — connection sync against a real kernel: (1) full resync time and rate for 10k, 100k and 1M
 * synthetic entries streamed over the CURVE channel and injected into a kernel table through its backup sync
 * thread (goal: 1M in <= 10 s), (2) creation -> presence lag of new connections from master to backup
 * (kernel sync threads between two director namespaces), (3) entries missing on the backup with 30% of the
 * sync multicast lost, before and after the digest/delta repair.
 *
 * The build machine's kernel has no IPVS, so this boots ONE QEMU VM (src/lab/vm.ts, TCG) and runs
 * bench/sync-in-vm.ts in it. For (1) the VM is the receiving director and this process is its peer, the
 * master: two machines, as in production, joined by a tap (10.9.4.1 here, 10.9.4.2 in the VM). The master
 * streams synthetic entries (its /proc read is not part of the figure: see docs/operations.md); the VM
 * receives, checks, digests and injects them; the figure runs from the VM's first frame to the last entry in
 * its kernel table. TCG emulates the CPU: figures are many times slower than on hardware; compare them with
 * each other. Run it under the machine's VM lock:
 *
 *   flock /tmp/tandem-vm.lock npm run bench:sync
 *   SIZES=10000,100000 CONNS=100 TIMEOUT_S=1800 npm run bench:sync
 */

import { REPO_ROOT, VmError, runInVm } from '../src/lab/vm.ts';
import { run } from '../src/lab/netns.ts';
import { messageOf } from '../src/lib/errors.ts';
import { SyncServer, generateKeyPair, syntheticEntries } from '../src/sync/index.ts';
import type { ConnEntry } from '../src/sync/index.ts';

const timeoutS = Number(process.env['TIMEOUT_S'] ?? 2400);
const SIZES = (process.env['SIZES'] ?? '10000,100000,1000000').split(',').map(Number);
const PARTS = new Set((process.env['PARTS'] ?? 'resync,lag').split(','));
const TAP = 'tsbench0';
const HOST_ADDRESS = '10.9.4.1';
const VM_ADDRESS = '10.9.4.2';
const env: Record<string, string> = { SIZES: SIZES.join(',') };
for (const k of ['CONNS', 'PARTS', 'LOSS_CONNS', 'LOSS_REPAIR_INTERVAL']) {
  const v = process.env[k];
  if (v !== undefined) env[k] = v;
}
const fmt = (s: number | undefined): string => (s === undefined ? '?' : `${s.toFixed(1)} s`);
const say = (s: string): void => void process.stdout.write(`${s}\n`);

/** Lines the VM prints for the host (`drained ...`), by snapshot number. */
const drained = new Map<number, (line: string) => void>();
let stdoutTail = '';
function onVmStdout(chunk: Buffer): void {
  process.stdout.write(chunk);
  stdoutTail += chunk.toString('utf8');
  let nl: number;
  while ((nl = stdoutTail.indexOf('\n')) >= 0) {
    const line = stdoutTail.slice(0, nl);
    stdoutTail = stdoutTail.slice(nl + 1);
    const m = /^drained (\d+) /.exec(line);
    if (m !== null) drained.get(Number(m[1]))?.(line);
  }
}

/** Gives the host end of the VM's tap its address once qemu has made it. */
async function configureTap(): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if ((await run(['ip', 'link', 'show', TAP], { allowFail: true })) !== '') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await run(['ip', 'addr', 'add', `${HOST_ADDRESS}/24`, 'dev', TAP]);
  await run(['ip', 'link', 'set', TAP, 'up']);
}

/** The master's side of part (1): streams each size to the VM once it said HELLO, waits for its drain report. */
async function master(server: SyncServer): Promise<void> {
  const peer = await new Promise<string>((resolve) => server.events.on((e) => e.type === 'hello' && resolve(e.peer)));
  let start = 0;
  for (const [i, n] of SIZES.entries()) {
    const report = new Promise<string>((resolve) => drained.set(i, resolve));
    const entries = (function* (): Generator<ConnEntry> {
      for (const e of syntheticEntries(n, start)) yield { ...e, timeoutS: 3600 };
    })();
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    const r = await server.sendSnapshot(peer, entries, { estimate: n });
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    say(`master (this host): ${n} entries streamed, ACK ${r.ack.status} after ${(ms / 1000).toFixed(2)} s, ${(r.bytes / 1e6).toFixed(1)} MB, sender CPU ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s`);
    await report;
    start += n;
  }
}

say('bench:sync — measured in one QEMU VM under TCG (software CPU emulation, 2 vCPUs): timings are relative');
let server: SyncServer | undefined;
try {
  const keys = generateKeyPair();
  const vmKeys = generateKeyPair();
  let mastering: Promise<void> | undefined;
  if (PARTS.has('resync')) {
    server = await SyncServer.listen({
      endpoint: 'tcp://0.0.0.0:*', keys, allowedPeers: [vmKeys.publicKey],
      node: { name: 'bench-master', epoch: 1, role: 'master' }, ackTimeoutMs: timeoutS * 1000,
    });
    const port = /:(\d+)$/.exec(server.endpoint)?.[1];
    Object.assign(env, {
      SYNC_ENDPOINT: `tcp://${HOST_ADDRESS}:${String(port)}`, SYNC_SERVER_KEY: keys.publicKey,
      SYNC_CLIENT_PUBLIC: vmKeys.publicKey, SYNC_CLIENT_SECRET: vmKeys.secretKey,
    });
    mastering = master(server);
    mastering.catch(() => undefined);
  }
  let tapReady: Promise<unknown> = Promise.resolve();
  const r = await runInVm({
    command: ['node', '--import', 'tsx', 'bench/sync-in-vm.ts'],
    cwd: REPO_ROOT,
    timeoutMs: timeoutS * 1000,
    memoryMb: 3072,
    // The ip_vs_conn slab on its own, so /proc/slabinfo counts the connection table (see sync-in-vm.ts).
    kernelArgs: ['slab_nomerge', `tandem.ip=${VM_ADDRESS}/24`],
    qemuArgs: ['-netdev', `tap,id=n0,ifname=${TAP},script=no,downscript=no`, '-device', 'virtio-net-pci,netdev=n0'],
    onSpawn: () => {
      tapReady = configureTap().catch((e: unknown) => process.stderr.write(`bench:sync: tap ${TAP}: ${messageOf(e)}\n`));
    },
    env,
    onOutput: (stream, chunk) => (stream === 'stdout' ? onVmStdout(chunk) : process.stderr.write(chunk)),
  });
  await tapReady;
  const t = r.timings;
  say(`vm: exit ${r.exitCode} (boot-to-init ${fmt(t.bootToInitS)}, job ${fmt(t.jobS)}, wall ${fmt(t.wallMs / 1000)})`);
  process.exitCode = r.exitCode;
} catch (e) {
  process.stderr.write(`bench:sync: FAILED${e instanceof VmError ? ` (${e.reason})` : ''}: ${messageOf(e)}\n`);
  process.exitCode = 1;
} finally {
  await server?.close();
}
