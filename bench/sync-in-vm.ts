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
 * 3. Loss (part of PARTS=lag, a lab of its own): netem drops 30% of the master's sync multicast and the repair
 *    runs only every LOSS_REPAIR_INTERVAL; LOSS_CONNS idle connections are opened back to back (each synced
 *    once by the kernel). Reported: datagrams passed and dropped; entries missing on the backup before repair
 *    (both tables compared with ipvsadm -Lnc once the kernel has flushed, before any repair round) and after
 *    the next repair round, and how long that round took to fill them.
 *
 * Env: SIZES (default 10000,100000,1000000), CONNS (default 100), LOSS_CONNS (default 600), LOSS_REPAIR_INTERVAL
 * (default 90s), PARTS (default resync,lag); bench/sync.ts passes them into the VM, with the resync master's
 * endpoint and keys.
 */

import { createReadStream, readFileSync } from 'node:fs';
import { createIpvsClient } from '../src/ipvs/index.ts';
import { run } from '../src/lab/netns.ts';
import type { DaemonProcess, LogRecord } from '../src/lab/pair.ts';
import { SyncLab, SYNC_LAB_PORT, clientPortsIn } from '../src/lab/sync-lab.ts';
import { SystemClock } from '../src/lib/clock.ts';
import { parseDuration } from '../src/lib/duration.ts';
import { SyncClient, SyncInjector, backupMaxLen, openBacklogProbe, openSyncSender } from '../src/sync/index.ts';

const SIZES = (process.env['SIZES'] ?? '10000,100000,1000000').split(',').map(Number);
const CONNS = Number(process.env['CONNS'] ?? 100);
const LOSS_CONNS = Number(process.env['LOSS_CONNS'] ?? 600);
const LOSS_REPAIR_INTERVAL = process.env['LOSS_REPAIR_INTERVAL'] ?? '90s';
const LOSS_REPAIR_INTERVAL_MS = parseDuration(LOSS_REPAIR_INTERVAL) ?? 90_000;
const PARTS = new Set((process.env['PARTS'] ?? 'resync,lag').split(','));
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
  return clientPortsIn(await lab.connections(name), SYNC_LAB_PORT);
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const isRepairDiff = (r: LogRecord) => r.msg === 'sync repair: table differs from the master';

/** Starts both directors of `lab`; resolves when dirA is master and dirB's connection sync has started. */
async function startDirectors(lab: SyncLab): Promise<{ a: DaemonProcess; b: DaemonProcess }> {
  const a = lab.start('dirA');
  const b = lab.start('dirB');
  await a.waitFor((r) => r.msg === 'transition' && r.to === 'MASTER', 120_000);
  await b.waitFor((r) => r.msg === 'connection sync started', 120_000);
  return { a, b };
}

/** 2. Lag: creation -> presence on the backup of CONNS new connections (repair every 3 s, no loss). */
async function lagBench(): Promise<void> {
  const lab = await SyncLab.create({ prefix: 'sb', repairInterval: '3s' });
  try {
    await startDirectors(lab);
    const h = lab.holdConnections(CONNS, 0.05);
    const seenAt = new Map<number, number>();
    const deadline = Date.now() + 120_000;
    let finished = false;
    void h.finished.then(() => (finished = true));
    while (Date.now() < deadline) {
      const onB = await tableCports(lab, 'dirB');
      const now = Date.now();
      for (const p of onB) if (!seenAt.has(p)) seenAt.set(p, now);
      if (finished && h.conns.every((c) => seenAt.has(c.cport))) break;
      await sleep(50);
    }
    const lags = h.conns.filter((c) => seenAt.has(c.cport)).map((c) => seenAt.get(c.cport)! - c.t);
    say(`lag master -> backup (kernel sync, ${h.conns.length} new connections, backup polled with ipvsadm -Lnc): p50 ${pct(lags, 50).toFixed(0)} ms, p90 ${pct(lags, 90).toFixed(0)} ms, max ${Math.max(...lags).toFixed(0)} ms; never seen ${h.conns.length - lags.length}`);
    await h.close();
  } finally {
    await lab.destroy();
  }
}

/**
 * 3. Loss, in a lab of its own whose repair runs only every LOSS_REPAIR_INTERVAL (90 s): LOSS_CONNS idle
 * connections opened back to back right after a repair-free start, each synced once by the kernel; once the
 * backup's table stops growing (the kernel has flushed), the two tables are compared directly (the raw loss),
 * then again once the repair has filled them.
 */
