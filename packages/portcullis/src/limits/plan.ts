import type { Route } from "../contract/route.js";
import type { VerificationKey } from "../contract/verification-key.js";
import { maxLimit } from "./gcra.js";
import type { Charge, LimitScope, LimitSpec } from "../contract/limits.js";

/**
 * Which limits a request is charged against, compiled once from the configuration:
 *
 * - weight limits (per IP, per key, per account) cost the route's weight;
 * - routes tagged `order` also cost one unit of each order-count limit (per account);
 * - routes tagged `cancel` cost one unit of each cancel limit (per account) and nothing else, so a
 *   bot that has spent its weight can always cancel;
 * - public routes (no key) are charged against the IP limits only.
 *
 * An IP limit is charged to the client's address group (`ClientAddress.group`): an IPv4 address,
 * or an IPv6 client's whole prefix (a /64 by default), so that one subscriber's many addresses
 * share one budget.
 *
 * A key's overrides (a market maker gets more) replace a limit's value by name.
 */
export class LimitPlan {
  private readonly weight: Readonly<Record<LimitScope, readonly LimitSpec[]>>;
  private readonly orders: readonly LimitSpec[];
  private readonly cancels: readonly LimitSpec[];
  readonly specs: readonly LimitSpec[];
  /**
   * A key's charges per route never change while the key's record does not (its id, account and
   * overrides), so they are built once: the cache is keyed by the VerificationKey object, which
   * the key cache replaces whenever the record changes. Besides the allocations, reusing the same
   * bucket strings lets the hot store's map lookups reuse their cached hashes.
   */
  private readonly keyCharges = new WeakMap<VerificationKey, Map<Route, readonly Charge[]>>();

  constructor(specs: readonly LimitSpec[]) {
    const names = new Set<string>();
    for (const s of specs) {
      if (names.has(s.name)) throw new TypeError(`limit ${s.name} is defined twice`);
      names.add(s.name);
      if (!Number.isSafeInteger(s.limit) || s.limit <= 0) throw new TypeError(`limit ${s.name}: limit must be a positive integer`);
      if (!Number.isSafeInteger(s.windowMs) || s.windowMs <= 0) throw new TypeError(`limit ${s.name}: window must be a positive integer`);
      if (s.limit > maxLimit(s.windowMs)) throw new TypeError(`limit ${s.name}: limit × window (ms) must stay below 2^53 (at most ${maxLimit(s.windowMs)} for this window)`);
      if (s.kind !== "weight" && s.scope !== "account") throw new TypeError(`limit ${s.name}: ${s.kind} limits are per account`);
    }
    this.specs = specs;
    const weight = specs.filter((s) => s.kind === "weight");
    this.weight = {
      ip: weight.filter((s) => s.scope === "ip"),
      key: weight.filter((s) => s.scope === "key"),
      account: weight.filter((s) => s.scope === "account"),
    };
    this.orders = specs.filter((s) => s.kind === "orders");
    this.cancels = specs.filter((s) => s.kind === "cancels");
  }

  get empty(): boolean {
    return this.specs.length === 0;
  }

  /** `ip`: the client's address group (`ClientAddress.group`). */
  charges(route: Route, ip: string, key: VerificationKey | null): Charge[] {
    const out: Charge[] = [];
    const cancel = key !== null && route.tags.includes("cancel");
    const weight = route.weight;
    if (!cancel && weight > 0) {
      const overrides = key?.record.limits;
      for (const s of this.weight.ip) out.push(charge(s, ip, weight, overrides));
    }
    if (key === null) return out;
    let perRoute = this.keyCharges.get(key);
    if (perRoute === undefined) {
      perRoute = new Map();
      this.keyCharges.set(key, perRoute);
    }
    let keyed = perRoute.get(route);
    if (keyed === undefined) {
      keyed = this.keyed(route, key, cancel);
      perRoute.set(route, keyed);
    }
    for (const c of keyed) out.push(c);
    return out;
  }

  /** The charges of `key` on `route` that do not depend on the address. */
  private keyed(route: Route, key: VerificationKey, cancel: boolean): readonly Charge[] {
    const out: Charge[] = [];
    const { id, account, limits: overrides } = key.record;
    if (cancel) {
      for (const s of this.cancels) out.push(charge(s, account, 1, overrides));
      return out;
    }
    const weight = route.weight;
    if (weight > 0) {
      for (const s of this.weight.key) out.push(charge(s, id, weight, overrides));
      for (const s of this.weight.account) out.push(charge(s, account, weight, overrides));
    }
    if (route.tags.includes("order")) {
      for (const s of this.orders) out.push(charge(s, account, 1, overrides));
    }
    return out;
  }
}

function charge(spec: LimitSpec, owner: string, cost: number, overrides: Readonly<Record<string, number>> | undefined): Charge {
  // An override beyond exact arithmetic (possible only through a path that could not check it)
  // is held at the largest exact limit: in effect, no limit.
  const limit = Math.min(overrides?.[spec.name] ?? spec.limit, maxLimit(spec.windowMs));
  return { spec, bucket: `${spec.name}|${owner}`, limit, windowMs: spec.windowMs, cost };
}
