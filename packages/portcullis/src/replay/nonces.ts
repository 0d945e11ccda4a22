import type { NonceClaim, NonceStore } from "./claims.js";

/**
 * In-process nonce store (embedded mode): two generations of nonces per key.
 *
 * A key's nonces go into its `current` set; when the current generation is `span` old (span is
 * the longest time-to-live any of the key's nonces has asked for), it becomes `previous` and a
 * fresh set starts. A nonce is therefore remembered at least one full span after it was added
 * (until the generation after its own is retired) — at least as long as it asked for — and at
 * most a few spans (memory, not safety, depends on that bound). A claim costs two set lookups and one insert; expiry drops a whole set
 * at once, with no per-nonce bookkeeping and no timer. Keys that go quiet are dropped by an amortised sweep. Capacity is
 * bounded: when full, claims answer "full" and the pipeline fails closed.
 */
interface KeyNonces {
  readonly keyId: string;
  current: Set<string>;
  previous: Set<string> | null;
  /** When `current` started (epoch ms). */
  startedAt: number;
  /** The longest time-to-live asked for by this key's nonces (ms). */
  span: number;
}

export class MemoryNonceStore implements NonceStore {
  private readonly keys = new Map<string, KeyNonces>();
  /** second -> keys to look at then (they may have gone quiet) */
  private readonly reviews = new Map<number, KeyNonces[]>();
  private count = 0;
  private reviewedBefore = -Infinity;

  constructor(private readonly capacity = 1_000_000) {}

  get size(): number {
    return this.count;
  }

  claim(keyId: string, nonce: string, expiresAt: number, now: number): NonceClaim {
    const nowSecond = Math.floor(now / 1000);
    if (nowSecond > this.reviewedBefore) this.review(nowSecond, now);
    let entry = this.keys.get(keyId);
    if (entry === undefined) {
      entry = { keyId, current: new Set(), previous: null, startedAt: now, span: Math.max(expiresAt - now, 0) };
      this.keys.set(keyId, entry);
      this.scheduleReview(entry);
    }
    // Rotate under the span the current generation was filled with, then widen it if needed.
    this.rotate(entry, now);
    const ttl = expiresAt - now;
    if (ttl > entry.span) entry.span = ttl;
    if (entry.current.has(nonce) || (entry.previous !== null && entry.previous.has(nonce))) return "replayed";
    if (this.count >= this.capacity) return "full";
    entry.current.add(detached(nonce));
    this.count++;
    return "fresh";
  }

  /** Retires generations that are a span old (both, when two spans have passed). */
  private rotate(entry: KeyNonces, now: number): void {
    const age = now - entry.startedAt;
    if (age < entry.span) return;
    if (entry.previous !== null) this.count -= entry.previous.size;
    if (age >= 2 * entry.span) {
      // Everything in `current` was added more than a span ago: all of it has expired.
      this.count -= entry.current.size;
      entry.previous = null;
    } else {
      entry.previous = entry.current;
    }
    entry.current = new Set();
    entry.startedAt = now;
  }

  private scheduleReview(entry: KeyNonces): void {
    const second = Math.floor((entry.startedAt + 2 * entry.span) / 1000) + 1;
    let list = this.reviews.get(second);
    if (list === undefined) {
      list = [];
      this.reviews.set(second, list);
    }
    list.push(entry);
  }

  /** Drops keys that have been quiet for two spans: every nonce they hold has expired. */
  private review(nowSecond: number, now: number): void {
    for (const [second, entries] of this.reviews) {
      if (second > nowSecond) continue;
      this.reviews.delete(second);
      for (const entry of entries) {
        if (this.keys.get(entry.keyId) !== entry) continue;
        if (now - entry.startedAt >= 2 * entry.span) {
          this.count -= entry.current.size + (entry.previous?.size ?? 0);
          this.keys.delete(entry.keyId);
        } else {
          this.scheduleReview(entry);
        }
      }
    }
    this.reviewedBefore = nowSecond;
  }
}

/**
 * The nonce as a string of its own. A nonce parsed out of a request header is, in V8, a slice of
 * the whole header value; remembering the slice for the replay window would keep every request's
 * header alive with it (about four times the memory, all of it copied by each young-generation
 * GC it survives). Prepending a character makes a rope, which slicing flattens into a fresh copy:
 * the slice now refers to that copy, and the header can be collected.
 */
function detached(nonce: string): string {
  return ` ${nonce}`.slice(1);
}
