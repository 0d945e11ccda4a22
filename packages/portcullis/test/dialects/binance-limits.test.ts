/**
 * Limits in Binance's terms, through the gateway with a frozen clock: the X-MBX-USED-WEIGHT-<n><u>
 * and X-MBX-ORDER-COUNT-<n><u> headers Binance clients pace themselves by, 429 with -1003 for
 * weight and -1015 for orders (with Retry-After), and the escalation to 418 for an address that
 * keeps going after its 429s.
 */
import { createHmac } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import type { RouteSpec } from "../../src/authz/routes.js";
import type { LimitsOptions } from "../../src/core/core.js";
import { DEFAULT_SHIELD_POLICY } from "../../src/limits/types.js";
import type { LimitSpec } from "../../src/contract/limits.js";
import { type TestGateway, makeGateway } from "../support/gateway.js";

const ROUTES: RouteSpec[] = [
  { method: "GET", path: "/api/v3/time", permission: "public", weight: 1, dialect: "binance" },
  { method: "GET", path: "/api/v3/account", permission: "read", weight: 20, dialect: "binance" },
  { method: "POST", path: "/api/v3/order", permission: "trade", weight: 1, tags: ["order"], dialect: "binance" },
  { method: "DELETE", path: "/api/v3/order", permission: "trade", weight: 1, tags: ["cancel"], dialect: "binance" },
];

const spec = (name: string, scope: LimitSpec["scope"], kind: LimitSpec["kind"], limit: number, windowMs: number): LimitSpec => ({ name, scope, kind, limit, windowMs });

let t: TestGateway | null = null;
afterEach(async () => {
  await t?.close();
  t = null;
});

async function venue(limits: LimitsOptions): Promise<{ g: TestGateway; id: string; secret: string }> {
  const g = await makeGateway({ routes: ROUTES, limits });
  t = g;
  const created = await g.createKey({ dialects: ["binance"] });
  return { g, id: created.key.id, secret: created.secret ?? "" };
}

let seq = 0;
/** A signed Binance request (each with a distinct payload, so none is a replay). */
function call(g: TestGateway, k: { id: string; secret: string }, method: "GET" | "POST" | "DELETE", path: string, ip = "127.0.0.1") {
  const params = `symbol=BTCUSDT&newClientOrderId=c${String(seq++)}&timestamp=${String(g.clock.ms)}`;
  const signature = createHmac("sha256", k.secret).update(params).digest("hex");
  return g.inject({ method, url: `${path}?${params}&signature=${signature}`, headers: { host: "gateway.test", "x-mbx-apikey": k.id }, remoteAddress: ip });
}

const binanceCode = (res: { body: string }): number => (JSON.parse(res.body) as { code: number }).code;

describe("Binance's limit headers", () => {
  it("reports the used weight of the address's window, as Binance does (X-MBX-USED-WEIGHT-1M)", async () => {
    const { g, ...k } = await venue({ specs: [spec("ip-weight-1m", "ip", "weight", 6000, 60_000), spec("key-weight-1m", "key", "weight", 1200, 60_000)] });
    const first = await call(g, k, "GET", "/api/v3/account");
    expect(first.statusCode).toBe(200);
    expect(first.headers["x-mbx-used-weight-1m"]).toBe("20");
    const second = await call(g, k, "GET", "/api/v3/account");
    expect(second.headers["x-mbx-used-weight-1m"]).toBe("40");
    // Public routes are charged to the address too.
    const time = await g.inject({ method: "GET", url: "/api/v3/time", headers: { host: "gateway.test" } });
    expect(time.headers["x-mbx-used-weight-1m"]).toBe("41");
    // Used weight drains at the sustained rate: 6000 a minute is one unit per 10 ms.
    g.clock.advance(100);
    expect((await call(g, k, "GET", "/api/v3/account")).headers["x-mbx-used-weight-1m"]).toBe("51");
  });

  it("falls back to the key's weight when no address limit is configured, and counts orders per window", async () => {
    const { g, ...k } = await venue({
      specs: [spec("key-weight-1m", "key", "weight", 1200, 60_000), spec("orders-10s", "account", "orders", 50, 10_000), spec("orders-1d", "account", "orders", 160_000, 86_400_000)],
    });
    await call(g, k, "POST", "/api/v3/order");
    const second = await call(g, k, "POST", "/api/v3/order");
    expect(second.statusCode).toBe(200);
    expect(second.headers["x-mbx-used-weight-1m"]).toBe("2");
    expect(second.headers["x-mbx-order-count-10s"]).toBe("2");
    expect(second.headers["x-mbx-order-count-1d"]).toBe("2");
    // A cancel is not an order: no order count on it.
    const cancel = await call(g, k, "DELETE", "/api/v3/order");
    expect(cancel.headers["x-mbx-order-count-10s"]).toBeUndefined();
  });
});

describe("Binance's refusals for limits", () => {
  it("too much weight: 429, -1003, Retry-After; nothing reaches the venue", async () => {
    const { g, ...k } = await venue({ specs: [spec("key-weight-1m", "key", "weight", 40, 60_000)] });
    expect((await call(g, k, "GET", "/api/v3/account")).statusCode).toBe(200);
    expect((await call(g, k, "GET", "/api/v3/account")).statusCode).toBe(200);
    const before = g.upstream.requests.length;
    const refused = await call(g, k, "GET", "/api/v3/account");
    expect([refused.statusCode, binanceCode(refused)]).toEqual([429, -1003]);
    expect(refused.headers["retry-after"]).toBe("30");
    expect(refused.headers["x-mbx-used-weight-1m"]).toBe("40");
    expect(g.upstream.requests.length).toBe(before);
  });

  it("too many new orders: 429, -1015, while cancels still go through", async () => {
    const { g, ...k } = await venue({ specs: [spec("orders-10s", "account", "orders", 2, 10_000), spec("cancels-10s", "account", "cancels", 10, 10_000)] });
    await call(g, k, "POST", "/api/v3/order");
    await call(g, k, "POST", "/api/v3/order");
    const refused = await call(g, k, "POST", "/api/v3/order");
    expect([refused.statusCode, binanceCode(refused)]).toEqual([429, -1015]);
    expect(refused.headers["retry-after"]).toBe("5");
    expect((await call(g, k, "DELETE", "/api/v3/order")).statusCode).toBe(200);
  });

  it("an address that keeps going after its 429s is banned: 418, and the ban outlasts the limit", async () => {
    const shield = { ...DEFAULT_SHIELD_POLICY, strikes: 2, banBaseMs: 120_000 };
    const { g, ...k } = await venue({ specs: [spec("key-weight-1m", "key", "weight", 20, 60_000)], shield });
    expect((await call(g, k, "GET", "/api/v3/account", "198.51.100.7")).statusCode).toBe(200);
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await call(g, k, "GET", "/api/v3/account", "198.51.100.7")).statusCode);
    expect(statuses).toEqual([429, 429, 418]);
    g.clock.advance(60_000);
    const banned = await call(g, k, "GET", "/api/v3/account", "198.51.100.7");
    expect([banned.statusCode, binanceCode(banned)]).toEqual([418, -1003]);
    expect(banned.headers["retry-after"]).toBe("60");
    // The same key from another address is limited only by its own (refilled) budget.
    expect((await call(g, k, "GET", "/api/v3/account", "198.51.100.8")).statusCode).toBe(200);
  });
});
