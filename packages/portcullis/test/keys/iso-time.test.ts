/**
 * keys/warning.ts `isoTime`: the idle-expiry header's timestamp, formatted without a Date per
 * answer, must be exactly what `Date.prototype.toISOString` writes, for any time (a property),
 * across second boundaries in both directions, and outside the cached range.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isoTime } from "../../src/keys/warning.js";

const plain = (ms: number): string => new Date(ms).toISOString();

describe("isoTime", () => {
  it("is toISOString for any integer time in years 1000-9999 (property)", () => {
    fc.assert(
      fc.property(fc.integer({ min: -30_610_224_000_000, max: 253_402_300_799_999 }), (ms) => {
        expect(isoTime(ms)).toBe(plain(ms));
      }),
      { numRuns: 5_000 },
    );
  });

  it("is toISOString for runs of nearby times (the cached second, then the next and the previous)", () => {
    const base = Date.UTC(2026, 11, 6, 12, 0, 59, 990);
    for (const ms of [base, base + 5, base + 9, base + 10, base + 11, base + 1_000, base - 1_000, base - 990, base - 991, 0, -1, -999, -1_000, -1_001, 1, 99, 100]) {
      expect(isoTime(ms)).toBe(plain(ms));
    }
  });

  it("takes the plain path outside years 1000-9999 and for fractions of a millisecond", () => {
    for (const ms of [-62_198_755_200_000, 253_402_300_800_000, 8.64e15, -8.64e15, 1_765_000_000_000.5, -0.5]) {
      expect(isoTime(ms)).toBe(plain(ms));
    }
    expect(() => isoTime(Number.NaN)).toThrow(RangeError);
    expect(() => isoTime(8.64e15 + 1)).toThrow(RangeError);
  });
});
