import type { Decimal, OrderCancel, OrderPlace } from "../contract/operations.js";
import type { ReferencePrices } from "../contract/prices.js";
import { type Denial, deny } from "../errors/catalogue.js";
import { multiplyDecimal } from "./decimal.js";
import { compactSymbol, referencePrice } from "./guardrails.js";

/**
 * The open-notional guardrail's arithmetic and reading of the upstream's answers
 * (docs/guardrails.md, "Open notional"); the ledger is the hot store's (storage/types.ts
 * `OpenOrderLedger`), the lifecycle step pipeline/open-notional.ts.
 *
 * Amounts go to the ledger as integers in units of 10^-LEDGER_SCALE of the quote asset: an
 * order's rounded up, a cap rounded down, so rounding never lets the open total past the cap.
 *
 * The answers are read as the venues the demo exchange speaks write them. What releases a
 * reservation is evidence that the order is not open: a refusal (a non-2xx status, or a venue's
 * refusal inside a 200: OKX `code`/`sCode`, Bybit `retCode`, Kraken `error`, Coinbase `success:
 * false`), or a final status (Binance `status` FILLED, CANCELED, REJECTED, EXPIRED,
 * EXPIRED_IN_MATCH). Anything else (an unreadable body, a partial fill, an ACK without a status)
 * keeps the reservation: the ledger over-counts, it never under-counts.
 */

export const LEDGER_SCALE = 18;

/** `value` in ledger units, rounded up (an order) or down (a cap). */
export function ledgerUnits(value: Decimal, round: "up" | "down"): bigint {
  if (value.scale <= LEDGER_SCALE) return value.coefficient * 10n ** BigInt(LEDGER_SCALE - value.scale);
  const divisor = 10n ** BigInt(value.scale - LEDGER_SCALE);
  const q = value.coefficient / divisor;
  return round === "up" && q * divisor !== value.coefficient ? q + 1n : q;
}

/** Ledger units as a plain decimal string ("1500", "0.25"). */
export function ledgerText(units: bigint): string {
  const digits = units.toString().padStart(LEDGER_SCALE + 1, "0");
  const point = digits.length - LEDGER_SCALE;
  const fraction = digits.slice(point).replace(/0+$/, "");
  return fraction === "" ? digits.slice(0, point) : `${digits.slice(0, point)}.${fraction}`;
}

/**
 * An order's notional as the maxNotional guardrail measures it: its own (quantity × limit price,
 * or its quote amount), else quantity × the symbol's reference price; a refusal when it cannot be
 * measured (fail closed).
 */
export function orderNotional(op: OrderPlace, prices: ReferencePrices | null): Decimal | Denial {
  if (op.notional !== null) return op.notional;
  if (op.quantity === null) return deny("GUARDRAIL_OPEN_NOTIONAL", "the order states no quantity to count toward maxOpenNotional");
  const ref = referencePrice(prices, op.symbol);
  if (ref === undefined) return deny("GUARDRAIL_NO_REFERENCE_PRICE", `maxOpenNotional of a market order needs a reference price for ${op.symbol}`);
  return multiplyDecimal(op.quantity, ref);
}

/** The compact symbol a reservation is filed under (a cancel naming a symbol matches only it). */
export function ledgerSymbol(symbol: string): string {
  return compactSymbol(symbol.toUpperCase());
}

/** Binance order statuses after which an order is no longer open. */
const DONE = new Set(["FILLED", "CANCELED", "CANCELLED", "REJECTED", "EXPIRED", "EXPIRED_IN_MATCH"]);

/** A printable reference without the ledger's separator, at most 128 characters. */
const REF = /^[\x21-\x7b\x7d\x7e]{1,128}$/;

function ref(kind: "o" | "c", value: unknown): string | null {
  let text: string;
  if (typeof value === "string") text = value;
  else if (typeof value === "number" && Number.isSafeInteger(value)) text = String(value);
  else return null;
  return text !== "" && REF.test(text) ? `${kind}:${text}` : null;
}

