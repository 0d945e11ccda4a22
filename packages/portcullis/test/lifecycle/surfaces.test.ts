/**
 * One request lifecycle for every surface (pipeline/lifecycle.ts): the same matrix of requests —
 * allowed, and one of each refusal class — sent through every way a request enters Portcullis,
 * over real sockets: the gateway, the admin API, the session endpoints, the embedded
 * middleware for node:http, Express and Fastify, the gateway's WebSocket upgrades, and the
 * authorizer, through its forward-auth protocol and behind Debian's nginx running
 * docs/deploy/nginx.conf and behind nginx's auth_request running docs/deploy/nginx-auth-request.conf
 * (when nginx is installed; under CI it must be). Every surface must give the same decision (the
 * same code), write the same audit entry (its event, code, key and surface), and leave no
 * concurrency slot held, with and without a per-key cap.
 */
import express from "express";
import Fastify, { type FastifyInstance } from "fastify";
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { request } from "undici";
import WebSocket, { WebSocketServer } from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminApi } from "../../src/admin/server.js";
import type { AuditEntry } from "../../src/audit/events.js";
import { portcullisPreParsing } from "../../src/embedded/fastify.js";
import { createMiddleware } from "../../src/embedded/middleware.js";
import { generateKeyId } from "../../src/contract/ids.js";
import { IdentitySigner } from "../../src/gateway/identity.js";
import { Forwarder } from "../../src/gateway/proxy.js";
import { Gateway } from "../../src/gateway/server.js";
import { Authorizer } from "../../src/gateway/authorizer.js";
import { silentLogger } from "../../src/log/logger.js";
import { DEFAULT_SHIELD_POLICY } from "../../src/limits/types.js";
import { WebSocketProxy, compileWebSocketSettings } from "../../src/gateway/websocket/index.js";
import { SessionEndpoints } from "../../src/gateway/session-endpoints.js";
import { readEntries } from "../audit/support.js";
import { NGINX_AUTH_REQUEST_CONF, type RunningNginx, nginxAvailable, startNginx } from "../authorizer/support.js";
import { IDENTITY_SECRET, startEchoUpstream } from "../support/gateway.js";
import { TEST_ROUTES, type TestCore, makeCore, signRequest } from "../support/harness.js";

interface Key {
  readonly id: string;
  readonly secret: string;
}

/** One way in: where it listens, what an allowed request to it is, how its audit entries are labelled. */
interface Surface {
  readonly name: string;
  readonly audit: "gateway" | "admin" | "embedded" | "websocket" | "authorizer";
  /** host:port */
  host: string;
  /** An allowed request's method and path (with any query). */
  readonly method: string;
  readonly path: (key: Key) => string;
  readonly allowedStatus: number;
  /** Sent as a WebSocket upgrade (allowed: 101, then closed by the client). */
  readonly upgrade?: boolean;
  /** Refusal classes this surface cannot see (its route table has no such case). */
  readonly skips: readonly string[];
}

interface Case {
  readonly name: string;
  readonly code: string | null;
  readonly status: number;
  /** The fewest surfaces that must see it (default 5: a case only some route tables can hold says so). */
  readonly surfaces?: number;
  /** Sends the request; answers the response's status, code and request id. */
  send(surface: Surface): Promise<{ status: number; code: string | null; requestId: string }>;
}

const unknownKeyId = generateKeyId("test");
/** A route that declares an operation (docs/operations.md), in the native shape: a cancel read from the query. */
const OPERATION_ROUTE = { method: "GET", path: "/api/v3/cancel-check", permission: "read", operation: "order.cancel" } as const;
/** Surfaces whose route table is not the core's, so cannot hold the operation route. */
const OWN_TABLES = ["admin API", "session endpoints", "WebSocket upgrade"];
const LIMITS = [{ name: "key-weight-1d", scope: "key" as const, kind: "weight" as const, limit: 1_000_000, windowMs: 86_400_000 }];

