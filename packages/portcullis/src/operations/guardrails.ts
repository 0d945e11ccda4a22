import type { KeyGuardrails } from "../contract/keys.js";
import { type Decimal, type Operation, type OrderPlace, decimalText } from "../contract/operations.js";
import type { ReferencePrices } from "../contract/prices.js";
import type { CompiledGuardrails } from "../contract/verification-key.js";
import { type Denial, deny } from "../errors/catalogue.js";
import { compareDecimal, multiplyDecimal, parseDecimal } from "./decimal.js";

/**
 * Per-key guardrails (docs/guardrails.md): compiled once per load of a key (keys/cache.ts), then
 * checked against each decoded operation by the guard stage (pipeline/stages/guardrails.ts).
 *
 * - `order.place`: the symbol allowlist; the maximum base quantity (a quote-sized order is
 *   measured as quote amount ≤ maximum × reference price); the maximum notional (the order's own
 *   notional, or for a market order by base quantity, quantity × the reference price); the price
 *   band (a limit price within ±band % of the reference price, edges included).
 * - `withdraw` / `transfer`: the asset allowlists.
 *
 * Fail closed: a check that needs a reference price the gateway does not have (none configured,
 * or older than the refresher's maximum age) refuses with GUARDRAIL_NO_REFERENCE_PRICE. Symbols
 * are compared without separators ("BTC-USDT" is "BTCUSDT"), so one allowlist serves a key used
 * in several dialects; a venue whose names differ otherwise (Kraken's XBTUSD) is listed as such.
 *
 * The check parses nothing and builds no strings on the allowed path; the exact decimal
 * arithmetic (bigint) is all it computes. A refusal's detail names the limit and the values.
 */

const HUNDRED: Decimal = Object.freeze({ coefficient: 100n, scale: 0 });

/** An upper-case symbol without separators (`-`, `/`, `_`, `:`); the same string when it has none. */
export function compactSymbol(symbol: string): string {
  for (let i = 0; i < symbol.length; i++) {
    const c = symbol.charCodeAt(i);
    // - / _ :
    if (c === 0x2d || c === 0x2f || c === 0x5f || c === 0x3a) return symbol.replace(/[-/_:]/g, "");
  }
  return symbol;
}

function decimalOf(text: string | null, field: string): Decimal | null {
  if (text === null) return null;
  const value = parseDecimal(text);
  if (value === null) throw new TypeError(`guardrails.${field}: ${JSON.stringify(text)} is not a plain decimal`);
  return value;
}

/**
 * Compiles a key's guardrails (already validated by keys/input.ts; a stored value that no longer
 * parses is our fault and throws). Null in, null out.
 */
export function compileGuardrails(g: KeyGuardrails | null): CompiledGuardrails | null {
  if (g === null) return null;
  const band = decimalOf(g.priceBandPct, "priceBandPct");
  return Object.freeze({
    symbols: g.symbols === null ? null : new Set(g.symbols.map((s) => compactSymbol(s.toUpperCase()))),
    maxQuantity: decimalOf(g.maxQuantity, "maxQuantity"),
    maxNotional: decimalOf(g.maxNotional, "maxNotional"),
    bandPct: band,
    bandLow: band === null ? null : subtractFromHundred(band),
    bandHigh: band === null ? null : addToHundred(band),
    withdrawAssets: g.withdrawAssets === null ? null : new Set(g.withdrawAssets.map((a) => a.toUpperCase())),
    transferAssets: g.transferAssets === null ? null : new Set(g.transferAssets.map((a) => a.toUpperCase())),
    maxOpenNotional: decimalOf(g.maxOpenNotional ?? null, "maxOpenNotional"),
  });
}

/** 100 − band, at the band's scale (the band is below 100: keys/input.ts). */
function subtractFromHundred(band: Decimal): Decimal {
  const hundred = 100n * 10n ** BigInt(band.scale);
  return Object.freeze({ coefficient: hundred - band.coefficient, scale: band.scale });
}

function addToHundred(band: Decimal): Decimal {
  const hundred = 100n * 10n ** BigInt(band.scale);
  return Object.freeze({ coefficient: hundred + band.coefficient, scale: band.scale });
}

