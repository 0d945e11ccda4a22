import type { AnomalyScores } from "../contract/behaviour.js";
import type { KeyRecord, KeyStatus } from "../contract/keys.js";
import type { LimitSpec } from "../contract/limits.js";
import type { ReferencePrices } from "../contract/prices.js";
import type { Route } from "../contract/route.js";
import { PortcullisError } from "../errors/catalogue.js";
import type { KeyService } from "../keys/service.js";
import type { CompiledPolicy } from "../policy/engine.js";
import { type RiskProfile, compareRisk, riskProfile } from "./profile.js";

/**
 * Risk profiles of the keys (docs/behaviour.md, "Risk profile"): `riskProfile` fed with what is in
 * force — the key as stored, the limits and routes of the gateway's configuration, the policy
 * version in force, the reference prices, the key's latest anomaly score.
 */

/** The policy in force, compiled: the policy service (governance/policy-service.ts) answers it. */
export interface PolicyInForce {
  refresh(): Promise<CompiledPolicy>;
}

export interface RiskProfilesOptions {
  readonly keys: KeyService;
  readonly limits: readonly LimitSpec[];
  readonly routes: readonly Route[];
  readonly policy: PolicyInForce;
  readonly prices: ReferencePrices;
  /** The assets and symbols the reference prices know (the configured table's names). */
  readonly assets: readonly string[];
  readonly symbols: readonly string[];
  /** The behaviour model's latest scores; null when the behaviour stage is off. */
  readonly anomaly: AnomalyScores | null;
  /** The deployment's idle expiry of unrestricted trading keys (null: off). */
  readonly idleExpiryMs?: number | null;
  readonly now?: () => number;
  /** Keys read per page while ranking (default 1000, the key service's largest page). */
  readonly pageSize?: number;
}

/** Which keys `top` ranks. */
export interface RiskFilter {
  readonly account?: string;
  /** Only operator keys (true) or only other keys (false). */
  readonly operator?: boolean;
  readonly status?: KeyStatus;
}

/** The most keys `top` answers at once. */
export const MAX_TOP = 1000;
const PAGE = 1000;

export class RiskProfiles {
  private readonly options: RiskProfilesOptions;
  private readonly now: () => number;

  constructor(options: RiskProfilesOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
  }

  /** The profile of one key (KEY_NOT_FOUND when there is none). */
  async profile(keyId: string): Promise<RiskProfile> {
    const key = await this.options.keys.get(keyId);
    return this.of(key, await this.options.policy.refresh());
  }

  /** The `n` riskiest keys (1..1000), riskiest first; every key the filter admits is profiled. */
  async top(n: number, filter: RiskFilter = {}): Promise<RiskProfile[]> {
    if (!Number.isSafeInteger(n) || n < 1 || n > MAX_TOP) throw new PortcullisError("VALIDATION_FAILED", `top must be an integer from 1 to ${MAX_TOP}`, { top: "invalid" });
    const policy = await this.options.policy.refresh();
    let best: { readonly key: KeyRecord; readonly profile: RiskProfile }[] = [];
    let after: string | undefined;
    for (;;) {
      const size = this.options.pageSize ?? PAGE;
      const page = await this.options.keys.list({ limit: size, ...filter, ...(after === undefined ? {} : { after }) });
      // The score alone ranks (a profile without its sensitivities is several times cheaper).
      for (const key of page) best.push({ key, profile: await this.of(key, policy, false) });
      // Keep the list short while paging: only the best n can be answered.
      best.sort((a, b) => compareRisk(a.profile, b.profile));
      best = best.slice(0, n);
      const last = page[page.length - 1];
      if (page.length < size || last === undefined) break;
      after = last.id;
    }
    const out: RiskProfile[] = [];
    for (const { key } of best) out.push(await this.of(key, policy, true));
    return out;
  }

  /**
   * The scores of `keys` (the console's keys table): profiles without their sensitivities, which
   * the score does not need and which cost several times more, under one read of the policy.
   */
  async scores(keys: readonly KeyRecord[]): Promise<RiskProfile[]> {
    if (keys.length === 0) return [];
    const policy = await this.options.policy.refresh();
    const out: RiskProfile[] = [];
    for (const key of keys) out.push(await this.of(key, policy, false));
    return out;
  }

  private async of(key: KeyRecord, policy: CompiledPolicy, sensitivities = true): Promise<RiskProfile> {
    const o = this.options;
    const anomaly = o.anomaly === null ? null : await o.anomaly.latest(key.id);
    return riskProfile({
      key,
      limits: o.limits,
      routes: o.routes,
      policy,
      prices: o.prices,
      assets: o.assets,
      symbols: o.symbols,
      anomaly,
      idleExpiryMs: o.idleExpiryMs ?? null,
      now: this.now(),
    }, { sensitivities });
  }
}
