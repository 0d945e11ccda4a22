/**
 * Guardrail refusals end to end, in every dialect: a real gateway (HTTP and WebSocket, on a
 * loopback port) in front of the demo exchange, keys signed the way each venue's clients sign
 * (test/support/venues.ts, written from the venues' documentation), and for each dialect: an order
 * on a symbol outside the key's allowlist and an order over its maximum quantity are refused in
 * the venue's own error shape, and the exchange never sees the key's account; an order within the
 * guardrails then reaches it. The Binance WebSocket API's `order.place` is refused with Binance's
 * error frame.
 */
import { createHmac, generateKeyPairSync } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StaticPrices } from "../../src/operations/prices.js";
import { signRequest } from "../support/harness.js";
import { binanceSignParams, bybitHeaders, coinbaseHeaders, krakenHeaders, okxHeaders, type HeaderList } from "../support/venues.js";
import { type WsStack, WsClient, binanceSign, startWsStack } from "../support/websocket.js";

const GUARDRAILS = { symbols: ["ETHUSDT"], maxQuantity: "1", priceBandPct: "5" };
const PASSPHRASE = "Okx-Passphrase-1";

let stack: WsStack;

beforeAll(async () => {
  stack = await startWsStack({ core: { prices: new StaticPrices({ symbols: { BTCUSDT: "60000", ETHUSDT: "3000" } }) } });
});
afterAll(async () => {
  await stack.close();
});

