/**
 * The behaviour event of a decided request (behaviour/event.ts), from contexts the real pipeline
 * decided (a core on a temporary data directory, a frozen clock): orders valued from the request or
 * from reference prices, withdrawals with their destination and value, the client's network
 * prefix, refusals with their code, and bad credentials on a found key as authentication failures.
 */
import { createHmac } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RouteSpec } from "../../src/authz/routes.js";
import { AUTH_FAILURE_CODES, behaviourEvent } from "../../src/behaviour/event.js";
import type { RequestContext } from "../../src/contract/request.js";
import { ERROR_CODES } from "../../src/errors/catalogue.js";
import { StaticPrices } from "../../src/operations/prices.js";
import { KEY_FAILURES } from "../../src/pipeline/stages/failures.js";
import { type TestCore, makeCore, signRequest } from "../support/harness.js";

const ROUTES: RouteSpec[] = [
  { method: "GET", path: "/api/v3/account", permission: "read", dialect: "binance" },
  { method: "POST", path: "/api/v3/order", permission: "trade", dialect: "binance", operation: "order.place" },
  { method: "DELETE", path: "/api/v3/order", permission: "trade", dialect: "binance", operation: "order.cancel" },
  { method: "POST", path: "/native/withdraw", permission: "withdraw", operation: "withdraw" },
  { method: "POST", path: "/native/transfer", permission: "withdraw", operation: "transfer" },
];

const PRICES = new StaticPrices({ symbols: { BTCUSDT: "60000", ETHUSDT: "3000" }, assets: { USDT: "1", BTC: "60000" } });

let t: TestCore;
let key: { id: string; secret: string; createdAt: number };
let readOnly: { id: string; secret: string };

beforeAll(async () => {
  t = await makeCore({ routes: ROUTES });
  const createdAt = t.clock.ms;
  const k = await t.createKey({ account: "acct-b", dialects: ["binance", "native"], scopes: ["read", "trade", "withdraw"] });
  key = { id: k.key.id, secret: k.secret ?? "", createdAt };
  t.clock.advance(60_000);
  const r = await t.createKey({ account: "acct-b", dialects: ["binance"], scopes: ["read"] });
  readOnly = { id: r.key.id, secret: r.secret ?? "" };
  t.clock.advance(60_000);
});
afterAll(async () => {
  await t.cleanup();
});

function binance(method: string, path: string, params: string, options: { id?: string; secret?: string; address?: string } = {}): Promise<RequestContext> | RequestContext {
  const payload = `${params}&timestamp=${String(t.clock.ms)}`;
  const signature = createHmac("sha256", options.secret ?? key.secret).update(payload).digest("hex");
  return t.core.pipeline.run({
    method,
    url: `${path}?${payload}&signature=${signature}`,
    headers: { host: "gateway.test", "x-mbx-apikey": options.id ?? key.id },
    body: Buffer.alloc(0),
    socketAddress: options.address ?? "198.51.100.23",
  });
}

function native(url: string, body: string): Promise<RequestContext> | RequestContext {
  const headers = signRequest({ method: "POST", url, body, keyId: key.id, key: key.secret, created: t.clock.seconds });
  return t.core.pipeline.run({ method: "POST", url, headers: { ...headers, "content-type": "application/json" }, body: Buffer.from(body), socketAddress: "2001:db8:aa:bb::5" });
}

