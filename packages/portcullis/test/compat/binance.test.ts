/**
 * Binance's own clients, unmodified, against the whole demo (exchange, gateway, admin) with keys
 * registered for the Binance dialect: ccxt's `binance` with an HMAC key, and the official
 * `@binance/connector` Spot client with an Ed25519 key. Each signs as it would for
 * api.binance.com; the gateway verifies and forwards; refusals reach ccxt as the error types
 * Binance's codes map to. Binance's published signing examples are checked first, verbatim.
 */
import { createHmac, generateKeyPairSync, type KeyObject } from "node:crypto";
import { createRequire } from "node:module";
import ccxt from "ccxt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBinanceScheme, verifyWebSocketSignature, webSocketSignaturePayload } from "../../src/dialects/binance/index.js";
import type { DemoStack } from "@portcullis/demo-exchange";
import { type StageAnswer, RequestContext } from "../../src/contract/request.js";
import type { VerificationKey } from "../../src/contract/verification-key.js";
import { binanceClient, binanceHmacKey, rejection, startCompatStack } from "./support.js";
import { hmacVerificationKey } from "../support/keys.js";
import {
  DOC_API_KEY,
  DOC_SECRET,
  DOC_TIMESTAMP,
  MIXED_BODY,
  MIXED_QUERY,
  MIXED_SIGNATURE,
  REST_PAYLOAD,
  REST_PAYLOAD_NON_ASCII,
  REST_SIGNATURE,
  REST_SIGNATURE_NON_ASCII,
  WS_PARAMS,
  WS_PAYLOAD,
  WS_PAYLOAD_ASCII,
  WS_PAYLOAD_NON_ASCII,
  WS_SIGNATURE,
  WS_SIGNATURE_ASCII,
  WS_SIGNATURE_NON_ASCII,
} from "../support/binance-vectors.js";

/** A verification key holding the documentation's secret, as the key cache would compile it. */
function docKey(): VerificationKey {
  return hmacVerificationKey(DOC_SECRET, { id: "doc-key", account: "doc", scopes: ["trade"], dialects: ["binance"] }, { windowMs: 60_000 });
}

/** Runs the dialect's stages 3, 5 and 6 on a request as the gateway receives it, at the example's time. */
function verifyAsGateway(method: string, query: string | null, body: string): string | undefined {
  const scheme = createBinanceScheme({ scheme: "https", futureSkewMs: 1000 });
  const url = `/api/v3/order${query === null ? "" : `?${query}`}`;
  const headers = { "x-mbx-apikey": DOC_API_KEY, "content-type": "application/x-www-form-urlencoded" };
  const ctx = new RequestContext({ method, url, headers, body: Buffer.from(body), socketAddress: "127.0.0.1" }, "doc", DOC_TIMESTAMP + 10);
  ctx.path = "/api/v3/order";
  ctx.query = query;
  const credential = scheme.extract(ctx);
  if ("ok" in credential) return credential.code;
  const key = docKey();
  return codeOf(credential.fresh(ctx, key)) ?? codeOf(credential.verify(ctx, key));
}

/** The code of a stage's synchronous answer (the Binance stages 5 and 6 never wait). */
function codeOf(answer: StageAnswer): string | undefined {
  if (answer instanceof Promise) throw new Error("expected a synchronous answer");
  return answer?.code;
}

const hmacHex = (secret: string, payload: string): string => createHmac("sha256", Buffer.from(secret, "utf8")).update(payload, "utf8").digest("hex");

