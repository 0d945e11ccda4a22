/**
 * The Kraken-shaped API of the demo exchange: a subset of Kraken's spot REST API over the demo's
 * one engine and ledger, enough for Kraken clients (ccxt's `kraken`) to load markets, read
 * balances and add orders.
 *
 * Names follow Kraken: assets XXBT (altname XBT), XETH (ETH) and USDT; pairs XBTUSDT and ETHUSDT
 * (bases XXBT/XETH, quote USDT), which are the engine's BTCUSDT and ETHUSDT with their tick, step
 * and minimums. Amounts are the engine's 8-decimal text.
 *
 * Every answer is `{"error": [], "result": …}`; a failure is `{"error": ["<Kraken error>"]}` with
 * HTTP 200, as Kraken does. Private routes act for the gateway's verified identity
 * (`accountFor`): no valid identity is `EAPI:Invalid key`, a valid one without the route's
 * permission `EGeneral:Permission denied`. Private parameters come from the POST data
 * (form-encoded or JSON); parameters a method does not read are ignored, as Kraken ignores them,
 * and the nonce is not checked again (the gateway did).
 */
import { randomBytes } from "node:crypto";
import type { RouteSpec } from "portcullis";
import { formatDecimal, ONE } from "../decimal.js";
import type { Engine } from "../engine.js";
import { ExchangeError, errors } from "../errors.js";
import { RequestAbortedError, parseBody, parseForm } from "../http.js";
import { findMarket, notionalOf, passesLotSize, passesPriceFilter, type Asset, type Market } from "../markets.js";
import type { OrderType, Side, TimeInForce } from "../orders.js";
import { toClientOrderId, toDecimal, type ParamSource } from "../params.js";
import { ACCOUNT_RE, accountFor, sendVenueJson, type Venue, type VenueRequest } from "../venue.js";

/** A refusal in Kraken's words, e.g. "EOrder:Insufficient funds". */
class KrakenError extends Error {
  override name = "KrakenError";

  constructor(
    readonly error: string,
    readonly status = 200,
  ) {
    super(error);
  }
}

const INVALID_KEY = "EAPI:Invalid key";
const PERMISSION_DENIED = "EGeneral:Permission denied";
const INVALID_ARGUMENTS = "EGeneral:Invalid arguments";
const invalidArgument = (name: string): KrakenError => new KrakenError(`${INVALID_ARGUMENTS}:${name}`);

interface KrakenAsset {
  readonly id: string;
  readonly altname: string;
  readonly asset: Asset;
  readonly displayDecimals: number;
}

/** Kraken's names for the engine's assets (Kraken calls bitcoin XBT, its legacy ids X-prefixed). */
const KRAKEN_ASSETS: readonly KrakenAsset[] = [
  { id: "XXBT", altname: "XBT", asset: "BTC", displayDecimals: 5 },
  { id: "XETH", altname: "ETH", asset: "ETH", displayDecimals: 5 },
  { id: "USDT", altname: "USDT", asset: "USDT", displayDecimals: 4 },
];

interface KrakenPair {
  readonly id: string;
  readonly altname: string;
  readonly wsname: string;
  readonly base: KrakenAsset;
  readonly quote: KrakenAsset;
  readonly market: Market;
}

function assetFor(asset: Asset): KrakenAsset {
  const found = KRAKEN_ASSETS.find((a) => a.asset === asset);
  if (found === undefined) throw new Error(`kraken venue: no Kraken name for ${asset}`);
  return found;
}

function pairFor(id: string, symbol: string): KrakenPair {
  const market = findMarket(symbol);
  if (market === undefined) throw new Error(`kraken venue: no market ${symbol}`);
  const base = assetFor(market.baseAsset);
  const quote = assetFor(market.quoteAsset);
  return { id, altname: id, wsname: `${base.altname}/${quote.altname}`, base, quote, market };
}

const KRAKEN_PAIRS: readonly KrakenPair[] = [pairFor("XBTUSDT", "BTCUSDT"), pairFor("ETHUSDT", "ETHUSDT")];

/** Decimal places of a power-of-ten step (0.01 -> 2). */
function decimalsOf(step: bigint): number {
  let places = 0;
  for (let v = step; v < ONE; v *= 10n) places++;
  return places;
}

/** Names a client may use for an asset or a pair: its id or its altname. */
function byName<T extends { readonly id: string; readonly altname: string }>(items: readonly T[]): ReadonlyMap<string, T> {
  const map = new Map<string, T>();
  for (const item of items) {
    map.set(item.id, item);
    map.set(item.altname, item);
  }
  return map;
}

