/**
 * The OKX-shaped API of the demo exchange (API v5, spot only), over the shared engine: what
 * ccxt's okx needs for loadMarkets, fetchBalance and createOrder, in OKX's shapes
 * (`{"code":"0","msg":"","data":[…]}`) and with OKX's error codes. Instruments are named the OKX
 * way (BTC-USDT for the engine's BTCUSDT).
 *
 *   GET  /api/v5/public/time          public   {ts}
 *   GET  /api/v5/public/instruments   public   instType=SPOT (other types: no instruments)
 *   GET  /api/v5/asset/currencies     read     currencies and chains (deposits/withdrawals closed)
 *   GET  /api/v5/account/balance      read     the account's balances (ccy filter)
 *   POST /api/v5/trade/order          trade    place an order: limit, fok, ioc or market, tdMode cash
 *
 * Private routes act for the gateway's verified identity only: without one the answer is OKX's
 * 50111 (401), and an identity without the route's permission is 50120.
 */
import { randomUUID } from "node:crypto";
import { grantedPermissions } from "portcullis/upstream";
import type { RouteSpec } from "portcullis";
import { formatDecimal, mul, parseDecimal } from "../decimal.js";
import type { Engine } from "../engine.js";
import { ExchangeError } from "../errors.js";
import {
  ASSETS,
  MARKETS,
  WITHDRAW_NETWORKS,
  notionalOf,
  passesPriceFilter,
  type Asset,
  type Market,
} from "../markets.js";
import type { OrderType, Side, TimeInForce } from "../orders.js";
import { type Venue, type VenueRequest, accountFor, sendVenueJson } from "../venue.js";

const dialect = "okx";
const TRAILING_ZEROS_RE = /\.?0+$/;
const CURRENCY_RE = /^[A-Z0-9]{1,20}$/;

const ROUTES: readonly RouteSpec[] = [
  { method: "GET", path: "/api/v5/public/time", permission: "public", weight: 1, dialect },
  { method: "GET", path: "/api/v5/public/instruments", permission: "public", weight: 1, dialect },
  { method: "GET", path: "/api/v5/asset/currencies", permission: "read", weight: 1, dialect },
  { method: "GET", path: "/api/v5/account/balance", permission: "read", weight: 1, dialect },
  { method: "POST", path: "/api/v5/trade/order", permission: "trade", weight: 1, tags: ["order"], dialect, operation: "order.place" },
];

/** An OKX error answer, thrown by the handlers and written by `handle`. */
class OkxFault extends Error {
  override name = "OkxFault";

  constructor(
    readonly status: number,
    readonly code: string,
    readonly msg: string,
    readonly data: readonly unknown[] = [],
  ) {
    super(msg);
  }
}

const empty = (name: string): OkxFault => new OkxFault(400, "50014", `Parameter ${name} cannot be empty.`);
const invalid = (name: string): OkxFault => new OkxFault(400, "51000", `Parameter ${name} error.`);

/** Amounts the OKX way: no trailing zeros ("0.1", "60000"). */
function plain(value: bigint): string {
  const text = formatDecimal(value);
  return text.replace(TRAILING_ZEROS_RE, "");
}

const instIdOf = (m: Market): string => `${m.baseAsset}-${m.quoteAsset}`;
const byInstId = new Map(MARKETS.map((m) => [instIdOf(m), m]));

/** The USDT price of one unit of `asset` (last trade, or the reference price). */
function usdtPrice(engine: Engine, asset: Asset): bigint | null {
  if (asset === "USDT") return null;
  const market = MARKETS.find((m) => m.baseAsset === asset && m.quoteAsset === "USDT");
  return market === undefined ? 0n : engine.lastPrice(market);
}

function usdValue(engine: Engine, asset: Asset, amount: bigint): bigint {
  const price = usdtPrice(engine, asset);
  return price === null ? amount : mul(amount, price);
}

