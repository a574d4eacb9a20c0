/**
 * The director loop: the one owner of mutable election state. Inputs (datagrams, timer expiries, link
 * changes, shutdown) are turned into machine events and fed to the pure state machines one at a time; the
 * effects they return are performed here. Kernel writes (VIPs, announcements) go through one serialized queue
 * so an add and a remove for the same VIP can never overtake each other.
 */

import { networkInterfaces } from 'node:os';
import { isIP } from 'node:net';
import type { TandemConfig, VipConfig, VrrpInstanceConfig } from '../config/types.ts';
import type { Clock, TimerHandle } from '../lib/clock.ts';
import { TypedEmitter } from '../lib/events.ts';
import { messageOf, TandemError, ERROR_CODES } from '../lib/errors.ts';
import { RateLimitedLog, type Logger } from '../lib/log.ts';
import type { Announcer, VipManager } from '../vip/index.ts';
import { encodeAdvert } from '../vrrp/codec.ts';
import type { IngressResult } from '../vrrp/ingress.ts';
import { initialState, step, type Effect, type MachineEvent, type MachineState, type TimerName } from '../vrrp/machine.ts';
import type { VrrpTransport } from '../vrrp/transport.ts';
import type { Advert } from '../vrrp/types.ts';
import type { DirectorEvent } from './events.ts';
import { LinkMonitor, readLinkState, type LinkState } from './link-monitor.ts';

/** Wall-clock milliseconds with sub-millisecond resolution, for logs and cross-process timelines only. */
export function wallClockMs(): number {
  return performance.timeOrigin + performance.now();
}

/** How often event-loop lag is sampled; lag shows GC pauses or blocking work that endanger 20 ms adverts. */
export const LOOP_LAG_SAMPLE_MS = 500;

export interface DirectorDeps {
  config: TandemConfig;
  clock: Clock;
  logger: Logger;
  transport: VrrpTransport;
  vips: VipManager;
  announcer: Announcer;
  ingress: { accept(datagram: Buffer, source: string, now: number): IngressResult };
  /** Signs an encoded advert (identity when authentication is off or receive-only). */
  sign: (frame: Buffer) => Buffer;
  readLink?: (ifname: string) => LinkState;
}

interface InstanceRuntime {
  cfg: VrrpInstanceConfig;
  s: MachineState;
  timers: Map<TimerName, TimerHandle>;
  /** Bumped to cancel an announcement burst whose timers or queued sends are still pending. */
  announceGeneration: number;
  announceTimers: TimerHandle[];
  transitionAt: number;
  log: Logger;
}

/** The status of one instance, for `tandem status`, logs and tests. */
export interface InstanceStatus {
  name: string;
  vrid: number;
  state: MachineState['state'];
  priority: number;
  master: string | undefined;
}

/** Picks this node's primary address for an instance: the transport source, else the interface's first address. */
export function primaryAddressFor(config: TandemConfig, inst: VrrpInstanceConfig): string {
  const t = config.vrrp.transport;
  if (t.source !== undefined) return t.source;
  const family = t.mode === 'multicast' && isIP(t.group) === 6 ? 'IPv6' : 'IPv4';
  const vips = new Set(inst.vips.map((v) => v.address));
  const addr = (networkInterfaces()[inst.interface] ?? []).find((a) => a.family === family && !vips.has(a.address));
  if (addr === undefined) throw new TandemError(ERROR_CODES.transport, `instance ${inst.name}: interface ${inst.interface} has no ${family} address to use as the primary address; set vrrp.transport.source`);
  return addr.address;
}

export class Director {
  readonly events = new TypedEmitter<DirectorEvent>();
  private readonly instances: InstanceRuntime[];
  private readonly byVrid = new Map<number, InstanceRuntime>();
  private readonly dropLog: RateLimitedLog;
  private readonly linkMonitor: LinkMonitor;
  private vipQueue: Promise<void> = Promise.resolve();
  private lagTimer: TimerHandle | undefined;
  private stopped = false;

