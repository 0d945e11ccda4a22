/**
 * Stage 11 on the request path (docs/behaviour.md): a key's risk state, left on its record by a
 * response, is checked synchronously. A throttled key is charged against one more limit, shared
 * through the hot store, and refused ANOMALY_THROTTLED beyond it; a stepped-up key's next
 * high-value operation is held for the step-up's approvals even where the policy allows it, while
 * its cheap orders, cancels and reads go on; a block stays a block; a lapsed state is none.
 */
import { inject } from "light-my-request";
import { afterEach, describe, expect, it } from "vitest";
import type { KeyRisk } from "../../src/contract/behaviour.js";
import type { PolicyDecider, PolicyDecision, PolicyExplanation, PolicyKind } from "../../src/contract/policy.js";
import type { RouteSpec } from "../../src/authz/routes.js";
import { Gateway } from "../../src/gateway/server.js";
import { Forwarder } from "../../src/gateway/proxy.js";
import { IdentitySigner } from "../../src/gateway/identity.js";
import { OperationEndpoints } from "../../src/gateway/operation-endpoints.js";
import { HoldService } from "../../src/holds/service.js";
import { silentLogger } from "../../src/log/logger.js";
import { parseDecimal } from "../../src/operations/decimal.js";
import { IDENTITY_SECRET, startEchoUpstream } from "../support/gateway.js";
import { TEST_ROUTES, type TestCore, makeCore, signRequest } from "../support/harness.js";

const ROUTES: RouteSpec[] = [
  ...TEST_ROUTES.filter((r) => !r.path.startsWith("/sapi") && !(r.path === "/api/v3/order" && r.method !== "GET")),
  { method: "POST", path: "/api/v3/order", permission: "trade", weight: 1, tags: ["order"], operation: "order.place" },
  { method: "DELETE", path: "/api/v3/order", permission: "trade", weight: 1, tags: ["cancel"], operation: "order.cancel" },
  { method: "POST", path: "/sapi/v1/capital/withdraw/apply", permission: "withdraw", operation: "withdraw" },
];
const WITHDRAWAL = JSON.stringify({ asset: "USDT", amount: "50", address: "0xaa", network: "ETH" });
const order = (quantity: string, price: string): string => JSON.stringify({ symbol: "BTCUSDT", side: "buy", type: "limit", quantity, price });

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A policy of one answer for withdrawals, judging nothing else. */
class Withdrawals implements PolicyDecider {
  decided = 0;
  constructor(private readonly decision: PolicyDecision) {}
  judges(kind: PolicyKind): boolean {
    return kind === "withdraw";
  }
  decide(): PolicyDecision {
    this.decided++;
    return this.decision;
  }
  explain(): Promise<PolicyExplanation> {
    return Promise.resolve({ decision: this.decision, trace: [] });
  }
  forget(): Promise<void> {
    return Promise.resolve();
  }
}

const ALLOW: PolicyDecision = { action: { type: "allow" }, rule: "default", version: 1 };

interface Setup {
  readonly t: TestCore;
  readonly holds: HoldService;
  readonly gateway: Gateway;
  readonly upstream: Awaited<ReturnType<typeof startEchoUpstream>>;
  readonly key: { id: string; secret: string };
  send(method: string, url: string, body?: string): Promise<{ status: number; json: Record<string, unknown>; headers: Record<string, unknown> }>;
}

