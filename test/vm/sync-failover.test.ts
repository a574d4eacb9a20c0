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
 * 3. The same with 30% of every director's sync multicast dropped by netem. Before the crash, idle filler
 *    connections are opened through the DR service until netem has dropped at least one of the master's sync
 *    datagrams (the kernel packs ~40 entries in one and flushes every 2 s, so the four client connections
 *    alone make too few to be sure of a loss); a repair round on the backup must find entries missing, and
 *    the periodic digest/delta repair must then fill the backup's table with every filler.
 *
 * Every echo is checked in order and from the same real server for the connection's whole life.
 */

import test from 'ava';
import { SyncLab } from '../../src/lab/sync-lab.ts';
import { requireVm } from './helpers.ts';
import { failoverAndFailback, failoverAndFailbackUnderLoss } from './sync-scenario.ts';

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
    await failoverAndFailbackUnderLoss(t, lab);
  } finally {
    await lab.destroy();
  }
});
