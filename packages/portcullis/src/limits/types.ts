/**
 * Limits as configured: weighted request limits per client IP, per key and per account; order-
 * count limits per account on routes tagged `order`; a separate cancel limiter on routes tagged
 * `cancel`. Several windows per scope at once (per second, minute, day…).
 */
export type LimitScope = "ip" | "key" | "account";
export type LimitKind = "weight" | "orders" | "cancels";

export interface LimitSpec {
  /** The policy name in headers and overrides, e.g. "key-weight-1m". */
  readonly name: string;
  readonly scope: LimitScope;
  readonly kind: LimitKind;
  /** Units per window (requests' weights, or orders). */
  readonly limit: number;
  readonly windowMs: number;
}

/** One limit a request is charged against. */
export interface Charge {
  readonly spec: LimitSpec;
  /** The bucket: the limit's name and whose budget it is (an address, a key, an account). */
  readonly bucket: string;
  /** The limit in force (the spec's, or the key's override). */
  readonly limit: number;
  readonly windowMs: number;
  readonly cost: number;
}

/** A limit's state after a decision, for the RateLimit headers. */
export interface ChargeState {
  readonly remaining: number;
  /** ms until the bucket is full again. */
  readonly resetMs: number;
}

/** Escalation and shields. */
export interface ShieldPolicy {
  /** Refused (429) requests from one address within `strikeWindowMs` before it is banned. */
  readonly strikes: number;
  readonly strikeWindowMs: number;
  /** First ban length; each further ban of the address doubles it, up to `banMaxMs`. */
  readonly banBaseMs: number;
  readonly banMaxMs: number;
  /** Authentication failures (bad signature, unknown key…) tolerated per window… */
  readonly authFailuresPerIp: number;
  readonly authFailuresPerKey: number;
  readonly authFailureWindowMs: number;
  /** …before the address (or the key) is blocked for this long. */
  readonly authBlockMs: number;
}

export const DEFAULT_SHIELD_POLICY: ShieldPolicy = {
  strikes: 20,
  strikeWindowMs: 60_000,
  banBaseMs: 30_000,
  banMaxMs: 3_600_000,
  authFailuresPerIp: 30,
  authFailuresPerKey: 30,
  authFailureWindowMs: 60_000,
  authBlockMs: 300_000,
};
