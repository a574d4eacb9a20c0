/**
 * Connection sync with two QEMU VMs as the directors (src/lab/vm-sync-lab.ts), orchestrated from the host: a
 * busy (20 ms) and an idle (15 s) connection through a DR and a NAT service survive `kill -9` of the master
 * VM's qemu, and the failback when it boots again (empty) and preempts after its resync; then the same with 30%
 * of every director's outgoing sync multicast dropped by netem inside its VM. The scenario is test/vm/sync-scenario.ts, shared with the
 * namespace lab that runs inside one VM.
 */

import test from 'ava';
import { VmSyncLab } from '../../src/lab/vm-sync-lab.ts';
import { failoverAndFailback } from '../vm/sync-scenario.ts';

test.serial('two director VMs: busy and idle connections survive kill -9 of the master VM and the failback', async (t) => {
  const lab = await VmSyncLab.create({ prefix: 'v2' });
  try {
    await failoverAndFailback(t, lab);
  } finally {
    await lab.destroy();
  }
});

test.serial('two director VMs with 30% of the sync multicast lost: the connections still survive', async (t) => {
  const lab = await VmSyncLab.create({ prefix: 'v3', syncLossPercent: 30 });
  try {
    let loss = { sent: 0, dropped: 0 };
    await failoverAndFailback(t, lab, async () => {
      loss = await lab.syncLoss('dirA');
    });
    // The kernel master thread sends few datagrams (a buffer of up to 40 entries, flushed every 2 s), so a 30%
    // loss of a handful may drop none: what is proven is that its whole sync stream went through the lossy path.
    t.log(`netem on the master VM's sync datagrams before the crash: ${loss.sent} passed, ${loss.dropped} dropped`);
    t.true(loss.sent + loss.dropped > 0, 'the sync stream went through the 30% loss');
  } finally {
    await lab.destroy();
  }
});