const ASSETS_BY_NAME = byName(KRAKEN_ASSETS);
const PAIRS_BY_NAME = byName(KRAKEN_PAIRS);

/** A comma-separated selection (`asset=XBT,ETH`, `pair=XBTUSDT`), or everything. */
function select<T>(text: string | undefined, names: ReadonlyMap<string, T>, all: readonly T[], unknown: string): readonly T[] {
  if (text === undefined) return all;
  const chosen: T[] = [];
  for (const name of text.split(",")) {
    const item = names.get(name.trim());
    if (item === undefined) throw new KrakenError(unknown);
    if (!chosen.includes(item)) chosen.push(item);
  }
  return chosen;
}

/** Parameters by name; a name sent twice is an invalid argument. */
function collect(source: ParamSource): ReadonlyMap<string, string> {
  const params = new Map<string, string>();
  for (const [name, value] of source) {
    if (params.has(name)) throw invalidArgument(name);
    params.set(name, value);
  }
  return params;
}

/** The POST data's parameters (form-encoded or JSON). */
async function bodyParams(request: VenueRequest): Promise<ReadonlyMap<string, string>> {
  const body = await request.readBody();
  let source: ParamSource;
  try {
    source = parseBody(request.req.headers["content-type"], body);
  } catch (error) {
    if (error instanceof ExchangeError) throw new KrakenError(INVALID_ARGUMENTS);
    throw error;
  }
  return collect(source);
}

/** The account a private request acts for, or Kraken's refusal. */
function accountOf(request: VenueRequest): string {
  const account = accountFor(request);
  if (account !== null) return account;
  const identity = request.identity;
  throw new KrakenError(identity !== null && ACCOUNT_RE.test(identity.account) ? PERMISSION_DENIED : INVALID_KEY);
}

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"] as const;
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"] as const;
const two = (n: number): string => String(n).padStart(2, "0");

/** Kraken's `rfc1123` time text, e.g. "Sun, 21 Mar 21 18:58:27 +0000" (two-digit year, as Kraken sends). */
function rfc1123(ms: number): string {
  const d = new Date(ms);
  const day = DAYS[d.getUTCDay()] ?? "";
  const month = MONTHS[d.getUTCMonth()] ?? "";
  return `${day}, ${two(d.getUTCDate())} ${month} ${two(d.getUTCFullYear() % 100)} ${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} +0000`;
}

// --- public ------------------------------------------------------------------------------

function time(request: VenueRequest): unknown {
  return { unixtime: Math.floor(request.now / 1000), rfc1123: rfc1123(request.now) };
}

function assets(request: VenueRequest): unknown {
  const params = collect(parseForm(request.query));
  const chosen = select(params.get("asset"), ASSETS_BY_NAME, KRAKEN_ASSETS, "EQuery:Unknown asset");
  const result: Record<string, unknown> = {};
  for (const a of chosen) {
    result[a.id] = { aclass: "currency", altname: a.altname, decimals: 8, display_decimals: a.displayDecimals, status: "enabled" };
  }
  return result;
}

function assetPairs(request: VenueRequest): unknown {
  const params = collect(parseForm(request.query));
  const chosen = select(params.get("pair"), PAIRS_BY_NAME, KRAKEN_PAIRS, "EQuery:Unknown asset pair");
  const result: Record<string, unknown> = {};
  for (const p of chosen) {
    const m = p.market;
    result[p.id] = {
      altname: p.altname,
      wsname: p.wsname,
      aclass_base: "currency",
      base: p.base.id,
      aclass_quote: "currency",
      quote: p.quote.id,
      lot: "unit",
      cost_decimals: 8,
      pair_decimals: decimalsOf(m.tickSize),
      lot_decimals: decimalsOf(m.stepSize),
      lot_multiplier: 1,
      leverage_buy: [],
      leverage_sell: [],
      // The demo charges no fees.
      fees: [[0, 0]],
      fees_maker: [[0, 0]],
      fee_volume_currency: "ZUSD",
      margin_call: 80,
      margin_stop: 40,
      ordermin: formatDecimal(m.minQty),
      costmin: formatDecimal(m.minNotional),
      tick_size: formatDecimal(m.tickSize),
      status: "online",
    };
  }
  return result;
}

// --- private -----------------------------------------------------------------------------

/** Balance: each asset's total (available + held in open orders). */
async function balance(request: VenueRequest): Promise<unknown> {
  const account = accountOf(request);
  await bodyParams(request);
  const record = request.engine.openAccount(account);
  const result: Record<string, string> = {};
  for (const a of KRAKEN_ASSETS) {
    const b = record.balances[a.asset];
    result[a.id] = formatDecimal(b.free + b.locked);
  }
  return result;
}