  constructor(private readonly deps: DirectorDeps) {
    const { config, logger } = deps;
    this.dropLog = new RateLimitedLog(logger, () => deps.clock.now());
    this.instances = config.vrrp.instances.map((cfg) => {
      const rt: InstanceRuntime = {
        cfg,
        s: initialState({
          name: cfg.name,
          vrid: cfg.vrid,
          priority: cfg.priority,
          advertIntervalMs: cfg.advertIntervalMs,
          preempt: cfg.preempt,
          preemptDelayMs: cfg.preemptDelayMs,
          primaryAddress: primaryAddressFor(config, cfg),
        }),
        timers: new Map(),
        announceGeneration: 0,
        announceTimers: [],
        transitionAt: 0,
        log: logger.child({ instance: cfg.name }),
      };
      this.byVrid.set(cfg.vrid, rt);
      return rt;
    });
    const ifaces = [...new Set(this.instances.map((i) => i.cfg.interface))];
    this.linkMonitor = new LinkMonitor(deps.clock, ifaces, (ifname, s) => this.onLink(ifname, s), deps.readLink ?? readLinkState);
  }

  /** Current state of every instance. */
  status(): InstanceStatus[] {
    return this.instances.map((i) => ({ name: i.cfg.name, vrid: i.cfg.vrid, state: i.s.state, priority: i.cfg.priority, master: i.s.master?.address }));
  }

  /**
   * Holds back (true) or allows (false) preemption of a live lower-priority master on every instance (the
   * machine's `preemptHold` input). Connection sync holds it while this director waits for its table.
   */
  setPreemptHold(hold: boolean, reason: string): void {
    if (this.stopped) return;
    this.events.emit({ type: 'preempt_hold', hold, reason });
    this.deps.logger.log('info', hold ? 'preemption held' : 'preemption allowed', { reason });
    for (const rt of this.instances) this.dispatch(rt, { type: 'preemptHold', hold });
  }

  /** Binds the transport, clears VIPs left by an earlier run, and starts every instance. */
  async start(): Promise<void> {
    const { transport, logger } = this.deps;
    await transport.start(
      (d, src) => this.onDatagram(d, src),
      (message) => {
        this.events.emit({ type: 'transport_error', message });
        this.dropLog.log('transport', 'warn', 'election transport error', { error: message });
      },
    );
    // A node that crashed while master may still hold its VIPs: remove them before anything else, or it would
    // answer ARP for an address another node now owns.
    for (const rt of this.instances) for (const vip of rt.cfg.vips) this.enqueue(() => this.changeVip(rt, vip, 'remove', true));
    await this.vipQueue;
    const links = this.linkMonitor.snapshot();
    for (const rt of this.instances) {
      const link = links.get(rt.cfg.interface);
      if (link !== undefined && !link.up) this.dispatch(rt, { type: 'fault', reason: `interface ${rt.cfg.interface} is ${link.state}` });
      else this.dispatch(rt, { type: 'startup' });
    }
    this.linkMonitor.start();
    this.startLagSampler();
    logger.log('info', 'started', { instances: this.status() });
  }

