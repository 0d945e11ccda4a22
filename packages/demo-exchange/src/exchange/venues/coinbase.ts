/**
 * The Coinbase-shaped API of the demo exchange: a subset of Coinbase Advanced Trade (v3
 * brokerage) and of the Coinbase App (v2) public data, over the demo's one engine. Products are
 * the engine's markets under Coinbase ids (BTCUSDT is BTC-USDT); each account has one wallet per
 * asset. Enough for ccxt's coinbase to load markets, fetch balances and place orders:
 *
 *   GET  /api/v3/brokerage/time                  public
 *   GET  /api/v3/brokerage/market/products       public
 *   GET  /api/v3/brokerage/accounts              read
 *   GET  /api/v3/brokerage/transaction_summary   read
 *   POST /api/v3/brokerage/orders                trade
 *   GET  /v2/time, /v2/currencies, /v2/currencies/crypto, /v2/exchange-rates   public
 *
 * Errors use Coinbase's shapes: v3 `{"error", "error_details", "message"}` (401 `unauthorized`
 * for a missing or insufficient gateway identity, 400 `INVALID_ARGUMENT`, ...), v2
 * `{"errors": [{"id", "message"}]}`, and an order the venue declines is HTTP 200 with
 * `success: false` and an `error_response`, as on Coinbase.
 */
import { createHash } from "node:crypto";
import type { RouteSpec } from "portcullis";
import { div, formatDecimal, ONE, parseDecimal } from "../decimal.js";
import type { Engine } from "../engine.js";
import { ExchangeError } from "../errors.js";
import { RequestAbortedError } from "../http.js";
import type { AccountRecord } from "../ledger.js";
import {
  ASSETS,
  MARKETS,
  isAsset,
  notionalOf,
  passesLotSize,
  passesNotional,
  passesPriceFilter,
  type Asset,
  type Market,
} from "../markets.js";
import type { Order, OrderType, Side, TimeInForce } from "../orders.js";
import { type Venue, type VenueRequest, accountFor, sendVenueJson } from "../venue.js";

const DIALECT = "coinbase";

/** The venue's routes, for the gateway's route table. */
export const COINBASE_ROUTES: readonly RouteSpec[] = [
  { method: "GET", path: "/api/v3/brokerage/time", permission: "public", weight: 1, dialect: DIALECT },
  { method: "GET", path: "/api/v3/brokerage/market/products", permission: "public", weight: 1, dialect: DIALECT },
  { method: "GET", path: "/api/v3/brokerage/accounts", permission: "read", weight: 1, dialect: DIALECT },
  { method: "GET", path: "/api/v3/brokerage/transaction_summary", permission: "read", weight: 1, dialect: DIALECT },
  { method: "POST", path: "/api/v3/brokerage/orders", permission: "trade", weight: 1, tags: ["order"], dialect: DIALECT, operation: "order.place" },
  { method: "GET", path: "/v2/time", permission: "public", weight: 1, dialect: DIALECT },
  { method: "GET", path: "/v2/currencies", permission: "public", weight: 1, dialect: DIALECT },
  { method: "GET", path: "/v2/currencies/crypto", permission: "public", weight: 1, dialect: DIALECT },
  { method: "GET", path: "/v2/exchange-rates", permission: "public", weight: 1, dialect: DIALECT },
];

// --- errors ---------------------------------------------------------------------------------

/** A refusal in Coinbase's shape (v3, or v2 for the /v2 routes). */
class CoinbaseError extends Error {
  override name = "CoinbaseError";

  constructor(
    readonly status: number,
    readonly error: string,
    message: string,
    readonly details: string = message,
  ) {
    super(message);
  }
}

const invalid = (message: string): CoinbaseError => new CoinbaseError(400, "INVALID_ARGUMENT", message);
const unauthenticated = (): CoinbaseError =>
  new CoinbaseError(401, "unauthorized", "Unauthorized", "the request carries no valid gateway identity with the permission this route requires");

/** v2 error ids (Coinbase App API) for the same statuses. */
function v2Id(status: number): string {
  if (status === 401) return "authentication_error";
  if (status === 404) return "not_found";
  if (status >= 500) return "internal_server_error";
  return "invalid_request";
}