/** BalanceEx: each asset's total and the part held by open orders (what ccxt's fetchBalance reads). */
async function balanceEx(request: VenueRequest): Promise<unknown> {
  const account = accountOf(request);
  await bodyParams(request);
  const record = request.engine.openAccount(account);
  const result: Record<string, { balance: string; hold_trade: string }> = {};
  for (const a of KRAKEN_ASSETS) {
    const b = record.balances[a.asset];
    result[a.id] = { balance: formatDecimal(b.free + b.locked), hold_trade: formatDecimal(b.locked) };
  }
  return result;
}

const SIDES: ReadonlyMap<string, Side> = new Map([
  ["buy", "BUY"],
  ["sell", "SELL"],
]);
const ORDER_TYPES: ReadonlyMap<string, OrderType> = new Map([
  ["limit", "LIMIT"],
  ["market", "MARKET"],
]);
const TIME_IN_FORCE: ReadonlyMap<string, TimeInForce> = new Map([
  ["GTC", "GTC"],
  ["IOC", "IOC"],
]);
/** Order flags the demo honours (viqc) or can accept as no-ops (fee currency, price protection). */
const ORDER_FLAGS: ReadonlySet<string> = new Set(["viqc", "fcib", "fciq", "nompp"]);

const INSUFFICIENT_FUNDS = errors.insufficientBalance().message;
const DUPLICATE_ORDER = errors.duplicateOrder().message;

function required(params: ReadonlyMap<string, string>, name: string): string {
  const value = params.get(name);
  if (value === undefined || value === "") throw invalidArgument(name);
  return value;
}

function amount(text: string, name: string): bigint {
  try {
    return toDecimal(text, name);
  } catch (error) {
    if (error instanceof ExchangeError) throw invalidArgument(name);
    throw error;
  }
}

/** Kraken's one-line order description, e.g. "buy 1.25000000 XBTUSDT @ limit 37500.00". */
function describe(side: Side, volume: bigint, pair: KrakenPair, price: bigint | null): string {
  const at = price === null ? "market" : `limit ${formatDecimal(price, decimalsOf(pair.market.tickSize))}`;
  return `${side === "BUY" ? "buy" : "sell"} ${formatDecimal(volume)} ${pair.altname} @ ${at}`;
}

/** Kraken-style transaction id for an engine order id, e.g. "O00000-00000-00002S". */
function txidOf(orderId: number): string {
  const digits = orderId.toString(36).toUpperCase().padStart(16, "0");
  return `O${digits.slice(0, 5)}-${digits.slice(5, 10)}-${digits.slice(10)}`;
}

/**
 * AddOrder: limit and market orders on XBTUSDT and ETHUSDT. Parameters: pair, type (buy/sell),
 * ordertype (limit/market), volume, price (limit), timeinforce (GTC/IOC), oflags (viqc: market
 * volume in quote currency; fcib/fciq/nompp accepted as no-ops), cl_ord_id, validate.
 */
async function addOrder(request: VenueRequest): Promise<unknown> {
  const account = accountOf(request);
  const params = await bodyParams(request);
  const pairName = required(params, "pair");
  const pair = PAIRS_BY_NAME.get(pairName);
  if (pair === undefined) throw new KrakenError("EQuery:Unknown asset pair");
  const market = pair.market;
  const side = SIDES.get(required(params, "type"));
  if (side === undefined) throw invalidArgument("type");
  const type = ORDER_TYPES.get(required(params, "ordertype"));
  if (type === undefined) throw invalidArgument("ordertype");
  const volume = amount(required(params, "volume"), "volume");

  const flags = new Set((params.get("oflags") ?? "").split(",").filter((f) => f !== ""));
  for (const flag of flags) if (!ORDER_FLAGS.has(flag)) throw invalidArgument("oflags");
  const inQuote = flags.has("viqc");
  if (inQuote && type !== "MARKET") throw invalidArgument("oflags");

  const tifText = params.get("timeinforce");
  const tif = tifText === undefined ? "GTC" : TIME_IN_FORCE.get(tifText);
  if (tif === undefined) throw invalidArgument("timeinforce");

  const clientText = params.get("cl_ord_id");
  let clientOrderId: string | null;
  try {
    clientOrderId = clientText === undefined ? null : toClientOrderId(clientText, "cl_ord_id");
  } catch {
    throw invalidArgument("cl_ord_id");
  }
  const validateText = params.get("validate");
  if (validateText !== undefined && validateText !== "true" && validateText !== "false") throw invalidArgument("validate");

  // Kraken ignores a price on a market order.
  const price = type === "LIMIT" ? amount(required(params, "price"), "price") : null;
  if (price !== null && !passesPriceFilter(market, price)) throw invalidArgument("price");
  if (!inQuote) {
    if (volume < market.minQty) throw new KrakenError("EOrder:Order minimum not met");
    if (!passesLotSize(market, volume)) throw invalidArgument("volume");
  }
  const notional = inQuote ? volume : notionalOf(price ?? request.engine.lastPrice(market), volume);
  if (notional < market.minNotional) throw new KrakenError("EOrder:Cost minimum not met");
  if (price !== null && notional > market.maxNotional) throw invalidArgument("volume");

  const descr = { order: describe(side, volume, pair, price) };
  if (validateText === "true") return { descr };
  return { descr, txid: [txidOf(place(request.engine, account, market, side, type, tif, price, volume, inQuote, clientOrderId))] };
}