describe("Binance's published signing examples", () => {
  it("REST, HMAC: the documented signatures are HMAC-SHA256 of the documented payloads", () => {
    expect(hmacHex(DOC_SECRET, REST_PAYLOAD)).toBe(REST_SIGNATURE);
    expect(hmacHex(DOC_SECRET, REST_PAYLOAD_NON_ASCII)).toBe(REST_SIGNATURE_NON_ASCII);
    expect(hmacHex(DOC_SECRET, MIXED_QUERY + MIXED_BODY)).toBe(MIXED_SIGNATURE);
  });

  it("REST, HMAC: the gateway accepts the documented requests (as a request body, as a query string, non-ASCII, mixed)", () => {
    expect(verifyAsGateway("POST", null, `${REST_PAYLOAD}&signature=${REST_SIGNATURE}`)).toBeUndefined();
    expect(verifyAsGateway("POST", `${REST_PAYLOAD}&signature=${REST_SIGNATURE}`, "")).toBeUndefined();
    expect(verifyAsGateway("POST", `${REST_PAYLOAD_NON_ASCII}&signature=${REST_SIGNATURE_NON_ASCII}`, "")).toBeUndefined();
    expect(verifyAsGateway("POST", MIXED_QUERY, `${MIXED_BODY}&signature=${MIXED_SIGNATURE}`)).toBeUndefined();
  });

  it("REST, HMAC: ...and refuses them once anything differs", () => {
    expect(verifyAsGateway("POST", null, `${REST_PAYLOAD}&signature=${MIXED_SIGNATURE}`)).toBe("SIGNATURE_INVALID");
    // Example 3's note: "There is no & between GTC and quantity=1" — with one, the signature differs.
    expect(verifyAsGateway("POST", `${MIXED_QUERY}&`, `${MIXED_BODY}&signature=${MIXED_SIGNATURE}`)).toBe("SIGNATURE_INVALID");
  });

  it("WebSocket API, HMAC: the payload rule and the documented signatures", () => {
    expect(webSocketSignaturePayload(WS_PARAMS)).toBe(WS_PAYLOAD);
    expect(hmacHex(DOC_SECRET, WS_PAYLOAD)).toBe(WS_SIGNATURE);
    expect(verifyWebSocketSignature(docKey(), { ...WS_PARAMS, signature: WS_SIGNATURE })).toBe(WS_SIGNATURE);
    expect(verifyWebSocketSignature(docKey(), { ...WS_PARAMS, signature: WS_SIGNATURE.toUpperCase() })).toBe(WS_SIGNATURE);
    expect(verifyWebSocketSignature(docKey(), { ...WS_PARAMS, recvWindow: 101, signature: WS_SIGNATURE })).toMatchObject({ code: "SIGNATURE_INVALID" });

    const ascii = { apiKey: DOC_API_KEY, price: "52000.00", quantity: "0.01000000", recvWindow: 100, side: "SELL", symbol: "BTCUSDT", timeInForce: "GTC", timestamp: 1645423376532, type: "LIMIT" };
    expect(webSocketSignaturePayload(ascii)).toBe(WS_PAYLOAD_ASCII);
    expect(hmacHex(DOC_SECRET, WS_PAYLOAD_ASCII)).toBe(WS_SIGNATURE_ASCII);
    expect(verifyWebSocketSignature(docKey(), { ...ascii, signature: WS_SIGNATURE_ASCII })).toBe(WS_SIGNATURE_ASCII);

    const nonAscii = { ...ascii, price: "0.10000000", quantity: "1.00000000", recvWindow: 5000, side: "BUY", symbol: "１２３４５６" };
    expect(webSocketSignaturePayload(nonAscii)).toBe(WS_PAYLOAD_NON_ASCII);
    expect(verifyWebSocketSignature(docKey(), { ...nonAscii, signature: WS_SIGNATURE_NON_ASCII })).toBe(WS_SIGNATURE_NON_ASCII);
    // Raw UTF-8, not percent-encoded as on REST.
    const encoded = { ...nonAscii, symbol: encodeURIComponent(nonAscii.symbol), signature: WS_SIGNATURE_NON_ASCII };
    expect(verifyWebSocketSignature(docKey(), encoded)).toMatchObject({ code: "SIGNATURE_INVALID" });
    expect(verifyWebSocketSignature(docKey(), { ...nonAscii })).toMatchObject({ code: "PARAM_MISSING" });
  });
});

// ---------------------------------------------------------------------------------------------
// The real clients against the demo stack.
// ---------------------------------------------------------------------------------------------

let stack: DemoStack;

type Binance = InstanceType<typeof ccxt.binance>;

const ccxtClient = (apiKey: string, secret: string): Binance => binanceClient(stack.gateway, apiKey, secret);
const hmacKey = (account: string, scopes: string[]): Promise<{ id: string; secret: string }> => binanceHmacKey(stack, account, scopes);

