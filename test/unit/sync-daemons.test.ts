/**
 * Tests of the kernel sync-thread supervisor (src/sync/daemons.ts): the pure plan, and the driver against a
 * fake kernel: both threads started at boot, a vanished thread restarted and counted at the next check, a
 * thread with other settings replaced, `while_master` following the director's state, errors reported, never
 * thrown.
 */

import test from 'ava';
import type { SyncDaemon } from '../../src/ipvs/index.ts';
import { FakeClock } from '../../src/lib/clock.ts';
import { NetlinkError } from '../../src/lib/errors.ts';
import { SyncDaemonSupervisor, daemonMatches, planDaemons, wantedDaemons } from '../../src/sync/daemons.ts';
import type { SyncDaemonControl, SyncDaemonEvent, SyncThreadSettings } from '../../src/sync/daemons.ts';

const SETTINGS: SyncThreadSettings = { interface: 'eth0', syncId: 51, group: '224.0.0.81', port: 8848, ttl: 1, maxLen: 0, masterThread: 'always' };

/** A kernel with at most one thread per state, as IPVS has (EEXIST on a second one, ESRCH on a missing one). */
class FakeKernel implements SyncDaemonControl {
  threads = new Map<'master' | 'backup', SyncDaemon>();
  readonly calls: string[] = [];
  failStart = false;
  async startDaemon(d: SyncDaemon): Promise<void> {
    this.calls.push(`start ${d.state}`);
    if (this.failStart) throw new NetlinkError(19, 'NEW_DAEMON', `${d.state} sync daemon on ${d.ifname}`);
    if (this.threads.has(d.state)) throw new NetlinkError(17, 'NEW_DAEMON', `${d.state} sync daemon`);
    this.threads.set(d.state, { ...d, maxLen: d.maxLen === 0 ? 1472 : d.maxLen });
  }
  async stopDaemon(state: 'master' | 'backup'): Promise<void> {
    this.calls.push(`stop ${state}`);
    if (!this.threads.delete(state)) throw new NetlinkError(3, 'DEL_DAEMON', `${state} sync daemon`);
  }
  async listDaemons(): Promise<SyncDaemon[]> {
    return (['master', 'backup'] as const).flatMap((s) => (this.threads.has(s) ? [{ ...this.threads.get(s)! }] : []));
  }
}

function supervise(kernel: FakeKernel, settings = SETTINGS) {
  const clock = new FakeClock();
  const sup = new SyncDaemonSupervisor(kernel, clock, settings, { checkIntervalMs: 5000 });
  const events: SyncDaemonEvent[] = [];
  sup.events.on((e) => events.push(e));
  return { clock, sup, events };
}

