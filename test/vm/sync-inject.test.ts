/**
 * Injection into a real kernel (vm tier): the sync-thread supervisor starts a master and a backup thread on one
 * interface with the same syncid; the injector sends synthetic entries (TCP, UDP, fwmark persistence templates,
 * IPv6) as sync v1 datagrams to the local backup thread; every one of them then shows in /proc/net/ip_vs_conn
 * with its real server and state. Also: the datagrams never leave the host (TTL 0), a passive listener sees
 * them, datagrams the kernel must drop (other syncid, wrong size) create nothing, and a vanished backup thread
 * is restarted by the supervisor's check.
 */

import test from 'ava';
import { readFileSync } from 'node:fs';
import { createIpvsClient } from '../../src/ipvs/index.ts';
import type { IpvsClient } from '../../src/ipvs/index.ts';
import { run } from '../../src/lab/netns.ts';
import { SystemClock } from '../../src/lib/clock.ts';
import {
  SyncDaemonSupervisor,
  SyncInjector,
  connKey,
  decodeSyncMessage,
  openBacklogProbe,
  openSyncListener,
  openSyncSender,
  readProcConn,
  syncDatagrams,
  syntheticEntries,
} from '../../src/sync/index.ts';
import type { ConnEntry, SyncDaemonEvent } from '../../src/sync/index.ts';
import { requireVm } from './helpers.ts';

const IFACE = 'tsync0';
const SYNC_ID = 51;
const GROUP = { interface: IFACE, group: '224.0.0.81', port: 8848 };

async function setUpInterface(): Promise<void> {
  await run(['modprobe', 'dummy']);
  await run(['ip', 'link', 'del', IFACE], { allowFail: true });
  await run(['ip', 'link', 'add', IFACE, 'type', 'dummy']);
  // No IPv6 on it: its router solicitations and MLD reports would blur the "nothing left the host" count.
  await run(['sysctl', '-qw', `net.ipv6.conf.${IFACE}.disable_ipv6=1`]);
  await run(['ip', 'link', 'set', IFACE, 'multicast', 'on', 'up']);
  await run(['ip', 'addr', 'add', '10.9.2.1/24', 'dev', IFACE]);
}

/** Every row of the kernel's connection table, by connKey. */
async function kernelTable(): Promise<Map<string, ConnEntry>> {
  const out = new Map<string, ConnEntry>();
  for await (const row of readProcConn()) out.set(connKey(row.entry), row.entry);
  return out;
}

/** Polls until `entries` are all in the kernel table or `timeoutMs` passes; returns the ones still missing. */
async function waitForEntries(entries: readonly ConnEntry[], timeoutMs: number): Promise<{ missing: ConnEntry[]; table: Map<string, ConnEntry>; ms: number }> {
  const t0 = performance.now();
  for (;;) {
    const table = await kernelTable();
    const missing = entries.filter((e) => !table.has(connKey(e)));
    if (missing.length === 0 || performance.now() - t0 > timeoutMs) return { missing, table, ms: performance.now() - t0 };
    await new Promise((r) => setTimeout(r, 200));
  }
}

function txPackets(): number {
  return Number(readFileSync(`/sys/class/net/${IFACE}/statistics/tx_packets`, 'utf8'));
}

test.serial('injected entries (TCP, UDP, templates, IPv6) appear in the kernel table via the local backup thread', async (t) => {
  requireVm();
  await setUpInterface();
  const clock = new SystemClock();
  const ipvs: IpvsClient = await createIpvsClient();
  const sup = new SyncDaemonSupervisor(ipvs, clock, { interface: IFACE, syncId: SYNC_ID, group: GROUP.group, port: GROUP.port, ttl: 1, maxLen: 0, masterThread: 'always' });
  const events: SyncDaemonEvent[] = [];
  sup.events.on((e) => events.push(e));
  const sender = await openSyncSender(GROUP);
  let heard = 0;
  let heardMalformed = 0;
  const listener = await openSyncListener(GROUP, (d) => {
    if (decodeSyncMessage(d).ok) heard++;
    else heardMalformed++;
  });
  try {
    await sup.start(false);
    const running = await ipvs.listDaemons();
    t.deepEqual(running.map((d) => `${d.state} ${d.ifname} ${d.syncId}`), [`master ${IFACE} ${SYNC_ID}`, `backup ${IFACE} ${SYNC_ID}`], 'a master and a backup thread run side by side');
    const backup = sup.running().find((d) => d.state === 'backup');
    t.truthy(backup);
    const inj = new SyncInjector(sender, clock, { syncId: SYNC_ID, maxLen: backup?.maxLen ?? 1472 });

    const entries = [...syntheticEntries(2000, 10_000)];
    t.true(entries.some((e) => e.family === 6) && entries.some((e) => e.template) && entries.some((e) => e.protocol === 17), 'the mix has IPv6, templates and UDP');
    const tx0 = txPackets();
    const r = await inj.inject(entries);
    t.is(r.entries, entries.length);
    const { missing, table, ms } = await waitForEntries(entries, 30_000);
    t.log(`${r.entries} entries in ${r.datagrams} datagrams sent in ${r.durationMs.toFixed(0)} ms; all in /proc/net/ip_vs_conn ${ms.toFixed(0)} ms later`);
    t.deepEqual(missing.map(connKey).slice(0, 5), [], `${missing.length} of ${entries.length} injected entries are not in the kernel table`);
    for (const e of entries) {
      const k = table.get(connKey(e));
      if (k === undefined) continue;
      if (k.daddr !== e.daddr || k.dport !== e.dport || k.state !== e.state || k.timeoutS > e.timeoutS) {
        t.fail(`${connKey(e)}: kernel has ${k.daddr}:${k.dport} state ${k.state} expires ${k.timeoutS}, injected ${e.daddr}:${e.dport} state ${e.state} timeout ${e.timeoutS}`);
        break;
      }
    }
    // The interface may send an IGMP membership report of its own meanwhile (the listener joined the group):
    // allow two packets; the datagrams (255 entries each: the backup thread takes 64 KiB ones) sent with a TTL
    // above 0 would be counted here, each as several IP fragments.
    const tx = txPackets() - tx0;
    t.true(r.datagrams >= 7 && tx <= 2, `TTL 0: ${tx} packets left ${IFACE} while ${r.datagrams} datagrams were injected`);
    await new Promise((r) => setTimeout(r, 200));
    t.is(heard, r.datagrams, 'the passive listener co-bound next to the backup thread saw every datagram');
    t.is(heardMalformed, 0);

    // Datagrams the backup thread must drop: another syncid, and a size field that disagrees with the length.
    const other = [...syntheticEntries(50, 50_000)];
    for (const d of syncDatagrams(other.slice(0, 25), { syncId: SYNC_ID + 1 })) await sender.send(d);
    for (const d of syncDatagrams(other.slice(25), { syncId: SYNC_ID })) await sender.send(Buffer.concat([d, Buffer.alloc(4)]));
    await new Promise((r) => setTimeout(r, 1500));
    const after = await kernelTable();
    t.is(other.filter((e) => after.has(connKey(e))).length, 0, 'no entry of a dropped datagram was created');
    t.true(heardMalformed >= 1, 'the listener flagged the wrong-size datagram as malformed');

    // Someone stops the backup thread behind tandem's back: the next check restarts it and counts it.
    await ipvs.stopDaemon('backup');
    await sup.check();
    t.true((await ipvs.listDaemons()).some((d) => d.state === 'backup'));
    t.true(events.some((e) => e.type === 'daemon_missing' && e.state === 'backup'));
  } finally {
    listener.close();
    sender.close();
    await sup.stop();
    ipvs.close();
    await run(['ip', 'link', 'del', IFACE], { allowFail: true });
  }
});

