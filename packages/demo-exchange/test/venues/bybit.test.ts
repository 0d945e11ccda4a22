/**
 * The demo exchange's Bybit-shaped API (venues/bybit.ts), called directly with gateway identity
 * headers: Bybit's shapes and codes, the shared order book and ledger underneath, and no private
 * answer without a valid identity that grants the route's permission.
 */
import { describe, expect, it } from "vitest";
import { bybitVenue } from "../../src/exchange/venues/bybit.js";
import { Harness } from "../harness.js";

interface BybitBody<T = Record<string, unknown>> {
  retCode: number;
  retMsg: string;
  result: T;
  retExtInfo: unknown;
  time: number;
}

const LIMIT_BUY = { category: "spot", symbol: "BTCUSDT", side: "Buy", orderType: "Limit", qty: "0.01", price: "59000" };

async function bybit<T = Record<string, unknown>>(h: Harness, call: Parameters<Harness["call"]>[0]): Promise<{ status: number; body: BybitBody<T> }> {
  const reply = await h.call(call);
  return { status: reply.status, body: reply.json<BybitBody<T>>() };
}

function order(h: Harness, json: unknown, account = "alice", scopes?: string): Promise<{ status: number; body: BybitBody }> {
  return bybit(h, { method: "POST", url: "/v5/order/create", account, json, ...(scopes === undefined ? {} : { scopes }) });
}

/** The retCode and retMsg of an answer that must be HTTP 200 (as Bybit answers its errors). */
async function codeOf(reply: Promise<{ status: number; body: BybitBody<unknown> }>): Promise<number> {
  const { status, body } = await reply;
  expect(status).toBe(200);
  expect(body.retExtInfo).toEqual({});
  return body.retCode;
}

describe("the Bybit venue's routes", () => {
  it("every route is a Bybit route with a permission", () => {
    expect(bybitVenue.routes.map((r) => [r.method, r.path, r.permission, r.dialect])).toEqual([
      ["GET", "/v5/market/time", "public", "bybit"],
      ["GET", "/v5/market/instruments-info", "public", "bybit"],
      ["GET", "/v5/user/query-api", "read", "bybit"],
      ["GET", "/v5/account/info", "read", "bybit"],
      ["GET", "/v5/asset/coin/query-info", "read", "bybit"],
      ["GET", "/v5/account/wallet-balance", "read", "bybit"],
      ["POST", "/v5/order/create", "trade", "bybit"],
    ]);
  });

  it("every private route refuses a request without a gateway identity: 10003", async () => {
    const h = new Harness();
    for (const [method, url] of [
      ["GET", "/v5/user/query-api"],
      ["GET", "/v5/account/info"],
      ["GET", "/v5/asset/coin/query-info"],
      ["GET", "/v5/account/wallet-balance?accountType=UNIFIED"],
      ["POST", "/v5/order/create"],
    ] as const) {
      const reply = await bybit(h, { method, url, ...(method === "POST" ? { json: LIMIT_BUY } : {}) });
      expect(reply, `${method} ${url}`).toEqual({ status: 200, body: { retCode: 10003, retMsg: "API key is invalid.", result: {}, retExtInfo: {}, time: h.time } });
    }
    expect(h.exchange.accounts()).toEqual([h.exchange.marketMakerAccount]);
  });

  it("an identity signed with another secret is no identity", async () => {
    const h = new Harness();
    const reply = bybit(h, { url: "/v5/account/info", account: "alice", secret: "another-secret-that-is-32-bytes-long!!" });
    expect(await codeOf(reply)).toBe(10003);
  });

  it("an identity without the route's permission: 10005", async () => {
    const h = new Harness();
    expect(await codeOf(order(h, LIMIT_BUY, "alice", "read"))).toBe(10005);
    expect(h.exchange.openOrders("alice")).toEqual([]);
  });
});

