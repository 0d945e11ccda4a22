import type { Route } from "../../contract/route.js";
import { type Denial, type ErrorCode, deny } from "../../errors/catalogue.js";
import type { VerificationKey } from "../../contract/verification-key.js";
import type { LimitPlan } from "../../limits/plan.js";
import type { Shield } from "../../limits/shield.js";
import type { AdmissionResult, FailureResult, HotStore } from "../../storage/types.js";
import type { ReplayClaim } from "../../contract/request.js";

/**
 * Stages 7 and 9 for a message: its replay claim (a signed message's signature, single-use) and
 * every limit its method is charged against, decided together by the hot store, all or nothing —
 * the same buckets as HTTP requests, so a key's budget is one budget whichever way it calls. A
 * message the hot store cannot decide is refused (fail closed; no WebSocket method is degradable).
 * The per-key concurrency cap counts HTTP requests in flight and does not apply to messages.
 */
export interface Admitter {
  readonly plan: LimitPlan;
  readonly hot: HotStore;
  readonly shield: Shield;
  /** Count authentication failures toward blocks (as the pipeline does when limits are on). */
  readonly blockOnAuthFailures: boolean;
}

export interface Refused {
  readonly denial: Denial;
  /** For a refusal that can be retried later (429s): when, in ms; else -1. */
  readonly retryAfterMs: number;
}

export async function admitMessage(a: Admitter, route: Route, ip: string, key: VerificationKey | null, replay: ReplayClaim | null, now: number): Promise<Refused | null> {
  const banned = a.shield.bannedUntil(ip, now);
  if (banned !== null) return { denial: deny("IP_BANNED"), retryAfterMs: banned - now };
  const charges = a.plan.empty ? [] : a.plan.charges(route, ip, key);
  const session = key?.session?.sid ?? null;
  if (replay === null && charges.length === 0 && session === null) return null;
  let result: AdmissionResult;
  try {
    result = await a.hot.admit({ now, ip, replay, charges, session });
  } catch (err) {
    return { denial: deny("HOT_STORE_UNAVAILABLE", err instanceof Error ? err.message : String(err)), retryAfterMs: -1 };
  }
  if (result.ok) return null;
  switch (result.reason) {
    case "limited": {
      if (result.bannedUntil !== null) {
        a.shield.ban(ip, result.bannedUntil);
        return { denial: deny("IP_BANNED"), retryAfterMs: result.bannedUntil - now };
      }
      const spec = charges[result.index]?.spec;
      return { denial: deny(spec?.kind === "orders" ? "ORDERS_LIMITED" : "RATE_LIMITED", spec?.name), retryAfterMs: result.retryAfterMs };
    }
    case "banned":
      a.shield.ban(ip, result.until);
      return { denial: deny("IP_BANNED"), retryAfterMs: result.until - now };
    case "replayed":
      return { denial: deny("NONCE_REPLAYED"), retryAfterMs: -1 };
    case "too-low":
      return { denial: deny("NONCE_NOT_INCREASING"), retryAfterMs: -1 };
    case "full":
      return { denial: deny("REPLAY_CAPACITY"), retryAfterMs: -1 };
    case "session-revoked":
      return { denial: deny("SESSION_REVOKED", "logged out"), retryAfterMs: -1 };
  }
}

/** Refusals that count toward an address's (or a key's) authentication-failure block, as in the pipeline. */
const AUTH_FAILURES: ReadonlySet<ErrorCode> = new Set<ErrorCode>(["KEY_ID_MALFORMED", "KEY_UNKNOWN", "KEY_REVOKED", "KEY_ENVIRONMENT_MISMATCH", "SIGNATURE_INVALID", "ALGORITHM_MISMATCH"]);
const KEY_FAILURES: ReadonlySet<ErrorCode> = new Set<ErrorCode>(["SIGNATURE_INVALID", "ALGORITHM_MISMATCH"]);

/** Counts a failed message authentication (logon, signed message) toward blocks; never throws, never waits. */
export function recordAuthFailure(a: Admitter, code: ErrorCode, ip: string, keyId: string | null, now: number): void {
  if (!a.blockOnAuthFailures || !AUTH_FAILURES.has(code)) return;
  const id = KEY_FAILURES.has(code) ? keyId : null;
  const learn = (r: FailureResult): void => {
    if (r.ipBlockedUntil !== null) a.shield.blockIp(ip, r.ipBlockedUntil);
    if (r.keyBlockedUntil !== null && id !== null) a.shield.blockKey(id, r.keyBlockedUntil);
  };
  try {
    const result = a.hot.recordFailure(ip, id, now);
    if (result instanceof Promise) result.then(learn, () => undefined);
    else learn(result);
  } catch {
    // Counting failures must never break a refusal.
  }
}