/** A comma-separated currency filter (`ccy=BTC,USDT`), or every asset. */
function currencyFilter(query: URLSearchParams): Asset[] {
  const text = query.get("ccy");
  if (text === null || text === "") return [...ASSETS];
  const names = text.split(",");
  if (names.length > 20 || names.some((n) => !CURRENCY_RE.test(n))) throw invalid("ccy");
  return ASSETS.filter((a) => names.includes(a));
}

const CURRENCY_NAMES: Readonly<Record<Asset, string>> = { BTC: "Bitcoin", ETH: "Ethereum", USDT: "Tether" };
const CHAIN_NAMES: Readonly<Record<string, string>> = { BTC: "Bitcoin", ETH: "ERC20", TRX: "TRC20", BSC: "BSC" };

function instrument(m: Market): Record<string, unknown> {
  return {
    instType: "SPOT",
    instId: instIdOf(m),
    uly: "",
    instFamily: "",
    baseCcy: m.baseAsset,
    quoteCcy: m.quoteAsset,
    settleCcy: "",
    ctVal: "",
    ctMult: "",
    ctValCcy: "",
    optType: "",
    stk: "",
    listTime: "1700000000000",
    expTime: "",
    lever: "",
    tickSz: plain(m.tickSize),
    lotSz: plain(m.stepSize),
    minSz: plain(m.minQty),
    ctType: "",
    alias: "",
    state: "live",
    ruleType: "normal",
    maxLmtSz: plain(m.maxQty),
    maxMktSz: plain(m.maxNotional),
    maxLmtAmt: plain(m.maxNotional),
    maxMktAmt: plain(m.maxNotional),
  };
}

const INST_TYPES = ["SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION"];

function time(r: VenueRequest): unknown[] {
  return [{ ts: String(r.now) }];
}

function instruments(r: VenueRequest): unknown[] {
  const query = new URLSearchParams(r.query);
  const instType = query.get("instType");
  if (instType === null || instType === "") throw empty("instType");
  if (!INST_TYPES.includes(instType)) throw invalid("instType");
  if (instType !== "SPOT") return [];
  const instId = query.get("instId");
  if (instId === null || instId === "") return MARKETS.map(instrument);
  const market = byInstId.get(instId);
  if (market === undefined) throw new OkxFault(200, "51001", "Instrument ID does not exist.");
  return [instrument(market)];
}

function currencies(r: VenueRequest): unknown[] {
  const rows: unknown[] = [];
  for (const ccy of currencyFilter(new URLSearchParams(r.query))) {
    WITHDRAW_NETWORKS[ccy].forEach((network, i) => {
      rows.push({
        ccy,
        name: CURRENCY_NAMES[ccy],
        chain: `${ccy}-${CHAIN_NAMES[network] ?? network}`,
        canDep: false,
        canWd: false,
        canInternal: false,
        minDep: "",
        minWd: "0",
        maxWd: "0",
        wdTickSz: "8",
        wdQuota: "0",
        usedWdQuota: "0",
        fee: "0",
        minFee: "0",
        maxFee: "0",
        mainNet: i === 0,
        needTag: false,
        logoLink: "",
      });
    });
  }
  return rows;
}

function balance(r: VenueRequest, account: string): unknown[] {
  const record = r.engine.openAccount(account);
  const wanted = currencyFilter(new URLSearchParams(r.query));
  let totalUsd = 0n;
  const details = wanted.map((ccy) => {
    const { free, locked } = record.balances[ccy];
    const total = free + locked;
    const usd = usdValue(r.engine, ccy, total);
    totalUsd += usd;
    return {
      ccy,
      eq: plain(total),
      cashBal: plain(total),
      availBal: plain(free),
      availEq: plain(free),
      frozenBal: plain(locked),
      ordFrozen: plain(locked),
      eqUsd: plain(usd),
      disEq: plain(usd),
      upl: "0",
      liab: "",
      crossLiab: "",
      isoEq: "",
      isoLiab: "",
      interest: "",
      maxLoan: "",
      mgnRatio: "",
      notionalLever: "",
      twap: "0",
      uTime: String(record.updateTime),
    };
  });
  return [
    {
      adjEq: "",
      details,
      imr: "",
      isoEq: "0",
      mgnRatio: "",
      mmr: "",
      notionalUsd: "",
      ordFroz: "",
      totalEq: plain(totalUsd),
      uTime: String(record.updateTime),
    },
  ];
}

