/**
 * Stages 2 and 9 through the gateway (memory hot store, frozen clock): weighted limits per IP, key
 * and account, order and cancel limits, all-or-nothing, headers, bans that escalate, blocks after
 * authentication failures, the concurrency cap, per-key overrides, and the fallback of degradable
 * routes when the shared store is down.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { RouteSpec } from "../../src/authz/routes.js";
import type { LimitsOptions } from "../../src/core/core.js";
import { DEFAULT_SHIELD_POLICY } from "../../src/limits/types.js";
import type { LimitSpec } from "../../src/contract/limits.js";
import { MemoryHotStore } from "../../src/storage/memory/hot.js";
import type { HotStore } from "../../src/storage/types.js";
import { type TestGateway, makeGateway } from "../support/gateway.js";
import { TEST_START, signRequest } from "../support/harness.js";

const ROUTES: RouteSpec[] = [
  { method: "GET", path: "/public/time", permission: "public", weight: 1 },
  { method: "GET", path: "/public/depth", permission: "public", weight: 1, degradable: true },
  { method: "GET", path: "/api/v3/account", permission: "read", weight: 10 },
  { method: "GET", path: "/api/v3/ticker", permission: "read", weight: 1, degradable: true },
  { method: "POST", path: "/api/v3/order", permission: "trade", weight: 1, tags: ["order"] },
  { method: "DELETE", path: "/api/v3/order", permission: "trade", weight: 1, tags: ["cancel"] },
];

const spec = (name: string, scope: LimitSpec["scope"], kind: LimitSpec["kind"], limit: number, windowMs: number): LimitSpec => ({ name, scope, kind, limit, windowMs });

let t: TestGateway | null = null;
afterEach(async () => {
  await t?.close();
  t = null;
});

async function gateway(limits: LimitsOptions, hot?: HotStore): Promise<TestGateway> {
  t = await makeGateway({ routes: ROUTES, limits, ...(hot === undefined ? {} : { hot }) });
  return t;
}

interface Call {
  method?: "GET" | "POST" | "DELETE";
  url?: string;
  keyId: string;
  secret: string;
  ip?: string;
  wrongSecret?: boolean;
}

async function call(g: TestGateway, c: Call) {
  const method = c.method ?? "GET";
  const url = c.url ?? "/api/v3/account";
  const headers = signRequest({ method, url, keyId: c.keyId, key: c.wrongSecret === true ? `${c.secret}x` : c.secret, created: g.clock.seconds });
  return g.inject({ method, url, headers, remoteAddress: c.ip ?? "127.0.0.1" });
}

const code = (res: { body: string }): string => (JSON.parse(res.body) as { code: string }).code;

describe("weighted limits", () => {
  it("charges the route's weight against the key, answers 429 with Retry-After, and refills at the sustained rate", async () => {
    const g = await gateway({ specs: [spec("key-weight-1m", "key", "weight", 30, 60_000)] });
    const { key, secret } = await g.createKey({});
    const k = { keyId: key.id, secret: secret ?? "" };
    for (let i = 0; i < 3; i++) expect((await call(g, k)).statusCode).toBe(200);
    const refused = await call(g, k);
    expect(refused.statusCode).toBe(429);
    expect(code(refused)).toBe("RATE_LIMITED");
    expect(refused.headers["retry-after"]).toBe("20");
    expect(refused.headers["ratelimit-policy"]).toBe('"key-weight-1m";q=30;w=60');
    expect(refused.headers.ratelimit).toBe('"key-weight-1m";r=0;t=60');
    g.clock.advance(20_000);
    expect((await call(g, k)).statusCode).toBe(200);
    expect((await call(g, k)).statusCode).toBe(429);
  });

  it("sends the RateLimit fields of the limit closest to exhaustion on every answer", async () => {
    const g = await gateway({ specs: [spec("ip-weight-1m", "ip", "weight", 1000, 60_000), spec("key-weight-10s", "key", "weight", 25, 10_000)] });
    const { key, secret } = await g.createKey({});
    const ok = await call(g, { keyId: key.id, secret: secret ?? "" });
    expect(ok.statusCode).toBe(200);
    expect(ok.headers["ratelimit-policy"]).toBe('"key-weight-10s";q=25;w=10');
    expect(ok.headers.ratelimit).toBe('"key-weight-10s";r=15;t=4');
  });

  it("is all or nothing: when the key's limit refuses, the address's is not consumed", async () => {
    const g = await gateway({ specs: [spec("ip-weight-1m", "ip", "weight", 30, 60_000), spec("key-weight-1m", "key", "weight", 10, 60_000)] });
    const a = await g.createKey({});
    const b = await g.createKey({});
    expect((await call(g, { keyId: a.key.id, secret: a.secret ?? "" })).statusCode).toBe(200);
    for (let i = 0; i < 5; i++) expect((await call(g, { keyId: a.key.id, secret: a.secret ?? "" })).statusCode).toBe(429);
    // The address spent 10 of its 30, not 60: another key from it still gets two calls.
    expect((await call(g, { keyId: b.key.id, secret: b.secret ?? "" })).statusCode).toBe(200);
    expect((await call(g, { keyId: b.key.id, secret: b.secret ?? "" })).statusCode).toBe(429);
  });

  it("charges nothing for a request refused before admission", async () => {
    const g = await gateway({ specs: [spec("key-weight-1m", "key", "weight", 10, 60_000)] });
    const { key, secret } = await g.createKey({});
    for (let i = 0; i < 5; i++) expect(code(await call(g, { keyId: key.id, secret: secret ?? "", wrongSecret: true }))).toBe("SIGNATURE_INVALID");
    expect((await call(g, { keyId: key.id, secret: secret ?? "" })).statusCode).toBe(200);
  });

  it("shares an account's limit across its keys, and charges public routes to the address", async () => {
    const g = await gateway({ specs: [spec("acct-weight-1m", "account", "weight", 20, 60_000), spec("ip-weight-1m", "ip", "weight", 10, 60_000)] });
    const a = await g.createKey({ account: "shared" });
    const b = await g.createKey({ account: "shared" });
    expect((await call(g, { keyId: a.key.id, secret: a.secret ?? "", ip: "10.0.0.1" })).statusCode).toBe(200);
    expect((await call(g, { keyId: b.key.id, secret: b.secret ?? "", ip: "10.0.0.2" })).statusCode).toBe(200);
    expect(code(await call(g, { keyId: b.key.id, secret: b.secret ?? "", ip: "10.0.0.3" }))).toBe("RATE_LIMITED");
    const pub = (ip: string) => g.inject({ method: "GET", url: "/public/time", headers: { host: "gateway.test" }, remoteAddress: ip });
    for (let i = 0; i < 10; i++) expect((await pub("10.9.9.9")).statusCode).toBe(200);
    expect((await pub("10.9.9.9")).statusCode).toBe(429);
    expect((await pub("10.9.9.8")).statusCode).toBe(200);
  });

  it("honours a key's override (a market maker gets more)", async () => {
    const g = await gateway({ specs: [spec("key-weight-1m", "key", "weight", 10, 60_000)] });
    const mm = await g.createKey({ limits: { "key-weight-1m": 30 } });
    for (let i = 0; i < 3; i++) expect((await call(g, { keyId: mm.key.id, secret: mm.secret ?? "" })).statusCode).toBe(200);
    const refused = await call(g, { keyId: mm.key.id, secret: mm.secret ?? "" });
    expect(refused.statusCode).toBe(429);
    expect(refused.headers["ratelimit-policy"]).toBe('"key-weight-1m";q=30;w=60');
    // A changed override applies to the next request (the key cache is evicted on the change);
    // the units already spent drain at the new rate.
    await g.core.keys.setLimits(mm.key.id, { "key-weight-1m": 60 }, "test");
    g.clock.advance(60_000);
    let admitted = 0;
    while ((await call(g, { keyId: mm.key.id, secret: mm.secret ?? "" })).statusCode === 200) admitted++;
    expect(admitted).toBe(6);
  });
});

describe("orders and cancels", () => {
  const order = { method: "POST" as const, url: "/api/v3/order" };
  const cancel = { method: "DELETE" as const, url: "/api/v3/order" };

  it("counts orders per account, and keeps a separate budget for cancels so a bot can always cancel", async () => {
    const g = await gateway({
      specs: [spec("key-weight-1m", "key", "weight", 3, 60_000), spec("orders-10s", "account", "orders", 2, 10_000), spec("cancels-10s", "account", "cancels", 4, 10_000)],
    });
    const { key, secret } = await g.createKey({});
    const k = { keyId: key.id, secret: secret ?? "" };
    expect((await call(g, { ...k, ...order })).statusCode).toBe(200);
    expect((await call(g, { ...k, ...order })).statusCode).toBe(200);
    const third = await call(g, { ...k, ...order });
    expect(code(third)).toBe("ORDERS_LIMITED");
    expect(third.headers["ratelimit-policy"]).toBe('"orders-10s";q=2;w=10');
    // Weight is nearly spent, orders are spent; cancels still go through, up to their own limit.
    for (let i = 0; i < 4; i++) expect((await call(g, { ...k, ...cancel })).statusCode).toBe(200);
    expect((await call(g, { ...k, ...cancel })).headers["ratelimit-policy"]).toBe('"cancels-10s";q=4;w=10');
  });
});

describe("escalation and shields", () => {
  const shield = { ...DEFAULT_SHIELD_POLICY, strikes: 3, strikeWindowMs: 60_000, banBaseMs: 10_000, banMaxMs: 40_000, authFailuresPerIp: 4, authFailuresPerKey: 3, authBlockMs: 60_000 };

  it("bans an address after repeated 429s, for longer each time", async () => {
    const g = await gateway({ specs: [spec("key-weight-1m", "key", "weight", 10, 60_000)], shield });
    const { key, secret } = await g.createKey({});
    const k = { keyId: key.id, secret: secret ?? "" };
    expect((await call(g, k)).statusCode).toBe(200);
    const answers: string[] = [];
    for (let i = 0; i < 5; i++) answers.push(code(await call(g, k)));
    expect(answers).toEqual(["RATE_LIMITED", "RATE_LIMITED", "RATE_LIMITED", "IP_BANNED", "IP_BANNED"]);
    const banned = await call(g, k);
    expect(code(banned)).toBe("IP_BANNED");
    expect(banned.headers["retry-after"]).toBe("10");
    g.clock.advance(60_001);
    expect((await call(g, k)).statusCode).toBe(200);
    for (let i = 0; i < 4; i++) await call(g, k);
    const again = await call(g, k);
    expect(code(again)).toBe("IP_BANNED");
    expect(again.headers["retry-after"]).toBe("20");
  });

  it("answers a banned address from the in-process shield, without asking the hot store", async () => {
    const inner = new MemoryHotStore({ policy: shield, epochStart: TEST_START });
    let admissions = 0;
    const counting: HotStore = {
      kind: "counting",
      admit: (a) => {
        admissions++;
        return inner.admit(a);
      },
      epoch: () => inner.epoch(),
      recordFailure: (ip, keyId, now) => inner.recordFailure(ip, keyId, now),
      strike: (ip, now) => inner.strike(ip, now),
      revokeSession: (id, until, now) => {
        inner.revokeSession(id, until, now);
      },
      close: () => inner.close(),
    };
    const g = await gateway({ specs: [spec("key-weight-1m", "key", "weight", 10, 60_000)], shield }, counting);
    const { key, secret } = await g.createKey({});
    const k = { keyId: key.id, secret: secret ?? "" };
    for (let i = 0; i < 5; i++) await call(g, k);
    expect(code(await call(g, k))).toBe("IP_BANNED");
    const asked = admissions;
    for (let i = 0; i < 20; i++) expect(code(await call(g, k))).toBe("IP_BANNED");
    expect(admissions).toBe(asked);
    // Another address is not affected.
    expect(code(await call(g, { ...k, ip: "192.0.2.9" }))).toBe("RATE_LIMITED");
  });

  it("blocks an address after repeated authentication failures", async () => {
    const g = await gateway({ specs: [], shield });
    const { key, secret } = await g.createKey({});
    const bad = { keyId: "pck_test_v1_000000000000000000000000000000", secret: "x", ip: "198.51.100.1" };
    for (let i = 0; i < 4; i++) expect(code(await call(g, bad))).toBe("KEY_ID_MALFORMED");
    // Failures are counted off the response path; let the count land.
    await new Promise((r) => setImmediate(r));
    expect(code(await call(g, bad))).toBe("KEY_ID_MALFORMED");
    const blocked = await call(g, { keyId: key.id, secret: secret ?? "", ip: "198.51.100.1" });
    expect(code(blocked)).toBe("IP_BLOCKED");
    expect(blocked.headers["retry-after"]).toBe("60");
    expect((await call(g, { keyId: key.id, secret: secret ?? "", ip: "198.51.100.2" })).statusCode).toBe(200);
  });

  it("blocks a key for the address that keeps failing against it, and only for that address", async () => {
    const g = await gateway({ specs: [], shield });
    const { key, secret } = await g.createKey({});
    const k = { keyId: key.id, secret: secret ?? "" };
    for (let i = 0; i < 3; i++) expect(code(await call(g, { ...k, wrongSecret: true, ip: "203.0.113.1" }))).toBe("SIGNATURE_INVALID");
    // The fourth failure from it is one too many for the key (3) but not yet for the address (4).
    expect(code(await call(g, { ...k, wrongSecret: true, ip: "203.0.113.1" }))).toBe("SIGNATURE_INVALID");
    await new Promise((r) => setImmediate(r));
    const blocked = await call(g, { ...k, ip: "203.0.113.1" });
    expect(code(blocked)).toBe("KEY_BLOCKED");
    expect(blocked.headers["retry-after"]).toBe("60");
    // Failures spread over addresses block nobody, and the owner's address was never blocked.
    for (let i = 2; i < 6; i++) expect(code(await call(g, { ...k, wrongSecret: true, ip: `203.0.113.${i}` }))).toBe("SIGNATURE_INVALID");
    expect((await call(g, { ...k, ip: "192.0.2.50" })).statusCode).toBe(200);
  });

  it("caps the requests one key has in flight, and frees the slot when an answer finishes", async () => {
    const g = await gateway({ specs: [spec("key-weight-1m", "key", "weight", 1000, 60_000)], maxConcurrentPerKey: 1 });
    const { key, secret } = await g.createKey({});
    const ctx1 = await g.core.verify({
      method: "GET",
      url: "/api/v3/account",
      headers: signRequest({ method: "GET", url: "/api/v3/account", keyId: key.id, key: secret ?? "", created: g.clock.seconds }),
      body: Buffer.alloc(0),
      socketAddress: "127.0.0.1",
    });
    expect(ctx1.denial).toBeNull();
    expect(g.core.shield.inFlightFor(key.id)).toBe(1);
    expect(code(await call(g, { keyId: key.id, secret: secret ?? "" }))).toBe("CONCURRENCY_LIMITED");
    g.core.pipeline.finish(ctx1);
    expect(g.core.shield.inFlightFor(key.id)).toBe(0);
    expect((await call(g, { keyId: key.id, secret: secret ?? "" })).statusCode).toBe(200);
    expect(g.core.shield.inFlightFor(key.id)).toBe(0);
  });
});

describe("a shared hot store that cannot answer", () => {
  const down: HotStore = {
    kind: "redis",
    admit: () => Promise.reject(new Error("connection refused")),
    epoch: () => Promise.reject(new Error("connection refused")),
    recordFailure: () => Promise.reject(new Error("connection refused")),
    strike: () => Promise.reject(new Error("connection refused")),
    revokeSession: () => Promise.reject(new Error("connection refused")),
    close: () => Promise.resolve(),
  };

  it("fails closed on trading routes, falls back to local limits on degradable ones", async () => {
    const g = await gateway({ specs: [spec("ip-weight-1m", "ip", "weight", 2, 60_000)] }, down);
    const { key, secret } = await g.createKey({});
    const account = await call(g, { keyId: key.id, secret: secret ?? "" });
    expect([account.statusCode, code(account)]).toEqual([503, "HOT_STORE_UNAVAILABLE"]);
    expect((await call(g, { keyId: key.id, secret: secret ?? "", url: "/api/v3/ticker" })).statusCode).toBe(200);
    const pub = () => g.inject({ method: "GET", url: "/public/depth", headers: { host: "gateway.test" } });
    expect((await pub()).statusCode).toBe(200);
    // The local fallback still limits: the address's 2 units are spent.
    expect((await pub()).statusCode).toBe(429);
    expect((await g.inject({ method: "GET", url: "/public/time", headers: { host: "gateway.test" } })).statusCode).toBe(503);
  });
});
