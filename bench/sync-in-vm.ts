/**
 * The inside of bench:sync (bench/sync.ts boots the VM). Root in a VM whose kernel has IPVS.
 *
 * 1. Resync: this VM is the receiving director; the master is the host (bench/sync.ts), which streams each
 *    size of synthetic entries over CURVE through the VM's NIC (SYNC_ENDPOINT and keys in the environment).
 *    The SyncClient's batches go, in their wire form, through the injector (paced by the backup socket's fill
 *    level) to the kernel's backup sync thread (on a dummy interface). Reported per size: first frame -> last
 *    entry in the kernel table, entries/s, time to the ACK, entries in the table (ip_vs_conn slab) and
 *    missing, the injector's waits for room and the kernel's drops; then `drained I N PRESENT` for the host.
 * 2. Lag: two `tandem run` directors in namespaces (src/lab/sync-lab.ts); a client opens CONNS connections one
 *    by one; the time from each connection's creation to its presence in the backup's table (ipvsadm -Lnc
 *    polled) is the kernel sync lag master -> backup.
 * 3. Loss: netem drops 30% of the master's sync multicast; another CONNS connections. Reported: the entries
 *    missing on the backup at the first repair check (the digest comparison) and after the repair rounds.
 *
 * Env: SIZES (default 10000,100000,1000000), CONNS (default 100), PARTS (default resync,lag).
 */

import { createReadStream, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createIpvsClient } from '../src/ipvs/index.ts';
import { run } from '../src/lab/netns.ts';
import { SyncLab, SYNC_LAB_PORT, SYNC_LAB_VIP } from '../src/lab/sync-lab.ts';
import { SystemClock } from '../src/lib/clock.ts';
import { SyncClient, SyncInjector, backupMaxLen, openBacklogProbe, openSyncSender } from '../src/sync/index.ts';

const SIZES = (process.env['SIZES'] ?? '10000,100000,1000000').split(',').map(Number);
const CONNS = Number(process.env['CONNS'] ?? 100);
const PARTS = new Set((process.env['PARTS'] ?? 'resync,lag').split(','));
const FIXTURES = resolve(fileURLToPath(new URL('../test/fixtures/sync', import.meta.url)));
const say = (s: string): void => void process.stdout.write(`${s}\n`);

/**
 * Entries in the kernel table: the ip_vs_conn slab's active objects (the VM boots with slab_nomerge so the
 * cache is not merged with others; SLUB counts objects of per-CPU slabs as active, so this may exceed the table
 * by a few dozen). Reading /proc/net/ip_vs_conn instead costs a walk from the first hash bucket for every
 * page-sized read call (ip_vs_conn_seq_start), minutes under TCG for 1M entries.
 */
function slabConns(): number | undefined {
  const line = readFileSync('/proc/slabinfo', 'utf8').split('\n').find((l) => l.startsWith('ip_vs_conn '));
  return line === undefined ? undefined : Number(line.split(/\s+/)[1]);
}

async function procLines(): Promise<number> {
  let n = 0;
  for await (const chunk of createReadStream('/proc/net/ip_vs_conn', { highWaterMark: 1 << 20 })) {
    const b = chunk as Buffer;
    for (let i = b.indexOf(10); i !== -1; i = b.indexOf(10, i + 1)) n++;
  }
  return n - 1; // header
}