interface Answer {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

async function post(path: string, headers: HeaderList | Record<string, string>, body: string, contentType: string): Promise<Answer> {
  const res = await fetch(`${stack.httpUrl}${path}`, { method: "POST", headers: [...(Array.isArray(headers) ? headers : Object.entries(headers)), ["content-type", contentType]], body });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function key(account: string, input: Record<string, unknown>): Promise<{ id: string; secret: string }> {
  const created = await stack.createKey({ account, scopes: ["read", "trade"], guardrails: GUARDRAILS, ...input });
  return { id: created.key.id, secret: created.secret ?? "" };
}

/** An order in a venue's shape: BTC (outside the allowlist) or ETH, of a quantity, at a price. */
type Order = (asset: "BTC" | "ETH", quantity: string, price: string) => Promise<Answer>;

/**
 * The refusals of one dialect: symbol, then quantity, each in the venue's shape and never seen by
 * the exchange; then an order within the guardrails that the exchange answers.
 */
async function refusedThenAllowed(account: string, send: Order, expectRefusal: (answer: Answer, code: "GUARDRAIL_SYMBOL" | "GUARDRAIL_QUANTITY") => void, allowed: (answer: Answer) => void): Promise<void> {
  expectRefusal(await send("BTC", "0.1", "60000"), "GUARDRAIL_SYMBOL");
  expectRefusal(await send("ETH", "2", "3000"), "GUARDRAIL_QUANTITY");
  expect(stack.exchange.accounts()).not.toContain(account);
  allowed(await send("ETH", "0.5", "2900"));
  expect(stack.exchange.accounts()).toContain(account);
}

describe("guardrail refusals in every dialect", () => {
  it("native (RFC 9421): the catalogue code, 403", async () => {
    const k = await key("g-native", { dialects: ["native"] });
    await refusedThenAllowed(
      "g-native",
      (asset, quantity, price) => {
        const body = JSON.stringify({ symbol: `${asset}USDT`, side: "BUY", type: "LIMIT", timeInForce: "GTC", quantity, price });
        const headers = signRequest({ method: "POST", url: "/api/v3/order", host: stack.host, body, keyId: k.id, key: k.secret, created: stack.clock.seconds });
        return post("/api/v3/order", headers, body, "application/json");
      },
      (a, code) => {
        expect(a.status).toBe(403);
        expect(a.body).toMatchObject({ code });
      },
      (a) => {
        expect(a.status, JSON.stringify(a.body)).toBe(200);
      },
    );
  });

  it("Binance REST: -2010 NEW_ORDER_REJECTED, HTTP 400", async () => {
    const k = await key("g-binance", { dialects: ["binance"] });
    await refusedThenAllowed(
      "g-binance",
      (asset, quantity, price) => {
        const params = `symbol=${asset}USDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=${quantity}&price=${price}&timestamp=${String(stack.clock.ms)}`;
        return post("/api/v3/order", { "X-MBX-APIKEY": k.id }, binanceSignParams(params, params, k.secret), "application/x-www-form-urlencoded");
      },
      (a, code) => {
        expect(a.status).toBe(400);
        expect(a.body.code).toBe(-2010);
        expect(a.body.msg).toBe(code === "GUARDRAIL_SYMBOL" ? "Order rejected: this API key may not trade this symbol." : "Order rejected: quantity is above this API key's maximum.");
      },
      (a) => {
        expect(a.status, JSON.stringify(a.body)).toBe(200);
        expect(a.body).toMatchObject({ symbol: "ETHUSDT", status: "NEW" });
      },
    );
  });

  it("Kraken: EGeneral:Permission denied in Kraken's envelope, HTTP 200", async () => {
    const k = await key("g-kraken", { dialects: ["kraken"] });
    let nonce = stack.clock.ms;
    await refusedThenAllowed(
      "g-kraken",
      (asset, volume, price) => {
        nonce += 1;
        const body = `nonce=${String(nonce)}&ordertype=limit&pair=${asset === "BTC" ? "XBTUSDT" : "ETHUSDT"}&price=${price}&type=buy&volume=${volume}`;
        const headers = krakenHeaders({ path: "/0/private/AddOrder", nonce: String(nonce), body, keyId: k.id, secret: k.secret });
        return post("/0/private/AddOrder", headers, body, "application/x-www-form-urlencoded");
      },
      (a) => {
        expect(a.status).toBe(200);
        expect(a.body).toEqual({ error: ["EGeneral:Permission denied"] });
      },
      (a) => {
        expect(a.status).toBe(200);
        expect(a.body.error).toEqual([]);
      },
    );
  });

  it("Coinbase: PERMISSION_DENIED with the Portcullis code in error_details, HTTP 403", async () => {
    const pair = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const publicKey = pair.publicKey.export({ type: "spki", format: "pem" }).toString();
    const k = await key("g-coinbase", { dialects: ["coinbase"], algorithm: "ecdsa-p256", publicKey });
    let n = 0;
    await refusedThenAllowed(
      "g-coinbase",
      (asset, size, price) => {
        n += 1;
        const body = JSON.stringify({
          client_order_id: `guard-${String(n)}`,
          product_id: `${asset}-USDT`,
          side: "BUY",
          order_configuration: { limit_limit_gtc: { base_size: size, limit_price: price } },
        });
        const headers = coinbaseHeaders({ method: "POST", host: stack.host, path: "/api/v3/brokerage/orders", keyId: k.id, privateKey: pair.privateKey, seconds: stack.clock.seconds });
        return post("/api/v3/brokerage/orders", headers, body, "application/json");
      },
      (a, code) => {
        expect(a.status).toBe(403);
        expect(a.body).toMatchObject({ error: "PERMISSION_DENIED", error_details: code });
      },
      (a) => {
        expect(a.status, JSON.stringify(a.body)).toBe(200);
        expect(a.body.success).toBe(true);
      },
    );
  });

  it("OKX: 50120 for the symbol (HTTP 403), 51005 for the quantity (HTTP 200)", async () => {
    const k = await key("g-okx", { dialects: ["okx"], passphrase: PASSPHRASE });
    await refusedThenAllowed(
      "g-okx",
      (asset, sz, px) => {
        const body = JSON.stringify({ instId: `${asset}-USDT`, tdMode: "cash", side: "buy", ordType: "limit", px, sz });
        const headers = okxHeaders({ method: "POST", url: "/api/v5/trade/order", body, keyId: k.id, secret: k.secret, passphrase: PASSPHRASE, time: stack.clock.ms });
        return post("/api/v5/trade/order", headers, body, "application/json");
      },
      (a, code) => {
        if (code === "GUARDRAIL_SYMBOL") {
          expect(a.status).toBe(403);
          expect(a.body).toEqual({ code: "50120", msg: "API key doesn't have permission.", data: [] });
        } else {
          expect(a.status).toBe(200);
          expect(a.body).toEqual({ code: "51005", msg: "Your order amount exceeds the max order amount.", data: [] });
        }
      },
      (a) => {
        expect(a.status).toBe(200);
        expect(a.body.code, JSON.stringify(a.body)).toBe("0");
      },
    );
  });

  it("Bybit: retCode 10029 for the symbol, 170136 for the quantity (HTTP 200)", async () => {
    const k = await key("g-bybit", { dialects: ["bybit"] });
    await refusedThenAllowed(
      "g-bybit",
      (asset, qty, price) => {
        const body = JSON.stringify({ category: "spot", symbol: `${asset}USDT`, side: "Buy", orderType: "Limit", qty, price });
        const headers = bybitHeaders({ method: "POST", url: "/v5/order/create", body, keyId: k.id, secret: k.secret, time: stack.clock.ms, recvWindow: "5000" });
        return post("/v5/order/create", headers, body, "application/json");
      },
      (a, code) => {
        expect(a.status).toBe(200);
        expect(a.body).toMatchObject(code === "GUARDRAIL_SYMBOL" ? { retCode: 10029 } : { retCode: 170136, retMsg: "Order quantity exceeded upper limit." });
      },
      (a) => {
        expect(a.status).toBe(200);
        expect(a.body.retCode, JSON.stringify(a.body)).toBe(0);
      },
    );
  });

  it("Binance WebSocket API: order.place over the guardrails gets Binance's error frame", async () => {
    const k = await key("g-binance-ws", { dialects: ["binance"] });
    const client = await WsClient.connect(`${stack.wsUrl}/ws-api/v3`);
    try {
      const place = (symbol: string, quantity: string, price: string) =>
        client.request(
          "order.place",
          binanceSign({ symbol, side: "BUY", type: "LIMIT", timeInForce: "GTC", quantity, price, apiKey: k.id, timestamp: stack.clock.ms }, k.secret),
        );
      const overCap = await place("ETHUSDT", "2", "3000");
      expect(overCap).toMatchObject({ status: 400, error: { code: -2010, msg: "Order rejected: quantity is above this API key's maximum." } });
      const offList = await place("BTCUSDT", "0.1", "60000");
      expect(offList).toMatchObject({ status: 400, error: { code: -2010, msg: "Order rejected: this API key may not trade this symbol." } });
      const outOfBand = await place("ETHUSDT", "0.5", "3200");
      expect(outOfBand).toMatchObject({ status: 400, error: { code: -2010, msg: "Order rejected: price is too far from the current price for this API key." } });
      expect(stack.exchange.accounts()).not.toContain("g-binance-ws");
      const within = await place("ETHUSDT", "0.5", "2900");
      expect(within.status, JSON.stringify(within)).toBe(200);
      expect(stack.exchange.accounts()).toContain("g-binance-ws");
    } finally {
      await client.close();
    }
  });

  it("the WebSocket API reads JSON numbers as the decimals it forwards, and refuses what is no plain decimal", async () => {
    const k = await key("g-binance-ws2", { dialects: ["binance"] });
    const client = await WsClient.connect(`${stack.wsUrl}/ws-api/v3`);
    try {
      const signedParams = (quantity: string | number) =>
        binanceSign({ symbol: "ETHUSDT", side: "BUY", type: "LIMIT", timeInForce: "GTC", quantity, price: "2900", apiKey: k.id, timestamp: stack.clock.ms }, k.secret);
      expect(await client.request("order.place", signedParams(2))).toMatchObject({ status: 400, error: { code: -2010 } });
      expect(await client.request("order.place", signedParams(1e21))).toMatchObject({ status: 400, error: { code: -1130 } });
      expect(stack.exchange.accounts()).not.toContain("g-binance-ws2");
    } finally {
      await client.close();
    }
  });
});

describe("the guardrail answers are prebuilt per code", () => {
  it("a refusal's internal detail never reaches the client", async () => {
    const k = await key("g-detail", { dialects: ["binance"] });
    const params = `symbol=ETHUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=5&price=3000&timestamp=${String(stack.clock.ms)}`;
    const signature = createHmac("sha256", k.secret).update(params).digest("hex");
    const a = await post("/api/v3/order", { "X-MBX-APIKEY": k.id }, `${params}&signature=${signature}`, "application/x-www-form-urlencoded");
    expect(JSON.stringify(a.body)).not.toContain("maxQuantity");
  });
});
