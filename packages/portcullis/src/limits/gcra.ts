/**
 * GCRA (the generic cell rate algorithm), the limiter behind every weighted and count limit.
 *
 * A limit of `limit` units per `windowMs` has an emission interval T = windowMs / limit. Its only
 * state is the theoretical arrival time (TAT): when the bucket would be empty again at the
 * sustained rate. A request of cost w at time `now` is admitted when
 *
 *   newTat = max(TAT, now) + w·T   and   newTat − now ≤ windowMs
 *
 * — a leaky bucket of capacity `limit` draining one unit every T: at most `limit` units at once,
 * then one unit per T. (So a span of windowMs can see up to 2·limit units — a full burst, then the
 * whole window's drain — but never two full bursts back to back, as a fixed window allows at its
 * edge.) Remaining units are ⌊(windowMs − (newTat − now)) / T⌋; the bucket is empty again at TAT.
 *
 * Exactness: T is usually not an integer (60 000 ms / 7), and floating-point sums would let the
 * 7th request of a burst fail by 1e-12 ms. A TAT is therefore kept as integer milliseconds plus an
 * integer remainder in units of 1/limit ms (tat = ms + rem/limit, 0 ≤ rem < limit), and every
 * comparison is done on (tat − now)·limit, which stays far below 2^53. The Redis backend runs the
 * same integer arithmetic in Lua.
 */
/** The largest limit whose GCRA arithmetic (limit × window) stays exact in a double. */
export function maxLimit(windowMs: number): number {
  return Math.floor(Number.MAX_SAFE_INTEGER / windowMs);
}

export interface GcraLimit {
  /** Units per window (a positive integer). */
  readonly limit: number;
  /** The window in ms (a positive integer). */
  readonly windowMs: number;
}

/** A theoretical arrival time: `ms + rem / limit` milliseconds since the epoch. */
export interface Tat {
  readonly ms: number;
  readonly rem: number;
}

export interface GcraDecision {
  readonly allowed: boolean;
  /** The TAT to store if every limit of the request admits it. */
  readonly tat: Tat;
  /** Units left after this request (or left now, when refused). */
  readonly remaining: number;
  /** ms until the bucket is full again. */
  readonly resetMs: number;
  /** ms until a request of this cost would be admitted (0 when allowed). */
  readonly retryAfterMs: number;
}

/** Decides one limit for a request of `cost` units at `now` (integer ms). Pure. */
export function gcra(limit: GcraLimit, stored: Tat | undefined, cost: number, now: number): GcraDecision {
  const n = limit.limit;
  const horizon = limit.windowMs * n;
  // max(TAT, now)
  let ms = now;
  let rem = 0;
  if (stored !== undefined && (stored.ms > now || (stored.ms === now && stored.rem > 0))) {
    ms = stored.ms;
    rem = stored.rem;
  }
  const currentAhead = (ms - now) * n + rem;
  const total = rem + cost * limit.windowMs;
  const newMs = ms + Math.floor(total / n);
  const newRem = total % n;
  const ahead = (newMs - now) * n + newRem;
  if (ahead <= horizon) {
    return {
      allowed: true,
      tat: { ms: newMs, rem: newRem },
      remaining: Math.floor((horizon - ahead) / limit.windowMs),
      resetMs: Math.ceil(ahead / n),
      retryAfterMs: 0,
    };
  }
  return {
    allowed: false,
    tat: { ms, rem },
    remaining: Math.max(0, Math.floor((horizon - currentAhead) / limit.windowMs)),
    resetMs: Math.ceil(currentAhead / n),
    retryAfterMs: Math.ceil((ahead - horizon) / n),
  };
}
