/**
 * External program check (keepalived MISC_CHECK). The program runs detached, as the leader of its own process
 * group, with stdin closed and stdout+stderr captured (the first `maxOutputBytes` kept for the detail, the rest
 * read and discarded so the program never blocks on a full pipe).
 *
 * Exit codes follow keepalived's `misc_dynamic` when `dynamic` is set: 0 up, 1 down, 2..255 up with weight
 * (code - 2); otherwise 0 up and anything else down. A program killed by a signal is down (`signal`).
 *
 * Time limit: at `timeoutMs` the WHOLE process group gets SIGTERM, and SIGKILL `killGraceMs` later, so a script
 * that ignores SIGTERM and forks children leaves nothing behind. When the leader exits on its own, whatever it
 * left running in its group is SIGKILLed too: a health check must not leave processes behind. (A child that
 * calls setsid() leaves the group and escapes this; only a cgroup could catch it.)
 *
 * The program sees PATH, the spec's `env`, and TANDEM_CHECK_ADDRESS / TANDEM_CHECK_PORT (the target).
 */

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { messageOf } from '../../lib/errors.ts';
import type { CheckResult, CheckTarget, ScriptCheckSpec } from '../types.ts';
import { failure, finishResult, pass, sanitize } from './common.ts';
import type { Outcome } from './common.ts';

/** After SIGKILL, how long to wait for the leader's exit before reporting anyway (a process stuck in D state). */
const REAP_WAIT_MS = 2000;
/** After the leader exits, how long to wait for its pipes to drain before reporting. */
const PIPE_DRAIN_MS = 200;

/** Sends `signal` to the process group `pgid`; a group that is already gone is not an error. */
function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: every member has exited already.
  }
}

/** The outcome of an exit code, keepalived-style. */
export function exitOutcome(code: number, dynamic: boolean, output: string): Outcome {
  const tail = output === '' ? '' : `: ${output}`;
  if (code === 0) return pass(`exit 0${tail}`);
  if (dynamic && code >= 2 && code <= 255) return pass(`exit ${code} (weight ${code - 2})${tail}`, { weight: code - 2 });
  return failure('exit', `exit ${code}${tail}`);
}

/** One run of the program. Never throws. */
export function checkScript(target: CheckTarget, spec: Pick<ScriptCheckSpec, 'command' | 'dynamic' | 'timeoutMs' | 'killGraceMs' | 'maxOutputBytes' | 'env'>, signal: AbortSignal): Promise<CheckResult> {
  const started = performance.now();
  return new Promise<CheckResult>((resolve) => {
    const [program, ...args] = spec.command;
    if (program === undefined || program === '') {
      resolve(finishResult(failure('error', 'empty command'), started));
      return;
    }
    if (signal.aborted) {
      resolve(finishResult(failure('error', 'aborted before start'), started));
      return;
    }
    const kept: Buffer[] = [];
    let keptBytes = 0;
    let done = false;
    let exited = false;
    /** Why we are killing the group, once we are. */
    let killedFor: Outcome | undefined;
    const timers: NodeJS.Timeout[] = [];
    let child: ChildProcess;

    const output = (): string => {
      const text = Buffer.concat(kept, keptBytes).toString('utf8').trim();
      return sanitize(text.split('\n', 1)[0] ?? '');
    };
    const finish = (o: Outcome): void => {
      if (done) return;
      done = true;
      for (const t of timers) clearTimeout(t);
      signal.removeEventListener('abort', onAbort);
      child.stdout?.destroy();
      child.stderr?.destroy();
      resolve(finishResult(o, started));
    };
    const terminate = (why: Outcome): void => {
      if (killedFor !== undefined || exited || child.pid === undefined) return;
      killedFor = why;
      const pid = child.pid;
      killGroup(pid, 'SIGTERM');
      timers.push(setTimeout(() => killGroup(pid, 'SIGKILL'), spec.killGraceMs));
      timers.push(setTimeout(() => finish({ ...why, detail: `${why.detail}; process did not exit after SIGKILL` }), spec.killGraceMs + REAP_WAIT_MS));
    };
    const onAbort = (): void => terminate(failure('error', 'aborted'));

    try {
      child = spawn(program, args, {
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...spec.env, TANDEM_CHECK_ADDRESS: target.address, TANDEM_CHECK_PORT: String(target.port) },
      });
    } catch (e) {
      resolve(finishResult(failure('error', `cannot start ${sanitize(program, 80)}: ${sanitize(messageOf(e))}`), started));
      return;
    }
    const collect = (chunk: Buffer): void => {
      if (keptBytes >= spec.maxOutputBytes) return;
      const take = Math.min(spec.maxOutputBytes - keptBytes, chunk.length);
      kept.push(Buffer.from(chunk.subarray(0, take)));
      keptBytes += take;
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    child.stdout?.on('error', () => {});
    child.stderr?.on('error', () => {});
    child.on('error', (e) => {
      // spawn failure (ENOENT, EACCES): no process was created, or it is already gone.
      finish(failure('error', `cannot start ${sanitize(program, 80)}: ${sanitize(messageOf(e))}`));
    });
    child.on('exit', (code, sig) => {
      exited = true;
      // Whatever the leader left in its group goes with it.
      if (child.pid !== undefined) killGroup(child.pid, 'SIGKILL');
      const outcome = ((): Outcome => {
        if (killedFor !== undefined) return killedFor;
        if (sig !== null) return failure('signal', `killed by ${sig}${output() === '' ? '' : `: ${output()}`}`);
        return exitOutcome(code ?? 0, spec.dynamic, output());
      })();
      // Give the pipes a moment to deliver the last output, then report regardless.
      let pending = (child.stdout?.readableEnded === false ? 1 : 0) + (child.stderr?.readableEnded === false ? 1 : 0);
      if (pending === 0) {
        finish(outcome);
        return;
      }
      const ended = (): void => {
        if (--pending === 0) finish(outcome);
      };
      child.stdout?.once('close', ended);
      child.stderr?.once('close', ended);
      timers.push(setTimeout(() => finish(outcome), PIPE_DRAIN_MS));
    });
    signal.addEventListener('abort', onAbort, { once: true });
    timers.push(setTimeout(() => terminate(failure('timeout', `no exit within ${spec.timeoutMs} ms; process group killed`)), spec.timeoutMs));
  });
}
