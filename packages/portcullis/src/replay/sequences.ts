import type { SequenceClaim, SequenceStore } from "./claims.js";

/**
 * In-process increasing-nonce store (embedded mode). Per key: the highest value accepted, and
 * the values accepted within the tolerance window below it (the only ones that could be replayed
 * without being "too low"). Memory is bounded: at most `capacity` keys, and at most `perKeyLimit`
 * remembered values per key — when that many are held, the oldest is forgotten and becomes the
 * key's floor, so anything at or below it is "too low" from then on (never accepted twice).
 */
interface KeySequence {
  highest: bigint;
  /** Values at or below this are too low, whatever the window says. */
  floor: bigint;
  /** Accepted values in (max(floor, highest - window), highest). */
  recent: Set<bigint>;
}

export class MemorySequenceStore implements SequenceStore {
  private readonly keys = new Map<string, KeySequence>();

  constructor(
    private readonly capacity = 1_000_000,
    private readonly perKeyLimit = 10_000,
  ) {}

  claim(keyId: string, value: bigint, window: bigint): SequenceClaim {
    const seq = this.keys.get(keyId);
    if (seq === undefined) {
      if (this.keys.size >= this.capacity) return "full";
      this.keys.set(keyId, { highest: value, floor: -1n, recent: new Set() });
      return "fresh";
    }
    if (value > seq.highest) {
      if (window > 0n) {
        this.remember(seq, seq.highest);
        // Nonces mostly arrive in increasing order, so the set (insertion-ordered) holds the
        // oldest first: drop from the front until the window's floor. A value that came out of
        // order may linger a little longer (the per-key limit bounds it); it is answered "too
        // low" all the same, since the window is checked before the set.
        const floor = value - window;
        for (const v of seq.recent) {
          if (v >= floor) break;
          seq.recent.delete(v);
        }
      }
      seq.highest = value;
      return "fresh";
    }
    if (value === seq.highest) return "replayed";
    // Below the window (or the floor) is too low, even for a value that lingers in `recent`.
    if (seq.highest - value > window || value <= seq.floor) return "too-low";
    if (seq.recent.has(value)) return "replayed";
    this.remember(seq, value);
    return "fresh";
  }

  private remember(seq: KeySequence, value: bigint): void {
    if (seq.recent.size >= this.perKeyLimit) {
      // Forget the oldest remembered value, and refuse everything at or below it from now on.
      const oldest = seq.recent.values().next();
      if (oldest.done !== true) {
        seq.recent.delete(oldest.value);
        if (oldest.value > seq.floor) seq.floor = oldest.value;
      }
    }
    seq.recent.add(value);
  }
}
