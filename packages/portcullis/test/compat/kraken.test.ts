/**
 * ccxt's `kraken` exchange, unmodified, against the whole demo (exchange, gateway, admin) with a
 * key issued for the Kraken dialect: it loads markets, reads balances and adds orders through the
 * gateway exactly as it would against api.kraken.com, and every refusal reaches it as the ccxt
 * error type Kraken's answer maps to.
 */
import { randomBytes } from "node:crypto";
import ccxt from "ccxt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DemoStack } from "@portcullis/demo-exchange";
import { startCompatStack } from "./support.js";

let stack: DemoStack;
let trader: { id: string; secret: string };
let reader: { id: string; secret: string };

async function krakenKey(account: string, scopes: string[]): Promise<{ id: string; secret: string }> {
  const created = await stack.createKey({ account, scopes, dialects: ["kraken"] });
  if (created.secret === null) throw new Error("an HMAC key has a secret");
  return { id: created.key.id, secret: created.secret };
}

/** ccxt's kraken, pointed at the gateway; nothing else changed. */
function client(key: { id: string; secret: string }): InstanceType<typeof ccxt.kraken> {
  const exchange = new ccxt.kraken({ apiKey: key.id, secret: key.secret, enableRateLimit: false, timeout: 10_000 });
  exchange.urls.api = { public: stack.gateway, private: stack.gateway };
  return exchange;
}

beforeAll(async () => {
  stack = await startCompatStack();
  trader = await krakenKey("kraken-trader", ["read", "trade"]);
  reader = await krakenKey("kraken-reader", ["read"]);
});
afterAll(async () => {
  await stack.close();
});

describe("ccxt kraken through the gateway", () => {
  it("issues Kraken-form secrets: base64 of 64 bytes", () => {
    expect(Buffer.from(trader.secret, "base64")).toHaveLength(64);
    expect(Buffer.from(trader.secret, "base64").toString("base64")).toBe(trader.secret);
  });

  it("loads the Kraken markets (Assets, AssetPairs) as BTC/USDT and ETH/USDT", async () => {
    const exchange = client(trader);
    const markets = await exchange.loadMarkets();
    expect(Object.keys(markets).sort()).toEqual(["BTC/USDT", "ETH/USDT"]);
    expect(markets["BTC/USDT"]).toMatchObject({ id: "XBTUSDT", base: "BTC", quote: "USDT", baseId: "BTC", active: true });
    expect(markets["BTC/USDT"]?.precision).toEqual({ amount: 0.00001, price: 0.01 });
    expect(markets["ETH/USDT"]?.limits.amount?.min).toBe(0.0001);
    const time = await exchange.fetchTime();
    expect(Math.abs((time ?? 0) - Date.now())).toBeLessThan(5_000);
  });

  it("fetchBalance reads the account's demo balances", async () => {
    const balance = await client(trader).fetchBalance();
    expect(balance.BTC).toMatchObject({ total: 2, used: 0, free: 2 });
    expect(balance.ETH).toMatchObject({ total: 20, used: 0, free: 20 });
    expect(balance.USDT).toMatchObject({ total: 100_000, used: 0, free: 100_000 });
    expect(stack.exchange.balances("kraken-trader")?.BTC).toEqual({ free: "2.00000000", locked: "0.00000000" });
  });

  it("createOrder adds a resting limit order and a filled market order", async () => {
    const exchange = client(trader);
    const limit = await exchange.createOrder("BTC/USDT", "limit", "buy", 0.01, 50_000);
    expect(limit.id).toMatch(/^O[0-9A-Z]{5}-[0-9A-Z]{5}-[0-9A-Z]{6}$/);
    expect(limit).toMatchObject({ symbol: "BTC/USDT", side: "buy", type: "limit", price: 50_000, amount: 0.01 });
    expect(stack.exchange.openOrders("kraken-trader")).toEqual([
      expect.objectContaining({ symbol: "BTCUSDT", side: "BUY", type: "LIMIT", price: "50000.00000000", origQty: "0.01000000" }),
    ]);

    const market = await exchange.createOrder("ETH/USDT", "market", "buy", 0.5);
    expect(market).toMatchObject({ symbol: "ETH/USDT", side: "buy", type: "market", amount: 0.5 });
    const balance = await exchange.fetchBalance();
    expect(balance.ETH?.total).toBe(20.5);
    expect(balance.USDT?.used).toBe(500); // 0.01 BTC at 50000 held by the open order
  });

  it("a market buy by cost (viqc) spends quote currency", async () => {
    const exchange = client(trader);
    const before = (await exchange.fetchBalance()).USDT?.total ?? 0;
    await exchange.createMarketBuyOrderWithCost("ETH/USDT", 301);
    const after = (await exchange.fetchBalance()).USDT?.total ?? 0;
    expect(before - after).toBeGreaterThan(290);
    expect(before - after).toBeLessThanOrEqual(301);
  });
});

describe("refusals reach ccxt as the error types Kraken's answers map to", () => {
  it("a wrong secret is AuthenticationError (EAPI:Invalid key)", async () => {
    const exchange = client({ id: trader.id, secret: randomBytes(64).toString("base64") });
    const error = await exchange.fetchBalance().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ccxt.AuthenticationError);
    expect(String(error)).toContain("EAPI:Invalid key");
  });

  it("an unknown key is AuthenticationError", async () => {
    const other = await krakenKey("kraken-other", ["read"]);
    await stack.running.core.keys.revoke(other.id, "test", "compat test");
    const error = await client(other).fetchBalance().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ccxt.AuthenticationError);
  });

  it("a replayed nonce is InvalidNonce (EAPI:Invalid nonce)", async () => {
    // Its own key: the nonce pinned here must not become the trader key's highest.
    const exchange = client(await krakenKey("kraken-replay", ["read"]));
    await exchange.loadMarkets();
    const fixed = Date.now();
    exchange.nonce = () => fixed;
    await exchange.fetchBalance();
    const error = await exchange.fetchBalance().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ccxt.InvalidNonce);
    expect(String(error)).toContain("EAPI:Invalid nonce");
  });

  it("a nonce forced backwards beyond the window is InvalidNonce", async () => {
    const exchange = client(await krakenKey("kraken-backwards", ["read"]));
    await exchange.fetchBalance();
    // ccxt's nonce is milliseconds minus timeDifference: ten minutes back.
    exchange.options.timeDifference = 600_000;
    const error = await exchange.fetchBalance().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ccxt.InvalidNonce);
  });

  it("a read-only key adding an order is PermissionDenied (EGeneral:Permission denied)", async () => {
    const exchange = client(reader);
    await expect(exchange.fetchBalance()).resolves.toBeDefined();
    const error = await exchange.createOrder("BTC/USDT", "limit", "buy", 0.01, 50_000).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ccxt.PermissionDenied);
    expect(String(error)).toContain("EGeneral:Permission denied");
    expect(stack.exchange.openOrders("kraken-reader")).toEqual([]);
  });

  it("an order beyond the balance is InsufficientFunds (the venue's own refusal)", async () => {
    const error = await client(trader).createOrder("BTC/USDT", "limit", "sell", 50, 60_000).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ccxt.InsufficientFunds);
  });
});
