/**
 * Connection sync end to end (vm tier): two directors running `tandem run` with a `sync` section, each its own
 * IPVS machine (a network namespace), DR and NAT real servers and clients (src/lab/sync-lab.ts). For each of
 * the DR and the NAT service a client holds a busy connection (a message every 20 ms) and an idle one (a
 * message every 15 s) through the VIP.
 *
 * 1. The master (dirA, priority 200) crashes: link down, every process SIGKILLed, its namespace with its IPVS
 *    table and sync threads deleted. dirB takes over with the entries its kernel backup thread got from dirA's
 *    master thread; both connections go on (a missing entry would mean a TCP reset from dirB).
 * 2. dirA comes back empty and starts. It holds preemption until dirB has streamed it the whole table over the
 *    CURVE channel (the idle connection is in no kernel sync stream any more: only the resync carries it), then
 *    preempts; both connections go on through dirA.
 * 3. The same with 30% of every director's sync multicast dropped by netem: the periodic digest/delta repair
 *    fills what the kernel sync lost.
 *
 * Every echo is checked in order and from the same real server for the connection's whole life.
 */

import test from 'ava';
import { SyncLab } from '../../src/lab/sync-lab.ts';
import { requireVm } from './helpers.ts';
import { failoverAndFailback } from './sync-scenario.ts';

test.serial('busy and idle connections survive a crash of the master and the failback of the returning director', async (t) => {
  requireVm();
  const lab = await SyncLab.create({ prefix: 'sf' });
  try {
    await failoverAndFailback(t, lab);
  } finally {
    await lab.destroy();
  }
});

test.serial('the same with 30% of the sync multicast lost: repair fills what the kernel sync dropped', async (t) => {
  requireVm();
  const lab = await SyncLab.create({ prefix: 'sl', syncLossPercent: 30 });
  try {
    let loss = { sent: 0, dropped: 0 };
    await failoverAndFailback(t, lab, async () => {
      loss = await lab.syncLoss('dirA');
    });
    // The kernel master thread sends few datagrams (a buffer of up to 40 entries, flushed every 2 s), so a 30%
    // loss of a handful may drop none: what is proven is that its whole sync stream went through the lossy path.
    t.log(`netem on the master's (dirA's) sync datagrams before the crash: ${loss.sent} passed, ${loss.dropped} dropped`);
    t.true(loss.sent + loss.dropped > 0, 'the sync stream went through the 30% loss');
  } finally {
    await lab.destroy();
  }
});
