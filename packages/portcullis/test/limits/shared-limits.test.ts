/**
 * Limits exact under concurrency, in one gateway and across gateways: 200 concurrent clients
 * against a limit of L admit exactly L — through one gateway on the memory store, one on Redis, and
 * two `portcullis start` processes sharing one Redis. Then Redis killed under a running gateway:
 * trading routes fail closed, degradable routes fall back to local limits, nothing crashes, and the
 * gateway goes back to Redis by itself when Redis returns.
 *
 * Redis tests use the machine's Redis (127.0.0.1:6379, each test under its own key prefix) or a
 * private redis-server child process; they are skipped, loudly, only where neither exists, and
 * never in CI.
 */
import { valueOrThrow } from "../../src/errors/result.js";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { Agent, request } from "undici";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { RouteSpec } from "../../src/authz/routes.js";
import { parseConfig } from "../../src/config/config.js";
import type { LimitsOptions } from "../../src/core/core.js";
import { parseCreateKeyInput } from "../../src/keys/input.js";
import type { LimitSpec } from "../../src/contract/limits.js";
import { type RunningPortcullis, startPortcullis, urlOf } from "../../src/runtime/runtime.js";
import { RedisHotStore } from "../../src/storage/redis/hot.js";
import { runCli, startCli } from "../support/cli.js";
import { type TestGateway, captureLogger, makeGateway, startEchoUpstream } from "../support/gateway.js";
import { TEST_START, signRequest } from "../support/harness.js";
import { IN_CI, RedisServerProcess, SHARED_REDIS_URL, deleteKeys, freePort, loudSkip, redisReachable, redisServerInstalled, uniquePrefix } from "../support/redis.js";

const CLIENTS = 200;
const L = 37;
/** A daily window: while the test runs (real clocks in other processes), nothing refills. */
const DAY = 86_400_000;
const ROUTES: RouteSpec[] = [
  { method: "GET", path: "/api/v3/account", permission: "read", weight: 1 },
  { method: "GET", path: "/api/v3/ticker", permission: "read", weight: 1, degradable: true },
  { method: "POST", path: "/api/v3/order", permission: "trade", weight: 1, tags: ["order"] },
];
const LIMITS: LimitsOptions = {
  specs: [{ name: "key-weight-1d", scope: "key", kind: "weight", limit: L, windowMs: DAY } satisfies LimitSpec],
};

const sharedUp = await redisReachable(SHARED_REDIS_URL);
const serverInstalled = redisServerInstalled();
if (!sharedUp && !IN_CI) loudSkip("gateway limits on the shared Redis", `no Redis answers at ${SHARED_REDIS_URL}`);
if (!serverInstalled && !IN_CI) loudSkip("the gateway under a Redis failure", "no redis-server binary on PATH");

/** Tallies answers by status and code. */
function tally(answers: readonly { status: number; code: string }[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of answers) out[`${String(a.status)} ${a.code}`] = (out[`${String(a.status)} ${a.code}`] ?? 0) + 1;
  return out;
}

const codeOf = (body: string): string => {
  try {
    return (JSON.parse(body) as { code?: string }).code ?? "";
  } catch {
    return "";
  }
};

describe("200 concurrent clients against a limit of L, in one gateway", () => {
  let t: TestGateway | null = null;
  const prefixes: string[] = [];
  afterEach(async () => {
    await t?.close();
    t = null;
  });
  afterAll(async () => {
    if (!sharedUp) return;
    const admin = new Redis(SHARED_REDIS_URL);
    for (const p of prefixes) await deleteKeys(admin, p);
    await admin.quit();
  });

  async function storm(g: TestGateway): Promise<Record<string, number>> {
    const { key, secret } = await g.createKey({});
    const answers = await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        const headers = signRequest({ method: "GET", url: "/api/v3/account", keyId: key.id, key: secret ?? "", created: g.clock.seconds });
        const res = await g.inject({ method: "GET", url: "/api/v3/account", headers });
        return { status: res.statusCode, code: res.statusCode === 200 ? "" : codeOf(res.body) };
      }),
    );
    return tally(answers);
  }

  it("memory: exactly L admitted, the rest 429 RATE_LIMITED", async () => {
    t = await makeGateway({ routes: ROUTES, limits: { ...LIMITS, shield: { ...strikesOff } } });
    expect(await storm(t)).toEqual({ "200 ": L, "429 RATE_LIMITED": CLIENTS - L });
  });

  it.runIf(sharedUp || IN_CI)("redis: exactly L admitted, the rest 429 RATE_LIMITED", async () => {
    const prefix = uniquePrefix("gw");
    prefixes.push(prefix);
    t = await makeGateway({ routes: ROUTES, limits: { ...LIMITS, shield: { ...strikesOff } }, hot: new RedisHotStore({ url: SHARED_REDIS_URL, prefix, policy: strikesOff, now: () => TEST_START }) });
    expect(await storm(t)).toEqual({ "200 ": L, "429 RATE_LIMITED": CLIENTS - L });
  });
});

