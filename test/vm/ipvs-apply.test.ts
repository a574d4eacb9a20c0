/**
 * `tandem ipvs apply` and the reconciler against the real IPVS of the VM's kernel (Debian 6.1): the
 * all-features example applies (every service and real server shows in `ipvsadm -Sn`; `twos` fails with a
 * message naming Linux >= 6.2 and the rest applies), a second apply changes nothing, hand-made changes are healed
 * by the periodic reconciler within one interval and counted as drift while a foreign service is left alone,
 * and one weight change in the configuration is exactly one netlink change message (SET_DEST).
 *
 * Runs inside the VM only (requireVm). Every test starts from an empty IPVS table and no FULLNAT table, with its
 * own state directory; configurations are written to /tmp (the checkout is read-only in the VM).
 */

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { parse, stringify } from 'yaml';
import { loadConfig } from '../../src/config/index.ts';
import type { TandemConfig } from '../../src/config/index.ts';
import { FileOwnedStore, Reconciler, createIpvsClient, derive, findNft } from '../../src/ipvs/index.ts';
import type { ReconcilerEvent } from '../../src/ipvs/index.ts';
import { REPO_ROOT } from '../../src/lab/vm.ts';
import { run } from '../../src/lab/netns.ts';
import { SystemClock } from '../../src/lib/clock.ts';
import { MemoryLogger } from '../../src/lib/log.ts';
import { requireVm } from './helpers.ts';

const EXAMPLE = join(REPO_ROOT, 'config', 'ipvs-all-features.example.yaml');
/** nftables' nft (under npx, PATH finds @vercel/nft first). */
const NFT = findNft();

/** `ipvsadm -Sn` of the all-features example without `twos` (thresholds are not part of -S output). */
const EXPECTED_SAVE = [
  '-A -t 10.99.0.100:80 -s wlc',
  '-a -t 10.99.0.100:80 -r 10.99.1.21:80 -g -w 3',
  '-a -t 10.99.0.100:80 -r 10.99.1.22:80 -g -w 1',
  '-A -t 10.99.0.100:81 -s lc',
  '-a -t 10.99.0.100:81 -r 10.99.1.21:81 -i -w 1 --tun-type ipip',
  '-A -t 10.99.0.100:82 -s lblc',
  '-a -t 10.99.0.100:82 -r 10.99.1.21:82 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum',
  '-A -t 10.99.0.100:83 -s lblcr',
  '-a -t 10.99.0.100:83 -r 10.99.1.22:83 -i -w 1 --tun-type gue --tun-port 6081 --tun-remcsum',
  '-A -t 10.99.0.100:84 -s dh',
  '-a -t 10.99.0.100:84 -r 10.99.1.21:84 -i -w 1 --tun-type gre --tun-csum',
  '-A -t 10.99.0.100:85 -s sh -b sh-fallback,sh-port',
  '-a -t 10.99.0.100:85 -r 10.99.1.21:85 -g -w 1',
  '-a -t 10.99.0.100:85 -r 10.99.1.22:85 -g -w 1',
  '-A -t 10.99.0.100:86 -s sed',
  '-a -t 10.99.0.100:86 -r 10.99.1.21:86 -g -w 1',
  '-A -t 10.99.0.100:87 -s nq',
  '-a -t 10.99.0.100:87 -r 10.99.1.21:87 -g -w 1',
  '-A -t 10.99.0.100:88 -s fo',
  '-a -t 10.99.0.100:88 -r 10.99.1.21:88 -g -w 100',
  '-a -t 10.99.0.100:88 -r 10.99.1.22:88 -g -w 1',
  '-A -t 10.99.0.100:89 -s ovf',
  '-a -t 10.99.0.100:89 -r 10.99.1.21:89 -g -w 50',
  '-a -t 10.99.0.100:89 -r 10.99.1.22:89 -g -w 50',
  '-A -t 10.99.0.100:90 -s mh -b mh-fallback,mh-port',
  '-a -t 10.99.0.100:90 -r 10.99.1.21:90 -g -w 1',
  '-a -t 10.99.0.100:90 -r 10.99.1.22:90 -g -w 1',
  '-A -t 10.99.0.100:92 -s wrr -b flag-3',
  '-a -t 10.99.0.100:92 -r 10.99.1.21:92 -g -w 1',
  '-A -t 10.99.0.100:443 -s wlc -p 300 -M 255.255.255.0',
  '-a -t 10.99.0.100:443 -r 10.99.1.21:443 -g -w 1',
  '-a -t 10.99.0.100:443 -r 10.99.1.22:443 -g -w 1',
  '-A -t 10.99.0.100:8080 -s rr',
  '-a -t 10.99.0.100:8080 -r 10.99.1.21:80 -m -w 1',
  '-a -t 10.99.0.100:8080 -r 10.99.1.22:80 -m -w 0',
  '-A -t 10.99.0.100:8443 -s wrr',
  '-a -t 10.99.0.100:8443 -r 10.99.1.21:443 -m -w 2',
  '-a -t 10.99.0.100:8443 -r 10.99.1.22:443 -m -w 1',
  '-A -t 10.99.0.101:0 -s rr -p 120',
  '-a -t 10.99.0.101:0 -r 10.99.1.21:0 -g -w 1',
  '-A -u 10.99.0.100:53 -s rr -o',
  '-a -u 10.99.0.100:53 -r 10.99.1.21:53 -m -w 1',
  '-a -u 10.99.0.100:53 -r 10.99.1.22:53 -m -w 1',
  '-A -u 10.99.0.100:5060 -s rr -p 600 --pe sip',
  '-a -u 10.99.0.100:5060 -r 10.99.1.21:5060 -m -w 1',
  '-a -u 10.99.0.100:5060 -r 10.99.1.22:5060 -m -w 1',
  '-A --sctp-service 10.99.0.100:3868 -s wlc',
  '-a --sctp-service 10.99.0.100:3868 -r 10.99.1.21:3868 -m -w 1',
  '-A -t [fd00:99::100]:80 -s wlc -p 300 -M 64',
  '-a -t [fd00:99::100]:80 -r [fd00:99:1::21]:8080 -m -w 1',
  '-a -t [fd00:99::100]:80 -r [fd00:99:1::22]:8080 -m -w 1',
  '-A -t [fd00:99::100]:81 -s rr',
  '-a -t [fd00:99::100]:81 -r 10.99.1.21:81 -i -w 1 --tun-type ipip',
  '-A -t [fd00:99::100]:8443 -s rr',
  '-a -t [fd00:99::100]:8443 -r [fd00:99:1::21]:443 -m -w 1',
  '-A -f 7 -s wlc -p 300',
  '-a -f 7 -r 10.99.1.21:0 -g -w 1',
  '-a -f 7 -r 10.99.1.22:0 -g -w 1',
  '-A -f 8 -6 -s rr',
  '-a -f 8 -6 -r [fd00:99:1::21]:80 -m -w 1',
];

