/**
 * The operation stage in the pipeline (pipeline/stages/operation.ts): it sets `ctx.operation` on a
 * route that declares one, refuses a request that does not decode (nothing consumed, nothing
 * forwarded), and is skipped — not run — on a route that declares none. Route tables and
 * configurations with an unknown or impossible operation are refused when compiled.
 */
import { createHmac } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RouteTable, type RouteSpec } from "../../src/authz/routes.js";
import { parseConfigText } from "../../src/config/config.js";
import { operationSummary } from "../../src/contract/operations.js";
import type { RequestContext } from "../../src/contract/request.js";
import { OperatorError } from "../../src/errors/catalogue.js";
import { type TestCore, makeCore, signRequest } from "../support/harness.js";

const ROUTES: RouteSpec[] = [
  { method: "GET", path: "/api/v3/account", permission: "read", dialect: "binance" },
  { method: "POST", path: "/api/v3/order", permission: "trade", dialect: "binance", operation: "order.place" },
  { method: "POST", path: "/native/withdraw", permission: "withdraw", operation: "withdraw" },
  { method: "POST", path: "/native/misc", permission: "trade", operation: "other" },
];

let t: TestCore;
let binanceKey: { id: string; secret: string };
let nativeKey: { id: string; secret: string };

beforeAll(async () => {
  t = await makeCore({ routes: ROUTES, timing: true });
  const b = await t.createKey({ dialects: ["binance", "native"], scopes: ["read", "trade", "withdraw"] });
  binanceKey = { id: b.key.id, secret: b.secret ?? "" };
  nativeKey = binanceKey;
});
afterAll(async () => {
  await t.cleanup();
});

function binance(method: string, path: string, params: string): Promise<RequestContext> | RequestContext {
  const payload = `${params}&timestamp=${String(t.clock.ms)}`;
  const signature = createHmac("sha256", binanceKey.secret).update(payload).digest("hex");
  return t.core.pipeline.run({
    method,
    url: `${path}?${payload}&signature=${signature}`,
    headers: { host: "gateway.test", "x-mbx-apikey": binanceKey.id },
    body: Buffer.alloc(0),
    socketAddress: "127.0.0.1",
  });
}

function native(method: string, url: string, body: string): Promise<RequestContext> | RequestContext {
  const headers = signRequest({ method, url, body, keyId: nativeKey.id, key: nativeKey.secret, created: t.clock.seconds });
  return t.core.pipeline.run({ method, url, headers: { ...headers, "content-type": "application/json" }, body: Buffer.from(body), socketAddress: "127.0.0.1" });
}

function timing(ctx: RequestContext, stage: string): number {
  const index = t.core.pipeline.stageNames.indexOf(stage);
  expect(index).toBeGreaterThan(0);
  return ctx.timings?.[index] ?? Number.NaN;
}

