/**
 * ccxt pro's `binance`, unmodified, against the demo stack (exchange, gateway with its WebSocket
 * proxy, admin API; real clock): its WebSocket API URL is pointed at the gateway and it signs
 * every message itself (`apiKey`, `timestamp`, `signature` in the params, HMAC or Ed25519), as a
 * bot written against api.binance.com would. The gateway verifies each message and forwards it
 * without its credentials: the demo exchange must never see `apiKey` or `signature`.
 */
import { generateKeyPairSync } from "node:crypto";
import ccxt from "ccxt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DemoStack } from "@portcullis/demo-exchange";
import { startCompatStack } from "./support.js";

type BinancePro = InstanceType<typeof ccxt.pro.binance>;

let stack: DemoStack;
const opened: BinancePro[] = [];

beforeAll(async () => {
  stack = await startCompatStack();
});
afterAll(async () => {
  for (const exchange of opened) await exchange.close();
  await stack.close();
});

/**
 * ccxt pro's binance with its spot WebSocket API (`urls.api.ws['ws-api'].spot`) and REST base
 * URLs on the gateway; spot markets only, without the private currency list.
 */
async function ccxtPro(apiKey: string, secret: string): Promise<BinancePro> {
  const exchange = new ccxt.pro.binance({
    apiKey,
    secret,
    enableRateLimit: false,
    timeout: 10_000,
    options: { fetchMarkets: { types: ["spot"] }, fetchMargins: false, fetchCurrencies: false },
  });
  const urls = exchange.urls as { api: Record<string, unknown> };
  const api: Record<string, unknown> = {};
  for (const [name, url] of Object.entries(urls.api)) {
    if (typeof url === "string") api[name] = url.replace(/^https:\/\/[^/]+/, stack.gateway);
  }
  const ws = urls.api.ws as Record<string, unknown>;
  api.ws = { ...ws, "ws-api": { ...(ws["ws-api"] as Record<string, string>), spot: `${stack.gateway.replace(/^http/, "ws")}/ws-api/v3` } };
  urls.api = api;
  // ccxt needs an http.Agent loaded before it opens a plain ws:// connection.
  await exchange.loadHttpProxyAgent();
  opened.push(exchange);
  return exchange;
}

/**
 * The account's balances as the exchange answered them. ccxt 4.5 parses account.status without a
 * market type, so its unified fields stay empty; the answer itself is in `info`.
 */
function balancesOf(balance: { info: unknown }): unknown[] {
  return (balance.info as { balances: unknown[] }).balances;
}

describe("ccxt pro binance: per-message signed WebSocket API calls through the gateway", () => {
  it("HMAC key: fetchBalanceWs and createOrderWs", async () => {
    const created = await stack.createKey({ account: "ccxtpro-alice", scopes: ["read", "trade"], dialects: ["binance"] });
    const exchange = await ccxtPro(created.key.id, created.secret ?? "");
    expect(balancesOf(await exchange.fetchBalanceWs())).toContainEqual({ asset: "BTC", free: "2.00000000", locked: "0.00000000" });
    const order = await exchange.createOrderWs("ETH/USDT", "market", "sell", 0.5);
    expect(order).toMatchObject({ symbol: "ETH/USDT", status: "closed" });
    expect(stack.exchange.balances("ccxtpro-alice")?.ETH.free).toBe("19.50000000");
  });

  it("Ed25519 key: fetchBalanceWs and createOrderWs", async () => {
    const pair = generateKeyPairSync("ed25519");
    const created = await stack.createKey({
      account: "ccxtpro-bob",
      scopes: ["read", "trade"],
      dialects: ["binance"],
      algorithm: "ed25519",
      publicKey: pair.publicKey.export({ type: "spki", format: "pem" }).toString(),
    });
    const exchange = await ccxtPro(created.key.id, pair.privateKey.export({ type: "pkcs8", format: "pem" }).toString());
    expect(balancesOf(await exchange.fetchBalanceWs())).toContainEqual({ asset: "ETH", free: "20.00000000", locked: "0.00000000" });
    const order = await exchange.createOrderWs("BTC/USDT", "limit", "buy", 0.001, 50000);
    expect(order).toMatchObject({ symbol: "BTC/USDT", status: "open" });
    expect(stack.exchange.openOrders("ccxtpro-bob")).toHaveLength(1);
  });
});
