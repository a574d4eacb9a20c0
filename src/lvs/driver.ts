/**
 * The LVS driver: keeps the kernel's IPVS table equal to derive(config, health) while the daemon runs. It owns
 * the health monitor (one watch per checked real server), the quorum state of each virtual server and the
 * reconciler; a health transition, a weight change or a quorum change asks the reconciler for a run at once
 * (triggers coalesce into one run), and the reconciler's periodic run still heals drift.
 *
 * Why this is not the director loop: IPVS is programmed on both directors whatever their election state (as
 * keepalived does), so a failover moves only the VIPs and the new master already has the table. The director
 * owns the election state; this driver owns health, quorum and the IPVS table; they share no state. Within
 * the driver every mutation happens on the event loop in the monitor's callbacks, and the reconciler reads a
 * snapshot at the start of each run (derive is pure).
 *
 * Typed events (`LvsEvent`) report every real server's state at start and on each change, with the reason the
 * checks gave (timeout, refused, status 503, ...), and quorum changes; src/metrics subscribes to them, to the
 * monitor's `check_result` events and to the reconciler's events.
 */

import { readFileSync } from 'node:fs';
import type { HealthCheckConfig, TandemConfig, VirtualServerConfig } from '../config/index.ts';
import { ipvsSettings } from '../config/index.ts';
import { HealthMonitor, defaultWeightPolicy } from '../healthcheck/index.ts';
import type { CheckReason, HealthCheckSpec, HealthEvent, Random } from '../healthcheck/index.ts';
import { Reconciler, derive, members, realServerId, stepQuorum, timeoutsFromConfig } from '../ipvs/index.ts';
import type { FullnatSync, HealthMap, HealthSnapshot, IpvsClient, IpvsTable, OwnedStore, RealServerStatus } from '../ipvs/index.ts';
import type { Clock } from '../lib/clock.ts';
import { ERROR_CODES, TandemError, messageOf } from '../lib/errors.ts';
import { TypedEmitter } from '../lib/events.ts';
import type { Logger } from '../lib/log.ts';

/** What the driver reports. `at` is Clock time; `reason` is the check result's reason (`ok` when up). */
export type LvsEvent =
  | {
      type: 'realserver_state';
      virtualServer: string;
      /** `address:port` of the real server. */
      realServer: string;
      up: boolean;
      /** True for the state every server starts in (no transition happened). */
      initial: boolean;
      reason: CheckReason | 'start';
      detail: string;
      at: number;
    }
  | { type: 'realserver_weight'; virtualServer: string; realServer: string; weight: number; at: number }
  | {
      type: 'quorum';
      virtualServer: string;
      held: boolean;
      /** True when `held` differs from before (false at start and when only the weight moved). */
      changed: boolean;
      /** Weight of the up real servers. */
      upWeight: number;
      min: number;
      hysteresis: number;
      /** True while the sorry server serves instead of the real servers. */
      sorryActive: boolean;
      at: number;
    };

/** The driver's collaborators. */
export interface LvsDriverDeps {
  config: Pick<TandemConfig, 'virtualServers' | 'ipvs'>;
  clock: Clock;
  logger: Logger;
  client: IpvsClient;
  owned: OwnedStore;
  fullnat?: FullnatSync;
  /** The monitor to use (tests inject one with a fake checker); default: a HealthMonitor on `clock`. */
  monitor?: HealthMonitor;
  /** Stagger and jitter randomness for the default monitor. */
  random?: Random;
  /** Reads a CA file (default fs.readFileSync); tests inject one. */
  readFile?: (path: string) => string;
}

interface Watched {
  id: string;
  vs: VirtualServerConfig;
  text: string;
}

/** Text of a real server for logs and labels: `10.99.0.21:80`, `[fd00::21]:80`. */
function serverText(rs: { family: 4 | 6; address: string; port: number }): string {
  return rs.family === 6 ? `[${rs.address}]:${rs.port}` : `${rs.address}:${rs.port}`;
}

