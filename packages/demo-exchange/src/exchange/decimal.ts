/**
 * Fixed-point decimals for the demo exchange: every price, quantity and balance is a bigint count
 * of 10^-8 units (Binance's 8 decimal places), so arithmetic on money is exact and never touches
 * floating point. Text in and out uses Binance's format: plain digits, a dot, up to 8 decimals
 * on input, exactly 8 on output ("60000.00000000").
 */

/** Decimal places carried by every amount. */
export const DECIMALS = 8;

/** 1.0 in units. */
export const ONE = 10n ** BigInt(DECIMALS);

/** Binance's legal range for decimal parameters, quoted in -1100 errors. */
export const DECIMAL_PATTERN = "^([0-9]{1,20})(\\.[0-9]{1,20})?$";
const DECIMAL_RE = /^([0-9]{1,20})(?:\.([0-9]{1,20}))?$/;

export type ParsedDecimal =
  | { readonly ok: true; readonly value: bigint }
  | { readonly ok: false; readonly reason: "syntax" | "precision" };

/**
 * Parses Binance decimal text. "syntax" when the text is not digits with an optional fraction;
 * "precision" when it carries a non-zero digit beyond the 8th decimal (trailing zeros are fine).
 */
export function parseDecimal(text: string): ParsedDecimal {
  const match = DECIMAL_RE.exec(text);
  if (match === null) return { ok: false, reason: "syntax" };
  const whole = match[1] ?? "0";
  const fraction = match[2] ?? "";
  const kept = fraction.slice(0, DECIMALS);
  if (/[1-9]/.test(fraction.slice(DECIMALS))) return { ok: false, reason: "precision" };
  return { ok: true, value: BigInt(whole) * ONE + BigInt(kept.padEnd(DECIMALS, "0")) };
}

/** Parses a decimal constant written in source; throws on bad text (a programming error). */
export function dec(text: string): bigint {
  const parsed = parseDecimal(text);
  if (!parsed.ok) throw new RangeError(`bad decimal constant "${text}"`);
  return parsed.value;
}

/** Formats units as Binance text with exactly `decimals` places (default 8), e.g. "0.50000000". */
export function formatDecimal(value: bigint, decimals: number = DECIMALS): string {
  const negative = value < 0n;
  const abs = negative ? -value : value;
  const whole = abs / ONE;
  const fraction = (abs % ONE).toString().padStart(DECIMALS, "0");
  const shown = decimals >= DECIMALS ? fraction.padEnd(decimals, "0") : fraction.slice(0, decimals);
  return `${negative ? "-" : ""}${whole.toString()}${shown.length > 0 ? `.${shown}` : ""}`;
}

/** a × b, rounded down to a whole unit. With the markets' tick and step sizes, price × quantity is exact. */
export function mul(a: bigint, b: bigint): bigint {
  return (a * b) / ONE;
}

/** a ÷ b, rounded down to a whole unit. `b` must be positive. */
export function div(a: bigint, b: bigint): bigint {
  if (b <= 0n) throw new RangeError("division by a non-positive amount");
  return (a * ONE) / b;
}

/** Rounds a non-negative amount down to a multiple of `step`. */
export function floorToStep(value: bigint, step: bigint): bigint {
  return value - (value % step);
}

export function min(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}
