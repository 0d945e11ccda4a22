import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/config.js";
import { valueOrThrow } from "../../src/errors/result.js";
import { parseCreateKeyInput } from "../../src/keys/input.js";
import { type RunningPortcullis, startPortcullis, urlOf } from "../../src/runtime/runtime.js";
import { PostgresStore } from "../../src/storage/postgres/store.js";
import { runCli } from "../support/cli.js";
import { captureLogger, startEchoUpstream } from "../support/gateway.js";
import { signRequest } from "../support/harness.js";
import { uniqueSchema } from "../support/postgres.js";
import { PrivatePostgres } from "../support/private-postgres.js";
import { IN_CI, RedisServerProcess, freePort, loudSkip, redisReachable, redisServerInstalled, uniquePrefix } from "../support/redis.js";
import { call } from "../operations-endpoints/support.js";

/**
 * Failure drills through the real runtime (docs/failures.md): `startPortcullis` on a private
 * PostgreSQL and a private Redis, which the drills stop, kill, cut off and start again under the
 * running gateway, over real sockets. Nothing is restarted on the gateway's side: every drill ends
 * with requests working again, the audit spill replayed and the chain verifying, with one
 * request entry per request made.
 *
 * Times are real (the gateway's clock is the system's): the grace is short (1.5 s) so the drill
 * waits little; test/failures/key-outage.test.ts measures the grace itself on a frozen clock.
 */

const installed = PrivatePostgres.available() && redisServerInstalled();
const run = installed || IN_CI;
if (!run) loudSkip("the PostgreSQL and Redis failure drills", "no initdb / pg_ctl, or no redis-server, on this machine");

const GRACE_MS = 1_500;

const ROUTES = [
  // A read route that may fall back to this process's own limits while Redis is down.
  { method: "GET", path: "/api/v3/account", permission: "read", weight: 1, degradable: true },
  { method: "POST", path: "/api/v3/order", permission: "trade", weight: 1 },
];

interface Key {
  readonly id: string;
  readonly secret: string;
}

interface Answer {
  readonly status: number;
  readonly code: string | undefined;
}

