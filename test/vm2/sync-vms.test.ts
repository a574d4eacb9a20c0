/**
 * Connection sync with two QEMU VMs as the directors (src/lab/vm-sync-lab.ts), orchestrated from the host: a
 * busy (20 ms) and an idle (15 s) connection through a DR and a NAT service survive `kill -9` of the master
 * VM's qemu, and the failback when it boots again (empty) and preempts after its resync; then the same with 30%
 * of every director's outgoing sync multicast dropped by netem inside its VM, where idle filler connections are
 * opened until a sync datagram was dropped and the repair must fill the backup's table with every one of them.
 * The scenario is test/vm/sync-scenario.ts, shared with the namespace lab that runs inside one VM.
 */

import test from 'ava';
import { VmSyncLab } from '../../src/lab/vm-sync-lab.ts';
import { failoverAndFailback, failoverAndFailbackUnderLoss } from '../vm/sync-scenario.ts';

test.serial('two director VMs: busy and idle connections survive kill -9 of the master VM and the failback', async (t) => {
  const lab = await VmSyncLab.create({ prefix: 'v2' });
  try {
    await failoverAndFailback(t, lab);
  } finally {
    await lab.destroy();
  }
});

test.serial('two director VMs with 30% of the sync multicast lost: repair fills what the loss dropped, the connections survive', async (t) => {
  const lab = await VmSyncLab.create({ prefix: 'v3', syncLossPercent: 30 });
  try {
    await failoverAndFailbackUnderLoss(t, lab);
  } finally {
    await lab.destroy();
  }
});
