/**
 * The authorizer's two protocols without a proxy in front (in-process requests from a trusted
 * peer): the forward-auth answer (200 with identity headers over the original request, or the
 * refusal itself), holds refused where they cannot be answered, the nginx protocol's own checks,
 * the auth_request protocol's holds and token expiry, and Portcullis's own endpoints beside them.
 * The nginx protocols behind the real nginx are in nginx.test.ts and auth-request.test.ts.
 */
import { type Response, inject } from "light-my-request";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RouteSpec } from "../../src/authz/routes.js";
import { AUTH_REQUEST_PATH, Authorizer, NGINX_ALLOW_STATUS, NGINX_PATH, REFUSAL_PATH } from "../../src/gateway/authorizer.js";
import { REFUSAL_HEADER, REFUSAL_TTL_MS } from "../../src/gateway/refusal-token.js";
import { IdentitySigner } from "../../src/gateway/identity.js";
import { Forwarder } from "../../src/gateway/proxy.js";
import { HoldService } from "../../src/holds/service.js";
import { SessionEndpoints } from "../../src/gateway/session-endpoints.js";
import { readEntries } from "../audit/support.js";
import { silentLogger } from "../../src/log/logger.js";
import { createIdentityVerifier } from "../../src/upstream.js";
import { HoldWithdrawals } from "../approvals/support.js";
import { IDENTITY_SECRET, startEchoUpstream } from "../support/gateway.js";
import { TEST_ROUTES, type TestCore, makeCore, signRequest } from "../support/harness.js";
import { binanceSignParams } from "../support/venues.js";

const ROUTES: RouteSpec[] = [
  ...TEST_ROUTES.filter((r) => r.path !== "/sapi/v1/capital/withdraw/apply"),
  { method: "POST", path: "/sapi/v1/capital/withdraw/apply", permission: "withdraw", operation: "withdraw" },
  { method: "GET", path: "/api/v3/allOrders", permission: "read", dialect: "binance" },
];
const WITHDRAWAL = JSON.stringify({ asset: "USDT", amount: "2500", address: "0xaa", network: "ETH" });
const HOST = "authz.test";

let t: TestCore;
let authorizer: Authorizer;
let holds: HoldService;
let policy: HoldWithdrawals;
let upstream: Awaited<ReturnType<typeof startEchoUpstream>>;
let key: { id: string; secret: string };

beforeAll(async () => {
  upstream = await startEchoUpstream();
  t = await makeCore({ routes: ROUTES, sessions: true });
  policy = new HoldWithdrawals([{ group: "treasury", count: 1 }]);
  const store = (t.core as unknown as { store: { holds: HoldService["store"] } }).store;
  holds = new HoldService({ store: store.holds, envelope: (t.core.keys as unknown as { envelope: ConstructorParameters<typeof HoldService>[0]["envelope"] }).envelope, policy, now: t.clock.now, pollMs: 1_000_000 });
  authorizer = new Authorizer({
    pipeline: t.core.pipeline,
    identity: new IdentitySigner(IDENTITY_SECRET),
    logger: silentLogger(),
    trustedProxies: ["127.0.0.1/32"],
    now: t.clock.now,
    audit: t.core.audit,
    bodyLimit: 4096,
    sessions: new SessionEndpoints(t.core),
    holds: { policy, service: holds, forwarder: new Forwarder({ upstream: upstream.url }) },
  });
  const created = await t.createKey({ scopes: ["read", "trade", "withdraw"] });
  key = { id: created.key.id, secret: created.secret ?? "" };
});

afterAll(async () => {
  await holds.stop();
  await authorizer.close(100);
  await upstream.close();
  await t.cleanup();
});

function signed(method: string, url: string, body?: string): Record<string, string> {
  return {
    ...signRequest({ method, url, host: HOST, keyId: key.id, key: key.secret, created: t.clock.seconds, ...(body === undefined ? {} : { body }) }),
    ...(body === undefined ? {} : { "content-type": "application/json" }),
  };
}

function ask(method: string, url: string, headers: Record<string, string>, payload?: string): Promise<Response> {
  return inject(authorizer.handle, { method: method as "GET", url, headers, remoteAddress: "127.0.0.1", ...(payload === undefined ? {} : { payload }) });
}

