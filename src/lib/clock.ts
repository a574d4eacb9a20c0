/**
 * Time for tandem's cores and drivers. Every timing decision reads a Clock so tests can drive time with
 * FakeClock; `now()` is monotonic milliseconds (performance.now), never the wall clock, so an NTP step cannot
 * fire or starve an election timer. Wall-clock time is used only for log lines (see log.ts).
 */

/** A handle returned by setTimer, opaque to callers. */
export interface TimerHandle {
  readonly id: number;
}

/** Monotonic time and one-shot timers. */
export interface Clock {
  /** Monotonic milliseconds since an arbitrary origin. */
  now(): number;
  /** Calls `fn` once at or after `now() + delayMs`. */
  setTimer(delayMs: number, fn: () => void): TimerHandle;
  /** Cancels a timer; cancelling a fired or cancelled timer does nothing. */
  clearTimer(handle: TimerHandle): void;
}

/** The real clock: performance.now and node timers (unref'd handles are not used: timers keep the daemon alive). */
export class SystemClock implements Clock {
  private nextId = 1;
  private readonly timers = new Map<number, NodeJS.Timeout>();

  now(): number {
    return performance.now();
  }

  setTimer(delayMs: number, fn: () => void): TimerHandle {
    const id = this.nextId++;
    const due = performance.now() + Math.max(0, delayMs);
    // libuv measures timeouts from its cached loop time, which lags performance.now() when the loop was busy,
    // so a timeout can fire a few ms before `due`. Re-arm for the remainder: callers are promised "at or after".
    const arm = (ms: number) => {
      this.timers.set(id, setTimeout(() => {
        const left = due - performance.now();
        if (left > 0) {
          arm(Math.ceil(left));
          return;
        }
        this.timers.delete(id);
        fn();
      }, ms));
    };
    arm(Math.max(0, delayMs));
    return { id };
  }

  clearTimer(handle: TimerHandle): void {
    const t = this.timers.get(handle.id);
    if (t !== undefined) {
      clearTimeout(t);
      this.timers.delete(handle.id);
    }
  }
}

interface FakeTimer {
  id: number;
  at: number;
  seq: number;
  fn: () => void;
}

/** A clock for tests: time moves only when `advance` or `runUntil` is called; timers fire in deadline order. */
export class FakeClock implements Clock {
  private current: number;
  private nextId = 1;
  private seq = 0;
  private readonly pending = new Map<number, FakeTimer>();

  constructor(start = 0) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  setTimer(delayMs: number, fn: () => void): TimerHandle {
    const id = this.nextId++;
    this.pending.set(id, { id, at: this.current + Math.max(0, delayMs), seq: this.seq++, fn });
    return { id };
  }

  clearTimer(handle: TimerHandle): void {
    this.pending.delete(handle.id);
  }

  /** Number of timers not yet fired. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** Deadline of the earliest pending timer, or undefined. */
  nextDeadline(): number | undefined {
    let best: FakeTimer | undefined;
    for (const t of this.pending.values()) if (best === undefined || t.at < best.at || (t.at === best.at && t.seq < best.seq)) best = t;
    return best?.at;
  }

  /** Moves time forward by `ms`, firing every timer due on the way in order. */
  advance(ms: number): void {
    this.runUntil(this.current + ms);
  }

  /** Moves time to `target`, firing due timers (including ones they arm) in deadline order. */
  runUntil(target: number): void {
    for (;;) {
      let best: FakeTimer | undefined;
      for (const t of this.pending.values()) {
        if (t.at <= target && (best === undefined || t.at < best.at || (t.at === best.at && t.seq < best.seq))) best = t;
      }
      if (best === undefined) break;
      this.pending.delete(best.id);
      this.current = Math.max(this.current, best.at);
      best.fn();
    }
    this.current = Math.max(this.current, target);
  }
}
