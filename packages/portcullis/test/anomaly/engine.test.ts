/**
 * Stage 11 end to end (anomaly/engine.ts wired by the core): every request a gateway decides is
 * observed after its audit entry, scored off the request path against its key's normal, and
 * answered by the responder. A key used as usual from its own network is left alone; the same key
 * used from a new network for what it never did is acted on (audited, its risk state set, its next
 * withdrawal held); a flood of wrong signatures on a key's id never suspends it (at most an alert:
 * whoever knows an id must not be able to lock its owner out); the model's state survives a restart
 * of the core; with Redis, two engines (two processes) share one state and lose no event; a full
 * queue drops decisions (counted), never requests.
 */
import { inject } from "light-my-request";
import { afterEach, describe, expect, it, vi } from "vitest";
import { BehaviourEngine } from "../../src/anomaly/engine.js";
import { DEFAULT_BEHAVIOUR_SETTINGS, actionStrength, stepUpSettings } from "../../src/anomaly/responses.js";
import type { RouteSpec } from "../../src/authz/routes.js";
import { BehaviourModel } from "../../src/behaviour/model.js";
import type { AnomalyActionRecord } from "../../src/contract/behaviour.js";
import type { RequestContext } from "../../src/contract/request.js";
import { Portcullis } from "../../src/core/core.js";
import { openDataDir } from "../../src/core/data-dir.js";
import { Forwarder } from "../../src/gateway/proxy.js";
import { IdentitySigner } from "../../src/gateway/identity.js";
import { Gateway } from "../../src/gateway/server.js";
import { OperationEndpoints } from "../../src/gateway/operation-endpoints.js";
import { PolicyService } from "../../src/governance/policy-service.js";
import { HoldService } from "../../src/holds/service.js";
import { silentLogger } from "../../src/log/logger.js";
import { StaticPrices } from "../../src/operations/prices.js";
import { RedisBehaviourStore } from "../../src/storage/redis/behaviour.js";
import type { BehaviourStateStore } from "../../src/storage/types.js";
import { readEntries } from "../audit/support.js";
import { IDENTITY_SECRET, startEchoUpstream } from "../support/gateway.js";
import { TEST_ROUTES, type TestCore, makeCore, signRequest } from "../support/harness.js";

const ROUTES: RouteSpec[] = [
  ...TEST_ROUTES.filter((r) => !r.path.startsWith("/sapi") && !(r.path === "/api/v3/order" && r.method !== "GET")),
  { method: "POST", path: "/api/v3/order", permission: "trade", weight: 1, tags: ["order"], operation: "order.place" },
  { method: "POST", path: "/sapi/v1/capital/withdraw/apply", permission: "withdraw", operation: "withdraw" },
];
const PRICES = new StaticPrices({ symbols: { BTCUSDT: "60000", XYZUSDT: "0.5" }, assets: { USDT: "1", BTC: "60000" } });
const SETTINGS = { ...DEFAULT_BEHAVIOUR_SETTINGS, liquidity: { BTCUSDT: "2000000000", XYZUSDT: "40000" } };
const HOME = "10.1.2.3";
const AWAY = "203.0.113.77";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Stack {
  readonly t: TestCore;
  readonly engine: BehaviourEngine;
  readonly holds: HoldService;
  readonly upstream: Awaited<ReturnType<typeof startEchoUpstream>>;
  readonly key: { id: string; secret: string };
  readonly actions: AnomalyActionRecord[];
  send(method: string, url: string, from: string, body?: string, secret?: string): Promise<{ status: number; json: Record<string, unknown> }>;
}

