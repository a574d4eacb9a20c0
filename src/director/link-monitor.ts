/**
 * Watches interface operational state from sysfs so an instance whose interface is down enters FAULT (as
 * keepalived's track_interface does by default). Polling sysfs costs microseconds and needs no netlink
 * subscription; POLL interval below.
 */

import { readFileSync } from 'node:fs';
import type { Clock, TimerHandle } from '../lib/clock.ts';

/** How often interface state is read: fast enough that a FAULT follows a link loss within one 20 ms advert. */
export const LINK_POLL_INTERVAL_MS = 100;

export interface LinkState {
  up: boolean;
  /** operstate as the kernel reports it, or `missing`. */
  state: string;
}

/** Reads an interface's state: `up` and `unknown` (e.g. lo, some virtual devices) count as up. */
export function readLinkState(ifname: string): LinkState {
  try {
    const state = readFileSync(`/sys/class/net/${ifname}/operstate`, 'utf8').trim();
    return { up: state === 'up' || state === 'unknown', state };
  } catch {
    return { up: false, state: 'missing' };
  }
}

/** Calls `onChange` whenever an interface's up/down state flips. */
export class LinkMonitor {
  private readonly last = new Map<string, boolean>();
  private timer: TimerHandle | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly interfaces: readonly string[],
    private readonly onChange: (ifname: string, s: LinkState) => void,
    private readonly read: (ifname: string) => LinkState = readLinkState,
  ) {}

  /** Current state of every watched interface (also primes change detection). */
  snapshot(): Map<string, LinkState> {
    const m = new Map<string, LinkState>();
    for (const i of this.interfaces) {
      const s = this.read(i);
      this.last.set(i, s.up);
      m.set(i, s);
    }
    return m;
  }

  start(): void {
    const tick = () => {
      for (const i of this.interfaces) {
        const s = this.read(i);
        if (this.last.get(i) !== s.up) {
          this.last.set(i, s.up);
          this.onChange(i, s);
        }
      }
      this.timer = this.clock.setTimer(LINK_POLL_INTERVAL_MS, tick);
    };
    this.timer = this.clock.setTimer(LINK_POLL_INTERVAL_MS, tick);
  }

  stop(): void {
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
  }
}