const FOREIGN_SAVE = '-A -u 10.0.0.1:53 -s rr';

/** Sorted non-empty lines. */
function lines(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l !== '')
    .sort();
}

async function saveLines(): Promise<string[]> {
  return lines(await run(['ipvsadm', '-Sn']));
}

/** An empty IPVS table and no FULLNAT table. */
async function reset(): Promise<void> {
  await run(['ipvsadm', '-C']);
  await run([NFT, 'delete', 'table', 'inet', 'tandem_fullnat'], { allowFail: true });
}

interface Variant {
  /** Leave the `twos` virtual server out. */
  withoutTwos?: boolean;
  /** Change one real server's weight: [virtual server name, real server index, weight]. */
  weight?: [string, number, number];
  intervalS?: number;
}

/** Writes a copy of the all-features example with its own state_dir (and the variant's changes); returns its path. */
function writeConfig(dir: string, name: string, v: Variant = {}): string {
  const data = parse(readFileSync(EXAMPLE, 'utf8')) as {
    node: { state_dir: string };
    ipvs: Record<string, unknown>;
    virtual_servers: Array<{ name: string; real_servers: Array<{ weight?: number }> }>;
  };
  data.node.state_dir = join(dir, 'state');
  data.ipvs['timeouts'] = { tcp: '901s', tcp_fin: '121s', udp: '301s' };
  if (v.intervalS !== undefined) data.ipvs['reconcile_interval'] = `${v.intervalS}s`;
  if (v.withoutTwos === true) data.virtual_servers = data.virtual_servers.filter((s) => s.name !== 'twos');
  if (v.weight !== undefined) {
    const [vs, i, w] = v.weight;
    const rs = data.virtual_servers.find((s) => s.name === vs)?.real_servers[i];
    if (rs === undefined) throw new Error(`no real server ${vs}[${i}]`);
    rs.weight = w;
  }
  const file = join(dir, name);
  writeFileSync(file, stringify(data));
  return file;
}

