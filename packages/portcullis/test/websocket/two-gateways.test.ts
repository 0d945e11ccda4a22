/**
 * Two real `portcullis start` processes sharing one data directory (each with its own in-memory
 * hot state), in front of one demo exchange: a change made through one gateway's admin API, or
 * by the CLI, reaches the other process through the SQLite change feed and closes its live
 * WebSocket connections within one second. A session issued by one gateway opens a connection on
 * the other (they share the session keys), and ending the key's sessions closes it there.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEMO_EXCHANGE_ROUTES, DEMO_WEBSOCKET_ROUTES, type DemoExchange, createDemoExchange } from "@portcullis/demo-exchange";
import { readSecretFile } from "../../src/core/data-dir.js";
import { runCli, startCli } from "../support/cli.js";
import { signRequest } from "../support/harness.js";
import { type Closed, WsClient } from "../support/websocket.js";
import { Redis } from "ioredis";
import { IN_CI, SHARED_REDIS_URL, deleteKeys, loudSkip, redisReachable, uniquePrefix } from "../support/redis.js";

const PATH = "/ws-api/v3";
let dir: string;
let data: string;
let exchange: DemoExchange;
let upstream: Server;
const gateways: Awaited<ReturnType<typeof startCli>>[] = [];
const urls: { gateway: string; admin: string | null }[] = [];
const clients: WsClient[] = [];
let admin: { id: string; secret: string };

async function cli(args: string[], env: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const r = await runCli([...args, "--json"], env);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "portcullis-ws-two-"));
  data = join(dir, "data");
  await cli(["init", "--data", data, "--environment", "test"]);
  exchange = createDemoExchange({ identitySecret: readSecretFile(join(data, "identity.secret")) });
  upstream = createServer((req, res) => {
    exchange.handler(req, res);
  });
  upstream.on("upgrade", exchange.upgrade);
  await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
  const created = await cli(["keys", "create", "--data", data, "--account", "ops", "--scopes", "admin:keys", "--operator"]);
  admin = { id: String(created.id), secret: String(created.secret) };
  await startPair("gateway", {}, gateways, urls);
});

/**
 * Starts two `portcullis start` processes on the data directory, in front of the demo exchange,
 * the first with its admin API; `extra` is merged into both configs.
 */
async function startPair(name: string, extra: Record<string, unknown>, into: Awaited<ReturnType<typeof startCli>>[], addresses: { gateway: string; admin: string | null }[]): Promise<void> {
  const starter = JSON.parse(readFileSync(join(data, "portcullis.json"), "utf8")) as Record<string, unknown>;
  const upstreamUrl = `http://127.0.0.1:${String((upstream.address() as AddressInfo).port)}`;
  for (const n of [1, 2]) {
    const config = {
      ...starter,
      gateway: { ...(starter.gateway as object), host: "127.0.0.1", port: 0, upstream: upstreamUrl },
      admin: n === 1 ? { enabled: true, host: "127.0.0.1", port: 0 } : { enabled: false },
      routes: DEMO_EXCHANGE_ROUTES,
      websocket: { routes: DEMO_WEBSOCKET_ROUTES },
      log: { level: "info" },
      ...extra,
    };
    const file = join(data, `${name}-${String(n)}.json`);
    writeFileSync(file, JSON.stringify(config));
    const g = await startCli(["start", "--config", file], (line) => line.includes("portcullis started"));
    into.push(g);
    addresses.push(JSON.parse(g.line) as { gateway: string; admin: string | null });
  }
}

afterAll(async () => {
  for (const c of clients) c.ws.terminate();
  for (const g of gateways) expect(await g.stop()).toBe(0);
  exchange.closeWebSockets();
  upstream.closeAllConnections();
  await new Promise<void>((resolve) => upstream.close(() => { resolve(); }));
  rmSync(dir, { recursive: true, force: true });
});

function base(n: 0 | 1): string {
  return urls[n]?.gateway ?? "";
}

async function connect(n: 0 | 1, keyId: string, secret: string): Promise<WsClient> {
  const host = new URL(base(n)).host;
  const { host: _h, ...headers } = signRequest({ method: "GET", url: PATH, host, keyId, key: secret, created: Math.floor(Date.now() / 1000) });
  const c = await WsClient.connect(`${base(n).replace("http:", "ws:")}${PATH}`, headers);
  clients.push(c);
  expect((await c.request("account.status")).status).toBe(200);
  return c;
}

async function key(account: string): Promise<{ id: string; secret: string }> {
  const created = await cli(["keys", "create", "--data", data, "--account", account, "--scopes", "read,trade", "--dialect", "native", "--dialect", "binance"]);
  return { id: String(created.id), secret: String(created.secret) };
}

function within(c: WsClient, ms: number): Promise<Closed> {
  return Promise.race([c.closed, new Promise<never>((_, reject) => setTimeout(() => { reject(new Error(`not closed within ${String(ms)} ms`)); }, ms))]);
}

