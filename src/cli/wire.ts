/**
 * Builds a running daemon from a validated configuration: the real adapters (UDP transport, rtnetlink VIPs,
 * packet-socket announcer), authentication, metrics, and the director. Nothing here decides anything.
 */

import type { TandemConfig } from '../config/types.ts';
import { virtualServersOf } from '../config/index.ts';
import { FileOwnedStore, FullnatReconciler, createIpvsClient, createNftHost, deriveFullnatRules } from '../ipvs/index.ts';
import type { IpvsClient } from '../ipvs/index.ts';
import { LvsDriver } from '../lvs/index.ts';
import { messageOf } from '../lib/errors.ts';
import { Director } from '../director/director.ts';
import type { Clock } from '../lib/clock.ts';
import type { Logger } from '../lib/log.ts';
import { createMetrics, serveMetrics } from '../metrics/index.ts';
import { createAnnouncer, createVipManager } from '../vip/index.ts';
import { AdvertSigner, SequenceSource, loadKeyFile, senderIdOf, type AuthKey } from '../vrrp/auth.ts';
import { loadAndBumpEpoch } from '../vrrp/epoch.ts';
import { AdvertIngress } from '../vrrp/ingress.ts';
import { UdpTransport } from '../vrrp/transport.ts';
import type { Server } from 'node:http';
import { startSync, type RunningSync } from './wire-sync.ts';

/** Per-source advert rate allowed: four times what the configured instances send, plus headroom. */
export function advertRateLimit(config: TandemConfig): { perSecond: number; burst: number } {
  const expected = config.vrrp.instances.reduce((sum, i) => sum + 1000 / i.advertIntervalMs, 0);
  const perSecond = Math.ceil(4 * expected + 20);
  return { perSecond, burst: perSecond };
}

/** Loads the authentication keys the configuration names (throws TandemError naming the file). */
export function loadAuthKeys(config: TandemConfig): AuthKey[] | undefined {
  return config.vrrp.auth === undefined ? undefined : loadKeyFile(config.vrrp.auth.keyFile);
}

export interface Daemon {
  director: Director;
  /** Present when the configuration has virtual servers. */
  lvs: LvsDriver | undefined;
  stop(): Promise<void>;
}

/**
 * The LVS driver (not started yet) of a configuration with virtual servers (IPVS client, owned-services store,
 * FULLNAT), or undefined when it has none. Throws when IPVS cannot be opened (no ip_vs module, no CAP_NET_ADMIN).
 */
async function startLvs(config: TandemConfig, clock: Clock, logger: Logger): Promise<{ lvs: LvsDriver; client: IpvsClient } | undefined> {
  if (virtualServersOf(config).length === 0) return undefined;
  let client: IpvsClient;
  try {
    client = await createIpvsClient();
  } catch (e) {
    throw new Error(`cannot open IPVS for virtual_servers: ${messageOf(e)} (needs root / CAP_NET_ADMIN and the ip_vs module)`, { cause: e });
  }
  const { store, warning } = await FileOwnedStore.load(config.node.stateDir);
  if (warning !== undefined) logger.log('warn', 'owned IPVS services', { warning });
  const fullnat = new FullnatReconciler({ host: createNftHost(), logger, desired: () => deriveFullnatRules(config) });
  return { lvs: new LvsDriver({ config, clock, logger, client, owned: store, fullnat }), client };
}

/** Wires and starts the daemon. */
export async function startDaemon(config: TandemConfig, clock: Clock, logger: Logger): Promise<Daemon> {
  const keys = loadAuthKeys(config);
  const auth = config.vrrp.auth;
  const senderId = senderIdOf(config.node.name);
  let sign = (frame: Buffer): Buffer => frame;
  if (auth !== undefined && keys !== undefined && auth.mode !== 'receive-only') {
    const first = loadAndBumpEpoch(config.node.stateDir, Math.floor(Date.now() / 1000));
    if (first.warning !== undefined) logger.log('warn', 'authentication epoch', { warning: first.warning, epoch: first.epoch });
    const sequence = new SequenceSource(first.epoch, () => loadAndBumpEpoch(config.node.stateDir, Math.floor(Date.now() / 1000)).epoch);
    const signer = new AdvertSigner(keys, auth.sendKeyId, senderId, sequence);
    sign = (frame) => signer.sign(frame);
    logger.log('info', 'adverts are signed', { key_id: signer.keyId, epoch: first.epoch, persisted: first.persisted });
  }
  const t = config.vrrp.transport;
  const ownAddresses = t.source === undefined ? [] : [t.source];
  const ingress = new AdvertIngress({
    auth: auth === undefined || keys === undefined ? undefined : { mode: auth.mode, keys },
    ownSenderId: senderId,
    ownAddresses,
    knownVrids: new Set(config.vrrp.instances.map((i) => i.vrid)),
    maxPeerPriority: config.vrrp.maxPeerPriority,
    rateLimit: advertRateLimit(config),
  });
  const metrics = createMetrics();
  const director = new Director({
    config,
    clock,
    logger,
    transport: new UdpTransport(t, config.node.interface),
    vips: createVipManager(),
    announcer: createAnnouncer(),
    ingress,
    sign,
  });
  director.events.on(metrics.observe);
  let server: Server | undefined;
  if (config.metrics.listen !== undefined) server = await serveMetrics(metrics.registry, config.metrics.listen);
  const closeServer = async (): Promise<void> => {
    if (server !== undefined) await new Promise<void>((r) => server.close(() => r()));
  };
  // Sync starts first: it holds preemption before the first advert is heard.
  const sync: RunningSync | undefined =
    config.sync === undefined
      ? undefined
      : await startSync({ ...config, sync: config.sync }, director, metrics.registry, clock, logger).catch(async (e: unknown) => {
          await closeServer();
          throw e;
        });
  // IPVS and health checks run on both directors whatever the election state: a failover moves only the VIPs.
  const lvs = await startLvs(config, clock, logger).catch(async (e: unknown) => {
    await sync?.stop();
    await closeServer();
    throw e;
  });
  if (lvs !== undefined) {
    // Subscribe before start: the initial states are events too.
    lvs.lvs.monitor.events.on(metrics.observeHealth);
    lvs.lvs.reconciler.events.on(metrics.observeIpvs);
    lvs.lvs.events.on(metrics.observeLvs);
    try {
      lvs.lvs.start();
    } catch (e) {
      lvs.client.close();
      await sync?.stop();
      await closeServer();
      throw e;
    }
  }
  await director.start();
  return {
    director,
    lvs: lvs?.lvs,
    async stop() {
      await director.stop();
      await sync?.stop();
      if (lvs !== undefined) {
        await lvs.lvs.stop();
        lvs.client.close();
      }
      await closeServer();
    },
  };
}
