/**
 * The REST endpoints: each one declares the parameters it reads, validates them in Binance's
 * order (mandatory and syntax first, then filters), calls the engine and shapes the answer like
 * Binance's spot API. Keys are "METHOD /path" and match DEMO_EXCHANGE_ROUTES one to one.
 */
import { formatDecimal } from "./decimal.js";
import type { Engine, OrderLookup } from "./engine.js";
import { errors } from "./errors.js";
import {
  ASSETS,
  MARKETS,
  RATE_LIMITS,
  WITHDRAW_NETWORKS,
  isAsset,
  notionalOf,
  passesLotSize,
  passesNotional,
  passesPriceFilter,
  symbolInfo,
  type Market,
} from "./markets.js";
import {
  ORDER_TYPES,
  RESPONSE_TYPES,
  SIDES,
  TIME_IN_FORCE,
  cancelView,
  newOrderResponse,
  orderView,
  type TimeInForce,
} from "./orders.js";
import { toClientOrderId, toDecimal, toEnum, toInteger, toMarket, toMarkets, type Params } from "./params.js";

export interface EndpointContext {
  readonly engine: Engine;
  readonly params: Params;
  /** The authenticated account on private endpoints; null on public ones. */
  readonly account: string | null;
  /** The request's time, epoch ms. */
  readonly now: number;
  /** A fresh client order id, for orders and cancels sent without one. */
  readonly newClientOrderId: () => string;
}

export interface Endpoint {
  /** Every parameter name the endpoint reads (besides the ignored signing parameters). */
  readonly params: readonly string[];
  /** Returns the JSON body of a 200 answer, or throws an ExchangeError. */
  readonly handle: (ctx: EndpointContext) => unknown;
}

const MAX_DEPTH = 5000;
const DEFAULT_DEPTH = 100;
const COIN_PATTERN = "^[A-Z0-9]{1,20}$";
const COIN_RE = /^[A-Z0-9]{1,20}$/;
const ADDRESS_PATTERN = "^[A-Za-z0-9:_.-]{1,128}$";
const ADDRESS_RE = /^[A-Za-z0-9:_.-]{1,128}$/;
const TAG_PATTERN = "^[A-Za-z0-9]{1,64}$";
const TAG_RE = /^[A-Za-z0-9]{1,64}$/;
const ZERO = formatDecimal(0n);

function accountOf(ctx: EndpointContext): string {
  if (ctx.account === null) throw errors.unauthorized();
  return ctx.account;
}

/** `symbol` or `symbols` (not both); null when neither is sent. */
function symbolSelection(p: Params): Market | Market[] | null {
  const symbol = p.optional("symbol");
  const symbols = p.optional("symbols");
  if (symbol !== undefined && symbols !== undefined) throw errors.badCombination();
  if (symbol !== undefined) return toMarket(symbol);
  if (symbols !== undefined) return toMarkets(symbols);
  return null;
}

/** orderId and/or origClientOrderId. */
function orderLookup(p: Params): OrderLookup {
  const idText = p.optional("orderId");
  const clientText = p.optional("origClientOrderId");
  if (idText === undefined && clientText === undefined) throw errors.eitherMissing("origClientOrderId", "orderId");
  let orderId: number | null = null;
  if (idText !== undefined) {
    const id = toInteger(idText, "orderId");
    // Ids beyond what the engine can issue name no order; -1 is never issued.
    orderId = id <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(id) : -1;
  }
  const clientOrderId = clientText === undefined ? null : toClientOrderId(clientText, "origClientOrderId");
  return { orderId, clientOrderId };
}

function toBoolean(text: string, param: string): boolean {
  if (text === "true") return true;
  if (text === "false") return false;
  throw errors.invalidParameter(param);
}

function tickerOf(ctx: EndpointContext, m: Market): { symbol: string; price: string } {
  return { symbol: m.symbol, price: formatDecimal(ctx.engine.lastPrice(m)) };
}

const ping: Endpoint = {
  params: [],
  handle: () => ({}),
};

const time: Endpoint = {
  params: [],
  handle: (ctx) => ({ serverTime: ctx.now }),
};

const exchangeInfo: Endpoint = {
  params: ["symbol", "symbols"],
  handle: (ctx) => {
    const selection = symbolSelection(ctx.params);
    const markets = selection === null ? MARKETS : Array.isArray(selection) ? selection : [selection];
    return {
      timezone: "UTC",
      serverTime: ctx.now,
      rateLimits: RATE_LIMITS,
      exchangeFilters: [],
      symbols: markets.map(symbolInfo),
    };
  },
};

