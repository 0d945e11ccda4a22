import type { ErrorCode } from "../../errors/catalogue.js";
import type { Shield } from "../../limits/shield.js";
import type { FailureResult, HotStore } from "../../storage/types.js";

/**
 * Authentication failures, counted toward blocks: the one list, for every surface (HTTP requests,
 * WebSocket upgrades, signed WebSocket messages and logons).
 */
export const AUTH_FAILURES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "KEY_ID_MALFORMED",
  "KEY_UNKNOWN",
  "KEY_REVOKED",
  "KEY_ENVIRONMENT_MISMATCH",
  "SIGNATURE_INVALID",
  "ALGORITHM_MISMATCH",
  "PASSPHRASE_INVALID",
  "TOKEN_MALFORMED",
  "TOKEN_URI_MISMATCH",
  "SESSION_INVALID",
]);

/** Of those, the ones that say someone is guessing at an existing key (they count toward the key's block too). */
export const KEY_FAILURES: ReadonlySet<ErrorCode> = new Set<ErrorCode>(["SIGNATURE_INVALID", "ALGORITHM_MISMATCH", "PASSPHRASE_INVALID"]);

/** Records one refusal: counts it when it is an authentication failure. Never throws, never waits. */
export type FailureRecorder = (code: ErrorCode, ip: string, keyId: string | null, now: number) => void;

/**
 * A failure counter over the hot store: an authentication failure counts toward a block of the
 * address (and of the key, for a wrong signature on an existing key), and what the hot store
 * decides is learnt by this process's shield. Off the response path: the refusal does not wait.
 * Disabled (`enabled` false: no limits configured) it records nothing.
 */
export function failureRecorder(hot: HotStore, shield: Shield, enabled: boolean): FailureRecorder {
  if (!enabled) return () => undefined;
  return (code, ip, keyId, now) => {
    if (!AUTH_FAILURES.has(code)) return;
    const id = KEY_FAILURES.has(code) ? keyId : null;
    const learn = (r: FailureResult): void => {
      if (r.ipBlockedUntil !== null) shield.blockIp(ip, r.ipBlockedUntil);
      if (r.keyBlockedUntil !== null && id !== null) shield.blockKey(id, r.keyBlockedUntil);
    };
    try {
      const result = hot.recordFailure(ip, id, now);
      if (result instanceof Promise) result.then(learn, () => undefined);
      else learn(result);
    } catch {
      // Counting failures must never break a refusal.
    }
  };
}
