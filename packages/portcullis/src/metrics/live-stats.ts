import type { AuditSurface } from "../audit/events.js";
import type { KeyRecord } from "../contract/keys.js";
import type { DecisionStats } from "../pipeline/pipeline.js";

/**
 * The live statistics the console charts (issue 18; docs/console-backend.md, "Live statistics"):
 * this process's decisions on every surface, in 10 s buckets over the last hour, by surface and by
 * refusal code, and the keys with the most requests and the most refusals.
 *
 * It is fed by every pipeline's `observe` (the one place each decision is already counted for the
 * metrics), on the request path, so a decision costs a few increments: the bucket is found by one
 * division (and moved on, zeroing the buckets skipped, when the time passed into a new one); then
 * `allowed` or `refused`, the surface's pair of counters in a typed array, and, for a refusal, its
 * code in the bucket's map (codes are the catalogue's: a bounded set). A decision made for a key
 * is then counted for it in the top-keys summaries.
 *
 * Memory is bounded whatever the traffic. The buckets are a ring of `windowMs / bucketMs`. The
 * top keys are Misra–Gries summaries (frequent items, "heavy hitters") of at most `keyCapacity`
 * keys per 10-minute segment, over the segments of the last hour: a key not yet held when the
 * summary is full makes every count drop by one and the keys at zero leave, so a key with more
 * than 1/capacity of a segment's requests is always held, and each count is short by at most that
 * share. (Each pass over the summary pays for as many earlier increments: amortised O(1).) Until a
 * segment sees more keys than its capacity, its counts are exact. Only decisions made for a key
 * that exists are attributed (a refusal of an unknown key id names no key), so ids that callers
 * invent cannot fill the summaries.
 *
 * Counting reads no clock: a decision's time is its request's (`ctx.now`), and `snapshot` takes
 * the time it is asked for, so tests freeze the clock. A clock that steps back is counted in the
 * current bucket.
 */

export const DEFAULT_BUCKET_MS = 10_000;
export const DEFAULT_WINDOW_MS = 3_600_000;
/** The top keys are summarised in segments of this long (a window is its segments, newest partial). */
const SEGMENT_MS = 600_000;
const DEFAULT_KEY_CAPACITY = 256;
const TOP = 10;

const SURFACES: readonly AuditSurface[] = ["gateway", "websocket", "authorizer", "embedded", "admin"];
const SURFACE_INDEX: Readonly<Record<AuditSurface, number>> = { gateway: 0, websocket: 1, authorizer: 2, embedded: 3, admin: 4 };

export interface LiveStatsOptions {
  /** Bucket length (ms), default 10 s. */
  readonly bucketMs?: number;
  /** Window (ms), a whole number of buckets, default 1 h. */
  readonly windowMs?: number;
  /** Keys held per top-keys summary and segment, default 256. */
  readonly keyCapacity?: number;
}

export interface Counts {
  readonly allowed: number;
  readonly refused: number;
}

/** One bucket as the API answers it (docs/console-backend.md). */
export interface BucketView extends Counts {
  readonly at: number;
  readonly bySurface: Readonly<Record<string, Counts>>;
  readonly byCode: Readonly<Record<string, number>>;
}

export interface TopKey {
  readonly keyId: string;
  readonly account: string;
  readonly requests: number;
  readonly refused: number;
}

export interface TopRefusedKey {
  readonly keyId: string;
  readonly account: string;
  readonly refused: number;
  readonly lastCode: string;
}

/** `GET /portcullis/v1/stats`. */
export interface StatsSnapshot {
  readonly now: number;
  readonly bucketMs: number;
  readonly windowMs: number;
  readonly buckets: readonly BucketView[];
  readonly totals: Omit<BucketView, "at">;
  readonly topKeys: readonly TopKey[];
  readonly topRefusedKeys: readonly TopRefusedKey[];
}

/** An `update` event of the stream: the current bucket, and what the window adds up to. */
export interface StatsUpdate {
  readonly now: number;
  readonly bucket: BucketView;
  readonly totals: Omit<BucketView, "at">;
  readonly topKeys: readonly TopKey[];
  readonly topRefusedKeys: readonly TopRefusedKey[];
}

class Bucket {
  /** The bucket's number (its start / bucketMs); -1: never used. */
  slot = -1;
  allowed = 0;
  refused = 0;
  /** allowed, refused per surface, by SURFACE_INDEX. */
  readonly surfaces = new Float64Array(SURFACES.length * 2);
  readonly codes = new Map<string, number>();

  reset(slot: number): void {
    this.slot = slot;
    this.allowed = 0;
    this.refused = 0;
    this.surfaces.fill(0);
    this.codes.clear();
  }
}

