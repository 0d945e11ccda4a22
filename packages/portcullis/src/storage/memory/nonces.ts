import type { NonceClaim, NonceStore } from "../types.js";

/**
 * In-process nonce store (embedded mode). Nonces live in one Map per key (no string building per
 * request), and every entry is also listed under the second it expires in, so expiry is swept a
 * bucket at a time as the clock passes, with no timers and no scan of live entries. Capacity is
 * bounded: when full, claims answer "full" and the pipeline fails closed instead of growing
 * without limit.
 */
export class MemoryNonceStore implements NonceStore {
  private readonly byKey = new Map<string, Map<string, number>>();
  /** second -> parallel lists of (per-key map, nonce) expiring in that second */
  private readonly buckets = new Map<number, { maps: Map<string, number>[]; nonces: string[] }>();
  private count = 0;
  private sweptUpTo = -1;

  constructor(private readonly capacity = 1_000_000) {}

  get size(): number {
    return this.count;
  }

  claim(keyId: string, nonce: string, expiresAt: number, now: number): NonceClaim {
    const second = Math.floor(now / 1000);
    if (second > this.sweptUpTo) this.sweep(second, now);
    let nonces = this.byKey.get(keyId);
    if (nonces === undefined) {
      nonces = new Map();
      this.byKey.set(keyId, nonces);
    }
    const existing = nonces.get(nonce);
    if (existing !== undefined && existing > now) return "replayed";
    if (existing === undefined) {
      if (this.count >= this.capacity) return "full";
      this.count++;
    }
    nonces.set(nonce, expiresAt);
    const bucketSecond = Math.floor(expiresAt / 1000);
    let bucket = this.buckets.get(bucketSecond);
    if (bucket === undefined) {
      bucket = { maps: [], nonces: [] };
      this.buckets.set(bucketSecond, bucket);
    }
    bucket.maps.push(nonces);
    bucket.nonces.push(nonce);
    return "fresh";
  }

  private sweep(second: number, now: number): void {
    for (const [bucketSecond, bucket] of this.buckets) {
      if (bucketSecond >= second) continue;
      for (let i = 0; i < bucket.nonces.length; i++) {
        const map = bucket.maps[i];
        const nonce = bucket.nonces[i];
        if (map === undefined || nonce === undefined) continue;
        const expiry = map.get(nonce);
        // The entry may have been re-claimed with a later expiry after it lapsed.
        if (expiry !== undefined && expiry <= now) {
          map.delete(nonce);
          this.count--;
        }
      }
      this.buckets.delete(bucketSecond);
    }
    // Drop the per-key maps that emptied, so idle keys cost nothing.
    if (this.buckets.size === 0 || this.byKey.size > 1024) {
      for (const [keyId, map] of this.byKey) if (map.size === 0) this.byKey.delete(keyId);
    }
    this.sweptUpTo = second;
  }
}
