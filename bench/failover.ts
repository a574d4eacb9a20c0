/**
 * bench:failover — takeover time over repeated master crashes at advert intervals 1 s, 100 ms and 20 ms
 * (median and worst), and false failovers during a soak at 20 ms with every core busy. Root; network
 * namespaces on this machine only.
 *
 *   npm run bench:failover                 # 20 kills per interval, 300 s soak
 *   KILLS=5 SOAK_S=30 npm run bench:failover
 */

import { DirectorPair, sleep, spawnShell, type DirectorName } from '../src/lab/pair.ts';
import { masterDownIntervalMs } from '../src/vrrp/machine.ts';

const KILLS = Number(process.env.KILLS ?? 20);
const SOAK_S = Number(process.env.SOAK_S ?? 300);
const INTERVALS = (process.env.INTERVALS ?? '1000,100,20').split(',').map(Number);
const PRIORITY = 100;

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] ?? NaN;
}

async function takeovers(intervalMs: number): Promise<number[]> {
  // Equal priorities and nopreempt: the revived director stays backup, so each round kills the current master.
  const pair = await DirectorPair.create({
    prefix: 'tbf',
    advertIntervalMs: intervalMs,
    priorities: { dirA: PRIORITY, dirB: PRIORITY },
    preempt: { dirA: false, dirB: false },
  });
  const out: number[] = [];
  try {
    pair.start('dirA', [], true);
    pair.start('dirB', [], true);
    await Promise.all([pair.waitStarted('dirA'), pair.waitStarted('dirB')]);
    // Equal priorities: both may claim mastership at start until the tie-break settles it; wait until one
    // owner has held the VIP for two master-down intervals.
    const down = masterDownIntervalMs(PRIORITY, intervalMs);
    let master: DirectorName = await pair.waitForSingleOwner(3 * down + 10_000);
    for (;;) {
      await sleep(2 * down);
      const again = await pair.waitForSingleOwner(3 * down + 10_000);
      if (again === master) break;
      master = again;
    }
    for (let k = 0; k < KILLS; k++) {
      const backup: DirectorName = master === 'dirA' ? 'dirB' : 'dirA';
      await sleep(Math.max(3 * intervalMs, 200));
      const from = pair.daemon(backup).records.length;
      const killAt = await pair.crash(master);
      const { vipAt } = await pair.waitMaster(backup, masterDownIntervalMs(PRIORITY, intervalMs) + 10_000, from);
      out.push(vipAt - killAt);
      await pair.revive(master);
      pair.start(master, [], true);
      await pair.waitStarted(master);
      master = backup;
    }
  } finally {
    await pair.destroy();
  }
  return out;
}

async function soak(intervalMs: number, seconds: number, realtime: boolean): Promise<{ transitions: number; falseFailovers: number; settledOwner: string }> {
  const pair = await DirectorPair.create({ prefix: 'tbs', advertIntervalMs: intervalMs, priorities: { dirA: 150, dirB: 100 } });
  const hogs = [spawnShell('while :; do :; done'), spawnShell('while :; do :; done')];
  try {
    pair.start('dirA', [], realtime);
    pair.start('dirB', [], realtime);
    await pair.waitMaster('dirA', 20_000);
    await sleep(2000);
    const fromA = pair.daemon('dirA').records.length;
    const fromB = pair.daemon('dirB').records.length;
    await sleep(seconds * 1000);
    const transitions = (name: DirectorName, from: number) => pair.daemon(name).records.slice(from).filter((r) => r.msg === 'transition');
    const owners = await pair.vipOwners();
    const all = [...transitions('dirA', fromA), ...transitions('dirB', fromB)];
    // A false failover is the backup taking the VIP while the master is alive.
    const falseFailovers = transitions('dirB', fromB).filter((r) => r.to === 'MASTER').length;
    return { transitions: all.length, falseFailovers, settledOwner: owners.join('+') };
  } finally {
    for (const h of hogs) h.kill('SIGKILL');
    await pair.destroy();
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:failover needs root (network namespaces)');
  console.log(`bench:failover — ${KILLS} crashes (kill -9 + link down) per interval, takeover = crash -> VIP in the backup's kernel; daemons with SCHED_FIFO 50 as the systemd unit runs them`);
  console.log('interval   master-down   median      p90         worst       (ms)');
  for (const iv of INTERVALS) {
    const t = (await takeovers(iv)).sort((a, b) => a - b);
    const f = (n: number) => n.toFixed(1).padEnd(12);
    console.log(`${`${iv} ms`.padEnd(11)}${f(masterDownIntervalMs(PRIORITY, iv))}  ${f(quantile(t, 0.5))}${f(quantile(t, 0.9))}${f(t[t.length - 1] ?? NaN)}  n=${t.length}`);
  }
  if (SOAK_S > 0) {
    for (const realtime of [false, true]) {
      const how = realtime ? 'SCHED_FIFO 50 (as the systemd unit runs it)' : 'default scheduling (SCHED_OTHER)';
      const s = await soak(20, SOAK_S, realtime);
      console.log(`soak ${SOAK_S} s at 20 ms adverts, two busy loops on the cores, daemons with ${how}: ${s.falseFailovers} false failovers (${s.transitions} transitions; VIP owner at the end: ${s.settledOwner})`);
    }
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