describe("public endpoints", () => {
  it("server time", async () => {
    const h = new Harness();
    const { body } = await bybit(h, { url: "/v5/market/time" });
    expect(body).toEqual({ retCode: 0, retMsg: "OK", result: { timeSecond: String(h.time / 1000), timeNano: `${h.time}000000` }, retExtInfo: {}, time: h.time });
  });

  it("spot instruments; other categories have none", async () => {
    const h = new Harness();
    const { body } = await bybit<{ category: string; list: Record<string, unknown>[] }>(h, { url: "/v5/market/instruments-info?category=spot" });
    expect(body.result.list.map((i) => i.symbol)).toEqual(["BTCUSDT", "ETHUSDT"]);
    expect(body.result.list[0]).toMatchObject({
      baseCoin: "BTC",
      quoteCoin: "USDT",
      status: "Trading",
      lotSizeFilter: { basePrecision: "0.00001", minOrderQty: "0.00001", minOrderAmt: "5" },
      priceFilter: { tickSize: "0.01" },
    });
    expect((await bybit<{ list: unknown[] }>(h, { url: "/v5/market/instruments-info?category=spot&symbol=ETHUSDT" })).body.result.list).toHaveLength(1);
    expect((await bybit<{ list: unknown[] }>(h, { url: "/v5/market/instruments-info?category=linear" })).body.result.list).toEqual([]);
    expect(await codeOf(bybit(h, { url: "/v5/market/instruments-info" }))).toBe(10001);
    expect(await codeOf(bybit(h, { url: "/v5/market/instruments-info?category=SPOT" }))).toBe(10001);
  });
});

