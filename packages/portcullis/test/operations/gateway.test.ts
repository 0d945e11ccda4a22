/**
 * End to end through the gateway (in-process inject, a real upstream on a loopback port): a
 * Binance order and a Binance withdrawal on routes that declare their operations reach the
 * upstream unchanged (only the signature removed, as on every Binance route), and the decoded
 * operation is recorded in the request's audit entry. A request that does not decode is refused
 * in Binance's format and never reaches the upstream.
 */
import { createHmac } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditEntry } from "../../src/audit/events.js";
import type { RouteSpec } from "../../src/authz/routes.js";
import { type TestGateway, makeGateway } from "../support/gateway.js";
import { readEntries } from "../audit/support.js";

const ROUTES: RouteSpec[] = [
  { method: "GET", path: "/api/v3/account", permission: "read", dialect: "binance" },
  { method: "POST", path: "/api/v3/order", permission: "trade", tags: ["order"], dialect: "binance", operation: "order.place" },
  { method: "DELETE", path: "/api/v3/order", permission: "trade", tags: ["cancel"], dialect: "binance", operation: "order.cancel" },
  { method: "POST", path: "/sapi/v1/capital/withdraw/apply", permission: "withdraw", dialect: "binance", operation: "withdraw" },
];

let g: TestGateway;
let key: { id: string; secret: string };

beforeAll(async () => {
  g = await makeGateway({ routes: ROUTES });
  const created = await g.createKey({ dialects: ["binance"], scopes: ["read", "trade", "withdraw"] });
  key = { id: created.key.id, secret: created.secret ?? "" };
});
afterAll(async () => {
  await g.close();
});

function sign(params: string): { payload: string; signed: string } {
  const payload = `${params}&timestamp=${String(g.clock.ms)}`;
  return { payload, signed: `${payload}&signature=${createHmac("sha256", key.secret).update(payload).digest("hex")}` };
}

async function lastEntry(): Promise<AuditEntry> {
  await g.core.audit.flush();
  const entry = readEntries(g.dataDir).at(-1);
  if (entry === undefined) throw new Error("no audit entries");
  return entry;
}

describe("operations through the gateway (Binance dialect)", () => {
  it("an order in the form body reaches the upstream unchanged; its operation is in the audit entry", async () => {
    const { payload, signed } = sign("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.25&price=64000.10");
    const res = await g.inject({
      method: "POST",
      url: "/api/v3/order",
      headers: { host: "gateway.test", "x-mbx-apikey": key.id, "content-type": "application/x-www-form-urlencoded" },
      payload: signed,
    });
    expect(res.statusCode, res.payload).toBe(200);
    const got = g.upstream.requests.at(-1);
    expect(got?.url).toBe("/api/v3/order");
    expect(got?.body).toBe(payload);
    const entry = await lastEntry();
    expect(entry).toMatchObject({ event: "request.allow", route: "POST /api/v3/order", key: key.id });
    expect(entry.detail).toEqual({
      operation: {
        kind: "order.place",
        symbol: "BTCUSDT",
        side: "buy",
        type: "limit",
        quantity: "0.25",
        price: "64000.10",
        quoteQuantity: null,
        notional: "16000.0250",
      },
    });
  });

  it("a withdrawal in the query string reaches the upstream unchanged; its operation is in the audit entry", async () => {
    const { payload, signed } = sign("coin=USDT&network=TRX&address=TQn9Y2khEsLJW1ChVWFMSMeRDow5KcbLSE&amount=1500&walletType=0");
    const res = await g.inject({ method: "POST", url: `/sapi/v1/capital/withdraw/apply?${signed}`, headers: { host: "gateway.test", "x-mbx-apikey": key.id } });
    expect(res.statusCode, res.payload).toBe(200);
    expect(g.upstream.requests.at(-1)?.url).toBe(`/sapi/v1/capital/withdraw/apply?${payload}`);
    const entry = await lastEntry();
    expect(entry).toMatchObject({ event: "request.allow", route: "POST /sapi/v1/capital/withdraw/apply" });
    expect(entry.detail).toEqual({
      operation: {
        kind: "withdraw",
        asset: "USDT",
        amount: "1500",
        address: "TQn9Y2khEsLJW1ChVWFMSMeRDow5KcbLSE",
        addressName: null,
        network: "TRX",
        tag: null,
      },
    });
  });

  it("a route without an operation records none", async () => {
    const { signed } = sign("omitZeroBalances=true");
    const res = await g.inject({ method: "GET", url: `/api/v3/account?${signed}`, headers: { host: "gateway.test", "x-mbx-apikey": key.id } });
    expect(res.statusCode).toBe(200);
    const entry = await lastEntry();
    expect(entry).toMatchObject({ event: "request.allow", route: "GET /api/v3/account" });
    expect(entry.detail).toBeUndefined();
  });

  it.each([
    ["a duplicated quantity", "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=1&quantity=1000", -1101, "OPERATION_PARAM_DUPLICATED"],
    ["an exponent", "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1e3&price=1", -1130, "OPERATION_PARAM_INVALID"],
    ["no price on a limit order", "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1", -1102, "OPERATION_PARAM_MISSING"],
  ])("%s is refused in Binance's format, audited with its code, and not forwarded", async (_name, params, binanceCode, code) => {
    const before = g.upstream.requests.length;
    const { signed } = sign(params);
    const res = await g.inject({ method: "POST", url: `/api/v3/order?${signed}`, headers: { host: "gateway.test", "x-mbx-apikey": key.id } });
    expect(res.statusCode).toBe(400);
    expect(res.json<{ code: number }>().code).toBe(binanceCode);
    expect(g.upstream.requests.length).toBe(before);
    expect(await lastEntry()).toMatchObject({ event: "request.deny", code });
  });
});
