/**
 * The official `@binance/connector` WebsocketAPI client, unmodified, against the demo stack
 * (exchange, gateway with its WebSocket proxy, admin API; real clock) through its `wsURL` option:
 * with an HMAC key it signs every request (its only way: it has no session.logon helper), and with
 * an Ed25519 key it sends a session.logon signed per Binance's docs (node:crypto) through its
 * generic sendMessage, then an order on the logged-on connection.
 */
import { generateKeyPairSync, sign } from "node:crypto";
import { createRequire } from "node:module";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { webSocketSignaturePayload } from "../../src/dialects/binance/signature.js";
import type { DemoStack } from "@portcullis/demo-exchange";
import { startCompatStack } from "./support.js";

interface Answer {
  id: string;
  status: number;
  result?: Record<string, unknown>;
  error?: { code: number; msg: string };
}

interface WebsocketApiClient {
  account(options?: Record<string, unknown>): void;
  newOrder(symbol: string, side: string, type: string, options?: Record<string, unknown>): void;
  cancelOrder(symbol: string, options?: Record<string, unknown>): void;
  sendMessage(method: string, options?: Record<string, unknown>): void;
  disconnect(): void;
}

interface Connector {
  WebsocketAPI: new (apiKey: string, apiSecret: string, options: Record<string, unknown>) => WebsocketApiClient;
}

const connector = createRequire(import.meta.url)("@binance/connector") as Connector;
const silent = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined, log: () => undefined };

let stack: DemoStack;
const opened: WebsocketApiClient[] = [];

beforeAll(async () => {
  stack = await startCompatStack();
});
afterAll(async () => {
  // disconnect() first: the connector reconnects by itself after a close it did not start.
  for (const c of opened) c.disconnect();
  await stack.close();
});

/** A connector client on the gateway's WebSocket API, with its answers by id. */
async function client(apiKey: string, apiSecret: string): Promise<{ api: WebsocketApiClient; answer: (id: string) => Promise<Answer> }> {
  const answers = new Map<string, Answer>();
  const waiting = new Map<string, (a: Answer) => void>();
  let ready: () => void = () => undefined;
  const open = new Promise<void>((resolve) => {
    ready = resolve;
  });
  const api = new connector.WebsocketAPI(apiKey, apiSecret, {
    wsURL: `${stack.gateway.replace(/^http/, "ws")}/ws-api/v3`,
    logger: silent,
    callbacks: {
      open: () => {
        ready();
      },
      message: (text: string) => {
        const a = JSON.parse(text) as Answer;
        const w = waiting.get(a.id);
        if (w === undefined) answers.set(a.id, a);
        else w(a);
      },
    },
  });
  opened.push(api);
  await open;
  return {
    api,
    answer: (id) =>
      new Promise((resolve) => {
        const known = answers.get(id);
        if (known !== undefined) resolve(known);
        else waiting.set(id, resolve);
      }),
  };
}

describe("@binance/connector WebsocketAPI through the gateway", () => {
  it("HMAC key, every request signed by the connector: account, order, cancel; a read-only key is refused -2015", async () => {
    const created = await stack.createKey({ account: "wsc-alice", scopes: ["read", "trade"], dialects: ["binance"] });
    const { api, answer } = await client(created.key.id, created.secret ?? "");
    api.account({ id: "a1" });
    const account = await answer("a1");
    expect(account.status).toBe(200);
    expect((account.result?.balances as { asset: string; free: string }[]).find((b) => b.asset === "BTC")?.free).toBe("2.00000000");
    api.newOrder("BTCUSDT", "BUY", "LIMIT", { id: "o1", price: "50000", quantity: "0.001", timeInForce: "GTC" });
    const order = await answer("o1");
    expect(order).toMatchObject({ status: 200, result: { symbol: "BTCUSDT", status: "NEW" } });
    expect(stack.exchange.openOrders("wsc-alice")).toHaveLength(1);
    api.cancelOrder("BTCUSDT", { id: "c1", orderId: order.result?.orderId });
    expect(await answer("c1")).toMatchObject({ status: 200, result: { status: "CANCELED" } });

    const reader = await stack.createKey({ account: "wsc-alice", scopes: ["read"], dialects: ["binance"] });
    const ro = await client(reader.key.id, reader.secret ?? "");
    ro.api.newOrder("BTCUSDT", "BUY", "MARKET", { id: "o2", quantity: "0.001" });
    expect(await ro.answer("o2")).toMatchObject({ status: 401, error: { code: -2015 } });
  });

  it("Ed25519 key: session.logon signed per Binance's docs, then order.place with only a timestamp", async () => {
    const pair = generateKeyPairSync("ed25519");
    const created = await stack.createKey({ account: "wsc-bob", scopes: ["read", "trade"], dialects: ["binance"], algorithm: "ed25519", publicKey: pair.publicKey.export({ type: "spki", format: "pem" }).toString() });
    const { api, answer } = await client(created.key.id, "");
    const params = { apiKey: created.key.id, timestamp: Date.now() };
    const signature = sign(null, Buffer.from(webSocketSignaturePayload(params), "utf8"), pair.privateKey).toString("base64");
    api.sendMessage("session.logon", { id: "logon", ...params, signature });
    expect(await answer("logon")).toMatchObject({ status: 200, result: { apiKey: created.key.id } });
    api.sendMessage("order.place", { id: "o1", symbol: "ETHUSDT", side: "SELL", type: "MARKET", quantity: "0.5", timestamp: Date.now() });
    expect(await answer("o1")).toMatchObject({ status: 200, result: { symbol: "ETHUSDT", status: "FILLED" } });
    expect(stack.exchange.balances("wsc-bob")?.ETH.free).toBe("19.50000000");
  });
});