async function resyncBench(): Promise<void> {
  // A 1M-entry table wants a big hash table (the default 2^12 buckets means chains of 250 per lookup).
  const mods = readFileSync('/proc/modules', 'utf8').split('\n').map((l) => l.split(' ')[0] ?? '').filter((m) => m.startsWith('ip_vs'));
  await run(['modprobe', '-r', '-a', ...mods], { allowFail: true });
  await run(['modprobe', 'ip_vs', 'conn_tab_bits=20'], { allowFail: true });
  await run(['modprobe', 'ip_vs']);
  const size = /size=(\d+)/.exec(readFileSync('/proc/net/ip_vs', 'utf8'))?.[1];
  say(`ip_vs connection hash table: ${String(size)} buckets (module reloaded with conn_tab_bits=20)`);
  await run(['sysctl', '-qw', 'net.core.rmem_max=16777216']);
  await run(['sysctl', '-qw', 'net.ipv4.vs.sync_sock_size=8388608']);
  await run(['modprobe', 'dummy']);
  await run(['ip', 'link', 'add', 'tbench0', 'type', 'dummy']);
  await run(['sysctl', '-qw', 'net.ipv6.conf.tbench0.disable_ipv6=1']);
  await run(['ip', 'link', 'set', 'tbench0', 'multicast', 'on', 'up']);
  await run(['ip', 'addr', 'add', '10.9.3.1/24', 'dev', 'tbench0']);
  const ipvs = await createIpvsClient();
  // As tandem starts it: the largest receive buffer (sync/daemons.ts backupMaxLen).
  await ipvs.startDaemon({ state: 'backup', ifname: 'tbench0', syncId: 9, maxLen: backupMaxLen('224.0.0.81'), group: '224.0.0.81', port: 8848, ttl: 1 });
  const maxLen = (await ipvs.listDaemons()).find((d) => d.state === 'backup')?.maxLen ?? 1472;
  const clock = new SystemClock();
  const sender = await openSyncSender({ interface: 'tbench0', group: '224.0.0.81', port: 8848 });
  const backlog = await openBacklogProbe('224.0.0.81', 8848);
  const injector = new SyncInjector(sender, clock, { syncId: 9, maxLen, backlog });
  let waitedMs = 0;
  let kernelDrops = 0;
  injector.events.on((e) => {
    if (e.type !== 'injected') return;
    waitedMs += e.result.backlogWaitMs;
    kernelDrops += e.result.kernelDrops ?? 0;
  });
  const env = process.env;
  // The master is the host (bench/sync.ts), reached over the VM's NIC.
  const client = SyncClient.connect({
    endpoint: env['SYNC_ENDPOINT'] ?? '',
    serverPublicKey: env['SYNC_SERVER_KEY'] ?? '',
    keys: { publicKey: env['SYNC_CLIENT_PUBLIC'] ?? '', secretKey: env['SYNC_CLIENT_SECRET'] ?? '' },
    node: { name: 'bench-backup', epoch: 2, role: 'backup' },
    idleTimeoutMs: 600_000,
    onEntries: async (entries) => {
      await injector.inject(entries);
    },
  });
  say(`receiver: connects to the master at ${env['SYNC_ENDPOINT'] ?? '?'}; injector maxlen ${maxLen} (the backup thread's), paced by the backup socket's fill level; sync_sock_size 8 MiB`);
  say('entries   first frame -> all in kernel   entries/s   stream to ACK   in kernel (slab)   missing   injector waited   kernel drops');
  let expected = 0;
  const slab0 = slabConns() ?? 0;
  for (const [i, n] of SIZES.entries()) {
    const begun = new Promise<number>((resolve) => client.events.on((e) => e.type === 'snapshotBegin' && resolve(performance.now())));
    const acked = new Promise<number>((resolve) => client.events.on((e) => e.type === 'snapshotReceived' && resolve(performance.now())));
    const w0 = waitedMs;
    const d0 = kernelDrops;
    const t0 = await begun;
    const tAck = await acked;
    expected += n;
    // Until the backup thread has created them all (or stops making progress for 3 s).
    let present = (slabConns() ?? 0) - slab0;
    let last = -1;
    let still = 0;
    let tAll = performance.now();
    while (present < expected && still < 60) {
      await new Promise((res) => setTimeout(res, 50));
      present = (slabConns() ?? 0) - slab0;
      if (present !== last) tAll = performance.now();
      still = present === last ? still + 1 : 0;
      last = present;
    }
    const ms = tAll - t0;
    say(
      `${String(n).padStart(8)}   ${(ms / 1000).toFixed(2).padStart(22)} s   ${Math.round((n * 1000) / ms).toString().padStart(9)}   ${((tAck - t0) / 1000).toFixed(2).padStart(11)} s   ${String(present).padStart(16)}   ${String(Math.max(0, expected - present)).padStart(7)}   ${((waitedMs - w0) / 1000).toFixed(1).padStart(13)} s   ${String(kernelDrops - d0).padStart(12)}`,
    );
    if (n <= 10_000) {
      const lines = await procLines();
      say(`           cross-check: /proc/net/ip_vs_conn has ${lines} rows`);
    }
    say(`drained ${i} ${n} ${present}`);
  }
  client.close();
  sender.close();
  await ipvs.stopDaemon('backup');
  ipvs.close();
}

