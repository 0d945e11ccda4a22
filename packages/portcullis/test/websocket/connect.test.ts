/**
 * WebSocket connections through the gateway to the demo exchange's WebSocket API (real sockets,
 * real ws clients, a frozen clock): signed upgrades with an API key and with a session token,
 * Binance-style session.logon and signed requests, per-message scopes and limits, malformed
 * frames, and every refusal with its code.
 */
import { generateKeyPairSync, sign, type KeyObject } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { webSocketSignaturePayload } from "../../src/dialects/binance/signature.js";
import { signRequest } from "../support/harness.js";
import { type Answer, type WsStack, WsClient, binanceSign, refusedUpgrade, signedUpgrade, startWsStack, wsEdKey, wsHmacKey } from "../support/websocket.js";

const PATH = "/ws-api/v3";
let s: WsStack;
const clients: WsClient[] = [];

beforeAll(async () => {
  s = await startWsStack();
});
afterAll(async () => {
  for (const c of clients) c.ws.terminate();
  await s.close();
});

async function connect(headers: Record<string, string> = {}, path = PATH): Promise<WsClient> {
  const c = await WsClient.connect(`${s.wsUrl}${path}`, headers);
  clients.push(c);
  return c;
}

function hmacKey(account: string, scopes: string[], dialects?: string[]): Promise<{ id: string; secret: string }> {
  return wsHmacKey(s, account, scopes, dialects);
}

function edKey(account: string, scopes: string[]): Promise<{ id: string; privateKey: KeyObject }> {
  return wsEdKey(s, account, scopes);
}

const LIMIT_BUY = { symbol: "BTCUSDT", side: "BUY", type: "LIMIT", timeInForce: "GTC", quantity: "0.001", price: "50000" };

function code(a: Answer): number | string | undefined {
  return a.error?.code;
}

describe("a natively signed upgrade", () => {
  it("with an API key connects and trades through the gateway to the demo exchange", async () => {
    const key = await hmacKey("ws-alice", ["read", "trade"]);
    const c = await connect(signedUpgrade(s, PATH, key.id, key.secret));
    expect(await c.request("time")).toEqual({ id: "r1", status: 200, result: { serverTime: s.clock.ms } });
    const account = await c.request("account.status");
    expect(account.status).toBe(200);
    expect((account.result as { balances: { asset: string; free: string }[] }).balances.find((b) => b.asset === "USDT")?.free).toBe("100000.00000000");
    const order = await c.request("order.place", LIMIT_BUY);
    expect(order).toMatchObject({ status: 200, result: { symbol: "BTCUSDT", status: "NEW", side: "BUY" } });
    expect(s.exchange.openOrders("ws-alice")).toHaveLength(1);
    const open = await c.request("openOrders.status", { symbol: "BTCUSDT" });
    expect((open.result as unknown[]).length).toBe(1);
    const orderId = (order.result as { orderId: number }).orderId;
    expect(await c.request("order.cancel", { symbol: "BTCUSDT", orderId })).toMatchObject({ status: 200, result: { status: "CANCELED" } });
    expect(s.exchange.openOrders("ws-alice")).toEqual([]);
    // A refusal by the exchange itself comes back as it answered (a quantity below the lot size)...
    expect(await c.request("order.place", { ...LIMIT_BUY, quantity: "0.000001" })).toMatchObject({ status: 400, error: { code: -1013 } });
    // ...while an order.place that is no order at all is refused by the gateway, which reads the
    // message as the REST twin's operation (docs/guardrails.md), and never reaches the exchange.
    expect(await c.request("order.place", { ...LIMIT_BUY, quantity: "-1" })).toMatchObject({ status: 400, error: { code: -1130 } });
  });

  it("with a session token connects; a message beyond the session's scopes is refused without closing", async () => {
    const key = await hmacKey("ws-bob", ["read", "trade"]);
    const body = JSON.stringify({ scopes: ["read"] });
    const headers = signRequest({ method: "POST", url: "/portcullis/v1/session", host: s.host, keyId: key.id, key: key.secret, created: s.clock.seconds, body });
    const res = await fetch(`${s.httpUrl}/portcullis/v1/session`, { method: "POST", headers: { ...headers, "content-type": "application/json" }, body });
    expect(res.status).toBe(201);
    const session = (await res.json()) as { keyid: string; secret: string };
    const c = await connect(signedUpgrade(s, PATH, session.keyid, session.secret));
    expect((await c.request("account.status")).status).toBe(200);
    const refused = await c.request("order.place", LIMIT_BUY);
    expect(refused).toEqual({ id: "r2", status: 401, error: { code: -2015, msg: "Invalid API-key, IP, or permissions for action." } });
    expect(s.exchange.openOrders("ws-bob")).toEqual([]);
    expect(c.ws.readyState).toBe(c.ws.OPEN);
    // ...and a permitted message still works.
    expect((await c.request("openOrders.status", { symbol: "BTCUSDT" })).status).toBe(200);
    const log = s.logLines.join("");
    expect(log).toContain('"code":"SCOPE_MISSING"');
    // Logged by key id and connection id; never the token or its secret.
    expect(log).not.toContain(session.keyid);
    expect(log).not.toContain(session.secret);
    expect(log).not.toContain(key.secret);
  });

  it("with an Ed25519 key (one signature at the upgrade) trades", async () => {
    const key = await edKey("ws-carol", ["read", "trade"]);
    const c = await connect(signedUpgrade(s, PATH, key.id, key.privateKey, { alg: "ed25519" }));
    expect((await c.request("order.place", { symbol: "BTCUSDT", side: "BUY", type: "MARKET", quantity: "0.01" })).status).toBe(200);
  });
});