/** Keeps IPVS equal to derive(config, health); see the module header. */
export class LvsDriver {
  readonly events = new TypedEmitter<LvsEvent>();
  readonly monitor: HealthMonitor;
  readonly reconciler: Reconciler;
  private readonly log: Logger;
  private readonly virtualServers: readonly VirtualServerConfig[];
  private readonly watched = new Map<string, Watched>();
  /** Quorum state of each virtual server that has health settings. */
  private readonly quorum = new Map<string, boolean>();
  /** The up weight last reported per virtual server. */
  private readonly upWeight = new Map<string, number>();
  private unsubscribe: (() => void) | undefined;
  private started = false;

  constructor(private readonly deps: LvsDriverDeps) {
    this.log = deps.logger.child({ component: 'lvs' });
    this.virtualServers = deps.config.virtualServers ?? [];
    this.monitor = deps.monitor ?? new HealthMonitor(deps.random === undefined ? { clock: deps.clock } : { clock: deps.clock, random: deps.random });
    const settings = ipvsSettings(deps.config);
    this.reconciler = new Reconciler({
      client: deps.client,
      clock: deps.clock,
      logger: deps.logger,
      desired: () => this.desired(),
      owned: deps.owned,
      intervalMs: settings.reconcileIntervalMs,
      manage: settings.manage,
      timeouts: () => timeoutsFromConfig(settings.timeouts),
      ...(deps.fullnat === undefined ? {} : { fullnat: deps.fullnat }),
    });
  }

  /**
   * Starts checking and reconciling: every checked real server is watched (CA files are read now: a missing
   * one throws TandemError before anything starts), the initial states and quorums are reported, and the
   * first reconcile runs at once.
   */
  start(): void {
    if (this.started) return;
    const read = this.deps.readFile ?? ((p: string) => readFileSync(p, 'utf8'));
    const plan: Array<{ id: string; vs: VirtualServerConfig; address: string; port: number; spec: HealthCheckSpec; check: HealthCheckConfig; weight: number; text: string }> = [];
    const caCache = new Map<string, string>();
    for (const vs of this.virtualServers) {
      for (const rs of vs.realServers) {
        const check = rs.healthCheck;
        if (check === undefined) continue;
        let spec = check.spec;
        if (check.caFile !== undefined && (spec.type === 'https' || spec.type === 'http')) {
          let pem = caCache.get(check.caFile);
          if (pem === undefined) {
            try {
              pem = read(check.caFile);
            } catch (e) {
              throw new TandemError(ERROR_CODES.config, `cannot read ca_file ${check.caFile} of virtual server ${vs.name}: ${messageOf(e)}`, { cause: e });
            }
            caCache.set(check.caFile, pem);
          }
          spec = { ...spec, ca: pem };
        }
        plan.push({ id: realServerId(vs.name, rs), vs, address: rs.address, port: rs.port, spec, check, weight: rs.weight, text: serverText(rs) });
      }
    }
    this.started = true;
    this.unsubscribe = this.monitor.events.on((e) => this.onHealth(e));
    const at = this.deps.clock.now();
    for (const p of plan) {
      this.watched.set(p.id, { id: p.id, vs: p.vs, text: p.text });
      const policy = p.check.dynamicWeight === undefined ? undefined : { ...defaultWeightPolicy(p.weight), ...p.check.dynamicWeight };
      this.monitor.watch(p.id, { address: p.address, port: p.port }, p.spec, policy === undefined ? { weight: p.weight } : { weight: p.weight, weightPolicy: policy });
      const up = this.monitor.status(p.id)?.up ?? true;
      this.events.emit({ type: 'realserver_state', virtualServer: p.vs.name, realServer: p.text, up, initial: true, reason: 'start', detail: up ? 'starts up' : 'starts down (alpha)', at });
    }
    const servers = this.servers();
    for (const vs of this.virtualServers) {
      if (vs.health === undefined) continue;
      const { upWeight } = members(vs, servers);
      const held = stepQuorum(undefined, upWeight, vs.health.quorum);
      this.quorum.set(vs.name, held);
      this.upWeight.set(vs.name, upWeight);
      this.events.emit(this.quorumEvent(vs, held, upWeight, false));
      if (!held) this.log.log('warn', 'virtual server starts without quorum', this.quorumFields(vs, held, upWeight));
    }
    this.log.log('info', 'health checking started', { virtual_servers: this.virtualServers.length, watches: plan.length, probes: this.monitor.probeCount });
    this.reconciler.start();
  }

