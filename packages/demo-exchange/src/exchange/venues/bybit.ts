/**
 * The Bybit-shaped API of the demo exchange (v5, unified trading account, spot only), over the
 * shared engine: what ccxt's bybit needs for loadMarkets, fetchBalance and createOrder, in
 * Bybit's shapes (`{"retCode":0,"retMsg":"OK","result":{…},"retExtInfo":{},"time":…}`) and with
 * Bybit's codes (errors are HTTP 200 with a non-zero retCode, as on Bybit).
 *
 *   GET  /v5/market/time               public   server time
 *   GET  /v5/market/instruments-info   public   category=spot (other categories: no instruments)
 *   GET  /v5/user/query-api            read     the calling key's information
 *   GET  /v5/account/info              read     account mode (a unified account)
 *   GET  /v5/asset/coin/query-info     read     coins and chains (deposits/withdrawals closed)
 *   GET  /v5/account/wallet-balance    read     accountType=UNIFIED balances (coin filter)
 *   POST /v5/order/create              trade    category=spot, Limit (GTC/IOC/FOK) or Market
 *
 * Private routes act for the gateway's verified identity only: without one the answer is Bybit's
 * 10003, and an identity without the route's permission is 10005.
 */
import { randomUUID } from "node:crypto";
import { grantedPermissions } from "portcullis/upstream";
import type { RouteSpec } from "portcullis";
import { formatDecimal, mul, parseDecimal } from "../decimal.js";
import type { Engine } from "../engine.js";
import { ExchangeError } from "../errors.js";
import { ASSETS, MARKETS, WITHDRAW_NETWORKS, findMarket, notionalOf, passesPriceFilter, type Asset, type Market } from "../markets.js";
import type { Side, TimeInForce } from "../orders.js";
import { type Venue, type VenueRequest, accountFor, sendVenueJson } from "../venue.js";

const dialect = "bybit";
const TRAILING_ZEROS_RE = /\.?0+$/;
const CURRENCY_RE = /^[A-Z0-9]{1,20}$/;

const ROUTES: readonly RouteSpec[] = [
  { method: "GET", path: "/v5/market/time", permission: "public", weight: 1, dialect },
  { method: "GET", path: "/v5/market/instruments-info", permission: "public", weight: 1, dialect },
  { method: "GET", path: "/v5/user/query-api", permission: "read", weight: 1, dialect },
  { method: "GET", path: "/v5/account/info", permission: "read", weight: 1, dialect },
  { method: "GET", path: "/v5/asset/coin/query-info", permission: "read", weight: 1, dialect },
  { method: "GET", path: "/v5/account/wallet-balance", permission: "read", weight: 1, dialect },
  { method: "POST", path: "/v5/order/create", permission: "trade", weight: 1, tags: ["order"], dialect, operation: "order.place" },
];

/** A Bybit error answer, thrown by the handlers and written by `handle`. */
class BybitFault extends Error {
  override name = "BybitFault";

  constructor(
    readonly retCode: number,
    readonly retMsg: string,
    readonly status = 200,
  ) {
    super(retMsg);
  }
}

const paramsError = (detail: string): BybitFault => new BybitFault(10001, `params error: ${detail}`);

/** Amounts the Bybit way: no trailing zeros ("0.1", "60000"). */
function plain(value: bigint): string {
  return formatDecimal(value).replace(TRAILING_ZEROS_RE, "");
}

function usdValue(engine: Engine, asset: Asset, amount: bigint): bigint {
  if (asset === "USDT") return amount;
  const market = MARKETS.find((m) => m.baseAsset === asset && m.quoteAsset === "USDT");
  return market === undefined ? 0n : mul(amount, engine.lastPrice(market));
}

/** A comma-separated coin filter (`coin=BTC,USDT`), or every asset. */
function coinFilter(query: URLSearchParams): Asset[] {
  const text = query.get("coin");
  if (text === null || text === "") return [...ASSETS];
  const names = text.split(",");
  if (names.some((n) => !CURRENCY_RE.test(n))) throw paramsError("coin");
  return ASSETS.filter((a) => names.includes(a));
}

const COIN_NAMES: Readonly<Record<Asset, string>> = { BTC: "BTC", ETH: "ETH", USDT: "USDT" };
const CHAIN_TYPES: Readonly<Record<string, string>> = { BTC: "BTC", ETH: "ERC20", TRX: "TRC20", BSC: "BSC (BEP20)" };
const CATEGORIES = ["spot", "linear", "inverse", "option"];