/** Polls `check` until it holds, or fails after `ms` (real time: reconnection is real). */
async function until(check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<number> {
  const started = performance.now();
  while (!(await check())) {
    if (performance.now() - started > ms) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return performance.now() - started;
}

describe.runIf(run)("failure drills: PostgreSQL and Redis outages under a running gateway", () => {
  let pgServer: PrivatePostgres;
  let redis: RedisServerProcess;
  let redisPort: number;
  let upstream: Awaited<ReturnType<typeof startEchoUpstream>>;
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    pgServer = await PrivatePostgres.create();
    redisPort = await freePort();
    redis = await RedisServerProcess.start(redisPort);
    upstream = await startEchoUpstream();
  }, 120_000);

  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
    // A drill that failed half-way leaves its servers as they were: the next one starts with both up.
    if (!pgServer.isRunning) await pgServer.start();
    if (!(await redisAnswers())) redis = await RedisServerProcess.start(redisPort);
  });

  async function redisAnswers(): Promise<boolean> {
    return redisReachable(`redis://127.0.0.1:${redisPort}`);
  }

  afterAll(async () => {
    await upstream.close();
    await redis.kill().catch(() => undefined);
    await pgServer.cleanup();
  });

  /** A gateway and admin API on a fresh data directory on the private PostgreSQL (own schema) and Redis (own prefix). */
  async function startDrill(tag: string): Promise<Drill> {
    const dir = mkdtempSync(join(tmpdir(), `portcullis-drill-${tag}-`));
    // Removed even when the drill fails before its gateway runs (cleanups run in reverse: last).
    cleanups.push(() => {
      rmSync(dir, { recursive: true, force: true });
      return Promise.resolve();
    });
    const data = join(dir, "data");
    const schema = uniqueSchema(tag);
    const init = await runCli(["init", "--data", data, "--environment", "test", "--store", pgServer.url, "--schema", schema, "--json"]);
    expect(init.code, init.stderr).toBe(0);
    const { logger, lines } = captureLogger();
    const config = parseConfig(
      {
        dataDir: data,
        store: { backend: "postgres", url: pgServer.url, schema, outageGrace: `${GRACE_MS}ms` },
        hot: { backend: "redis", url: `redis://127.0.0.1:${redisPort}`, prefix: uniquePrefix(tag).slice(0, 32) },
        gateway: { host: "127.0.0.1", port: 0, upstream: upstream.url },
        admin: { enabled: true, host: "127.0.0.1", port: 0 },
        routes: ROUTES,
      },
      dir,
    );
    const running = await startPortcullis(config, logger);
    const drill = new Drill(running, data, schema, pgServer.url, lines);
    cleanups.push(async () => {
      if (process.env.DRILL_LOGS === "1") for (const l of lines) if (/"level":(40|50|60)/.test(l)) console.log(tag, l.replace(/"stack":"(?:[^"\\]|\\.)*"/g, "").slice(0, 600));
      await running.close(1_000);
    });
    return drill;
  }

  it("PostgreSQL stopped: cached keys verify until the grace, uncached ones and admin writes are refused coded, audit entries spill; started again (same port): everything works without a restart, the spill is replayed once and the chain verifies", async () => {
    const d = await startDrill("stop");
    const cached = await d.createKey(["read", "trade"]);
    const uncached = await d.createKey(["read"]);
    const adminKey = await d.createKey(["admin:*"], true);
    expect(await d.send(cached, "GET", "/api/v3/account")).toEqual({ status: 200, code: undefined });
    expect(await d.send(cached, "POST", "/api/v3/order")).toEqual({ status: 200, code: undefined });
    expect((await d.admin(adminKey, "GET", "/portcullis/v1/keys")).status).toBe(200);
    expect((await call(`${d.gateway}/portcullis/v1/readyz`)).status).toBe(200);

    await pgServer.stop();
    await until(() => d.running.core.availability?.outageSince !== null, 2_000, "the gateway notices the outage");
    const outageAt = Date.now();
    // Within the grace: the cached key, for reads and orders (Redis is up).
    expect(await d.send(cached, "GET", "/api/v3/account")).toEqual({ status: 200, code: undefined });
    expect(await d.send(cached, "POST", "/api/v3/order")).toEqual({ status: 200, code: undefined });
    // A key never used here is refused at once.
    const started = performance.now();
    expect(await d.send(uncached, "GET", "/api/v3/account")).toEqual({ status: 503, code: "KEY_STORE_UNAVAILABLE" });
    expect(performance.now() - started).toBeLessThan(1_000);
    // Admin writes and reads: a coded 503, never a 500.
    expect(await d.admin(adminKey, "POST", "/portcullis/v1/keys", { account: "acct-9", scopes: ["read"] })).toEqual({ status: 503, code: "DURABLE_STORE_UNAVAILABLE" });
    expect(await d.admin(adminKey, "POST", `/portcullis/v1/keys/${cached.id}/revoke`, { reason: "drill" })).toEqual({ status: 503, code: "DURABLE_STORE_UNAVAILABLE" });
    expect(await d.admin(adminKey, "GET", "/portcullis/v1/keys")).toEqual({ status: 503, code: "DURABLE_STORE_UNAVAILABLE" });
    // readyz names the outage (once its cached report, at most a second old, has expired).
    let notReady = await call(`${d.gateway}/portcullis/v1/readyz`);
    await until(async () => (notReady = await call(`${d.gateway}/portcullis/v1/readyz`)).status === 503, 3_000, "readyz reports the outage");
    expect((notReady.json?.checks as Record<string, { code?: string }>).durable?.code).toBe("DURABLE_STORE_UNAVAILABLE");
    // The audit entries of all this went to the data directory's spill files.
    await d.running.core.audit.flush();
    expect(d.running.core.audit.stats.spilled).toBeGreaterThan(0);
    expect(d.spillFiles().length).toBeGreaterThan(0);

    // After the grace, the cached key too.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, outageAt + GRACE_MS + 50 - Date.now())));
    expect(await d.send(cached, "GET", "/api/v3/account")).toEqual({ status: 503, code: "KEY_STORE_UNAVAILABLE" });

    await pgServer.start();
    await until(() => d.running.core.availability?.outageSince === null, 10_000, "the gateway has PostgreSQL back");
    // The outage and its end, logged once each.
    expect(d.lines.filter((l) => l.includes("durable store unreachable"))).toHaveLength(1);
    expect(d.lines.filter((l) => l.includes("durable store answers again"))).toHaveLength(1);
    // The pollers log the outage once each, not once a poll.
    expect(d.lines.filter((l) => l.includes("policy: reading the version in force failed"))).toHaveLength(1);
    expect(d.lines.filter((l) => l.includes("held operations: release loop pass failed")).length).toBeLessThanOrEqual(1);
    expect(await d.send(cached, "GET", "/api/v3/account")).toEqual({ status: 200, code: undefined });
    expect(await d.send(uncached, "GET", "/api/v3/account")).toEqual({ status: 200, code: undefined });
    expect((await d.admin(adminKey, "POST", "/portcullis/v1/keys", { account: "acct-9", scopes: ["read"] })).status).toBe(201);
    await until(async () => (await call(`${d.gateway}/portcullis/v1/readyz`)).status === 200, 5_000, "readyz is ready again");
    // Nothing written by the refused admin calls: the revoke did not happen.
    expect(await d.send(cached, "POST", "/api/v3/order")).toEqual({ status: 200, code: undefined });

    await until(() => d.spillFiles().length === 0, 10_000, "the spill files are replayed");
    await d.running.core.audit.flush();
    const stats = d.running.core.audit.stats;
    expect(stats.replayed).toBe(stats.spilled);
    expect(stats.dropped).toBe(0);
    await d.expectAuditComplete();
  }, 120_000);

  it("PostgreSQL killed (kill -9): the same, with crash recovery on the server's side", async () => {
    const d = await startDrill("kill");
    const cached = await d.createKey(["read", "trade"]);
    expect(await d.send(cached, "GET", "/api/v3/account")).toEqual({ status: 200, code: undefined });
    await pgServer.kill();
    await until(() => d.running.core.availability?.outageSince !== null, 2_000, "the gateway notices the outage");
    expect(await d.send(cached, "POST", "/api/v3/order")).toEqual({ status: 200, code: undefined });
    await d.running.core.audit.flush();
    expect(d.spillFiles().length).toBeGreaterThan(0);
    await pgServer.start();
    await until(() => d.running.core.availability?.outageSince === null, 10_000, "the gateway has PostgreSQL back");
    expect(await d.send(cached, "POST", "/api/v3/order")).toEqual({ status: 200, code: undefined });
    await until(() => d.spillFiles().length === 0, 10_000, "the spill files are replayed");
    await d.expectAuditComplete();
  }, 120_000);

  it("PostgreSQL frozen (SIGSTOP: connections open, nothing answers): no request waits past its bound, the heartbeat finds the outage, thawed it is back", async () => {
    const d = await startDrill("frozen");
    const cached = await d.createKey(["read", "trade"]);
    const uncached = await d.createKey(["read"]);
    expect(await d.send(cached, "GET", "/api/v3/account")).toEqual({ status: 200, code: undefined });
    pgServer.freeze();
    try {
      // Before the outage is known: the uncached key's lookup gives up after its 2 s bound.
      let started = performance.now();
      expect(await d.send(uncached, "GET", "/api/v3/account")).toEqual({ status: 503, code: "KEY_STORE_UNAVAILABLE" });
      expect(performance.now() - started).toBeLessThan(3_500);
      // The failed lookup is checked on the feed's connection (2 s), or the heartbeat (every 5 s, 2 s) finds it.
      await until(() => d.running.core.availability?.outageSince !== null, 8_000, "the outage is found");
      started = performance.now();
      expect(await d.send(uncached, "GET", "/api/v3/account")).toEqual({ status: 503, code: "KEY_STORE_UNAVAILABLE" });
      expect(performance.now() - started).toBeLessThan(1_000);
      // A cached key never waited on the frozen server.
      expect(await d.send(cached, "POST", "/api/v3/order")).toEqual({ status: 200, code: undefined });
    } finally {
      pgServer.thaw();
    }
    await until(() => d.running.core.availability?.outageSince === null, 10_000, "the gateway has PostgreSQL back");
    expect(await d.send(uncached, "GET", "/api/v3/account")).toEqual({ status: 200, code: undefined });
    await until(() => d.spillFiles().length === 0, 10_000, "the spill files are replayed");
    await d.expectAuditComplete();
  }, 120_000);

  it("a partition of this gateway alone: a key revoked meanwhile by another process is refused right after the gateway has PostgreSQL back", async () => {
    const d = await startDrill("partition");
    const key = await d.createKey(["read", "trade"]);
    expect(await d.send(key, "GET", "/api/v3/account")).toEqual({ status: 200, code: undefined });
    // Another process of the deployment, already connected (its one connection survives the cut).
    const other = await PostgresStore.open({ url: pgServer.url, schema: d.schema, poolSize: 1 });
    cleanups.push(() => other.close());
    expect((await other.get(key.id))?.status).toBe("active");
    const otherPid = (await (other as unknown as { pool: pg.Pool }).pool.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]?.pid;
    const dba = new pg.Client({ connectionString: pgServer.url.replace(/\/postgres$/, "/template1") });
    await dba.connect();
    cleanups.push(async () => {
      await dba.query("ALTER DATABASE postgres WITH ALLOW_CONNECTIONS true").catch(() => undefined);
      await dba.end();
    });
    // The cut: no new connection to the database, and this gateway's connections closed.
    await dba.query("ALTER DATABASE postgres WITH ALLOW_CONNECTIONS false");
    await dba.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE $1 AND pid <> $2", [`portcullis%:${d.schema}`, otherPid]);
    await until(() => d.running.core.availability?.outageSince !== null, 2_000, "the gateway notices the partition");
    // The other process revokes the key, without the bus (as if its message were lost): only the
    // change feed carries it.
    const revoked = await other.transition(key.id, ["active"], "revoked", "drill", { action: "revoke", actor: "cli:drill", at: Date.now(), detail: {} });
    expect(revoked.ok).toBe(true);
    // Still within the grace, the gateway cannot know: the cached key verifies (the grace bounds this).
    expect(await d.send(key, "GET", "/api/v3/account")).toEqual({ status: 200, code: undefined });
    await dba.query("ALTER DATABASE postgres WITH ALLOW_CONNECTIONS true");
    await until(() => d.running.core.availability?.outageSince === null, 10_000, "the partition heals");
    // Back means caught up: the revocation was evicted before the store counted as back. (With the
    // store counting itself back before its catch-up read, this and store-availability.test.ts's
    // ordering test fail.)
    expect(await d.send(key, "GET", "/api/v3/account")).toEqual({ status: 401, code: "KEY_REVOKED" });
    await until(() => d.spillFiles().length === 0, 10_000, "the spill files are replayed");
    await d.expectAuditComplete();
  }, 120_000);

  it("Redis stopped: trading routes fail closed (503 HOT_STORE_UNAVAILABLE), the degradable read route falls back to local limits; Redis started again (same port): trading works without a restart", async () => {
    const d = await startDrill("redis");
    const key = await d.createKey(["read", "trade"]);
    expect(await d.send(key, "POST", "/api/v3/order")).toEqual({ status: 200, code: undefined });
    await redis.kill();
    expect(await d.send(key, "POST", "/api/v3/order")).toEqual({ status: 503, code: "HOT_STORE_UNAVAILABLE" });
    expect(await d.send(key, "GET", "/api/v3/account")).toEqual({ status: 200, code: undefined });
    let notReady = await call(`${d.gateway}/portcullis/v1/readyz`);
    await until(async () => (notReady = await call(`${d.gateway}/portcullis/v1/readyz`)).status === 503, 3_000, "readyz reports the outage");
    expect((notReady.json?.checks as Record<string, { code?: string }>).hot?.code).toBe("HOT_STORE_UNAVAILABLE");
    redis = await RedisServerProcess.start(redisPort);
    await until(async () => (await d.send(key, "POST", "/api/v3/order")).status === 200, 10_000, "orders are admitted again");
    await until(async () => (await call(`${d.gateway}/portcullis/v1/readyz`)).status === 200, 5_000, "readyz is ready again");
    await d.expectAuditComplete();
  }, 120_000);

  it("both at once: everything fails closed (the degradable route's stand-in cannot read the logouts and reservations it needs); both back: everything works, spill replayed, chain verifies", async () => {
    const d = await startDrill("both");
    const key = await d.createKey(["read", "trade"]);
    expect(await d.send(key, "POST", "/api/v3/order")).toEqual({ status: 200, code: undefined });
    await Promise.all([pgServer.stop(), redis.kill()]);
    await until(() => d.running.core.availability?.outageSince !== null, 2_000, "the gateway notices the outage");
    // The key is cached and within the grace, so stage 4 passes; admission cannot decide.
    expect(await d.send(key, "GET", "/api/v3/account")).toEqual({ status: 503, code: "HOT_STORE_UNAVAILABLE" });
    expect(await d.send(key, "POST", "/api/v3/order")).toEqual({ status: 503, code: "HOT_STORE_UNAVAILABLE" });
    await d.running.core.audit.flush();
    expect(d.spillFiles().length).toBeGreaterThan(0);
    await pgServer.start();
    redis = await RedisServerProcess.start(redisPort);
    await until(() => d.running.core.availability?.outageSince === null, 10_000, "the gateway has PostgreSQL back");
    await until(async () => (await d.send(key, "POST", "/api/v3/order")).status === 200, 10_000, "orders are admitted again");
    await until(() => d.spillFiles().length === 0, 10_000, "the spill files are replayed");
    await d.expectAuditComplete();
  }, 120_000);
});

