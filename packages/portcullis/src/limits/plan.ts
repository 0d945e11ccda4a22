import type { Route } from "../authz/routes.js";
import type { VerificationKey } from "../keys/cache.js";
import type { Charge, LimitScope, LimitSpec } from "./types.js";

/**
 * Which limits a request is charged against, compiled once from the configuration:
 *
 * - weight limits (per IP, per key, per account) cost the route's weight;
 * - routes tagged `order` also cost one unit of each order-count limit (per account);
 * - routes tagged `cancel` cost one unit of each cancel limit (per account) and nothing else, so a
 *   bot that has spent its weight can always cancel;
 * - public routes (no key) are charged against the IP limits only.
 *
 * A key's overrides (a market maker gets more) replace a limit's value by name.
 */
export class LimitPlan {
  private readonly weight: Readonly<Record<LimitScope, readonly LimitSpec[]>>;
  private readonly orders: readonly LimitSpec[];
  private readonly cancels: readonly LimitSpec[];
  readonly specs: readonly LimitSpec[];

  constructor(specs: readonly LimitSpec[]) {
    const names = new Set<string>();
    for (const s of specs) {
      if (names.has(s.name)) throw new TypeError(`limit ${s.name} is defined twice`);
      names.add(s.name);
      if (!Number.isSafeInteger(s.limit) || s.limit <= 0) throw new TypeError(`limit ${s.name}: limit must be a positive integer`);
      if (!Number.isSafeInteger(s.windowMs) || s.windowMs <= 0) throw new TypeError(`limit ${s.name}: window must be a positive integer`);
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

  charges(route: Route, ip: string, key: VerificationKey | null): Charge[] {
    const out: Charge[] = [];
    const overrides = key?.record.limits;
    const charge = (spec: LimitSpec, owner: string, cost: number): void => {
      const limit = overrides?.[spec.name] ?? spec.limit;
      out.push({ spec, bucket: `${spec.name}|${owner}`, limit, windowMs: spec.windowMs, cost });
    };
    const tags = route.tags;
    if (key !== null && tags.includes("cancel")) {
      for (const s of this.cancels) charge(s, key.record.account, 1);
      return out;
    }
    const weight = route.weight;
    if (weight > 0) {
      for (const s of this.weight.ip) charge(s, ip, weight);
      if (key !== null) {
        for (const s of this.weight.key) charge(s, key.record.id, weight);
        for (const s of this.weight.account) charge(s, key.record.account, weight);
      }
    }
    if (key !== null && tags.includes("order")) {
      for (const s of this.orders) charge(s, key.record.account, 1);
    }
    return out;
  }
}
