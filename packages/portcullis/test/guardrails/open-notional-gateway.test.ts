/**
 * The open-notional step of the lifecycle (pipeline/open-notional.ts) through the gateway
 * (in-process inject, a real upstream on a loopback port, real storage, a frozen clock): a forward
 * that fails releases, an answer the gateway cannot read as done keeps the reservation until its
 * TTL, a session shares its key's ledger, and a hot store without a ledger fails closed.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RouteSpec } from "../../src/authz/routes.js";
import { ledgerText } from "../../src/operations/open-orders.js";
import { StaticPrices } from "../../src/operations/prices.js";
import { type TestGateway, makeGateway } from "../support/gateway.js";
import { signRequest } from "../support/harness.js";
import { replayOnlyHot } from "../support/hot.js";

const ROUTES: RouteSpec[] = [
  { method: "POST", path: "/api/v3/order", permission: "trade", tags: ["order"], dialect: "binance", operation: "order.place" },
  { method: "DELETE", path: "/api/v3/order", permission: "trade", tags: ["cancel"], dialect: "binance", operation: "order.cancel" },
];
const PRICES = new StaticPrices({ symbols: { BTCUSDT: "60000" } });
const TTL = 60_000;

interface Answer {
  readonly status: number;
  readonly json: Record<string, unknown>;
}

async function send(g: TestGateway, keyId: string, secret: string, body: unknown): Promise<Answer> {
  const payload = JSON.stringify(body);
  const headers = signRequest({ method: "POST", url: "/api/v3/order", keyId, key: secret, created: g.clock.seconds, body: payload });
  const res = await g.inject({ method: "POST", url: "/api/v3/order", headers: { ...headers, "content-type": "application/json" }, payload });
  return { status: res.statusCode, json: res.json<Record<string, unknown>>() };
}

const order = (g: TestGateway, key: { id: string; secret: string }, quantity: string, type = "LIMIT") =>
  send(g, key.id, key.secret, type === "LIMIT" ? { symbol: "BTCUSDT", side: "BUY", type, timeInForce: "GTC", quantity, price: "60000" } : { symbol: "BTCUSDT", side: "BUY", type, quantity });

async function total(g: TestGateway, keyId: string): Promise<string> {
  const ledger = g.core.hot.openOrders;
  if (ledger === undefined) throw new Error("no ledger");
  return ledgerText((await ledger.open(keyId, g.clock.now())).total);
}

describe("with an upstream that answers", () => {
  let g: TestGateway;
  let key: { id: string; secret: string };

  beforeAll(async () => {
    g = await makeGateway({ routes: ROUTES, sessions: true, prices: PRICES, openOrders: { ttlMs: TTL } });
    const created = await g.createKey({ scopes: ["trade"], guardrails: { maxOpenNotional: "120000" } });
    key = { id: created.key.id, secret: created.secret ?? "" };
  });
  afterAll(async () => {
    await g.close();
  });

  it("an answer that does not say the order ended keeps it counted until its TTL (frozen clock)", async () => {
    expect((await order(g, key, "1")).status).toBe(200);
    // A market order is measured at quantity × the reference price.
    expect((await order(g, key, "1", "MARKET")).status).toBe(200);
    expect(await total(g, key.id)).toBe("120000");
    const refused = await order(g, key, "0.00000001");
    expect(refused).toMatchObject({ status: 403, json: { code: "GUARDRAIL_OPEN_NOTIONAL" } });
    const forwarded = g.upstream.requests.length;
    expect((await order(g, key, "0.00000001")).status).toBe(403);
    expect(g.upstream.requests.length).toBe(forwarded);
    g.clock.advance(TTL - 1);
    expect((await order(g, key, "0.00000001")).status).toBe(403);
    g.clock.advance(1);
    expect(await total(g, key.id)).toBe("0");
    expect((await order(g, key, "2")).status).toBe(200);
    expect(await total(g, key.id)).toBe("120000");
    g.clock.advance(TTL);
  });

  it("a session of the key shares its key's ledger", async () => {
    const logon = signRequest({ method: "POST", url: "/portcullis/v1/session", keyId: key.id, key: key.secret, created: g.clock.seconds });
    const res = await g.inject({ method: "POST", url: "/portcullis/v1/session", headers: logon });
    expect(res.statusCode).toBe(201);
    const session = res.json<{ keyid: string; secret: string }>();
    expect((await order(g, { id: session.keyid, secret: session.secret }, "1.5")).status).toBe(200);
    expect(await total(g, key.id)).toBe("90000");
    expect((await order(g, key, "0.6")).json.code).toBe("GUARDRAIL_OPEN_NOTIONAL");
    expect((await order(g, key, "0.5")).status).toBe(200);
    expect((await order(g, { id: session.keyid, secret: session.secret }, "0.00000001")).json.code).toBe("GUARDRAIL_OPEN_NOTIONAL");
  });

  it("a market order with no reference price is refused GUARDRAIL_NO_REFERENCE_PRICE, nothing reserved", async () => {
    const other = await g.createKey({ scopes: ["trade"], guardrails: { maxOpenNotional: "1000" } });
    const res = await send(g, other.key.id, other.secret ?? "", { symbol: "ETHUSDT", side: "BUY", type: "MARKET", quantity: "1" });
    expect(res).toMatchObject({ status: 403, json: { code: "GUARDRAIL_NO_REFERENCE_PRICE" } });
    expect(await total(g, other.key.id)).toBe("0");
  });
});

describe("with an upstream that cannot be reached", () => {
  it("the failed forward releases its reservation", async () => {
    const g = await makeGateway({ routes: ROUTES, prices: PRICES }, { upstreamUrl: "http://127.0.0.1:9", upstreamTimeoutMs: 2_000 });
    try {
      const created = await g.createKey({ scopes: ["trade"], guardrails: { maxOpenNotional: "60000" } });
      const key = { id: created.key.id, secret: created.secret ?? "" };
      const res = await order(g, key, "1");
      expect(res).toMatchObject({ status: 502, json: { code: "UPSTREAM_UNAVAILABLE" } });
      expect(await total(g, key.id)).toBe("0");
      expect((await order(g, key, "1")).json.code).toBe("UPSTREAM_UNAVAILABLE");
    } finally {
      await g.close();
    }
  });
});

describe("a hot store without a ledger", () => {
  it("fails closed for a key with the guardrail (HOT_STORE_UNAVAILABLE), and costs a key without it nothing", async () => {
    const g = await makeGateway({ routes: ROUTES, prices: PRICES, hot: replayOnlyHot(() => "fresh") });
    try {
      const capped = await g.createKey({ scopes: ["trade"], guardrails: { maxOpenNotional: "60000" } });
      const res = await order(g, { id: capped.key.id, secret: capped.secret ?? "" }, "1");
      expect(res).toMatchObject({ status: 503, json: { code: "HOT_STORE_UNAVAILABLE" } });
      const plain = await g.createKey({ scopes: ["trade"] });
      expect((await order(g, { id: plain.key.id, secret: plain.secret ?? "" }, "1")).status).toBe(200);
    } finally {
      await g.close();
    }
  });
});
