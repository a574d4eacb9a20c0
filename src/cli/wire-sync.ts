/**
 * Wires connection sync into `tandem run` from the `sync` section: the CURVE keys, the kernel sync threads
 * (supervisor over netlink), the injector and the passive listener on the sync group, the resync channel
 * (server and client) and the sync service, with metrics and logs subscribed and the director's preemption
 * hold and master/backup state connected. Nothing here decides anything.
 */

import { networkInterfaces } from 'node:os';
import type { Registry } from 'prom-client';
import type { SyncConfig, TandemConfig } from '../config/types.ts';
import type { Director } from '../director/director.ts';
import { createIpvsClient } from '../ipvs/index.ts';
import type { Clock } from '../lib/clock.ts';
import type { Logger } from '../lib/log.ts';
import { createSyncMetrics } from '../metrics/index.ts';
import {
  DEFAULT_SYNC_MAXLEN,
  SyncClient,
  SyncDaemonSupervisor,
  SyncInjector,
  SyncServer,
  SyncService,
  loadSyncKeys,
  openSyncListener,
  openBacklogProbe,
  openSyncSender,
  procConnTable,
} from '../sync/index.ts';
import type { ChannelNode, SyncKeys } from '../sync/index.ts';

/** Loads the `sync.curve` key files (throws SyncError naming the file); undefined without a `sync` section. */
export function loadSyncKeyFiles(config: TandemConfig): SyncKeys | undefined {
  const s = config.sync;
  return s === undefined ? undefined : loadSyncKeys(s.curve.secretKeyFile, [s.curve.peerPublicKeyFile]);
}

export interface RunningSync {
  service: SyncService;
  stop(): Promise<void>;
}

/** The interface's own addresses: datagrams from them are this director's injections, not the peer's. */
function ownAddresses(ifname: string): Set<string> {
  return new Set((networkInterfaces()[ifname] ?? []).map((a) => a.address));
}

/**
 * Starts sync before the director starts (so preemption is held from the first advert); call `stop` after the
 * director stopped.
 */
export async function startSync(config: TandemConfig & { sync: SyncConfig }, director: Director, registry: Registry, clock: Clock, logger: Logger): Promise<RunningSync> {
  const s = config.sync;
  const log = logger.child({ component: 'sync' });
  const metrics = createSyncMetrics(registry);
  const keys = loadSyncKeyFiles(config)!;
  const ipvs = await createIpvsClient();
  const daemons = new SyncDaemonSupervisor(ipvs, clock, s);
  daemons.events.on(metrics.observeDaemon);
  daemons.events.on((e) => {
    if (e.type === 'daemon_checked') return;
    log.log(e.type === 'daemon_error' || e.type === 'daemon_missing' ? 'warn' : 'info', e.type.replace('_', ' '), { ...e });
  });
  await daemons.start(false);
  const backupMaxLen = (): number => daemons.running().find((d) => d.state === 'backup')?.maxLen ?? DEFAULT_SYNC_MAXLEN;
  const group = { interface: s.interface, group: s.group, port: s.port };
  const sender = await openSyncSender(group);
  // Injection waits for room in the backup thread's socket (its fill level in /proc/net/udp) instead of
  // overrunning it: a slow or busy kernel thread would drop the excess.
  const backlog = await openBacklogProbe(s.group, s.port);
  const injector = new SyncInjector(sender, clock, { syncId: s.syncId, maxLen: backupMaxLen(), backlog });
  injector.events.on(metrics.observeInjector);
  daemons.events.on((e) => {
    if (e.type === 'daemon_checked') injector.setMaxLen(backupMaxLen());
  });

  // HELLO carries a boot epoch (wall-clock seconds: only compared for equality) and the current role.
  const node: ChannelNode = { name: config.node.name, epoch: Math.floor(Date.now() / 1000) >>> 0, role: 'backup' };
  const service = new SyncService(
    {
      table: procConnTable(),
      sink: { inject: (entries) => injector.inject(entries) },
      clock,
      logger: log,
      node,
      setPreemptHold: (hold, reason) => director.setPreemptHold(hold, reason),
    },
    { resyncTimeoutMs: s.resyncTimeoutMs, repairIntervalMs: s.repairIntervalMs },
  );
  service.events.on(metrics.observeService);
  service.events.on((e) => {
    if (e.type === 'channel' && (e.event.type === 'zapDenied' || e.event.type === 'handshakeFailed' || e.event.type === 'malformed')) {
      log.log('warn', `sync channel ${e.event.type}`, { side: e.side, ...e.event });
    }
  });
  const server = await SyncServer.listen({ endpoint: s.listen, keys: keys.keys, allowedPeers: keys.peers, node, clock });
  const client = SyncClient.connect({
    endpoint: s.peer,
    serverPublicKey: keys.peers[0]!,
    keys: keys.keys,
    node,
    clock,
    onEntries: (entries, id) => service.receiveEntries(entries, id),
  });
  service.attach(server, client);
  const own = ownAddresses(s.interface);
  const listener = await openSyncListener(group, (d, source) => {
    if (!own.has(source)) service.observeSyncDatagram(d);
  });
  director.events.on((e) => {
    if (e.type !== 'transition') return;
    const isMaster = director.status().some((i) => i.state === 'MASTER');
    service.setMaster(isMaster);
    void daemons.setMaster(isMaster);
  });
  service.start();
  log.log('info', 'connection sync started', { interface: s.interface, sync_id: s.syncId, listen: server.endpoint, peer: s.peer, master_thread: s.masterThread });
  return {
    service,
    async stop() {
      listener.close();
      await service.stop();
      sender.close();
      await daemons.stop();
      ipvs.close();
    },
  };
}
