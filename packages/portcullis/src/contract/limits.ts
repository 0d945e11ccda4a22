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
