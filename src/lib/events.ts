/**
 * Typed events: subsystems emit, observers (metrics, logs, notify hooks) subscribe. Core code never imports
 * prom-client; src/metrics listens here instead. A listener that throws is isolated from the emitter.
 */

export class TypedEmitter<E extends { type: string }> {
  private readonly listeners = new Set<(e: E) => void>();

  /** Subscribes; returns the unsubscribe function. */
  on(listener: (e: E) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(event: E): void {
    for (const l of this.listeners) {
      try {
        l(event);
      } catch {
        // An observer's bug must never break the election; observers log their own failures.
      }
    }
  }
}
