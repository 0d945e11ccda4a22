/**
 * The demo exchange's fixed-point decimals: parsing Binance text exactly, formatting with 8
 * places, and exact price × quantity on the markets' grids.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { dec, div, floorToStep, formatDecimal, mul, parseDecimal } from "../src/exchange/decimal.js";

describe("decimal", () => {
  it("parses Binance decimal text", () => {
    expect(parseDecimal("60000")).toEqual({ ok: true, value: 6_000_000_000_000n });
    expect(parseDecimal("0.00000001")).toEqual({ ok: true, value: 1n });
    expect(parseDecimal("1.100000000000")).toEqual({ ok: true, value: 110_000_000n });
    expect(parseDecimal("0.000000001")).toEqual({ ok: false, reason: "precision" });
    for (const bad of ["", "-1", "+1", "1e5", "1.", ".1", "0x1", "1 ", "NaN", "1".repeat(21), `1.${"0".repeat(21)}`]) {
      expect(parseDecimal(bad), bad).toEqual({ ok: false, reason: "syntax" });
    }
  });

  it("formats with 8 places", () => {
    expect(formatDecimal(0n)).toBe("0.00000000");
    expect(formatDecimal(dec("60000"))).toBe("60000.00000000");
    expect(formatDecimal(dec("0.5"))).toBe("0.50000000");
    expect(formatDecimal(-dec("1.25"))).toBe("-1.25000000");
    expect(formatDecimal(dec("1.23456789"), 2)).toBe("1.23");
    expect(formatDecimal(dec("1.5"), 0)).toBe("1");
  });

  it("formats and parses round-trip", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10n ** 28n - 1n }), (v) => {
        expect(parseDecimal(formatDecimal(v))).toEqual({ ok: true, value: v });
      }),
    );
  });

  it("multiplies and divides exactly on the markets' grids", () => {
    expect(mul(dec("60005"), dec("0.1"))).toBe(dec("6000.5"));
    expect(mul(dec("60020"), dec("0.06662"))).toBe(dec("3998.5324"));
    expect(div(dec("3999"), dec("60020"))).toBe(dec("0.06662779"));
    expect(floorToStep(dec("0.06662779"), dec("0.00001"))).toBe(dec("0.06662"));
    expect(() => div(1n, 0n)).toThrow(RangeError);
    // A price on a 0.01 tick times a quantity on a 0.00001 step is a whole number of units.
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: 100_000_000n }), fc.bigInt({ min: 1n, max: 900_000_000n }), (ticks, steps) => {
        const price = ticks * dec("0.01");
        const qty = steps * dec("0.00001");
        expect((price * qty) % 100_000_000n).toBe(0n);
        expect(mul(price, qty)).toBe((price * qty) / 100_000_000n);
      }),
    );
  });
});