/** Strikes high enough that 163 refusals from one address do not turn into a ban. */
const strikesOff = {
  strikes: 1_000_000,
  strikeWindowMs: 60_000,
  banBaseMs: 30_000,
  banMaxMs: 3_600_000,
  authFailuresPerIp: 1_000,
  authFailuresPerKey: 1_000,
  authFailureWindowMs: 60_000,
  authBlockMs: 300_000,
};

describe.runIf(sharedUp || IN_CI)("two gateway processes sharing one Redis", () => {
  let dir: string;
  let upstream: Awaited<ReturnType<typeof startEchoUpstream>>;
  const gateways: Awaited<ReturnType<typeof startCli>>[] = [];
  const urls: string[] = [];
  const prefix = uniquePrefix("two");
  let key: { id: string; secret: string };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "portcullis-shared-"));
    upstream = await startEchoUpstream();
    const data = join(dir, "data");
    expect((await runCli(["init", "--data", data, "--environment", "test", "--json"])).code).toBe(0);
    const created = JSON.parse((await runCli(["keys", "create", "--data", data, "--account", "acct-1", "--scopes", "read", "--json"])).stdout) as { id: string; secret: string };
    key = { id: created.id, secret: created.secret };
    const starter = JSON.parse(readFileSync(join(data, "portcullis.json"), "utf8")) as Record<string, unknown>;
    for (const n of [1, 2]) {
      const config = {
        ...starter,
        gateway: { ...(starter.gateway as object), host: "127.0.0.1", port: 0, upstream: upstream.url },
        admin: { enabled: false },
        routes: ROUTES,
        limits: { key: [{ name: "key-weight-1d", limit: L, window: "1d" }], shield: { strikes: 1_000_000 } },
        hot: { backend: "redis", url: SHARED_REDIS_URL, prefix },
        log: { level: "info" },
      };
      const file = join(data, `gateway-${String(n)}.json`);
      writeFileSync(file, JSON.stringify(config));
      const g = await startCli(["start", "--config", file], (line) => line.includes("portcullis started"));
      gateways.push(g);
      urls.push((JSON.parse(g.line) as { gateway: string }).gateway);
    }
  });
  afterAll(async () => {
    for (const g of gateways) expect(await g.stop()).toBe(0);
    await upstream.close();
    const admin = new Redis(SHARED_REDIS_URL);
    await deleteKeys(admin, prefix);
    await admin.quit();
    rmSync(dir, { recursive: true, force: true });
  });

  it("admit exactly L of 200 concurrent clients between them", async () => {
    // Every client its own connection, half of them to each gateway.
    const agent = new Agent({ connections: CLIENTS, pipelining: 0 });
    const get = (base: string) =>
      request(`${base}/api/v3/account`, {
        headers: signRequest({ method: "GET", url: "/api/v3/account", keyId: key.id, key: key.secret, created: Math.floor(Date.now() / 1000), host: new URL(base).host }),
        dispatcher: agent,
      });
    try {
      const answers = await Promise.all(
        Array.from({ length: CLIENTS }, async (_, i) => {
          const res = await get(urls[i % 2] ?? "");
          const body = await res.body.text();
          return { status: res.statusCode, code: res.statusCode === 200 ? "" : codeOf(body) };
        }),
      );
      // Exactly L in all: one budget shared by both (a budget per gateway would admit 2L). Which
      // gateway admitted how many is up to the race: Redis may take one gateway's whole burst first.
      expect(tally(answers)).toEqual({ "200 ": L, "429 RATE_LIMITED": CLIENTS - L });
      expect(upstream.requests.length).toBe(L);
      // And each gateway now refuses, the one that admitted fewest included.
      for (const base of urls) {
        const res = await get(base);
        expect([res.statusCode, codeOf(await res.body.text())]).toEqual([429, "RATE_LIMITED"]);
      }
    } finally {
      await agent.close();
    }
  });
});

