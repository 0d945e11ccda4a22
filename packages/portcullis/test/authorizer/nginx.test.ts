/**
 * The authorizer behind Debian's real nginx, running docs/deploy/nginx.conf as shipped (only its
 * addresses templated: support.ts), in front of a real upstream that records what reaches it. Every
 * request is real HTTP through nginx. Refusals are compared with the gateway's answer to the same
 * request on the same core: the same status, the same dialect-shaped body.
 */
import { generateKeyPairSync } from "node:crypto";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RouteSpec } from "../../src/authz/routes.js";
import { generateKeyId } from "../../src/contract/ids.js";
import { Authorizer } from "../../src/gateway/authorizer.js";
import { IdentitySigner } from "../../src/gateway/identity.js";
import { Forwarder } from "../../src/gateway/proxy.js";
import { Gateway } from "../../src/gateway/server.js";
import { OperationEndpoints } from "../../src/gateway/operation-endpoints.js";
import { HoldService } from "../../src/holds/service.js";
import { DEFAULT_SHIELD_POLICY } from "../../src/limits/types.js";
import { silentLogger } from "../../src/log/logger.js";
import { createIdentityVerifier } from "../../src/upstream.js";
import { readEntries } from "../audit/support.js";
import { HoldWithdrawals } from "../approvals/support.js";
import { IDENTITY_SECRET, startEchoUpstream } from "../support/gateway.js";
import { TEST_ROUTES, type TestCore, makeCore, signRequest } from "../support/harness.js";
import { binanceSignParams, bybitHeaders, coinbaseHeaders, krakenHeaders, okxHeaders } from "../support/venues.js";
import { type RunningNginx, nginxAvailable, startNginx } from "./support.js";

const ROUTES: RouteSpec[] = [
  ...TEST_ROUTES.filter((r) => r.path !== "/sapi/v1/capital/withdraw/apply"),
  { method: "POST", path: "/sapi/v1/capital/withdraw/apply", permission: "withdraw", operation: "withdraw" },
  { method: "GET", path: "/api/v3/allOrders", permission: "read", dialect: "binance" },
  { method: "GET", path: "/api/v5/account/balance", permission: "read", dialect: "okx" },
  { method: "POST", path: "/api/v5/trade/order", permission: "trade", dialect: "okx" },
  { method: "GET", path: "/v5/account/wallet-balance", permission: "read", dialect: "bybit" },
  { method: "POST", path: "/0/private/Balance", permission: "read", dialect: "kraken" },
  { method: "GET", path: "/api/v3/brokerage/accounts", permission: "read", dialect: "coinbase" },
];
/** The limit test's key may spend 100 weight a minute: five account reads (weight 20). */
const LIMITS = [{ name: "key-weight-1m", scope: "key" as const, kind: "weight" as const, limit: 100, windowMs: 60_000 }];
const WITHDRAWAL = JSON.stringify({ asset: "USDT", amount: "2500", address: "0xaa", network: "ETH" });

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
}

