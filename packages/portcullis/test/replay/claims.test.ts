import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CLOCK_ALLOWANCE_MS, acceptableFrom, fenced, increasing, rememberUntil, singleUse } from "../../src/replay/claims.js";
import { checkFreshness } from "../../src/signatures/native.js";
import { binanceFreshness } from "../../src/dialects/binance/message.js";
import { hmacVerificationKey } from "../support/keys.js";

describe("replay claims", () => {
  it("a single-use value outlives every moment its request could still be fresh, by the clock allowance", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 45 }), fc.integer({ min: 0, max: 60_000 }), fc.integer({ min: 0, max: 999 }), (signedAt, window, micros) => {
        const at = signedAt + micros / 1000;
        const until = rememberUntil(at, window);
        // Fresh while now - signedAt <= window (and a clock up to the allowance ahead).
        expect(until).toBeGreaterThanOrEqual(at + window + CLOCK_ALLOWANCE_MS);
        expect(until - (at + window + CLOCK_ALLOWANCE_MS)).toBeLessThan(1);
        expect(Number.isInteger(until)).toBe(true);
      }),
    );
  });

  it("builds the two kinds of claim the hot store records", () => {
    expect(singleUse("k", "n-1", 7, 42)).toEqual({ kind: "nonce", keyId: "k", value: "n-1", since: 7, expiresAt: 42 });
    expect(increasing("k", 10n, 3n)).toEqual({ kind: "sequence", keyId: "k", value: 10n, window: 3n });
  });

  it("the fence covers every moment a scheme's freshness could have accepted the request (native, Binance; fast-check)", () => {
    // Whatever the signed time, window, allowance and key age: if freshness accepts the request at
    // `t`, and the key existed then, the request is acceptable from no later than `t` — so a hot
    // store whose memory began after `t` fences it, and one that began at or before it does not
    // need to.
    fc.assert(
      fc.property(
        fc.integer({ min: 1_600_000_000, max: 1_900_000_000 }),
        fc.integer({ min: 1, max: 60_000 }),
        fc.integer({ min: 0, max: 60_000 }),
        fc.integer({ min: -120_000, max: 120_000 }),
        fc.integer({ min: -120_000, max: 120_000 }),
        (createdSeconds, windowMs, skewMs, offset, keyAge) => {
          const t = createdSeconds * 1000 + offset;
          const key = hmacVerificationKey("secret", { createdAt: t - Math.abs(keyAge) });
          const nativeSince = acceptableFrom(createdSeconds * 1000, skewMs, key);
          if (checkFreshness(createdSeconds, undefined, t, windowMs, skewMs) === null) {
            expect(nativeSince).toBeLessThanOrEqual(t);
            expect(fenced(singleUse("k", "n", nativeSince, t + windowMs), t + 1)).toBe(true);
          }
          const timestamp = createdSeconds * 1000 + (offset % 1000);
          const binanceSince = acceptableFrom(timestamp, skewMs, key);
          if (binanceFreshness(timestamp, windowMs, key, t, skewMs) === undefined) expect(binanceSince).toBeLessThanOrEqual(t);
          // Never before its key existed.
          expect(nativeSince).toBeGreaterThanOrEqual(key.record.createdAt);
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it("fences single-use claims only, and only those acceptable before the epoch", () => {
    expect(fenced(singleUse("k", "n", 999, 5_000), 1_000)).toBe(true);
    expect(fenced(singleUse("k", "n", 1_000, 5_000), 1_000)).toBe(false);
    expect(fenced(singleUse("k", "n", 0, 5_000), -Infinity)).toBe(false);
    expect(fenced(increasing("k", 1n, 0n), Infinity)).toBe(false);
    expect(fenced(singleUse("k", "n", Number.NaN, 5_000), 0)).toBe(true);
  });
});
