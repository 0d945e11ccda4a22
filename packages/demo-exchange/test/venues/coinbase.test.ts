/**
 * The demo exchange's Coinbase-shaped API (venues/coinbase.ts), called directly with gateway
 * identity headers: Coinbase's response shapes over the shared engine, its error shapes, and
 * refusal of any request without a valid identity granting the route's permission.
 */
import { describe, expect, it } from "vitest";
import { COINBASE_ROUTES } from "../../src/exchange/venues/coinbase.js";
import { Harness, type Reply } from "../harness.js";

const ORDERS = "/api/v3/brokerage/orders";
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-a[0-9a-f]{3}-[0-9a-f]{12}$/;

interface CoinbaseErrorBody {
  error: string;
  error_details: string;
  message: string;
}

interface Wallet {
  uuid: string;
  name: string;
  currency: string;
  available_balance: { value: string; currency: string };
  hold: { value: string; currency: string };
  type: string;
  active: boolean;
  ready: boolean;
}

interface OrderReply {
  success: boolean;
  success_response?: { order_id: string; product_id: string; side: string; client_order_id: string };
  failure_reason?: string;
  error_response?: { error: string; message: string; preview_failure_reason: string };
  order_configuration: Record<string, unknown>;
}

function errorOf(reply: Reply): CoinbaseErrorBody & { status: number } {
  return { status: reply.status, ...reply.json<CoinbaseErrorBody>() };
}

function order(h: Harness, account: string, body: unknown): Promise<Reply> {
  return h.call({ method: "POST", url: ORDERS, account, json: body });
}

async function wallets(h: Harness, account: string, query = ""): Promise<Record<string, Wallet>> {
  const reply = await h.get(`/api/v3/brokerage/accounts${query}`, account);
  expect(reply.status).toBe(200);
  return Object.fromEntries(reply.json<{ accounts: Wallet[] }>().accounts.map((w) => [w.currency, w]));
}

const limitBuy = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  client_order_id: "c-1",
  product_id: "BTC-USDT",
  side: "BUY",
  order_configuration: { limit_limit_gtc: { base_size: "0.01", limit_price: "50000", post_only: false } },
  ...overrides,
});

describe("routes", () => {
  it("every route carries the coinbase dialect and a permission", () => {
    expect(COINBASE_ROUTES.length).toBeGreaterThan(0);
    for (const route of COINBASE_ROUTES) expect(route.dialect, route.path).toBe("coinbase");
    const permissions = Object.fromEntries(COINBASE_ROUTES.map((r) => [`${String(r.method)} ${r.path}`, r.permission]));
    expect(permissions).toMatchObject({
      "GET /api/v3/brokerage/accounts": "read",
      "GET /api/v3/brokerage/transaction_summary": "read",
      "POST /api/v3/brokerage/orders": "trade",
      "GET /api/v3/brokerage/market/products": "public",
      "GET /api/v3/brokerage/time": "public",
    });
  });

  it("private routes refuse a request without a valid identity, in Coinbase's shape", async () => {
    const h = new Harness();
    const unauthorized = { status: 401, error: "unauthorized" };
    for (const [method, url] of [
      ["GET", "/api/v3/brokerage/accounts"],
      ["GET", "/api/v3/brokerage/transaction_summary"],
      ["POST", ORDERS],
    ] as const) {
      expect(errorOf(await h.call({ method, url })), `${method} ${url}`).toMatchObject(unauthorized);
      // An identity without the route's permission.
      expect(errorOf(await h.call({ method, url, account: "alice", scopes: "withdraw" })), `${method} ${url}`).toMatchObject(unauthorized);
      // An identity signed with another secret.
      expect(errorOf(await h.call({ method, url, account: "alice", secret: "some-other-secret-that-is-32-bytes-long!" }))).toMatchObject(unauthorized);
    }
    expect(h.exchange.accounts()).toEqual([h.exchange.marketMakerAccount]);
  });
});