describe("the operation stage", () => {
  it("runs after authorization and the unseal stage, followed by the guard stage, then stage 11's risk check and admission", () => {
    const names = t.core.pipeline.stageNames;
    // The unseal stage (docs/sealed-orders.md) opens a sealed body before it is decoded.
    expect(names.indexOf("unseal")).toBe(names.indexOf("authz") + 1);
    expect(names.indexOf("op")).toBe(names.indexOf("unseal") + 1);
    expect(names.indexOf("guard")).toBe(names.indexOf("op") + 1);
    expect(names.indexOf("risk")).toBe(names.indexOf("guard") + 1);
    expect(names.indexOf("admit")).toBe(names.indexOf("risk") + 1);
  });

  it("decodes a Binance order on a route that declares order.place (signed in the dialect)", async () => {
    const ctx = await binance("POST", "/api/v3/order", "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.5&price=60000");
    expect(ctx.denial).toBeNull();
    expect(ctx.operation === null ? null : operationSummary(ctx.operation)).toEqual({
      kind: "order.place",
      symbol: "BTCUSDT",
      side: "buy",
      type: "limit",
      quantity: "0.5",
      price: "60000",
      quoteQuantity: null,
      notional: "30000.0",
    });
    expect(timing(ctx, "op")).not.toBeNaN();
  });

  it("decodes a Binance order signed natively on the Binance route in the Binance shape", async () => {
    const url = "/api/v3/order?symbol=ETHUSDT&side=SELL&type=MARKET&quantity=2";
    const headers = signRequest({ method: "POST", url, keyId: nativeKey.id, key: nativeKey.secret, created: t.clock.seconds });
    const ctx = await t.core.pipeline.run({ method: "POST", url, headers, body: Buffer.alloc(0), socketAddress: "127.0.0.1" });
    expect(ctx.denial).toBeNull();
    expect(ctx.scheme?.name).toBe("native");
    expect(ctx.operation).toMatchObject({ kind: "order.place", symbol: "ETHUSDT", side: "sell", type: "market" });
  });

  it("decodes the native withdraw shape", async () => {
    const ctx = await native("POST", "/native/withdraw", '{"asset":"usdt","amount":"2500.5","address":"TQn9Y2khEsLJW1ChVWFMSMeRDow5KcbLSE","network":"TRX"}');
    expect(ctx.denial).toBeNull();
    expect(ctx.operation === null ? null : operationSummary(ctx.operation)).toEqual({
      kind: "withdraw",
      asset: "USDT",
      amount: "2500.5",
      address: "TQn9Y2khEsLJW1ChVWFMSMeRDow5KcbLSE",
      addressName: null,
      network: "TRX",
      tag: null,
    });
  });

  it("sets `other` without reading the body", async () => {
    const ctx = await native("POST", "/native/misc", "not json at all");
    expect(ctx.denial).toBeNull();
    expect(ctx.operation).toEqual({ kind: "other" });
  });

  it("is skipped on a route without an operation: not run (no timing), no operation set", async () => {
    const ctx = await binance("GET", "/api/v3/account", "omitZeroBalances=true");
    expect(ctx.denial).toBeNull();
    expect(ctx.route?.operation).toBeNull();
    expect(ctx.operation).toBeNull();
    expect(timing(ctx, "op")).toBeNaN();
    expect(timing(ctx, "guard")).toBeNaN();
    // The stages around it did run.
    expect(timing(ctx, "authz")).not.toBeNaN();
    expect(timing(ctx, "admit")).not.toBeNaN();
  });

  it("refuses a request that does not decode, before admission (its replay claim is not recorded: it can be fixed and sent again)", async () => {
    const params = "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1e5&price=1";
    const ctx = await binance("POST", "/api/v3/order", params);
    expect(ctx.denial?.code).toBe("OPERATION_PARAM_INVALID");
    expect(ctx.operation).toBeNull();
    expect(timing(ctx, "admit")).toBeNaN();
    const dup = await binance("POST", "/api/v3/order", "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=1&quantity=2");
    expect(dup.denial?.code).toBe("OPERATION_PARAM_DUPLICATED");
  });

  it("refuses the native shape's malformed body with its code", async () => {
    const ctx = await native("POST", "/native/withdraw", '{"asset":"BTC","amount":1,"address":"bc1q"}');
    expect(ctx.denial?.code).toBe("OPERATION_PARAM_INVALID");
  });
});

describe("declaring operations", () => {
  it("a route table accepts every kind and compiles it onto the route (null when absent)", () => {
    const table = new RouteTable([
      { method: "POST", path: "/a", permission: "trade", operation: "order.place" },
      { method: "POST", path: "/b", permission: "admin:keys", operation: "key.create" },
      { method: "GET", path: "/c", permission: "read" },
    ]);
    expect(table.routes.map((r) => r.operation)).toEqual(["order.place", "key.create", null]);
  });

  it.each([
    [{ method: "POST", path: "/a", permission: "trade", operation: "order.replace" }, /route #1 \(POST \/a\): unknown operation "order.replace"/],
    [{ method: "POST", path: "/a", permission: "trade", operation: 7 }, /route #1 \(POST \/a\): unknown operation 7/],
    [{ method: "POST", path: "/a", permission: "trade", operation: "__proto__" }, /unknown operation "__proto__"/],
    [{ method: "GET", path: "/a", permission: "public", operation: "other" }, /route #1 \(GET \/a\): a public route cannot declare an operation/],
  ])("refuses %j (ROUTE_TABLE_INVALID, naming the route)", (spec, message) => {
    let caught: unknown;
    try {
      new RouteTable([spec as unknown as RouteSpec]);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(OperatorError);
    expect((caught as OperatorError).code).toBe("ROUTE_TABLE_INVALID");
    expect((caught as Error).message).toMatch(message);
  });

  it("refuses, when the pipeline is built, a venue route declaring a kind its shape does not define", () => {
    const routes = new RouteTable([{ method: "POST", path: "/api/v3/key", permission: "trade", dialect: "binance", operation: "key.create" }]);
    expect(() => t.core.createPipeline(routes)).toThrow(/route POST \/api\/v3\/key: the binance shape has no key.create operation/);
  });

  it("the configuration file takes `operation` on a route, and refuses a bad one naming the route", () => {
    const config = (routes: unknown[]) => parseConfigText(JSON.stringify({ gateway: { upstream: "http://127.0.0.1:9000" }, routes }), t.dataDir);
    expect(config([{ method: "POST", path: "/api/v3/order", permission: "trade", dialect: "binance", operation: "order.place" }]).routes[0]?.operation).toBe("order.place");
    expect(() => config([{ method: "POST", path: "/api/v3/order", permission: "trade", operation: "order" }])).toThrow(/routes: route #1 \(POST \/api\/v3\/order\): unknown operation "order"/);
    expect(() => config([{ method: "POST", path: "/0/private/AddKey", permission: "trade", dialect: "kraken", operation: "key.create" }])).toThrow(/the kraken shape has no key.create operation/);
  });
});