describe("forward-auth (any path but Portcullis's own): the original request", () => {
  it("allowed: 200, no body, identity headers over the original method, target and body", async () => {
    const body = JSON.stringify({ symbol: "BTCUSDT", side: "BUY" });
    const res = await ask("POST", "/api/v3/order?test=1", signed("POST", "/api/v3/order?test=1", body), body);
    expect(res.statusCode).toBe(200);
    expect(res.body).toBe("");
    expect(res.headers["portcullis-key-id"]).toBe(key.id);
    expect(res.headers["portcullis-target"]).toBeUndefined();
    const verify = createIdentityVerifier(IDENTITY_SECRET, { now: t.clock.now });
    expect(verify({ method: "POST", url: "/api/v3/order?test=1", headers: res.headers as Record<string, string> }, Buffer.from(body))).toMatchObject({ ok: true, identity: { keyId: key.id, account: "acct-1" } });
    // The identity is bound to the body: another body does not verify.
    const again = await ask("POST", "/api/v3/order?test=1", signed("POST", "/api/v3/order?test=1", body), body);
    expect(createIdentityVerifier(IDENTITY_SECRET, { now: t.clock.now })({ method: "POST", url: "/api/v3/order?test=1", headers: again.headers as Record<string, string> }, Buffer.from("{}"))).toEqual({ ok: false, reason: "body-mismatch" });
  });

  it("a Binance query signature stays in the target the identity covers (the proxy forwards the original target)", async () => {
    const created = await t.createKey({ scopes: ["read"], dialects: ["binance"] });
    const params = `timestamp=${t.clock.ms}`;
    const url = `/api/v3/allOrders?${binanceSignParams(params, params, created.secret ?? "")}`;
    const res = await ask("GET", url, { host: HOST, "x-mbx-apikey": created.key.id });
    expect(res.statusCode).toBe(200);
    expect(createIdentityVerifier(IDENTITY_SECRET, { now: t.clock.now })({ method: "GET", url, headers: res.headers as Record<string, string> }, Buffer.alloc(0))).toMatchObject({ ok: true });
  });

  it("refused: the refusal itself (status, code, RateLimit headers when charged)", async () => {
    const res = await ask("GET", "/api/v3/account", { host: HOST });
    expect(res.statusCode).toBe(401);
    expect(res.json()).toMatchObject({ code: "CREDENTIALS_MISSING" });
    expect(res.headers["portcullis-key-id"]).toBeUndefined();
  });

  it("a withdrawal the policy would hold is refused HOLD_NOT_SUPPORTED (a held 2xx would read as allow), and the policy forgets it", async () => {
    const url = "/sapi/v1/capital/withdraw/apply";
    const res = await ask("POST", url, signed("POST", url, WITHDRAWAL), WITHDRAWAL);
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({ code: "HOLD_NOT_SUPPORTED" });
    expect(policy.forgotten.length).toBeGreaterThan(0);
    expect(upstream.requests).toHaveLength(0);
  });

  it("a body over the limit is refused BODY_TOO_LARGE", async () => {
    const res = await ask("POST", "/api/v3/order", { host: HOST, "content-type": "application/json" }, "x".repeat(5000));
    expect(res.statusCode).toBe(413);
    expect(res.json()).toMatchObject({ code: "BODY_TOO_LARGE" });
  });
});

describe("the nginx protocol", () => {
  it("allowed: 399 with the identity headers and Portcullis-Target", async () => {
    const res = await ask("GET", NGINX_PATH, { ...signed("GET", "/api/v3/account"), "x-original-uri": "/api/v3/account" });
    expect(res.statusCode).toBe(NGINX_ALLOW_STATUS);
    expect(res.headers["portcullis-target"]).toBe("/api/v3/account");
    expect(res.headers["portcullis-key-id"]).toBe(key.id);
  });

  it("a held withdrawal: its ticket (202), stored for release by Portcullis", async () => {
    const url = "/sapi/v1/capital/withdraw/apply";
    const res = await ask("POST", NGINX_PATH, { ...signed("POST", url, WITHDRAWAL), "x-original-uri": url }, WITHDRAWAL);
    expect(res.statusCode).toBe(202);
    const ticket = res.json<{ operationId: string }>();
    expect((await holds.view(ticket.operationId)).state).toBe("pending");
  });

  it("without an origin-form X-Original-URI: HTTP_MALFORMED, never a 5xx", async () => {
    for (const headers of [{}, { "x-original-uri": "http://elsewhere/api/v3/account" }, { "x-original-uri": "" }]) {
      const res = await ask("GET", NGINX_PATH, { host: HOST, ...headers });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ code: "HTTP_MALFORMED" });
    }
  });

  it("whatever X-Original-URI and method it is given, a 4xx answer or an allow, never a 5xx", async () => {
    const targets = ["/", "//", "/%", "/%zz", "/api/v3/account?%", "/api/v3/../v3/account", "/api/v3/account#x", "/\u0000", "/api/v3/account?a=1&a=2", `/${"a".repeat(5000)}`, "/portcullis/v1/authz/nginx", "/ /", "*"];
    for (const target of targets) {
      for (const method of ["GET", "POST", "OPTIONS", "DELETE"]) {
        const res = await ask(method, NGINX_PATH, { host: HOST, "x-original-uri": target });
        expect(res.statusCode, `${method} ${target}`).toBeGreaterThanOrEqual(400);
        expect(res.statusCode, `${method} ${target}`).toBeLessThan(500);
      }
    }
  });

  it("from a peer outside trustedProxies: AUTHORIZER_PEER_UNTRUSTED, whatever the request", async () => {
    for (const url of [NGINX_PATH, "/api/v3/account"]) {
      const res: Response = await inject(authorizer.handle, { method: "GET", url, headers: { ...signed("GET", "/api/v3/account"), "x-original-uri": "/api/v3/account" }, remoteAddress: "192.0.2.7" });
      expect(res.statusCode).toBe(403);
      expect(res.json()).toMatchObject({ code: "AUTHORIZER_PEER_UNTRUSTED" });
    }
  });
});

