/**
 * bench:sync — connection sync against a real kernel: (1) full resync time and rate for 10k, 100k and 1M
 * synthetic entries streamed over the CURVE channel and injected into the kernel table through its backup
 * sync thread (goal: 1M in <= 10 s), (2) creation -> presence lag of new connections from master to backup
 * (kernel sync threads between two director namespaces), (3) entries missing on the backup with 30% of the
 * sync multicast lost, before and after the digest/delta repair.
 *
 * The build machine's kernel has no IPVS, so this boots ONE QEMU VM (src/lab/vm.ts, TCG) and runs
 * bench/sync-in-vm.ts in it. TCG emulates the CPU: figures are many times slower than on hardware; compare
 * them with each other. Run it under the machine's VM lock:
 *
 *   flock /tmp/tandem-vm.lock npm run bench:sync
 *   SIZES=10000,100000 CONNS=100 TIMEOUT_S=1800 npm run bench:sync
 */

import { REPO_ROOT, VmError, runInVm } from '../src/lab/vm.ts';
import { messageOf } from '../src/lib/errors.ts';

const timeoutS = Number(process.env['TIMEOUT_S'] ?? 2400);
const env: Record<string, string> = {};
for (const k of ['SIZES', 'CONNS', 'PARTS']) {
  const v = process.env[k];
  if (v !== undefined) env[k] = v;
}
const fmt = (s: number | undefined): string => (s === undefined ? '?' : `${s.toFixed(1)} s`);

process.stdout.write('bench:sync — measured inside one QEMU VM under TCG (software CPU emulation, 2 vCPUs): timings are relative\n');
try {
  const r = await runInVm({
    command: ['node', '--import', 'tsx', 'bench/sync-in-vm.ts'],
    cwd: REPO_ROOT,
    timeoutMs: timeoutS * 1000,
    memoryMb: 3072,
    // The ip_vs_conn slab on its own, so /proc/slabinfo counts the connection table (see sync-in-vm.ts).
    kernelArgs: ['slab_nomerge'],
    env,
    onOutput: (stream, chunk) => (stream === 'stdout' ? process.stdout : process.stderr).write(chunk),
  });
  const t = r.timings;
  process.stdout.write(`vm: exit ${r.exitCode} (boot-to-init ${fmt(t.bootToInitS)}, job ${fmt(t.jobS)}, wall ${fmt(t.wallMs / 1000)})\n`);
  process.exitCode = r.exitCode;
} catch (e) {
  process.stderr.write(`bench:sync: FAILED${e instanceof VmError ? ` (${e.reason})` : ''}: ${messageOf(e)}\n`);
  process.exitCode = 1;
}
