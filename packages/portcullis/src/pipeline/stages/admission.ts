import type { StageAnswer, RequestContext } from "../../contract/request.js";
import { type Denial, deny } from "../../errors/catalogue.js";
import type { LimitPlan } from "../../limits/plan.js";
import type { LimitSpec } from "../../contract/limits.js";
import type { Shield } from "../../limits/shield.js";
import type { Admission, AdmissionResult, FallbackHotStore, HotStore } from "../../storage/types.js";
import { type Stage, retryAfter } from "./stage.js";

export interface AdmissionStageOptions {
  /** Replay state, limits, bans: memory, or Redis shared by many gateways. */
  readonly hot: HotStore;
  /**
   * Local stand-in for routes marked degradable when `hot` cannot answer (Redis down); every
   * other route then fails closed. Null: everything fails closed.
   */
  readonly fallbackHot: FallbackHotStore | null;
  /** Which limits apply to a request. */
  readonly limits: LimitPlan;
  /** Bans known in this process, and the per-key concurrency cap. */
  readonly shield: Shield;
  /** The extra limit of a throttled key (stage 11): requests per minute. */
  readonly throttlePerMinute: number;
  /** Told when `hot` cannot answer (the metrics' hot-store errors); null: nobody. */
  readonly onHotFailure?: (() => void) | null;
}

/** The limit a throttled key is charged against (its name in RateLimit headers). */
export const ANOMALY_THROTTLE_LIMIT = "anomaly-throttle";
export const DEFAULT_THROTTLE_PER_MINUTE = 6;

export interface AdmissionStage extends Stage {
  /** Releases the request's concurrency slot (the lifecycle's finish hook calls it once). */
  finish(ctx: RequestContext): void;
}

/**
 * Stages 7 and 9, admission: the request's replay claim (from its credential) and every limit it
 * is charged against, decided together by the hot store, all or nothing: nothing is consumed by a
 * request refused earlier, and a request refused by any limit records nothing (one Redis round
 * trip per request). With a per-key concurrency cap, an admitted request holds one of its key's
 * slots until `finish`.
 */
export function admissionStage(options: AdmissionStageOptions): AdmissionStage {
  const { hot, limits, shield } = options;
  const fallback = options.fallbackHot;
  const perMinute = options.throttlePerMinute;
  const onHotFailure = options.onHotFailure ?? null;
  if (!Number.isSafeInteger(perMinute) || perMinute < 1) throw new TypeError("throttlePerMinute must be a positive integer");
  const throttleSpec: LimitSpec = { name: ANOMALY_THROTTLE_LIMIT, scope: "key", kind: "weight", limit: perMinute, windowMs: 60_000 };
  /** True from the first degraded admission until the hot store answers again: one outage. */
  let degraded = false;

  const finish = (ctx: RequestContext): void => {
    if (ctx.slotHeld && ctx.key !== null) {
      ctx.slotHeld = false;
      shield.release(ctx.key.record.id);
    }
  };

  const admitted = (ctx: RequestContext, r: AdmissionResult): Denial | undefined => {
    if (r.ok) {
      ctx.chargeStates = r.states;
      return undefined;
    }
    finish(ctx);
    switch (r.reason) {
      case "limited": {
        ctx.chargeStates = r.states;
        ctx.refusedCharge = r.index;
        if (r.bannedUntil !== null) {
          // The strike that earns the ban is answered as the ban it earned.
          shield.ban(ctx.client?.group ?? "", r.bannedUntil);
          return retryAfter(deny("IP_BANNED"), ctx, r.bannedUntil);
        }
        ctx.retryAfterMs = r.retryAfterMs;
        const spec = ctx.charges?.[r.index]?.spec;
        if (spec === throttleSpec) return deny("ANOMALY_THROTTLED", ctx.risk?.actionId);
        return deny(spec?.kind === "orders" ? "ORDERS_LIMITED" : "RATE_LIMITED", spec?.name);
      }
      case "banned":
        shield.ban(ctx.client?.group ?? "", r.until);
        return retryAfter(deny("IP_BANNED"), ctx, r.until);
      case "replayed":
        return deny("NONCE_REPLAYED");
      case "too-low":
        return deny("NONCE_NOT_INCREASING");
      case "fenced":
        return deny("REPLAY_FENCED");
      case "full":
        return deny("REPLAY_CAPACITY");
      case "session-revoked":
        return deny("SESSION_REVOKED", "logged out");
    }
  };

  /** The hot store could not answer: degradable routes use local state, the rest fail closed. */
  const degrade = (ctx: RequestContext, admission: Admission, err: unknown): StageAnswer => {
    onHotFailure?.();
    if (fallback === null || ctx.route?.degradable !== true) {
      finish(ctx);
      return deny("HOT_STORE_UNAVAILABLE", err instanceof Error ? err.message : String(err));
    }
    ctx.degraded = true;
    if (!degraded) {
      // A new outage: the stand-in reads the durable reservations and logouts again.
      degraded = true;
      fallback.reload();
    }
    const result = fallback.admit(admission);
    if (result instanceof Promise) return result.then((r) => admitted(ctx, r), () => deny("HOT_STORE_UNAVAILABLE"));
    return admitted(ctx, result);
  };

  return {
    name: "admit",
    finish,
    run(ctx) {
      const route = ctx.route;
      if (route === null) return deny("INTERNAL", "admission before routing");
      const key = ctx.key;
      const ip = ctx.client?.group ?? "";
      const replay = key === null || ctx.credential === null ? null : ctx.credential.replayClaim(ctx, key);
      const charges = limits.empty ? [] : limits.charges(route, ip, key);
      // Stage 11: a throttled key is charged against its extra limit too (every route, one unit).
      if (key !== null && ctx.risk !== null && ctx.risk.state === "throttle") {
        const id = key.record.id;
        charges.push({ spec: throttleSpec, bucket: `${ANOMALY_THROTTLE_LIMIT}|${id}`, limit: perMinute, windowMs: 60_000, cost: 1 });
      }
      ctx.charges = charges;
      const session = key?.session ?? null;
      if (replay === null && charges.length === 0 && session === null) return undefined;
      // Without a cap there is no slot to hold (nor a release to wait for when the answer ends).
      if (key !== null && shield.capped) {
        if (!shield.acquire(key.record.id)) return deny("CONCURRENCY_LIMITED");
        ctx.slotHeld = true;
      }
      const admission: Admission = { now: ctx.now, ip, replay, charges, session: session === null ? null : session.sid };
      let result: AdmissionResult | Promise<AdmissionResult>;
      try {
        result = hot.admit(admission);
      } catch (err) {
        return degrade(ctx, admission, err);
      }
      if (result instanceof Promise) {
        return result.then(
          (r) => {
            degraded = false;
            return admitted(ctx, r);
          },
          (err: unknown) => degrade(ctx, admission, err),
        );
      }
      return admitted(ctx, result);
    },
  };
}
