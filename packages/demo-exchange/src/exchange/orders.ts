/**
 * Orders and fills: the engine's records, and how they are rendered in Binance's response shapes
 * (new-order ACK / RESULT / FULL, query-order, cancel-order).
 */
import { formatDecimal } from "./decimal.js";

export const SIDES = ["BUY", "SELL"] as const;
export type Side = (typeof SIDES)[number];
export const ORDER_TYPES = ["LIMIT", "MARKET"] as const;
export type OrderType = (typeof ORDER_TYPES)[number];
export const TIME_IN_FORCE = ["GTC", "IOC", "FOK"] as const;
export type TimeInForce = (typeof TIME_IN_FORCE)[number];
export const RESPONSE_TYPES = ["ACK", "RESULT", "FULL"] as const;
export type ResponseType = (typeof RESPONSE_TYPES)[number];
export type OrderStatus = "NEW" | "PARTIALLY_FILLED" | "FILLED" | "CANCELED" | "EXPIRED";

export interface Order {
  readonly orderId: number;
  readonly account: string;
  readonly symbol: string;
  readonly clientOrderId: string;
  readonly side: Side;
  readonly type: OrderType;
  /** MARKET orders report GTC, as on Binance. */
  readonly timeInForce: TimeInForce;
  /** The limit price; 0 for MARKET orders. */
  readonly price: bigint;
  /** For a MARKET order by quoteOrderQty, set to the executed quantity once it has run. */
  origQty: bigint;
  readonly origQuoteOrderQty: bigint;
  executedQty: bigint;
  cummulativeQuoteQty: bigint;
  status: OrderStatus;
  readonly time: number;
  updateTime: number;
}

export interface Fill {
  readonly price: bigint;
  readonly qty: bigint;
  readonly commission: bigint;
  readonly commissionAsset: string;
  readonly tradeId: number;
}

/** Quantity still to fill. */
export function remaining(order: Order): bigint {
  return order.origQty - order.executedQty;
}

/** Is the order resting on the book (or able to)? */
export function isOpen(order: Order): boolean {
  return order.status === "NEW" || order.status === "PARTIALLY_FILLED";
}

const f = formatDecimal;

/** The POST /api/v3/order response for the requested response type. */
export function newOrderResponse(
  order: Order,
  fills: readonly Fill[],
  responseType: ResponseType,
  transactTime: number,
): Record<string, unknown> {
  const ack = {
    symbol: order.symbol,
    orderId: order.orderId,
    orderListId: -1,
    clientOrderId: order.clientOrderId,
    transactTime,
  };
  if (responseType === "ACK") return ack;
  const result = {
    ...ack,
    price: f(order.price),
    origQty: f(order.origQty),
    executedQty: f(order.executedQty),
    origQuoteOrderQty: f(order.origQuoteOrderQty),
    cummulativeQuoteQty: f(order.cummulativeQuoteQty),
    status: order.status,
    timeInForce: order.timeInForce,
    type: order.type,
    side: order.side,
    workingTime: order.time,
    selfTradePreventionMode: "NONE",
  };
  if (responseType === "RESULT") return result;
  return {
    ...result,
    fills: fills.map((fill) => ({
      price: f(fill.price),
      qty: f(fill.qty),
      commission: f(fill.commission),
      commissionAsset: fill.commissionAsset,
      tradeId: fill.tradeId,
    })),
  };
}

/** An order in the GET /api/v3/order (and openOrders element) shape. */
export interface OrderView {
  readonly symbol: string;
  readonly orderId: number;
  readonly orderListId: number;
  readonly clientOrderId: string;
  readonly price: string;
  readonly origQty: string;
  readonly executedQty: string;
  readonly cummulativeQuoteQty: string;
  readonly status: OrderStatus;
  readonly timeInForce: TimeInForce;
  readonly type: OrderType;
  readonly side: Side;
  readonly stopPrice: string;
  readonly icebergQty: string;
  readonly time: number;
  readonly updateTime: number;
  readonly isWorking: boolean;
  readonly workingTime: number;
  readonly origQuoteOrderQty: string;
  readonly selfTradePreventionMode: "NONE";
}

/** The GET /api/v3/order (and openOrders element) shape. */
export function orderView(order: Order): OrderView {
  return {
    symbol: order.symbol,
    orderId: order.orderId,
    orderListId: -1,
    clientOrderId: order.clientOrderId,
    price: f(order.price),
    origQty: f(order.origQty),
    executedQty: f(order.executedQty),
    cummulativeQuoteQty: f(order.cummulativeQuoteQty),
    status: order.status,
    timeInForce: order.timeInForce,
    type: order.type,
    side: order.side,
    stopPrice: f(0n),
    icebergQty: f(0n),
    time: order.time,
    updateTime: order.updateTime,
    isWorking: true,
    workingTime: order.time,
    origQuoteOrderQty: f(order.origQuoteOrderQty),
    selfTradePreventionMode: "NONE",
  };
}

/** The DELETE /api/v3/order shape. */
export function cancelView(order: Order, cancelClientOrderId: string, transactTime: number): Record<string, unknown> {
  return {
    symbol: order.symbol,
    origClientOrderId: order.clientOrderId,
    orderId: order.orderId,
    orderListId: -1,
    clientOrderId: cancelClientOrderId,
    transactTime,
    price: f(order.price),
    origQty: f(order.origQty),
    executedQty: f(order.executedQty),
    origQuoteOrderQty: f(order.origQuoteOrderQty),
    cummulativeQuoteQty: f(order.cummulativeQuoteQty),
    status: order.status,
    timeInForce: order.timeInForce,
    type: order.type,
    side: order.side,
    selfTradePreventionMode: "NONE",
  };
}