/** Lets the supervisor's queued promise chain run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
  await new Promise((r) => setImmediate(r));
}

test('wanted threads: backup always; master always, or only while master with while_master', (t) => {
  t.deepEqual(wantedDaemons(SETTINGS, false).map((d) => d.state), ['master', 'backup']);
  const wm = { ...SETTINGS, masterThread: 'while_master' as const };
  t.deepEqual(wantedDaemons(wm, false).map((d) => d.state), ['backup']);
  t.deepEqual(wantedDaemons(wm, true).map((d) => d.state), ['master', 'backup']);
});

test('the backup thread gets the largest receive buffer; the configured maxlen is the master thread\'s', (t) => {
  const [master, backup] = wantedDaemons({ ...SETTINGS, maxLen: 1400 }, true);
  t.is(master?.maxLen, 1400);
  t.is(backup?.maxLen, 65535 - 28);
  t.is(wantedDaemons({ ...SETTINGS, group: 'ff02::8848' }, false)[1]?.maxLen, 65535 - 48);
});

test('a running thread matches when its settings do; maxlen 0 accepts the kernel default', (t) => {
  const [w] = wantedDaemons(SETTINGS, true);
  t.true(daemonMatches(w!, { ...w!, maxLen: 1472 }));
  t.false(daemonMatches(w!, { ...w!, syncId: 52 }));
  t.false(daemonMatches(w!, { ...w!, ifname: 'eth1' }));
  t.false(daemonMatches({ ...w!, maxLen: 1200 }, { ...w!, maxLen: 1472 }));
});

test('plan: missing threads are started, mismatched ones restarted, a not-wanted own master stopped', (t) => {
  const wanted = wantedDaemons(SETTINGS, false);
  t.deepEqual(planDaemons(wanted, [], { initial: true, ownMaster: false }).start.map((s) => `${s.daemon.state}:${s.reason}`), ['master:initial', 'backup:initial']);
  const backup = wanted[1]!;
  const p = planDaemons(wanted, [{ ...backup, syncId: 9 }], { initial: false, ownMaster: true });
  t.deepEqual(p.stop, [{ state: 'backup', reason: 'mismatch' }]);
  t.deepEqual(p.start.map((s) => `${s.daemon.state}:${s.reason}`), ['master:missing', 'backup:mismatch']);
  const wm = wantedDaemons({ ...SETTINGS, masterThread: 'while_master' }, false);
  t.deepEqual(planDaemons(wm, [{ ...backup, state: 'master' }, backup], { initial: false, ownMaster: true }).stop, [{ state: 'master', reason: 'not_wanted' }]);
  t.deepEqual(planDaemons(wm, [{ ...backup, state: 'master' }, backup], { initial: false, ownMaster: false }).stop, [], 'a master thread someone else started is left alone');
});

test('supervisor: starts both threads, restarts a vanished backup thread at the next check and counts it', async (t) => {
  const kernel = new FakeKernel();
  const { clock, sup, events } = supervise(kernel);
  await sup.start(false);
  t.deepEqual([...kernel.threads.keys()].sort(), ['backup', 'master']);
  t.is(sup.running().find((d) => d.state === 'backup')?.maxLen, 65507, 'the kernel-effective maxlen is known');
  t.is(sup.running().find((d) => d.state === 'master')?.maxLen, 1472);
  kernel.threads.delete('backup'); // ipvsadm --stop-daemon backup, behind tandem's back
  clock.advance(5000);
  await settle();
  t.true(kernel.threads.has('backup'));
  t.deepEqual(events.filter((e) => e.type === 'daemon_missing'), [{ type: 'daemon_missing', state: 'backup' }]);
  t.is(events.filter((e) => e.type === 'daemon_started' && e.reason === 'missing').length, 1);
  clock.advance(5000);
  await settle();
  t.is(events.filter((e) => e.type === 'daemon_missing').length, 1, 'a healthy check changes nothing');
  await sup.stop();
  t.is(kernel.threads.size, 0);
});

test('supervisor: a thread with another syncid is replaced', async (t) => {
  const kernel = new FakeKernel();
  kernel.threads.set('backup', { state: 'backup', ifname: 'eth0', syncId: 7, maxLen: 1472, group: '224.0.0.81', port: 8848, ttl: 1 });
  const { sup, events } = supervise(kernel);
  await sup.start(false);
  t.is(kernel.threads.get('backup')?.syncId, 51);
  t.true(events.some((e) => e.type === 'daemon_stopped' && e.reason === 'mismatch'));
  await sup.stop();
});

test('supervisor: with while_master the master thread follows the director state', async (t) => {
  const kernel = new FakeKernel();
  const { sup, events } = supervise(kernel, { ...SETTINGS, masterThread: 'while_master' });
  await sup.start(false);
  t.deepEqual([...kernel.threads.keys()], ['backup']);
  await sup.setMaster(true);
  t.true(kernel.threads.has('master'));
  t.true(events.some((e) => e.type === 'daemon_started' && e.state === 'master' && e.reason === 'became_master'));
  await sup.setMaster(false);
  t.false(kernel.threads.has('master'));
  t.true(kernel.threads.has('backup'));
  await sup.stop();
});

test('supervisor: kernel refusals are reported as events, never thrown, and retried at the next check', async (t) => {
  const kernel = new FakeKernel();
  kernel.failStart = true;
  const { clock, sup, events } = supervise(kernel);
  await t.notThrowsAsync(sup.start(false));
  t.is(events.filter((e) => e.type === 'daemon_error' && e.op === 'start').length, 2);
  kernel.failStart = false;
  clock.advance(5000);
  await settle();
  t.is(kernel.threads.size, 2);
  await sup.stop();
});
