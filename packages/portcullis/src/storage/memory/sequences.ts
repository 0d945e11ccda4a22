import type { SequenceClaim, SequenceStore } from "../types.js";

/**
 * In-process increasing-nonce store (embedded mode). Per key: the highest value accepted, and the
 * values accepted within the tolerance window below it (the only ones that could be replayed
 * without being "too low"). Bounded: at most `capacity` keys and `perKeyLimit` remembered values
 * per key; past those, claims answer "full" and the pipeline fails closed.
 */
interface KeySequence {
  highest: bigint;
  /** Accepted values in [highest - window, highest). */
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
      this.keys.set(keyId, { highest: value, recent: new Set() });
      return "fresh";
    }
    if (value > seq.highest) {
      if (window > 0n) {
        seq.recent.add(seq.highest);
        const floor = value - window;
        for (const v of seq.recent) if (v < floor) seq.recent.delete(v);
      }
      seq.highest = value;
      return "fresh";
    }
    if (value === seq.highest || seq.recent.has(value)) return "replayed";
    if (seq.highest - value > window) return "too-low";
    if (seq.recent.size >= this.perKeyLimit) return "full";
    seq.recent.add(value);
    return "fresh";
  }
}
