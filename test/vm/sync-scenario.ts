/**
 * The connection-sync failover scenario shared by the namespace lab (test/vm/sync-failover.test.ts, inside one
 * VM) and the two-VM lab (test/vm2/sync-vms.test.ts, on the host): start both directors, hold a busy and an
 * idle connection through the DR and the NAT service, crash the master, bring it back empty and let it
 * preempt after its resync; every connection must survive with every echo in order from one real server.
 */

import type { ExecutionContext } from 'ava';
import { SYNC_LAB_NAT_PORT, SYNC_LAB_PORT } from '../../src/lab/sync-lab.ts';
import type { ClientEvent, SyncLabLike } from '../../src/lab/sync-lab.ts';
import type { LogRecord } from '../../src/lab/pair.ts';

const isMaster = (r: LogRecord) => r.msg === 'transition' && r.to === 'MASTER';
const isBackup = (r: LogRecord) => r.msg === 'transition' && r.to === 'BACKUP';

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

export async function failoverAndFailback(t: ExecutionContext, lab: SyncLabLike, beforeCrash?: () => Promise<void>): Promise<void> {
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
    const repairs = b.records.filter((r) => r.msg === 'sync repair: table differs from the master');
    t.log(`dirB repair rounds that found differences before the crash: ${repairs.length} (missing: ${repairs.map((r) => String(r.missing)).join(', ')})`);
    const onB = await lab.connections('dirB');
    t.log(`dirB's table before the crash:\n${onB.trim()}`);

    await beforeCrash?.();
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