/** One running gateway under drill: its requests are counted, so the audit log can be held to them. */
class Drill {
  readonly gateway: string;
  readonly adminUrl: string;
  /** Requests made to the gateway and the admin API (every one is audited; probes are not). */
  private made = 0;

  constructor(
    readonly running: RunningPortcullis,
    readonly data: string,
    readonly schema: string,
    private readonly url: string,
    readonly lines: string[],
  ) {
    this.gateway = urlOf(running.gatewayAddress);
    this.adminUrl = running.adminAddress === null ? "" : urlOf(running.adminAddress);
  }

  async createKey(scopes: string[], operator = false): Promise<Key> {
    const created = await this.running.core.keys.create(valueOrThrow(parseCreateKeyInput({ account: operator ? "ops" : "acct-1", scopes, ...(operator ? { operator: true } : {}) }, Date.now())), "test");
    return { id: created.key.id, secret: created.secret ?? "" };
  }

  private async signed(base: string, key: Key, method: string, path: string, body?: unknown): Promise<Answer> {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const headers = {
      ...signRequest({ method, url: path, keyId: key.id, key: key.secret, created: Math.floor(Date.now() / 1000), host: new URL(base).host, ...(text === undefined ? {} : { body: text }) }),
      ...(text === undefined ? {} : { "content-type": "application/json" }),
    };
    this.made++;
    const res = await call(`${base}${path}`, { method, headers, ...(text === undefined ? {} : { body: text }) });
    const code = res.status >= 200 && res.status < 300 ? undefined : typeof res.json?.code === "string" ? res.json.code : `(no code: ${res.text.slice(0, 80)})`;
    return { status: res.status, code };
  }