function place(
  engine: Engine,
  account: string,
  market: Market,
  side: Side,
  type: OrderType,
  tif: TimeInForce,
  price: bigint | null,
  volume: bigint,
  inQuote: boolean,
  clientOrderId: string | null,
): number {
  try {
    const { order } = engine.place(account, {
      market,
      side,
      type,
      timeInForce: type === "MARKET" ? "GTC" : tif,
      price,
      quantity: inQuote ? null : volume,
      quoteOrderQty: inQuote ? volume : null,
      clientOrderId: clientOrderId ?? randomBytes(16).toString("base64url"),
    });
    return order.orderId;
  } catch (error) {
    if (error instanceof ExchangeError && error.message === INSUFFICIENT_FUNDS) throw new KrakenError("EOrder:Insufficient funds");
    if (error instanceof ExchangeError && error.message === DUPLICATE_ORDER) throw invalidArgument("cl_ord_id");
    throw error;
  }
}

// --- the venue ---------------------------------------------------------------------------

type Handler = (request: VenueRequest) => unknown;

const KRAKEN = "kraken";

const HANDLERS: ReadonlyMap<string, Handler> = new Map<string, Handler>([
  ["GET /0/public/Time", time],
  ["GET /0/public/Assets", assets],
  ["GET /0/public/AssetPairs", assetPairs],
  ["POST /0/private/Balance", balance],
  ["POST /0/private/BalanceEx", balanceEx],
  ["POST /0/private/AddOrder", addOrder],
]);

/**
 * The routes, for the gateway's table. Weights follow Kraken's call counter (every call costs 1;
 * Kraken meters AddOrder separately, which the `order` tag marks).
 */
const ROUTES: readonly RouteSpec[] = [
  { method: "GET", path: "/0/public/Time", permission: "public", weight: 1, dialect: KRAKEN },
  { method: "GET", path: "/0/public/Assets", permission: "public", weight: 1, dialect: KRAKEN },
  { method: "GET", path: "/0/public/AssetPairs", permission: "public", weight: 1, dialect: KRAKEN },
  { method: "POST", path: "/0/private/Balance", permission: "read", weight: 1, dialect: KRAKEN },
  { method: "POST", path: "/0/private/BalanceEx", permission: "read", weight: 1, dialect: KRAKEN },
  { method: "POST", path: "/0/private/AddOrder", permission: "trade", weight: 1, tags: ["order"], dialect: KRAKEN, operation: "order.place" },
];

function sendKraken(request: VenueRequest, status: number, body: unknown, headers: Readonly<Record<string, string>> = {}): void {
  if (request.res.headersSent) return;
  sendVenueJson(request.res, status, body, { "cache-control": "no-store", ...headers });
}

export const krakenVenue: Venue = {
  name: KRAKEN,
  routes: ROUTES,
  async handle(request: VenueRequest): Promise<void> {
    const handler = HANDLERS.get(`${request.method} ${request.path}`);
    try {
      if (handler === undefined) throw new KrakenError("EGeneral:Unknown method", 404);
      const result = await handler(request);
      sendKraken(request, 200, { error: [], result });
    } catch (error) {
      if (error instanceof KrakenError) {
        sendKraken(request, error.status, { error: [error.error] });
        return;
      }
      if (error instanceof RequestAbortedError) throw error;
      if (error instanceof ExchangeError) {
        // The exchange's body limits (413): Kraken's shape, and the connection is not reused.
        sendKraken(request, error.status, { error: [INVALID_ARGUMENTS] }, error.status === 413 ? { connection: "close" } : {});
        return;
      }
      // An internal fault: answered in Kraken's shape, then passed on so the exchange logs it
      // (its fallback answer is skipped, the response having been sent).
      sendKraken(request, 500, { error: ["EGeneral:Internal error"] });
      throw error;
    }
  },
};
