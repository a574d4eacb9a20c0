/**
 * `bash scripts/vm-run [options] -- <command...>`: runs a command in a fresh VM (src/lab/vm.ts) from the checkout,
 * streams its stdout and stderr, then prints one summary line on stderr:
 *   vm-run: exit 0 (boot-to-init 7.2 s, init seen 8.0 s, job 41.3 s, wall 49.9 s)
 * and exits with the command's exit code; 124 when the VM timed out, 125 when it gave no exit code or could not
 * start (the message and the console tail go to stderr).
 *
 * Options: --timeout SECONDS (default 1800), --memory MB (2048), --cpus N (2), --console (stream the serial
 * console to stderr), --cwd DIR (default the checkout), --env NAME=VALUE (repeatable; CI is passed through).
 */

import { REPO_ROOT, VmError, runInVm } from '../../src/lab/vm.ts';
import { messageOf } from '../../src/lib/errors.ts';

function usage(msg: string): never {
  process.stderr.write(`vm-run: ${msg}\nusage: bash scripts/vm-run [--timeout S] [--memory MB] [--cpus N] [--console] [--cwd DIR] [--env K=V]... -- command...\n`);
  process.exit(2);
}

const args = process.argv.slice(2);
let timeoutS = 1800;
let memoryMb = 2048;
let cpus: number | undefined;
let showConsole = false;
let cwd = REPO_ROOT;
const env: Record<string, string> = {};
if (process.env['CI'] !== undefined) env['CI'] = process.env['CI'];

const num = (v: string | undefined, name: string): number => {
  const n = Number(v);
  if (v === undefined || !Number.isFinite(n) || n <= 0) usage(`${name} needs a positive number`);
  return n;
};

let command: string[] = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--') {
    command = args.slice(i + 1);
    break;
  }
  if (a === '--timeout') timeoutS = num(args[++i], a);
  else if (a === '--memory') memoryMb = num(args[++i], a);
  else if (a === '--cpus') cpus = num(args[++i], a);
  else if (a === '--console') showConsole = true;
  else if (a === '--cwd') cwd = args[++i] ?? usage('--cwd needs a directory');
  else if (a === '--env') {
    const kv = args[++i] ?? usage('--env needs NAME=VALUE');
    const eq = kv.indexOf('=');
    if (eq <= 0) usage(`--env ${kv}: expected NAME=VALUE`);
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  } else usage(`unknown option ${String(a)}`);
}
if (command.length === 0) usage('no command (put it after --)');

const fmt = (s: number | undefined): string => (s === undefined ? '?' : `${s.toFixed(1)} s`);

try {
  const r = await runInVm({
    command,
    cwd,
    memoryMb,
    ...(cpus !== undefined ? { cpus } : {}),
    timeoutMs: timeoutS * 1000,
    env,
    onOutput: (stream, chunk) => {
      (stream === 'stdout' ? process.stdout : process.stderr).write(chunk);
    },
    ...(showConsole ? { onConsole: (chunk: Buffer) => void process.stderr.write(chunk) } : {}),
  });
  const t = r.timings;
  process.stderr.write(
    `vm-run: exit ${r.exitCode} (boot-to-init ${fmt(t.bootToInitS)}, init seen ${fmt(t.initWallMs === undefined ? undefined : t.initWallMs / 1000)}, job ${fmt(t.jobS)}, wall ${fmt(t.wallMs / 1000)})\n`,
  );
  process.exitCode = r.exitCode;
} catch (e) {
  process.stderr.write(`vm-run: FAILED: ${messageOf(e)}\n`);
  process.exitCode = e instanceof VmError && e.reason === 'timeout' ? 124 : 125;
}
