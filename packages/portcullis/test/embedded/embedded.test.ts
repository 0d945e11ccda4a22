/**
 * Embedded mode: the same pipeline inside the venue's own service, with real node:http, Express
 * and Fastify servers on loopback sockets.
 */
import { createClient } from "@portcullis/client";
import express from "express";
import Fastify from "fastify";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { portcullisPreParsing } from "../../src/embedded/fastify.js";
import { type PortcullisRequest, createMiddleware } from "../../src/embedded/middleware.js";
import { type TestCore, makeCore, signRequest } from "../support/harness.js";

let t: TestCore;
let keyId: string;
let secret: string;
beforeAll(async () => {
  // Limits on, with a concurrency cap of one: a slot the middleware failed to release would
  // refuse the next request of the same key (CONCURRENCY_LIMITED).
  t = await makeCore({
    now: Date.now,
    limits: { specs: [{ name: "key-weight-1d", scope: "key", kind: "weight", limit: 1000, windowMs: 86_400_000 }], maxConcurrentPerKey: 1 },
  });
  const created = await t.createKey({ account: "embedded-acct", scopes: ["read", "trade"] });
  keyId = created.key.id;
  secret = created.secret ?? "";
});
afterAll(async () => {
  await t.cleanup();
});

function sign(host: string, method: string, url: string, body?: string, key = { id: keyId, secret }): Record<string, string> {
  return signRequest({ method, url, host, keyId: key.id, key: key.secret, created: Math.floor(Date.now() / 1000), ...(body === undefined ? {} : { body }) });
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function exercise(host: string): Promise<void> {
  const account = await request(`http://${host}/api/v3/account`, { headers: sign(host, "GET", "/api/v3/account") });
  expect(account.statusCode).toBe(200);
  expect(account.headers["ratelimit-policy"]).toBe('"key-weight-1d";q=1000;w=86400');
  expect(await account.body.json()).toMatchObject({ account: "embedded-acct", keyId });

  const body = JSON.stringify({ symbol: "BTCUSDT", quantity: "1" });
  const order = await request(`http://${host}/api/v3/order`, {
    method: "POST",
    body,
    headers: { ...sign(host, "POST", "/api/v3/order", body), "content-type": "application/json" },
  });
  expect(order.statusCode).toBe(200);
  expect(await order.body.json()).toEqual({ received: { symbol: "BTCUSDT", quantity: "1" } });

  const refused = await request(`http://${host}/api/v3/account`);
  expect(refused.statusCode).toBe(401);
  expect(((await refused.body.json()) as { code: string }).code).toBe("CREDENTIALS_MISSING");

  const tampered = await request(`http://${host}/api/v3/order`, {
    method: "POST",
    body: body.replace("1", "9"),
    headers: { ...sign(host, "POST", "/api/v3/order", body), "content-type": "application/json" },
  });
  expect(((await tampered.body.json()) as { code: string }).code).toBe("CONTENT_DIGEST_MISMATCH");

  // A key whose override allows one account read (weight 20) a day: the second is 429 with Retry-After.
  const created = await t.createKey({ account: "embedded-tight", scopes: ["read"], limits: { "key-weight-1d": 20 } });
  const tight = { id: created.key.id, secret: created.secret ?? "" };
  expect((await request(`http://${host}/api/v3/account`, { headers: sign(host, "GET", "/api/v3/account", undefined, tight) })).statusCode).toBe(200);
  const limited = await request(`http://${host}/api/v3/account`, { headers: sign(host, "GET", "/api/v3/account", undefined, tight) });
  expect(limited.statusCode).toBe(429);
  expect(limited.headers["retry-after"]).toBe("86400");
  expect(((await limited.body.json()) as { code: string }).code).toBe("RATE_LIMITED");
  expect(t.core.shield.inFlightFor(keyId)).toBe(0);
}

describe("embedded mode", () => {
  it("node:http", async () => {
    const mw = createMiddleware(t.core);
    const server = createServer((req, res) => {
      mw(req, res, () => {
        const r = req as PortcullisRequest;
        res.setHeader("content-type", "application/json");
        if (req.url === "/api/v3/order") res.end(JSON.stringify({ received: JSON.parse(r.rawBody?.toString() ?? "null") as unknown }));
        else res.end(JSON.stringify(r.portcullis));
      });
    });
    const host = await listen(server);
    try {
      await exercise(host);
    } finally {
      server.close();
    }
  });

  it("Express", async () => {
    const app = express();
    app.use(createMiddleware(t.core));
    app.get("/api/v3/account", (req, res) => {
      res.json((req as PortcullisRequest).portcullis);
    });
    app.post("/api/v3/order", (req, res) => {
      res.json({ received: JSON.parse((req as PortcullisRequest).rawBody?.toString() ?? "null") as unknown });
    });
    const server = createServer(app);
    const host = await listen(server);
    try {
      await exercise(host);
    } finally {
      server.close();
    }
  });

  it("Fastify (its own JSON parser still parses the verified bytes)", async () => {
    const app = Fastify();
    app.addHook("preParsing", portcullisPreParsing(t.core));
    app.get("/api/v3/account", (req) => (req as unknown as PortcullisRequest).portcullis);
    app.post("/api/v3/order", (req) => ({ received: req.body }));
    await app.listen({ port: 0, host: "127.0.0.1" });
    const host = `127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    try {
      await exercise(host);
    } finally {
      await app.close();
    }
  });
});

describe("embedded mode with sessions", () => {
  it("the middleware answers logon and logout itself; the handler sees the session's narrower scopes", async () => {
    const s = await makeCore({ now: Date.now, sessions: true });
    const mw = createMiddleware(s.core);
    const server = createServer((req, res) => {
      mw(req, res, () => {
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify((req as PortcullisRequest).portcullis));
      });
    });
    const host = await listen(server);
    try {
      const created = await s.createKey({ account: "embedded-sessions", scopes: ["read", "trade"] });
      const client = createClient({ baseUrl: `http://${host}`, keyId: created.key.id, secret: created.secret ?? "", syncTime: false });
      const session = await client.logon({ scopes: ["read"] });
      expect(session.keyId).toMatch(/^pcs_test_v1_/);
      expect(await session.json("GET", "/api/v3/account")).toMatchObject({ keyId: created.key.id, account: "embedded-sessions", scopes: ["read"] });
      await expect(session.json("POST", "/api/v3/order", { json: {} })).rejects.toMatchObject({ status: 403, code: "SCOPE_MISSING" });
      await session.logout();
      await expect(session.json("GET", "/api/v3/account")).rejects.toMatchObject({ status: 401, code: "SESSION_REVOKED" });
    } finally {
      server.close();
      await s.cleanup();
    }
  });
});
