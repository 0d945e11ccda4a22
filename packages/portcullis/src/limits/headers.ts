import type { RequestContext } from "../contract/request.js";
import type { Charge, ChargeState } from "../contract/limits.js";

/**
 * The IETF RateLimit fields (draft-ietf-httpapi-ratelimit-headers, structured form):
 *
 *   RateLimit-Policy: "key-weight-1m";q=1200;w=60
 *   RateLimit: "key-weight-1m";r=1187;t=42
 *
 * describing the one limit closest to exhaustion (the refusing one on a 429): its quota `q` per
 * window `w` seconds, the units remaining `r`, and `t` seconds until it is full again.
 */
export function rateLimitFields(
  charges: readonly Charge[],
  states: readonly ChargeState[],
  refused: number,
): { readonly policy: string; readonly limit: string } | null {
  let pick = refused;
  if (pick < 0) {
    let best = Number.POSITIVE_INFINITY;
    for (let i = 0; i < charges.length; i++) {
      const c = charges[i];
      const s = states[i];
      if (c === undefined || s === undefined) continue;
      const left = s.remaining / c.limit;
      if (left < best) {
        best = left;
        pick = i;
      }
    }
  }
  const charge = charges[pick];
  const state = states[pick];
  if (charge === undefined || state === undefined) return null;
  const name = charge.spec.name;
  return {
    policy: `"${name}";q=${charge.limit};w=${Math.ceil(charge.windowMs / 1000)}`,
    limit: `"${name}";r=${state.remaining};t=${Math.ceil(state.resetMs / 1000)}`,
  };
}

/** Retry-After in whole seconds (at least 1). */
export function retryAfterSeconds(ms: number): string {
  return String(Math.max(1, Math.ceil(ms / 1000)));
}

/** The rate-limit headers of an answer: the IETF fields, the venue's own, and Retry-After. */
export function limitHeaders(ctx: RequestContext): Record<string, string> | undefined {
  if (ctx.chargeStates === null && ctx.retryAfterMs < 0) return undefined;
  const out: Record<string, string> = {};
  addLimitHeaders(out, ctx);
  return out;
}

export function addLimitHeaders(out: Record<string, string>, ctx: RequestContext): void {
  const charges = ctx.charges;
  const states = ctx.chargeStates;
  if (charges !== null && states !== null && charges.length > 0) {
    const fields = rateLimitFields(charges, states, ctx.refusedCharge);
    if (fields !== null) {
      out["ratelimit-policy"] = fields.policy;
      out.ratelimit = fields.limit;
    }
    const venue = ctx.renderer?.limitHeaders?.(charges, states);
    if (venue !== undefined) Object.assign(out, venue);
  }
  if (ctx.retryAfterMs >= 0) out["retry-after"] = retryAfterSeconds(ctx.retryAfterMs);
}
