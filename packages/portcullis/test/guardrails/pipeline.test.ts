/**
 * The guard stage in the pipeline (pipeline/stages/guardrails.ts), through a gateway (in-process
 * inject, a real upstream that records what reaches it) on real storage: right after the
 * operation stage, skipped with it on a route that declares no operation; a refusal is audited
 * with its operation and never forwarded; a session of the key and a rotated successor inherit the
 * guardrails; a change of the guardrails reaches the request path at once.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RouteSpec } from "../../src/authz/routes.js";
import type { AuditEntry } from "../../src/audit/events.js";
import { StaticPrices } from "../../src/operations/prices.js";
import { valueOrThrow } from "../../src/errors/result.js";
import { parseRotateKeyInput, parseUpdateKeyInput } from "../../src/keys/input.js";
import { readEntries } from "../audit/support.js";
import { type TestGateway, makeGateway } from "../support/gateway.js";
import { signRequest } from "../support/harness.js";

const ROUTES: RouteSpec[] = [
  { method: "GET", path: "/api/v3/account", permission: "read", dialect: "binance" },
  { method: "POST", path: "/api/v3/order", permission: "trade", tags: ["order"], dialect: "binance", operation: "order.place" },
  { method: "POST", path: "/sapi/v1/capital/withdraw/apply", permission: "withdraw", dialect: "binance", operation: "withdraw" },
];

const GUARDRAILS = { symbols: ["BTCUSDT"], maxQuantity: "2", maxNotional: "100000", priceBandPct: "5", withdrawAssets: ["USDT"] };

let g: TestGateway;
let key: { id: string; secret: string };

beforeAll(async () => {
  g = await makeGateway({ routes: ROUTES, sessions: true, timing: true, prices: new StaticPrices({ symbols: { BTCUSDT: "60000" } }) });
  const created = await g.createKey({ scopes: ["read", "trade", "withdraw"], guardrails: GUARDRAILS });
  key = { id: created.key.id, secret: created.secret ?? "" };
});
afterAll(async () => {
  await g.close();
});

interface Answer {
  readonly status: number;
  readonly json: Record<string, unknown>;
}

async function send(method: string, url: string, keyId: string, secret: string, body?: unknown): Promise<Answer> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const headers = signRequest({ method, url, keyId, key: secret, created: g.clock.seconds, ...(payload === undefined ? {} : { body: payload }) });
  const res = await g.inject({ method, url, headers: { ...headers, ...(payload === undefined ? {} : { "content-type": "application/json" }) }, ...(payload === undefined ? {} : { payload }) });
  return { status: res.statusCode, json: res.json<Record<string, unknown>>() };
}

const order = (keyId: string, secret: string, quantity: string, price = "60000", symbol = "BTCUSDT"): Promise<Answer> =>
  send("POST", "/api/v3/order", keyId, secret, { symbol, side: "BUY", type: "LIMIT", timeInForce: "GTC", quantity, price });

async function lastEntry(): Promise<AuditEntry> {
  await g.core.audit.flush();
  const entry = readEntries(g.dataDir).at(-1);
  if (entry === undefined) throw new Error("no audit entries");
  return entry;
}

function timing(stage: string, timings: readonly number[] | undefined): number {
  return timings?.[g.core.pipeline.stageNames.indexOf(stage)] ?? Number.NaN;
}

describe("the guard stage", () => {
  it("an order within the guardrails is forwarded", async () => {
    const before = g.upstream.requests.length;
    const res = await order(key.id, key.secret, "1.5");
    expect(res.status).toBe(200);
    expect(g.upstream.requests.length).toBe(before + 1);
  });

  it("an order over a guardrail is refused natively with its code, audited with its operation and the limit, and not forwarded", async () => {
    const before = g.upstream.requests.length;
    const res = await order(key.id, key.secret, "2.00000001");
    expect(res.status).toBe(403);
    expect(res.json).toMatchObject({ code: "GUARDRAIL_QUANTITY" });
    expect(JSON.stringify(res.json)).not.toContain("maxQuantity");
    expect(g.upstream.requests.length).toBe(before);
    const entry = await lastEntry();
    expect(entry).toMatchObject({ event: "request.deny", code: "GUARDRAIL_QUANTITY", key: key.id });
    expect(entry.detail).toEqual({
      reason: "quantity 2.00000001 above maxQuantity 2",
      operation: { kind: "order.place", symbol: "BTCUSDT", side: "buy", type: "limit", quantity: "2.00000001", price: "60000", quoteQuantity: null, notional: "120000.00060000" },
    });
  });

  it("every order guardrail and the withdrawal allowlist refuse with their own code", async () => {
    expect((await order(key.id, key.secret, "1", "3000", "ETHUSDT")).json.code).toBe("GUARDRAIL_SYMBOL");
    // maxNotional 100000: 1.6 × 60000 = 96000 passes, 1.7 × 60000 = 102000 does not.
    expect((await order(key.id, key.secret, "1.6", "60000")).status).toBe(200);
    expect((await order(key.id, key.secret, "1.7", "60000")).json.code).toBe("GUARDRAIL_NOTIONAL");
    expect((await order(key.id, key.secret, "1", "63000.01")).json.code).toBe("GUARDRAIL_PRICE_BAND");
    const withdraw = (coin: string) => send("POST", "/sapi/v1/capital/withdraw/apply", key.id, key.secret, { coin, address: "TQn9Y2khEsLJW1ChVWFMSMeRDow5KcbLSE", amount: "10" });
    expect((await withdraw("USDT")).status).toBe(200);
    expect((await withdraw("BTC")).json.code).toBe("GUARDRAIL_ASSET");
  });

  it("runs right after the operation stage and is skipped with it on a route that declares no operation", async () => {
    const names = g.core.pipeline.stageNames;
    expect(names.indexOf("guard")).toBe(names.indexOf("op") + 1);
    const guarded = await g.core.pipeline.run({ method: "GET", url: "/api/v3/account", headers: signRequest({ method: "GET", url: "/api/v3/account", keyId: key.id, key: key.secret, created: g.clock.seconds }), body: Buffer.alloc(0), socketAddress: "127.0.0.1" });
    expect(guarded.denial).toBeNull();
    expect(timing("op", guarded.timings ?? undefined)).toBeNaN();
    expect(timing("guard", guarded.timings ?? undefined)).toBeNaN();
    expect(timing("admit", guarded.timings ?? undefined)).not.toBeNaN();
  });

  it("a key without guardrails is not checked", async () => {
    const free = await g.createKey({ scopes: ["trade"] });
    expect((await order(free.key.id, free.secret ?? "", "500", "1", "DOGEUSDT")).status).toBe(200);
  });
});

describe("inheritance", () => {
  it("a session of the key is held to the key's guardrails", async () => {
    const logon = signRequest({ method: "POST", url: "/portcullis/v1/session", keyId: key.id, key: key.secret, created: g.clock.seconds });
    const res = await g.inject({ method: "POST", url: "/portcullis/v1/session", headers: logon });
    expect(res.statusCode, res.payload).toBe(201);
    const session = res.json<{ keyid: string; secret: string }>();
    expect((await order(session.keyid, session.secret, "1")).status).toBe(200);
    const refused = await order(session.keyid, session.secret, "3");
    expect(refused.status).toBe(403);
    expect(refused.json.code).toBe("GUARDRAIL_QUANTITY");
    expect((await order(session.keyid, session.secret, "1", "3000", "ETHUSDT")).json.code).toBe("GUARDRAIL_SYMBOL");
  });

  it("a change of the key's guardrails reaches its requests (and its sessions') at once", async () => {
    const created = await g.createKey({ scopes: ["trade"], guardrails: { maxQuantity: "1" } });
    const id = created.key.id;
    const secret = created.secret ?? "";
    expect((await order(id, secret, "1.5")).json.code).toBe("GUARDRAIL_QUANTITY");
    await g.core.keys.update(id, valueOrThrow(parseUpdateKeyInput({ guardrails: { maxQuantity: "2" } })), "test");
    expect((await order(id, secret, "1.5")).status).toBe(200);
    await g.core.keys.update(id, valueOrThrow(parseUpdateKeyInput({ guardrails: null })), "test");
    expect((await order(id, secret, "50", "1", "ETHUSDT")).status).toBe(200);
  });

  it("a rotated key's successor inherits the guardrails", async () => {
    const created = await g.createKey({ scopes: ["trade"], guardrails: { symbols: ["BTCUSDT"], maxQuantity: "1" } });
    const rotated = await g.core.keys.rotate(created.key.id, valueOrThrow(parseRotateKeyInput({})), "test");
    expect(rotated.key.guardrails).toEqual(created.key.guardrails);
    const secret = rotated.secret ?? "";
    expect((await order(rotated.key.id, secret, "1")).status).toBe(200);
    expect((await order(rotated.key.id, secret, "1.1")).json.code).toBe("GUARDRAIL_QUANTITY");
    expect((await order(rotated.key.id, secret, "1", "3000", "ETHUSDT")).json.code).toBe("GUARDRAIL_SYMBOL");
  });
});

describe("reference prices", () => {
  it("without a reference price for the symbol, a price band refuses (fail closed)", async () => {
    const created = await g.createKey({ scopes: ["trade"], guardrails: { priceBandPct: "5" } });
    const res = await order(created.key.id, created.secret ?? "", "1", "100", "SOLUSDT");
    expect(res.status).toBe(403);
    expect(res.json.code).toBe("GUARDRAIL_NO_REFERENCE_PRICE");
  });
});
