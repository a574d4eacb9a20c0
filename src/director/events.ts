/**
 * What the director reports: a tagged union of typed events. Metrics, logs and (later) notify hooks subscribe
 * to these; core code never calls prom-client.
 */

import type { DropReason } from '../vrrp/ingress.ts';
import type { TransitionReason, VrrpState } from '../vrrp/machine.ts';

export type DirectorEvent =
  | { type: 'advert_sent'; instance: string; priority: number }
  | { type: 'advert_received'; instance: string; priority: number; sender: string }
  | { type: 'advert_dropped'; reason: DropReason; source: string; detail: string }
  /** Accepted in receive-only mode although enforcement would have dropped it. */
  | { type: 'advert_would_drop'; reason: DropReason; source: string }
  | { type: 'transition'; instance: string; from: VrrpState; to: VrrpState; reason: TransitionReason; master: string | undefined; wallMs: number }
  | { type: 'vip_changed'; instance: string; vip: string; op: 'add' | 'remove'; ok: boolean; error?: string; wallMs: number }
  | { type: 'announced'; instance: string; vip: string; ok: boolean; error?: string }
  | { type: 'transport_error'; message: string }
  | { type: 'link'; interface: string; up: boolean; state: string }
  | { type: 'loop_lag'; lagMs: number }
  /** Preemption held back (connection sync not complete) or allowed again. */
  | { type: 'preempt_hold'; hold: boolean; reason: string };

export type DirectorEventType = DirectorEvent['type'];