/** Entries present in the kernel table, counted from the ip_vs_conn rows. */
async function presentCount(entries: readonly ConnEntry[]): Promise<number> {
  const table = await kernelTable();
  return entries.filter((e) => table.has(connKey(e))).length;
}

test.serial('a small backup socket: blind injection overruns it (the probe sees the drops), paced injection loses nothing', async (t) => {
  requireVm();
  await setUpInterface();
  // 2 KiB -> a 4 KiB socket: room for one or two 1472-byte datagrams (each weighs more than its length), so a
  // sender that runs even a few datagrams ahead of the backup thread overruns it, however fast the CPU.
  await run(['sysctl', '-qw', 'net.ipv4.vs.sync_sock_size=2048']);
  const clock = new SystemClock();
  const ipvs: IpvsClient = await createIpvsClient();
  const sender = await openSyncSender(GROUP);
  // tandem's passive listener is bound to the same group and port: the probe must tell the kernel's socket apart.
  const listener = await openSyncListener(GROUP, () => {});
  try {
    await ipvs.startDaemon({ state: 'backup', ifname: IFACE, syncId: SYNC_ID, maxLen: 0, group: GROUP.group, port: GROUP.port, ttl: 1 });
    const maxLen = (await ipvs.listDaemons()).find((d) => d.state === 'backup')?.maxLen ?? 1472;
    const probe = await openBacklogProbe(GROUP.group, GROUP.port);
    const first = await probe.read();
    t.truthy(first, 'the probe found the backup thread socket in /proc/net/udp');
    t.is(first?.capacityBytes, 4096);

    const blindEntries = [...syntheticEntries(20_000, 200_000)];
    const drops0 = first?.drops ?? 0;
    const blind = await new SyncInjector(sender, clock, { syncId: SYNC_ID, maxLen, datagramsPerSecond: 1e6 }).inject(blindEntries);
    await new Promise((r) => setTimeout(r, 1000));
    const blindDrops = ((await probe.read())?.drops ?? 0) - drops0;
    const blindPresent = await presentCount(blindEntries);
    t.log(`blind: ${blind.datagrams} datagrams in ${blind.durationMs.toFixed(0)} ms, kernel dropped ${blindDrops}; ${blindPresent} of ${blindEntries.length} entries in the table`);
    t.true(blindDrops > 0, 'sent as fast as the sender goes, a 4 KiB socket overflows');
    t.true(blindPresent < blindEntries.length);

    const pacedEntries = [...syntheticEntries(6000, 300_000)];
    const paced = await new SyncInjector(sender, clock, { syncId: SYNC_ID, maxLen, datagramsPerSecond: 1e6, backlog: probe }).inject(pacedEntries);
    const { missing, ms } = await waitForEntries(pacedEntries, 30_000);
    t.log(`paced: ${paced.datagrams} datagrams in ${paced.durationMs.toFixed(0)} ms (waited ${paced.backlogWaitMs.toFixed(0)} ms for room), kernel dropped ${String(paced.kernelDrops)}; all in the table ${ms.toFixed(0)} ms later`);
    t.is(paced.kernelDrops, 0);
    t.is(missing.length, 0, `${missing.length} paced entries missing`);
  } finally {
    listener.close();
    sender.close();
    await ipvs.stopDaemon('backup').catch(() => undefined);
    ipvs.close();
    await run(['sysctl', '-qw', 'net.ipv4.vs.sync_sock_size=0']);
    await run(['ip', 'link', 'del', IFACE], { allowFail: true });
  }
});
