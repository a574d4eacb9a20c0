/**
 * VM tier: `tandem ipvs list|save` against the real ipvsadm 1.31 on Debian's kernel, live.
 * - Every fixture scenario (test/fixtures/ipvsadm/scenarios.ts) is rebuilt with ipvsadm; for every view (LIVE)
 *   and its single-service listings, the table dumped by tandem's netlink client and rendered by format.ts must
 *   equal ipvsadm's output byte for byte. Where counters move (the traffic scenario) ipvsadm is run before and after the dump and the pair is
 *   retried until both agree, so the comparison is exact, never approximate.
 * - One table with every scheduler, forwarding method, tunnel type and flag, IPv6, fwmarks, persistence, PE,
 *   thresholds, timeouts and both sync daemons: `bin/tandem ipvs list -n ...` and `bin/tandem ipvs save -n`,
 *   run as processes, print exactly what `ipvsadm -Ln ...` and `ipvsadm -Sn` print.
 * Run: bash scripts/vm-run -- npx ava --config ava.vm.config.js test/vm/ipvs-format.test.ts
 */

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { parseListArgs, renderList, type ListData } from '../../src/cli/ipvs-list.ts';
import { createIpvsClient } from '../../src/ipvs/netlink/index.ts';
import type { IpvsClient } from '../../src/ipvs/model.ts';
import { SCENARIOS, bash, capturesOf, ipvsadm, resetIpvs, traffic } from '../fixtures/ipvsadm/scenarios.ts';

const TANDEM = fileURLToPath(new URL('../../bin/tandem', import.meta.url));
const IN_VM = process.env['TANDEM_VM'] === '1';

let client: IpvsClient | undefined;

function theClient(): IpvsClient {
  if (client === undefined) throw new Error(IN_VM ? 'no IPVS client (see the before hook)' : 'run this file in the VM: bash scripts/vm-run -- npx ava --config ava.vm.config.js test/vm/ipvs-format.test.ts');
  return client;
}

test.before(async () => {
  if (IN_VM) client = await createIpvsClient();
});

test.after.always(() => {
  client?.close();
  if (IN_VM) resetIpvs();
});

/** Everything the kernel holds, read through tandem's client. */
async function snapshot(c: IpvsClient): Promise<ListData> {
  const [info, table, timeouts, daemons] = await Promise.all([c.info(), c.dump(), c.getTimeouts(), c.listDaemons()]);
  return { info, table, timeouts, daemons };
}

/** The listings compared live: every view once (the --nosort and --exact variants of the fixtures are left to the unit tier). */
const LIVE = new Set(['Ln.txt', 'Ln-nosort.txt', 'Ln-stats.txt', 'Ln-rate-exact.txt', 'Ln-thresholds.txt', 'Ln-persistent-conn.txt', 'Ln-tun-info.txt', 'Ln-timeout.txt', 'Ln-daemon.txt', 'Sn.txt']);

type T = { is: (a: unknown, b: unknown, m?: string) => void; fail: (m: string) => void };

/**
 * Each listing from ipvsadm vs tandem's rendering of one dump. A quiet table is read once; where counters move,
 * ipvsadm runs before and after the dump and the round is retried until both runs agree.
 */
async function expectSame(t: T, name: string, captures: ReturnType<typeof capturesOf>, moving: boolean): Promise<void> {
  const take = () => captures.map((c) => ipvsadm(c.ipvsadm));
  for (let attempt = 0; attempt < 20; attempt++) {
    const before = take();
    const data = await snapshot(theClient());
    if (moving && JSON.stringify(take()) !== JSON.stringify(before)) continue;
    captures.forEach((c, i) => {
      const [cmd, ...rest] = c.ipvsadm;
      const out = renderList(parseListArgs(cmd === '-S' ? 'save' : 'list', rest), data);
      if (!out.ok) return t.fail(`${name}: ${out.detail}`);
      t.is(out.value, before[i], `${name}: ipvsadm ${c.ipvsadm.join(' ')}`);
    });
    return;
  }
  t.fail(`${name}: ipvsadm never printed the same twice in a row`);
}

for (const s of SCENARIOS) {
  test.serial(`live ${s.name}: every listing equals ipvsadm's`, async (t) => {
    theClient();
    resetIpvs();
    bash(s.setup);
    if (s.traffic === true) await traffic();
    const captures = capturesOf(s).filter((c) => LIVE.has(c.file) || c.file.startsWith('Ln-service-'));
    await expectSame(t, s.name, captures, s.traffic === true);
  });
}