async function stack(): Promise<Stack> {
  const upstream = await startEchoUpstream();
  const t = await makeCore({ routes: ROUTES, prices: PRICES, behaviour: { settings: SETTINGS } });
  const engine = t.core.behaviour;
  if (engine === null) throw new Error("the core has no behaviour engine");
  const internals = t.core as unknown as { store: Parameters<typeof PolicyService.open>[0]["store"] & { holds: HoldService["store"] }; keys: { envelope: ConstructorParameters<typeof HoldService>[0]["envelope"] } };
  const holds = new HoldService({ store: internals.store.holds, envelope: internals.keys.envelope, now: t.clock.now, pollMs: 1_000_000, stepUp: stepUpSettings(SETTINGS.stepUp), prices: PRICES });
  const policy = await PolicyService.open({ store: internals.store, pollIntervalMs: 0, logger: silentLogger(), prices: PRICES, holder: holds, now: t.clock.now });
  holds.usePolicy(policy);
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
  const actions: AnomalyActionRecord[] = [];
  engine.onAction((record) => actions.push(record));
  cleanups.push(async () => {
    policy.close();
    await holds.stop();
    await gateway.close(100);
    await upstream.close();
    await t.cleanup();
  });
  return {
    t,
    engine,
    holds,
    upstream,
    key,
    actions,
    async send(method, url, from, body, secret = key.secret) {
      const headers = {
        ...signRequest({ method, url, keyId: key.id, key: secret, created: t.clock.seconds, ...(body === undefined ? {} : { body }) }),
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      };
      const res = await inject(gateway.handle, { method, url, headers, ...(body === undefined ? {} : { payload: body }), remoteAddress: from });
      await engine.settle();
      return { status: res.statusCode, json: res.json<Record<string, unknown>>() };
    },
  };
}

const order = (symbol: string, quantity: string, price: string): string => JSON.stringify({ symbol, side: "buy", type: "limit", quantity, price });
const withdrawal = (amount: string, address: string): string => JSON.stringify({ asset: "USDT", amount, address, network: "TRX" });

/** Two days of a bot's usual traffic from its home network: account reads and small BTCUSDT orders. */
async function history(s: Stack): Promise<void> {
  for (let i = 0; i < 120; i++) {
    s.t.clock.advance(20 * 60_000);
    const res = i % 3 === 0 ? await s.send("POST", "/api/v3/order", HOME, order("BTCUSDT", (0.01 + (i % 5) * 0.002).toFixed(3), "60000")) : await s.send("GET", "/api/v3/account", HOME);
    expect(res.status).toBe(200);
  }
}

describe("the behaviour engine in the core", () => {
  it("leaves a key used as usual alone, and acts on the same key used from a new network for what it never did: audited, explained, its next withdrawal held", async () => {
    const s = await stack();
    await history(s);
    expect(s.actions.filter((a) => a.action !== "record")).toEqual([]);
    const usual = await s.engine.latest(s.key.id);
    expect(usual).toMatchObject({ keyId: s.key.id, basis: "key" });
    expect(usual?.score ?? 100).toBeLessThan(30);

    // The thief: a new network, an illiquid pair the key never traded, much larger, then a withdrawal to a new address.
    const before = s.upstream.requests.filter((r) => r.url.startsWith("/sapi")).length;
    for (let i = 0; i < 3; i++) {
      s.t.clock.advance(2_000);
      await s.send("POST", "/api/v3/order", AWAY, order("XYZUSDT", "40000", "0.6"));
    }
    const strongest = s.actions.reduce((m, a) => Math.max(m, actionStrength(a.action)), -1);
    expect(strongest).toBeGreaterThanOrEqual(actionStrength("step-up"));
    const acted = s.actions.find((a) => actionStrength(a.action) >= actionStrength("step-up"));
    expect(acted?.explanation.contributions.map((c) => c.feature)).toEqual(expect.arrayContaining(["symbol.new"]));
    s.t.clock.advance(2_000);
    const drain = await s.send("POST", "/sapi/v1/capital/withdraw/apply", AWAY, withdrawal("900", "TThiefAddress000000000000000000001"));
    expect([202, 403, 429]).toContain(drain.status);
    expect(s.upstream.requests.filter((r) => r.url.startsWith("/sapi")).length).toBe(before);
    const view = await s.t.core.keys.get(s.key.id);
    expect(view.risk !== null || view.status === "suspended").toBe(true);
    await s.t.core.audit.flush();
    const entries = readEntries(s.t.dataDir).filter((e) => e.event === "anomaly.action");
    expect(entries.length).toBeGreaterThanOrEqual(1);
    expect(entries.some((e) => e.key === s.key.id)).toBe(true);
  });

  it("a flood of wrong signatures on a key's id from many addresses never suspends, throttles or steps up the key: at most an alert", async () => {
    const s = await stack();
    await history(s);
    for (let i = 0; i < 60; i++) {
      s.t.clock.advance(1_000);
      const res = await s.send("GET", "/api/v3/account", `198.51.100.${String(i + 1)}`, undefined, "not-the-secret-at-all-but-long-enough-00000");
      expect(res.json).toMatchObject({ code: "SIGNATURE_INVALID" });
    }
    expect(s.actions.every((a) => actionStrength(a.action) <= actionStrength("alert"))).toBe(true);
    const view = await s.t.core.keys.get(s.key.id);
    expect({ status: view.status, risk: view.risk }).toEqual({ status: "active", risk: null });
    s.t.clock.advance(1_000);
    expect((await s.send("GET", "/api/v3/account", HOME)).status).toBe(200);
  });

  it("keeps each key's state across a restart of the core: the next score counts every event before it", async () => {
    const s = await stack();
    for (let i = 0; i < 10; i++) {
      s.t.clock.advance(60_000);
      await s.send("GET", "/api/v3/account", HOME);
    }
    const seen = (await s.engine.latest(s.key.id))?.seen;
    expect(seen).toBe(9);
    // Another core on the same data directory (a restart), with the same clock.
    const data = await openDataDir(s.t.dataDir, { pollIntervalMs: 50 });
    const again = new Portcullis({ store: data.store, envelope: data.envelope, environment: "test", routes: ROUTES, now: s.t.clock.now, behaviour: { settings: SETTINGS } });
    cleanups.push(() => again.close());
    // Past the new core's replay fence (a request signed before it started is refused).
    s.t.clock.advance(2_000);
    const stored = await again.behaviour?.latest(s.key.id);
    expect(stored).toMatchObject({ keyId: s.key.id, score: expect.any(Number) as number });
    const ctx = await again.pipeline.run({ method: "GET", url: "/api/v3/account", headers: signRequest({ method: "GET", url: "/api/v3/account", keyId: s.key.id, key: s.key.secret, created: s.t.clock.seconds }), body: Buffer.alloc(0), socketAddress: HOME });
    expect(ctx.denial).toBeNull();
    again.pipeline.observe(ctx, "allowed", "gateway");
    await again.behaviour?.settle();
    expect((await again.behaviour?.latest(s.key.id))?.seen).toBe(10);
  });
});