describe("public data", () => {
  it("server time (v3 and v2)", async () => {
    const h = new Harness();
    expect((await h.get("/api/v3/brokerage/time")).json()).toEqual({
      iso: new Date(h.time).toISOString(),
      epochSeconds: String(Math.floor(h.time / 1000)),
      epochMillis: String(h.time),
    });
    expect((await h.get("/v2/time")).json()).toEqual({ data: { iso: "2023-11-14T22:13:20Z", epoch: Math.floor(h.time / 1000) } });
  });

  it("products: the engine's markets under Coinbase ids, with their increments and limits", async () => {
    const h = new Harness();
    const reply = await h.get("/api/v3/brokerage/market/products");
    const body = reply.json<{ products: Record<string, unknown>[]; num_products: number }>();
    expect(body.num_products).toBe(2);
    expect(body.products[0]).toMatchObject({
      product_id: "BTC-USDT",
      price: "60000",
      base_increment: "0.00001",
      quote_increment: "0.01",
      price_increment: "0.01",
      base_min_size: "0.00001",
      base_max_size: "9000",
      quote_min_size: "5",
      product_type: "SPOT",
      base_currency_id: "BTC",
      quote_currency_id: "USDT",
      status: "online",
      trading_disabled: false,
    });
    expect(body.products[1]).toMatchObject({ product_id: "ETH-USDT", price: "3000", base_increment: "0.0001" });
  });

  it("products: filters by type and id, and pages", async () => {
    const h = new Harness();
    const ids = async (query: string): Promise<string[]> =>
      (await h.get(`/api/v3/brokerage/market/products${query}`)).json<{ products: { product_id: string }[] }>().products.map((p) => p.product_id);
    expect(await ids("?product_type=FUTURE")).toEqual([]);
    expect(await ids("?product_type=FUTURE&contract_expiry_type=PERPETUAL")).toEqual([]);
    expect(await ids("?product_type=SPOT")).toEqual(["BTC-USDT", "ETH-USDT"]);
    expect(await ids("?product_ids=ETH-USDT")).toEqual(["ETH-USDT"]);
    expect(await ids("?product_ids=ETH-USDT&product_ids=BTC-USDT")).toEqual(["BTC-USDT", "ETH-USDT"]);
    expect(await ids("?limit=1&offset=1")).toEqual(["ETH-USDT"]);
    expect(errorOf(await h.get("/api/v3/brokerage/market/products?product_type=BOND"))).toMatchObject({ status: 400, error: "INVALID_ARGUMENT" });
    expect(errorOf(await h.get("/api/v3/brokerage/market/products?limit=-1"))).toMatchObject({ status: 400, error: "INVALID_ARGUMENT" });
  });

  it("currencies (v2): no fiat, the three crypto assets, and exchange rates from last prices", async () => {
    const h = new Harness();
    expect((await h.get("/v2/currencies")).json()).toEqual({ data: [] });
    const crypto = (await h.get("/v2/currencies/crypto")).json<{ data: { code: string; name: string; exponent: number; type: string }[] }>().data;
    expect(crypto.map((c) => [c.code, c.name, c.exponent, c.type])).toEqual([
      ["BTC", "Bitcoin", 8, "crypto"],
      ["ETH", "Ethereum", 8, "crypto"],
      ["USDT", "Tether", 8, "crypto"],
    ]);
    expect((await h.get("/v2/exchange-rates")).json()).toEqual({ data: { currency: "USDT", rates: { BTC: "0.00001666", ETH: "0.00033333", USDT: "1" } } });
    expect((await h.get("/v2/exchange-rates?currency=BTC")).json()).toEqual({ data: { currency: "BTC", rates: { BTC: "1", ETH: "20", USDT: "60000" } } });
    const bad = await h.get("/v2/exchange-rates?currency=DOGE");
    expect(bad.status).toBe(400);
    expect(bad.json()).toEqual({ errors: [{ id: "invalid_request", message: "Invalid currency" }] });
  });
});

