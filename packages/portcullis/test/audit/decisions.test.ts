/**
 * Request decisions in the audit log, as the gateway, the admin API and the embedded middleware
 * record them: who, from where, which route, which decision and code, stage timings — and never a
 * credential: no secret, no signature, no query string, no header.
 */
import { createHmac } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditEntry } from "../../src/audit/events.js";
import { AdminApi } from "../../src/admin/server.js";
import { createMiddleware } from "../../src/embedded/middleware.js";
import { generateKeyId } from "../../src/contract/ids.js";
import { silentLogger } from "../../src/log/logger.js";
import { TEST_ROUTES, makeCore, signRequest } from "../support/harness.js";
import { type TestGateway, makeGateway } from "../support/gateway.js";
import { readEntries } from "./support.js";

const ROUTES = [...TEST_ROUTES, { method: "GET", path: "/api/v3/myTrades", permission: "read", dialect: "binance" } as const];

let g: TestGateway;
let keyId: string;
let secret: string;
/** Every credential a request of this file carried, to scan the log for. */
const credentials: string[] = [];

beforeAll(async () => {
  g = await makeGateway({ routes: ROUTES, timing: true }, { bodyLimit: 64 });
  const created = await g.createKey({ account: "acct-9", subAccount: "desk-1", dialects: ["native", "binance"] });
  keyId = created.key.id;
  secret = created.secret ?? "";
  credentials.push(secret);
});
afterAll(async () => {
  await g.close();
});

async function entries(): Promise<AuditEntry[]> {
  await g.core.audit.flush();
  return readEntries(g.dataDir);
}

async function last(): Promise<AuditEntry> {
  const all = await entries();
  const entry = all.at(-1);
  if (entry === undefined) throw new Error("no entries");
  return entry;
}

function signed(url: string, key = secret, id = keyId): Record<string, string> {
  const headers = signRequest({ method: "GET", url, keyId: id, key, created: g.clock.seconds });
  credentials.push(headers.signature, headers["signature-input"]);
  return headers;
}

describe("the gateway records every decision", () => {
  it("an allowed request: request.allow with key, account, client, route, path (no query), scheme, timings", async () => {
    const res = await g.inject({ method: "GET", url: "/api/v3/order?symbol=BTCUSDT&orderId=7", headers: signed("/api/v3/order?symbol=BTCUSDT&orderId=7") });
    expect(res.statusCode).toBe(200);
    const e = await last();
    expect(e).toMatchObject({
      event: "request.allow",
      actor: `key:${keyId}`,
      key: keyId,
      account: "acct-9",
      subAccount: "desk-1",
      client: "127.0.0.1",
      surface: "gateway",
      requestId: res.headers["portcullis-request-id"],
      method: "GET",
      path: "/api/v3/order",
      route: "GET /api/v3/order",
      scheme: "native",
      at: g.clock.ms,
    });
    expect(e.code).toBeUndefined();
    expect(Object.keys(e.timings ?? {})).toEqual(expect.arrayContaining(["addr", "route", "sig", "admit"]));
    expect(JSON.stringify(e)).not.toContain("orderId");
  });

  it("a refusal: request.deny with its code and status", async () => {
    const headers = signed("/api/v3/account", "not-the-secret-at-all-0000000000000000000000");
    const res = await g.inject({ method: "GET", url: "/api/v3/account", headers });
    expect(res.statusCode).toBe(401);
    expect(await last()).toMatchObject({ event: "request.deny", code: "SIGNATURE_INVALID", status: 401, key: keyId, actor: "anonymous", account: "acct-9", route: "GET /api/v3/account" });
  });

  it("an unknown but well-formed key id is recorded; a malformed one is not (it is whatever the caller typed)", async () => {
    const unknown = generateKeyId("test");
    await g.inject({ method: "GET", url: "/api/v3/account", headers: signed("/api/v3/account", secret, unknown) });
    expect(await last()).toMatchObject({ event: "request.deny", code: "KEY_UNKNOWN", key: unknown, actor: "anonymous" });
    await g.inject({ method: "GET", url: "/api/v3/account", headers: signed("/api/v3/account", secret, "my-secret-password") });
    const m = await last();
    expect(m).toMatchObject({ event: "request.deny", code: "KEY_ID_MALFORMED", actor: "anonymous" });
    expect(m.key).toBeUndefined();
    expect(JSON.stringify(m)).not.toContain("my-secret-password");
  });

  it("an unsigned request and an unmapped route are refusals too", async () => {
    await g.inject({ method: "GET", url: "/api/v3/account" });
    expect(await last()).toMatchObject({ event: "request.deny", code: "CREDENTIALS_MISSING", actor: "anonymous" });
    await g.inject({ method: "GET", url: "/nowhere?token=abc" });
    const e = await last();
    expect(e).toMatchObject({ event: "request.deny", code: "ROUTE_NOT_FOUND", path: "/nowhere" });
    expect(e.route).toBeUndefined();
  });

  it("a body over the limit is refused before the pipeline, and recorded", async () => {
    const res = await g.inject({ method: "POST", url: "/api/v3/order?x=1", payload: "x".repeat(100), headers: { "content-type": "application/json" } });
    expect(res.statusCode).toBe(413);
    expect(await last()).toMatchObject({ event: "request.deny", code: "BODY_TOO_LARGE", status: 413, path: "/api/v3/order", surface: "gateway" });
  });

  it("a Binance request keeps its signature in the query: the query never reaches the log", async () => {
    const payload = `symbol=BTCUSDT&timestamp=${g.clock.ms}`;
    const signature = createHmac("sha256", Buffer.from(secret, "utf8")).update(payload).digest("hex");
    credentials.push(signature);
    const res = await g.inject({ method: "GET", url: `/api/v3/myTrades?${payload}&signature=${signature}`, headers: { "x-mbx-apikey": keyId, host: "gateway.test" } });
    expect(res.statusCode).toBe(200);
    expect(await last()).toMatchObject({ event: "request.allow", scheme: "binance", path: "/api/v3/myTrades", key: keyId });
  });

  it("no credential any request carried is anywhere in the log or in the gateway's log lines", async () => {
    const log = JSON.stringify(readEntries(g.dataDir));
    expect(credentials.length).toBeGreaterThan(5);
    for (const c of credentials) {
      expect(log).not.toContain(c);
      for (const line of g.logLines) expect(line).not.toContain(c);
    }
    expect((await g.core.audit.flush(), g.core.audit.stats.dropped)).toBe(0);
  });
});