async function lossBench(): Promise<void> {
  const lab = await SyncLab.create({ prefix: 'sc', repairInterval: LOSS_REPAIR_INTERVAL, syncLossPercent: 30 });
  try {
    const { a, b } = await startDirectors(lab);
    // dirA streams dirB a full resync when dirB says hello and checks it with a digest 2 s later: let both pass.
    await a.waitFor((r) => r.msg === 'resync sent', 60_000).catch(() => undefined);
    await sleep(3000);
    const before = await lab.syncLoss('dirA');
    const bFrom = b.records.length;
    const openedFrom = Date.now();
    const h = lab.holdConnections(LOSS_CONNS, 0.005);
    const opened = await h.finished;
    const lastOpenedAt = Date.now();
    const cports = new Set(h.conns.map((c) => c.cport));
    // The kernel flushes a partial buffer after 2 s: wait until dirB's count of these connections has not grown
    // for 3 s (at most 30 s).
    let onB = new Set<number>();
    for (let still = 0, last = -1; still < 3 && Date.now() - lastOpenedAt < 30_000; ) {
      await sleep(1000);
      onB = new Set([...(await tableCports(lab, 'dirB'))].filter((p) => cports.has(p)));
      still = onB.size === last ? still + 1 : 0;
      last = onB.size;
    }
    const onA = new Set([...(await tableCports(lab, 'dirA'))].filter((p) => cports.has(p)));
    const measuredAt = Date.now();
    const missingBefore = [...onA].filter((p) => !onB.has(p)).length;
    const loss = await lab.syncLoss('dirA');
    const passed = loss.sent - before.sent;
    const dropped = loss.dropped - before.dropped;
    const early = b.records.slice(bFrom).filter(isRepairDiff);
    say(
      `30% loss on the master's sync multicast, ${opened} idle connections opened in ${((lastOpenedAt - openedFrom) / 1000).toFixed(1)} s (repair every ${LOSS_REPAIR_INTERVAL}): ` +
        `netem ${passed} datagrams passed, ${dropped} dropped; missing on the backup before repair (ipvsadm -Lnc on both, ${((measuredAt - lastOpenedAt) / 1000).toFixed(1)} s after the last): ${missingBefore} of ${onA.size}` +
        (early.length > 0 ? ` (NOTE: ${early.length} repair round(s) ran before this comparison, missing ${early.map((r) => String(r.missing)).join(', ')}: it counts only what was lost after them)` : ''),
    );

    // The next repair round: its digest comparison, then its delta; poll until dirB holds every one.
    const bFromRepair = b.records.length;
    const round = await b.waitFor(isRepairDiff, 3 * LOSS_REPAIR_INTERVAL_MS + 30_000, bFromRepair).catch(() => undefined);
    const roundAt = Date.now();
    let missingAfter = missingBefore;
    while (Date.now() - roundAt < 60_000) {
      const nowOnB = await tableCports(lab, 'dirB');
      missingAfter = [...onA].filter((p) => !nowOnB.has(p)).length;
      if (missingAfter === 0) break;
      await sleep(250);
    }
    const filledS = (Date.now() - roundAt) / 1000;
    say(
      round === undefined
        ? `no repair round found a difference within ${(3 * LOSS_REPAIR_INTERVAL_MS + 30_000) / 1000} s; missing after: ${missingAfter} of ${onA.size}`
        : `repair round ${((roundAt - measuredAt) / 1000).toFixed(1)} s after the comparison: its digest found ${String(round.missing)} missing (${String(round.buckets)} buckets); missing after repair: ${missingAfter} of ${onA.size}, ${filledS.toFixed(1)} s from the round's log record to the backup's table holding them (polled with ipvsadm -Lnc)`,
    );
    await h.close();
  } finally {
    await lab.destroy();
  }
}

async function lagAndLossBench(): Promise<void> {
  // The lab names each director's interface eth0 as it creates it here; the NIC the resync part talked to its
  // master over is eth0 too: renamed out of the way.
  if ((await run(['ip', 'link', 'show', 'eth0'], { allowFail: true })) !== '') {
    await run(['ip', 'link', 'set', 'eth0', 'down']);
    await run(['ip', 'link', 'set', 'eth0', 'name', 'vmnic0']);
  }
  await lagBench();
  await lossBench();
}

if (PARTS.has('resync')) await resyncBench();
if (PARTS.has('lag')) await lagAndLossBench();