describe("accounts", () => {
  it("one wallet per asset with the demo balances, available and on hold", async () => {
    const h = new Harness();
    const reply = await h.get("/api/v3/brokerage/accounts?limit=250", "alice");
    const body = reply.json<{ accounts: Wallet[]; has_next: boolean; cursor: string; size: number }>();
    expect(body).toMatchObject({ has_next: false, cursor: "", size: 3 });
    const byAsset = Object.fromEntries(body.accounts.map((w) => [w.currency, w]));
    expect(byAsset.BTC).toMatchObject({
      name: "BTC Wallet",
      available_balance: { value: "2", currency: "BTC" },
      hold: { value: "0", currency: "BTC" },
      type: "ACCOUNT_TYPE_CRYPTO",
      active: true,
      ready: true,
    });
    expect(byAsset.USDT?.available_balance.value).toBe("100000");
    expect(byAsset.BTC?.uuid).toMatch(UUID_RE);
    // Stable per account and asset, different between accounts.
    expect((await wallets(h, "alice")).BTC?.uuid).toBe(byAsset.BTC?.uuid);
    expect((await wallets(h, "bob")).BTC?.uuid).not.toBe(byAsset.BTC?.uuid);
  });

  it("pages with limit and cursor", async () => {
    const h = new Harness();
    const first = (await h.get("/api/v3/brokerage/accounts?limit=2", "alice")).json<{ accounts: Wallet[]; has_next: boolean; cursor: string }>();
    expect(first.accounts.map((w) => w.currency)).toEqual(["BTC", "ETH"]);
    expect(first).toMatchObject({ has_next: true, cursor: "2" });
    const second = (await h.get(`/api/v3/brokerage/accounts?limit=2&cursor=${first.cursor}`, "alice")).json<{ accounts: Wallet[]; has_next: boolean }>();
    expect(second.accounts.map((w) => w.currency)).toEqual(["USDT"]);
    expect(second.has_next).toBe(false);
    for (const query of ["?limit=0", "?limit=251", "?limit=x", "?limit=1&limit=2", "?cursor=abc"]) {
      expect(errorOf(await h.get(`/api/v3/brokerage/accounts${query}`, "alice")), query).toMatchObject({ status: 400, error: "INVALID_ARGUMENT" });
    }
  });

  it("transaction summary: no fees on the demo", async () => {
    const h = new Harness();
    const body = (await h.get("/api/v3/brokerage/transaction_summary", "alice")).json<{ fee_tier: Record<string, string> }>();
    expect(body.fee_tier).toMatchObject({ taker_fee_rate: "0", maker_fee_rate: "0" });
  });
});

