import type { ReplayClaim } from "../contract/request.js";
import type { VerificationKey } from "../contract/verification-key.js";

/**
 * Replay protection (stage 7), in one place: the two kinds of claim a signing scheme makes so that
 * its request cannot be accepted twice, the rule for how long a single-use value is remembered,
 * and the stores' contract. The rules themselves are `nonces.ts` (single-use values) and
 * `sequences.ts` (values that must increase) for one process; the Redis hot store runs the same
 * rules in its admission script (storage/redis/scripts.ts), and one contract test suite holds
 * both backends to them (test/storage/hot-contract.test.ts).
 *
 * A claim is recorded by the hot store together with the request's limits, all or nothing (one
 * round trip in Redis), and only after the signature verified (a forgery spends nothing).
 */

/**
 * How far a client's clock may run ahead of the gateway's, as every scheme allows it: a
 * single-use value is remembered this much longer than its window, so a request cannot become
 * fresh again after its value is forgotten.
 */
export const CLOCK_ALLOWANCE_MS = 1000;

/**
 * Until when (epoch ms) a single-use value signed at `signedAtMs` must be remembered: as long as
 * any window could still accept its request, plus the clock allowance.
 */
export function rememberUntil(signedAtMs: number, windowMs: number): number {
  return Math.ceil(signedAtMs + windowMs + CLOCK_ALLOWANCE_MS);
}

/**
 * The earliest moment (epoch ms, the gateway's clock) at which a request signed at `signedAtMs`
 * could have been accepted: its signed time less the allowance for clocks ahead, and never before
 * its key existed. A hot store whose memory began later than this may not remember the request,
 * so it refuses it (the fence: see `fenced`).
 */
export function acceptableFrom(signedAtMs: number, futureSkewMs: number, key: VerificationKey): number {
  const earliest = signedAtMs - futureSkewMs;
  const created = key.record.createdAt;
  return created > earliest ? created : earliest;
}

/**
 * A value the key may use once until `expiresAt` (a nonce, or the signature itself), for a
 * request that could have been accepted from `since` on (`acceptableFrom`).
 */
export function singleUse(keyId: string, value: string, since: number, expiresAt: number): ReplayClaim {
  return { kind: "nonce", keyId, value, since, expiresAt };
}

/**
 * The fence. A hot store remembers single-use values only since its memory began (`epochStart`:
 * the process started, or Redis restarted). A request that could have been accepted before then
 * may have been, by the state that was lost, so it is refused ("fenced") rather than accepted a
 * second time. The fence costs nothing after one window: a request signed after `epochStart` plus
 * the clock allowance is never fenced, and one signed before it is stale by then anyway.
 */
export function fenced(claim: ReplayClaim, epochStart: number): boolean {
  // Written so that a time that is not a number (NaN) is fenced: fail closed.
  return claim.kind === "nonce" && !(claim.since >= epochStart);
}

/**
 * A value that must increase for the key (Kraken's nonce): accepted once if above the highest
 * seen, or at most `window` below it and never seen.
 */
export function increasing(keyId: string, value: bigint, window: bigint): ReplayClaim {
  return { kind: "sequence", keyId, value, window };
}

/** The answer of a single-use check. */
export type NonceClaim = "fresh" | "replayed" | "full";

/** Each (key, value) pair is accepted once until it expires. */
export interface NonceStore {
  /**
   * Records `nonce` for `keyId` until `expiresAt` (epoch ms). "replayed" if it is already
   * recorded and unexpired; "full" if the store is at capacity (the caller fails closed).
   * May answer synchronously (memory) or with a promise (network stores).
   */
  claim(keyId: string, nonce: string, expiresAt: number, now: number): NonceClaim | Promise<NonceClaim>;
}

/** The answer of an increasing-value check. */
export type SequenceClaim = "fresh" | "replayed" | "too-low" | "full";

/**
 * Per-key values that must increase (Kraken's rule), with a tolerance window for requests that
 * arrive slightly out of order: a value is accepted once if it is above the highest seen, or at
 * most `window` below it and not seen before.
 */
export interface SequenceStore {
  claim(keyId: string, value: bigint, window: bigint): SequenceClaim | Promise<SequenceClaim>;
}