beforeAll(async () => {
  stack = await startCompatStack();
});
afterAll(async () => {
  await stack.close();
});

describe("ccxt binance with an HMAC key", () => {
  it("loads the markets, reads the balance, places and cancels an order", async () => {
    const key = await hmacKey("ccxt-alice", ["read", "trade"]);
    const exchange = ccxtClient(key.id, key.secret);
    const balance = await exchange.fetchBalance();
    expect(balance.total).toMatchObject({ BTC: 2, ETH: 20, USDT: 100000 });
    expect(exchange.market("BTC/USDT").id).toBe("BTCUSDT");

    const order = await exchange.createOrder("BTC/USDT", "limit", "buy", 0.001, 50000);
    expect(order).toMatchObject({ symbol: "BTC/USDT", side: "buy", type: "limit", status: "open", price: 50000, amount: 0.001 });
    expect(stack.exchange.openOrders("ccxt-alice").map((o) => String(o.orderId))).toEqual([order.id]);
    if (order.id === undefined) throw new Error("no order id");
    const locked = await exchange.fetchBalance();
    expect(locked.used).toMatchObject({ USDT: 50 });

    const canceled = await exchange.cancelOrder(order.id, "BTC/USDT");
    expect(canceled).toMatchObject({ id: order.id, status: "canceled" });
    expect(stack.exchange.openOrders("ccxt-alice")).toEqual([]);
  });

  it("a market order fills against the book", async () => {
    const key = await hmacKey("ccxt-bob", ["read", "trade"]);
    const exchange = ccxtClient(key.id, key.secret);
    await exchange.loadMarkets();
    const order = await exchange.createOrder("ETH/USDT", "market", "sell", 0.5);
    expect(order).toMatchObject({ status: "closed", filled: 0.5 });
    expect(stack.exchange.balances("ccxt-bob")?.ETH.free).toBe("19.50000000");
  });
});

describe("@binance/connector Spot with an Ed25519 key", () => {
  interface SpotClient {
    account(): Promise<{ status: number; data: { balances: { asset: string; free: string }[] } }>;
    newOrder(symbol: string, side: string, type: string, options: Record<string, string>): Promise<{ status: number; data: { orderId: number; status: string } }>;
    cancelOrder(symbol: string, options: Record<string, number>): Promise<{ status: number; data: { status: string } }>;
    ping(): Promise<{ status: number; data: unknown }>;
    time(): Promise<{ data: { serverTime: number } }>;
  }
  interface Connector {
    Spot: new (apiKey: string, apiSecret: string, options: Record<string, unknown>) => SpotClient;
    PrivateKeyAlgo: { ED25519: string };
  }
  const connector = createRequire(import.meta.url)("@binance/connector") as Connector;

  function spot(apiKey: string, privateKey: KeyObject): SpotClient {
    return new connector.Spot(apiKey, "", {
      baseURL: stack.gateway,
      privateKey: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
      privateKeyAlgo: connector.PrivateKeyAlgo.ED25519,
    });
  }

  async function edKey(account: string, scopes: string[]): Promise<{ id: string; privateKey: KeyObject }> {
    const pair = generateKeyPairSync("ed25519");
    const created = await stack.createKey({
      account,
      scopes,
      dialects: ["binance"],
      algorithm: "ed25519",
      publicKey: pair.publicKey.export({ type: "spki", format: "pem" }).toString(),
    });
    return { id: created.key.id, privateKey: pair.privateKey };
  }

  it("reads the account, places and cancels an order (public calls carry the key header too)", async () => {
    const key = await edKey("connector-carol", ["read", "trade"]);
    const client = spot(key.id, key.privateKey);
    expect((await client.ping()).data).toEqual({});
    expect(typeof (await client.time()).data.serverTime).toBe("number");
    const account = await client.account();
    expect(account.status).toBe(200);
    expect(account.data.balances.find((b) => b.asset === "USDT")?.free).toBe("100000.00000000");

    const order = await client.newOrder("BTCUSDT", "BUY", "LIMIT", { price: "50000", quantity: "0.001", timeInForce: "GTC" });
    expect(order).toMatchObject({ status: 200, data: { status: "NEW" } });
    expect(stack.exchange.openOrders("connector-carol")).toHaveLength(1);
    const canceled = await client.cancelOrder("BTCUSDT", { orderId: order.data.orderId });
    expect(canceled.data.status).toBe("CANCELED");
  });

  it("an order signed by another private key is refused with -1022", async () => {
    const key = await edKey("connector-dave", ["read", "trade"]);
    const client = spot(key.id, generateKeyPairSync("ed25519").privateKey);
    const err = (await rejection(client.account())) as Error & { response?: { status: number; data: unknown } };
    expect(err.response?.status).toBe(400);
    expect(err.response?.data).toEqual({ code: -1022, msg: "Signature for this request is not valid." });
  });
});

