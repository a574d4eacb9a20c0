/**
 * Prometheus metrics. The director emits typed events; this module subscribes and turns them into counters
 * and gauges. Names follow keepalived-exporter conventions where one exists (state 0 INIT, 1 BACKUP,
 * 2 MASTER, 3 FAULT) so existing dashboards translate.
 */

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DirectorEvent } from '../director/events.ts';
import type { HealthEvent } from '../healthcheck/index.ts';
import type { ReconcilerEvent } from '../ipvs/index.ts';
import type { LvsEvent } from '../lvs/index.ts';
import type { VrrpState } from '../vrrp/machine.ts';

/** Numeric state values, as keepalived_vrrp_state uses them. */
export const STATE_VALUE: Record<VrrpState, number> = { INIT: 0, BACKUP: 1, MASTER: 2, FAULT: 3 };

export interface TandemMetrics {
  registry: Registry;
  /** Feed one director event. */
  observe(e: DirectorEvent): void;
  /** Feed one health monitor event (check results by type and reason). */
  observeHealth(e: HealthEvent): void;
  /** Feed one IPVS reconciler event. */
  observeIpvs(e: ReconcilerEvent): void;
  /** Feed one LVS driver event (real server states, weights, quorum). */
  observeLvs(e: LvsEvent): void;
}

