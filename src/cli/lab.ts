/**
 * `tandem lab`: the main demonstration. Builds two directors and a client in network namespaces, runs the
 * pair, crashes the master, brings it back (it preempts), stops it gracefully, and prints who owned the VIP
 * over time, the takeover times and the client's ARP entry for the VIP at each step.
 */

import { parseArgs } from 'node:util';
import { parseDuration } from '../lib/duration.ts';
import { messageOf } from '../lib/errors.ts';
import { DirectorPair, sleep, wallNow, type DirectorName } from '../lab/pair.ts';
import { masterDownIntervalMs, skewTimeMs } from '../vrrp/machine.ts';

interface OwnershipSample {
  at: number;
  owners: DirectorName[];
}

/** Polls VIP ownership every `everyMs` until stopped; keeps only changes. */
function watchOwnership(pair: DirectorPair, everyMs: number): { samples: OwnershipSample[]; stop: () => Promise<void> } {
  const samples: OwnershipSample[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const owners = await pair.vipOwners();
      const last = samples[samples.length - 1];
      if (last === undefined || last.owners.join() !== owners.join()) samples.push({ at: wallNow(), owners });
      await sleep(everyMs);
    }
  })();
  return { samples, stop: async () => { running = false; await loop; } };
}

function ms(n: number): string {
  return `${n.toFixed(1)} ms`;
}

export async function cmdLab(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { 'advert-interval': { type: 'string' }, prefix: { type: 'string' } } });
  const interval = parseDuration(values['advert-interval'] ?? '1s');
  if (interval === undefined || interval < 10) {
    process.stderr.write('tandem lab: --advert-interval must be a duration >= 10ms, e.g. 1s or 100ms\n');
    return 2;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('tandem lab: needs root to create network namespaces (run it with sudo)\n');
    return 1;
  }
  const out = (s: string) => process.stdout.write(`${s}\n`);
  const prioA = 150;
  const prioB = 100;
  out(`tandem lab: two directors (dirA priority ${prioA}, dirB priority ${prioB}) and a client on one bridge, advert interval ${interval} ms, HMAC-signed adverts`);
  const pair = await DirectorPair.create({ prefix: values.prefix ?? 'tlab', advertIntervalMs: interval, priorities: { dirA: prioA, dirB: prioB } });
  const t0 = wallNow();
  const rel = (t: number) => `t+${((t - t0) / 1000).toFixed(3)}s`;
  const macs = { dirA: pair.lab.host('dirA').mac, dirB: pair.lab.host('dirB').mac };
  const whoseMac = (mac: string | undefined) => (mac === macs.dirA ? 'dirA' : mac === macs.dirB ? 'dirB' : (mac ?? 'none'));
  const watch = watchOwnership(pair, 10);
  let failed = false;
  try {
    pair.start('dirA');
    pair.start('dirB');
    await Promise.all([pair.waitStarted('dirA'), pair.waitStarted('dirB')]);
    const down = masterDownIntervalMs(prioB, interval);
    await pair.waitMaster('dirA', down * 2 + 5000);
    const owner = await pair.waitForSingleOwner(2000);
    out(`${rel(wallNow())}  ${owner} is master and holds ${pair.vip}`);
    const learned = await pair.clientLearnVip();
    out(`${rel(wallNow())}  client resolved ${pair.vip} -> ${learned} (${whoseMac(learned)})`);

    await sleep(3 * interval);
    const fromB = pair.daemon('dirB').records.length;
    const killAt = await pair.crash('dirA');
    out(`${rel(killAt)}  dirA crashed (kill -9 and its link down)`);
    const b = await pair.waitMaster('dirB', down + 5000, fromB);
    out(`${rel(b.vipAt)}  dirB is master and holds the VIP: takeover ${ms(b.vipAt - killAt)} after the crash (master-down interval ${ms(down)})`);
    await sleep(Math.max(300, pair.opts.garp.intervalMs));
    const mac = await pair.clientVipMac();
    out(`${rel(wallNow())}  client's ARP entry for ${pair.vip} -> ${mac} (${whoseMac(mac)}), learned from gratuitous ARP: the client sent nothing`);

    await pair.revive('dirA');
    const restartAt = wallNow();
    pair.start('dirA');
    const a = await pair.waitMaster('dirA', 2 * down + 15_000);
    out(`${rel(a.vipAt)}  dirA restarted and preempted (higher priority): master ${ms(a.vipAt - restartAt)} after its start`);

    await sleep(3 * interval);
    const fromB2 = pair.daemon('dirB').records.length;
    const termAt = pair.terminate('dirA');
    out(`${rel(termAt)}  dirA stopped gracefully (SIGTERM: resigns with a priority-0 advert)`);
    const b2 = await pair.waitMaster('dirB', down + 5000, fromB2);
    out(`${rel(b2.vipAt)}  dirB is master: handover ${ms(b2.vipAt - termAt)} after SIGTERM (skew time ${ms(skewTimeMs(prioB, interval))})`);
    await sleep(200);
  } catch (e) {
    failed = true;
    process.stderr.write(`tandem lab: ${messageOf(e)}\n`);
  } finally {
    await watch.stop();
    out('\nVIP ownership over time (sampled every 10 ms):');
    for (const s of watch.samples) out(`  ${rel(s.at).padEnd(12)} ${s.owners.length === 0 ? '(nobody)' : s.owners.join(' + ')}`);
    await pair.destroy();
  }
  return failed ? 1 : 0;
}