function instrument(m: Market): Record<string, unknown> {
  return {
    symbol: m.symbol,
    baseCoin: m.baseAsset,
    quoteCoin: m.quoteAsset,
    innovation: "0",
    status: "Trading",
    marginTrading: "none",
    stTag: "0",
    lotSizeFilter: {
      basePrecision: plain(m.stepSize),
      quotePrecision: plain(m.tickSize),
      minOrderQty: plain(m.minQty),
      maxOrderQty: plain(m.maxQty),
      minOrderAmt: plain(m.minNotional),
      maxOrderAmt: plain(m.maxNotional),
    },
    priceFilter: { tickSize: plain(m.tickSize) },
    riskParameters: { priceLimitRatioX: "0.05", priceLimitRatioY: "0.05" },
  };
}

function time(r: VenueRequest): unknown {
  return { timeSecond: String(Math.floor(r.now / 1000)), timeNano: `${r.now}000000` };
}

function instruments(r: VenueRequest): unknown {
  const query = new URLSearchParams(r.query);
  const category = query.get("category");
  if (category === null || category === "" || !CATEGORIES.includes(category)) throw paramsError("category");
  const status = query.get("status");
  const symbol = query.get("symbol");
  let list: Market[] = category === "spot" && (status === null || status === "Trading") ? [...MARKETS] : [];
  if (symbol !== null && symbol !== "") list = list.filter((m) => m.symbol === symbol);
  return { category, list: list.map(instrument), nextPageCursor: "" };
}

function queryApi(r: VenueRequest): unknown {
  const identity = r.identity;
  const granted = grantedPermissions(identity?.scopes ?? []);
  return {
    id: "1",
    note: "",
    apiKey: identity?.keyId ?? "",
    readOnly: granted.has("trade") || granted.has("withdraw") ? 0 : 1,
    secret: "",
    permissions: {
      ContractTrade: [],
      Spot: granted.has("trade") ? ["SpotTrade"] : [],
      Wallet: granted.has("withdraw") ? ["Withdraw"] : [],
      Options: [],
      Derivatives: [],
      CopyTrading: [],
      BlockTrade: [],
      Exchange: [],
      NFT: [],
      Affiliate: [],
    },
    ips: ["*"],
    type: 1,
    deadlineDay: -1,
    expiredAt: "",
    createdAt: "",
    unified: 0,
    uta: 1,
    userID: 0,
    inviterID: 0,
    vipLevel: "No VIP",
    mktMakerLevel: "0",
    affiliateID: 0,
    rsaPublicKey: "",
    isMaster: true,
    parentUid: "0",
    kycLevel: "LEVEL_DEFAULT",
    kycRegion: "",
  };
}

function accountInfo(r: VenueRequest, account: string): unknown {
  const record = r.engine.openAccount(account);
  return {
    unifiedMarginStatus: 6,
    marginMode: "REGULAR_MARGIN",
    isMasterTrader: false,
    spotHedgingStatus: "OFF",
    updatedTime: String(record.updateTime),
    dcpStatus: "OFF",
    timeWindow: 10,
    smpGroup: 0,
  };
}

function coinInfo(r: VenueRequest): unknown {
  const rows = coinFilter(new URLSearchParams(r.query)).map((coin) => ({
    name: COIN_NAMES[coin],
    coin,
    remainAmount: "0",
    chains: WITHDRAW_NETWORKS[coin].map((network) => ({
      chainType: CHAIN_TYPES[network] ?? network,
      confirmation: "1",
      withdrawFee: "0",
      depositMin: "0",
      withdrawMin: "0",
      chain: network,
      chainDeposit: "0",
      chainWithdraw: "0",
      minAccuracy: "8",
      withdrawPercentageFee: "0",
      contractAddress: "",
    })),
  }));
  return { rows };
}