describe("the admin API and the embedded middleware", () => {
  it("the admin API records its own decisions, and the key change with the admin key as actor", async () => {
    const t = await makeCore({ now: Date.now });
    const api = new AdminApi({ core: t.core, logger: silentLogger() });
    try {
      const { port } = await api.listen(0, "127.0.0.1");
      const admin = await t.createKey({ account: "ops", scopes: ["admin:keys"], operator: true });
      const host = `127.0.0.1:${port}`;
      const body = JSON.stringify({ account: "acct-new", scopes: ["read"] });
      const headers = signRequest({ method: "POST", url: "/portcullis/v1/keys", host, keyId: admin.key.id, key: admin.secret ?? "", created: Math.floor(Date.now() / 1000), body });
      const res = await request(`http://${host}/portcullis/v1/keys`, { method: "POST", headers: { ...headers, "content-type": "application/json" }, body });
      expect(res.statusCode).toBe(201);
      const created = (await res.body.json()) as { id: string; secret: string };
      await t.core.audit.flush();
      const log = readEntries(t.dataDir);
      // Chain order is commit order: the change is written in its own transaction at once, the
      // decision that allowed it with the next group commit (its `at` is the earlier one).
      expect(log.map((e) => e.event)).toEqual(["key.create", "key.create", "request.allow"]);
      expect(log[1]).toMatchObject({ actor: `key:${admin.key.id}`, key: created.id, account: "acct-new" });
      expect(log[2]).toMatchObject({ surface: "admin", route: "POST /portcullis/v1/keys", key: admin.key.id, account: "ops" });
      expect(log[2]?.at).toBeLessThanOrEqual(log[1]?.at ?? 0);
      const text = JSON.stringify(log);
      for (const s of [created.secret, admin.secret ?? "?", headers.signature]) expect(text).not.toContain(s);
    } finally {
      await api.close(500);
      await t.cleanup();
    }
  });

  it("the middleware records with surface embedded", async () => {
    const t = await makeCore({ now: Date.now });
    const mw = createMiddleware(t.core);
    const server = createServer((req, res) => {
      mw(req, res, () => res.end("ok"));
    });
    try {
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
      const k = await t.createKey({ account: "acct-e" });
      const ok = await request(`http://${host}/api/v3/account`, { headers: signRequest({ method: "GET", url: "/api/v3/account", host, keyId: k.key.id, key: k.secret ?? "", created: Math.floor(Date.now() / 1000) }) });
      await ok.body.text();
      const no = await request(`http://${host}/api/v3/account`);
      await no.body.text();
      await t.core.audit.flush();
      const log = readEntries(t.dataDir, { events: ["request.*"] });
      expect(log.map((e) => [e.event, e.surface, e.code])).toEqual([
        ["request.allow", "embedded", undefined],
        ["request.deny", "embedded", "CREDENTIALS_MISSING"],
      ]);
    } finally {
      await new Promise((r) => server.close(r));
      await t.cleanup();
    }
  });
});
