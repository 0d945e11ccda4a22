import type { NonceClaim, NonceStore } from "../types.js";

/**
 * In-process nonce store (embedded mode). Entries live in one Map and are indexed by the second
 * they expire in, so expiry is swept a bucket at a time as the clock passes, with no timers and no
 * scan of live entries. Capacity is bounded: when full, claims answer "full" and the pipeline
 * fails closed instead of growing without limit.
 */
export class MemoryNonceStore implements NonceStore {
  private readonly entries = new Map<string, number>();
  private readonly buckets = new Map<number, string[]>();
  private sweptUpTo = -1;

  constructor(private readonly capacity = 1_000_000) {}

  get size(): number {
    return this.entries.size;
  }

  claim(keyId: string, nonce: string, expiresAt: number, now: number): NonceClaim {
    const second = Math.floor(now / 1000);
    if (second > this.sweptUpTo) this.sweep(second, now);
    const id = `${keyId}\n${nonce}`;
    const existing = this.entries.get(id);
    if (existing !== undefined && existing > now) return "replayed";
    if (existing === undefined && this.entries.size >= this.capacity) return "full";
    this.entries.set(id, expiresAt);
    const bucketSecond = Math.floor(expiresAt / 1000);
    let bucket = this.buckets.get(bucketSecond);
    if (bucket === undefined) {
      bucket = [];
      this.buckets.set(bucketSecond, bucket);
    }
    bucket.push(id);
    return "fresh";
  }

  private sweep(second: number, now: number): void {
    for (const [bucketSecond, ids] of this.buckets) {
      if (bucketSecond >= second) continue;
      for (const id of ids) {
        const expiry = this.entries.get(id);
        // The entry may have been re-claimed with a later expiry after it lapsed.
        if (expiry !== undefined && expiry <= now) this.entries.delete(id);
      }
      this.buckets.delete(bucketSecond);
    }
    this.sweptUpTo = second;
  }
}
