/**
 * Reference prices (operations/live-prices.ts, the `prices` configuration): the configured table,
 * a refresher that polls the demo exchange's Binance-shaped ticker on a real socket, a failed poll
 * that keeps the last prices, and a price older than the maximum age that counts as unknown (the
 * guardrails then refuse). The clock is frozen and moved by hand.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createDemoExchange } from "@portcullis/demo-exchange";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, parseConfigText } from "../../src/config/config.js";
import { decimalText } from "../../src/contract/operations.js";
import { LivePrices, PriceRefresher, readTicker } from "../../src/operations/live-prices.js";
import { FakeClock } from "../support/harness.js";
import { IDENTITY_SECRET, captureLogger } from "../support/gateway.js";

const clock = new FakeClock();
let server: Server;
let url: string;
let failing = false;

beforeAll(async () => {
  const exchange = createDemoExchange({ identitySecret: IDENTITY_SECRET, now: clock.now });
  server = createServer((req, res) => {
    if (failing) {
      res.writeHead(503).end("down");
      return;
    }
    exchange.handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${String((server.address() as AddressInfo).port)}/api/v3/ticker/price`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => { resolve(); }));
});

function text(value: ReturnType<LivePrices["symbol"]>): string | undefined {
  return value === undefined ? undefined : decimalText(value);
}

describe("the refresher", () => {
  it("reads the demo exchange's ticker: symbols, assets in the reference currency, and the reference asset itself", async () => {
    const prices = new LivePrices({ table: { symbols: { SOLUSDT: "150" } }, maxAgeMs: 30_000, now: clock.now });
    const { logger } = captureLogger();
    const refresher = new PriceRefresher({ prices, settings: { url, intervalMs: 10_000, maxAgeMs: 30_000, referenceAsset: "USDT" }, logger, now: clock.now });
    expect(prices.symbol("BTCUSDT")).toBeUndefined();
    expect(await refresher.poll()).toBe(true);
    expect(Number(text(prices.symbol("BTCUSDT")))).toBeGreaterThan(0);
    expect(Number(text(prices.symbol("ETHUSDT")))).toBeGreaterThan(0);
    expect(text(prices.asset("BTC"))).toBe(text(prices.symbol("BTCUSDT")));
    expect(text(prices.asset("USDT"))).toBe("1");
    // A configured symbol the ticker does not list keeps its configured price.
    expect(text(prices.symbol("SOLUSDT"))).toBe("150");
  });

  it("a failed poll keeps the last prices (logged), which then age out: unknown, not old", async () => {
    const prices = new LivePrices({ table: { symbols: { BTCUSDT: "1" } }, maxAgeMs: 30_000, now: clock.now });
    const { logger, lines } = captureLogger();
    const refresher = new PriceRefresher({ prices, settings: { url, intervalMs: 10_000, maxAgeMs: 30_000, referenceAsset: "USDT" }, logger, now: clock.now });
    expect(await refresher.poll()).toBe(true);
    const read = text(prices.symbol("BTCUSDT"));
    expect(read).not.toBe("1");
    failing = true;
    try {
      clock.advance(20_000);
      expect(await refresher.poll()).toBe(false);
      expect(lines.some((l) => l.includes("reference prices: poll failed"))).toBe(true);
      expect(text(prices.symbol("BTCUSDT"))).toBe(read);
      clock.advance(10_000);
      expect(text(prices.symbol("BTCUSDT"))).toBe(read);
      clock.advance(1);
      // Older than the maximum age: unknown, and the configured "1" does not come back.
      expect(prices.symbol("BTCUSDT")).toBeUndefined();
      expect(prices.asset("BTC")).toBeUndefined();
    } finally {
      failing = false;
    }
    expect(await refresher.poll()).toBe(true);
    expect(text(prices.symbol("BTCUSDT"))).toBe(read);
  });

  it("an unreachable ticker is a failed poll, not a crash", async () => {
    const prices = new LivePrices({ maxAgeMs: 30_000, now: clock.now });
    const { logger, lines } = captureLogger();
    const refresher = new PriceRefresher({ prices, settings: { url: "http://127.0.0.1:1/api/v3/ticker/price", intervalMs: 1000, maxAgeMs: 30_000, referenceAsset: "USDT" }, logger, now: clock.now });
    expect(await refresher.poll()).toBe(false);
    expect(lines.length).toBeGreaterThan(0);
  });

  it("skips ticker entries that are not a symbol with a plain positive decimal price", () => {
    const pairs = readTicker([
      { symbol: "btcusdt", price: "60000.5" },
      { symbol: "ETHUSDT", price: 3000 },
      { symbol: "BAD SYMBOL", price: "1" },
      { symbol: "ZERO", price: "0" },
      { symbol: "EXP", price: "1e5" },
      null,
      "x",
    ]);
    expect(pairs.map(([s, p]) => `${s}=${decimalText(p)}`)).toEqual(["BTCUSDT=60000.5"]);
    expect(readTicker({ symbol: "BTCUSDT", price: "1" })).toHaveLength(1);
  });
});

describe("the prices configuration", () => {
  const config = (prices: unknown) => parseConfigText(JSON.stringify({ gateway: { upstream: "http://127.0.0.1:9000" }, routes: [{ method: "GET", path: "/x", permission: "public" }], prices }), "/tmp");

  it("defaults to no prices and no refresher", () => {
    expect(config(undefined).prices).toEqual({ table: { symbols: {}, assets: {} }, refresh: null });
  });

  it("reads a table and a refresher, with defaults", () => {
    const parsed = config({ symbols: { btcusdt: "60000" }, assets: { USDT: "1" }, refresh: { url: "http://127.0.0.1:9000/api/v3/ticker/price" } }).prices;
    expect({ ...parsed.table.symbols }).toEqual({ BTCUSDT: "60000" });
    expect(parsed.refresh).toEqual({ url: "http://127.0.0.1:9000/api/v3/ticker/price", intervalMs: 10_000, maxAgeMs: 60_000, referenceAsset: "USDT" });
    expect(config({ refresh: { url: "https://x.test/t", interval: "30s", maxAge: "2m", referenceAsset: "usdc" } }).prices.refresh).toMatchObject({ intervalMs: 30_000, maxAgeMs: 120_000, referenceAsset: "USDC" });
  });

  it.each([
    [{ table: {} }, /prices.table is not a known setting/],
    [{ symbols: { BTCUSDT: 60000 } }, /prices.symbols.BTCUSDT must be a decimal string/],
    [{ symbols: { BTCUSDT: "0" } }, /must be a decimal string above zero/],
    [{ assets: { "B T C": "1" } }, /is not a symbol or asset name/],
    [{ refresh: { url: "ftp://x/y" } }, /prices.refresh.url must be an http\(s\) URL/],
    [{ refresh: { url: "http://x/y", interval: "100ms" } }, /interval must be from 1s to 1h/],
    [{ refresh: { url: "http://x/y", interval: "10s", maxAge: "5s" } }, /maxAge must be at least the interval/],
    [{ refresh: { url: "http://x/y", every: "10s" } }, /prices.refresh.every is not a known setting/],
  ])("refuses %j", (prices, message) => {
    expect(() => config(prices)).toThrow(ConfigError);
    expect(() => config(prices)).toThrow(message);
  });
});