  /** Graceful stop: masters resign with priority 0 and drop their VIPs; resolves when that is on the wire. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.linkMonitor.stop();
    if (this.lagTimer !== undefined) this.deps.clock.clearTimer(this.lagTimer);
    for (const rt of this.instances) this.dispatch(rt, { type: 'shutdown' });
    await this.vipQueue;
    await this.deps.transport.flush();
    for (const rt of this.instances) {
      for (const h of rt.timers.values()) this.deps.clock.clearTimer(h);
      this.cancelAnnouncements(rt);
    }
    await this.deps.transport.close();
    this.deps.vips.close();
    this.deps.announcer.close();
    this.deps.logger.log('info', 'stopped', {});
  }

  // --- inputs --------------------------------------------------------------------------------------------

  private onDatagram(datagram: Buffer, source: string): void {
    if (this.stopped) return;
    const r = this.deps.ingress.accept(datagram, source, this.deps.clock.now());
    if (!r.ok) {
      this.events.emit({ type: 'advert_dropped', reason: r.reason, source, detail: r.detail });
      this.dropLog.log(`drop:${r.reason}:${source}`, 'warn', 'advert dropped', { reason: r.reason, source, detail: r.detail });
      return;
    }
    if (r.wouldDrop !== undefined) {
      this.events.emit({ type: 'advert_would_drop', reason: r.wouldDrop, source });
      this.dropLog.log(`would:${r.wouldDrop}:${source}`, 'warn', 'advert accepted in receive-only mode; enforce would drop it', { reason: r.wouldDrop, source });
    }
    const rt = this.byVrid.get(r.advert.vrid);
    if (rt === undefined) return; // ingress already refuses unknown vrids
    this.events.emit({ type: 'advert_received', instance: rt.cfg.name, priority: r.advert.priority, sender: r.advert.sender });
    this.dispatch(rt, { type: 'advert', advert: r.advert });
  }

  private onLink(ifname: string, s: LinkState): void {
    this.events.emit({ type: 'link', interface: ifname, up: s.up, state: s.state });
    this.deps.logger.log(s.up ? 'info' : 'warn', 'link state changed', { interface: ifname, state: s.state });
    for (const rt of this.instances) {
      if (rt.cfg.interface !== ifname) continue;
      this.dispatch(rt, s.up ? { type: 'faultCleared' } : { type: 'fault', reason: `interface ${ifname} is ${s.state}` });
    }
  }

  // --- the loop ------------------------------------------------------------------------------------------

  private dispatch(rt: InstanceRuntime, event: MachineEvent): void {
    const r = step(rt.s, event, this.deps.clock.now());
    rt.s = r.state;
    for (const e of r.effects) this.perform(rt, e);
  }

  private perform(rt: InstanceRuntime, e: Effect): void {
    const { clock } = this.deps;
    switch (e.type) {
      case 'sendAdvert':
        this.sendAdvert(rt, e.priority);
        return;
      case 'armTimer': {
        const old = rt.timers.get(e.timer);
        if (old !== undefined) clock.clearTimer(old);
        const timer = e.timer;
        rt.timers.set(timer, clock.setTimer(e.at - clock.now(), () => {
          rt.timers.delete(timer);
          if (!this.stopped) this.dispatch(rt, { type: 'timer', timer });
        }));
        return;
      }
      case 'cancelTimer': {
        const old = rt.timers.get(e.timer);
        if (old !== undefined) clock.clearTimer(old);
        rt.timers.delete(e.timer);
        return;
      }
      case 'addVips':
        for (const vip of rt.cfg.vips) this.enqueue(() => this.changeVip(rt, vip, 'add', false));
        return;
      case 'removeVips':
        for (const vip of rt.cfg.vips) this.enqueue(() => this.changeVip(rt, vip, 'remove', false));
        return;
      case 'announce':
        if (e.reason === 'reannounce') rt.log.log('warn', 'another director claims mastership with a lower priority: re-announcing the VIPs', {});
        this.startAnnouncements(rt);
        return;
      case 'stopAnnounce':
        this.cancelAnnouncements(rt);
        return;
      case 'transition': {
        const wallMs = wallClockMs();
        rt.transitionAt = wallMs;
        this.events.emit({ type: 'transition', instance: rt.cfg.name, from: e.from, to: e.to, reason: e.reason, master: e.master?.address, wallMs });
        rt.log.log('info', 'transition', { from: e.from, to: e.to, reason: e.reason, master: e.master?.address, wall_ms: wallMs });
        return;
      }
    }
  }

  private sendAdvert(rt: InstanceRuntime, priority: number): void {
    const s = rt.s.params;
    const family = isIP(s.primaryAddress) === 6 ? 6 : 4;
    const advert: Advert = {
      vrid: rt.cfg.vrid,
      priority,
      advertIntervalCs: Math.round(rt.cfg.advertIntervalMs / 10),
      family,
      sender: s.primaryAddress,
      addresses: rt.cfg.vips.filter((v) => v.family === family).map((v) => v.address),
    };
    this.deps.transport.send(this.deps.sign(encodeAdvert(advert)));
    this.events.emit({ type: 'advert_sent', instance: rt.cfg.name, priority });
  }

  // --- VIPs and announcements ----------------------------------------------------------------------------

  private enqueue(job: () => Promise<void>): void {
    this.vipQueue = this.vipQueue.then(job).catch((err: unknown) => {
      this.deps.logger.log('error', 'vip queue job failed', { error: messageOf(err) });
    });
  }

  private async changeVip(rt: InstanceRuntime, vip: VipConfig, op: 'add' | 'remove', quiet: boolean): Promise<void> {
    const name = `${vip.address}/${vip.prefixLength}`;
    try {
      if (op === 'add') await this.deps.vips.add(vip);
      else await this.deps.vips.remove(vip);
      const wallMs = wallClockMs();
      this.events.emit({ type: 'vip_changed', instance: rt.cfg.name, vip: name, op, ok: true, wallMs });
      if (!quiet) rt.log.log('info', op === 'add' ? 'vip added' : 'vip removed', { vip: name, interface: vip.interface, wall_ms: wallMs, ms_since_transition: Math.round((wallMs - rt.transitionAt) * 1000) / 1000 });
    } catch (err) {
      this.events.emit({ type: 'vip_changed', instance: rt.cfg.name, vip: name, op, ok: false, error: messageOf(err), wallMs: wallClockMs() });
      rt.log.log('error', `vip ${op} failed`, { vip: name, interface: vip.interface, error: messageOf(err) });
    }
  }

  private announceAll(rt: InstanceRuntime, generation: number): void {
    this.enqueue(async () => {
      if (generation !== rt.announceGeneration) return;
      for (const vip of rt.cfg.vips) {
        try {
          await this.deps.announcer.announce(vip);
          this.events.emit({ type: 'announced', instance: rt.cfg.name, vip: vip.address, ok: true });
        } catch (err) {
          this.events.emit({ type: 'announced', instance: rt.cfg.name, vip: vip.address, ok: false, error: messageOf(err) });
          this.dropLog.log(`announce:${vip.address}`, 'error', 'announcement failed', { vip: vip.address, error: messageOf(err) });
        }
      }
    });
  }

  /** First announcement at once (after the VIPs queued before it), then `repeat` more, then periodic refresh. */
  private startAnnouncements(rt: InstanceRuntime): void {
    this.cancelAnnouncements(rt);
    const generation = rt.announceGeneration;
    const { repeat, intervalMs, refreshMs } = rt.cfg.garp;
    const { clock } = this.deps;
    this.announceAll(rt, generation);
    for (let k = 1; k <= repeat; k++) rt.announceTimers.push(clock.setTimer(k * intervalMs, () => this.announceAll(rt, generation)));
    if (refreshMs > 0) {
      const refresh = () => {
        if (generation !== rt.announceGeneration) return;
        this.announceAll(rt, generation);
        // The burst's timers have all fired by now: keep only the next refresh handle.
        rt.announceTimers = [clock.setTimer(refreshMs, refresh)];
      };
      rt.announceTimers.push(clock.setTimer(repeat * intervalMs + refreshMs, refresh));
    }
  }

  private cancelAnnouncements(rt: InstanceRuntime): void {
    rt.announceGeneration++;
    for (const h of rt.announceTimers) this.deps.clock.clearTimer(h);
    rt.announceTimers = [];
  }

  private startLagSampler(): void {
    const { clock } = this.deps;
    let expected = clock.now() + LOOP_LAG_SAMPLE_MS;
    const sample = () => {
      const lag = Math.max(0, clock.now() - expected);
      this.events.emit({ type: 'loop_lag', lagMs: lag });
      expected = clock.now() + LOOP_LAG_SAMPLE_MS;
      this.lagTimer = clock.setTimer(LOOP_LAG_SAMPLE_MS, sample);
    };
    this.lagTimer = clock.setTimer(LOOP_LAG_SAMPLE_MS, sample);
  }
}
