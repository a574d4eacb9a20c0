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
    let drops = 0;
    await failoverAndFailback(t, lab, async () => {
      drops = await lab.syncDrops('dirA');
    });
    t.log(`netem dropped ${drops} of the master VM's sync datagrams before the crash`);
    t.true(drops > 0, 'the loss was real');
  } finally {
    await lab.destroy();
  }
});