async function send(host: string, method: string, url: string, headers: Record<string, string> | [string, string][], body?: string): Promise<Answer> {
  const res = await request(`http://${host}${url}`, { method: method as "GET", headers: Array.isArray(headers) ? Object.fromEntries(headers) : headers, ...(body === undefined ? {} : { body }) });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

function code(a: Answer): unknown {
  return (JSON.parse(a.text) as { code?: unknown }).code;
}

describe.skipIf(!nginxAvailable())("the authorizer behind nginx (docs/deploy/nginx.conf)", () => {
  let t: TestCore;
  let nginx: RunningNginx;
  let authorizer: Authorizer;
  let gateway: Gateway;
  let gatewayHost: string;
  let holds: HoldService;
  let upstream: Awaited<ReturnType<typeof startEchoUpstream>>;
  let key: { id: string; secret: string };

  beforeAll(async () => {
    upstream = await startEchoUpstream();
    t = await makeCore({ routes: ROUTES, limits: { specs: LIMITS, shield: { ...DEFAULT_SHIELD_POLICY, strikes: 1_000 } } });
    const policy = new HoldWithdrawals([{ group: "treasury", count: 1 }]);
    const store = (t.core as unknown as { store: { holds: HoldService["store"] } }).store;
    holds = new HoldService({ store: store.holds, envelope: (t.core.keys as unknown as { envelope: ConstructorParameters<typeof HoldService>[0]["envelope"] }).envelope, policy, now: t.clock.now, pollMs: 1_000_000 });
    const identity = new IdentitySigner(IDENTITY_SECRET);
    authorizer = new Authorizer({
      pipeline: t.core.pipeline,
      identity,
      logger: silentLogger(),
      trustedProxies: ["127.0.0.1/32"],
      now: t.clock.now,
      audit: t.core.audit,
      holds: { policy, service: holds, operations: new OperationEndpoints(t.core, holds), forwarder: new Forwarder({ upstream: upstream.url }) },
    });
    const address = await authorizer.listen(0);
    // The same core behind a gateway: what the authorizer's refusals must look like.
    gateway = new Gateway({ pipeline: t.core.pipeline, forwarder: new Forwarder({ upstream: upstream.url }), identity, logger: silentLogger(), now: t.clock.now });
    gatewayHost = `127.0.0.1:${(await gateway.listen(0)).port}`;
    nginx = await startNginx(`127.0.0.1:${address.port}`, upstream.url.replace("http://", ""));
    const created = await t.createKey({ scopes: ["read", "trade", "withdraw"] });
    key = { id: created.key.id, secret: created.secret ?? "" };
  });

  afterAll(async () => {
    await nginx.stop();
    await holds.stop();
    await authorizer.close(500);
    await gateway.close(500);
    await upstream.close();
    await t.cleanup();
  });

  function signed(method: string, url: string, options: { body?: string; keyOf?: { id: string; secret: string }; host?: string } = {}): Record<string, string> {
    const k = options.keyOf ?? key;
    return {
      ...signRequest({ method, url, host: options.host ?? nginx.host, keyId: k.id, key: k.secret, created: t.clock.seconds, ...(options.body === undefined ? {} : { body: options.body }) }),
      ...(options.body === undefined ? {} : { "content-type": "application/json" }),
    };
  }

  it("an allowed signed request reaches the upstream with identity headers the upstream verifies, and without the client's credentials", async () => {
    const before = upstream.requests.length;
    // What a client sends in the protocol's or the identity's names changes nothing.
    const forged = { "portcullis-account": "forged", "portcullis-target": "/forged", "portcullis-identity": "v2=forged", "x-original-uri": "/forged", "x-real-ip": "192.0.2.1" };
    const headers = { ...signed("GET", "/api/v3/order?symbol=BTCUSDT"), ...forged };
    const res = await send(nginx.host, "GET", "/api/v3/order?symbol=BTCUSDT", headers);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual({ ok: true, url: "/api/v3/order?symbol=BTCUSDT" });
    const got = upstream.requests.slice(before);
    expect(got).toHaveLength(1);
    const seen = got[0];
    if (seen === undefined) throw new Error("nothing reached the upstream");
    expect(seen.headers.signature).toBeUndefined();
    expect(seen.headers["signature-input"]).toBeUndefined();
    expect(seen.headers["x-original-uri"]).toBeUndefined();
    expect(seen.headers["x-real-ip"]).toBeUndefined();
    expect(seen.headers["portcullis-target"]).toBe(undefined);
    expect(seen.headers["portcullis-account"]).toBe("acct-1");
    expect(seen.headers["portcullis-key-id"]).toBe(key.id);
    expect(seen.headers["portcullis-client-ip"]).toBe("127.0.0.1");
    const verify = createIdentityVerifier(IDENTITY_SECRET, { now: t.clock.now });
    const verdict = verify({ method: seen.method, url: seen.url, headers: seen.headers }, seen.rawBody);
    expect(verdict).toMatchObject({ ok: true, identity: { keyId: key.id, account: "acct-1", clientIp: "127.0.0.1" } });
    // The decision is audited, surface "authorizer".
    await t.core.audit.flush();
    const entry = readEntries(t.dataDir).find((e) => e.event === "request.allow" && e.surface === "authorizer" && e.path === "/api/v3/order");
    expect(entry).toMatchObject({ key: key.id, surface: "authorizer" });
  });

  it("a replayed request is refused, as the gateway refuses it, and nothing reaches the upstream", async () => {
    const headers = signed("GET", "/api/v3/account");
    expect((await send(nginx.host, "GET", "/api/v3/account", headers)).status).toBe(200);
    const before = upstream.requests.length;
    const again = await send(nginx.host, "GET", "/api/v3/account", headers);
    expect(again.status).toBe(409);
    expect(code(again)).toBe("NONCE_REPLAYED");
    expect(again.headers["content-type"]).toBe("application/json; charset=utf-8");
    expect(upstream.requests.length).toBe(before);
  });

  it("a key without the route's scope is refused SCOPE_MISSING", async () => {
    const narrow = await t.createKey({ scopes: ["trade"] });
    const res = await send(nginx.host, "GET", "/api/v3/account", signed("GET", "/api/v3/account", { keyOf: { id: narrow.key.id, secret: narrow.secret ?? "" } }));
    expect(res.status).toBe(403);
    expect(code(res)).toBe("SCOPE_MISSING");
  });

  it("past its limit a key is refused RATE_LIMITED with RateLimit and Retry-After headers; below it, the venue's answer carries RateLimit", async () => {
    const created = await t.createKey({ scopes: ["read"] });
    const k = { id: created.key.id, secret: created.secret ?? "" };
    const first = await send(nginx.host, "GET", "/api/v3/account", signed("GET", "/api/v3/account", { keyOf: k }));
    expect(first.status).toBe(200);
    expect(first.headers.ratelimit).toMatch(/r=80/);
    for (let i = 0; i < 4; i++) expect((await send(nginx.host, "GET", "/api/v3/account", signed("GET", "/api/v3/account", { keyOf: k }))).status).toBe(200);
    const refused = await send(nginx.host, "GET", "/api/v3/account", signed("GET", "/api/v3/account", { keyOf: k }));
    expect(refused.status).toBe(429);
    expect(code(refused)).toBe("RATE_LIMITED");
    expect(refused.headers["retry-after"]).toMatch(/^[0-9]+$/);
    expect(refused.headers.ratelimit).toMatch(/r=0/);
    expect(refused.headers["ratelimit-policy"]).toBeDefined();
  });

  it("a body-signed POST reaches the upstream with the same bytes; a tampered body is refused CONTENT_DIGEST_MISMATCH", async () => {
    const body = JSON.stringify({ symbol: "BTCUSDT", side: "BUY", quantity: "0.01" });
    const before = upstream.requests.length;
    const ok = await send(nginx.host, "POST", "/api/v3/order", signed("POST", "/api/v3/order", { body }), body);
    expect(ok.status).toBe(200);
    const seen = upstream.requests.slice(before)[0];
    expect(seen?.body).toBe(body);
    const verify = createIdentityVerifier(IDENTITY_SECRET, { now: t.clock.now });
    expect(seen === undefined ? null : verify({ method: seen.method, url: seen.url, headers: seen.headers }, seen.rawBody)).toMatchObject({ ok: true });
    const tampered = await send(nginx.host, "POST", "/api/v3/order", signed("POST", "/api/v3/order", { body }), body.replace("0.01", "9.99"));
    expect(tampered.status).toBe(400);
    expect(code(tampered)).toBe("CONTENT_DIGEST_MISMATCH");
    expect(upstream.requests.length).toBe(before + 1);
  });

  it("an OKX order signed over its JSON body reaches the upstream; the same headers with another body are refused", async () => {
    const created = await t.createKey({ scopes: ["trade"], dialects: ["okx"], passphrase: "Okx-Passphrase-1" });
    const body = '{"instId":"BTC-USDT","tdMode":"cash","side":"buy","ordType":"limit","px":"59000","sz":"0.01"}';
    const headers = okxHeaders({ method: "POST", url: "/api/v5/trade/order", body, keyId: created.key.id, secret: created.secret ?? "", passphrase: "Okx-Passphrase-1", time: t.clock.ms });
    const before = upstream.requests.length;
    const ok = await send(nginx.host, "POST", "/api/v5/trade/order", [...headers, ["content-type", "application/json"]], body);
    expect(ok.status).toBe(200);
    const seen = upstream.requests.slice(before)[0];
    expect(seen?.body).toBe(body);
    expect(seen?.headers["ok-access-sign"]).toBeUndefined();
    expect(seen?.headers["ok-access-passphrase"]).toBeUndefined();
    expect(seen?.headers["portcullis-key-id"]).toBe(created.key.id);
    const tampered = await send(nginx.host, "POST", "/api/v5/trade/order", [...headers, ["content-type", "application/json"]], body.replace("0.01", "1.00"));
    expect(tampered.status).toBe(401);
    expect(JSON.parse(tampered.text)).toMatchObject({ code: "50113" });
    expect(upstream.requests.length).toBe(before + 1);
  });

  it("a Binance query signature is removed from the target the upstream receives, and the identity covers that target", async () => {
    const created = await t.createKey({ scopes: ["read"], dialects: ["binance"] });
    const params = `symbol=BTCUSDT&timestamp=${t.clock.ms}`;
    const url = `/api/v3/allOrders?${binanceSignParams(params, params, created.secret ?? "")}`;
    const before = upstream.requests.length;
    const res = await send(nginx.host, "GET", url, { "x-mbx-apikey": created.key.id });
    expect(res.status).toBe(200);
    const seen = upstream.requests.slice(before)[0];
    expect(seen?.url).toBe(`/api/v3/allOrders?${params}`);
    expect(seen?.headers["x-mbx-apikey"]).toBeUndefined();
    const verify = createIdentityVerifier(IDENTITY_SECRET, { now: t.clock.now });
    expect(seen === undefined ? null : verify({ method: seen.method, url: seen.url, headers: seen.headers }, seen.rawBody)).toMatchObject({ ok: true });
  });

  it("a held withdrawal is answered with its ticket (202), not forwarded; once approved, Portcullis releases it to the upstream", async () => {
    const url = "/sapi/v1/capital/withdraw/apply";
    const before = upstream.requests.length;
    const res = await send(nginx.host, "POST", url, signed("POST", url, { body: WITHDRAWAL }), WITHDRAWAL);
    expect(res.status).toBe(202);
    const ticket = JSON.parse(res.text) as { operationId: string; state: string };
    expect(ticket.state).toBe("pending");
    expect(upstream.requests.length).toBe(before);
    // The ticket is readable through nginx's /portcullis/ location.
    const path = `/portcullis/v1/operations/${ticket.operationId}`;
    const read = await send(nginx.host, "GET", path, signed("GET", path));
    expect(read.status).toBe(200);
    expect(JSON.parse(read.text)).toMatchObject({ operationId: ticket.operationId, state: "pending" });
    const { approver } = await import("../approvals/support.js");
    const alice = approver("alice");
    await holds.addApprover("alice", ["treasury"], alice.publicPem, "test");
    const digest = (await holds.view(ticket.operationId)).digest;
    await holds.decide(ticket.operationId, "alice", "approve", digest, alice.sign("approve", digest));
    await holds.idle();
    const released = upstream.requests.slice(before).filter((r) => r.url === url);
    expect(released).toHaveLength(1);
    expect(released[0]?.body).toBe(WITHDRAWAL);
    expect(released[0]?.headers["portcullis-request-id"]).toBe(ticket.operationId);
    expect(released[0]?.headers.signature).toBeUndefined();
  });

  it("clients cannot speak the authorizer's protocol through nginx (404), and only trusted proxies are answered", async () => {
    const direct = await send(nginx.host, "GET", "/portcullis/v1/authz/nginx", { "x-original-uri": "/api/v3/account" });
    expect(direct.status).toBe(404);
    const strict = new Authorizer({ pipeline: t.core.pipeline, identity: new IdentitySigner(IDENTITY_SECRET), logger: silentLogger(), trustedProxies: ["10.0.0.0/8"], now: t.clock.now, audit: t.core.audit });
    const address = await strict.listen(0);
    try {
      const host = `127.0.0.1:${address.port}`;
      for (const url of ["/portcullis/v1/authz/nginx", "/api/v3/account"]) {
        const res = await send(host, "GET", url, { ...signed("GET", "/api/v3/account", { host }), "x-original-uri": "/api/v3/account" });
        expect(res.status).toBe(403);
        expect(code(res)).toBe("AUTHORIZER_PEER_UNTRUSTED");
      }
      await t.core.audit.flush();
      const entry = readEntries(t.dataDir).find((e) => e.event === "request.deny" && e.code === "AUTHORIZER_PEER_UNTRUSTED");
      expect(entry).toMatchObject({ surface: "authorizer" });
    } finally {
      await strict.close(100);
    }
  });

  describe("refusals in each venue's dialect: the gateway's status and body", () => {
    const unknown = generateKeyId("test");
    const requests: [string, string, string, (host: string) => [string, string][], string?][] = [
      ["native", "GET", "/api/v3/account", (host) => Object.entries(signRequest({ method: "GET", url: "/api/v3/account", host, keyId: unknown, key: "x".repeat(32), created: t.clock.seconds }))],
      ["Binance", "GET", "/api/v3/allOrders?timestamp=1&signature=00", () => [["X-MBX-APIKEY", unknown]]],
      ["OKX", "GET", "/api/v5/account/balance", () => okxHeaders({ method: "GET", url: "/api/v5/account/balance", body: "", keyId: unknown, secret: "s", passphrase: "p", time: t.clock.ms })],
      ["Bybit", "GET", "/v5/account/wallet-balance", () => bybitHeaders({ method: "GET", url: "/v5/account/wallet-balance", body: "", keyId: unknown, secret: "s", time: t.clock.ms, recvWindow: "5000" })],
      ["Kraken", "POST", "/0/private/Balance", () => [...krakenHeaders({ path: "/0/private/Balance", nonce: "1", body: "nonce=1", keyId: unknown, secret: "c2VjcmV0" }), ["content-type", "application/x-www-form-urlencoded"]], "nonce=1"],
      ["Coinbase", "GET", "/api/v3/brokerage/accounts", (host) => coinbaseHeaders({ method: "GET", host, path: "/api/v3/brokerage/accounts", keyId: unknown, privateKey: generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey, seconds: t.clock.seconds })],
    ];
    for (const [dialect, method, url, headers, body] of requests) {
      it(`${dialect}: the same status and body as the gateway`, async () => {
        const through = await send(nginx.host, method, url, headers(nginx.host), body);
        const direct = await send(gatewayHost, method, url, headers(gatewayHost), body);
        expect(through.status).toBeGreaterThanOrEqual(200);
        expect(through.status).toBe(direct.status);
        expect(through.headers["content-type"]).toBe(direct.headers["content-type"]);
        // The request id differs, and Bybit's body carries the time of the answer.
        const normal = (a: Answer): string => a.text.replaceAll(String(a.headers["portcullis-request-id"]), "<id>").replace(/"time":[0-9]+/, '"time":0');
        expect(normal(through)).toBe(normal(direct));
        expect(through.text.length).toBeGreaterThan(2);
      });
    }
  });

  it("nginx logged no error of its own", () => {
    expect(nginx.errorLog()).not.toMatch(/\[(error|crit|alert|emerg)\]/);
  });
});
