/**
 * Public endpoints (no identity needed), the route table, and how unknown routes are answered.
 */
import { describe, expect, it } from "vitest";
import { RouteTable } from "portcullis";
import { BINANCE_ROUTES, DEMO_EXCHANGE_ROUTES } from "../src/exchange/routes.js";
import { VENUES } from "../src/exchange/venues/index.js";
import { Harness, T0, errorOf, type DepthBody } from "./harness.js";

interface FilterBody {
  filterType: string;
  [key: string]: unknown;
}
interface SymbolBody {
  symbol: string;
  status: string;
  baseAsset: string;
  quoteAsset: string;
  baseAssetPrecision: number;
  quoteAssetPrecision: number;
  orderTypes: string[];
  filters: FilterBody[];
}
interface ExchangeInfoBody {
  timezone: string;
  serverTime: number;
  rateLimits: { rateLimitType: string }[];
  symbols: SymbolBody[];
}

describe("public endpoints", () => {
  it("GET /api/v3/time answers the server time", async () => {
    const h = new Harness();
    const reply = await h.get("/api/v3/time");
    expect(reply.status).toBe(200);
    expect(reply.headers["content-type"]).toMatch(/^application\/json/);
    expect(reply.json()).toEqual({ serverTime: T0 });
  });

  it("GET /api/v3/exchangeInfo lists both symbols with Binance filters", async () => {
    const h = new Harness();
    const info = (await h.get("/api/v3/exchangeInfo")).json<ExchangeInfoBody>();
    expect(info.timezone).toBe("UTC");
    expect(info.serverTime).toBe(T0);
    expect(info.rateLimits.map((r) => r.rateLimitType)).toContain("REQUEST_WEIGHT");
    expect(info.symbols.map((s) => s.symbol)).toEqual(["BTCUSDT", "ETHUSDT"]);
    const btc = info.symbols[0];
    expect(btc).toMatchObject({
      status: "TRADING",
      baseAsset: "BTC",
      quoteAsset: "USDT",
      baseAssetPrecision: 8,
      quoteAssetPrecision: 8,
      orderTypes: ["LIMIT", "MARKET"],
    });
    expect(btc?.filters).toEqual([
      { filterType: "PRICE_FILTER", minPrice: "0.01000000", maxPrice: "1000000.00000000", tickSize: "0.01000000" },
      { filterType: "LOT_SIZE", minQty: "0.00001000", maxQty: "9000.00000000", stepSize: "0.00001000" },
      {
        filterType: "NOTIONAL",
        minNotional: "5.00000000",
        applyMinToMarket: true,
        maxNotional: "9000000.00000000",
        applyMaxToMarket: false,
        avgPriceMins: 0,
      },
    ]);
  });

  it("exchangeInfo filters by symbol and symbols", async () => {
    const h = new Harness();
    const one = (await h.get("/api/v3/exchangeInfo?symbol=ETHUSDT")).json<ExchangeInfoBody>();
    expect(one.symbols.map((s) => s.symbol)).toEqual(["ETHUSDT"]);
    const list = (await h.get(`/api/v3/exchangeInfo?symbols=${encodeURIComponent('["ETHUSDT","BTCUSDT"]')}`)).json<ExchangeInfoBody>();
    expect(list.symbols.map((s) => s.symbol)).toEqual(["ETHUSDT", "BTCUSDT"]);
    expect(errorOf(await h.get("/api/v3/exchangeInfo?symbol=XRPUSDT"))).toMatchObject({ status: 400, code: -1121 });
  });

  it("GET /api/v3/ticker/price answers one object or an array", async () => {
    const h = new Harness();
    expect((await h.get("/api/v3/ticker/price?symbol=BTCUSDT")).json()).toEqual({ symbol: "BTCUSDT", price: "60000.00000000" });
    expect((await h.get("/api/v3/ticker/price")).json()).toEqual([
      { symbol: "BTCUSDT", price: "60000.00000000" },
      { symbol: "ETHUSDT", price: "3000.00000000" },
    ]);
    expect((await h.get(`/api/v3/ticker/price?symbols=${encodeURIComponent('["ETHUSDT"]')}`)).json()).toEqual([
      { symbol: "ETHUSDT", price: "3000.00000000" },
    ]);
  });

  it("the ticker follows the last trade", async () => {
    const h = new Harness();
    await h.placed("alice", { symbol: "BTCUSDT", side: "BUY", type: "MARKET", quantity: "0.15" });
    expect((await h.get("/api/v3/ticker/price?symbol=BTCUSDT")).json()).toEqual({ symbol: "BTCUSDT", price: "60020.00000000" });
  });

  it("GET /api/v3/depth shows the market maker's seeded book", async () => {
    const h = new Harness();
    const depth = await h.depth("BTCUSDT", 3);
    expect(depth.lastUpdateId).toBeGreaterThan(0);
    expect(depth.bids).toEqual([
      ["59990.00000000", "0.10000000"],
      ["59980.00000000", "0.20000000"],
      ["59970.00000000", "0.30000000"],
    ]);
    expect(depth.asks).toEqual([
      ["60010.00000000", "0.10000000"],
      ["60020.00000000", "0.20000000"],
      ["60030.00000000", "0.30000000"],
    ]);
    const full = await h.depth("ETHUSDT");
    expect(full.bids).toHaveLength(10);
    expect(full.asks).toHaveLength(10);
    expect(full.bids[9]).toEqual(["2990.00000000", "10.00000000"]);
    expect(full.asks[0]).toEqual(["3001.00000000", "1.00000000"]);
  });

  it("depth validates symbol and limit, and caps limit at 5000", async () => {
    const h = new Harness();
    expect(errorOf(await h.get("/api/v3/depth"))).toMatchObject({ status: 400, code: -1102 });
    expect(errorOf(await h.get("/api/v3/depth?symbol=BTCUSDT&limit=0"))).toMatchObject({ code: -1130 });
    expect(errorOf(await h.get("/api/v3/depth?symbol=BTCUSDT&limit=ten"))).toMatchObject({ code: -1100 });
    const big = (await h.get("/api/v3/depth?symbol=BTCUSDT&limit=99999")).json<DepthBody>();
    expect(big.asks).toHaveLength(10);
  });

  it("public endpoints ignore Binance signing parameters", async () => {
    const h = new Harness();
    const reply = await h.get("/api/v3/ticker/price?symbol=BTCUSDT&timestamp=1&recvWindow=5000&signature=abc");
    expect(reply.status).toBe(200);
  });
});