function walletBalance(r: VenueRequest, account: string): unknown {
  const query = new URLSearchParams(r.query);
  const accountType = query.get("accountType");
  if (accountType === null || accountType === "") throw paramsError("accountType");
  if (accountType !== "UNIFIED") throw new BybitFault(10001, "accountType only support UNIFIED.");
  const record = r.engine.openAccount(account);
  let totalUsd = 0n;
  let availableUsd = 0n;
  const coin = coinFilter(query).map((asset) => {
    const { free, locked } = record.balances[asset];
    const total = free + locked;
    const usd = usdValue(r.engine, asset, total);
    totalUsd += usd;
    availableUsd += usdValue(r.engine, asset, free);
    return {
      coin: asset,
      equity: plain(total),
      walletBalance: plain(total),
      locked: plain(locked),
      availableToWithdraw: plain(free),
      availableToBorrow: "",
      usdValue: plain(usd),
      unrealisedPnl: "0",
      cumRealisedPnl: "0",
      borrowAmount: "0",
      accruedInterest: "0",
      totalOrderIM: "0",
      totalPositionIM: "0",
      totalPositionMM: "0",
      bonus: "0",
      collateralSwitch: true,
      marginCollateral: true,
      spotHedgingQty: "0",
    };
  });
  return {
    list: [
      {
        accountType: "UNIFIED",
        totalEquity: plain(totalUsd),
        totalWalletBalance: plain(totalUsd),
        totalMarginBalance: plain(totalUsd),
        totalAvailableBalance: plain(availableUsd),
        totalPerpUPL: "0",
        totalInitialMargin: "0",
        totalMaintenanceMargin: "0",
        accountIMRate: "0",
        accountMMRate: "0",
        accountLTV: "0",
        coin,
      },
    ],
  };
}