async function setup(policy: PolicyDecider = new Withdrawals(ALLOW), options: { throttlePerMinute?: number; stepUp?: boolean } = {}): Promise<Setup> {
  const upstream = await startEchoUpstream();
  const t = await makeCore({ routes: ROUTES, ...(options.throttlePerMinute === undefined ? {} : { throttlePerMinute: options.throttlePerMinute }) });
  const internals = t.core as unknown as { store: { holds: HoldService["store"] }; keys: { envelope: ConstructorParameters<typeof HoldService>[0]["envelope"] } };
  const minOrderValue = parseDecimal("1000");
  const holds = new HoldService({
    store: internals.store.holds,
    envelope: internals.keys.envelope,
    policy,
    now: t.clock.now,
    pollMs: 1_000_000,
    stepUp: options.stepUp === false ? null : { approvals: [{ group: "security", count: 1 }], minOrderValue },
  });
  const gateway = new Gateway({
    pipeline: t.core.pipeline,
    forwarder: new Forwarder({ upstream: upstream.url }),
    identity: new IdentitySigner(IDENTITY_SECRET),
    logger: silentLogger(),
    now: t.clock.now,
    audit: t.core.audit,
    holds: { policy, service: holds, operations: new OperationEndpoints(t.core, holds) },
  });
  const created = await t.createKey({ scopes: ["read", "trade", "withdraw"] });
  const key = { id: created.key.id, secret: created.secret ?? "" };
  cleanups.push(async () => {
    await holds.stop();
    await gateway.close(100);
    await upstream.close();
    await t.cleanup();
  });
  return {
    t,
    holds,
    gateway,
    upstream,
    key,
    async send(method, url, body) {
      const headers = {
        ...signRequest({ method, url, keyId: key.id, key: key.secret, created: t.clock.seconds, ...(body === undefined ? {} : { body }) }),
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      };
      const res = await inject(gateway.handle, { method, url, headers, ...(body === undefined ? {} : { payload: body }), remoteAddress: "127.0.0.1" });
      return { status: res.statusCode, json: res.json<Record<string, unknown>>(), headers: res.headers };
    },
  };
}

function risk(state: KeyRisk["state"], until: number | null = null): KeyRisk {
  return { state, actionId: `an_${"ab".repeat(16)}`, reason: "score 91: a new network, a new symbol", since: 0, until };
}

describe("a throttled key", () => {
  it("is charged against its extra limit: the next request beyond it is refused ANOMALY_THROTTLED with Retry-After, and a minute later it goes on", async () => {
    const s = await setup(undefined, { throttlePerMinute: 3 });
    await s.t.core.keys.setRisk(s.key.id, risk("throttle"), "test");
    for (let i = 0; i < 3; i++) expect((await s.send("GET", "/api/v3/account")).status).toBe(200);
    const refused = await s.send("GET", "/api/v3/account");
    expect(refused.status).toBe(429);
    expect(refused.json).toMatchObject({ code: "ANOMALY_THROTTLED" });
    expect(Number(refused.headers["retry-after"])).toBeGreaterThan(0);
    expect(s.upstream.requests).toHaveLength(3);
    s.t.clock.advance(60_000);
    expect((await s.send("GET", "/api/v3/account")).status).toBe(200);
  });

  it("has its high-value operations held as a stepped-up key's are (a throttle is the stronger response)", async () => {
    const s = await setup(undefined, { throttlePerMinute: 10 });
    await s.t.core.keys.setRisk(s.key.id, risk("throttle"), "test");
    const held = await s.send("POST", "/sapi/v1/capital/withdraw/apply", WITHDRAWAL);
    expect(held.status).toBe(202);
    expect((await s.send("POST", "/api/v3/order", order("0.01", "60000"))).status).toBe(200);
    expect(s.upstream.requests.filter((r) => r.url.startsWith("/sapi"))).toHaveLength(0);
  });

  it("is not charged once its throttle lapsed, nor after an operator cleared it; another key never is", async () => {
    const s = await setup(undefined, { throttlePerMinute: 1 });
    await s.t.core.keys.setRisk(s.key.id, risk("throttle", s.t.clock.ms + 1_000), "test");
    expect((await s.send("GET", "/api/v3/account")).status).toBe(200);
    expect((await s.send("GET", "/api/v3/account")).json).toMatchObject({ code: "ANOMALY_THROTTLED" });
    s.t.clock.advance(1_000);
    for (let i = 0; i < 3; i++) expect((await s.send("GET", "/api/v3/account")).status).toBe(200);
    await s.t.core.keys.setRisk(s.key.id, risk("throttle"), "test");
    expect((await s.send("GET", "/api/v3/account")).json).toMatchObject({ code: "ANOMALY_THROTTLED" });
    await s.t.core.keys.setRisk(s.key.id, null, "test");
    for (let i = 0; i < 3; i++) expect((await s.send("GET", "/api/v3/account")).status).toBe(200);
  });
});