describe("routing", () => {
  it("the route table compiles in the gateway's format, with tags on order and cancel", () => {
    const table = new RouteTable(DEMO_EXCHANGE_ROUTES);
    // The Binance shape, then every other venue's routes.
    expect(table.routes).toHaveLength(BINANCE_ROUTES.length + VENUES.reduce((n, v) => n + v.routes.length, 0));
    expect(table.match("POST", "/api/v3/order")).toMatchObject({ permission: "trade", tags: ["order"] });
    expect(table.match("DELETE", "/api/v3/order")).toMatchObject({ permission: "trade", tags: ["cancel"] });
    expect(table.match("GET", "/api/v3/order")).toMatchObject({ permission: "read", tags: [] });
    expect(table.match("GET", "/api/v3/account")?.permission).toBe("read");
    expect(table.match("POST", "/sapi/v1/capital/withdraw/apply")?.permission).toBe("withdraw");
    for (const path of ["/api/v3/time", "/api/v3/exchangeInfo", "/api/v3/ticker/price", "/api/v3/depth"]) {
      expect(table.match("GET", path)?.permission).toBeNull();
    }
  });

  it("serves every route in the table (none is a 404 or 405)", async () => {
    const h = new Harness();
    for (const route of DEMO_EXCHANGE_ROUTES) {
      const method = typeof route.method === "string" ? route.method : (route.method[0] ?? "GET");
      const reply = await h.call({ method, url: route.path, account: "router" });
      expect(reply.status, `${method} ${route.path}`).not.toBe(404);
      expect(reply.status, `${method} ${route.path}`).not.toBe(405);
      expect(reply.status).toBeLessThan(500);
    }
  });

  it("an unknown path is a JSON 404, a known path with the wrong method a JSON 405", async () => {
    const h = new Harness();
    const missing = await h.get("/api/v3/nothing");
    expect(missing.status).toBe(404);
    expect(missing.headers["content-type"]).toMatch(/^application\/json/);
    expect(missing.json()).toEqual({ code: -1, msg: "Unknown endpoint" });
    const wrong = await h.call({ method: "PUT", url: "/api/v3/order" });
    expect(wrong.status).toBe(405);
    expect(wrong.json<{ code: number }>().code).toBe(-1);
    expect((await h.get("/api/v3/time/")).status).toBe(404);
    expect((await h.get("/")).status).toBe(404);
  });
});
