import { AUTH_FAILURES, type ErrorCode, KEY_FAILURES } from "../../errors/catalogue.js";
import type { Shield } from "../../limits/shield.js";
import type { FailureResult, HotStore, StrikeResult } from "../../storage/types.js";

export { AUTH_FAILURES, KEY_FAILURES };

/**
 * Refusals of a request whose signature the gateway had verified that are never charged to the
 * address: the gateway's own trouble, and those the hot store has charged already (a limit's
 * refusal is its strike). Every other such refusal — a replay, a nonce too low, a missing scope, a
 * logged-out session, a key's concurrency cap — is one strike toward a ban of the address, since
 * copies of one signed request each cost a verification and need no secret to send.
 */
export const NOT_CHARGED: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "INTERNAL",
  "KEY_STORE_UNAVAILABLE",
  "HOT_STORE_UNAVAILABLE",
  "REPLAY_CAPACITY",
  // A restart's doing, not the client's: an honest client retrying after one must not be banned
  // (and a captured request is fenced only until it goes stale, as it would be refused anyway).
  "REPLAY_FENCED",
  // The gateway's own trouble too: its reference prices are missing or stale (docs/guardrails.md).
  // An honest client retrying its order during a price-feed outage must not be banned.
  "GUARDRAIL_NO_REFERENCE_PRICE",
  "RATE_LIMITED",
  "ORDERS_LIMITED",
  "IP_BANNED",
]);

/**
 * Records one refusal: counts it when it is an authentication failure, or charges it as a strike
 * when the gateway had verified the request's signature (`verified`). `ip` is the address's group
 * (`ClientAddress.group`). Never throws, never waits.
 */
export type FailureRecorder = (code: ErrorCode, ip: string, keyId: string | null, verified: boolean, now: number) => void;

/**
 * A failure counter over the hot store: an authentication failure counts toward a block of the
 * address, and a wrong signature on an existing key toward a block of that key for that address on
 * this surface (`scope`: the pipeline's) only — a key id is no secret, so failures from elsewhere
 * must never block its owner, nor failures at the gateway the admin API. A refusal after the
 * signature verified is a strike toward a ban of the address. What the hot store decides is
 * learnt by this process's shield. Off the response path: the refusal does not wait. Disabled
 * (`enabled` false: no limits configured) it records nothing.
 */
export function failureRecorder(hot: HotStore, shield: Shield, enabled: boolean, scope: string): FailureRecorder {
  if (!enabled) return () => undefined;
  const quietly = <R>(call: () => R | Promise<R>, learn: (r: R) => void): void => {
    try {
      const result = call();
      if (result instanceof Promise) result.then(learn, () => undefined);
      else learn(result);
    } catch {
      // Counting failures must never break a refusal.
    }
  };
  return (code, ip, keyId, verified, now) => {
    if (AUTH_FAILURES.has(code)) {
      const id = KEY_FAILURES.has(code) ? keyId : null;
      quietly(
        () => hot.recordFailure(ip, id === null ? null : `${scope}|${id}`, now),
        (r: FailureResult) => {
          if (r.ipBlockedUntil !== null) shield.blockIp(ip, r.ipBlockedUntil);
          if (r.keyBlockedUntil !== null && id !== null) shield.blockKey(scope, id, ip, r.keyBlockedUntil);
        },
      );
      return;
    }
    if (!verified || NOT_CHARGED.has(code)) return;
    quietly(
      () => hot.strike(ip, now),
      (r: StrikeResult) => {
        if (r.bannedUntil !== null) shield.ban(ip, r.bannedUntil);
      },
    );
  };
}