describe("a stepped-up key", () => {
  it("has its withdrawal held for the step-up's approvals where the policy allows it", async () => {
    const policy = new Withdrawals(ALLOW);
    const s = await setup(policy);
    expect((await s.send("POST", "/sapi/v1/capital/withdraw/apply", WITHDRAWAL)).status).toBe(200);
    await s.t.core.keys.setRisk(s.key.id, risk("step-up"), "test");
    const held = await s.send("POST", "/sapi/v1/capital/withdraw/apply", WITHDRAWAL);
    expect(held.status).toBe(202);
    expect(held.json).toMatchObject({ state: "pending", required: { approvals: [{ group: "security", count: 1, have: 0 }] } });
    const view = await s.holds.view(String(held.json.operationId));
    expect(view.policy).toMatchObject({ rule: `step-up an_${"ab".repeat(16)}` });
    expect(s.upstream.requests.filter((r) => r.url.startsWith("/sapi"))).toHaveLength(1);
  });

  it("adds the step-up's approvals to what the policy holds: never fewer approvals, nor a shorter delay", async () => {
    const policy = new Withdrawals({ action: { type: "hold", approvals: [{ group: "treasury", count: 2 }], delayMs: 60_000 }, rule: "new destination", version: 3 });
    const s = await setup(policy);
    await s.t.core.keys.setRisk(s.key.id, risk("step-up"), "test");
    const held = await s.send("POST", "/sapi/v1/capital/withdraw/apply", WITHDRAWAL);
    expect(held.status).toBe(202);
    expect(held.json).toMatchObject({
      required: {
        approvals: [
          { group: "treasury", count: 2, have: 0 },
          { group: "security", count: 1, have: 0 },
        ],
        notBefore: s.t.clock.ms + 60_000,
      },
    });
    const view = await s.holds.view(String(held.json.operationId));
    expect(view.policy).toMatchObject({ rule: `new destination + step-up an_${"ab".repeat(16)}`, version: 3 });
  });

  it("has its orders worth the minimum held, while cheaper orders, cancels and reads go on", async () => {
    const s = await setup();
    await s.t.core.keys.setRisk(s.key.id, risk("step-up"), "test");
    expect((await s.send("POST", "/api/v3/order", order("0.01", "60000"))).status).toBe(200);
    expect((await s.send("POST", "/api/v3/order", order("1", "60000"))).status).toBe(202);
    expect((await s.send("DELETE", "/api/v3/order?symbol=BTCUSDT&orderId=12")).status).toBe(200);
    expect((await s.send("GET", "/api/v3/account")).status).toBe(200);
  });

  it("is still blocked where the policy blocks; without step-up settings nothing is held; a lapsed step-up holds nothing", async () => {
    const blocked = await setup(new Withdrawals({ action: { type: "block", reason: null }, rule: "no", version: 1 }));
    await blocked.t.core.keys.setRisk(blocked.key.id, risk("step-up"), "test");
    expect((await blocked.send("POST", "/sapi/v1/capital/withdraw/apply", WITHDRAWAL)).json).toMatchObject({ code: "POLICY_BLOCKED" });

    const off = await setup(undefined, { stepUp: false });
    await off.t.core.keys.setRisk(off.key.id, risk("step-up"), "test");
    expect((await off.send("POST", "/sapi/v1/capital/withdraw/apply", WITHDRAWAL)).status).toBe(200);

    const lapsed = await setup();
    await lapsed.t.core.keys.setRisk(lapsed.key.id, risk("step-up", lapsed.t.clock.ms + 10), "test");
    lapsed.t.clock.advance(10);
    expect((await lapsed.send("POST", "/sapi/v1/capital/withdraw/apply", WITHDRAWAL)).status).toBe(200);
  });

  it("a rotated successor starts without the risk state; the change is audited as key.risk", async () => {
    const s = await setup();
    const view = await s.t.core.keys.setRisk(s.key.id, risk("step-up"), "test");
    expect(view.risk).toMatchObject({ state: "step-up" });
    const rotated = await s.t.core.keys.rotate(s.key.id, { graceMs: 60_000, publicKey: undefined }, "test");
    expect(rotated.key.risk).toBeNull();
    expect(rotated.predecessor.risk).toMatchObject({ state: "step-up" });
  });
});
