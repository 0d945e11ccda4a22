import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CLOCK_ALLOWANCE_MS, increasing, rememberUntil, singleUse } from "../../src/replay/claims.js";

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
    expect(singleUse("k", "n-1", 42)).toEqual({ kind: "nonce", keyId: "k", value: "n-1", expiresAt: 42 });
    expect(increasing("k", 10n, 3n)).toEqual({ kind: "sequence", keyId: "k", value: 10n, window: 3n });
  });
});