describe("behaviourEvent", () => {
  it("an allowed limit order: its key, account, creation, route, symbol, side, size and value as sent, the client and its /24", async () => {
    const ctx = await binance("POST", "/api/v3/order", "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.5&price=60000");
    expect(ctx.denial).toBeNull();
    expect(behaviourEvent(ctx, "allowed", null)).toEqual({
      keyId: key.id,
      account: "acct-b",
      at: t.clock.ms,
      keyCreatedAt: key.createdAt,
      keyLastUsedAt: null,
      route: "POST /api/v3/order",
      operation: "order.place",
      symbol: "BTCUSDT",
      side: "buy",
      quantity: 0.5,
      notional: 30_000,
      asset: null,
      amount: null,
      value: null,
      destination: null,
      client: "198.51.100.23",
      network: "198.51.100.0/24",
      outcome: "allowed",
      code: null,
      authFailure: false,
      verified: true,
    });
  });

  it("a market order by quantity is valued at the reference price, and left unvalued without prices", async () => {
    const ctx = await binance("POST", "/api/v3/order", "symbol=ETHUSDT&side=SELL&type=MARKET&quantity=2");
    expect(ctx.denial).toBeNull();
    expect(behaviourEvent(ctx, "allowed", PRICES)).toMatchObject({ symbol: "ETHUSDT", side: "sell", quantity: 2, notional: 6000 });
    expect(behaviourEvent(ctx, "allowed", null)).toMatchObject({ quantity: 2, notional: null });
    // A failed hand on carries its outcome code.
    ctx.outcome = "UPSTREAM_TIMEOUT";
    expect(behaviourEvent(ctx, "failed", PRICES)).toMatchObject({ outcome: "failed", code: "UPSTREAM_TIMEOUT", authFailure: false });
  });

  it("a cancel carries its symbol, no size", async () => {
    const ctx = await binance("DELETE", "/api/v3/order", "symbol=BTCUSDT&orderId=12345");
    expect(ctx.denial).toBeNull();
    expect(behaviourEvent(ctx, "allowed", PRICES)).toMatchObject({ operation: "order.cancel", symbol: "BTCUSDT", side: null, quantity: null, notional: null });
  });

  it("a withdrawal: asset, amount, value in the reference currency, destination; IPv6 clients grouped, network /48", async () => {
    const ctx = await native("/native/withdraw", '{"asset":"usdt","amount":"2500.5","address":"TQn9Y2khEsLJW1ChVWFMSMeRDow5KcbLSE","network":"TRX"}');
    expect(ctx.denial).toBeNull();
    const e = behaviourEvent(ctx, "held", PRICES);
    expect(e).toMatchObject({ operation: "withdraw", asset: "USDT", amount: 2500.5, value: 2500.5, destination: "TQn9Y2khEsLJW1ChVWFMSMeRDow5KcbLSE", outcome: "held", route: "POST /native/withdraw" });
    expect(e?.client).toBe(ctx.client?.group);
    expect(e?.network).toBe("2001:db8:aa::/48");
    // An asset without a price: no value.
    const btc = await native("/native/withdraw", '{"asset":"DOGE","amount":"10","address":"DAddr"}');
    expect(behaviourEvent(btc, "allowed", PRICES)).toMatchObject({ asset: "DOGE", amount: 10, value: null, destination: "DAddr" });
  });

  it("a transfer: asset, amount and value, no destination", async () => {
    const ctx = await native("/native/transfer", '{"asset":"BTC","amount":"0.25","from":"spot","to":"futures"}');
    expect(ctx.denial).toBeNull();
    expect(behaviourEvent(ctx, "allowed", PRICES)).toMatchObject({ operation: "transfer", asset: "BTC", amount: 0.25, value: 15_000, destination: null });
  });

  it("a wrong signature on a found key is an authentication failure; a missing scope is a refusal but not one", async () => {
    const bad = await binance("GET", "/api/v3/account", "omitZeroBalances=true", { secret: "not-the-secret" });
    expect(bad.denial?.code).toBe("SIGNATURE_INVALID");
    expect(behaviourEvent(bad, "refused", null)).toMatchObject({ keyId: key.id, outcome: "refused", code: "SIGNATURE_INVALID", authFailure: true, route: "GET /api/v3/account", operation: null });
    const scope = await binance("POST", "/api/v3/order", "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=1", { id: readOnly.id, secret: readOnly.secret });
    expect(scope.denial?.code).toBe("SCOPE_MISSING");
    expect(behaviourEvent(scope, "refused", null)).toMatchObject({ keyId: readOnly.id, code: "SCOPE_MISSING", authFailure: false });
  });

  it("no key found (unknown id, no credentials): nothing to attribute, null", async () => {
    const unknown = await binance("GET", "/api/v3/account", "a=1", { id: "no-such-key-id" });
    expect(unknown.denial).not.toBeNull();
    expect(behaviourEvent(unknown, "refused", null)).toBeNull();
    const anonymous = await t.core.pipeline.run({ method: "GET", url: "/nowhere", headers: { host: "gateway.test" }, body: Buffer.alloc(0), socketAddress: "10.0.0.1" });
    expect(behaviourEvent(anonymous, "refused", null)).toBeNull();
  });

  it("a session-signed request is its API key's: attributed to the key's record", async () => {
    const ctx = await binance("GET", "/api/v3/account", "b=1");
    const base = ctx.key;
    if (base === null) throw new Error("no key");
    const now = t.clock.ms;
    ctx.key = { ...base, session: { v: 1, sid: "c2Vzc2lvbi1pZC0xMjM0NQ", key: base.record.id, env: "test", ep: 0, scp: ["read"], iat: now, exp: now + 60_000, auth: now, kid: "k1" } };
    expect(behaviourEvent(ctx, "allowed", null)?.keyId).toBe(key.id);
  });

  it("the authentication-failure codes are catalogue codes and include the pipeline's key failures", () => {
    for (const code of AUTH_FAILURE_CODES) expect(ERROR_CODES).toContain(code);
    for (const code of KEY_FAILURES) expect(AUTH_FAILURE_CODES.has(code)).toBe(true);
  });
});