describe("refusals reach ccxt as Binance's errors", () => {
  it("a wrong secret: AuthenticationError (-1022)", async () => {
    const key = await hmacKey("ccxt-erin", ["read", "trade"]);
    const exchange = ccxtClient(key.id, `${key.secret.slice(0, -1)}x`);
    const err = await rejection(exchange.fetchBalance());
    expect(err).toBeInstanceOf(ccxt.AuthenticationError);
    expect(err.message).toContain('"code":-1022');
  });

  it("an unknown key: AuthenticationError (-2015)", async () => {
    const key = await hmacKey("ccxt-frank", ["read"]);
    const exchange = ccxtClient(`${key.id.slice(0, -1)}${key.id.endsWith("A") ? "B" : "A"}`, key.secret);
    const err = await rejection(exchange.fetchBalance());
    expect(err).toBeInstanceOf(ccxt.AuthenticationError);
    expect(err.message).toMatch(/"code":-201[45]/);
  });

  it("a stale timestamp (ccxt's clock 10 minutes behind): InvalidNonce (-1021)", async () => {
    const key = await hmacKey("ccxt-grace", ["read", "trade"]);
    const exchange = ccxtClient(key.id, key.secret);
    exchange.options.timeDifference = 10 * 60_000;
    const err = await rejection(exchange.fetchBalance());
    expect(err).toBeInstanceOf(ccxt.InvalidNonce);
    expect(err.message).toContain('"code":-1021');
    // Synchronising with the venue's clock (through the gateway) fixes it.
    exchange.options.timeDifference = 0;
    await exchange.loadTimeDifference();
    expect((await exchange.fetchBalance()).total).toMatchObject({ USDT: 100000 });
  });

  it("a read-only key placing an order: AuthenticationError (-2015) on a fresh instance", async () => {
    // ccxt reads -2015 as a temporary ban (DDoSProtection) once an instance has authenticated, so
    // the order goes first on a new instance.
    const key = await hmacKey("ccxt-heidi", ["read"]);
    const exchange = ccxtClient(key.id, key.secret);
    await exchange.loadMarkets();
    const err = await rejection(exchange.createOrder("BTC/USDT", "limit", "buy", 0.001, 50000));
    expect(err).toBeInstanceOf(ccxt.AuthenticationError);
    expect(err.message).toContain('"code":-2015');
    expect(stack.exchange.openOrders("ccxt-heidi")).toEqual([]);
    expect((await exchange.fetchBalance()).total).toMatchObject({ BTC: 2 });
  });

  it("a key over its weight limit: DDoSProtection (429, -1003) as from Binance, after the used-weight header", async () => {
    const key = await hmacKey("ccxt-ivan", ["read"]);
    // A per-key override: 40 units a minute, two account reads (weight 20 each).
    await stack.running.core.keys.setLimits(key.id, { "key-weight-1m": 40 }, "test");
    const exchange = ccxtClient(key.id, key.secret);
    await exchange.fetchBalance();
    const used = (exchange.last_response_headers as Record<string, string> | undefined)?.["X-Mbx-Used-Weight-1m"];
    expect(Number(used)).toBeGreaterThanOrEqual(20);
    await exchange.fetchBalance();
    const err = await rejection(exchange.fetchBalance());
    // ccxt's binance turns every 418 and 429 into DDoSProtection before it reads the body.
    expect(err).toBeInstanceOf(ccxt.DDoSProtection);
    expect(err.message).toContain('"code":-1003');
  });
});