  send(key: Key, method: string, path: string): Promise<Answer> {
    return this.signed(this.gateway, key, method, path, method === "POST" ? { symbol: "BTCUSDT", side: "BUY", type: "LIMIT", quantity: "1", price: "1" } : undefined);
  }

  admin(key: Key, method: string, path: string, body?: unknown): Promise<Answer> {
    return this.signed(this.adminUrl, key, method, path, body);
  }

  /** Spill files waiting in the data directory. */
  spillFiles(): string[] {
    try {
      return readdirSync(join(this.data, "audit-spill")).filter((f) => !f.startsWith("."));
    } catch {
      return [];
    }
  }

  /**
   * Every request made has exactly one request entry in the chain (none lost, none replayed twice),
   * and the whole chain verifies, read by another connection as an auditor would.
   */
  async expectAuditComplete(): Promise<void> {
    await this.running.core.audit.flush();
    // `portcullis audit verify`, in its own process, as an operator runs it on the data directory.
    const verified = await runCli(["audit", "verify", "--data", this.data, "--json"]);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    const report = JSON.parse(verified.stdout) as { ok: boolean; problem: unknown; verified: number; spill: { files: number } };
    expect(report).toMatchObject({ ok: true, problem: null, spill: { files: 0 } });
    const client = new pg.Client({ connectionString: this.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ n: string; all: string }>(`SELECT count(*) FILTER (WHERE event IN ('request.allow', 'request.deny')) AS n, count(*) AS all FROM ${this.schema}.audit_log`);
      expect(Number(rows[0]?.n)).toBe(this.made);
      expect(report.verified).toBe(Number(rows[0]?.all));
    } finally {
      await client.end();
    }
  }
}
