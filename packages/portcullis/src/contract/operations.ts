/**
 * The operation model (docs/operations.md): what a request *does*, decoded from its exact bytes by
 * the decoder of the route's venue (dialects/<venue>/operation.ts, or the native shape in
 * operations/native.ts) and set on the context by the operation stage (pipeline/stages/operation.ts).
 * A route declares the kind it carries (`RouteSpec.operation`); a route that declares none pays one
 * check (`route.operation === null`) and its requests have no operation.
 *
 * Amounts are exact decimals (`Decimal`: an integer coefficient and a decimal scale), never JS
 * numbers; operations/decimal.ts parses, formats and compares them. Symbols and assets are upper
 * case. Everything here is a plain, frozen value.
 */

/** Every operation kind a route may declare, in catalogue order. */
export const OPERATION_KINDS = [
  "order.place",
  "order.cancel",
  "withdraw",
  "transfer",
  "key.create",
  "key.update",
  "key.revoke",
  "other",
] as const;

export type OperationKind = (typeof OPERATION_KINDS)[number];

const KINDS: ReadonlySet<string> = new Set(OPERATION_KINDS);

export function isOperationKind(value: unknown): value is OperationKind {
  return typeof value === "string" && KINDS.has(value);
}

/**
 * An exact decimal: `coefficient / 10^scale` (scale 0..MAX_DECIMAL_SCALE). Parsed from the
 * venue's decimal string, so "1.50" is coefficient 150, scale 2: the scale the sender wrote is
 * kept, and comparisons are by value (operations/decimal.ts).
 */
export interface Decimal {
  readonly coefficient: bigint;
  readonly scale: number;
}

export type OrderSide = "buy" | "sell";

/** A new order. Quantities are in the venue's own units (base asset, or contracts for derivatives). */
export interface OrderPlace {
  readonly kind: "order.place";
  /** The venue's instrument name, upper case (BTCUSDT, XBTUSD, BTC-USDT, BTC-USD…). */
  readonly symbol: string;
  readonly side: OrderSide;
  /** The venue's order type, lower case (limit, market, stop_loss_limit, post_only, limit_limit_gtc…). */
  readonly type: string;
  /** Base quantity; null when the order is sized by quote amount only. */
  readonly quantity: Decimal | null;
  /** Limit price; null for market orders (and types without a limit price). */
  readonly price: Decimal | null;
  /** The quote amount of an order sized by it (Binance quoteOrderQty, OKX tgtCcy=quote_ccy…), else null. */
  readonly quoteQuantity: Decimal | null;
  /**
   * The order's value in the quote asset, as far as the request tells it: quantity × price when
   * both are known, else the quote quantity, else null (a market order by base quantity: the
   * later guardrails estimate it from a reference price).
   */
  readonly notional: Decimal | null;
}

/** Cancelling orders: by the venue's order ids (one or more), or by the client's own id. */
export interface OrderCancel {
  readonly kind: "order.cancel";
  /** Upper case; null when the venue cancels by id alone (Kraken, Coinbase). */
  readonly symbol: string | null;
  /** The venue's order ids (empty when cancelled by client order id). */
  readonly orderIds: readonly string[];
  readonly clientOrderId: string | null;
}

/** A withdrawal to an address outside the venue. */
export interface Withdraw {
  readonly kind: "withdraw";
  /** Upper case (BTC, USDT, XBT…). */
  readonly asset: string;
  readonly amount: Decimal;
  /** The destination address as sent; null only when the venue names a saved address instead (Kraken `key`). */
  readonly address: string | null;
  /** The venue's name of a saved (whitelisted) address (Kraken `key`), else null. */
  readonly addressName: string | null;
  /** The network / chain as sent, null when absent (the venue's default). */
  readonly network: string | null;
  /** The memo / tag / destination tag, null when absent. */
  readonly tag: string | null;
}

/** A move between the caller's own accounts or wallets at the venue. */
export interface Transfer {
  readonly kind: "transfer";
  readonly asset: string;
  readonly amount: Decimal;
  /** The venue's names of the source and destination (MAIN, UMFUTURE, spot, 6, 18, a portfolio id…). */
  readonly from: string;
  readonly to: string;
}

/** A change to API keys (the admin API's operations; fields are filled in by the admin API later). */
export interface KeyChange {
  readonly kind: "key.create" | "key.update" | "key.revoke";
  /** The key changed, when the request names it; null otherwise. */
  readonly keyId: string | null;
}

/** A route whose requests are not decoded further. */
export interface OtherOperation {
  readonly kind: "other";
}

export type Operation = OrderPlace | OrderCancel | Withdraw | Transfer | KeyChange | OtherOperation;

/** The one `other` operation (a frozen constant: declaring `other` costs no allocation). */
export const OTHER_OPERATION: OtherOperation = Object.freeze({ kind: "other" });

/** A decimal as a plain string ("0.10"), the way the sender wrote its digits (leading zeros dropped). */
export function decimalText(value: Decimal): string {
  const digits = value.coefficient.toString();
  if (value.scale === 0) return digits;
  const padded = digits.padStart(value.scale + 1, "0");
  const point = padded.length - value.scale;
  return `${padded.slice(0, point)}.${padded.slice(point)}`;
}

/**
 * The operation as JSON-safe data (decimals as strings), for the audit log and logs. Addresses
 * and tags are included: they are what an auditor needs to see, and they are not secrets.
 */
export function operationSummary(op: Operation): Record<string, unknown> {
  switch (op.kind) {
    case "order.place":
      return {
        kind: op.kind,
        symbol: op.symbol,
        side: op.side,
        type: op.type,
        quantity: op.quantity === null ? null : decimalText(op.quantity),
        price: op.price === null ? null : decimalText(op.price),
        quoteQuantity: op.quoteQuantity === null ? null : decimalText(op.quoteQuantity),
        notional: op.notional === null ? null : decimalText(op.notional),
      };
    case "order.cancel":
      return { kind: op.kind, symbol: op.symbol, orderIds: [...op.orderIds], clientOrderId: op.clientOrderId };
    case "withdraw":
      return {
        kind: op.kind,
        asset: op.asset,
        amount: decimalText(op.amount),
        address: op.address,
        addressName: op.addressName,
        network: op.network,
        tag: op.tag,
      };
    case "transfer":
      return { kind: op.kind, asset: op.asset, amount: decimalText(op.amount), from: op.from, to: op.to };
    case "key.create":
    case "key.update":
    case "key.revoke":
      return { kind: op.kind, keyId: op.keyId };
    default:
      return { kind: op.kind };
  }
}
