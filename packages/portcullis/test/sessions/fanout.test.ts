/**
 * Revocation across gateway processes: two `portcullis start` processes sharing one data
 * directory and one Redis (hot state and the change bus), the data directory's change feed polled
 * only once a minute — so what reaches the second gateway within the second does so over Redis:
 * a key revoked or its sessions ended through the first gateway's admin API (pub/sub), a session
 * logged out at one gateway (the shared hot store). Skipped loudly without a Redis; never in CI.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, startCli } from "../support/cli.js";
import { startEchoUpstream } from "../support/gateway.js";
import { signRequest } from "../support/harness.js";
import { IN_CI, SHARED_REDIS_URL, deleteKeys, loudSkip, redisReachable, uniquePrefix } from "../support/redis.js";

const up = await redisReachable(SHARED_REDIS_URL);
if (!up && !IN_CI) loudSkip("revocation across gateway processes", `no Redis answers at ${SHARED_REDIS_URL}`);

interface Started {
  gateway: string;
  admin: string | null;
}

const ROUTES = [{ method: "GET", path: "/api/v3/account", permission: "read", weight: 1 }];

describe.runIf(up || IN_CI)("two gateway processes sharing one Redis", () => {
  let dir: string;
  let data: string;
  let upstream: Awaited<ReturnType<typeof startEchoUpstream>>;
  const gateways: Awaited<ReturnType<typeof startCli>>[] = [];
  const started: Started[] = [];
  const prefix = uniquePrefix("fanout");
  let admin: { id: string; secret: string };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "portcullis-fanout-"));
    data = join(dir, "data");
    upstream = await startEchoUpstream();
    expect((await runCli(["init", "--data", data, "--environment", "test", "--json"])).code).toBe(0);
    admin = JSON.parse((await runCli(["keys", "create", "--data", data, "--account", "ops", "--scopes", "admin:keys", "--operator", "--json"])).stdout) as { id: string; secret: string };
    const starter = JSON.parse(readFileSync(join(data, "portcullis.json"), "utf8")) as Record<string, unknown>;
    for (const n of [1, 2]) {
      const config = {
        ...starter,
        gateway: { ...(starter.gateway as object), host: "127.0.0.1", port: 0, upstream: upstream.url },
        admin: n === 1 ? { enabled: true, host: "127.0.0.1", port: 0 } : { enabled: false },
        routes: ROUTES,
        store: { pollInterval: "1h" },
        hot: { backend: "redis", url: SHARED_REDIS_URL, prefix },
        log: { level: "info" },
      };
      const file = join(data, `gateway-${String(n)}.json`);
      writeFileSync(file, JSON.stringify(config));
      const g = await startCli(["start", "--config", file], (line) => line.includes("portcullis started"));
      gateways.push(g);
      started.push(JSON.parse(g.line) as Started);
    }
  });
  afterAll(async () => {
    for (const g of gateways) expect(await g.stop()).toBe(0);
    await upstream.close();
    const redis = new Redis(SHARED_REDIS_URL);
    await deleteKeys(redis, prefix);
    await redis.quit();
    rmSync(dir, { recursive: true, force: true });
  });

  async function call(base: string, method: string, path: string, keyId: string, key: string, body?: string): Promise<{ status: number; json: Record<string, unknown> }> {
    const host = new URL(base).host;
    const headers = signRequest({ method, url: path, keyId, key, created: Math.floor(Date.now() / 1000), host, ...(body === undefined ? {} : { body }) });
    const res = await request(`${base}${path}`, { method, headers: body === undefined ? headers : { ...headers, "content-type": "application/json" }, ...(body === undefined ? {} : { body }) });
    const text = await res.body.text();
    return { status: res.statusCode, json: text === "" ? {} : (JSON.parse(text) as Record<string, unknown>) };
  }

  const gw = (i: number): string => started[i]?.gateway ?? "";
  const adminUrl = (): string => started[0]?.admin ?? "";

  async function createKey(): Promise<{ id: string; secret: string }> {
    const res = await call(adminUrl(), "POST", "/portcullis/v1/keys", admin.id, admin.secret, JSON.stringify({ account: "acct-1", scopes: ["read"] }));
    expect(res.status).toBe(201);
    return { id: res.json.id as string, secret: res.json.secret as string };
  }

  /** Polls `base` with fresh requests until one is refused with `code`; resolves to the time taken. */
  async function refusedWithin(base: string, keyId: string, key: string, code: string, ms: number): Promise<number> {
    const t0 = performance.now();
    for (;;) {
      const res = await call(base, "GET", "/api/v3/account", keyId, key);
      if (res.status !== 200) {
        expect(res.json.code).toBe(code);
        return performance.now() - t0;
      }
      if (performance.now() - t0 > ms) throw new Error(`still allowed after ${ms} ms`);
    }
  }

  it("a key revoked through the first gateway is refused by the second at once (the bus, not the poll)", async () => {
    const key = await createKey();
    // The second gateway loads and caches the key (it will not poll the data directory for an hour).
    expect((await call(gw(1), "GET", "/api/v3/account", key.id, key.secret)).status).toBe(200);
    const t0 = performance.now();
    expect((await call(adminUrl(), "POST", `/portcullis/v1/keys/${key.id}/revoke`, admin.id, admin.secret, "{}")).status).toBe(200);
    const took = await refusedWithin(gw(1), key.id, key.secret, "KEY_REVOKED", 1_000);
    console.info(`revocation reached the second gateway ${(performance.now() - t0).toFixed(1)} ms after the revoke was sent (${took.toFixed(1)} ms after its answer)`);
  });

  it("a session logged on at one gateway works at the other; ending its key's sessions or logging it out ends it everywhere", async () => {
    const key = await createKey();
    const logon = await call(gw(0), "POST", "/portcullis/v1/session", key.id, key.secret);
    expect(logon.status).toBe(201);
    const session = { id: logon.json.keyid as string, secret: logon.json.secret as string };
    expect((await call(gw(1), "GET", "/api/v3/account", session.id, session.secret)).status).toBe(200);
    // Logout at the second gateway: the first refuses the session on its very next request.
    expect((await call(gw(1), "DELETE", "/portcullis/v1/session", session.id, session.secret)).status).toBe(204);
    expect((await call(gw(0), "GET", "/api/v3/account", session.id, session.secret)).json.code).toBe("SESSION_REVOKED");

    const again = await call(gw(1), "POST", "/portcullis/v1/session", key.id, key.secret);
    const second = { id: again.json.keyid as string, secret: again.json.secret as string };
    expect((await call(gw(1), "GET", "/api/v3/account", second.id, second.secret)).status).toBe(200);
    expect((await call(adminUrl(), "POST", `/portcullis/v1/keys/${key.id}/end-sessions`, admin.id, admin.secret, "{}")).status).toBe(200);
    await refusedWithin(gw(1), second.id, second.secret, "SESSION_REVOKED", 1_000);
  });
});