const ORDER_TYPES: Readonly<Record<string, { type: OrderType; timeInForce: TimeInForce }>> = {
  limit: { type: "LIMIT", timeInForce: "GTC" },
  fok: { type: "LIMIT", timeInForce: "FOK" },
  ioc: { type: "LIMIT", timeInForce: "IOC" },
  market: { type: "MARKET", timeInForce: "GTC" },
};
const CLIENT_ID_RE = /^[A-Za-z0-9]{1,32}$/;
const TAG_RE = /^[A-Za-z0-9]{1,16}$/;
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** The JSON object body of a POST (OKX takes JSON only). */
async function jsonBody(r: VenueRequest): Promise<Record<string, unknown>> {
  const mediaType = (r.req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
  const body = await r.readBody();
  if (mediaType !== "application/json") throw new OkxFault(400, "50006", 'Invalid Content-Type, please use "application/JSON" format.');
  if (body.length === 0) throw new OkxFault(400, "50000", "Body for POST request cannot be empty.");
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8.decode(body));
  } catch {
    throw new OkxFault(400, "50002", "JSON syntax error");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new OkxFault(400, "50002", "JSON syntax error");
  return parsed as Record<string, unknown>;
}

/** A string field (numbers are taken as their text); undefined when absent or empty. */
function field(body: Record<string, unknown>, name: string): string | undefined {
  const value = body[name];
  if (value === undefined || value === null || value === "") return undefined;
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  if (typeof value !== "string") throw invalid(name);
  return value;
}

function required(body: Record<string, unknown>, name: string): string {
  const value = field(body, name);
  if (value === undefined) throw empty(name);
  return value;
}

function amount(text: string, name: string): bigint {
  const parsed = parseDecimal(text);
  if (!parsed.ok || parsed.value <= 0n) throw invalid(name);
  return parsed.value;
}