interface KeyCount {
  readonly keyId: string;
  readonly account: string;
  n: number;
  /** In the requests summary: how many of them were refused; in the refusals summary: unused. */
  refused: number;
  lastCode: string;
}

/** A Misra–Gries summary: at most `capacity` keys; see the class comment. */
class Frequent {
  readonly counts = new Map<string, KeyCount>();
  constructor(private readonly capacity: number) {}

  add(key: KeyRecord, refused: boolean, code: string): void {
    const c = this.counts.get(key.id);
    if (c !== undefined) {
      c.n++;
      if (refused) {
        c.refused++;
        c.lastCode = code;
      }
      return;
    }
    if (this.counts.size < this.capacity) {
      this.counts.set(key.id, { keyId: key.id, account: key.account, n: 1, refused: refused ? 1 : 0, lastCode: refused ? code : "" });
      return;
    }
    // Full: the newcomer and every held key each lose one; the keys at zero leave.
    for (const [id, held] of this.counts) {
      held.n--;
      if (held.refused > held.n) held.refused = held.n;
      if (held.n <= 0) this.counts.delete(id);
    }
  }
}

class Segment {
  slot = -1;
  readonly requests: Frequent;
  readonly refusals: Frequent;
  constructor(capacity: number) {
    this.requests = new Frequent(capacity);
    this.refusals = new Frequent(capacity);
  }
  reset(slot: number): void {
    this.slot = slot;
    this.requests.counts.clear();
    this.refusals.counts.clear();
  }
}

export class LiveStats implements DecisionStats {
  readonly bucketMs: number;
  readonly windowMs: number;
  private readonly ring: Bucket[];
  /** The newest bucket's slot (-1: none yet). */
  private slot = -1;
  private current: Bucket;
  private readonly segments: Segment[];
  private segmentSlot = -1;
  private segment: Segment;

  constructor(options: LiveStatsOptions = {}) {
    const bucketMs = options.bucketMs ?? DEFAULT_BUCKET_MS;
    const windowMs = options.windowMs ?? DEFAULT_WINDOW_MS;
    const capacity = options.keyCapacity ?? DEFAULT_KEY_CAPACITY;
    if (!Number.isSafeInteger(bucketMs) || bucketMs < 1) throw new TypeError("bucketMs must be a positive integer");
    if (!Number.isSafeInteger(windowMs) || windowMs < bucketMs || windowMs % bucketMs !== 0) throw new TypeError("windowMs must be a whole number of buckets");
    if (windowMs / bucketMs > 100_000) throw new TypeError("at most 100,000 buckets");
    if (!Number.isSafeInteger(capacity) || capacity < TOP || capacity > 100_000) throw new TypeError(`keyCapacity must be an integer from ${TOP} to 100,000`);
    this.bucketMs = bucketMs;
    this.windowMs = windowMs;
    this.ring = Array.from({ length: windowMs / bucketMs }, () => new Bucket());
    this.current = this.ring[0] as Bucket;
    // The segments that can overlap the window, and the current one.
    const segments = Math.ceil(windowMs / SEGMENT_MS) + 1;
    this.segments = Array.from({ length: segments }, () => new Segment(capacity));
    this.segment = this.segments[0] as Segment;
  }

  /** DecisionStats: one decision (request path). */
  decided(surface: AuditSurface, code: string, key: KeyRecord | null, at: number): void {
    const slot = Math.floor(at / this.bucketMs);
    if (slot > this.slot) this.advance(slot);
    const bucket = this.current;
    const refused = code !== "OK" && code !== "HELD";
    const s = SURFACE_INDEX[surface] * 2;
    if (refused) {
      bucket.refused++;
      (bucket.surfaces[s + 1] as number)++;
      bucket.codes.set(code, (bucket.codes.get(code) ?? 0) + 1);
    } else {
      bucket.allowed++;
      (bucket.surfaces[s] as number)++;
    }
    if (key === null) return;
    const seg = Math.floor(at / SEGMENT_MS);
    if (seg > this.segmentSlot) this.advanceSegment(seg);
    this.segment.requests.add(key, refused, code);
    if (refused) this.segment.refusals.add(key, true, code);
  }

  /** Moves the ring on to `slot`, zeroing the buckets between (at most the whole ring). */
  private advance(slot: number): void {
    const size = this.ring.length;
    const from = this.slot < 0 || slot - this.slot > size ? slot - size + 1 : this.slot + 1;
    for (let s = from; s <= slot; s++) (this.ring[s % size] as Bucket).reset(s);
    this.slot = slot;
    this.current = this.ring[slot % size] as Bucket;
  }

  private advanceSegment(seg: number): void {
    const segment = this.segments[seg % this.segments.length] as Segment;
    segment.reset(seg);
    this.segmentSlot = seg;
    this.segment = segment;
  }