const tickerPrice: Endpoint = {
  params: ["symbol", "symbols"],
  handle: (ctx) => {
    const selection = symbolSelection(ctx.params);
    if (selection === null) return MARKETS.map((m) => tickerOf(ctx, m));
    if (Array.isArray(selection)) return selection.map((m) => tickerOf(ctx, m));
    return tickerOf(ctx, selection);
  },
};

const depth: Endpoint = {
  params: ["symbol", "limit"],
  handle: (ctx) => {
    const market = toMarket(ctx.params.required("symbol"));
    const limitText = ctx.params.optional("limit");
    let limit = DEFAULT_DEPTH;
    if (limitText !== undefined) {
      const asked = toInteger(limitText, "limit");
      if (asked < 1n) throw errors.invalidParameter("limit");
      limit = asked > BigInt(MAX_DEPTH) ? MAX_DEPTH : Number(asked);
    }
    return ctx.engine.book(market).depth(limit);
  },
};

const account: Endpoint = {
  params: ["omitZeroBalances"],
  handle: (ctx) => {
    const omitText = ctx.params.optional("omitZeroBalances");
    const omitZero = omitText === undefined ? false : toBoolean(omitText, "omitZeroBalances");
    const record = ctx.engine.openAccount(accountOf(ctx));
    const balances = ASSETS.filter((asset) => !omitZero || record.balances[asset].free + record.balances[asset].locked > 0n).map(
      (asset) => ({
        asset,
        free: formatDecimal(record.balances[asset].free),
        locked: formatDecimal(record.balances[asset].locked),
      }),
    );
    return {
      makerCommission: 0,
      takerCommission: 0,
      buyerCommission: 0,
      sellerCommission: 0,
      commissionRates: { maker: ZERO, taker: ZERO, buyer: ZERO, seller: ZERO },
      canTrade: true,
      canWithdraw: true,
      canDeposit: true,
      brokered: false,
      requireSelfTradePrevention: false,
      preventSor: false,
      updateTime: record.updateTime,
      accountType: "SPOT",
      balances,
      permissions: ["SPOT"],
      uid: record.uid,
    };
  },
};

const newOrder: Endpoint = {
  params: [
    "symbol",
    "side",
    "type",
    "timeInForce",
    "quantity",
    "quoteOrderQty",
    "price",
    "newClientOrderId",
    "newOrderRespType",
  ],
  handle: (ctx) => {
    const p = ctx.params;
    const caller = accountOf(ctx);
    const market = toMarket(p.required("symbol"));
    const side = toEnum(p.required("side"), SIDES, errors.invalidSide);
    const type = toEnum(p.required("type"), ORDER_TYPES, errors.invalidOrderType);

    let timeInForce: TimeInForce = "GTC";
    let price: bigint | null = null;
    let quantity: bigint | null = null;
    let quoteOrderQty: bigint | null = null;
    if (type === "LIMIT") {
      timeInForce = toEnum(p.required("timeInForce"), TIME_IN_FORCE, errors.invalidTimeInForce);
      quantity = toDecimal(p.required("quantity"), "quantity");
      price = toDecimal(p.required("price"), "price");
      if (p.has("quoteOrderQty")) throw errors.notRequired("quoteOrderQty");
    } else {
      if (p.has("timeInForce")) throw errors.notRequired("timeInForce");
      if (p.has("price")) throw errors.notRequired("price");
      const qtyText = p.optional("quantity");
      const quoteText = p.optional("quoteOrderQty");
      if (qtyText === undefined && quoteText === undefined) throw errors.eitherMissing("quantity", "quoteOrderQty");
      if (qtyText !== undefined && quoteText !== undefined) throw errors.badCombination();
      if (qtyText !== undefined) quantity = toDecimal(qtyText, "quantity");
      if (quoteText !== undefined) quoteOrderQty = toDecimal(quoteText, "quoteOrderQty");
    }
    const clientText = p.optional("newClientOrderId");
    const clientOrderId = clientText === undefined ? ctx.newClientOrderId() : toClientOrderId(clientText, "newClientOrderId");
    const respText = p.optional("newOrderRespType");
    const responseType =
      respText === undefined ? "FULL" : toEnum(respText, RESPONSE_TYPES, () => errors.invalidParameter("newOrderRespType"));

    if (price !== null && !passesPriceFilter(market, price)) throw errors.filterFailure("PRICE_FILTER");
    if (quantity !== null && !passesLotSize(market, quantity)) throw errors.filterFailure("LOT_SIZE");
    if (price !== null && quantity !== null) {
      if (!passesNotional(market, notionalOf(price, quantity))) throw errors.filterFailure("NOTIONAL");
    } else {
      // MARKET: the minimum applies (applyMinToMarket), the maximum does not; by quantity, valued at the last price.
      const notional = quantity !== null ? notionalOf(ctx.engine.lastPrice(market), quantity) : (quoteOrderQty ?? 0n);
      if (notional < market.minNotional) throw errors.filterFailure("NOTIONAL");
    }

    const { order, fills } = ctx.engine.place(caller, {
      market,
      side,
      type,
      timeInForce,
      price,
      quantity,
      quoteOrderQty,
      clientOrderId,
    });
    return newOrderResponse(order, fills, responseType, ctx.now);
  },
};