/** The reference price of an order's symbol, as named or without separators; undefined when unknown. */
export function referencePrice(prices: ReferencePrices | null, symbol: string): Decimal | undefined {
  if (prices === null) return undefined;
  const named = prices.symbol(symbol);
  if (named !== undefined) return named;
  const compact = compactSymbol(symbol);
  return compact === symbol ? undefined : prices.symbol(compact);
}

function noReference(op: OrderPlace, what: string): Denial {
  return deny("GUARDRAIL_NO_REFERENCE_PRICE", `${what} needs a reference price for ${op.symbol}`);
}

function checkOrder(g: CompiledGuardrails, op: OrderPlace, prices: ReferencePrices | null): Denial | undefined {
  if (g.symbols !== null && !g.symbols.has(compactSymbol(op.symbol))) {
    return deny("GUARDRAIL_SYMBOL", `symbol ${op.symbol} is not in the key's symbols`);
  }
  // Looked up at most once, and only when a check needs it.
  let ref: Decimal | undefined;
  let looked = false;
  const maxQuantity = g.maxQuantity;
  if (maxQuantity !== null) {
    if (op.quantity !== null) {
      if (compareDecimal(op.quantity, maxQuantity) > 0) {
        return deny("GUARDRAIL_QUANTITY", `quantity ${decimalText(op.quantity)} above maxQuantity ${decimalText(maxQuantity)}`);
      }
    } else if (op.quoteQuantity !== null) {
      ref = referencePrice(prices, op.symbol);
      looked = true;
      if (ref === undefined) return noReference(op, "maxQuantity of an order sized by quote amount");
      if (compareDecimal(op.quoteQuantity, multiplyDecimal(maxQuantity, ref)) > 0) {
        return deny("GUARDRAIL_QUANTITY", `quote amount ${decimalText(op.quoteQuantity)} buys more than maxQuantity ${decimalText(maxQuantity)} at ${decimalText(ref)}`);
      }
    } else {
      return deny("GUARDRAIL_QUANTITY", "the order states no quantity to check against maxQuantity");
    }
  }
  const maxNotional = g.maxNotional;
  if (maxNotional !== null) {
    let notional = op.notional;
    if (notional === null) {
      if (op.quantity === null) return deny("GUARDRAIL_NOTIONAL", "the order states no quantity to check against maxNotional");
      if (!looked) {
        ref = referencePrice(prices, op.symbol);
        looked = true;
      }
      if (ref === undefined) return noReference(op, "maxNotional of a market order");
      notional = multiplyDecimal(op.quantity, ref);
    }
    if (compareDecimal(notional, maxNotional) > 0) {
      return deny("GUARDRAIL_NOTIONAL", `notional ${decimalText(notional)} above maxNotional ${decimalText(maxNotional)}`);
    }
  }
  const low = g.bandLow;
  const high = g.bandHigh;
  const band = g.bandPct;
  if (band !== null && low !== null && high !== null && op.price !== null) {
    if (!looked) ref = referencePrice(prices, op.symbol);
    if (ref === undefined) return noReference(op, "the price band");
    const scaled = multiplyDecimal(op.price, HUNDRED);
    if (compareDecimal(scaled, multiplyDecimal(ref, low)) < 0 || compareDecimal(scaled, multiplyDecimal(ref, high)) > 0) {
      return deny("GUARDRAIL_PRICE_BAND", `price ${decimalText(op.price)} outside ±${decimalText(band)} % of the reference price ${decimalText(ref)}`);
    }
  }
  return undefined;
}

/**
 * Checks one decoded operation against compiled guardrails: undefined to go on, or the refusal.
 * Operations the guardrails say nothing about (cancels, key changes, `other`) pass.
 */
export function checkGuardrails(g: CompiledGuardrails, op: Operation, prices: ReferencePrices | null): Denial | undefined {
  switch (op.kind) {
    case "order.place":
      return checkOrder(g, op, prices);
    case "withdraw":
      if (g.withdrawAssets !== null && !g.withdrawAssets.has(op.asset)) return deny("GUARDRAIL_ASSET", `withdrawal of ${op.asset} is not in the key's withdrawAssets`);
      return undefined;
    case "transfer":
      if (g.transferAssets !== null && !g.transferAssets.has(op.asset)) return deny("GUARDRAIL_ASSET", `transfer of ${op.asset} is not in the key's transferAssets`);
      return undefined;
    default:
      return undefined;
  }
}
