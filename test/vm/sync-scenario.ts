/**
 * The connection-sync failover scenario shared by the namespace lab (test/vm/sync-failover.test.ts, inside one
 * VM) and the two-VM lab (test/vm2/sync-vms.test.ts, on the host): start both directors, hold a busy and an
 * idle connection through the DR and the NAT service, crash the master, bring it back empty and let it
 * preempt after its resync; every connection must survive with every echo in order from one real server.
 */

import type { ExecutionContext } from 'ava';
import { SYNC_LAB_NAT_PORT, SYNC_LAB_PORT, clientPortsIn } from '../../src/lab/sync-lab.ts';
import type { ClientEvent, DirectorLog, HeldConnections, SyncLabLike } from '../../src/lab/sync-lab.ts';
import type { LogRecord } from '../../src/lab/pair.ts';

const isMaster = (r: LogRecord) => r.msg === 'transition' && r.to === 'MASTER';
const isBackup = (r: LogRecord) => r.msg === 'transition' && r.to === 'BACKUP';
const isRepairDiff = (r: LogRecord) => r.msg === 'sync repair: table differs from the master';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface ConnSummary {
  sent: number;
  echoed: number;
  errors: string[];
  servers: string[];
  max_gap_s: number;
}

function summaryOf(e: ClientEvent, conn: 'busy' | 'idle'): ConnSummary {
  return e[conn] as ConnSummary;
}

export async function failoverAndFailback(t: ExecutionContext, lab: SyncLabLike, beforeCrash?: (logs: { dirA: DirectorLog; dirB: DirectorLog }) => Promise<void>): Promise<void> {
  const a = lab.start('dirA');
  const b = lab.start('dirB');
  await a.waitFor(isMaster, 120_000);
  await b.waitFor((r) => r.msg === 'connection sync started', 120_000);
  t.log(`dirA master; dirA hold: ${JSON.stringify(a.records.filter((r) => r.msg.startsWith('preemption')).map((r) => r.reason))}`);

  // A client per forwarding method, each with a busy and an idle connection.
  const clients = [
    { mode: 'DR', client: lab.startClient(0.02, 15, SYNC_LAB_PORT) },
    { mode: 'NAT', client: lab.startClient(0.02, 15, SYNC_LAB_NAT_PORT) },
  ];
  const idleEchoAfter = (at: number) => Promise.all(clients.map(({ client }) => client.waitFor((e) => e.ev === 'echo' && e.conn === 'idle' && e.t > at, 60_000)));
  try {
    for (const { client } of clients) {
      await client.waitFor((e) => e.ev === 'up' && e.conn === 'busy', 60_000);
      await client.waitFor((e) => e.ev === 'up' && e.conn === 'idle', 60_000);
    }
    // Give the kernel sync (and, under loss, the repair rounds every 3 s) time to reach dirB.
    await new Promise((r) => setTimeout(r, 8000));
    const repairs = b.records.filter(isRepairDiff);
    t.log(`dirB repair rounds that found differences before the crash: ${repairs.length} (missing: ${repairs.map((r) => String(r.missing)).join(', ')})`);
    const onB = await lab.connections('dirB');
    t.log(`dirB's table before the crash:\n${onB.trim()}`);

    await beforeCrash?.({ dirA: a, dirB: b });
    // 1. dirA crashes.
    const crashAt = Date.now() / 1000;
    const bFrom = b.records.length;
    await lab.crash('dirA');
    await b.waitFor(isMaster, 60_000, bFrom);
    t.log(`dirB took over ${(Date.now() / 1000 - crashAt).toFixed(1)} s after the crash`);
    await idleEchoAfter(crashAt);
    for (const { mode, client } of clients) t.deepEqual(client.events.filter((e) => e.ev === 'error'), [], `${mode}: no connection failed over the failover`);

    // 2. dirA comes back with an empty table and preempts only after its resync.
    await lab.restore('dirA');
    const a2 = lab.start('dirA');
    const bFrom2 = b.records.length;
    const master = await a2.waitFor(isMaster, 180_000);
    const failbackAt = Date.now() / 1000;
    const recs = a2.records;
    const released = recs.find((r) => r.msg === 'preemption allowed');
    t.truthy(released, 'dirA logged when it allowed preemption');
    t.regex(String(released?.reason), /^resync complete \(\d+ entries\)$/, `dirA released its hold because: ${String(released?.reason)}`);
    t.true(recs.indexOf(released!) < recs.indexOf(master), 'dirA preempted only after its resync completed');
    const resynced = recs.find((r) => r.msg === 'resync from the peer complete');
    t.log(`dirA resync: ${JSON.stringify(resynced)}; became master: ${String(master.reason)}`);
    t.true(Number(resynced?.entries) >= 4, 'the resync carried at least the four client connections');
    await b.waitFor(isBackup, 60_000, bFrom2);
    await idleEchoAfter(failbackAt);
    await new Promise((r) => setTimeout(r, 2000));
  } finally {
    for (const { mode, client } of clients) {
      const summary = await client.finish();
      const busy = summaryOf(summary, 'busy');
      const idle = summaryOf(summary, 'idle');
      t.log(`${mode} busy: ${busy.echoed} echoes, longest wait ${busy.max_gap_s.toFixed(2)} s, servers ${busy.servers.join(',')}; idle: ${idle.echoed} echoes, servers ${idle.servers.join(',')}`);
      t.deepEqual(busy.errors, [], `${mode}: the busy connection never failed`);
      t.deepEqual(idle.errors, [], `${mode}: the idle connection never failed`);
      t.is(busy.servers.length, 1, `${mode}: the busy connection stayed on one real server`);
      t.is(idle.servers.length, 1, `${mode}: the idle connection stayed on one real server`);
      t.true(idle.echoed >= 3, `${mode}: the idle connection sent through dirA, dirB and dirA again (${idle.echoed} echoes)`);
      t.true(busy.echoed > 1000, `${mode}: ${busy.echoed} busy echoes`);
    }
  }
}