describe("refused upgrades: an HTTP answer with a code, before the upgrade completes", () => {
  it("a bad signature is 401 SIGNATURE_INVALID; a replayed upgrade 409 NONCE_REPLAYED", async () => {
    const key = await hmacKey("ws-dave", ["read"]);
    const bad = await refusedUpgrade(WsClient.connect(`${s.wsUrl}${PATH}`, signedUpgrade(s, PATH, key.id, `${key.secret}x`)));
    expect({ status: bad.status, code: bad.json.code }).toEqual({ status: 401, code: "SIGNATURE_INVALID" });
    const headers = signedUpgrade(s, PATH, key.id, key.secret, { nonce: "replayed-nonce-1" });
    const first = await connect(headers);
    await first.close();
    const again = await refusedUpgrade(WsClient.connect(`${s.wsUrl}${PATH}`, headers));
    expect({ status: again.status, code: again.json.code }).toEqual({ status: 409, code: "NONCE_REPLAYED" });
  });

  it("a revoked key is 401 KEY_REVOKED; a path no WebSocket route maps is 404 ROUTE_NOT_FOUND", async () => {
    const key = await hmacKey("ws-erin", ["read"]);
    await s.core.keys.revoke(key.id, "test");
    const revoked = await refusedUpgrade(WsClient.connect(`${s.wsUrl}${PATH}`, signedUpgrade(s, PATH, key.id, key.secret)));
    expect({ status: revoked.status, code: revoked.json.code }).toEqual({ status: 401, code: "KEY_REVOKED" });
    const unmapped = await refusedUpgrade(WsClient.connect(`${s.wsUrl}/ws-api/v4`));
    expect({ status: unmapped.status, code: unmapped.json.code }).toEqual({ status: 404, code: "ROUTE_NOT_FOUND" });
    expect(unmapped.body).not.toMatch(/\bat .*\.(ts|js):\d+/);
  });
});