/** Runs `tandem ipvs apply` from the checkout; never rejects. */
function apply(file: string, ...extra: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src', 'cli', 'main.ts'), 'ipvs', 'apply', '-c', file, ...extra], { cwd: REPO_ROOT });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

async function waitFor(what: string, cond: () => boolean, timeoutMs: number): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The IPVS change commands (NEW/SET/DEL SERVICE, NEW/SET/DEL DEST) in a datagram sent to the IPVS family. */
const CHANGE_CMDS = new Map([
  [1, 'NEW_SERVICE'],
  [2, 'SET_SERVICE'],
  [3, 'DEL_SERVICE'],
  [5, 'NEW_DEST'],
  [6, 'SET_DEST'],
  [7, 'DEL_DEST'],
]);
const GENL_ID_CTRL = 0x10;

function changeCommands(datagram: Buffer): string[] {
  const out: string[] = [];
  let off = 0;
  while (off + 20 <= datagram.length) {
    const len = datagram.readUInt32LE(off);
    const type = datagram.readUInt16LE(off + 4);
    const cmd = datagram[off + 16] ?? 0;
    const name = CHANGE_CMDS.get(cmd);
    if (type !== GENL_ID_CTRL && name !== undefined) out.push(name);
    if (len < 16) break;
    off += (len + 3) & ~3;
  }
  return out;
}

test.serial('apply: every service and real server of the all-features example; twos fails clearly, the rest applies', async (t) => {
  requireVm();
  await reset();
  const dir = mkdtempSync('/tmp/tandem-apply-');
  const file = writeConfig(dir, 'all.yaml');
  const r = await apply(file);
  t.is(r.code, 1, `exit 1: one kernel error\n${r.stdout}\n${r.stderr}`);
  t.regex(r.stdout, /^\+ service TCP 10\.99\.0\.100:91 twos {2}FAILED ENOENT \(errno 2\): scheduler twos needs Linux >= 6\.2 \(this kernel is 6\.1\.[^)]*\)/m, r.stdout);
  t.regex(r.stdout, /^ipvs apply: 63 ops, 60 applied, 3 failed, timeouts set, fullnat replaced$/m, r.stdout);
  t.deepEqual(await saveLines(), [...EXPECTED_SAVE].sort());
  // Thresholds are not in -S output: check them in the listing.
  t.regex(await run(['ipvsadm', '-Ln', '--thresholds', '-t', '10.99.0.100:80']), /->\s+10\.99\.1\.21:80\s+1000\s+800\s/);
  t.regex(await run(['ipvsadm', '-Ln', '--timeout']), /Timeout \(tcp tcpfin udp\): 901 121 301/);
  // FULLNAT: the table, IPVS conntrack and forwarding.
  const nft = await run([NFT, 'list', 'table', 'inet', 'tandem_fullnat']);
  t.regex(nft, /ct original ip daddr 10\.99\.0\.100 ct original proto-dst 8443 snat ip to 10\.99\.1\.1/);
  t.regex(nft, /ct original ip6 daddr fd00:99::100 ct original proto-dst 8443 snat ip6 to fd00:99:1::1/);
  t.is(readFileSync('/proc/sys/net/ipv4/vs/conntrack', 'utf8').trim(), '1');
  t.is(readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim(), '1');
  // tandem owns what it created (and not twos, which it could not create).
  const owned = JSON.parse(readFileSync(join(dir, 'state', 'ipvs-owned.json'), 'utf8')) as { services: string[] };
  t.is(owned.services.length, 24);
  t.false(owned.services.includes('TCP 10.99.0.100:91'));
});

test.serial('a second apply changes nothing (only the impossible twos is retried); without twos it is 0 ops', async (t) => {
  requireVm();
  await reset();
  const dir = mkdtempSync('/tmp/tandem-apply-');
  const file = writeConfig(dir, 'all.yaml');
  await apply(file);
  const again = await apply(file);
  t.is(again.code, 1);
  t.deepEqual(
    again.stdout.split('\n').filter((l) => /^[+~-] /.test(l)).map((l) => l.replace(/ {2}FAILED.*/, '')),
    ['+ service TCP 10.99.0.100:91 twos', '+ dest TCP 10.99.0.100:91 -> 10.99.1.21:91 route w1', '+ dest TCP 10.99.0.100:91 -> 10.99.1.22:91 route w1'],
  );
  t.regex(again.stdout, /^ipvs apply: 3 ops, 0 applied, 3 failed, timeouts ok, fullnat in line$/m);
  const noTwos = writeConfig(dir, 'no-twos.yaml', { withoutTwos: true });
  const clean = await apply(noTwos);
  t.is(clean.code, 0, clean.stdout + clean.stderr);
  t.is(clean.stdout, 'ipvs apply: 0 ops, 0 applied, 0 failed, timeouts ok, fullnat in line\n');
  const dry = await apply(noTwos, '--dry-run');
  t.is(dry.code, 0);
  t.is(dry.stdout, 'ipvs apply: 0 ops, dry run: nothing applied, timeouts ok, fullnat in line\n');
});