describe("Portcullis's own endpoints beside the protocols", () => {
  it("time and health answer; another /portcullis/ path is ROUTE_NOT_FOUND", async () => {
    expect((await ask("GET", "/portcullis/v1/time", { host: HOST })).json()).toEqual({ serverTime: t.clock.ms });
    expect((await ask("GET", "/portcullis/v1/health", { host: HOST })).json()).toEqual({ status: "ok" });
    const other = await ask("GET", "/portcullis/v1/authz/envoy", { host: HOST });
    expect(other.statusCode).toBe(404);
    expect(other.json()).toMatchObject({ code: "ROUTE_NOT_FOUND" });
  });

  it("a session logon is served beside them, audited as the authorizer's", async () => {
    const res = await ask("POST", "/portcullis/v1/session", signed("POST", "/portcullis/v1/session"));
    expect(res.statusCode).toBe(201);
    await t.core.audit.flush();
    const requestId = res.headers["portcullis-request-id"];
    expect(readEntries(t.dataDir).find((e) => e.requestId === requestId && e.event === "request.allow")).toMatchObject({ surface: "authorizer", key: key.id });
  });

  it("refuses to be built without trusted proxies", () => {
    expect(() => new Authorizer({ pipeline: t.core.pipeline, identity: new IdentitySigner(IDENTITY_SECRET), logger: silentLogger(), trustedProxies: [] })).toThrow(TypeError);
  });
});

describe("the auth_request protocol", () => {
  const original = (method: string, url: string): Record<string, string> => ({ "x-original-uri": url, "x-original-method": method, "x-original-body": "content-length=; transfer-encoding=" });
  const opened = async (sub: Response): Promise<Response> => ask("GET", REFUSAL_PATH, { [REFUSAL_HEADER]: String(sub.headers[REFUSAL_HEADER]) });

  it("allowed: 200 with the identity headers over the original method, Portcullis-Target and an empty body", async () => {
    const url = "/api/v3/order?symbol=BTCUSDT&orderId=7";
    const res = await ask("GET", AUTH_REQUEST_PATH, { ...signed("DELETE", url), ...original("DELETE", url) });
    expect(res.statusCode).toBe(200);
    expect(res.headers["portcullis-target"]).toBe(url);
    const verify = createIdentityVerifier(IDENTITY_SECRET, { now: t.clock.now });
    const headers = { ...res.headers, host: HOST } as Record<string, string>;
    expect(verify({ method: "DELETE", url, headers }, Buffer.alloc(0))).toMatchObject({ ok: true, identity: { keyId: key.id } });
    expect(verify({ method: "DELETE", url, headers }, Buffer.from("x"))).toMatchObject({ ok: false });
  });

  it("never holds: a body-less withdrawal the policy would hold is refused HOLD_NOT_SUPPORTED", async () => {
    const url = "/sapi/v1/capital/withdraw/apply?asset=USDT&amount=2500&address=0xaa&network=ETH";
    const forgotten = policy.forgotten.length;
    const sub = await ask("GET", AUTH_REQUEST_PATH, { ...signed("POST", url), ...original("POST", url) });
    expect(sub.statusCode).toBe(403);
    expect(sub.body).toBe("");
    const res = await opened(sub);
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({ code: "HOLD_NOT_SUPPORTED" });
    expect(policy.forgotten.length).toBeGreaterThan(forgotten);
  });

  it("from a peer outside trustedProxies, the refusal endpoint answers AUTHORIZER_PEER_UNTRUSTED", async () => {
    const sub = await ask("GET", AUTH_REQUEST_PATH, { ...signed("GET", "/api/v3/account"), ...original("GET", "/api/v3/account") });
    const res = await inject(authorizer.handle, { method: "GET", url: REFUSAL_PATH, headers: { [REFUSAL_HEADER]: String(sub.headers[REFUSAL_HEADER]) }, remoteAddress: "192.0.2.7" });
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({ code: "AUTHORIZER_PEER_UNTRUSTED" });
  });

  it("a token past its expiry is refused AUTHORIZER_REFUSAL_INVALID", async () => {
    const sub = await ask("GET", AUTH_REQUEST_PATH, { ...signed("GET", "/api/v3/nowhere"), ...original("GET", "/api/v3/nowhere") });
    expect(sub.statusCode).toBe(403);
    t.clock.advance(REFUSAL_TTL_MS - 1);
    expect((await opened(sub)).json()).toMatchObject({ code: "ROUTE_NOT_FOUND" });
    t.clock.advance(1);
    const res = await opened(sub);
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({ code: "AUTHORIZER_REFUSAL_INVALID" });
  });
});