describe.runIf(serverInstalled || IN_CI)("a running gateway when Redis is killed", () => {
  let redis: RedisServerProcess;
  let running: RunningPortcullis;
  let upstream: Awaited<ReturnType<typeof startEchoUpstream>>;
  let base: string;
  let dir: string;
  let key: { id: string; secret: string };
  const { logger, lines } = captureLogger();

  beforeAll(async () => {
    redis = await RedisServerProcess.start(await freePort());
    upstream = await startEchoUpstream();
    dir = mkdtempSync(join(tmpdir(), "portcullis-redis-down-"));
    const data = join(dir, "data");
    expect((await runCli(["init", "--data", data, "--environment", "test", "--json"])).code).toBe(0);
    const config = parseConfig(
      {
        dataDir: data,
        gateway: { host: "127.0.0.1", port: 0, upstream: upstream.url },
        admin: { enabled: false },
        routes: ROUTES,
        limits: { ip: [{ name: "ip-weight-1d", limit: 1_000, window: "1d" }] },
        hot: { backend: "redis", url: redis.url, prefix: "down:" },
      },
      dir,
    );
    running = await startPortcullis(config, logger);
    base = urlOf(running.gatewayAddress);
    const created = await running.core.keys.create(valueOrThrow(parseCreateKeyInput({ account: "acct-1", scopes: ["read", "trade"] }, Date.now())), "test");
    key = { id: created.key.id, secret: created.secret ?? "" };
  });
  afterAll(async () => {
    await running.close(1_000);
    await redis.kill();
    await upstream.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function call(method: "GET" | "POST", path: string): Promise<{ status: number; code: string; rateLimit: string | undefined }> {
    const headers = signRequest({ method, url: path, keyId: key.id, key: key.secret, created: Math.floor(Date.now() / 1000), host: new URL(base).host });
    const res = await request(`${base}${path}`, { method, headers });
    const body = await res.body.text();
    const rl = res.headers.ratelimit;
    return { status: res.statusCode, code: res.statusCode === 200 ? "" : codeOf(body), rateLimit: typeof rl === "string" ? rl : undefined };
  }

  it("fails closed on trading routes, degrades on degradable ones, and recovers by itself", async () => {
    expect((await call("GET", "/api/v3/account")).status).toBe(200);
    expect((await call("POST", "/api/v3/order")).status).toBe(200);

    await redis.kill();
    const during = [await call("GET", "/api/v3/account"), await call("POST", "/api/v3/order"), await call("GET", "/api/v3/ticker")];
    expect(during.map((a) => `${String(a.status)} ${a.code}`)).toEqual(["503 HOT_STORE_UNAVAILABLE", "503 HOT_STORE_UNAVAILABLE", "200 "]);
    // The degraded answer was still limited, by this process's own copy of the limits.
    expect(during[2]?.rateLimit).toMatch(/^"ip-weight-1d";r=999;t=\d+$/);

    redis = await RedisServerProcess.start(redis.port);
    const deadline = Date.now() + 10_000;
    let after = await call("POST", "/api/v3/order");
    while (after.status !== 200 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      after = await call("POST", "/api/v3/order");
    }
    expect(after.status).toBe(200);
    // Back on Redis: a fresh server, so the address's budget starts again there.
    expect(after.rateLimit).toMatch(/^"ip-weight-1d";r=999;t=\d+$/);
    // Each refusal is logged with its code; nothing is logged with a stack.
    const log = lines.join("");
    expect(log.match(/"code":"HOT_STORE_UNAVAILABLE"/g)?.length).toBeGreaterThanOrEqual(2);
    expect(log).not.toMatch(/\\n\s+at /);
  });
});
