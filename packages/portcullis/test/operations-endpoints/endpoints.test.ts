/**
 * The operational endpoints of a running Portcullis (docs/operations-endpoints.md), over real
 * HTTP on loopback: the gateway's /portcullis/v1/healthz and readyz (also in authorizer mode),
 * the admin listener's Prometheus /metrics (open, or behind its bearer token), and readyz
 * following a private Redis that is killed and started again.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/config.js";
import { valueOrThrow } from "../../src/errors/result.js";
import { parseCreateKeyInput } from "../../src/keys/input.js";
import { type RunningPortcullis, startPortcullis, urlOf } from "../../src/runtime/runtime.js";
import { captureLogger, startEchoUpstream } from "../support/gateway.js";
import { signRequest } from "../support/harness.js";
import { IN_CI, RedisServerProcess, freePort, loudSkip, redisServerInstalled } from "../support/redis.js";
import { ROUTES, call, dataDir, parseExposition, until } from "./support.js";

const METRICS_TOKEN = "metrics-token-0123456789abcdef-0123456789";

interface Started {
  running: RunningPortcullis;
  gateway: string;
  admin: string;
  key: { id: string; secret: string };
  cleanup(): Promise<void>;
}

async function start(tag: string, extra: Record<string, unknown> = {}, admin: Record<string, unknown> = {}): Promise<Started & { lines: string[] }> {
  const d = await dataDir(tag);
  const upstream = await startEchoUpstream();
  writeFileSync(join(d.data, "metrics.token"), METRICS_TOKEN, { mode: 0o600 });
  const { logger, lines } = captureLogger();
  const config = parseConfig(
    {
      dataDir: d.data,
      gateway: { host: "127.0.0.1", port: 0, upstream: upstream.url },
      admin: { enabled: true, host: "127.0.0.1", port: 0, ...admin },
      routes: ROUTES,
      // Three requests a day per address: a probe that were charged would run it out.
      limits: { ip: [{ name: "ip-weight-1d", limit: 3, window: "1d" }] },
      ...extra,
    },
    d.dir,
  );
  const running = await startPortcullis(config, logger);
  const created = await running.core.keys.create(valueOrThrow(parseCreateKeyInput({ account: "acct-1", scopes: ["read"] }, Date.now())), "test");
  return {
    running,
    lines,
    gateway: urlOf(running.gatewayAddress),
    admin: running.adminAddress === null ? "" : urlOf(running.adminAddress),
    key: { id: created.key.id, secret: created.secret ?? "" },
    async cleanup() {
      await running.close(1_000);
      await upstream.close();
      d.cleanup();
    },
  };
}

function signed(s: Started, path = "/api/v3/account"): Record<string, string> {
  return { ...signRequest({ method: "GET", url: path, keyId: s.key.id, key: s.key.secret, created: Math.floor(Date.now() / 1000), host: new URL(s.gateway).host }) };
}

describe("healthz and readyz on the gateway", () => {
  let s: Started & { lines: string[] };
  beforeAll(async () => {
    s = await start("probes", {}, { metrics: { public: true } });
  });
  afterAll(async () => {
    await s.cleanup();
  });

  it("healthz: 200 {status: ok}, HEAD too, without credentials; other methods ROUTE_NOT_FOUND", async () => {
    const get = await call(`${s.gateway}/portcullis/v1/healthz`);
    expect([get.status, get.json]).toEqual([200, { status: "ok" }]);
    expect(get.headers["cache-control"]).toBe("no-store");
    const head = await call(`${s.gateway}/portcullis/v1/healthz`, { method: "HEAD" });
    expect([head.status, head.text]).toEqual([200, ""]);
    const post = await call(`${s.gateway}/portcullis/v1/healthz`, { method: "POST", body: "{}" });
    expect([post.status, post.json?.code]).toEqual([404, "ROUTE_NOT_FOUND"]);
  });

  it("readyz: 200 naming every check, each ok, with no message", async () => {
    const r = await call(`${s.gateway}/portcullis/v1/readyz`);
    expect(r.status).toBe(200);
    expect(r.json?.status).toBe("ready");
    const checks = r.json?.checks as Record<string, { status: string; code?: string; ms: number }>;
    expect(Object.keys(checks).sort()).toEqual(["audit", "custody", "durable", "hot"]);
    for (const c of Object.values(checks)) {
      expect(c.status).toBe("ok");
      expect(c.code).toBeUndefined();
      expect(typeof c.ms).toBe("number");
    }
    const head = await call(`${s.gateway}/portcullis/v1/readyz`, { method: "HEAD" });
    expect([head.status, head.text]).toEqual([200, ""]);
  });

  it("probes are never audited, never counted as decisions and never charged to a limit", async () => {
    await s.running.core.audit.flush();
    const recordedBefore = s.running.core.audit.stats.recorded;
    for (let i = 0; i < 10; i++) {
      expect((await call(`${s.gateway}/portcullis/v1/healthz`)).status).toBe(200);
      expect((await call(`${s.gateway}/portcullis/v1/readyz`)).status).toBe(200);
    }
    expect(s.running.core.audit.stats.recorded).toBe(recordedBefore);
    const metrics = parseExposition((await call(`${s.admin}/metrics`)).text);
    expect(metrics.samples.filter((x) => x.name === "portcullis_decisions_total")).toEqual([]);
    // The address's three requests a day are all still there for a real request.
    const res = await call(`${s.gateway}/api/v3/account`, { headers: signed(s) });
    expect(res.status).toBe(200);
    expect(res.headers.ratelimit).toMatch(/^"ip-weight-1d";r=2;/);
    expect(s.running.core.audit.stats.recorded).toBe(recordedBefore + 1);
  });

  it("every log line written while handling a request names its request id", async () => {
    s.lines.length = 0;
    const answers = [
      await call(`${s.gateway}/api/v3/account`, { headers: signed(s) }),
      await call(`${s.gateway}/api/v3/account`),
      await call(`${s.gateway}/api/v3/order`, { method: "POST", headers: signed(s, "/api/v3/order"), body: "{}" }),
      await call(`${s.gateway}/nowhere`),
    ];
    expect(answers.map((a) => a.status)).toEqual([200, 401, 400, 404]);
    expect(s.lines.length).toBeGreaterThanOrEqual(3);
    for (const line of s.lines) expect(JSON.parse(line)).toHaveProperty("requestId");
    const ids = answers.map((a) => String(a.headers["portcullis-request-id"]));
    for (const id of ids.slice(1)) expect(s.lines.some((l) => l.includes(id))).toBe(true);
  });

  it("draining: both probes 503 DRAINING (and close the connection) while requests are still served", async () => {
    const gateway = s.running.gateway;
    gateway.drain();
    const health = await call(`${s.gateway}/portcullis/v1/healthz`);
    expect([health.status, health.json?.status, health.json?.code]).toEqual([503, "draining", "DRAINING"]);
    expect(health.headers.connection).toBe("close");
    const ready = await call(`${s.gateway}/portcullis/v1/readyz`);
    expect([ready.status, ready.json?.code]).toEqual([503, "DRAINING"]);
    // The older health path too: a load balancer probing it stops sending during the drain delay.
    const older = await call(`${s.gateway}/portcullis/v1/health`);
    expect([older.status, older.json?.status, older.headers.connection]).toEqual([503, "draining", "close"]);
    const res = await call(`${s.gateway}/api/v3/account`, { headers: signed(s) });
    expect(res.status).toBe(200);
    expect(res.headers.connection).toBe("close");
  });
});

describe("healthz and readyz in authorizer mode", () => {
  let s: Started;
  beforeAll(async () => {
    s = await start("authz", { gateway: { host: "127.0.0.1", port: 0, mode: "authorizer", trustedProxies: ["10.9.9.9/32"] } }, { enabled: false });
  });
  afterAll(async () => {
    await s.cleanup();
  });

  it("answers the probes to any peer (a load balancer is no trusted proxy), then 503 DRAINING", async () => {
    expect((await call(`${s.gateway}/portcullis/v1/healthz`)).json).toEqual({ status: "ok" });
    expect((await call(`${s.gateway}/portcullis/v1/health`)).status).toBe(200);
    const ready = await call(`${s.gateway}/portcullis/v1/readyz`);
    expect([ready.status, ready.json?.status]).toEqual([200, "ready"]);
    // An authorizer path from this untrusted peer is refused: the probes were not let through by trust.
    const refused = await call(`${s.gateway}/portcullis/v1/authz/nginx`, { headers: { "x-original-uri": "/api/v3/account" } });
    expect(refused.json?.code).toBe("AUTHORIZER_PEER_UNTRUSTED");
    s.running.gateway.drain();
    const health = await call(`${s.gateway}/portcullis/v1/healthz`);
    expect([health.status, health.json?.code]).toEqual([503, "DRAINING"]);
    const older = await call(`${s.gateway}/portcullis/v1/health`);
    expect([older.status, older.json?.status]).toEqual([503, "draining"]);
  });
});

describe("Prometheus /metrics on the admin listener", () => {
  let s: Started & { lines: string[] };
  beforeAll(async () => {
    // Every second request has its stages timed.
    s = await start("metrics", {}, { metrics: { tokenFile: "metrics.token", sampleEvery: 2 } });
  });
  afterAll(async () => {
    await s.cleanup();
  });
  const auth = { authorization: `Bearer ${METRICS_TOKEN}` };

  it("refuses a scrape without the bearer token, or with another: 401 METRICS_UNAUTHORIZED, never the token in the log", async () => {
    for (const headers of [{}, { authorization: "Bearer wrong-token-0123456789abcdef" }, { authorization: `Basic ${METRICS_TOKEN}` }, { authorization: `Bearer ${METRICS_TOKEN}x` }]) {
      const r = await call(`${s.admin}/metrics`, { headers });
      expect([r.status, r.json?.code]).toEqual([401, "METRICS_UNAUTHORIZED"]);
      expect(r.headers["www-authenticate"]).toBe('Bearer realm="portcullis-metrics"');
    }
    const post = await call(`${s.admin}/metrics`, { method: "POST", headers: auth, body: "" });
    expect([post.status, post.json?.code]).toEqual([404, "ROUTE_NOT_FOUND"]);
    expect(s.lines.join("")).not.toContain(METRICS_TOKEN.slice(0, 20));
    // One line for the four refusals: the first is logged, the next are counted for the next line.
    const refused = s.lines.filter((l) => l.includes("metrics scrape refused"));
    expect(refused).toHaveLength(1);
    expect(JSON.parse(refused[0] ?? "{}")).toMatchObject({ code: "METRICS_UNAUTHORIZED", refused: 1 });
  });

  it("serves the text format, and its values follow real requests", async () => {
    const scrape = async (): Promise<ReturnType<typeof parseExposition>> => {
      const r = await call(`${s.admin}/metrics`, { headers: auth });
      expect(r.status).toBe(200);
      expect(r.headers["content-type"]).toBe("text/plain; version=0.0.4; charset=utf-8");
      return parseExposition(r.text);
    };
    const before = await scrape();
    expect(before.types.get("portcullis_decisions_total")).toBe("counter");
    expect(before.types.get("portcullis_stage_duration_seconds")).toBe("histogram");
    expect(before.value("portcullis_decisions_total", { surface: "gateway", code: "OK" })).toBeUndefined();
    // Process metrics (prom-client's defaults).
    expect(before.value("process_cpu_user_seconds_total")).toBeGreaterThan(0);
    expect(before.types.get("nodejs_eventloop_lag_seconds")).toBe("gauge");
    // Readiness checks at scrape time.
    for (const check of ["durable", "hot", "audit", "custody"]) expect(before.value("portcullis_dependency_up", { check })).toBe(1);
    const recordedBefore = s.running.core.audit.stats.recorded;

    // Two allowed requests, and two refused (no credentials at all): four decisions, two sampled.
    const answers = [
      await call(`${s.gateway}/api/v3/account`, { headers: signed(s) }),
      await call(`${s.gateway}/api/v3/account`, { headers: signed(s) }),
      await call(`${s.gateway}/api/v3/account`),
      await call(`${s.gateway}/api/v3/account`),
    ];
    expect(answers.map((a) => a.status)).toEqual([200, 200, 401, 401]);
    const refusal = String(answers[2]?.json?.code);
    // A sampled request shows no Server-Timing (that is only on demand, gateway.serverTiming).
    for (const a of answers) expect(a.headers["server-timing"]).toBeUndefined();

    const after = await scrape();
    expect(after.value("portcullis_decisions_total", { surface: "gateway", code: "OK" })).toBe(2);
    expect(after.value("portcullis_decisions_total", { surface: "gateway", code: refusal })).toBe(2);
    // One request in two was timed: the address stage ("addr", which every request runs) was observed twice.
    expect(after.value("portcullis_stage_duration_seconds_count", { stage: "addr" })).toBe(2);
    expect(after.value("portcullis_stage_duration_seconds_bucket", { stage: "addr", le: "+Inf" })).toBe(2);
    // The key was looked up (a miss first, then hits).
    const lookups = (["hit", "stale", "negative", "miss"] as const).map((result) => after.value("portcullis_key_cache_lookups_total", { result }) ?? 0);
    expect(lookups.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(2);
    expect(after.value("portcullis_key_cache_entries")).toBeGreaterThanOrEqual(1);
    // The durable store's key read (the miss), timed; no failure.
    expect(after.value("portcullis_store_operation_duration_seconds_count", { store: "durable", operation: "key_load" })).toBeGreaterThanOrEqual(1);
    expect(after.value("portcullis_store_errors_total", { store: "durable", operation: "key_load" })).toBeUndefined();
    // The hot store's admission, timed on the sampled requests that reached it: the second (signed) one.
    expect(after.types.get("portcullis_store_operation_duration_seconds")).toBe("histogram");
    expect(after.value("portcullis_store_operation_duration_seconds_count", { store: "hot", operation: "admit" })).toBe(1);
    // The audit log: four entries recorded; the scrape itself recorded none.
    expect(after.value("portcullis_audit_entries_total", { result: "recorded" })).toBe(recordedBefore + 4);
    expect(s.running.core.audit.stats.recorded).toBe(recordedBefore + 4);
    await s.running.core.audit.flush();
    const flushed = await scrape();
    expect(flushed.value("portcullis_audit_entries_buffered")).toBe(0);
    expect(flushed.value("portcullis_audit_oldest_pending_seconds")).toBe(0);
    expect(flushed.value("portcullis_audit_entries_total", { result: "committed" })).toBe(s.running.core.audit.stats.committed);
    // The group commits, timed.
    expect(flushed.value("portcullis_store_operation_duration_seconds_count", { store: "durable", operation: "audit_append" })).toBeGreaterThanOrEqual(1);
  });
});

describe("admin.metrics.public, and /metrics without a token configured", () => {
  it("public: served without a credential; neither public nor a token: every scrape refused", async () => {
    const open = await start("public", {}, { metrics: { public: true } });
    try {
      const r = await call(`${open.admin}/metrics`);
      expect(r.status).toBe(200);
      expect(r.text).toContain("# TYPE portcullis_decisions_total counter");
    } finally {
      await open.cleanup();
    }
    const closed = await start("closed");
    try {
      const r = await call(`${closed.admin}/metrics`, { headers: { authorization: "Bearer anything-at-all-0123456789" } });
      expect([r.status, r.json?.code]).toEqual([401, "METRICS_UNAUTHORIZED"]);
    } finally {
      await closed.cleanup();
    }
  });
});

const serverInstalled = redisServerInstalled();
if (!serverInstalled && !IN_CI) loudSkip("readyz following a private Redis", "no redis-server binary on PATH");

describe.runIf(serverInstalled || IN_CI)("readyz when the Redis hot store stops and returns", () => {
  let redis: RedisServerProcess;
  let s: Started;
  beforeAll(async () => {
    redis = await RedisServerProcess.start(await freePort());
    s = await start("redis", { hot: { backend: "redis", url: redis.url, prefix: "ops:" }, gateway: { host: "127.0.0.1", port: 0, upstream: "http://127.0.0.1:9", readinessTimeout: "500ms" } }, { metrics: { public: true } });
  });
  afterAll(async () => {
    await s.cleanup();
    await redis.kill();
  });

  it("503 NOT_READY naming the hot check while Redis is down, 200 again once it is back; healthz stays 200", async () => {
    const readyz = (): ReturnType<typeof call> => call(`${s.gateway}/portcullis/v1/readyz`);
    expect((await readyz()).status).toBe(200);

    await redis.kill();
    const down = await until(readyz, (r) => r.status === 503);
    expect(down.status).toBe(503);
    expect(down.json?.status).toBe("not_ready");
    expect(down.json?.code).toBe("NOT_READY");
    const checks = down.json?.checks as Record<string, { status: string; code?: string }>;
    expect(checks.hot).toMatchObject({ status: "failed", code: "HOT_STORE_UNAVAILABLE" });
    for (const name of ["durable", "audit", "custody"]) expect(checks[name]?.status).toBe("ok");
    // Names and codes only: no error message, no stack, no address of the Redis.
    expect(down.text).not.toMatch(/ECONNREFUSED|not connected|Error|\bat \S+:\d+|127\.0\.0\.1/);
    expect((await call(`${s.gateway}/portcullis/v1/healthz`)).status).toBe(200);
    const scraped = parseExposition((await call(`${s.admin}/metrics`)).text);
    expect(scraped.value("portcullis_dependency_up", { check: "hot" })).toBe(0);
    expect(scraped.value("portcullis_dependency_check_failures_total", { check: "hot", code: "HOT_STORE_UNAVAILABLE" })).toBeGreaterThanOrEqual(1);
    // A request that needs the hot store fails closed, and the store's error is counted.
    const refused = await call(`${s.gateway}/api/v3/account`, { headers: signed(s) });
    expect([refused.status, refused.json?.code]).toEqual([503, "HOT_STORE_UNAVAILABLE"]);
    const after = parseExposition((await call(`${s.admin}/metrics`)).text);
    expect(after.value("portcullis_store_errors_total", { store: "hot", operation: "admit" })).toBe(1);

    redis = await RedisServerProcess.start(redis.port);
    const back = await until(readyz, (r) => r.status === 200);
    expect([back.status, back.json?.status]).toEqual([200, "ready"]);
  });
});