  private view(bucket: Bucket, slot: number): BucketView {
    if (bucket.slot !== slot) return { at: slot * this.bucketMs, allowed: 0, refused: 0, bySurface: {}, byCode: {} };
    return { at: slot * this.bucketMs, allowed: bucket.allowed, refused: bucket.refused, bySurface: surfaces([bucket]), byCode: Object.fromEntries(bucket.codes) };
  }

  /** The buckets of the window ending at `now`, oldest first. */
  private window(now: number): { readonly slot: number; readonly buckets: Bucket[] } {
    const slot = Math.max(Math.floor(now / this.bucketMs), this.slot);
    if (slot > this.slot) this.advance(slot);
    const size = this.ring.length;
    const buckets: Bucket[] = [];
    for (let s = slot - size + 1; s <= slot; s++) buckets.push(this.ring[((s % size) + size) % size] as Bucket);
    return { slot, buckets };
  }

  private totals(buckets: readonly Bucket[], first: number): Omit<BucketView, "at"> {
    let allowed = 0;
    let refused = 0;
    const codes: Record<string, number> = {};
    const live = buckets.filter((b, i) => b.slot === first + i);
    for (const b of live) {
      allowed += b.allowed;
      refused += b.refused;
      for (const [code, n] of b.codes) codes[code] = (codes[code] ?? 0) + n;
    }
    return { allowed, refused, bySurface: surfaces(live), byCode: codes };
  }

  private top(now: number): { topKeys: TopKey[]; topRefusedKeys: TopRefusedKey[] } {
    const oldest = Math.floor((now - this.windowMs) / SEGMENT_MS);
    const requests = new Map<string, { keyId: string; account: string; requests: number; refused: number }>();
    const refusals = new Map<string, { keyId: string; account: string; refused: number; lastCode: string; seg: number }>();
    for (const segment of this.segments) {
      if (segment.slot < oldest || segment.slot < 0) continue;
      for (const c of segment.requests.counts.values()) {
        const r = requests.get(c.keyId);
        if (r === undefined) requests.set(c.keyId, { keyId: c.keyId, account: c.account, requests: c.n, refused: c.refused });
        else {
          r.requests += c.n;
          r.refused += c.refused;
        }
      }
      for (const c of segment.refusals.counts.values()) {
        const r = refusals.get(c.keyId);
        if (r === undefined) refusals.set(c.keyId, { keyId: c.keyId, account: c.account, refused: c.n, lastCode: c.lastCode, seg: segment.slot });
        else {
          r.refused += c.n;
          if (segment.slot > r.seg) {
            r.lastCode = c.lastCode;
            r.seg = segment.slot;
          }
        }
      }
    }
    const byId = (a: { keyId: string }, b: { keyId: string }): number => (a.keyId < b.keyId ? -1 : a.keyId > b.keyId ? 1 : 0);
    const topKeys = [...requests.values()].sort((a, b) => b.requests - a.requests || byId(a, b)).slice(0, TOP);
    const topRefusedKeys = [...refusals.values()]
      .sort((a, b) => b.refused - a.refused || byId(a, b))
      .slice(0, TOP)
      .map(({ keyId, account, refused, lastCode }) => ({ keyId, account, refused, lastCode }));
    return { topKeys, topRefusedKeys };
  }

  /** `GET /portcullis/v1/stats`: every bucket of the window ending at `now` (empty ones as zeros), oldest first. */
  snapshot(now: number): StatsSnapshot {
    const { slot, buckets } = this.window(now);
    const first = slot - buckets.length + 1;
    return {
      now,
      bucketMs: this.bucketMs,
      windowMs: this.windowMs,
      buckets: buckets.map((b, i) => this.view(b, first + i)),
      totals: this.totals(buckets, first),
      ...this.top(now),
    };
  }

  /** The stream's `update`: the bucket `now` falls in, and the window's totals and top keys. */
  update(now: number): StatsUpdate {
    const { slot, buckets } = this.window(now);
    const first = slot - buckets.length + 1;
    return { now, bucket: this.view(buckets[buckets.length - 1] as Bucket, slot), totals: this.totals(buckets, first), ...this.top(now) };
  }
}

function surfaces(buckets: readonly Bucket[]): Record<string, Counts> {
  const out: Record<string, Counts> = {};
  for (let i = 0; i < SURFACES.length; i++) {
    let allowed = 0;
    let refused = 0;
    for (const b of buckets) {
      allowed += b.surfaces[i * 2] as number;
      refused += b.surfaces[i * 2 + 1] as number;
    }
    if (allowed + refused > 0) out[SURFACES[i] as string] = { allowed, refused };
  }
  return out;
}