describe("the engine's bounds and sharing", () => {
  async function contexts(n: number): Promise<{ t: TestCore; list: RequestContext[] }> {
    const t = await makeCore({ routes: ROUTES });
    cleanups.push(() => t.cleanup());
    const created = await t.createKey({ scopes: ["read"] });
    const list: RequestContext[] = [];
    for (let i = 0; i < n; i++) {
      t.clock.advance(1_000);
      const ctx = await t.core.pipeline.run({ method: "GET", url: "/api/v3/account", headers: signRequest({ method: "GET", url: "/api/v3/account", keyId: created.key.id, key: created.secret ?? "", created: t.clock.seconds }), body: Buffer.alloc(0), socketAddress: HOME });
      expect(ctx.denial).toBeNull();
      list.push(ctx);
    }
    return { t, list };
  }

  it("a full queue drops decisions and counts them; a request is never refused for it", async () => {
    const { t, list } = await contexts(3);
    const engine = new BehaviourEngine({ model: new BehaviourModel(), states: (t.core as unknown as { store: { behaviour: RedisBehaviourStore } }).store.behaviour, respond: null, prices: null, logger: silentLogger(), maxQueue: 1, flushMs: 1_000_000 });
    for (const ctx of list) engine.observe(ctx, "allowed");
    expect(engine.dropped).toBe(2);
    await engine.close();
    expect((await engine.latest(list[0]?.key?.record.id ?? ""))?.seen).toBe(0);
  });

  it("queues each decision's event, not its context: later changes to the context are not scored; an event that cannot be built is counted, never thrown at the request", async () => {
    const { t, list } = await contexts(2);
    const engine = new BehaviourEngine({ model: new BehaviourModel(), states: (t.core as unknown as { store: { behaviour: RedisBehaviourStore } }).store.behaviour, respond: null, prices: null, logger: silentLogger(), flushMs: 1_000_000 });
    const [first, second] = list as [RequestContext, RequestContext];
    const at = first.now;
    engine.observe(first, "allowed");
    (first as { now: number }).now = at + 36_000_000; // as if the context were reused or changed after the hand-off
    // A context no event can be made of (an address the gateway never resolves like this).
    second.client = { ...(second.client as NonNullable<RequestContext["client"]>), ip: null as unknown as NonNullable<RequestContext["client"]>["ip"] };
    expect(() => {
      engine.observe(second, "allowed");
    }).not.toThrow();
    expect(engine.failures).toBe(1);
    await engine.settle();
    const latest = await engine.latest(first.key?.record.id ?? "");
    expect(latest?.at).toBe(at);
    expect(latest?.seen).toBe(0); // the first event of the key: none before it
    await engine.close();
  });

  it("a timer's batch scores the decisions queued when it started; those observed meanwhile wait for their own timer", async () => {
    // Draining until the queue was empty made every slice as small as what arrived during the
    // previous slice's round trips to the state store (about 30 decisions at 10,000 requests/s).
    const { t, list } = await contexts(3);
    const inner = (t.core as unknown as { store: { behaviour: BehaviourStateStore } }).store.behaviour;
    const calls: string[][] = [];
    let release: () => void = () => undefined;
    let gate: Promise<void> | null = new Promise<void>((resolve) => {
      release = resolve;
    });
    const states: BehaviourStateStore = {
      kind: "gated",
      load: (ids) => inner.load(ids),
      remove: (ids) => inner.remove(ids),
      ids: (after, limit) => inner.ids(after, limit),
      async update(ids, apply) {
        calls.push([...ids]);
        const held = gate;
        gate = null;
        if (held !== null) await held;
        return inner.update(ids, apply);
      },
    };
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    cleanups.push(() => {
      vi.useRealTimers();
      return Promise.resolve();
    });
    const engine = new BehaviourEngine({ model: new BehaviourModel(), states, respond: null, prices: null, logger: silentLogger(), flushMs: 60_000 });
    const [first, second, third] = list as [RequestContext, RequestContext, RequestContext];
    const keyId = first.key?.record.id ?? "";
    engine.observe(first, "allowed");
    // (vi.waitFor moves fake timers on by its interval at each check: the window is far longer.)
    vi.advanceTimersByTime(60_000);
    await vi.waitFor(() => {
      expect(calls).toHaveLength(1);
    });
    // While the first batch waits on the store.
    engine.observe(second, "allowed");
    engine.observe(third, "allowed");
    release();
    await vi.waitFor(async () => {
      expect(await engine.latest(keyId)).not.toBeNull();
    });
    for (let i = 0; i < 10; i++) {
      await new Promise<void>((resolve) => {
        setImmediate(resolve);
      });
    }
    // The account's update and the key's, for the first decision only.
    expect(calls).toHaveLength(2);
    expect((await engine.latest(keyId))?.seen).toBe(0);
    vi.advanceTimersByTime(60_000);
    await vi.waitFor(async () => {
      expect((await engine.latest(keyId))?.seen).toBe(2);
    });
    // One batch for both.
    expect(calls).toHaveLength(4);
    await engine.close();
  });

  it("with Redis, two engines (two processes) update one state and lose no event", async () => {
    const { list } = await contexts(40);
    const prefix = `pc-test-engine-${String(process.pid)}-${String(Date.now())}:`;
    const stores = [new RedisBehaviourStore({ prefix }), new RedisBehaviourStore({ prefix })];
    const model = new BehaviourModel();
    const engines = stores.map((states) => new BehaviourEngine({ model: new BehaviourModel(), states, respond: null, prices: null, logger: silentLogger(), flushMs: 1_000_000 }));
    cleanups.push(async () => {
      const keyId = list[0]?.key?.record.id ?? "";
      await stores[0]?.remove([keyId, `account:${list[0]?.key?.record.account ?? ""}`]);
      for (const store of stores) await store.close();
    });
    // Interleaved: each engine takes every other decision, and both settle at once.
    list.forEach((ctx, i) => {
      engines[i % 2]?.observe(ctx, "allowed");
    });
    await Promise.all(engines.map((e) => e.settle()));
    const keyId = list[0]?.key?.record.id ?? "";
    const bytes = (await stores[0]?.load([keyId]))?.get(keyId);
    expect(bytes).toBeDefined();
    const state = model.decode(bytes ?? new Uint8Array());
    expect(state?.seen).toBe(40);
  });
});