describe("orders", () => {
  it("a GTC limit order rests and holds its funds", async () => {
    const h = new Harness();
    const reply = await order(h, "alice", limitBuy());
    expect(reply.status).toBe(200);
    const body = reply.json<OrderReply>();
    expect(body).toMatchObject({
      success: true,
      success_response: { product_id: "BTC-USDT", side: "BUY", client_order_id: "c-1" },
      order_configuration: { limit_limit_gtc: { base_size: "0.01", limit_price: "50000", post_only: false } },
    });
    expect(body.success_response?.order_id).toMatch(UUID_RE);
    expect(h.exchange.openOrders("alice")).toEqual([expect.objectContaining({ symbol: "BTCUSDT", side: "BUY", price: "50000.00000000", origQty: "0.01000000" })]);
    const w = await wallets(h, "alice");
    expect([w.USDT?.available_balance.value, w.USDT?.hold.value]).toEqual(["99500", "500"]);
  });

  it("the same client_order_id again answers the same order (Coinbase's idempotency)", async () => {
    const h = new Harness();
    const first = (await order(h, "alice", limitBuy())).json<OrderReply>();
    const again = (await order(h, "alice", limitBuy())).json<OrderReply>();
    expect(again.success_response?.order_id).toBe(first.success_response?.order_id);
    expect(h.exchange.openOrders("alice")).toHaveLength(1);
  });

  it("market orders by base size and by quote size fill against the book", async () => {
    const h = new Harness();
    const sell = await order(h, "alice", { client_order_id: "m-1", product_id: "ETH-USDT", side: "SELL", order_configuration: { market_market_ioc: { base_size: "1" } } });
    expect(sell.json<OrderReply>().success).toBe(true);
    const buy = await order(h, "alice", { client_order_id: "m-2", product_id: "BTC-USDT", side: "BUY", order_configuration: { market_market_ioc: { quote_size: "1000" } } });
    expect(buy.json<OrderReply>().success).toBe(true);
    const w = await wallets(h, "alice");
    expect(w.ETH?.available_balance.value).toBe("19");
    expect(Number(w.BTC?.available_balance.value)).toBeGreaterThan(2);
    expect(h.exchange.openOrders("alice")).toEqual([]);
  });

  it("FOK and IOC limit orders never rest", async () => {
    const h = new Harness();
    const fok = { limit_limit_fok: { base_size: "1", limit_price: "60010" } }; // only 0.1 rests at 60010
    expect((await order(h, "alice", limitBuy({ client_order_id: "f", order_configuration: fok }))).json<OrderReply>().success).toBe(true);
    const ioc = { sor_limit_ioc: { base_size: "0.05", limit_price: "60010" } };
    expect((await order(h, "alice", limitBuy({ client_order_id: "i", order_configuration: ioc }))).json<OrderReply>().success).toBe(true);
    expect(h.exchange.openOrders("alice")).toEqual([]);
    expect((await wallets(h, "alice")).BTC?.available_balance.value).toBe("2.05");
  });

  it("declined orders: HTTP 200, success false, Coinbase's failure reasons", async () => {
    const h = new Harness();
    const declined = async (body: Record<string, unknown>): Promise<[string | undefined, string | undefined]> => {
      const reply = await order(h, "alice", body);
      expect(reply.status).toBe(200);
      const parsed = reply.json<OrderReply>();
      expect(parsed.success).toBe(false);
      expect(parsed.failure_reason).toBe("UNKNOWN_FAILURE_REASON");
      return [parsed.error_response?.error, parsed.error_response?.preview_failure_reason];
    };
    const gtc = (base_size: string, limit_price: string, post_only = false): Record<string, unknown> => ({ limit_limit_gtc: { base_size, limit_price, post_only } });
    expect(await declined(limitBuy({ order_configuration: gtc("5", "59000") }))).toEqual(["INSUFFICIENT_FUND", "PREVIEW_INSUFFICIENT_FUND"]);
    expect(await declined(limitBuy({ order_configuration: gtc("0.01", "50000.001") }))).toEqual(["INVALID_LIMIT_PRICE", "PREVIEW_INVALID_LIMIT_PRICE_PRECISION"]);
    expect(await declined(limitBuy({ order_configuration: gtc("0.01", "2000000") }))).toEqual(["INVALID_LIMIT_PRICE", "PREVIEW_INVALID_LIMIT_PRICE"]);
    expect(await declined(limitBuy({ order_configuration: gtc("0.000001", "50000") }))).toEqual(["INVALID_SIZE", "PREVIEW_INVALID_BASE_SIZE_TOO_SMALL"]);
    expect(await declined(limitBuy({ order_configuration: gtc("10000", "50000") }))).toEqual(["INVALID_SIZE", "PREVIEW_INVALID_BASE_SIZE_TOO_LARGE"]);
    expect(await declined(limitBuy({ order_configuration: gtc("0.000015", "50000") }))).toEqual(["INVALID_SIZE", "PREVIEW_INVALID_SIZE_PRECISION"]);
    expect(await declined(limitBuy({ order_configuration: gtc("0.000000001", "50000") }))).toEqual(["INVALID_ARGUMENT", "PREVIEW_INVALID_SIZE_PRECISION"]);
    expect(await declined(limitBuy({ order_configuration: gtc("0.00001", "100") }))).toEqual(["INVALID_SIZE", "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL"]);
    expect(await declined(limitBuy({ order_configuration: gtc("0.01", "60010", true) }))).toEqual(["INVALID_LIMIT_PRICE_POST_ONLY", "PREVIEW_INVALID_LIMIT_PRICE_POST_ONLY"]);
    const market = (config: Record<string, string>): Record<string, unknown> => limitBuy({ order_configuration: { market_market_ioc: config } });
    expect(await declined(market({ quote_size: "1" }))).toEqual(["INVALID_SIZE", "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL"]);
    expect(await declined(market({ quote_size: "10.001" }))).toEqual(["INVALID_SIZE", "PREVIEW_INVALID_QUOTE_SIZE_PRECISION"]);
    expect(h.exchange.openOrders("alice")).toEqual([]);
    // A post-only order that would not trade rests.
    expect((await order(h, "alice", limitBuy({ client_order_id: "po", order_configuration: gtc("0.01", "59000", true) }))).json<OrderReply>().success).toBe(true);
  });

  it("malformed requests are 400 INVALID_ARGUMENT (or UNSUPPORTED_ORDER_CONFIGURATION)", async () => {
    const h = new Harness();
    const refused = async (body: unknown): Promise<string> => {
      const reply = typeof body === "string" ? await h.call({ method: "POST", url: ORDERS, account: "alice", body, contentType: "application/json" }) : await order(h, "alice", body);
      const e = errorOf(reply);
      expect(e.status).toBe(400);
      expect(typeof e.message).toBe("string");
      return e.error;
    };
    expect(await refused("{not json")).toBe("INVALID_ARGUMENT");
    expect(await refused("[]")).toBe("INVALID_ARGUMENT");
    expect(await refused(limitBuy({ client_order_id: undefined }))).toBe("INVALID_ARGUMENT");
    expect(await refused(limitBuy({ client_order_id: "has space" }))).toBe("INVALID_ARGUMENT");
    expect(await refused(limitBuy({ product_id: "DOGE-USD" }))).toBe("INVALID_ARGUMENT");
    expect(await refused(limitBuy({ side: "buy" }))).toBe("INVALID_ARGUMENT");
    expect(await refused(limitBuy({ colour: "red" }))).toBe("INVALID_ARGUMENT");
    expect(await refused(limitBuy({ order_configuration: {} }))).toBe("INVALID_ARGUMENT");
    expect(await refused(limitBuy({ order_configuration: { limit_limit_gtc: { base_size: "1", limit_price: "1" }, limit_limit_fok: {} } }))).toBe("INVALID_ARGUMENT");
    expect(await refused(limitBuy({ order_configuration: { limit_limit_gtc: { base_size: 1, limit_price: "50000" } } }))).toBe("INVALID_ARGUMENT");
    expect(await refused(limitBuy({ order_configuration: { limit_limit_gtc: { base_size: "1e3", limit_price: "50000" } } }))).toBe("INVALID_ARGUMENT");
    expect(await refused(limitBuy({ order_configuration: { limit_limit_gtc: { limit_price: "50000" } } }))).toBe("INVALID_ARGUMENT");
    expect(await refused(limitBuy({ order_configuration: { limit_limit_gtc: { base_size: "1", limit_price: "5", post_only: "yes" } } }))).toBe("INVALID_ARGUMENT");
    expect(await refused(limitBuy({ order_configuration: { limit_limit_gtc: { base_size: "1", limit_price: "5", extra: 1 } } }))).toBe("INVALID_ARGUMENT");
    expect(await refused(limitBuy({ order_configuration: { market_market_ioc: { base_size: "1", quote_size: "1" } } }))).toBe("INVALID_ARGUMENT");
    expect(await refused(limitBuy({ order_configuration: { market_market_ioc: {} } }))).toBe("INVALID_ARGUMENT");
    expect(await refused(limitBuy({ order_configuration: { made_up_type: {} } }))).toBe("INVALID_ARGUMENT");
    expect(await refused(limitBuy({ order_configuration: { stop_limit_stop_limit_gtc: {} } }))).toBe("UNSUPPORTED_ORDER_CONFIGURATION");
    expect(await refused(limitBuy({ order_configuration: { limit_limit_gtc: { quote_size: "100", limit_price: "50000" } } }))).toBe("UNSUPPORTED_ORDER_CONFIGURATION");
    expect(await refused(limitBuy({ leverage: "2" }))).toBe("UNSUPPORTED_ORDER_CONFIGURATION");
    expect(h.exchange.openOrders("alice")).toEqual([]);
  });

  it("a body over the exchange's limit is 413 in Coinbase's shape, and closes the connection", async () => {
    const h = new Harness();
    const reply = await h.call({ method: "POST", url: ORDERS, account: "alice", body: "x".repeat(70_000), contentType: "application/json" });
    expect(reply.status).toBe(413);
    expect(reply.json()).toMatchObject({ error: "INVALID_ARGUMENT" });
    expect(reply.headers.connection).toBe("close");
  });
});