async function tableCports(lab: SyncLab, name: 'dirA' | 'dirB'): Promise<Set<number>> {
  const out = await lab.connections(name);
  const s = new Set<number>();
  for (const m of out.matchAll(/10\.99\.0\.10:(\d+)\s+10\.99\.0\.100:80/g)) s.add(Number(m[1]));
  return s;
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

interface Held {
  conns: Array<{ cport: number; t: number }>;
  close: () => void;
  /** Resolves when all connections are open. */
  finished: Promise<void>;
}

function holdConnections(lab: SyncLab, n: number): Held {
  const child = lab.lab.spawn('cli', ['/usr/bin/python3', '-u', join(FIXTURES, 'conn_holder.py'), SYNC_LAB_VIP, String(SYNC_LAB_PORT), String(n), '0.05'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const conns: Array<{ cport: number; t: number }> = [];
  let buf = '';
  const done = new Promise<void>((resolveP, reject) => {
    child.stdout?.setEncoding('utf8').on('data', (c: string) => {
      buf += c;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const o = JSON.parse(buf.slice(0, nl)) as { cport?: number; t?: number; done?: boolean };
        buf = buf.slice(nl + 1);
        if (o.done === true) resolveP();
        else if (o.cport !== undefined && o.t !== undefined) conns.push({ cport: o.cport, t: o.t * 1000 });
      }
    });
    child.once('exit', (code) => reject(new Error(`conn_holder exited ${String(code)}`)));
  });
  return { conns, close: () => child.stdin?.end(), finished: done };
}

async function lagAndLossBench(): Promise<void> {
  const lab = await SyncLab.create({ prefix: 'sb', repairInterval: '3s' });
  try {
    const a = lab.start('dirA');
    const b = lab.start('dirB');
    await a.waitFor((r) => r.msg === 'transition' && r.to === 'MASTER', 120_000);
    await b.waitFor((r) => r.msg === 'connection sync started', 120_000);

    // 2. Lag.
    const h = holdConnections(lab, CONNS);
    const seenAt = new Map<number, number>();
    const deadline = Date.now() + 120_000;
    let finished = false;
    void h.finished.then(() => (finished = true));
    while (Date.now() < deadline) {
      const onB = await tableCports(lab, 'dirB');
      const now = Date.now();
      for (const p of onB) if (!seenAt.has(p)) seenAt.set(p, now);
      if (finished && h.conns.every((c) => seenAt.has(c.cport))) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const lags = h.conns.filter((c) => seenAt.has(c.cport)).map((c) => seenAt.get(c.cport)! - c.t);
    say(`lag master -> backup (kernel sync, ${h.conns.length} new connections, backup polled with ipvsadm -Lnc): p50 ${pct(lags, 50).toFixed(0)} ms, p90 ${pct(lags, 90).toFixed(0)} ms, max ${Math.max(...lags).toFixed(0)} ms; never seen ${h.conns.length - lags.length}`);

    // 3. Loss.
    await lab.lossOnSync('dirA', 30);
    const bFrom = b.records.length;
    const h2 = holdConnections(lab, CONNS);
    await h2.finished;
    const firstCheck = await b.waitFor((r) => r.msg === 'sync repair: table differs from the master', 60_000, bFrom).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 15_000)); // five repair rounds
    const onA = await tableCports(lab, 'dirA');
    const onB = await tableCports(lab, 'dirB');
    const missing = [...onA].filter((p) => !onB.has(p)).length;
    const loss = await lab.syncLoss('dirA');
    say(`30% loss on the master's sync multicast (netem: ${loss.sent} datagrams passed, ${loss.dropped} dropped): first repair check found ${String(firstCheck?.missing ?? 0)} entries missing on the backup; after 15 s of repair rounds (every 3 s): ${missing} of ${onA.size} missing`);
    h.close();
    h2.close();
  } finally {
    await lab.destroy();
  }
}

if (PARTS.has('resync')) await resyncBench();
if (PARTS.has('lag')) await lagAndLossBench();
