/**
 * The authorizer's nginx auth_request protocol behind Debian's real nginx, running
 * docs/deploy/nginx-auth-request.conf as shipped (only its addresses templated: support.ts), in
 * front of a real upstream that records what reaches it. Every request is real HTTP through nginx.
 * Refusals are compared with the gateway's answer to the same request on the same core.
 */
import { generateKeyPairSync } from "node:crypto";
import { connect } from "node:net";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RouteSpec } from "../../src/authz/routes.js";
import { generateKeyId } from "../../src/contract/ids.js";
import { AUTH_REQUEST_PATH, Authorizer, REFUSAL_PATH } from "../../src/gateway/authorizer.js";
import { IdentitySigner } from "../../src/gateway/identity.js";
import { Forwarder } from "../../src/gateway/proxy.js";
import { REFUSAL_HEADER } from "../../src/gateway/refusal-token.js";
import { Gateway } from "../../src/gateway/server.js";
import { DEFAULT_SHIELD_POLICY } from "../../src/limits/types.js";
import { silentLogger } from "../../src/log/logger.js";
import { createIdentityVerifier } from "../../src/upstream.js";
import { readEntries } from "../audit/support.js";
import { IDENTITY_SECRET, startEchoUpstream } from "../support/gateway.js";
import { TEST_ROUTES, type TestCore, makeCore, signRequest } from "../support/harness.js";
import { binanceSignParams, bybitHeaders, coinbaseHeaders, okxHeaders } from "../support/venues.js";
import { NGINX_AUTH_REQUEST_CONF, type RunningNginx, nginxAvailable, startNginx } from "./support.js";

const ROUTES: RouteSpec[] = [
  ...TEST_ROUTES,
  { method: "GET", path: "/api/v3/allOrders", permission: "read", dialect: "binance" },
  { method: "GET", path: "/api/v5/account/balance", permission: "read", dialect: "okx" },
  { method: "GET", path: "/v5/account/wallet-balance", permission: "read", dialect: "bybit" },
  { method: "GET", path: "/api/v3/brokerage/accounts", permission: "read", dialect: "coinbase" },
];
/** The limit test's key may spend 100 weight a minute: five account reads (weight 20). */
const LIMITS = [{ name: "key-weight-1m", scope: "key" as const, kind: "weight" as const, limit: 100, windowMs: 60_000 }];

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
}

