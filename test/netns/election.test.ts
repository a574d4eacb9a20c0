/**
 * The election end to end, as root, in network namespaces: two `tandem run` daemons on one bridge with a
 * client, real UDP sockets, real addresses and real ARP. Timing bounds are the RFC 5798 intervals plus 50 ms.
 */

import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DirectorPair, sleep, type DirectorName, type LogRecord } from '../../src/lab/pair.ts';
import { run } from '../../src/lab/netns.ts';
import { masterDownIntervalMs, skewTimeMs } from '../../src/vrrp/machine.ts';

const ADVERT_MS = 100;
const SLACK_MS = 50;
const TOOL = join(import.meta.dirname, 'advert-tool.ts');
const TSX = join(import.meta.dirname, '../../node_modules/tsx/dist/esm/index.mjs');

test.before((t) => {
  if (process.getuid?.() !== 0) t.fail('the netns tier needs root (network namespaces); run it as root');
});

async function startPair(t: { teardown(fn: () => Promise<void>): void }, prefix: string, opts: Parameters<typeof DirectorPair.create>[0] | undefined = undefined): Promise<DirectorPair> {
  const pair = await DirectorPair.create({ prefix, advertIntervalMs: ADVERT_MS, ...opts });
  t.teardown(() => pair.destroy());
  // SCHED_FIFO as the systemd unit runs the daemons, so other work on the machine cannot delay adverts.
  pair.start('dirA', [], true);
  pair.start('dirB', [], true);
  await Promise.all([pair.waitStarted('dirA'), pair.waitStarted('dirB')]);
  return pair;
}

const transitions = (records: LogRecord[], from = 0) => records.slice(from).filter((r) => r.msg === 'transition');

test.serial('exactly one director holds the VIP; kill -9 of the master hands over within master-down + 50 ms and the client follows by gratuitous ARP', async (t) => {
  const pair = await startPair(t, 'tel1');
  await pair.waitMaster('dirA', 10_000);
  // Stable: exactly one owner, several advert intervals later.
  await sleep(5 * ADVERT_MS);
  t.deepEqual(await pair.vipOwners(), ['dirA']);
  const macA = pair.lab.host('dirA').mac;
  const macB = pair.lab.host('dirB').mac;
  t.is(await pair.clientLearnVip(), macA);

  const from = pair.daemon('dirB').records.length;
  const killAt = await pair.crash('dirA');
  const down = masterDownIntervalMs(100, ADVERT_MS);
  const b = await pair.waitMaster('dirB', 5000, from);
  const takeover = b.vipAt - killAt;
  t.log(`takeover ${takeover.toFixed(1)} ms (master-down interval ${down.toFixed(1)} ms)`);
  t.true(takeover <= down + SLACK_MS, `takeover ${takeover} ms > ${down + SLACK_MS} ms`);
  t.deepEqual(await pair.vipOwners(), ['dirB']);

  // The client sent nothing since it learned dirA's MAC; its entry must now say dirB, by gratuitous ARP.
  const deadline = Date.now() + 1000;
  let mac = await pair.clientVipMac();
  while (mac !== macB && Date.now() < deadline) {
    await sleep(10);
    mac = await pair.clientVipMac();
  }
  t.is(mac, macB);
});

test.serial('SIGTERM of the master hands over within skew time + 50 ms (priority-0 advert)', async (t) => {
  const pair = await startPair(t, 'tel2');
  await pair.waitMaster('dirA', 10_000);
  await sleep(3 * ADVERT_MS);
  const from = pair.daemon('dirB').records.length;
  const termAt = pair.terminate('dirA');
  const b = await pair.waitMaster('dirB', 5000, from);
  const skew = skewTimeMs(100, ADVERT_MS);
  const handover = b.vipAt - termAt;
  t.log(`handover ${handover.toFixed(1)} ms (skew ${skew.toFixed(1)} ms)`);
  t.true(handover <= skew + SLACK_MS, `handover ${handover} ms > ${skew + SLACK_MS} ms`);
  t.is(await pair.daemon('dirA').exited, 0);
  // A stopped director removed its VIP.
  t.deepEqual(await pair.vipOwners(), ['dirB']);
});

test.serial('preempt: a returning higher-priority director takes the VIP back', async (t) => {
  const pair = await startPair(t, 'tel3');
  await pair.waitMaster('dirA', 10_000);
  await pair.crash('dirA');
  await pair.waitMaster('dirB', 5000);
  await pair.revive('dirA');
  pair.start('dirA', [], true);
  await pair.waitMaster('dirA', 10_000);
  await sleep(3 * ADVERT_MS);
  t.deepEqual(await pair.vipOwners(), ['dirA']);
  t.is(transitions(pair.daemon('dirB').records).at(-1)?.to, 'BACKUP');
});

test.serial('nopreempt: a returning higher-priority director stays backup', async (t) => {
  const pair = await startPair(t, 'tel4', { prefix: 'tel4', preempt: { dirA: false, dirB: false } });
  await pair.waitForSingleOwner(10_000);
  const first = (await pair.vipOwners())[0] as DirectorName;
  const other: DirectorName = first === 'dirA' ? 'dirB' : 'dirA';
  await pair.crash(first);
  await pair.waitMaster(other, 5000, 0);
  await pair.revive(first);
  pair.start(first, [], true);
  await pair.waitStarted(first);
  // Longer than the returning node's master-down interval several times over: it must not take over.
  await sleep(4 * masterDownIntervalMs(150, ADVERT_MS));
  t.deepEqual(await pair.vipOwners(), [other]);
  t.deepEqual(transitions(pair.daemon(first).records).map((r) => r.to), ['BACKUP']);
});