describe("private endpoints", () => {
  it("the calling key's information: read-only unless it may trade", async () => {
    const h = new Harness();
    const trader = await bybit(h, { url: "/v5/user/query-api", account: "alice" });
    expect(trader.body.result).toMatchObject({ apiKey: "pk_test_alice", readOnly: 0, uta: 1, permissions: { Spot: ["SpotTrade"] } });
    const reader = await bybit(h, { url: "/v5/user/query-api", account: "bob", scopes: "read" });
    expect(reader.body.result).toMatchObject({ readOnly: 1, permissions: { Spot: [] } });
  });

  it("the account is a unified trading account", async () => {
    const h = new Harness();
    expect((await bybit(h, { url: "/v5/account/info", account: "alice" })).body.result).toMatchObject({ unifiedMarginStatus: 6, marginMode: "REGULAR_MARGIN" });
  });

  it("coins, with their chains", async () => {
    const h = new Harness();
    const { body } = await bybit<{ rows: { coin: string; chains: { chain: string }[] }[] }>(h, { url: "/v5/asset/coin/query-info?coin=USDT", account: "alice" });
    expect(body.result.rows.map((r) => [r.coin, r.chains.map((c) => c.chain)])).toEqual([["USDT", ["ETH", "TRX", "BSC"]]]);
  });

  it("the wallet balance: the demo's starting balances, in Bybit's shape", async () => {
    const h = new Harness();
    const { body } = await bybit<{ list: { accountType: string; totalEquity: string; coin: Record<string, string>[] }[] }>(h, {
      url: "/v5/account/wallet-balance?accountType=UNIFIED",
      account: "alice",
    });
    const account = body.result.list[0];
    expect(account?.accountType).toBe("UNIFIED");
    expect(account?.totalEquity).toBe("280000");
    expect(account?.coin.map((c) => [c.coin, c.walletBalance, c.availableToWithdraw, c.locked])).toEqual([
      ["BTC", "2", "2", "0"],
      ["ETH", "20", "20", "0"],
      ["USDT", "100000", "100000", "0"],
    ]);
    const filtered = await bybit<{ list: { coin: { coin: string }[] }[] }>(h, { url: "/v5/account/wallet-balance?accountType=UNIFIED&coin=ETH", account: "alice" });
    expect(filtered.body.result.list[0]?.coin.map((c) => c.coin)).toEqual(["ETH"]);
    expect(await codeOf(bybit(h, { url: "/v5/account/wallet-balance", account: "alice" }))).toBe(10001);
    expect(await codeOf(bybit(h, { url: "/v5/account/wallet-balance?accountType=SPOT", account: "alice" }))).toBe(10001);
  });

  it("a limit order rests and locks its funds", async () => {
    const h = new Harness();
    const { body } = await order(h, { ...LIMIT_BUY, orderLinkId: "mine-1" });
    expect(body).toMatchObject({ retCode: 0, retMsg: "OK", result: { orderLinkId: "mine-1" } });
    expect((body.result as { orderId: string }).orderId).toMatch(/^[0-9]+$/);
    expect(h.exchange.openOrders("alice")).toMatchObject([{ symbol: "BTCUSDT", side: "BUY", clientOrderId: "mine-1" }]);
    expect(h.exchange.balances("alice")?.USDT).toEqual({ free: "99410.00000000", locked: "590.00000000" });
  });

  it("a market buy spends quote coin by default (marketUnit quoteCoin), or buys base with baseCoin", async () => {
    const h = new Harness();
    // 6001 USDT buys the first ask level: 0.1 BTC at 60010.
    expect(await codeOf(order(h, { category: "spot", symbol: "BTCUSDT", side: "Buy", orderType: "Market", qty: "6001" }))).toBe(0);
    expect(h.exchange.balances("alice")?.BTC.free).toBe("2.10000000");
    expect(await codeOf(order(h, { category: "spot", symbol: "BTCUSDT", side: "Buy", orderType: "Market", qty: "0.1", marketUnit: "baseCoin" }))).toBe(0);
    expect(h.exchange.balances("alice")?.BTC.free).toBe("2.20000000");
    expect(await codeOf(order(h, { category: "spot", symbol: "BTCUSDT", side: "Sell", orderType: "Market", qty: "0.2" }))).toBe(0);
    expect(h.exchange.balances("alice")?.BTC.free).toBe("2.00000000");
  });

  it("order refusals: Bybit's spot codes, HTTP 200, and nothing happens", async () => {
    const h = new Harness();
    const { symbol: _s, ...noSymbol } = LIMIT_BUY;
    const cases: [Record<string, unknown>, number][] = [
      [noSymbol, 170105],
      [{ ...LIMIT_BUY, category: "linear" }, 10001],
      [{ ...LIMIT_BUY, symbol: "BTCEUR" }, 170121],
      [{ ...LIMIT_BUY, side: "buy" }, 170117],
      [{ ...LIMIT_BUY, orderType: "StopLimit" }, 170116],
      [{ ...LIMIT_BUY, timeInForce: "PostOnly" }, 170115],
      [{ ...LIMIT_BUY, qty: "0.000000001" }, 170137],
      [{ ...LIMIT_BUY, price: "59000.000000001" }, 170134],
      [{ ...LIMIT_BUY, price: "abc" }, 170130],
      [{ ...LIMIT_BUY, qty: "0.000001" }, 170136],
      [{ ...LIMIT_BUY, qty: "9001" }, 170135],
      [{ ...LIMIT_BUY, price: "1", qty: "0.001" }, 170140],
      [{ ...LIMIT_BUY, qty: "10" }, 170131],
      [{ ...LIMIT_BUY, orderLinkId: "has spaces" }, 10001],
      [{ ...LIMIT_BUY, isLeverage: 1 }, 10001],
    ];
    for (const [json, retCode] of cases) expect(await codeOf(order(h, json)), JSON.stringify(json)).toBe(retCode);
    expect(await codeOf(bybit(h, { method: "POST", url: "/v5/order/create", account: "alice", body: "{", contentType: "application/json" }))).toBe(10001);
    expect(h.exchange.openOrders("alice")).toEqual([]);
    expect(await codeOf(order(h, { ...LIMIT_BUY, orderLinkId: "dup" }))).toBe(0);
    expect(await codeOf(order(h, { ...LIMIT_BUY, orderLinkId: "dup" }))).toBe(170141);
    expect(h.exchange.openOrders("alice")).toHaveLength(1);
  });
});
