/**
 * Exact decimals (operations/decimal.ts): the venues' plain decimal syntax accepted, everything
 * else refused, and parse / format / compare / add / multiply checked against a reference that
 * works on the digit strings themselves (fast-check).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  MAX_DECIMAL_SCALE,
  MAX_INTEGER_DIGITS,
  addDecimal,
  compareDecimal,
  formatDecimal,
  multiplyDecimal,
  normalizeDecimal,
  parseDecimal,
} from "../../src/operations/decimal.js";
import type { Decimal } from "../../src/contract/operations.js";

function d(text: string): Decimal {
  const value = parseDecimal(text);
  if (value === null) throw new Error(`not a decimal: ${text}`);
  return value;
}

describe("parseDecimal", () => {
  it("accepts plain decimals and keeps the scale that was written", () => {
    expect(d("1")).toEqual({ coefficient: 1n, scale: 0 });
    expect(d("0.1")).toEqual({ coefficient: 1n, scale: 1 });
    expect(d("1.50")).toEqual({ coefficient: 150n, scale: 2 });
    expect(d("007.5")).toEqual({ coefficient: 75n, scale: 1 });
    expect(d("0")).toEqual({ coefficient: 0n, scale: 0 });
    expect(d("9007199254740993")).toEqual({ coefficient: 9007199254740993n, scale: 0 });
    expect(d(`${"9".repeat(MAX_INTEGER_DIGITS)}.${"9".repeat(MAX_DECIMAL_SCALE)}`).scale).toBe(MAX_DECIMAL_SCALE);
  });

  it.each([
    "", " 1", "1 ", "  1", "+1", "-1", "1e5", "1E5", "1.5e-3", "0x10", "0b1", "0o7", ".5", "1.", "1..2", "1.2.3", "1,5", "1_000",
    "Infinity", "NaN", "١", "１", "1\n", "\t1", "0.1 ", "--1",
    "1".repeat(MAX_INTEGER_DIGITS + 1),
    `1.${"1".repeat(MAX_DECIMAL_SCALE + 1)}`,
    "1".repeat(5000),
  ])("refuses %j", (text) => {
    expect(parseDecimal(text)).toBeNull();
  });

  it("is exact where floats are not", () => {
    expect(formatDecimal(addDecimal(d("0.1"), d("0.2")))).toBe("0.3");
    expect(compareDecimal(addDecimal(d("0.1"), d("0.2")), d("0.3"))).toBe(0);
    expect(formatDecimal(multiplyDecimal(d("1.25"), d("27500")))).toBe("34375.00");
    expect(formatDecimal(normalizeDecimal(d("34375.00")))).toBe("34375");
    expect(formatDecimal(normalizeDecimal(d("0.0100")))).toBe("0.01");
  });
});

// --- a reference on digit strings -----------------------------------------------------------

const digit = fc.constantFrom("0", "1", "2", "3", "4", "5", "6", "7", "8", "9");
const digits = (min: number, max: number) => fc.array(digit, { minLength: min, maxLength: max }).map((a) => a.join(""));
/** Any accepted decimal text: leading zeros and trailing fractional zeros included. */
const decimalText = fc.tuple(digits(1, MAX_INTEGER_DIGITS), fc.option(digits(1, MAX_DECIMAL_SCALE), { nil: undefined })).map(([i, f]) => (f === undefined ? i : `${i}.${f}`));

/** Compares two decimal texts by their digits: strip leading zeros, pad the fractions, compare as strings. */
function referenceCompare(a: string, b: string): number {
  const [ai = "", af = ""] = a.split(".");
  const [bi = "", bf = ""] = b.split(".");
  const x = ai.replace(/^0+/, "");
  const y = bi.replace(/^0+/, "");
  if (x.length !== y.length) return x.length < y.length ? -1 : 1;
  if (x !== y) return x < y ? -1 : 1;
  const width = Math.max(af.length, bf.length);
  const p = af.padEnd(width, "0");
  const q = bf.padEnd(width, "0");
  return p === q ? 0 : p < q ? -1 : 1;
}

/** The canonical text of a decimal text: no leading integer zeros (but one), the fraction as written. */
function referenceFormat(text: string): string {
  const [i = "", f] = text.split(".");
  const integer = i.replace(/^0+(?=\d)/, "");
  return f === undefined ? integer : `${integer}.${f}`;
}

describe("decimal properties (fast-check)", () => {
  it("parse then format gives the text back (leading zeros dropped), and parses to the same value again", () => {
    fc.assert(
      fc.property(decimalText, (text) => {
        const value = d(text);
        const formatted = formatDecimal(value);
        expect(formatted).toBe(referenceFormat(text));
        expect(d(formatted)).toEqual(value);
      }),
      { numRuns: 2000 },
    );
  });

  it("compares exactly like the digit-string reference", () => {
    fc.assert(
      fc.property(decimalText, decimalText, (a, b) => {
        expect(compareDecimal(d(a), d(b))).toBe(referenceCompare(a, b));
      }),
      { numRuns: 2000 },
    );
  });

  it("adds and multiplies exactly (checked through bigint arithmetic on the scaled values)", () => {
    fc.assert(
      fc.property(decimalText, decimalText, (a, b) => {
        const x = d(a);
        const y = d(b);
        const sum = addDecimal(x, y);
        const product = multiplyDecimal(x, y);
        // Both orders of the operands give one value.
        expect(compareDecimal(sum, addDecimal(y, x))).toBe(0);
        expect(compareDecimal(product, multiplyDecimal(y, x))).toBe(0);
        // The sum is never below an operand (both are non-negative).
        expect(compareDecimal(sum, x)).toBeGreaterThanOrEqual(0);
        // Reference: scale both to 40 decimals as bigints from the text.
        const scaled = (t: string): bigint => {
          const [i = "", f = ""] = t.split(".");
          return BigInt(i + f.padEnd(40, "0"));
        };
        const sumRef = scaled(a) + scaled(b);
        expect(scaled(formatDecimal(normalizeDecimal(sum)))).toBe(sumRef);
        const productRef = scaled(a) * scaled(b); // scale 80
        const p = formatDecimal(product);
        const [pi = "", pf = ""] = p.split(".");
        expect(BigInt(pi + pf.padEnd(80, "0"))).toBe(productRef);
      }),
      { numRuns: 1000 },
    );
  });

  it("refuses any text with a character outside digits and one point", () => {
    fc.assert(
      fc.property(decimalText, fc.integer({ min: 0, max: 40 }), fc.constantFrom(" ", "e", "E", "x", "-", "+", ",", "_", "\u0661", "\uff11", "\n"), (text, at, bad) => {
        const i = Math.min(at, text.length);
        expect(parseDecimal(text.slice(0, i) + bad + text.slice(i))).toBeNull();
      }),
      { numRuns: 1000 },
    );
  });
});