describe("two gateway processes on one data directory", () => {
  it("a revocation by the CLI closes the key's connections on both gateways within one second of the commit", async () => {
    const k = await key("two-alice");
    const [a, b] = [await connect(0, k.id, k.secret), await connect(1, k.id, k.secret)];
    const revoked = await cli(["keys", "revoke", k.id, "--data", data, "--reason", "leaked"]);
    const committed = Number(revoked.updatedAt);
    const [ca, cb] = await Promise.all([within(a, 3_000), within(b, 3_000)]);
    expect([ca.code, ca.reason, cb.code, cb.reason]).toEqual([4001, "KEY_REVOKED", 4001, "KEY_REVOKED"]);
    console.log(`two gateways, CLI revoke -> close (ms from commit): ${String(ca.at - committed)}, ${String(cb.at - committed)}`);
    expect(Math.max(ca.at, cb.at) - committed).toBeLessThan(1_000);
  });

  it("a suspension through gateway 1's admin API closes the connection held by gateway 2", async () => {
    const k = await key("two-bob");
    const c = await connect(1, k.id, k.secret);
    const suspended = await cli(["keys", "suspend", k.id, "--admin", urls[0]?.admin ?? ""], { PORTCULLIS_ADMIN_KEY_ID: admin.id, PORTCULLIS_ADMIN_SECRET: admin.secret });
    const closed = await within(c, 3_000);
    expect({ code: closed.code, reason: closed.reason }).toEqual({ code: 4003, reason: "KEY_SUSPENDED" });
    // Committed by gateway 1's process (its clock stamped it), seen by gateway 2 through the change feed.
    const committed = Number(suspended.updatedAt);
    console.log(`two gateways, admin API suspend on gateway 1 -> close on gateway 2 (ms from commit): ${String(closed.at - committed)}`);
    expect(closed.at - committed).toBeLessThan(1_000);
  });

  it("a session from gateway 1 connects on gateway 2; ending the key's sessions closes it there", async () => {
    const k = await key("two-carol");
    const host = new URL(base(0)).host;
    const headers = signRequest({ method: "POST", url: "/portcullis/v1/session", host, keyId: k.id, key: k.secret, created: Math.floor(Date.now() / 1000) });
    const res = await fetch(`${base(0)}/portcullis/v1/session`, { method: "POST", headers });
    expect(res.status).toBe(201);
    const session = (await res.json()) as { keyid: string; secret: string };
    const c = await connect(1, session.keyid, session.secret);
    const ended = await cli(["keys", "end-sessions", k.id, "--data", data]);
    const closed = await within(c, 3_000);
    expect({ code: closed.code, reason: closed.reason }).toEqual({ code: 4005, reason: "SESSION_REVOKED" });
    expect(closed.at - Number(ended.updatedAt)).toBeLessThan(1_000);
  });
});

const redisUp = await redisReachable(SHARED_REDIS_URL);
if (!redisUp && !IN_CI) loudSkip("WebSocket revocation across gateways over the Redis bus", `no Redis answers at ${SHARED_REDIS_URL}`);

describe.runIf(redisUp || IN_CI)("two gateway processes sharing one Redis (the change bus), the data directory polled hourly", () => {
  const prefix = uniquePrefix("ws-bus");
  const pair: Awaited<ReturnType<typeof startCli>>[] = [];
  const pairUrls: { gateway: string; admin: string | null }[] = [];

  beforeAll(async () => {
    await startPair("bus-gateway", { store: { pollInterval: "1h" }, hot: { backend: "redis", url: SHARED_REDIS_URL, prefix } }, pair, pairUrls);
  });
  afterAll(async () => {
    for (const g of pair) expect(await g.stop()).toBe(0);
    const redis = new Redis(SHARED_REDIS_URL);
    await deleteKeys(redis, prefix);
    await redis.quit();
  });

  async function open(n: 0 | 1, keyId: string, secret: string): Promise<WsClient> {
    const gateway = pairUrls[n]?.gateway ?? "";
    const host = new URL(gateway).host;
    const { host: _h, ...headers } = signRequest({ method: "GET", url: PATH, host, keyId, key: secret, created: Math.floor(Date.now() / 1000) });
    const c = await WsClient.connect(`${gateway.replace("http:", "ws:")}${PATH}`, headers);
    clients.push(c);
    expect((await c.request("account.status")).status).toBe(200);
    return c;
  }

  it("a logout at gateway 1 closes the session's connection at gateway 2; a revocation through gateway 1 closes the key's there", async () => {
    const k = await key("bus-dave");
    const gateway = pairUrls[0]?.gateway ?? "";
    const host = new URL(gateway).host;
    const logon = await fetch(`${gateway}/portcullis/v1/session`, {
      method: "POST",
      headers: signRequest({ method: "POST", url: "/portcullis/v1/session", host, keyId: k.id, key: k.secret, created: Math.floor(Date.now() / 1000) }),
    });
    const session = (await logon.json()) as { keyid: string; secret: string };
    const viaSession = await open(1, session.keyid, session.secret);
    const t0 = Date.now();
    const out = await fetch(`${gateway}/portcullis/v1/session`, {
      method: "DELETE",
      headers: signRequest({ method: "DELETE", url: "/portcullis/v1/session", host, keyId: session.keyid, key: session.secret, created: Math.floor(Date.now() / 1000) }),
    });
    expect(out.status).toBe(204);
    const closed = await within(viaSession, 1_000);
    expect({ code: closed.code, reason: closed.reason }).toEqual({ code: 4005, reason: "SESSION_REVOKED" });
    console.log(`logout at gateway 1 -> close at gateway 2 over the bus: ${String(closed.at - t0)} ms`);

    const viaKey = await open(1, k.id, k.secret);
    const t1 = Date.now();
    await cli(["keys", "revoke", k.id, "--admin", pairUrls[0]?.admin ?? ""], { PORTCULLIS_ADMIN_KEY_ID: admin.id, PORTCULLIS_ADMIN_SECRET: admin.secret });
    const revoked = await within(viaKey, 1_000);
    expect({ code: revoked.code, reason: revoked.reason }).toEqual({ code: 4001, reason: "KEY_REVOKED" });
    console.log(`revoke through gateway 1 -> close at gateway 2 over the bus: ${String(revoked.at - t1)} ms (the CLI's own start included)`);
  });
});