const ORDER_LINK_ID_RE = /^[A-Za-z0-9_-]{1,36}$/;
const TIME_IN_FORCE: Readonly<Record<string, TimeInForce>> = { GTC: "GTC", IOC: "IOC", FOK: "FOK" };
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** The JSON object body of a POST (Bybit takes JSON only). */
async function jsonBody(r: VenueRequest): Promise<Record<string, unknown>> {
  const body = await r.readBody();
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8.decode(body));
  } catch {
    throw paramsError("the body is not JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw paramsError("the body is not a JSON object");
  return parsed as Record<string, unknown>;
}

/** A string field (numbers are taken as their text); undefined when absent or empty. */
function field(body: Record<string, unknown>, name: string): string | undefined {
  const value = body[name];
  if (value === undefined || value === null || value === "") return undefined;
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  if (typeof value !== "string") throw paramsError(name);
  return value;
}

function required(body: Record<string, unknown>, name: string): string {
  const value = field(body, name);
  if (value === undefined) throw new BybitFault(170105, `Parameter '${name}' was empty.`);
  return value;
}

function amount(text: string, name: "qty" | "price"): bigint {
  const parsed = parseDecimal(text);
  if (parsed.ok && parsed.value > 0n) return parsed.value;
  if (!parsed.ok && parsed.reason === "precision") {
    throw name === "qty" ? new BybitFault(170137, "Order volume decimal too long.") : new BybitFault(170134, "Order price decimal too long.");
  }
  throw new BybitFault(170130, `Data sent for paramter '${name}' is not valid.`);
}

async function createOrder(r: VenueRequest, account: string): Promise<unknown> {
  const body = await jsonBody(r);
  const category = required(body, "category");
  if (category !== "spot") throw new BybitFault(10001, "params error: this exchange trades category spot only");
  const market = findMarket(required(body, "symbol"));
  if (market === undefined) throw new BybitFault(170121, "Invalid symbol.");
  const sideText = required(body, "side");
  if (sideText !== "Buy" && sideText !== "Sell") throw new BybitFault(170117, "Invalid side.");
  const side: Side = sideText === "Buy" ? "BUY" : "SELL";
  const orderType = required(body, "orderType");
  if (orderType !== "Limit" && orderType !== "Market") throw new BybitFault(170116, "Invalid orderType.");
  const qty = amount(required(body, "qty"), "qty");
  const orderLinkId = field(body, "orderLinkId");
  if (orderLinkId !== undefined && !ORDER_LINK_ID_RE.test(orderLinkId)) throw paramsError("orderLinkId");
  const isLeverage = field(body, "isLeverage");
  if (isLeverage !== undefined && isLeverage !== "0") throw new BybitFault(10001, "params error: margin trading is not available");
  const marketUnit = field(body, "marketUnit");
  if (marketUnit !== undefined && marketUnit !== "baseCoin" && marketUnit !== "quoteCoin") throw paramsError("marketUnit");

  let timeInForce: TimeInForce = "GTC";
  let price: bigint | null = null;
  let quantity: bigint | null = qty;
  let quoteOrderQty: bigint | null = null;
  if (orderType === "Limit") {
    price = amount(required(body, "price"), "price");
    const tifText = field(body, "timeInForce") ?? "GTC";
    const tif = TIME_IN_FORCE[tifText];
    if (tif === undefined) throw new BybitFault(170115, "Invalid timeInForce.");
    timeInForce = tif;
  } else if ((marketUnit ?? (side === "BUY" ? "quoteCoin" : "baseCoin")) === "quoteCoin") {
    // Bybit's default for a spot market buy: qty is the quote amount to spend.
    quantity = null;
    quoteOrderQty = qty;
  }

  if (price !== null && !passesPriceFilter(market, price)) throw new BybitFault(170134, "Order price decimal too long.");
  if (quantity !== null) {
    if (quantity < market.minQty) throw new BybitFault(170136, "Order quantity lower than the minimum.");
    if (quantity > market.maxQty) throw new BybitFault(170135, "Order quantity too large.");
    if ((quantity - market.minQty) % market.stepSize !== 0n) throw new BybitFault(170137, "Order volume decimal too long.");
  }
  let notional: bigint;
  if (quoteOrderQty !== null) notional = quoteOrderQty;
  else notional = notionalOf(price ?? r.engine.lastPrice(market), qty);
  if (notional < market.minNotional) throw new BybitFault(170140, "Order value lower than the minimum.");
  if (price !== null && notional > market.maxNotional) throw new BybitFault(170124, "Order amount too large.");

  const clientOrderId = orderLinkId ?? randomUUID().replaceAll("-", "");
  if (r.engine.openOrders(account, market).some((o) => o.clientOrderId === clientOrderId)) {
    throw new BybitFault(170141, "Duplicate clientOrderId.");
  }
  let orderId: number;
  try {
    orderId = r.engine.place(account, {
      market,
      side,
      type: orderType === "Limit" ? "LIMIT" : "MARKET",
      timeInForce,
      price,
      quantity,
      quoteOrderQty,
      clientOrderId,
    }).order.orderId;
  } catch (err) {
    if (err instanceof ExchangeError && err.code === -2010) throw new BybitFault(170131, "Insufficient balance.");
    throw err;
  }
  return { orderId: String(orderId), orderLinkId: orderLinkId ?? "" };
}

/** The refusal for a private request the gateway did not vouch for (or vouched for without the permission). */
function refused(r: VenueRequest): BybitFault {
  const identity = r.identity;
  if (identity !== null && !grantedPermissions(identity.scopes).has(r.route.permission)) {
    return new BybitFault(10005, "Permission denied, please check your API key permissions.");
  }
  return new BybitFault(10003, "API key is invalid.");
}

function privateAccount(r: VenueRequest): string {
  const account = accountFor(r);
  if (account === null) throw refused(r);
  return account;
}

async function answer(r: VenueRequest): Promise<unknown> {
  switch (`${r.method} ${r.path}`) {
    case "GET /v5/market/time":
      return time(r);
    case "GET /v5/market/instruments-info":
      return instruments(r);
    case "GET /v5/user/query-api":
      privateAccount(r);
      return queryApi(r);
    case "GET /v5/account/info":
      return accountInfo(r, privateAccount(r));
    case "GET /v5/asset/coin/query-info":
      privateAccount(r);
      return coinInfo(r);
    case "GET /v5/account/wallet-balance":
      return walletBalance(r, privateAccount(r));
    case "POST /v5/order/create":
      return createOrder(r, privateAccount(r));
    default:
      throw new BybitFault(10017, "Route not found.", 404);
  }
}

export const bybitVenue: Venue = {
  name: "bybit",
  routes: ROUTES,
  async handle(r: VenueRequest): Promise<void> {
    try {
      const result = await answer(r);
      sendVenueJson(r.res, 200, { retCode: 0, retMsg: "OK", result, retExtInfo: {}, time: r.now });
    } catch (err) {
      if (err instanceof BybitFault) {
        sendVenueJson(r.res, err.status, { retCode: err.retCode, retMsg: err.retMsg, result: {}, retExtInfo: {}, time: r.now });
        return;
      }
      if (err instanceof ExchangeError && err.status === 413) {
        const body = { retCode: 10001, retMsg: "params error: the body is too large", result: {}, retExtInfo: {}, time: r.now };
        sendVenueJson(r.res, 413, body, { connection: "close" });
        return;
      }
      // An aborted request or an internal fault: the exchange's own handler deals with it.
      throw err;
    }
  },
};
