/**
 * The demo exchange's WebSocket API on its own (no gateway): Binance-shaped answers over the same
 * order book and balances as REST, trusting only the gateway's signed identity headers on the
 * upgrade, and Binance's errors for everything it refuses.
 */
import { randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IdentitySigner } from "portcullis";
import { type DemoExchange, createDemoExchange } from "../src/exchange/index.js";
import { WsClient, refusedUpgrade } from "../../portcullis/test/support/websocket.js";

const SECRET = "demo-websocket-identity-secret-0123456789";
let exchange: DemoExchange;
let server: Server;
let url: string;
const clients: WsClient[] = [];

beforeAll(async () => {
  exchange = createDemoExchange({ identitySecret: SECRET });
  server = createServer((req, res) => {
    exchange.handler(req, res);
  });
  server.on("upgrade", exchange.upgrade);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `ws://127.0.0.1:${String((server.address() as AddressInfo).port)}`;
});
afterAll(async () => {
  for (const c of clients) c.ws.terminate();
  exchange.closeWebSockets();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => { resolve(); }));
});

function identity(account: string, scopes: string[], secret = SECRET): Record<string, string> {
  const headers: Record<string, string | string[]> = {};
  new IdentitySigner(secret).write(headers, "GET", "/ws-api/v3", new Uint8Array(0), { requestId: randomUUID(), keyId: "pck_test_v1_x", account, subAccount: null, scopes, clientIp: "127.0.0.1", timestamp: Date.now() }, scopes.join(","));
  return headers as Record<string, string>;
}

async function connect(headers: Record<string, string> = {}): Promise<WsClient> {
  const c = await WsClient.connect(`${url}/ws-api/v3`, headers);
  clients.push(c);
  return c;
}

describe("the demo exchange's WebSocket API", () => {
  it("answers public methods to anyone, private ones only to an identity the gateway signed, with its scopes", async () => {
    const anonymous = await connect();
    expect(await anonymous.request("ping")).toEqual({ id: "r1", status: 200, result: {} });
    expect(await anonymous.request("account.status")).toEqual({ id: "r2", status: 401, error: { code: -2015, msg: "Invalid API-key, IP, or permissions for action." } });
    const forged = await connect(identity("mallory", ["read", "trade"], "another-secret-of-at-least-32-bytes-xx"));
    expect((await forged.request("account.status")).status).toBe(401);
    const reader = await connect(identity("demo-ws-reader", ["read"]));
    expect((await reader.request("account.status")).status).toBe(200);
    expect(await reader.request("order.place", { symbol: "BTCUSDT", side: "BUY", type: "MARKET", quantity: "0.01" })).toMatchObject({ status: 401, error: { code: -2015 } });
  });

  it("trades over the same book and balances as REST", async () => {
    const trader = await connect(identity("demo-ws-trader", ["read", "trade"]));
    const placed = await trader.request("order.place", { symbol: "BTCUSDT", side: "BUY", type: "LIMIT", timeInForce: "GTC", quantity: "0.001", price: "50000", timestamp: 1, recvWindow: 5000 });
    expect(placed).toMatchObject({ status: 200, result: { status: "NEW" } });
    expect(exchange.openOrders("demo-ws-trader")).toHaveLength(1);
    expect(exchange.balances("demo-ws-trader")?.USDT).toEqual({ free: "99950.00000000", locked: "50.00000000" });
    const orderId = (placed.result as { orderId: number }).orderId;
    expect(await trader.request("order.status", { symbol: "BTCUSDT", orderId })).toMatchObject({ status: 200, result: { orderId, status: "NEW" } });
    expect(await trader.request("order.cancel", { symbol: "BTCUSDT", orderId })).toMatchObject({ status: 200, result: { status: "CANCELED" } });
  });

  it("refuses in Binance's words: bad JSON -1135, unknown method -1020, unread parameters -1104, bad values -1100", async () => {
    const c = await connect(identity("demo-ws-erin", ["read", "trade"]));
    expect(await c.send("{nope", null)).toEqual({ id: null, status: 400, error: { code: -1135, msg: "Invalid JSON Request" } });
    expect(await c.request("order.list")).toMatchObject({ status: 400, error: { code: -1020 } });
    expect(await c.request("time", { extra: "1" })).toMatchObject({ status: 400, error: { code: -1104 } });
    expect(await c.request("order.place", { symbol: "btc", side: "BUY", type: "MARKET", quantity: "1" })).toMatchObject({ status: 400, error: { code: -1100 } });
    expect((await c.request("time")).status).toBe(200);
  });

  it("reads returnRateLimits on every method; a credential that reaches it (apiKey, signature) is refused -1104, never ignored", async () => {
    const c = await connect(identity("demo-ws-frank", ["read", "trade"]));
    expect((await c.request("time", { returnRateLimits: false })).status).toBe(200);
    expect((await c.request("account.status", { returnRateLimits: "true", timestamp: 1 })).status).toBe(200);
    expect(await c.request("time", { returnRateLimits: "yes" })).toMatchObject({ status: 400, error: { code: -1130 } });
    expect(await c.request("account.status", { apiKey: "pck_test_v1_x", timestamp: 1 })).toEqual({
      id: "r4",
      status: 400,
      error: { code: -1104, msg: "Not all sent parameters were read; read '1' parameter(s) but was sent '2'." },
    });
    expect(await c.request("account.status", { timestamp: 1, signature: "00" })).toMatchObject({ status: 400, error: { code: -1104 } });
  });

  it("serves no other WebSocket path", async () => {
    const refused = await refusedUpgrade(WsClient.connect(`${url}/ws`));
    expect(refused.status).toBe(404);
  });
});
