/**
 * Prometheus metrics. The director emits typed events; this module subscribes and turns them into counters
 * and gauges. Names follow keepalived-exporter conventions where one exists (state 0 INIT, 1 BACKUP,
 * 2 MASTER, 3 FAULT) so existing dashboards translate.
 */

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DirectorEvent } from '../director/events.ts';
import type { VrrpState } from '../vrrp/machine.ts';

/** Numeric state values, as keepalived_vrrp_state uses them. */
export const STATE_VALUE: Record<VrrpState, number> = { INIT: 0, BACKUP: 1, MASTER: 2, FAULT: 3 };

export interface TandemMetrics {
  registry: Registry;
  /** Feed one director event. */
  observe(e: DirectorEvent): void;
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
  return { registry, observe };
}
