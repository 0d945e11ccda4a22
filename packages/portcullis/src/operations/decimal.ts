import { type Decimal, decimalText } from "../contract/operations.js";

/**
 * Exact decimals for amounts, quantities and prices: a bigint coefficient and a scale (see
 * contract/operations.ts `Decimal`). Never a JS number: 0.1 + 0.2 is 0.3 here, and a quantity of
 * 9007199254740993 stays what was sent.
 *
 * The accepted syntax is the venues' own (Binance documents `^([0-9]{1,20})(\.[0-9]{1,20})?$` for
 * quantities and prices; OKX, Bybit, Kraken and Coinbase send the same plain decimal strings): one
 * or more ASCII digits, optionally a point and one or more digits. No sign, no exponent, no
 * whitespace, no hex, no leading or trailing point, no thousands separators. Lengths are bounded
 * (`MAX_INTEGER_DIGITS`, `MAX_DECIMAL_SCALE`), so no sender can make a bigint of any size.
 */

export const MAX_INTEGER_DIGITS = 20;
export const MAX_DECIMAL_SCALE = 20;

const ZERO = 0x30;
const NINE = 0x39;
const DOT = 0x2e;

/** Parses a plain decimal string; null when it is not one (or is longer than the bounds). */
export function parseDecimal(text: string): Decimal | null {
  const length = text.length;
  if (length === 0 || length > MAX_INTEGER_DIGITS + 1 + MAX_DECIMAL_SCALE) return null;
  let point = -1;
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c >= ZERO && c <= NINE) continue;
    if (c === DOT && point < 0) {
      point = i;
      continue;
    }
    return null;
  }
  if (point < 0) {
    if (length > MAX_INTEGER_DIGITS) return null;
    return Object.freeze({ coefficient: BigInt(text), scale: 0 });
  }
  const scale = length - point - 1;
  if (point === 0 || scale === 0 || point > MAX_INTEGER_DIGITS || scale > MAX_DECIMAL_SCALE) return null;
  return Object.freeze({ coefficient: BigInt(text.slice(0, point) + text.slice(point + 1)), scale });
}

/** The decimal as a plain string, with the scale it has ("1.50" stays "1.50"). */
export function formatDecimal(value: Decimal): string {
  return decimalText(value);
}

const POWERS: bigint[] = [];
function pow10(n: number): bigint {
  let p = POWERS[n];
  if (p === undefined) {
    p = 10n ** BigInt(n);
    POWERS[n] = p;
  }
  return p;
}

/** -1, 0 or 1 as `a` is less than, equal to or greater than `b` (by value: 1.5 equals 1.50). */
export function compareDecimal(a: Decimal, b: Decimal): -1 | 0 | 1 {
  let x = a.coefficient;
  let y = b.coefficient;
  if (a.scale < b.scale) x *= pow10(b.scale - a.scale);
  else if (b.scale < a.scale) y *= pow10(a.scale - b.scale);
  return x < y ? -1 : x > y ? 1 : 0;
}

export function isZero(value: Decimal): boolean {
  return value.coefficient === 0n;
}

/** a × b, exact (the scales add). */
export function multiplyDecimal(a: Decimal, b: Decimal): Decimal {
  return Object.freeze({ coefficient: a.coefficient * b.coefficient, scale: a.scale + b.scale });
}

/** a + b, exact (at the larger scale). */
export function addDecimal(a: Decimal, b: Decimal): Decimal {
  if (a.scale === b.scale) return Object.freeze({ coefficient: a.coefficient + b.coefficient, scale: a.scale });
  if (a.scale < b.scale) return Object.freeze({ coefficient: a.coefficient * pow10(b.scale - a.scale) + b.coefficient, scale: b.scale });
  return Object.freeze({ coefficient: a.coefficient + b.coefficient * pow10(a.scale - b.scale), scale: a.scale });
}

/** The same value without trailing fractional zeros ("1.50" -> "1.5", "2.00" -> "2"). */
export function normalizeDecimal(value: Decimal): Decimal {
  let { coefficient, scale } = value;
  while (scale > 0 && coefficient % 10n === 0n) {
    coefficient /= 10n;
    scale--;
  }
  return scale === value.scale ? value : Object.freeze({ coefficient, scale });
}