test.serial('hand-made changes are healed by the periodic reconciler within one interval, as drift; a foreign service stays', async (t) => {
  requireVm();
  await reset();
  const dir = mkdtempSync('/tmp/tandem-apply-');
  const intervalMs = 2000;
  const config: TandemConfig = loadConfig(writeConfig(dir, 'no-twos.yaml', { withoutTwos: true, intervalS: intervalMs / 1000 }));
  const client = await createIpvsClient();
  const { store } = await FileOwnedStore.load(config.node.stateDir);
  const events: Array<{ at: number; e: ReconcilerEvent }> = [];
  const r = new Reconciler({ client, clock: new SystemClock(), logger: new MemoryLogger(), desired: () => derive(config), owned: store, intervalMs, manage: 'owned' });
  r.events.on((e) => events.push({ at: performance.now(), e }));
  const runs = (): Array<Extract<ReconcilerEvent, { type: 'ipvsReconciled' }>> => events.flatMap((x) => (x.e.type === 'ipvsReconciled' ? [x.e] : []));
  try {
    r.start();
    await waitFor('the first run', () => runs().length >= 1, 60_000);
    t.like(runs()[0], { reason: 'start', ok: true, failed: 0, drift: 0 });
    t.deepEqual(await saveLines(), [...EXPECTED_SAVE].sort());

    // Three hand-made changes in one ipvsadm process: a weight edit, a deleted real server, a foreign service.
    await new Promise<void>((resolve, reject) => {
      const p = spawn('ipvsadm', ['-R']);
      p.on('error', reject);
      p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`ipvsadm -R exited ${String(code)}`))));
      p.stdin.end(['-e -t 10.99.0.100:80 -r 10.99.1.21:80 -g -w 9', '-d -t 10.99.0.100:85 -r 10.99.1.22:85', FOREIGN_SAVE, ''].join('\n'));
    });
    const changedAt = performance.now();
    const before = runs().length;
    await waitFor('a run that heals the drift', () => runs().slice(before).some((x) => x.drift > 0), 60_000);
    const healing = events.find((x) => x.e.type === 'ipvsReconciled' && x.at > changedAt && x.e.drift > 0);
    const healed = healing?.e.type === 'ipvsReconciled' ? healing.e : undefined;
    t.like(healed, { reason: 'periodic', ok: true, ops: 2, drift: 2, applied: 2 });
    const took = (healing?.at ?? Infinity) - changedAt;
    t.true(took <= intervalMs + (healed?.durationMs ?? 0) + 1000, `healed ${took.toFixed(0)} ms after the change (interval ${intervalMs} ms)`);
    t.true(events.some((x) => x.e.type === 'ipvsDriftHealed' && x.e.ops === 2));
    t.deepEqual(await saveLines(), [...EXPECTED_SAVE, FOREIGN_SAVE].sort(), 'healed, and the foreign service is left alone');
    t.log(`drift healed ${took.toFixed(0)} ms after the hand-made change (interval ${intervalMs} ms, run ${healed?.durationMs.toFixed(0) ?? '?'} ms)`);
  } finally {
    await r.stop();
    client.close();
  }
});

test.serial('one weight change in the configuration is exactly one netlink change message (SET_DEST)', async (t) => {
  requireVm();
  await reset();
  const dir = mkdtempSync('/tmp/tandem-apply-');
  const base = loadConfig(writeConfig(dir, 'base.yaml', { withoutTwos: true }));
  const changed = loadConfig(writeConfig(dir, 'changed.yaml', { withoutTwos: true, weight: ['web-dr', 1, 5] }));
  let config = base;
  const sent: string[] = [];
  const client = await createIpvsClient({ trace: (ev) => void (ev.direction === 'send' && sent.push(...changeCommands(ev.datagram))) });
  const { store } = await FileOwnedStore.load(base.node.stateDir);
  const r = new Reconciler({ client, clock: new SystemClock(), logger: new MemoryLogger(), desired: () => derive(config), owned: store, intervalMs: 60_000, manage: 'owned' });
  try {
    const first = await r.reconcileOnce();
    t.true(first.ok);
    t.is(sent.length, 60, 'the first run sent one change message per op');
    sent.length = 0;
    config = changed;
    const rep = await r.reconcileOnce();
    t.deepEqual(sent, ['SET_DEST']);
    t.is(rep.ops.length, 1);
    t.true((await saveLines()).includes('-a -t 10.99.0.100:80 -r 10.99.1.22:80 -g -w 5'));
  } finally {
    await r.stop();
    client.close();
    await reset();
  }
});