/** An `ipvsadm -a` line whose dest is of another family than its service (allowed for tunnels only). */
function mixedFamily(line: string): boolean {
  const m = /^ipvsadm -a (?:-t|-u|--sctp-service) (\S+) -r (\S+)/.exec(line);
  return m !== null && (m[1] ?? '').startsWith('[') !== (m[2] ?? '').startsWith('[');
}

/**
 * One table with everything: every scheduler, forwarding method, tunnel, flag, family, both daemons, timeouts.
 * Less the tunnels to a dest of the other family: the kernel refuses those while a sync daemon runs (EINVAL), and
 * the live `tunnels` scenario covers them.
 */
const EVERYTHING = [
  ...['basic', 'schedulers', 'tunnels', 'fwmark', 'ipv6', 'persistence', 'thresholds', 'daemons'].map((n) => SCENARIOS.find((s) => s.name === n)?.setup ?? ''),
  'ipvsadm --set 100 20 30',
]
  .join('\n')
  .split('\n')
  .filter((l) => !mixedFamily(l))
  .join('\n');

function run(cmd: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

let everythingBuilt = false;

/** Builds the EVERYTHING table once per VM boot (the CLI tests share it), with one Local dest added through tandem. */
async function everything(t: { deepEqual: (a: unknown, b: unknown) => void; regex: (s: string, r: RegExp) => void }): Promise<void> {
  if (everythingBuilt) return;
  theClient();
  resetIpvs();
  bash(EVERYTHING);
  // ipvsadm cannot ask for Local forwarding (its -g is Route); tandem's client can: ipvsadm lists it as Local.
  const local = await theClient().apply([
    {
      op: 'addDest',
      service: { kind: 'addr', family: 4, protocol: 'tcp', address: '10.99.0.100', port: 80 },
      dest: { family: 4, address: '127.0.0.1', port: 80, fwd: 'local', weight: 9, upperThreshold: 0, lowerThreshold: 0, tunnel: { type: 'ipip', port: 0, flags: 0 } },
    },
  ]);
  t.deepEqual(local, [{ ok: true }]);
  t.regex(run('ipvsadm', ['-L', '-n']).stdout, /-> 127\.0\.0\.1:80 {17}Local {3}9 /);
  everythingBuilt = true;
}

/** `bin/tandem ipvs list -n ARGS` must print what `ipvsadm -L -n ARGS` prints (each is a process under TCG: few). */
function compareCli(t: { is: (a: unknown, b: unknown, m?: string) => void }, args: string[]): void {
  const want = run('ipvsadm', ['-L', '-n', ...args]);
  const got = run(TANDEM, ['ipvs', 'list', '-n', ...args]);
  t.is(want.status, 0, want.stderr);
  t.is(got.status, 0, `tandem ipvs list -n ${args.join(' ')}: ${got.stderr}`);
  t.is(got.stdout, want.stdout, `list -n ${args.join(' ')}`);
}

test.serial('bin/tandem ipvs list -n [--stats|--rate|--timeout|--daemon] and save -n print what ipvsadm prints', async (t) => {
  await everything(t);
  for (const args of [[], ['--stats'], ['--rate'], ['--timeout'], ['--daemon']]) compareCli(t, args);
  t.true(run('ipvsadm', ['-L', '-n', '--daemon']).stdout.includes('backup sync daemon'), 'the daemons are running');
  const want = run('ipvsadm', ['-S', '-n']);
  const got = run(TANDEM, ['ipvs', 'save', '-n']);
  t.is(got.status, 0, got.stderr);
  t.is(got.stdout, want.stdout, 'save -n');
  t.true(want.stdout.split('\n').length > 80, 'a big table');
});

test.serial('bin/tandem ipvs list -n: the other views, one service, and a missing one', async (t) => {
  await everything(t);
  for (const args of [['--thresholds'], ['--tun-info', '--nosort'], ['--persistent-conn'], ['--rate', '--exact'], ['-t', '10.1.1.3:80'], ['--stats', '-f', '7', '-6']]) compareCli(t, args);
  // A service that does not exist: ipvsadm exits 1 with "No such service"; so does tandem.
  const wantMissing = run('ipvsadm', ['-L', '-n', '-t', '10.254.254.254:1']);
  const gotMissing = run(TANDEM, ['ipvs', 'list', '-n', '-t', '10.254.254.254:1']);
  t.is(gotMissing.status, wantMissing.status);
  t.is(gotMissing.stderr, wantMissing.stderr);
  t.is(gotMissing.stdout, wantMissing.stdout);
});