  /** Stops checking and reconciling (the kernel table is left as it is: a restart takes over without a gap). */
  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.monitor.stop();
    await this.reconciler.stop();
  }

  /** The health of every watched server (up and dynamic weight) and the quorum states: derive's input. */
  snapshot(): HealthSnapshot {
    return { servers: this.servers(), quorum: new Map(this.quorum) };
  }

  /** The table the kernel should hold now. */
  desired(): IpvsTable {
    return derive(this.deps.config, this.snapshot());
  }

  private servers(): HealthMap {
    const m = new Map<string, RealServerStatus>();
    for (const id of this.watched.keys()) {
      const s = this.monitor.status(id);
      if (s === undefined) continue;
      m.set(id, s.weight === undefined ? { up: s.up } : { up: s.up, weight: s.weight });
    }
    return m;
  }

  private quorumEvent(vs: VirtualServerConfig, held: boolean, upWeight: number, changed: boolean): LvsEvent {
    const q = vs.health?.quorum ?? { min: 0, hysteresis: 0 };
    return { type: 'quorum', virtualServer: vs.name, held, changed, upWeight, min: q.min, hysteresis: q.hysteresis, sorryActive: !held && vs.health?.sorryServer !== undefined, at: this.deps.clock.now() };
  }

  private quorumFields(vs: VirtualServerConfig, held: boolean, upWeight: number): Record<string, unknown> {
    const h = vs.health;
    return {
      virtual_server: vs.name,
      up_weight: upWeight,
      quorum: h?.quorum.min,
      hysteresis: h?.quorum.hysteresis,
      sorry_server: h?.sorryServer === undefined ? undefined : serverText(h.sorryServer),
      action: held ? 'real servers back in service' : h?.sorryServer !== undefined ? 'sorry server in service' : 'no sorry server: the up real servers stay',
    };
  }

  /** Re-judges the quorum of one virtual server; true when it changed. */
  private updateQuorum(vs: VirtualServerConfig): boolean {
    const h = vs.health;
    if (h === undefined) return false;
    const { upWeight } = members(vs, this.servers());
    const before = this.quorum.get(vs.name);
    const held = stepQuorum(before, upWeight, h.quorum);
    const weightMoved = this.upWeight.get(vs.name) !== upWeight;
    this.upWeight.set(vs.name, upWeight);
    if (held === before) {
      if (weightMoved) this.events.emit(this.quorumEvent(vs, held, upWeight, false));
      return false;
    }
    this.quorum.set(vs.name, held);
    this.events.emit(this.quorumEvent(vs, held, upWeight, true));
    this.log.log(held ? 'info' : 'warn', held ? 'virtual server regained quorum' : 'virtual server lost quorum', this.quorumFields(vs, held, upWeight));
    return true;
  }

  private onHealth(e: HealthEvent): void {
    if (e.type === 'check_result') return;
    const w = this.watched.get(e.id);
    if (w === undefined) return;
    if (e.type === 'weight_changed') {
      this.events.emit({ type: 'realserver_weight', virtualServer: w.vs.name, realServer: w.text, weight: e.weight, at: e.at });
      this.log.log('info', 'real server weight changed', { virtual_server: w.vs.name, real_server: w.text, weight: e.weight, previous: e.previous });
    } else {
      const up = e.type === 'server_up';
      this.events.emit({ type: 'realserver_state', virtualServer: w.vs.name, realServer: w.text, up, initial: false, reason: e.reason, detail: e.detail, at: e.at });
      const inhibit = w.vs.health?.inhibitOnFailure === true;
      this.log.log(up ? 'info' : 'warn', up ? 'real server up' : 'real server down', {
        virtual_server: w.vs.name,
        real_server: w.text,
        check: e.check,
        reason: e.reason,
        detail: e.detail,
        action: up ? 'back in service' : inhibit ? 'weight 0 (inhibit_on_failure)' : 'removed from IPVS',
      });
    }
    this.updateQuorum(w.vs);
    this.reconciler.trigger();
  }
}