async function send(host: string, method: string, url: string, headers: Record<string, string> | [string, string][], body?: string): Promise<Answer> {
  const res = await request(`http://${host}${url}`, { method: method as "GET", headers: Array.isArray(headers) ? Object.fromEntries(headers) : headers, ...(body === undefined ? {} : { body }) });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

/** A request written on a socket as is (a chunked body), and the status line of the answer. */
function raw(host: string, text: string): Promise<string> {
  const [h, p] = host.split(":");
  return new Promise((resolve, reject) => {
    const socket = connect(Number(p), h ?? "127.0.0.1");
    let got = "";
    socket.on("data", (c: Buffer) => (got += c.toString("latin1")));
    socket.on("end", () => { resolve(got); });
    socket.on("error", reject);
    socket.write(text);
  });
}

function code(a: Answer): unknown {
  return (JSON.parse(a.text) as { code?: unknown }).code;
}

/** The request id differs between two answers, and Bybit's body carries the time of the answer. */
function normal(a: Answer): string {
  return a.text.replaceAll(String(a.headers["portcullis-request-id"]), "<id>").replace(/"time":[0-9]+/, '"time":0');
}

describe.skipIf(!nginxAvailable())("the authorizer behind nginx auth_request (docs/deploy/nginx-auth-request.conf)", () => {
  let t: TestCore;
  let nginx: RunningNginx;
  let authorizer: Authorizer;
  let authorizerHost: string;
  let gateway: Gateway;
  let gatewayHost: string;
  let upstream: Awaited<ReturnType<typeof startEchoUpstream>>;
  let key: { id: string; secret: string };

  beforeAll(async () => {
    upstream = await startEchoUpstream();
    t = await makeCore({ routes: ROUTES, limits: { specs: LIMITS, shield: { ...DEFAULT_SHIELD_POLICY, strikes: 1_000 } } });
    const identity = new IdentitySigner(IDENTITY_SECRET);
    authorizer = new Authorizer({ pipeline: t.core.pipeline, identity, logger: silentLogger(), trustedProxies: ["127.0.0.1/32"], now: t.clock.now, audit: t.core.audit });
    const address = await authorizer.listen(0);
    authorizerHost = `127.0.0.1:${address.port}`;
    // The same core behind a gateway: what the authorizer's refusals must look like.
    gateway = new Gateway({ pipeline: t.core.pipeline, forwarder: new Forwarder({ upstream: upstream.url }), identity, logger: silentLogger(), now: t.clock.now });
    gatewayHost = `127.0.0.1:${(await gateway.listen(0)).port}`;
    nginx = await startNginx(authorizerHost, upstream.url.replace("http://", ""), NGINX_AUTH_REQUEST_CONF);
    const created = await t.createKey({ scopes: ["read", "trade"] });
    key = { id: created.key.id, secret: created.secret ?? "" };
  });

  afterAll(async () => {
    await nginx.stop();
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

  it("a signed GET reaches the upstream with identity headers the upstream verifies, without the client's credentials or a body", async () => {
    const before = upstream.requests.length;
    const forged = { "portcullis-account": "forged", "portcullis-target": "/forged", "portcullis-refusal": "pr1.x.y", "x-original-uri": "/forged", "x-original-method": "DELETE", "x-original-body": "content-length=; transfer-encoding=" };
    const res = await send(nginx.host, "GET", "/api/v3/order?symbol=BTCUSDT", { ...signed("GET", "/api/v3/order?symbol=BTCUSDT"), ...forged });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual({ ok: true, url: "/api/v3/order?symbol=BTCUSDT" });
    expect(res.headers.ratelimit).toBeDefined();
    expect(res.headers["portcullis-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
    const got = upstream.requests.slice(before);
    expect(got).toHaveLength(1);
    const seen = got[0];
    if (seen === undefined) throw new Error("nothing reached the upstream");
    expect(seen.method).toBe("GET");
    expect(seen.rawBody.length).toBe(0);
    for (const name of ["signature", "signature-input", "x-original-uri", "x-original-method", "x-original-body", "portcullis-target", "portcullis-refusal", "content-length", "transfer-encoding"]) {
      expect(seen.headers[name], name).toBeUndefined();
    }
    expect(seen.headers["portcullis-account"]).toBe("acct-1");
    expect(seen.headers["portcullis-key-id"]).toBe(key.id);
    expect(seen.headers["portcullis-client-ip"]).toBe("127.0.0.1");
    const verify = createIdentityVerifier(IDENTITY_SECRET, { now: t.clock.now });
    expect(verify({ method: seen.method, url: seen.url, headers: seen.headers }, seen.rawBody)).toMatchObject({ ok: true, identity: { keyId: key.id, account: "acct-1", clientIp: "127.0.0.1" } });
    await t.core.audit.flush();
    const entry = readEntries(t.dataDir).find((e) => e.event === "request.allow" && e.surface === "authorizer" && e.path === "/api/v3/order");
    expect(entry).toMatchObject({ key: key.id, method: "GET" });
  });

  it("a DELETE is decided as a DELETE (the subrequest itself is a GET)", async () => {
    const url = "/api/v3/order?symbol=BTCUSDT&orderId=1";
    const before = upstream.requests.length;
    const res = await send(nginx.host, "DELETE", url, signed("DELETE", url));
    expect(res.status).toBe(200);
    const seen = upstream.requests.slice(before)[0];
    expect(seen?.method).toBe("DELETE");
    const verify = createIdentityVerifier(IDENTITY_SECRET, { now: t.clock.now });
    expect(seen === undefined ? null : verify({ method: seen.method, url: seen.url, headers: seen.headers }, seen.rawBody)).toMatchObject({ ok: true });
    // Signed as a GET, sent as a DELETE: the signature covers @method.
    const wrong = await send(nginx.host, "DELETE", url, signed("GET", url));
    expect(wrong.status).toBe(401);
    expect(upstream.requests.length).toBe(before + 1);
  });

  it("a replayed request is refused with the gateway's status, headers and body, and nothing reaches the upstream", async () => {
    const headers = signed("GET", "/api/v3/account");
    expect((await send(nginx.host, "GET", "/api/v3/account", headers)).status).toBe(200);
    const before = upstream.requests.length;
    const again = await send(nginx.host, "GET", "/api/v3/account", headers);
    expect(again.status).toBe(409);
    expect(code(again)).toBe("NONCE_REPLAYED");
    expect(again.headers["content-type"]).toBe("application/json; charset=utf-8");
    expect(again.headers["portcullis-refusal"]).toBeUndefined();
    expect(again.headers["portcullis-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
    expect(upstream.requests.length).toBe(before);
    // The gateway's answer to a replay (its own authority is signed).
    const gw = signed("GET", "/api/v3/account", { host: gatewayHost });
    expect((await send(gatewayHost, "GET", "/api/v3/account", gw)).status).toBe(200);
    const gwAgain = await send(gatewayHost, "GET", "/api/v3/account", gw);
    expect(gwAgain.status).toBe(again.status);
    expect(normal(again)).toBe(normal(gwAgain));
  });

  it("a key without the route's scope is refused SCOPE_MISSING (403)", async () => {
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
    expect(first.headers["ratelimit-policy"]).toBeDefined();
    for (let i = 0; i < 4; i++) expect((await send(nginx.host, "GET", "/api/v3/account", signed("GET", "/api/v3/account", { keyOf: k }))).status).toBe(200);
    const refused = await send(nginx.host, "GET", "/api/v3/account", signed("GET", "/api/v3/account", { keyOf: k }));
    expect(refused.status).toBe(429);
    expect(code(refused)).toBe("RATE_LIMITED");
    expect(refused.headers["retry-after"]).toMatch(/^[0-9]+$/);
    expect(refused.headers.ratelimit).toMatch(/r=0/);
    expect(refused.headers["ratelimit-policy"]).toBeDefined();
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

  describe("requests with a body are refused AUTHORIZER_BODY_UNSEEN, and nothing reaches the upstream", () => {
    it("a signed POST with a body", async () => {
      const body = JSON.stringify({ symbol: "BTCUSDT", side: "BUY", quantity: "0.01" });
      const before = upstream.requests.length;
      const res = await send(nginx.host, "POST", "/api/v3/order", signed("POST", "/api/v3/order", { body }), body);
      expect(res.status).toBe(400);
      expect(code(res)).toBe("AUTHORIZER_BODY_UNSEEN");
      expect(JSON.parse(res.text)).toMatchObject({ message: expect.stringContaining("docs/deploy/nginx.conf") as unknown });
      expect(upstream.requests.length).toBe(before);
    });

    it("a GET with a body (Content-Length)", async () => {
      const before = upstream.requests.length;
      const res = await send(nginx.host, "GET", "/api/v3/account", { ...signed("GET", "/api/v3/account"), "content-type": "application/json" }, '{"x":1}');
      expect(res.status).toBe(400);
      expect(code(res)).toBe("AUTHORIZER_BODY_UNSEEN");
      expect(upstream.requests.length).toBe(before);
    });

    it("a chunked body", async () => {
      const before = upstream.requests.length;
      const headers = Object.entries(signed("GET", "/api/v3/account")).filter(([n]) => n.toLowerCase() !== "host").map(([n, v]) => `${n}: ${v}\r\n`).join("");
      const answer = await raw(nginx.host, `GET /api/v3/account HTTP/1.1\r\nHost: ${nginx.host}\r\n${headers}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n7\r\n{"x":1}\r\n0\r\n\r\n`);
      expect(answer).toMatch(/^HTTP\/1\.1 400 /);
      expect(answer).toContain('"code":"AUTHORIZER_BODY_UNSEEN"');
      expect(upstream.requests.length).toBe(before);
    });

    it("the refusal is audited", async () => {
      await t.core.audit.flush();
      expect(readEntries(t.dataDir).find((e) => e.event === "request.deny" && e.code === "AUTHORIZER_BODY_UNSEEN")).toMatchObject({ surface: "authorizer" });
    });
  });

  it("an empty body (Content-Length: 0) is no body", async () => {
    const res = await send(nginx.host, "DELETE", "/api/v3/order?orderId=2", { ...signed("DELETE", "/api/v3/order?orderId=2"), "content-length": "0" });
    expect(res.status).toBe(200);
  });

  describe("the protocol's own paths", () => {
    it("clients reach neither the protocol, the refusal endpoint nor the subrequest location through nginx (404)", async () => {
      const base = await send(nginx.host, "GET", "/api/v3/account", signed("GET", "/api/v3/account", { keyOf: { id: generateKeyId("test"), secret: "x".repeat(32) } }));
      expect(base.status).toBe(401);
      for (const path of [REFUSAL_PATH, AUTH_REQUEST_PATH, "/_portcullis/auth", "/portcullis/v1/authz/nginx"]) {
        const res = await send(nginx.host, "GET", path, { [REFUSAL_HEADER]: "pr1.e30.AAAA", "x-original-uri": "/api/v3/account", "x-original-method": "GET" });
        expect(res.status, path).toBe(404);
        expect(res.text).not.toContain("code");
      }
    });

    it("a client's own Portcullis-Refusal header never replaces the refusal Portcullis sealed", async () => {
      const res = await send(nginx.host, "GET", "/api/v3/account", { ...signed("GET", "/api/v3/account", { keyOf: { id: generateKeyId("test"), secret: "x".repeat(32) } }), [REFUSAL_HEADER]: "pr1.forged.forged" });
      expect(res.status).toBe(401);
      expect(code(res)).toBe("KEY_UNKNOWN");
    });

    it("a forged or altered refusal token is refused AUTHORIZER_REFUSAL_INVALID by the refusal endpoint", async () => {
      // A real token, as nginx receives it from the subrequest.
      const sub = await send(authorizerHost, "GET", AUTH_REQUEST_PATH, {
        ...signed("GET", "/api/v3/account", { keyOf: { id: generateKeyId("test"), secret: "x".repeat(32) } }),
        "x-original-uri": "/api/v3/account",
        "x-original-method": "GET",
        "x-original-body": "content-length=; transfer-encoding=",
      });
      expect(sub.status).toBe(403);
      const token = String(sub.headers[REFUSAL_HEADER]);
      const ok = await send(authorizerHost, "GET", REFUSAL_PATH, { [REFUSAL_HEADER]: token });
      expect(ok.status).toBe(401);
      expect(code(ok)).toBe("KEY_UNKNOWN");
      const [v, payload, mac] = token.split(".");
      const body = JSON.parse(Buffer.from(payload ?? "", "base64url").toString()) as Record<string, unknown>;
      const altered = Buffer.from(JSON.stringify({ ...body, b: "<script>attacker</script>", s: 200 })).toString("base64url");
      for (const bad of [`${v ?? ""}.${altered}.${mac ?? ""}`, `${v ?? ""}.${payload ?? ""}.${"A".repeat(43)}`, "pr1.e30.AAAA", "garbage", ""]) {
        const res = await send(authorizerHost, "GET", REFUSAL_PATH, bad === "" ? {} : { [REFUSAL_HEADER]: bad });
        expect(res.status, bad).toBe(403);
        expect(code(res)).toBe("AUTHORIZER_REFUSAL_INVALID");
        expect(res.text).not.toContain("attacker");
      }
    });

    it("the subrequest without the expected configuration is refused: no X-Original-URI / -Method (HTTP_MALFORMED), no X-Original-Body (AUTHORIZER_BODY_UNSEEN)", async () => {
      const headers = signed("GET", "/api/v3/account", { host: authorizerHost });
      const cases: [Record<string, string>, string][] = [
        [{ "x-original-method": "GET", "x-original-body": "content-length=; transfer-encoding=" }, "HTTP_MALFORMED"],
        [{ "x-original-uri": "/api/v3/account", "x-original-body": "content-length=; transfer-encoding=" }, "HTTP_MALFORMED"],
        [{ "x-original-uri": "/api/v3/account", "x-original-method": "GET" }, "AUTHORIZER_BODY_UNSEEN"],
        [{ "x-original-uri": "/api/v3/account", "x-original-method": "GET", "x-original-body": "content-length=12; transfer-encoding=" }, "AUTHORIZER_BODY_UNSEEN"],
        [{ "x-original-uri": "/api/v3/account", "x-original-method": "GET", "x-original-body": "content-length=; transfer-encoding=gzip" }, "AUTHORIZER_BODY_UNSEEN"],
        [{ "x-original-uri": "/api/v3/account", "x-original-method": "GET", "x-original-body": "nonsense" }, "AUTHORIZER_BODY_UNSEEN"],
      ];
      for (const [extra, expected] of cases) {
        const sub = await send(authorizerHost, "GET", AUTH_REQUEST_PATH, { ...headers, ...extra });
        expect(sub.status).toBe(403);
        const opened = await send(authorizerHost, "GET", REFUSAL_PATH, { [REFUSAL_HEADER]: String(sub.headers[REFUSAL_HEADER]) });
        expect(code(opened), JSON.stringify(extra)).toBe(expected);
      }
      // A subrequest that carries bytes itself was not made by the shipped configuration either.
      const sub = await send(authorizerHost, "POST", AUTH_REQUEST_PATH, { ...headers, "x-original-uri": "/api/v3/account", "x-original-method": "GET", "x-original-body": "content-length=; transfer-encoding=" }, "x");
      const opened = await send(authorizerHost, "GET", REFUSAL_PATH, { [REFUSAL_HEADER]: String(sub.headers[REFUSAL_HEADER]) });
      expect(code(opened)).toBe("AUTHORIZER_BODY_UNSEEN");
    });
  });

  describe("refusals in each venue's dialect: the gateway's status and body", () => {
    const unknown = generateKeyId("test");
    const requests: [string, string, (host: string) => [string, string][]][] = [
      ["native", "/api/v3/account", (host) => Object.entries(signRequest({ method: "GET", url: "/api/v3/account", host, keyId: unknown, key: "x".repeat(32), created: t.clock.seconds }))],
      ["Binance", "/api/v3/allOrders?timestamp=1&signature=00", () => [["X-MBX-APIKEY", unknown]]],
      ["OKX", "/api/v5/account/balance", () => okxHeaders({ method: "GET", url: "/api/v5/account/balance", body: "", keyId: unknown, secret: "s", passphrase: "p", time: t.clock.ms })],
      ["Bybit", "/v5/account/wallet-balance", () => bybitHeaders({ method: "GET", url: "/v5/account/wallet-balance", body: "", keyId: unknown, secret: "s", time: t.clock.ms, recvWindow: "5000" })],
      ["Coinbase", "/api/v3/brokerage/accounts", (host) => coinbaseHeaders({ method: "GET", host, path: "/api/v3/brokerage/accounts", keyId: unknown, privateKey: generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey, seconds: t.clock.seconds })],
    ];
    for (const [dialect, url, headers] of requests) {
      it(`${dialect}: the same status, content type and body as the gateway`, async () => {
        const through = await send(nginx.host, "GET", url, headers(nginx.host));
        const direct = await send(gatewayHost, "GET", url, headers(gatewayHost));
        expect(through.status).toBe(direct.status);
        expect(through.headers["content-type"]).toBe(direct.headers["content-type"]);
        expect(normal(through)).toBe(normal(direct));
        expect(through.text.length).toBeGreaterThan(2);
      });
    }
  });

  it("nginx logged no error of its own", () => {
    expect(nginx.errorLog()).not.toMatch(/\[(error|crit|alert|emerg)\]/);
  });
});