function push(out: string[], r: string | null): void {
  if (r !== null && !out.includes(r)) out.push(r);
}

function objectOf(v: unknown): Record<string, unknown> | null {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

function parse(body: Buffer | null): Record<string, unknown> | null {
  if (body === null || body.length === 0) return null;
  try {
    return objectOf(JSON.parse(body.toString("utf8")));
  } catch {
    return null;
  }
}

/** The first element of an OKX `data` array, or null. */
function okxItem(o: Record<string, unknown>): Record<string, unknown> | null {
  return Array.isArray(o.data) ? objectOf(o.data[0]) : null;
}

/**
 * A venue's refusal inside a successful HTTP answer: OKX `code` ≠ "0" (or the item's `sCode`),
 * Bybit `retCode` ≠ 0, Kraken a non-empty `error` list, Coinbase `success: false`.
 */
function refusedInBody(o: Record<string, unknown>): boolean {
  if (typeof o.code === "string" && Array.isArray(o.data)) {
    if (o.code !== "0") return true;
    const item = okxItem(o);
    return item !== null && typeof item.sCode === "string" && item.sCode !== "0";
  }
  if (typeof o.retCode === "number") return o.retCode !== 0;
  if (Array.isArray(o.error)) return o.error.length > 0;
  if (o.success === false) return true;
  return false;
}

/** Order references an answer names: the venue's order id, and the client's. */
function answerRefs(o: Record<string, unknown>, out: string[]): void {
  push(out, ref("o", o.orderId));
  push(out, ref("c", o.origClientOrderId ?? o.clientOrderId));
  const okx = okxItem(o);
  if (okx !== null) {
    push(out, ref("o", okx.ordId));
    push(out, ref("c", okx.clOrdId));
  }
  const result = objectOf(o.result);
  if (result !== null) {
    push(out, ref("o", result.orderId));
    push(out, ref("c", result.orderLinkId));
    if (Array.isArray(result.txid)) for (const t of result.txid) push(out, ref("o", t));
  }
  const coinbase = objectOf(o.success_response);
  if (coinbase !== null) {
    push(out, ref("o", coinbase.order_id));
    push(out, ref("c", coinbase.client_order_id));
  }
}

/** What an order's answer says: the order is not open ("release"), or the references to bind. */
export type PlaceReading = { readonly release: true; readonly why: string } | { readonly release: false; readonly refs: readonly string[] };

export function readPlaceAnswer(status: number, body: Buffer | null): PlaceReading {
  if (status < 200 || status > 299) return { release: true, why: `the upstream answered ${status}` };
  const o = parse(body);
  if (o === null) return { release: false, refs: [] };
  if (refusedInBody(o)) return { release: true, why: "the venue refused the order" };
  if (typeof o.status === "string" && DONE.has(o.status.toUpperCase())) return { release: true, why: `the order is ${o.status}` };
  const refs: string[] = [];
  answerRefs(o, refs);
  return { release: false, refs };
}

/**
 * The orders a cancel's answer ended: none unless the answer is a success (2xx, and no refusal
 * inside it), then the request's references (order ids, client order id) and the answer's.
 */
export function readCancelAnswer(op: OrderCancel, status: number, body: Buffer | null): readonly string[] {
  if (status < 200 || status > 299) return [];
  const o = parse(body);
  if (o === null || refusedInBody(o)) return [];
  const refs: string[] = [];
  if (Array.isArray(o.results)) {
    // Coinbase batch_cancel: each order's own success.
    for (const r of o.results) {
      const item = objectOf(r);
      if (item !== null && item.success === true) push(refs, ref("o", item.order_id));
    }
    return refs;
  }
  // Kraken: how many it cancelled.
  if (objectOf(o.result)?.count === 0) return [];
  for (const id of op.orderIds) push(refs, ref("o", id));
  push(refs, ref("c", op.clientOrderId));
  answerRefs(o, refs);
  return refs;
}
