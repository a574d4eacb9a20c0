/**
 * The script checker with real processes: keepalived misc_dynamic exit codes, output capping, and the
 * guarantee that a timed-out script which ignores SIGTERM and forks children leaves no process behind
 * (checked in /proc: no live process remains in its process group), nor does a script that exits leaving a
 * background child.
 */

import test from 'ava';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkScript, exitOutcome, withDefaults } from '../../src/healthcheck/index.ts';
import type { ScriptCheckSpec } from '../../src/healthcheck/index.ts';
import { FIXTURES } from '../fixtures/healthcheck/servers.ts';

const SCRIPTS = join(FIXTURES, 'scripts');
const target = { address: '127.0.0.1', port: 8080 };
const never = (): AbortSignal => new AbortController().signal;

function script(command: string[], over: Partial<Omit<ScriptCheckSpec, 'type' | 'command'>> = {}): ScriptCheckSpec {
  return withDefaults({ type: 'script', command, timeoutMs: 5000, ...over });
}

/** Live (not zombie) processes whose process group is `pgid`, or whose pid is in `pids`. */
function survivors(pgid: number, pids: readonly number[]): string[] {
  const alive: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited while we looked
    }
    // pid (comm) state ppid pgrp ...; comm may contain spaces, so split after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const state = rest[0];
    const pgrp = Number(rest[2]);
    if (state === 'Z' || state === 'X') continue;
    if (pgrp === pgid || pids.includes(Number(entry))) alive.push(`${entry} ${stat.slice(stat.indexOf('('), stat.lastIndexOf(')') + 1)} ${state}`);
  }
  return alive;
}

/** Polls until no survivor remains (SIGKILL delivery is asynchronous) or `ms` pass. */
async function waitForNoSurvivors(pgid: number, pids: readonly number[], ms = 3000): Promise<string[]> {
  const until = performance.now() + ms;
  for (;;) {
    const s = survivors(pgid, pids);
    if (s.length === 0 || performance.now() > until) return s;
    await new Promise((r) => setTimeout(r, 50));
  }
}

function readPids(file: string): number[] {
  return readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map(Number);
}

test('exit codes follow keepalived misc_dynamic: 0 up, 1 down, 2..255 up with weight code-2', (t) => {
  const table: Array<[number, boolean, boolean, number | undefined]> = [
    [0, true, true, undefined],
    [1, true, false, undefined],
    [2, true, true, 0],
    [3, true, true, 1],
    [102, true, true, 100],
    [255, true, true, 253],
    [0, false, true, undefined],
    [1, false, false, undefined],
    [2, false, false, undefined],
    [255, false, false, undefined],
  ];
  for (const [code, dynamic, ok, weight] of table) {
    const o = exitOutcome(code, dynamic, '');
    t.is(o.ok, ok, `exit ${code} dynamic=${dynamic}`);
    t.is(o.weight, weight, `exit ${code} dynamic=${dynamic}`);
    if (!ok) t.is(o.reason, 'exit');
  }
});

test('a real script: exit 0 up, exit 1 down, exit 52 up with weight 50, with its output and target in the detail', async (t) => {
  const up = await checkScript(target, script(['/bin/sh', join(SCRIPTS, 'exit-with.sh'), '0']), never());
  const down = await checkScript(target, script(['/bin/sh', join(SCRIPTS, 'exit-with.sh'), '1']), never());
  const weighted = await checkScript(target, script(['/bin/sh', join(SCRIPTS, 'exit-with.sh'), '52'], { dynamic: true }), never());
  t.like(up, { ok: true, reason: 'ok', detail: 'exit 0: checked 127.0.0.1:8080' });
  t.like(down, { ok: false, reason: 'exit' });
  t.like(weighted, { ok: true, weight: 50 });
});

test('a missing program is an error result', async (t) => {
  const r = await checkScript(target, script(['/nonexistent/check']), never());
  t.like(r, { ok: false, reason: 'error' });
  const empty = await checkScript(target, script([]), never());
  t.like(empty, { ok: false, reason: 'error' });
});

test('a script killed by a signal is down with reason signal', async (t) => {
  const r = await checkScript(target, script(['/bin/sh', '-c', 'kill -SEGV $$']), never());
  t.like(r, { ok: false, reason: 'signal' });
  t.regex(r.detail, /SIGSEGV/);
});

test('output is capped: 8 MiB of output is drained, only maxOutputBytes kept', async (t) => {
  const r = await checkScript(target, script(['/bin/sh', join(SCRIPTS, 'noisy.sh')], { maxOutputBytes: 4096 }), never());
  t.like(r, { ok: true });
  t.true(r.detail.length < 300, `detail of ${r.detail.length} chars`);
});

test('a script that ignores SIGTERM and forks children is killed with its whole group at the timeout', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-hc-'));
  const pidfile = join(dir, 'pids');
  try {
    const started = performance.now();
    const r = await checkScript(
      target,
      script(['/bin/sh', join(SCRIPTS, 'ignore-term-fork.sh')], { timeoutMs: 500, killGraceMs: 300, env: { PIDFILE: pidfile } }),
      never(),
    );
    const took = performance.now() - started;
    t.like(r, { ok: false, reason: 'timeout' });
    t.true(took >= 790 && took < 6000, `took ${took} ms (timeout 500 + grace 300)`);
    const pids = readPids(pidfile);
    t.true(pids.length >= 4, `recorded ${pids.join(',')}`);
    const leader = pids[0] ?? -1;
    t.deepEqual(await waitForNoSurvivors(leader, pids), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a script that exits leaving a background child: the child is killed too', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-hc-'));
  const pidfile = join(dir, 'pids');
  try {
    const r = await checkScript(target, script(['/bin/sh', join(SCRIPTS, 'leave-child.sh')], { env: { PIDFILE: pidfile } }), never());
    t.like(r, { ok: true });
    const pids = readPids(pidfile);
    t.deepEqual(await waitForNoSurvivors(-1, pids), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an abort kills the group too', async (t) => {
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 200);
  const dir = mkdtempSync(join(tmpdir(), 'tandem-hc-'));
  const pidfile = join(dir, 'pids');
  try {
    const r = await checkScript(target, script(['/bin/sh', join(SCRIPTS, 'ignore-term-fork.sh')], { killGraceMs: 200, env: { PIDFILE: pidfile } }), ac.signal);
    t.like(r, { ok: false, reason: 'error', detail: 'aborted' });
    const pids = readPids(pidfile);
    t.deepEqual(await waitForNoSurvivors(pids[0] ?? -1, pids), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