/** Bounds of the filler phase of `failoverAndFailbackUnderLoss`. */
export interface FillerLimits {
  /** At most this many filler connections... */
  maxConnections: number;
  /** ...opened for at most this long (s), one every `gapS` s. */
  maxOpeningS: number;
  gapS: number;
  /** How long dirB's table may take to hold every filler after the last was opened (s). */
  repairWaitS: number;
}

const FILLER_LIMITS: FillerLimits = { maxConnections: 600, maxOpeningS: 90, gapS: 0.05, repairWaitS: 90 };

/**
 * The failover scenario on a lab that drops part of the sync multicast (`syncLossPercent`), with proof that the
 * loss lost entries and the repair filled them: before the crash, idle filler connections are opened through
 * the DR service until netem has dropped at least one of the master's sync datagrams (each filler is synced
 * once by the kernel, after its one line, so an entry in a dropped datagram never comes again from the
 * kernel); a repair round on dirB must then have found entries missing, and dirB's table must come to hold
 * every filler. The fillers are held by their own process until the scenario is over.
 */
export async function failoverAndFailbackUnderLoss(t: ExecutionContext, lab: SyncLabLike, limits: FillerLimits = FILLER_LIMITS): Promise<void> {
  let fillers: HeldConnections | undefined;
  try {
    await failoverAndFailback(t, lab, async ({ dirB }) => {
      fillers = lab.holdConnections(limits.maxConnections, limits.gapS, SYNC_LAB_PORT);
      await repairFillsWhatTheLossDropped(t, lab, dirB, fillers, limits);
    });
  } finally {
    await fillers?.close();
  }
}

async function repairFillsWhatTheLossDropped(t: ExecutionContext, lab: SyncLabLike, dirB: DirectorLog, fillers: HeldConnections, limits: FillerLimits): Promise<void> {
  const bFrom = dirB.records.length;
  const before = await lab.syncLoss('dirA');
  const openedFrom = Date.now();
  let stopped = false;
  void fillers.finished.then(
    () => (stopped = true),
    () => (stopped = true),
  );
  // Open fillers until netem has dropped one of dirA's sync datagrams (or the bounds are reached).
  let loss = before;
  while (!stopped && Date.now() - openedFrom < limits.maxOpeningS * 1000) {
    await sleep(500);
    loss = await lab.syncLoss('dirA');
    if (loss.dropped > before.dropped) break;
  }
  fillers.stopOpening();
  const opened = await fillers.finished;
  const lastOpenedAt = Date.now();
  const openingS = (lastOpenedAt - openedFrom) / 1000;
  // The kernel flushes its last partial buffer within 2 s; the VM lab's counters are dumped once a second.
  await sleep(4000);
  loss = await lab.syncLoss('dirA');
  const passed = loss.sent - before.sent;
  const dropped = loss.dropped - before.dropped;
  t.log(`fillers: ${opened} idle connections opened in ${openingS.toFixed(1)} s; netem on dirA's sync datagrams meanwhile: ${passed} passed, ${dropped} dropped`);
  if (dropped === 0) {
    throw new Error(`the 30% loss dropped none of dirA's ${passed} sync datagrams while ${opened} filler connections were opened in ${openingS.toFixed(1)} s (limits: ${limits.maxConnections} connections, ${limits.maxOpeningS} s): nothing for the repair to fill`);
  }

  // dirA forwards every filler, so its table has them all; dirB must come to hold every one of them.
  const cports = new Set(fillers.conns.map((c) => c.cport));
  let onA = new Set<number>();
  let missingOnB: number[] = [...cports];
  const deadline = lastOpenedAt + limits.repairWaitS * 1000;
  for (;;) {
    onA = new Set([...clientPortsIn(await lab.connections('dirA'))].filter((p) => cports.has(p)));
    const onB = clientPortsIn(await lab.connections('dirB'));
    missingOnB = [...cports].filter((p) => !onB.has(p));
    if ((onA.size === cports.size && missingOnB.length === 0) || Date.now() > deadline) break;
    await sleep(1000);
  }
  const completeAfterS = (Date.now() - lastOpenedAt) / 1000;
  const rounds = dirB.records.slice(bFrom).filter(isRepairDiff);
  const missingPerRound = rounds.map((r) => Number(r.missing));
  t.log(`dirB repair rounds that found entries missing since the fillers started: ${missingPerRound.filter((m) => m > 0).length} (missing per round: ${missingPerRound.join(', ') || 'none'}; most in one round ${Math.max(0, ...missingPerRound)})`);
  t.log(`dirB held ${cports.size - missingOnB.length} of ${cports.size} fillers ${completeAfterS.toFixed(1)} s after the last was opened (missing after repair: ${missingOnB.length})`);
  t.is(onA.size, cports.size, "dirA's table holds every filler connection it forwards");
  t.true(missingPerRound.some((m) => m > 0), 'a repair round on dirB found entries missing from its table (missing before repair > 0)');
  t.deepEqual(missingOnB, [], `within ${limits.repairWaitS} s of the last filler, dirB's table holds every filler of dirA's table (missing after repair = 0)`);
}
