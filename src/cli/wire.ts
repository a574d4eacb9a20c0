/**
 * Builds a running daemon from a validated configuration: the real adapters (UDP transport, rtnetlink VIPs,
 * packet-socket announcer), authentication, metrics, and the director. Nothing here decides anything.
 */

import type { TandemConfig } from '../config/types.ts';
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
  stop(): Promise<void>;
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
  // Sync starts first: it holds preemption before the first advert is heard.
  const sync: RunningSync | undefined = config.sync === undefined ? undefined : await startSync({ ...config, sync: config.sync }, director, metrics.registry, clock, logger);
  await director.start();
  return {
    director,
    async stop() {
      await director.stop();
      await sync?.stop();
      if (server !== undefined) await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
