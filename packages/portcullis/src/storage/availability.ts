import type { StoreAvailability } from "./types.js";

/**
 * A store's availability as its owner learns it (storage/types.ts `StoreAvailability`): `lost()`
 * when it finds the store unreachable, `regained()` when it has it back. Only changes are
 * reported; the outage's start is the first loss, not the latest.
 */
export class Availability implements StoreAvailability {
  outageSince: number | null = null;
  private readonly watchers = new Set<(outageSince: number | null) => void>();
  private readonly now: () => number;

  constructor(now: () => number = Date.now) {
    this.now = now;
  }

  /** Marks the store lost (if it was not already); true when this began an outage. */
  lost(): boolean {
    if (this.outageSince !== null) return false;
    this.outageSince = this.now();
    this.notify();
    return true;
  }

  /** Marks the store back (if it was out); true when this ended an outage. */
  regained(): boolean {
    if (this.outageSince === null) return false;
    this.outageSince = null;
    this.notify();
    return true;
  }

  watch(listener: (outageSince: number | null) => void): () => void {
    this.watchers.add(listener);
    return () => {
      this.watchers.delete(listener);
    };
  }

  private notify(): void {
    for (const listener of this.watchers) {
      try {
        listener(this.outageSince);
      } catch {
        // A watcher's fault must not keep the others from hearing of the change.
      }
    }
  }
}