/** Creates a registry with tandem's metrics (and Node's process metrics unless `processMetrics` is false). */
export function createMetrics(opts: { processMetrics?: boolean } = {}): TandemMetrics {
  const registry = new Registry();
  if (opts.processMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'tandem_' });
  const state = new Gauge({ name: 'tandem_vrrp_state', help: 'Instance state: 0 INIT, 1 BACKUP, 2 MASTER, 3 FAULT', labelNames: ['instance'], registers: [registry] });
  const transitions = new Counter({ name: 'tandem_vrrp_transitions_total', help: 'State transitions by target state and reason', labelNames: ['instance', 'to', 'reason'], registers: [registry] });
  const becomeMaster = new Counter({ name: 'tandem_vrrp_become_master_total', help: 'Times an instance became master', labelNames: ['instance'], registers: [registry] });
  const sent = new Counter({ name: 'tandem_vrrp_adverts_sent_total', help: 'Adverts sent', labelNames: ['instance'], registers: [registry] });
  const prio0 = new Counter({ name: 'tandem_vrrp_priority_zero_sent_total', help: 'Priority-0 (resignation) adverts sent', labelNames: ['instance'], registers: [registry] });
  const received = new Counter({ name: 'tandem_vrrp_adverts_received_total', help: 'Adverts accepted', labelNames: ['instance'], registers: [registry] });
  const dropped = new Counter({ name: 'tandem_vrrp_adverts_dropped_total', help: 'Adverts dropped before the state machine, by reason', labelNames: ['reason'], registers: [registry] });
  const wouldDrop = new Counter({ name: 'tandem_vrrp_adverts_would_drop_total', help: 'Adverts accepted in receive-only mode that enforce would drop, by reason', labelNames: ['reason'], registers: [registry] });
  const vipOps = new Counter({ name: 'tandem_vip_operations_total', help: 'VIP add/remove operations by result', labelNames: ['instance', 'op', 'result'], registers: [registry] });
  const announced = new Counter({ name: 'tandem_vip_announcements_total', help: 'Gratuitous ARP / unsolicited NA sent, by result', labelNames: ['instance', 'result'], registers: [registry] });
  const transportErrors = new Counter({ name: 'tandem_vrrp_transport_errors_total', help: 'Election socket errors', registers: [registry] });
  const link = new Gauge({ name: 'tandem_link_up', help: 'Interface operational state (1 up)', labelNames: ['interface'], registers: [registry] });
  const hold = new Gauge({ name: 'tandem_vrrp_preempt_hold', help: '1 while preemption is held back waiting for the connection table (sync)', registers: [registry] });
  const lag = new Histogram({ name: 'tandem_event_loop_lag_seconds', help: 'Event-loop lag sampled every 500 ms', buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1], registers: [registry] });

  const observe = (e: DirectorEvent): void => {
    switch (e.type) {
      case 'advert_sent':
        sent.inc({ instance: e.instance });
        if (e.priority === 0) prio0.inc({ instance: e.instance });
        return;
      case 'advert_received':
        received.inc({ instance: e.instance });
        return;
      case 'advert_dropped':
        dropped.inc({ reason: e.reason });
        return;
      case 'advert_would_drop':
        wouldDrop.inc({ reason: e.reason });
        return;
      case 'transition':
        state.set({ instance: e.instance }, STATE_VALUE[e.to]);
        transitions.inc({ instance: e.instance, to: e.to, reason: e.reason });
        if (e.to === 'MASTER') becomeMaster.inc({ instance: e.instance });
        return;
      case 'vip_changed':
        vipOps.inc({ instance: e.instance, op: e.op, result: e.ok ? 'ok' : 'error' });
        return;
      case 'announced':
        announced.inc({ instance: e.instance, result: e.ok ? 'ok' : 'error' });
        return;
      case 'transport_error':
        transportErrors.inc();
        return;
      case 'link':
        link.set({ interface: e.interface }, e.up ? 1 : 0);
        return;
      case 'loop_lag':
        lag.observe(e.lagMs / 1000);
        return;
      case 'preempt_hold':
        hold.set(e.hold ? 1 : 0);
        return;
    }
  };
  // Health checking and IPVS. Label sets stay bounded: check type x reason, virtual server x real server.
  const checks = new Counter({ name: 'tandem_healthcheck_checks_total', help: 'Completed check cycles by check type and result (ok, timeout, refused, status, bad_reply, ...); shared probes count once', labelNames: ['check', 'result'], registers: [registry] });
  const checkDuration = new Histogram({ name: 'tandem_healthcheck_duration_seconds', help: 'Duration of the last attempt of each check cycle', labelNames: ['check'], buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5], registers: [registry] });
  const hcTransitions = new Counter({ name: 'tandem_healthcheck_transitions_total', help: 'Real server health transitions by target state and the reason of the deciding check', labelNames: ['virtual_server', 'to', 'reason'], registers: [registry] });
  const rsUp = new Gauge({ name: 'tandem_realserver_up', help: 'Real server health as the checks decide it (1 up, 0 down); unchecked servers are not listed', labelNames: ['virtual_server', 'real_server'], registers: [registry] });
  const rsWeight = new Gauge({ name: 'tandem_realserver_weight', help: 'Dynamic weight of a real server (after smoothing), when its checks report one', labelNames: ['virtual_server', 'real_server'], registers: [registry] });
  const quorum = new Gauge({ name: 'tandem_virtual_server_quorum', help: 'Quorum of a virtual server (1 held, 0 lost)', labelNames: ['virtual_server'], registers: [registry] });
  const quorumUpWeight = new Gauge({ name: 'tandem_virtual_server_up_weight', help: 'Weight of the up real servers of a virtual server (what quorum is compared with)', labelNames: ['virtual_server'], registers: [registry] });
  const sorry = new Gauge({ name: 'tandem_virtual_server_sorry_active', help: '1 while the sorry server serves instead of the real servers', labelNames: ['virtual_server'], registers: [registry] });
  const quorumChanges = new Counter({ name: 'tandem_virtual_server_quorum_changes_total', help: 'Quorum losses and regains', labelNames: ['virtual_server', 'to'], registers: [registry] });
  const reconciles = new Counter({ name: 'tandem_ipvs_reconciles_total', help: 'IPVS reconcile runs by reason and result', labelNames: ['reason', 'result'], registers: [registry] });
  const reconcileDuration = new Histogram({ name: 'tandem_ipvs_reconcile_duration_seconds', help: 'Duration of IPVS reconcile runs (dump, diff, apply)', buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: [registry] });
  const ipvsOps = new Counter({ name: 'tandem_ipvs_ops_total', help: 'IPVS changes applied, by kind', labelNames: ['kind'], registers: [registry] });
  const ipvsOpErrors = new Counter({ name: 'tandem_ipvs_op_errors_total', help: 'IPVS changes the kernel refused, by kind and errno name', labelNames: ['kind', 'error'], registers: [registry] });
  const drift = new Counter({ name: 'tandem_ipvs_drift_healed_total', help: 'IPVS changes needed although the desired table had not changed (the kernel was changed behind tandem)', registers: [registry] });
  const dumpErrors = new Counter({ name: 'tandem_ipvs_dump_errors_total', help: 'Failed IPVS dumps', registers: [registry] });
  const fullnatErrors = new Counter({ name: 'tandem_fullnat_errors_total', help: 'FULLNAT rule updates that failed', registers: [registry] });

  const observeHealth = (e: HealthEvent): void => {
    if (e.type !== 'check_result') return;
    checks.inc({ check: e.check, result: e.result.reason });
    checkDuration.observe({ check: e.check }, Math.max(0, e.result.durationMs) / 1000);
  };
  const observeIpvs = (e: ReconcilerEvent): void => {
    switch (e.type) {
      case 'ipvsReconciled':
        reconciles.inc({ reason: e.reason, result: e.ok ? 'ok' : 'error' });
        reconcileDuration.observe(e.durationMs / 1000);
        return;
      case 'ipvsOpsApplied':
        ipvsOps.inc({ kind: e.kind }, e.count);
        return;
      case 'ipvsOpFailed':
        ipvsOpErrors.inc({ kind: e.kind, error: e.errnoName });
        return;
      case 'ipvsDriftHealed':
        drift.inc(e.ops);
        return;
      case 'ipvsDumpFailed':
        dumpErrors.inc();
        return;
      case 'fullnatFailed':
        fullnatErrors.inc();
        return;
      case 'ipvsTimeoutsSet':
      case 'fullnatChanged':
        return;
    }
  };
  const observeLvs = (e: LvsEvent): void => {
    switch (e.type) {
      case 'realserver_state':
        rsUp.set({ virtual_server: e.virtualServer, real_server: e.realServer }, e.up ? 1 : 0);
        if (!e.initial) hcTransitions.inc({ virtual_server: e.virtualServer, to: e.up ? 'up' : 'down', reason: e.reason });
        return;
      case 'realserver_weight':
        rsWeight.set({ virtual_server: e.virtualServer, real_server: e.realServer }, e.weight);
        return;
      case 'quorum':
        quorum.set({ virtual_server: e.virtualServer }, e.held ? 1 : 0);
        quorumUpWeight.set({ virtual_server: e.virtualServer }, e.upWeight);
        sorry.set({ virtual_server: e.virtualServer }, e.sorryActive ? 1 : 0);
        if (e.changed) quorumChanges.inc({ virtual_server: e.virtualServer, to: e.held ? 'held' : 'lost' });
        return;
    }
  };
  return { registry, observe, observeHealth, observeIpvs, observeLvs };
}