async function placeOrder(r: VenueRequest, account: string): Promise<unknown[]> {
  const body = await jsonBody(r);
  const instId = required(body, "instId");
  const market = byInstId.get(instId);
  if (market === undefined) throw new OkxFault(200, "51001", "Instrument ID does not exist.");
  if (required(body, "tdMode") !== "cash") throw invalid("tdMode");
  const sideText = required(body, "side");
  if (sideText !== "buy" && sideText !== "sell") throw invalid("side");
  const side: Side = sideText === "buy" ? "BUY" : "SELL";
  const ordType = ORDER_TYPES[required(body, "ordType")];
  if (ordType === undefined) throw invalid("ordType");
  const sz = amount(required(body, "sz"), "sz");
  const clOrdId = field(body, "clOrdId");
  if (clOrdId !== undefined && !CLIENT_ID_RE.test(clOrdId)) throw invalid("clOrdId");
  const tag = field(body, "tag");
  if (tag !== undefined && !TAG_RE.test(tag)) throw invalid("tag");
  const tgtCcy = field(body, "tgtCcy");
  if (tgtCcy !== undefined && tgtCcy !== "base_ccy" && tgtCcy !== "quote_ccy") throw invalid("tgtCcy");

  let price: bigint | null = null;
  let quantity: bigint | null = sz;
  let quoteOrderQty: bigint | null = null;
  if (ordType.type === "LIMIT") {
    price = amount(required(body, "px"), "px");
  } else if ((tgtCcy ?? (side === "BUY" ? "quote_ccy" : "base_ccy")) === "quote_ccy") {
    // OKX's default for a spot market buy: sz is the quote amount to spend.
    quantity = null;
    quoteOrderQty = sz;
  }

  const reject = (sCode: string, sMsg: string): OkxFault =>
    new OkxFault(200, "1", "All operations failed", [{ clOrdId: clOrdId ?? "", ordId: "", tag: tag ?? "", ts: String(r.now), sCode, sMsg }]);
  if (price !== null && !passesPriceFilter(market, price)) throw reject("51000", "Parameter px error.");
  if (quantity !== null) {
    if (quantity < market.minQty) throw reject("51020", "Your order should meet or exceed the minimum order amount.");
    if (quantity > market.maxQty) throw reject("51005", "Order amount exceeds the limit.");
    if ((quantity - market.minQty) % market.stepSize !== 0n) throw reject("51121", "Order quantity must be a multiple of the lot size.");
  }
  let notional: bigint;
  if (quoteOrderQty !== null) notional = quoteOrderQty;
  else notional = notionalOf(price ?? r.engine.lastPrice(market), sz);
  if (notional < market.minNotional) throw reject("51020", "Your order should meet or exceed the minimum order amount.");
  if (price !== null && notional > market.maxNotional) throw reject("51005", "Order amount exceeds the limit.");

  const clientOrderId = clOrdId ?? randomUUID().replaceAll("-", "");
  if (r.engine.openOrders(account, market).some((o) => o.clientOrderId === clientOrderId)) throw reject("51016", "Duplicated clOrdId.");
  let orderId: number;
  try {
    orderId = r.engine.place(account, {
      market,
      side,
      type: ordType.type,
      timeInForce: ordType.timeInForce,
      price,
      quantity,
      quoteOrderQty,
      clientOrderId,
    }).order.orderId;
  } catch (err) {
    if (err instanceof ExchangeError && err.code === -2010) {
      const ccy = side === "BUY" ? market.quoteAsset : market.baseAsset;
      throw reject("51008", `Order failed. Insufficient ${ccy} balance in account.`);
    }
    throw err;
  }
  return [{ clOrdId: clOrdId ?? "", ordId: String(orderId), tag: tag ?? "", ts: String(r.now), sCode: "0", sMsg: "Order placed" }];
}

/** The refusal for a private request the gateway did not vouch for (or vouched for without the permission). */
function refused(r: VenueRequest): OkxFault {
  const identity = r.identity;
  if (identity !== null && !grantedPermissions(identity.scopes).has(r.route.permission)) {
    return new OkxFault(403, "50120", "API key doesn't have permission.");
  }
  return new OkxFault(401, "50111", "Invalid OK-ACCESS-KEY.");
}

function privateAccount(r: VenueRequest): string {
  const account = accountFor(r);
  if (account === null) throw refused(r);
  return account;
}

async function answer(r: VenueRequest): Promise<unknown[]> {
  switch (`${r.method} ${r.path}`) {
    case "GET /api/v5/public/time":
      return time(r);
    case "GET /api/v5/public/instruments":
      return instruments(r);
    case "GET /api/v5/asset/currencies":
      privateAccount(r);
      return currencies(r);
    case "GET /api/v5/account/balance":
      return balance(r, privateAccount(r));
    case "POST /api/v5/trade/order":
      return placeOrder(r, privateAccount(r));
    default:
      throw new OkxFault(404, "404", "Not Found");
  }
}

export const okxVenue: Venue = {
  name: "okx",
  routes: ROUTES,
  async handle(r: VenueRequest): Promise<void> {
    try {
      const data = await answer(r);
      const micros = String(r.now * 1000);
      sendVenueJson(r.res, 200, { code: "0", msg: "", data, inTime: micros, outTime: micros });
    } catch (err) {
      if (err instanceof OkxFault) {
        sendVenueJson(r.res, err.status, { code: err.code, msg: err.msg, data: err.data });
        return;
      }
      if (err instanceof ExchangeError && err.status === 413) {
        sendVenueJson(r.res, 413, { code: "51000", msg: "Parameter body error.", data: [] }, { connection: "close" });
        return;
      }
      // An aborted request or an internal fault: the exchange's own handler deals with it.
      throw err;
    }
  },
};