function sendError(request: VenueRequest, error: CoinbaseError): void {
  const headers: Record<string, string> = error.status === 413 ? { connection: "close" } : {};
  if (request.path.startsWith("/v2/")) {
    sendVenueJson(request.res, error.status, { errors: [{ id: v2Id(error.status), message: error.message }] }, headers);
  } else {
    sendVenueJson(request.res, error.status, { error: error.error, error_details: error.details, message: error.message }, headers);
  }
}

// --- formatting -----------------------------------------------------------------------------

/** Coinbase prints decimals without trailing zeros: "60000", "0.00001". */
function plain(value: bigint): string {
  const text = formatDecimal(value);
  return text.includes(".") ? text.replace(/\.?0+$/, "") : text;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** A stable UUID-shaped id for a name (accounts, portfolios, orders, assets). */
function uuidOf(name: string): string {
  const hex = createHash("sha256").update(`demo-exchange/coinbase/${name}`).digest("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

const ASSET_NAMES: Readonly<Record<Asset, { name: string; color: string; addressRegex: string }>> = {
  BTC: { name: "Bitcoin", color: "#F7931A", addressRegex: "^([13][a-km-zA-HJ-NP-Z1-9]{25,34})|^(bc1[qzry9x8gf2tvdw0s3jn54khce6mua7l]([qpzry9x8gf2tvdw0s3jn54khce6mua7l]{38}|[qpzry9x8gf2tvdw0s3jn54khce6mua7l]{58}))$" },
  ETH: { name: "Ethereum", color: "#627EEA", addressRegex: "^(?:0x)?[0-9a-fA-F]{40}$" },
  USDT: { name: "Tether", color: "#22A079", addressRegex: "^(?:0x)?[0-9a-fA-F]{40}$" },
};

export function productIdOf(m: Market): string {
  return `${m.baseAsset}-${m.quoteAsset}`;
}

const byProductId = new Map(MARKETS.map((m) => [productIdOf(m), m]));

function productView(engine: Engine, m: Market): Record<string, unknown> {
  const id = productIdOf(m);
  return {
    product_id: id,
    price: plain(engine.lastPrice(m)),
    price_percentage_change_24h: "0",
    volume_24h: "0",
    volume_percentage_change_24h: "0",
    base_increment: plain(m.stepSize),
    quote_increment: plain(m.tickSize),
    quote_min_size: plain(m.minNotional),
    quote_max_size: plain(m.maxNotional),
    base_min_size: plain(m.minQty),
    base_max_size: plain(m.maxQty),
    base_name: ASSET_NAMES[m.baseAsset].name,
    quote_name: ASSET_NAMES[m.quoteAsset].name,
    watched: false,
    is_disabled: false,
    new: false,
    status: "online",
    cancel_only: false,
    limit_only: false,
    post_only: false,
    trading_disabled: false,
    auction_mode: false,
    product_type: "SPOT",
    quote_currency_id: m.quoteAsset,
    base_currency_id: m.baseAsset,
    fcm_trading_session_details: null,
    mid_market_price: "",
    alias: "",
    alias_to: [],
    base_display_symbol: m.baseAsset,
    quote_display_symbol: m.quoteAsset,
    view_only: false,
    price_increment: plain(m.tickSize),
    display_name: id,
    product_venue: "CBE",
    approximate_quote_24h_volume: "0",
  };
}

function walletView(record: AccountRecord, asset: Asset): Record<string, unknown> {
  const balance = record.balances[asset];
  return {
    uuid: uuidOf(`account/${record.account}/${asset}`),
    name: `${asset} Wallet`,
    currency: asset,
    available_balance: { value: plain(balance.free), currency: asset },
    default: asset === "USDT",
    active: true,
    created_at: iso(record.createdAt),
    updated_at: iso(record.updateTime),
    deleted_at: null,
    type: "ACCOUNT_TYPE_CRYPTO",
    ready: true,
    hold: { value: plain(balance.locked), currency: asset },
    retail_portfolio_id: uuidOf(`portfolio/${record.account}`),
    platform: "ACCOUNT_PLATFORM_CONSUMER",
  };
}

// --- request helpers ------------------------------------------------------------------------

function queryOf(request: VenueRequest): URLSearchParams {
  return new URLSearchParams(request.query);
}

/** An optional integer query parameter within [min, max]; sent once at most. */
function intParam(params: URLSearchParams, name: string, min: number, max: number): number | undefined {
  const values = params.getAll(name);
  if (values.length === 0) return undefined;
  const text = values[0] ?? "";
  if (values.length > 1 || !/^[0-9]{1,9}$/.test(text)) throw invalid(`Invalid ${name}`);
  const value = Number(text);
  if (value < min || value > max) throw invalid(`${name} must be between ${min} and ${max}`);
  return value;
}

function authenticated(request: VenueRequest): string {
  const account = accountFor(request);
  if (account === null) throw unauthenticated();
  return account;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

async function jsonBody(request: VenueRequest): Promise<Record<string, unknown>> {
  const body = await request.readBody();
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8.decode(body));
  } catch {
    throw invalid("The request body must be a JSON object");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw invalid("The request body must be a JSON object");
  return parsed as Record<string, unknown>;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

// --- orders ---------------------------------------------------------------------------------

/** An order the venue declines (HTTP 200, success false, as on Coinbase). */
class OrderFailure extends Error {
  override name = "OrderFailure";

  constructor(
    readonly error: string,
    message: string,
    readonly previewReason: string,
  ) {
    super(message);
  }
}

const SUPPORTED_CONFIGURATIONS = ["market_market_ioc", "limit_limit_gtc", "limit_limit_fok", "sor_limit_ioc"] as const;
type Configuration = (typeof SUPPORTED_CONFIGURATIONS)[number];
const UNSUPPORTED_CONFIGURATIONS: ReadonlySet<string> = new Set([
  "market_market_fok",
  "sor_limit_ioc_with_price",
  "limit_limit_gtd",
  "limit_limit_fok_with_price",
  "stop_limit_stop_limit_gtc",
  "stop_limit_stop_limit_gtd",
  "trigger_bracket_gtc",
  "trigger_bracket_gtd",
  "twap_limit_gtd",
  "scaled_limit_gtc",
]);
const CONFIGURATION_FIELDS: Readonly<Record<Configuration, readonly string[]>> = {
  market_market_ioc: ["quote_size", "base_size", "rfq_disabled"],
  limit_limit_gtc: ["base_size", "limit_price", "post_only", "quote_size"],
  limit_limit_fok: ["base_size", "limit_price", "quote_size"],
  sor_limit_ioc: ["base_size", "limit_price", "quote_size"],
};
const ORDER_FIELDS: ReadonlySet<string> = new Set([
  "client_order_id",
  "product_id",
  "side",
  "order_configuration",
  "retail_portfolio_id",
  "self_trade_prevention_id",
  "preview_id",
]);
const SPOT_ONLY_FIELDS: ReadonlySet<string> = new Set(["leverage", "margin_type", "attached_order_configuration", "sor_preference", "prediction_metadata"]);
const CLIENT_ORDER_ID_RE = /^[\x21-\x7e]{1,128}$/;

/** A decimal field: INVALID_ARGUMENT on bad text, a declined order beyond 8 decimals. */
function amount(value: unknown, field: string, precisionReason: string): bigint {
  if (typeof value !== "string") throw invalid(`${field} must be a decimal string`);
  const parsed = parseDecimal(value);
  if (parsed.ok) return parsed.value;
  if (parsed.reason === "precision") throw new OrderFailure("INVALID_ARGUMENT", `${field} has too many decimal places`, precisionReason);
  throw invalid(`Invalid ${field}`);
}

interface OrderPlan {
  readonly market: Market;
  readonly side: Side;
  readonly type: OrderType;
  readonly timeInForce: TimeInForce;
  readonly price: bigint | null;
  readonly quantity: bigint | null;
  readonly quoteOrderQty: bigint | null;
  readonly postOnly: boolean;
  readonly clientOrderId: string;
  readonly configuration: Record<string, unknown>;
}

/** Validates an order request's syntax (INVALID_ARGUMENT), not yet its filters. */
function readOrder(body: Record<string, unknown>): OrderPlan {
  for (const field of Object.keys(body)) {
    if (SPOT_ONLY_FIELDS.has(field)) throw new CoinbaseError(400, "UNSUPPORTED_ORDER_CONFIGURATION", `${field} is not supported: this venue is spot only`);
    if (!ORDER_FIELDS.has(field)) throw invalid(`Unknown field ${field}`);
  }
  const clientOrderId = body.client_order_id;
  if (typeof clientOrderId !== "string" || !CLIENT_ORDER_ID_RE.test(clientOrderId)) throw invalid("client_order_id is required: 1-128 printable characters");
  const productId = body.product_id;
  if (typeof productId !== "string") throw invalid("product_id is required");
  const market = byProductId.get(productId);
  if (market === undefined) throw invalid("ProductID is invalid");
  const side = body.side;
  if (side !== "BUY" && side !== "SELL") throw invalid("side must be BUY or SELL");
  const configuration = body.order_configuration;
  if (!isRecord(configuration)) throw invalid("order_configuration is required");
  const kinds = Object.keys(configuration);
  const kind = kinds[0];
  if (kinds.length !== 1 || kind === undefined) throw invalid("order_configuration must hold exactly one order type");
  if (UNSUPPORTED_CONFIGURATIONS.has(kind)) throw new CoinbaseError(400, "UNSUPPORTED_ORDER_CONFIGURATION", `${kind} is not supported by this venue`);
  const supported = SUPPORTED_CONFIGURATIONS.find((c) => c === kind);
  if (supported === undefined) throw invalid(`Unknown order configuration ${kind}`);
  const config = configuration[supported];
  if (!isRecord(config)) throw invalid(`${supported} must be an object`);
  for (const field of Object.keys(config)) {
    if (!CONFIGURATION_FIELDS[supported].includes(field)) throw invalid(`Unknown field ${supported}.${field}`);
  }
  const base = { market, side, clientOrderId, configuration } as const;
  if (supported === "market_market_ioc") {
    const hasBase = config.base_size !== undefined;
    const hasQuote = config.quote_size !== undefined;
    if (hasBase === hasQuote) throw invalid("market_market_ioc needs exactly one of base_size and quote_size");
    if (config.rfq_disabled !== undefined && typeof config.rfq_disabled !== "boolean") throw invalid("rfq_disabled must be a boolean");
    return {
      ...base,
      type: "MARKET",
      timeInForce: "GTC",
      price: null,
      quantity: hasBase ? amount(config.base_size, "base_size", "PREVIEW_INVALID_SIZE_PRECISION") : null,
      quoteOrderQty: hasQuote ? amount(config.quote_size, "quote_size", "PREVIEW_INVALID_QUOTE_SIZE_PRECISION") : null,
      postOnly: false,
    };
  }
  if (config.quote_size !== undefined) throw new CoinbaseError(400, "UNSUPPORTED_ORDER_CONFIGURATION", "limit orders by quote_size are not supported by this venue");
  if (config.base_size === undefined) throw invalid("base_size is required");
  if (config.limit_price === undefined) throw invalid("limit_price is required");
  const postOnly = config.post_only ?? false;
  if (typeof postOnly !== "boolean") throw invalid("post_only must be a boolean");
  return {
    ...base,
    type: "LIMIT",
    timeInForce: supported === "limit_limit_gtc" ? "GTC" : supported === "limit_limit_fok" ? "FOK" : "IOC",
    price: amount(config.limit_price, "limit_price", "PREVIEW_INVALID_LIMIT_PRICE_PRECISION"),
    quantity: amount(config.base_size, "base_size", "PREVIEW_INVALID_SIZE_PRECISION"),
    quoteOrderQty: null,
    postOnly,
  };
}

/** The market's filters, as Coinbase's preview failure reasons. */
function checkFilters(engine: Engine, plan: OrderPlan): void {
  const { market, price, quantity, quoteOrderQty } = plan;
  if (price !== null && !passesPriceFilter(market, price)) {
    const reason = price > 0n && price % market.tickSize !== 0n ? "PREVIEW_INVALID_LIMIT_PRICE_PRECISION" : "PREVIEW_INVALID_LIMIT_PRICE";
    throw new OrderFailure("INVALID_LIMIT_PRICE", "Invalid limit price", reason);
  }
  if (quantity !== null && !passesLotSize(market, quantity)) {
    const reason =
      quantity < market.minQty ? "PREVIEW_INVALID_BASE_SIZE_TOO_SMALL" : quantity > market.maxQty ? "PREVIEW_INVALID_BASE_SIZE_TOO_LARGE" : "PREVIEW_INVALID_SIZE_PRECISION";
    throw new OrderFailure("INVALID_SIZE", "Invalid base size", reason);
  }
  if (quoteOrderQty !== null && quoteOrderQty % market.tickSize !== 0n) {
    throw new OrderFailure("INVALID_SIZE", "Invalid quote size", "PREVIEW_INVALID_QUOTE_SIZE_PRECISION");
  }
  const notional = price !== null && quantity !== null ? notionalOf(price, quantity) : quantity !== null ? notionalOf(engine.lastPrice(market), quantity) : (quoteOrderQty ?? 0n);
  if (notional < market.minNotional) throw new OrderFailure("INVALID_SIZE", "Order value is below the minimum", "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL");
  if (price !== null && quantity !== null && !passesNotional(market, notional)) {
    throw new OrderFailure("INVALID_SIZE", "Order value is above the maximum", "PREVIEW_INVALID_QUOTE_SIZE_TOO_LARGE");
  }
  if (plan.postOnly && price !== null) {
    const best = engine.book(market).orders(plan.side === "BUY" ? "SELL" : "BUY").next();
    if (best.done !== true && (plan.side === "BUY" ? best.value.price <= price : best.value.price >= price)) {
      throw new OrderFailure("INVALID_LIMIT_PRICE_POST_ONLY", "A post-only order would trade immediately", "PREVIEW_INVALID_LIMIT_PRICE_POST_ONLY");
    }
  }
}

/** The account's earlier order with this client order id on this product, if any (Coinbase answers it again). */
function earlierOrder(engine: Engine, account: string, plan: OrderPlan): Order | null {
  try {
    return engine.find(account, plan.market, { orderId: null, clientOrderId: plan.clientOrderId });
  } catch (error) {
    if (error instanceof ExchangeError) return null;
    throw error;
  }
}

function placeOrder(engine: Engine, account: string, plan: OrderPlan): Order {
  const earlier = earlierOrder(engine, account, plan);
  if (earlier !== null) return earlier;
  checkFilters(engine, plan);
  try {
    return engine.place(account, {
      market: plan.market,
      side: plan.side,
      type: plan.type,
      timeInForce: plan.timeInForce,
      price: plan.price,
      quantity: plan.quantity,
      quoteOrderQty: plan.quoteOrderQty,
      clientOrderId: plan.clientOrderId,
    }).order;
  } catch (error) {
    // The engine's only refusal left here is the balance check.
    if (error instanceof ExchangeError && error.code === -2010) {
      throw new OrderFailure("INSUFFICIENT_FUND", "Insufficient balance in source account", "PREVIEW_INSUFFICIENT_FUND");
    }
    throw error;
  }
}

// --- handlers -------------------------------------------------------------------------------

/** Answers a request with the JSON body of a 200, or throws a CoinbaseError. */
type Handler = (request: VenueRequest) => unknown;

function valueInQuote(engine: Engine, asset: Asset): bigint {
  const m = MARKETS.find((market) => market.baseAsset === asset && market.quoteAsset === "USDT");
  return m === undefined ? ONE : engine.lastPrice(m);
}

const HANDLERS: ReadonlyMap<string, Handler> = new Map<string, Handler>([
  [
    "GET /api/v3/brokerage/time",
    ({ now }) => ({ iso: iso(now), epochSeconds: String(Math.floor(now / 1000)), epochMillis: String(now) }),
  ],
  [
    "GET /api/v3/brokerage/market/products",
    (request) => {
      const params = queryOf(request);
      const limit = intParam(params, "limit", 0, 1000);
      const offset = intParam(params, "offset", 0, 1_000_000) ?? 0;
      const type = params.get("product_type");
      if (type !== null && type !== "SPOT" && type !== "FUTURE" && type !== "UNKNOWN_PRODUCT_TYPE") throw invalid("Invalid product_type");
      const ids = params.getAll("product_ids");
      const markets = type === "FUTURE" ? [] : MARKETS.filter((m) => ids.length === 0 || ids.includes(productIdOf(m)));
      const page = markets.slice(offset, limit === undefined || limit === 0 ? undefined : offset + limit);
      return { products: page.map((m) => productView(request.engine, m)), num_products: page.length };
    },
  ],
  [
    "GET /api/v3/brokerage/accounts",
    (request) => {
      const account = authenticated(request);
      const params = queryOf(request);
      const limit = intParam(params, "limit", 1, 250) ?? 49;
      const cursor = params.get("cursor") ?? "";
      if (cursor !== "" && !/^[0-9]{1,3}$/.test(cursor)) throw invalid("Invalid cursor");
      const offset = cursor === "" ? 0 : Number(cursor);
      const record = request.engine.openAccount(account);
      const page = ASSETS.slice(offset, offset + limit);
      const hasNext = offset + limit < ASSETS.length;
      return {
        accounts: page.map((asset) => walletView(record, asset)),
        has_next: hasNext,
        cursor: hasNext ? String(offset + limit) : "",
        size: page.length,
      };
    },
  ],
  [
    "GET /api/v3/brokerage/transaction_summary",
    (request) => {
      authenticated(request);
      return {
        total_volume: 0,
        total_fees: 0,
        fee_tier: { pricing_tier: "Demo", usd_from: "0", usd_to: "", taker_fee_rate: "0", maker_fee_rate: "0", aop_from: "", aop_to: "" },
        margin_rate: null,
        goods_and_services_tax: null,
        advanced_trade_only_volume: 0,
        advanced_trade_only_fees: 0,
        coinbase_pro_volume: 0,
        coinbase_pro_fees: 0,
        total_balance: "",
        has_promo_fee: false,
      };
    },
  ],
  [
    "POST /api/v3/brokerage/orders",
    async (request) => {
      const account = authenticated(request);
      const body = await jsonBody(request);
      try {
        const plan = readOrder(body);
        const order = placeOrder(request.engine, account, plan);
        return {
          success: true,
          success_response: {
            order_id: uuidOf(`order/${order.orderId}`),
            product_id: productIdOf(plan.market),
            side: order.side,
            client_order_id: order.clientOrderId,
            attached_order_id: "",
          },
          order_configuration: plan.configuration,
        };
      } catch (error) {
        if (!(error instanceof OrderFailure)) throw error;
        return {
          success: false,
          failure_reason: "UNKNOWN_FAILURE_REASON",
          order_id: "",
          error_response: {
            error: error.error,
            message: error.message,
            error_details: error.message,
            preview_failure_reason: error.previewReason,
            new_order_failure_reason: "UNKNOWN_FAILURE_REASON",
          },
          order_configuration: body.order_configuration,
        };
      }
    },
  ],
  ["GET /v2/time", ({ now }) => ({ data: { iso: iso(now).replace(/\.\d{3}Z$/, "Z"), epoch: Math.floor(now / 1000) } })],
  // Coinbase's fiat currencies: the demo trades none.
  ["GET /v2/currencies", () => ({ data: [] })],
  [
    "GET /v2/currencies/crypto",
    () => ({
      data: ASSETS.map((asset, index) => ({
        asset_id: uuidOf(`asset/${asset}`),
        code: asset,
        name: ASSET_NAMES[asset].name,
        color: ASSET_NAMES[asset].color,
        sort_index: index,
        exponent: 8,
        type: "crypto",
        address_regex: ASSET_NAMES[asset].addressRegex,
      })),
    }),
  ],
  [
    "GET /v2/exchange-rates",
    (request) => {
      const params = queryOf(request);
      const currency = params.get("currency") ?? "USDT";
      if (params.getAll("currency").length > 1 || !isAsset(currency)) throw invalid("Invalid currency");
      const base = valueInQuote(request.engine, currency);
      const rates: Record<string, string> = {};
      for (const asset of ASSETS) rates[asset] = plain(div(base, valueInQuote(request.engine, asset)));
      return { data: { currency, rates } };
    },
  ],
]);

for (const route of COINBASE_ROUTES) {
  if (!HANDLERS.has(`${String(route.method)} ${route.path}`)) throw new Error(`coinbase venue: route ${route.path} has no handler`);
}

export const coinbaseVenue: Venue = {
  name: "coinbase",
  routes: COINBASE_ROUTES,
  async handle(request: VenueRequest): Promise<void> {
    const handler = HANDLERS.get(`${request.method} ${request.path}`);
    try {
      if (handler === undefined) throw new CoinbaseError(404, "NOT_FOUND", "Not found");
      sendVenueJson(request.res, 200, await handler(request));
    } catch (error) {
      if (error instanceof RequestAbortedError) throw error;
      if (error instanceof CoinbaseError) {
        sendError(request, error);
        return;
      }
      // The shared HTTP helpers (the body reader) throw the Binance-shaped errors.
      if (error instanceof ExchangeError && error.status < 500) {
        sendError(request, new CoinbaseError(error.status, "INVALID_ARGUMENT", error.message));
        return;
      }
      // An internal fault: answer in Coinbase's shape, then let the exchange log it.
      if (!request.res.headersSent) sendError(request, new CoinbaseError(500, "INTERNAL", "Internal error"));
      throw error;
    }
  },
};