/** The throttle case's refusals are strikes toward an address ban, as every 429 is: more strikes than the matrix sends. */
const SHIELD = { ...DEFAULT_SHIELD_POLICY, strikes: 1_000 };

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function matrix(cap: number): void {
  describe(cap === 0 ? "without a concurrency cap" : `with a concurrency cap of ${cap}`, () => {
    let t: TestCore;
    let good: Key;
    let noScope: Key;
    let throttled: Key;
    let bound: Key;
    const closers: (() => Promise<unknown>)[] = [];
    const surfaces: Surface[] = [];

    beforeAll(async () => {
      t = await makeCore({ now: Date.now, sessions: true, limits: { specs: LIMITS, maxConcurrentPerKey: cap, shield: SHIELD }, routes: [...TEST_ROUTES, OPERATION_ROUTE], throttlePerMinute: 1 });
      const created = await t.createKey({ account: "acct-matrix", scopes: ["read", "trade", "admin:keys"] });
      good = { id: created.key.id, secret: created.secret ?? "" };
      const narrow = await t.createKey({ account: "acct-matrix", scopes: ["trade"] });
      noScope = { id: narrow.key.id, secret: narrow.secret ?? "" };
      // Throttled by the behaviour stage (docs/behaviour.md): one request a minute.
      const risky = await t.createKey({ account: "acct-matrix", scopes: ["read", "trade", "admin:keys"] });
      throttled = { id: risky.key.id, secret: risky.secret ?? "" };
      // Bound to a client certificate (docs/tls.md): every surface here is plain HTTP, so none has it.
      const certBound = await t.createKey({ account: "acct-matrix", scopes: ["read", "trade", "admin:keys"], certThumbprint: "A".repeat(43) });
      bound = { id: certBound.key.id, secret: certBound.secret ?? "" };
      await t.core.keys.setRisk(throttled.id, { state: "throttle", actionId: `an_${"0".repeat(32)}`, reason: "test", since: 0, until: null }, "test");
      const logger = silentLogger();

      const upstream = await startEchoUpstream();
      closers.push(() => upstream.close());
      // A WebSocket upstream that accepts every upgrade (the gateway opens its leg first).
      const wsUpstream = new WebSocketServer({ host: "127.0.0.1", port: 0 });
      await new Promise((resolve) => wsUpstream.once("listening", resolve));
      closers.push(() => new Promise((r) => { wsUpstream.close(r); }));
      const identity = new IdentitySigner(IDENTITY_SECRET);
      const websocket = new WebSocketProxy({
        core: t.core,
        settings: compileWebSocketSettings({ routes: [{ path: "/ws", permission: "read", methods: { ping: { permission: "public" } } }] }, LIMITS),
        environment: "test",
        identity,
        upstream: `http://127.0.0.1:${(wsUpstream.address() as AddressInfo).port}`,
        logger,
      });
      const gateway = new Gateway({
        pipeline: t.core.pipeline,
        forwarder: new Forwarder({ upstream: upstream.url }),
        identity,
        logger,
        audit: t.core.audit,
        sessions: new SessionEndpoints(t.core),
        websocket,
      });
      const gatewayAddress = await gateway.listen(0);
      closers.push(() => gateway.close(500));
      const gatewayHost = `127.0.0.1:${gatewayAddress.port}`;

      // The authorizer's forward-auth protocol (Envoy ext_authz, HAProxy, Traefik): the original request, answered 200 or the refusal.
      const authorizer = new Authorizer({ pipeline: t.core.pipeline, identity, logger, audit: t.core.audit, trustedProxies: ["127.0.0.1/32"] });
      const authorizerAddress = await authorizer.listen(0);
      closers.push(() => authorizer.close(500));
      let nginx: RunningNginx | null = null;
      if (nginxAvailable()) {
        const started = await startNginx(`127.0.0.1:${authorizerAddress.port}`, upstream.url.replace("http://", ""));
        closers.push(() => started.stop());
        nginx = started;
      }
      // The same authorizer behind nginx's auth_request (docs/deploy/nginx-auth-request.conf): body-less requests only.
      let authRequest: RunningNginx | null = null;
      if (nginxAvailable()) {
        const started = await startNginx(`127.0.0.1:${authorizerAddress.port}`, upstream.url.replace("http://", ""), NGINX_AUTH_REQUEST_CONF);
        closers.push(() => started.stop());
        authRequest = started;
      }

      const admin = new AdminApi({ core: t.core, logger });
      const adminAddress = await admin.listen(0);
      closers.push(() => admin.close(500));

      const handler = (res: ServerResponse): void => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end("{}");
      };
      const mw = createMiddleware(t.core);
      const plain = createServer((req, res) => {
        mw(req, res, () => {
          handler(res);
        });
      });
      const plainHost = await listen(plain);
      closers.push(() => new Promise((r) => plain.close(r)));

      const app = express();
      app.use(createMiddleware(t.core));
      app.get("/api/v3/account", (_req, res) => {
        res.json({});
      });
      const expressServer = createServer(app);
      const expressHost = await listen(expressServer);
      closers.push(() => new Promise((r) => expressServer.close(r)));

      const fastify: FastifyInstance = Fastify();
      fastify.addHook("preParsing", portcullisPreParsing(t.core));
      fastify.get("/api/v3/account", () => ({}));
      await fastify.listen({ port: 0, host: "127.0.0.1" });
      closers.push(() => fastify.close());
      const fastifyHost = `127.0.0.1:${(fastify.server.address() as AddressInfo).port}`;

      const account = (): string => "/api/v3/account";
      surfaces.push(
        { name: "gateway", audit: "gateway", host: gatewayHost, method: "GET", path: account, allowedStatus: 200, skips: [] },
        { name: "admin API", audit: "admin", host: `127.0.0.1:${adminAddress.port}`, method: "GET", path: (k) => `/portcullis/v1/keys/${k.id}`, allowedStatus: 200, skips: [] },
        // Logon needs only an authenticated key, and the endpoints are only its paths.
        { name: "session endpoints", audit: "gateway", host: gatewayHost, method: "POST", path: () => "/portcullis/v1/session", allowedStatus: 201, skips: ["a key without the route's scope", "an unmapped route"] },
        { name: "node:http middleware", audit: "embedded", host: plainHost, method: "GET", path: account, allowedStatus: 200, skips: [] },
        { name: "Express middleware", audit: "embedded", host: expressHost, method: "GET", path: account, allowedStatus: 200, skips: [] },
        { name: "Fastify hook", audit: "embedded", host: fastifyHost, method: "GET", path: account, allowedStatus: 200, skips: [] },
        { name: "authorizer (forward-auth)", audit: "authorizer", host: `127.0.0.1:${authorizerAddress.port}`, method: "GET", path: account, allowedStatus: 200, skips: [] },
        // nginx refuses a body over its client_max_body_size itself (its own 413 page), before asking.
        ...(nginx === null ? [] : [{ name: "authorizer (behind nginx)", audit: "authorizer" as const, host: nginx.host, method: "GET", path: account, allowedStatus: 200, skips: ["a body over every surface's limit"] }]),
        // nginx refuses that body itself too (client_max_body_size, before the subrequest); any other body is AUTHORIZER_BODY_UNSEEN (test/authorizer/auth-request.test.ts).
        ...(authRequest === null ? [] : [{ name: "authorizer (nginx auth_request)", audit: "authorizer" as const, host: authRequest.host, method: "GET", path: account, allowedStatus: 200, skips: ["a body over every surface's limit"] }]),
        // A request body has no place on an upgrade (the gateway reads none).
        { name: "WebSocket upgrade", audit: "websocket", host: gatewayHost, method: "GET", path: () => "/ws", allowedStatus: 101, upgrade: true, skips: ["a body over every surface's limit"] },
      );
    });

    afterAll(async () => {
      for (const close of closers.reverse()) await close();
      await t.cleanup();
    });

    const now = (): number => Math.floor(Date.now() / 1000);
    async function send(surface: Surface, options: { key?: Key; path?: string; created?: number; nonce?: string; signed?: boolean; body?: string; tamper?: boolean; headers?: Record<string, string> } = {}): Promise<{ status: number; code: string | null; requestId: string }> {
      const key = options.key ?? good;
      const path = options.path ?? surface.path(key);
      const headers =
        options.signed === false
          ? {}
          : signRequest({
              method: surface.method,
              url: path,
              host: surface.host,
              keyId: key.id,
              key: options.tamper === true ? `${key.secret}x` : key.secret,
              created: options.created ?? now(),
              ...(options.nonce === undefined ? {} : { nonce: options.nonce }),
              ...(options.body === undefined ? {} : { body: options.body }),
            });
      Object.assign(headers, options.headers);
      if (surface.upgrade === true) return upgrade(surface, path, headers);
      const res = await request(`http://${surface.host}${path}`, {
        method: surface.method as "GET",
        headers: { ...headers, ...(options.body === undefined ? {} : { "content-type": "application/json" }) },
        ...(options.body === undefined ? {} : { body: options.body }),
      });
      const text = await res.body.text();
      let code: string | null;
      try {
        const parsed = JSON.parse(text) as { code?: unknown };
        code = typeof parsed.code === "string" ? parsed.code : null;
      } catch {
        code = null;
      }
      return { status: res.statusCode, code, requestId: String(res.headers["portcullis-request-id"] ?? "") };
    }

    /** A WebSocket upgrade: 101 (closed at once), or the HTTP refusal before it completes. */
    function upgrade(surface: Surface, path: string, headers: Record<string, string>): Promise<{ status: number; code: string | null; requestId: string }> {
      const { host: _host, ...rest } = headers;
      return new Promise((resolve, reject) => {
        const ws = new WebSocket(`ws://${surface.host}${path}`, { headers: rest, perMessageDeflate: false });
        ws.once("upgrade", (res) => {
          const requestId = String(res.headers["portcullis-request-id"] ?? "");
          ws.once("open", () => {
            ws.close();
          });
          ws.once("close", () => {
            resolve({ status: 101, code: null, requestId });
          });
        });
        ws.once("unexpected-response", (_req, res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { code?: string };
            resolve({ status: res.statusCode ?? 0, code: body.code ?? null, requestId: String(res.headers["portcullis-request-id"] ?? "") });
          });
        });
        ws.once("error", reject);
      });
    }

    const cases: Case[] = [
      { name: "an allowed request", code: null, status: 0, send: (s) => send(s) },
      { name: "an unsigned request", code: "CREDENTIALS_MISSING", status: 401, send: (s) => send(s, { signed: false }) },
      { name: "a forged signature", code: "SIGNATURE_INVALID", status: 401, send: (s) => send(s, { tamper: true }) },
      { name: "an unknown key", code: "KEY_UNKNOWN", status: 401, send: (s) => send(s, { key: { id: unknownKeyId, secret: "x".repeat(43) } }) },
      { name: "a stale request", code: "CREATED_TOO_OLD", status: 401, send: (s) => send(s, { created: now() - 3600 }) },
      {
        name: "a replayed request",
        code: "NONCE_REPLAYED",
        status: 409,
        send: async (s) => {
          const nonce = `replay-${s.name.replace(/\W/g, "")}-${String(cap)}`;
          const first = await send(s, { nonce });
          expect(first.status).toBe(s.allowedStatus);
          return send(s, { nonce });
        },
      },
      { name: "a key without the route's scope", code: "SCOPE_MISSING", status: 403, send: (s) => send(s, { key: noScope }) },
      // The unseal stage (docs/sealed-orders.md) on every surface: this core has no HPKE keys.
      { name: "a sealed request where sealing is off", code: "SEALED_NOT_SUPPORTED", status: 400, send: (s) => send(s, { headers: { "portcullis-sealed": "AAAAAAAAAAAAAAAA" } }) },
      { name: "a certificate-bound key without its client certificate", code: "KEY_CERT_MISMATCH", status: 401, send: (s) => send(s, { key: bound }) },
      {
        name: "a request whose declared operation does not decode",
        code: "OPERATION_PARAM_DUPLICATED",
        status: 400,
        surfaces: 4,
        send: (s) => send(s, { path: `${OPERATION_ROUTE.path}?symbol=BTCUSDT&orderId=1&orderId=2` }),
      },
      {
        name: "a throttled key beyond its throttle",
        code: "ANOMALY_THROTTLED",
        status: 429,
        send: async (s) => {
          await send(s, { key: throttled });
          return send(s, { key: throttled });
        },
      },
      { name: "an unmapped route", code: "ROUTE_NOT_FOUND", status: 404, send: (s) => send(s, { path: "/api/v3/nowhere" }) },
      { name: "a body over every surface's limit", code: "BODY_TOO_LARGE", status: 413, send: (s) => send(s, { signed: false, body: "x".repeat(2 * 1024 * 1024) }) },
    ];

    function entryFor(requestId: string): AuditEntry | undefined {
      return readEntries(t.dataDir).find((e) => e.requestId === requestId && e.event.startsWith("request."));
    }

    for (const c of cases) {
      it(`${c.name}: the same decision, audit entry and released slot on every surface`, async () => {
        const seen: string[] = [];
        for (const surface of surfaces) {
          if (surface.skips.includes(c.name) || (c.surfaces !== undefined && OWN_TABLES.includes(surface.name))) continue;
          const answer = await c.send(surface);
          const status = c.code === null ? surface.allowedStatus : c.status;
          expect({ surface: surface.name, status: answer.status, code: answer.code }).toEqual({ surface: surface.name, status, code: c.code });
          await t.core.audit.flush();
          const entry = entryFor(answer.requestId);
          expect(entry, `${surface.name}: audit entry for ${answer.requestId}`).toMatchObject({
            event: c.code === null ? "request.allow" : "request.deny",
            surface: surface.audit,
            ...(c.code === null ? { key: good.id, actor: `key:${good.id}` } : { code: c.code, actor: "anonymous" }),
          });
          expect(t.core.shield.inFlightFor(good.id), `${surface.name}: slots held after ${c.name}`).toBe(0);
          seen.push(surface.name);
        }
        expect(seen.length).toBeGreaterThanOrEqual(c.surfaces ?? 5);
        expect(seen).toContain("gateway");
      });
    }

    it("a key makes more requests in a row than its cap, on every surface, and none is refused for a slot it no longer holds", async () => {
      for (const surface of surfaces) {
        for (let i = 0; i < Math.max(4, cap * 2); i++) {
          const answer = await send(surface);
          expect({ surface: surface.name, i, status: answer.status }).toEqual({ surface: surface.name, i, status: surface.allowedStatus });
        }
        expect(t.core.shield.inFlightFor(good.id)).toBe(0);
      }
    });
  });
}

matrix(0);
matrix(2);