const queryOrder: Endpoint = {
  params: ["symbol", "orderId", "origClientOrderId"],
  handle: (ctx) => {
    const caller = accountOf(ctx);
    const market = toMarket(ctx.params.required("symbol"));
    return orderView(ctx.engine.find(caller, market, orderLookup(ctx.params)));
  },
};

const cancelOrder: Endpoint = {
  params: ["symbol", "orderId", "origClientOrderId", "newClientOrderId"],
  handle: (ctx) => {
    const caller = accountOf(ctx);
    const market = toMarket(ctx.params.required("symbol"));
    const lookup = orderLookup(ctx.params);
    const clientText = ctx.params.optional("newClientOrderId");
    const cancelId = clientText === undefined ? ctx.newClientOrderId() : toClientOrderId(clientText, "newClientOrderId");
    const order = ctx.engine.cancel(caller, market, lookup);
    return cancelView(order, cancelId, ctx.now);
  },
};

const openOrders: Endpoint = {
  params: ["symbol"],
  handle: (ctx) => {
    const caller = accountOf(ctx);
    const symbol = ctx.params.optional("symbol");
    const market = symbol === undefined ? null : toMarket(symbol);
    return ctx.engine.openOrders(caller, market).map(orderView);
  },
};

const withdraw: Endpoint = {
  params: ["coin", "address", "amount", "network", "addressTag", "withdrawOrderId", "transactionFeeFlag", "walletType"],
  handle: (ctx) => {
    const p = ctx.params;
    const caller = accountOf(ctx);
    const coinText = p.required("coin");
    if (!COIN_RE.test(coinText)) throw errors.illegalChars("coin", COIN_PATTERN);
    if (!isAsset(coinText)) throw errors.invalidParameter("coin");
    const coin = coinText;
    const address = p.required("address");
    if (!ADDRESS_RE.test(address)) throw errors.illegalChars("address", ADDRESS_PATTERN);
    const amount = toDecimal(p.required("amount"), "amount");
    if (amount <= 0n) throw errors.invalidParameter("amount");
    const networks = WITHDRAW_NETWORKS[coin];
    const networkText = p.optional("network");
    if (networkText !== undefined && !COIN_RE.test(networkText)) throw errors.illegalChars("network", COIN_PATTERN);
    const network = networkText ?? networks[0] ?? coin;
    if (!networks.includes(network)) throw errors.invalidParameter("network");
    const addressTag = p.optional("addressTag") ?? null;
    if (addressTag !== null && !TAG_RE.test(addressTag)) throw errors.illegalChars("addressTag", TAG_PATTERN);
    const orderIdText = p.optional("withdrawOrderId");
    const withdrawOrderId = orderIdText === undefined ? null : toClientOrderId(orderIdText, "withdrawOrderId");
    const feeFlag = p.optional("transactionFeeFlag");
    if (feeFlag !== undefined) toBoolean(feeFlag, "transactionFeeFlag");
    const walletType = p.optional("walletType");
    if (walletType !== undefined && walletType !== "0" && walletType !== "1") throw errors.invalidParameter("walletType");

    const done = ctx.engine.withdraw(caller, { coin, network, address, addressTag, amount, withdrawOrderId });
    return { id: done.id };
  },
};

/** Endpoints by "METHOD /path". */
export const ENDPOINTS: ReadonlyMap<string, Endpoint> = new Map([
  ["GET /api/v3/ping", ping],
  ["GET /api/v3/time", time],
  ["GET /api/v3/exchangeInfo", exchangeInfo],
  ["GET /api/v3/ticker/price", tickerPrice],
  ["GET /api/v3/depth", depth],
  ["GET /api/v3/account", account],
  ["POST /api/v3/order", newOrder],
  ["GET /api/v3/order", queryOrder],
  ["DELETE /api/v3/order", cancelOrder],
  ["GET /api/v3/openOrders", openOrders],
  ["POST /sapi/v1/capital/withdraw/apply", withdraw],
]);
