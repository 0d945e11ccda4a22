/**
 * The demo exchange's markets and assets: the symbol list, each symbol's filters (Binance's
 * PRICE_FILTER, LOT_SIZE and NOTIONAL), the market maker's seeding plan, and how they appear in
 * exchangeInfo. Filter values mirror Binance's real BTCUSDT and ETHUSDT rules.
 */
import { dec, formatDecimal, mul } from "./decimal.js";

export const ASSETS = ["BTC", "ETH", "USDT"] as const;
export type Asset = (typeof ASSETS)[number];

export function isAsset(value: string): value is Asset {
  return (ASSETS as readonly string[]).includes(value);
}

/** Builds a record with one entry per asset. */
export function perAsset<T>(make: (asset: Asset) => T): Record<Asset, T> {
  return { BTC: make("BTC"), ETH: make("ETH"), USDT: make("USDT") };
}

/** What a new account is given the first time it is seen. */
export const DEMO_BALANCES: Readonly<Record<Asset, bigint>> = {
  BTC: dec("2"),
  ETH: dec("20"),
  USDT: dec("100000"),
};

/** What the internal market maker starts with, before it seeds the books. */
export const MARKET_MAKER_BALANCES: Readonly<Record<Asset, bigint>> = {
  BTC: dec("1000"),
  ETH: dec("10000"),
  USDT: dec("10000000"),
};

/** Networks each coin can be withdrawn on (the first is the default). */
export const WITHDRAW_NETWORKS: Readonly<Record<Asset, readonly string[]>> = {
  BTC: ["BTC"],
  ETH: ["ETH"],
  USDT: ["ETH", "TRX", "BSC"],
};

export interface Market {
  readonly symbol: string;
  readonly baseAsset: Asset;
  readonly quoteAsset: Asset;
  readonly minPrice: bigint;
  readonly maxPrice: bigint;
  readonly tickSize: bigint;
  readonly minQty: bigint;
  readonly maxQty: bigint;
  readonly stepSize: bigint;
  readonly minNotional: bigint;
  readonly maxNotional: bigint;
  /** Where the market maker centres its book, and the ticker price before any trade. */
  readonly referencePrice: bigint;
  /** Distance between the market maker's levels. */
  readonly levelSpacing: bigint;
  /** Quantity at the market maker's first level; level n holds n times this. */
  readonly levelQty: bigint;
  /** Levels the market maker places on each side. */
  readonly levels: number;
}

export const MARKETS: readonly Market[] = [
  {
    symbol: "BTCUSDT",
    baseAsset: "BTC",
    quoteAsset: "USDT",
    minPrice: dec("0.01"),
    maxPrice: dec("1000000"),
    tickSize: dec("0.01"),
    minQty: dec("0.00001"),
    maxQty: dec("9000"),
    stepSize: dec("0.00001"),
    minNotional: dec("5"),
    maxNotional: dec("9000000"),
    referencePrice: dec("60000"),
    levelSpacing: dec("10"),
    levelQty: dec("0.1"),
    levels: 10,
  },
  {
    symbol: "ETHUSDT",
    baseAsset: "ETH",
    quoteAsset: "USDT",
    minPrice: dec("0.01"),
    maxPrice: dec("1000000"),
    tickSize: dec("0.01"),
    minQty: dec("0.0001"),
    maxQty: dec("100000"),
    stepSize: dec("0.0001"),
    minNotional: dec("5"),
    maxNotional: dec("9000000"),
    referencePrice: dec("3000"),
    levelSpacing: dec("1"),
    levelQty: dec("1"),
    levels: 10,
  },
];

const bySymbol = new Map(MARKETS.map((m) => [m.symbol, m]));

export function findMarket(symbol: string): Market | undefined {
  return bySymbol.get(symbol);
}

/** PRICE_FILTER: within [minPrice, maxPrice] and on the tick grid. */
export function passesPriceFilter(m: Market, price: bigint): boolean {
  return price >= m.minPrice && price <= m.maxPrice && (price - m.minPrice) % m.tickSize === 0n;
}

/** LOT_SIZE: within [minQty, maxQty] and on the step grid. */
export function passesLotSize(m: Market, qty: bigint): boolean {
  return qty >= m.minQty && qty <= m.maxQty && (qty - m.minQty) % m.stepSize === 0n;
}

/** NOTIONAL: price × quantity within [minNotional, maxNotional]. */
export function passesNotional(m: Market, notional: bigint): boolean {
  return notional >= m.minNotional && notional <= m.maxNotional;
}

export function notionalOf(price: bigint, qty: bigint): bigint {
  return mul(price, qty);
}

/** The symbol's entry in exchangeInfo, in Binance's shape. */
export function symbolInfo(m: Market): Record<string, unknown> {
  return {
    symbol: m.symbol,
    status: "TRADING",
    baseAsset: m.baseAsset,
    baseAssetPrecision: 8,
    quoteAsset: m.quoteAsset,
    quotePrecision: 8,
    quoteAssetPrecision: 8,
    baseCommissionPrecision: 8,
    quoteCommissionPrecision: 8,
    orderTypes: ["LIMIT", "MARKET"],
    icebergAllowed: false,
    ocoAllowed: false,
    otoAllowed: false,
    quoteOrderQtyMarketAllowed: true,
    allowTrailingStop: false,
    cancelReplaceAllowed: false,
    amendAllowed: false,
    isSpotTradingAllowed: true,
    isMarginTradingAllowed: false,
    filters: [
      {
        filterType: "PRICE_FILTER",
        minPrice: formatDecimal(m.minPrice),
        maxPrice: formatDecimal(m.maxPrice),
        tickSize: formatDecimal(m.tickSize),
      },
      {
        filterType: "LOT_SIZE",
        minQty: formatDecimal(m.minQty),
        maxQty: formatDecimal(m.maxQty),
        stepSize: formatDecimal(m.stepSize),
      },
      {
        filterType: "NOTIONAL",
        minNotional: formatDecimal(m.minNotional),
        applyMinToMarket: true,
        maxNotional: formatDecimal(m.maxNotional),
        applyMaxToMarket: false,
        avgPriceMins: 0,
      },
    ],
    permissions: [],
    permissionSets: [["SPOT"]],
    defaultSelfTradePreventionMode: "NONE",
    allowedSelfTradePreventionModes: ["NONE"],
  };
}

/** Binance's published rate limits, reported in exchangeInfo (the gateway enforces its own). */
export const RATE_LIMITS = [
  { rateLimitType: "REQUEST_WEIGHT", interval: "MINUTE", intervalNum: 1, limit: 6000 },
  { rateLimitType: "ORDERS", interval: "SECOND", intervalNum: 10, limit: 100 },
  { rateLimitType: "ORDERS", interval: "DAY", intervalNum: 1, limit: 200000 },
  { rateLimitType: "RAW_REQUESTS", interval: "MINUTE", intervalNum: 5, limit: 61000 },
] as const;
