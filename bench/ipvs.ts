/**
 * bench:ipvs — programming the kernel's IPVS: tandem's netlink client against `ipvsadm -R`, for 1,000 TCP
 * services x 10 real servers (11,000 objects), plus one weight change and full dumps of that table.
 *
 * The build machine's kernel has no IPVS, so this boots ONE QEMU VM (src/lab/vm.ts: Debian's 6.1 kernel, TCG)
 * and runs bench/ipvs-in-vm.ts in it; every number is measured inside that VM. TCG emulates the CPU, so the
 * timings are many times slower than on hardware: compare them with each other, not with a real director.
 * Goal: tandem's cold programming >= 3x faster than `ipvsadm -R`.
 *
 *   npm run bench:ipvs
 *   SERVICES=1000 DESTS=10 RUNS=3 TIMEOUT_S=1800 npm run bench:ipvs
 */

import { REPO_ROOT, VmError, runInVm } from '../src/lab/vm.ts';
import { messageOf } from '../src/lib/errors.ts';

const timeoutS = Number(process.env['TIMEOUT_S'] ?? 1800);
const env: Record<string, string> = {};
for (const k of ['SERVICES', 'DESTS', 'RUNS']) {
  const v = process.env[k];
  if (v !== undefined) env[k] = v;
}

const fmt = (s: number | undefined): string => (s === undefined ? '?' : `${s.toFixed(1)} s`);

process.stdout.write('bench:ipvs — measured inside one QEMU VM under TCG (software CPU emulation, -accel tcg, 2 vCPUs): timings are relative\n');
try {
  const r = await runInVm({
    command: ['node', '--import', 'tsx', 'bench/ipvs-in-vm.ts'],
    cwd: REPO_ROOT,
    timeoutMs: timeoutS * 1000,
    env,
    onOutput: (stream, chunk) => (stream === 'stdout' ? process.stdout : process.stderr).write(chunk),
  });
  const t = r.timings;
  process.stdout.write(`vm: exit ${r.exitCode} (boot-to-init ${fmt(t.bootToInitS)}, job ${fmt(t.jobS)}, wall ${fmt(t.wallMs / 1000)})\n`);
  process.exitCode = r.exitCode;
} catch (e) {
  // The job's output so far was already streamed by onOutput.
  process.stderr.write(`bench:ipvs: FAILED${e instanceof VmError ? ` (${e.reason})` : ''}: ${messageOf(e)}\n`);
  process.exitCode = 1;
}