test.serial('a forged advert (wrong key, priority 255) changes nothing and is counted as bad_mac', async (t) => {
  const pair = await startPair(t, 'tel5');
  await pair.waitMaster('dirA', 10_000);
  await sleep(3 * ADVERT_MS);
  const fromA = pair.daemon('dirA').records.length;
  const fromB = pair.daemon('dirB').records.length;
  for (const target of ['dirA', 'dirB'] as const) {
    await pair.lab.exec('client', ['node', '--import', TSX, TOOL, 'forge', pair.lab.host(target).address, '5112', '51', '255', '10.99.0.250', '30', '10']);
  }
  await sleep(5 * ADVERT_MS);
  t.deepEqual(transitions(pair.daemon('dirA').records, fromA), []);
  t.deepEqual(transitions(pair.daemon('dirB').records, fromB), []);
  t.deepEqual(await pair.vipOwners(), ['dirA']);
  const drop = await pair.daemon('dirA').waitFor((r) => r.msg === 'advert dropped' && r.reason === 'bad_mac', 1000, fromA);
  t.is(drop.source, pair.lab.host('client').address);
});

test.serial('a replayed advert changes nothing: replaying the dead master\'s adverts does not hold the backup off', async (t) => {
  const pair = await DirectorPair.create({ prefix: 'tel6', advertIntervalMs: ADVERT_MS, extraPeers: { dirA: ['10.99.0.10'] } });
  t.teardown(() => pair.destroy());
  const capture = join(pair.workDir, 'captured.hex');
  const cap = pair.lab.spawn('client', ['node', '--import', TSX, TOOL, 'capture', '10.99.0.10', '5112', '5', capture]);
  const capDone = new Promise((r) => cap.once('exit', r));
  pair.start('dirA', [], true);
  pair.start('dirB', [], true);
  await pair.waitMaster('dirA', 10_000);
  await capDone;
  t.is(readFileSync(capture, 'utf8').trim().split('\n').length, 5);

  const from = pair.daemon('dirB').records.length;
  const replay = pair.lab.spawn('client', ['node', '--import', TSX, TOOL, 'replay', capture, pair.lab.host('dirB').address, '5112', '200', '10']);
  t.teardown(() => { replay.kill('SIGKILL'); return Promise.resolve(); });
  await pair.daemon('dirB').waitFor((r) => r.msg === 'advert dropped' && r.reason === 'replay', 5000, from);
  const killAt = await pair.crash('dirA');
  const b = await pair.waitMaster('dirB', 5000, from);
  const takeover = b.vipAt - killAt;
  const down = masterDownIntervalMs(100, ADVERT_MS);
  t.log(`takeover under replay ${takeover.toFixed(1)} ms (master-down ${down.toFixed(1)} ms)`);
  t.true(takeover <= down + SLACK_MS, `takeover ${takeover} ms > ${down + SLACK_MS} ms`);
});

test.serial('multicast transport: one master, and a crash hands over', async (t) => {
  const pair = await startPair(t, 'tel7', { prefix: 'tel7', mode: 'multicast' });
  await pair.waitMaster('dirA', 10_000);
  await sleep(5 * ADVERT_MS);
  t.deepEqual(await pair.vipOwners(), ['dirA']);
  const from = pair.daemon('dirB').records.length;
  const killAt = await pair.crash('dirA');
  const b = await pair.waitMaster('dirB', 5000, from);
  t.true(b.vipAt - killAt <= masterDownIntervalMs(100, ADVERT_MS) + SLACK_MS);
});

test.serial('split brain heals: the lower-priority master yields and the winner re-announces, so the client follows it again', async (t) => {
  const pair = await startPair(t, 'tel8');
  await pair.waitMaster('dirA', 10_000);
  const macA = pair.lab.host('dirA').mac;
  const macB = pair.lab.host('dirB').mac;
  t.is(await pair.clientLearnVip(), macA);
  // Cut the election link both ways (the client still reaches both): each side believes it is alone.
  const nsA = pair.lab.host('dirA').ns;
  const nsB = pair.lab.host('dirB').ns;
  await run(['ip', '-n', nsA, 'route', 'add', 'unreachable', '10.99.0.3/32']);
  await run(['ip', '-n', nsB, 'route', 'add', 'unreachable', '10.99.0.2/32']);
  await pair.waitMaster('dirB', 5000);
  const waitMac = async (want: string) => {
    const deadline = Date.now() + 2000;
    let mac = await pair.clientVipMac();
    while (mac !== want && Date.now() < deadline) {
      await sleep(10);
      mac = await pair.clientVipMac();
    }
    return mac;
  };
  t.is(await waitMac(macB), macB, 'during the split the client follows the newer master');
  t.deepEqual((await pair.vipOwners()).sort(), ['dirA', 'dirB']);
  const fromA = pair.daemon('dirA').records.length;
  const fromB = pair.daemon('dirB').records.length;
  await run(['ip', '-n', nsA, 'route', 'del', 'unreachable', '10.99.0.3/32']);
  await run(['ip', '-n', nsB, 'route', 'del', 'unreachable', '10.99.0.2/32']);
  await pair.daemon('dirB').waitFor((r) => r.msg === 'transition' && r.to === 'BACKUP', 2000, fromB);
  await pair.daemon('dirA').waitFor((r) => r.msg.includes('re-announcing'), 2000, fromA);
  t.is(await waitMac(macA), macA, 'after the heal the client follows the winner again, without sending anything');
  t.deepEqual(await pair.vipOwners(), ['dirA']);
});