describe("Binance WebSocket API authentication", () => {
  it("unauthenticated: public methods work, others get Binance's error without closing", async () => {
    // A Binance client's X-MBX-APIKEY on the upgrade does not sign it (Binance's WebSocket API reads no headers).
    const c = await connect({ "x-mbx-apikey": "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A" });
    expect((await c.request("ping")).status).toBe(200);
    expect(await c.request("account.status")).toEqual({ id: "r2", status: 400, error: { code: -1102, msg: "Mandatory parameter 'apiKey' was not sent, was empty/null, or malformed." } });
    expect(await c.request("session.status")).toMatchObject({ status: 200, result: { apiKey: null, authorizedSince: null } });
    expect((await c.request("time")).status).toBe(200);
  });

  it("session.logon with an Ed25519 key, then order.place without apiKey or signature; session.logout", async () => {
    const key = await edKey("ws-frank", ["read", "trade"]);
    const c = await connect();
    const logon = await c.request("session.logon", binanceSign({ apiKey: key.id, timestamp: s.clock.ms }, key.privateKey));
    expect(logon).toMatchObject({ status: 200, result: { apiKey: key.id, authorizedSince: s.clock.ms, returnRateLimits: false, userDataStream: false } });
    const order = await c.request("order.place", { ...LIMIT_BUY, timestamp: s.clock.ms });
    expect(order).toMatchObject({ status: 200, result: { status: "NEW" } });
    expect(s.exchange.openOrders("ws-frank")).toHaveLength(1);
    // Logged on, a SIGNED request still needs a fresh timestamp, as on Binance.
    expect(code(await c.request("account.status"))).toBe(-1102);
    expect(code(await c.request("account.status", { timestamp: s.clock.ms - 60_000 }))).toBe(-1021);
    expect(await c.request("session.status")).toMatchObject({ result: { apiKey: key.id } });
    expect(await c.request("session.logout")).toMatchObject({ status: 200, result: { apiKey: null } });
    expect(code(await c.request("account.status", { timestamp: s.clock.ms }))).toBe(-1102);
  });

  it("refuses logons with Binance's codes: HMAC -4056, RSA -4057, bad signature -1022, stale -1021, replayed -1021, missing signature -1102", async () => {
    const c = await connect();
    const hmac = await hmacKey("ws-grace", ["read"]);
    expect(await c.request("session.logon", binanceSign({ apiKey: hmac.id, timestamp: s.clock.ms }, hmac.secret))).toMatchObject({
      status: 400,
      error: { code: -4056, msg: "HMAC_SHA256 API key is not supported." },
    });
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const rsaKey = await s.createKey({ account: "ws-grace", scopes: ["read"], dialects: ["binance"], algorithm: "rsa", publicKey: rsa.publicKey.export({ type: "spki", format: "pem" }).toString() });
    const rsaParams = { apiKey: rsaKey.key.id, timestamp: s.clock.ms };
    const rsaSignature = sign("sha256", Buffer.from(webSocketSignaturePayload(rsaParams), "utf8"), rsa.privateKey).toString("base64");
    expect(await c.request("session.logon", { ...rsaParams, signature: rsaSignature })).toMatchObject({ status: 400, error: { code: -4057, msg: "RSA API key is not supported." } });
    const ed = await edKey("ws-grace", ["read"]);
    const other = generateKeyPairSync("ed25519").privateKey;
    expect(await c.request("session.logon", binanceSign({ apiKey: ed.id, timestamp: s.clock.ms }, other))).toMatchObject({ status: 400, error: { code: -1022 } });
    expect(await c.request("session.logon", binanceSign({ apiKey: ed.id, timestamp: s.clock.ms - 10_000 }, ed.privateKey))).toMatchObject({ status: 400, error: { code: -1021 } });
    const once = binanceSign({ apiKey: ed.id, timestamp: s.clock.ms }, ed.privateKey);
    expect((await c.request("session.logon", once)).status).toBe(200);
    expect(await c.request("session.logon", once)).toMatchObject({ status: 400, error: { code: -1021 } });
    expect(await c.request("session.logon", { apiKey: ed.id, timestamp: s.clock.ms })).toMatchObject({ status: 400, error: { code: -1102 } });
    expect(await c.request("session.logon", { apiKey: "nope", timestamp: s.clock.ms, signature: "x" })).toMatchObject({ status: 401, error: { code: -2014 } });
    expect(c.ws.readyState).toBe(c.ws.OPEN);
    const log = s.logLines.join("");
    expect(log).toContain('"code":"LOGON_KEY_TYPE_NOT_SUPPORTED"');
    for (const secret of [String(once.signature), rsaSignature, hmac.secret]) expect(log).not.toContain(secret);
  });

  it("a single signed request (HMAC, the connector's way) acts for its own key, once", async () => {
    const key = await hmacKey("ws-heidi", ["read", "trade"]);
    const c = await connect();
    const signed = binanceSign({ ...LIMIT_BUY, apiKey: key.id, timestamp: s.clock.ms }, key.secret);
    expect(await c.request("order.place", signed)).toMatchObject({ status: 200, result: { status: "NEW" } });
    expect(s.exchange.openOrders("ws-heidi")).toHaveLength(1);
    expect(await c.request("order.place", signed)).toMatchObject({ status: 400, error: { code: -1021 } });
    expect(await c.request("order.place", { ...signed, quantity: "0.002" })).toMatchObject({ status: 400, error: { code: -1022 } });
    expect(s.exchange.openOrders("ws-heidi")).toHaveLength(1);
  });

  it("credentials never reach the upstream: an unsigned message's apiKey is removed on a logged-on connection and on one signed at its upgrade", async () => {
    // The demo exchange refuses a message that still carries apiKey or signature (-1104).
    const ed = await edKey("ws-judy", ["read", "trade"]);
    const loggedOn = await connect();
    expect((await loggedOn.request("session.logon", binanceSign({ apiKey: ed.id, timestamp: s.clock.ms }, ed.privateKey))).status).toBe(200);
    expect(await loggedOn.request("account.status", { apiKey: ed.id, timestamp: s.clock.ms })).toMatchObject({ status: 200, result: { accountType: "SPOT" } });
    expect(await loggedOn.request("order.place", { ...LIMIT_BUY, apiKey: ed.id, timestamp: s.clock.ms })).toMatchObject({ status: 200, result: { status: "NEW" } });
    const key = await hmacKey("ws-judy", ["read"]);
    const upgraded = await connect(signedUpgrade(s, PATH, key.id, key.secret));
    expect(await upgraded.request("account.status", { apiKey: key.id })).toMatchObject({ status: 200, result: { accountType: "SPOT" } });
    expect((await upgraded.request("time", { apiKey: "anything" })).status).toBe(200);
  });

  it("a connection authenticated at its upgrade cannot log on as another key", async () => {
    const key = await hmacKey("ws-ivan", ["read"]);
    const ed = await edKey("ws-ivan", ["read"]);
    const c = await connect(signedUpgrade(s, PATH, key.id, key.secret));
    expect(await c.request("session.logon", binanceSign({ apiKey: ed.id, timestamp: s.clock.ms }, ed.privateKey))).toMatchObject({ status: 400, error: { code: -1020 } });
    expect(await c.request("session.status")).toMatchObject({ result: { apiKey: key.id } });
  });
});

describe("malformed frames get a clear error; nothing from the network closes or crashes the gateway", () => {
  it("invalid JSON, a binary frame, a non-object, a bad id, an unknown method, bad params", async () => {
    const c = await connect();
    expect(await c.send("{nope", null)).toEqual({ id: null, status: 400, error: { code: -1135, msg: "Invalid JSON Request" } });
    expect(await c.send(Buffer.from([0x7b, 0x7d]), null, true)).toMatchObject({ id: null, status: 400, error: { code: -1102 } });
    expect(await c.send("[1,2]", null)).toMatchObject({ id: null, error: { code: -1102 } });
    expect(await c.send('{"id":{"a":1},"method":"time"}', null)).toMatchObject({ id: null, error: { code: -1102 } });
    expect(await c.send('{"id":"x","method":"time","extra":1}', "x")).toMatchObject({ id: "x", error: { code: -1102 } });
    expect(await c.request("withdraw.apply")).toMatchObject({ status: 400, error: { code: -1020, msg: "This operation is not supported." } });
    expect(await c.request("time", { nested: { a: 1 } })).toMatchObject({ error: { code: -1102 } });
    expect(await c.send('{"id":7,"method":"time","params":[]}', 7)).toMatchObject({ id: 7, error: { code: -1102 } });
    expect((await c.request("time")).status).toBe(200);
  });

  it("an oversized message closes the connection with 1009", async () => {
    const c = await connect();
    c.ws.send(JSON.stringify({ id: 1, method: "time", params: { pad: "x".repeat(70 * 1024) } }));
    expect((await c.closed).code).toBe(1009);
    const next = await connect();
    expect((await next.request("time")).status).toBe(200);
  });
});
