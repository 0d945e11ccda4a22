/**
 * The gateway over real sockets: body caps, HTTP-level garbage, upstream failures, hop-by-hop
 * headers, identity headers, trusted proxies, Server-Timing and graceful shutdown.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { type AddressInfo, connect } from "node:net";
import { request } from "undici";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { RouteSpec } from "../../src/authz/routes.js";
import { createIdentityVerifier, IdentitySigner } from "../../src/gateway/identity.js";
import { Forwarder } from "../../src/gateway/proxy.js";
import { Gateway } from "../../src/gateway/server.js";
import { silentLogger } from "../../src/log/logger.js";
import { TEST_ROUTES, type TestCore, makeCore, signRequest } from "../support/harness.js";
import { IDENTITY_SECRET } from "../support/gateway.js";

const ROUTES: RouteSpec[] = [...TEST_ROUTES, { method: ["GET", "POST"], path: "/public/*", permission: "public" }];

/** An upstream whose behaviour is chosen by path. */
function behaviour(req: IncomingMessage, res: ServerResponse, seen: IncomingMessage[]): void {
  seen.push(req);
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const url = req.url ?? "";
    if (url.startsWith("/public/hang")) return; // never answers
    if (url.startsWith("/public/slow")) {
      setTimeout(() => res.end("slow done"), 300);
      return;
    }
    if (url.startsWith("/public/hop")) {
      res.writeHead(200, { connection: "x-upstream-hop", "x-upstream-hop": "secret-hop", "x-kept": "yes" });
      res.end("hop");
      return;
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ url, headers: req.headers, body: Buffer.concat(chunks).toString() }));
  });
}

interface Running {
  core: TestCore;
  gateway: Gateway;
  upstream: Server;
  seen: IncomingMessage[];
  base: string;
  port: number;
}

async function start(options: { trustedProxies?: string[]; serverTiming?: boolean; timeoutMs?: number; upstream?: string; bodyLimit?: number } = {}): Promise<Running> {
  const seen: IncomingMessage[] = [];
  const upstream = createServer((req, res) => {
    behaviour(req, res, seen);
  });
  await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
  const upstreamUrl = options.upstream ?? `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  const core = await makeCore({ routes: ROUTES, trustedProxies: options.trustedProxies ?? [], timing: options.serverTiming ?? false, now: Date.now });
  const gateway = new Gateway({
    pipeline: core.core.pipeline,
    forwarder: new Forwarder({ upstream: upstreamUrl, timeoutMs: options.timeoutMs ?? 5000 }),
    identity: new IdentitySigner(IDENTITY_SECRET),
    logger: silentLogger(),
    bodyLimit: options.bodyLimit ?? 1024,
  });
  const address = await gateway.listen(0, "127.0.0.1");
  return { core, gateway, upstream, seen, base: `http://127.0.0.1:${address.port}`, port: address.port };
}

async function stop(r: Running): Promise<void> {
  await r.gateway.close(500);
  r.upstream.closeAllConnections();
  await new Promise<void>((res) => r.upstream.close(() => { res(); }));
  await r.core.cleanup();
}

/** Writes raw bytes to the gateway and returns the raw response. */
function raw(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => socket.write(bytes));
    let out = "";
    socket.on("data", (d: Buffer) => (out += d.toString("latin1")));
    socket.on("end", () => { resolve(out); });
    socket.on("close", () => { resolve(out); });
    socket.on("error", reject);
    socket.setTimeout(3000, () => socket.destroy());
  });
}

/** The body of a raw HTTP/1.1 response, de-chunked when needed. */
function bodyOf(rawResponse: string): string {
  const split = rawResponse.indexOf("\r\n\r\n");
  const head = rawResponse.slice(0, split).toLowerCase();
  let rest = rawResponse.slice(split + 4);
  if (!head.includes("transfer-encoding: chunked")) return rest;
  let body = "";
  for (;;) {
    const eol = rest.indexOf("\r\n");
    const size = parseInt(rest.slice(0, eol), 16);
    if (!(size > 0)) return body;
    body += rest.slice(eol + 2, eol + 2 + size);
    rest = rest.slice(eol + 2 + size + 2);
  }
}

function codeOf(rawResponse: string): { status: number; code: string } {
  const status = Number(rawResponse.split(" ")[1]);
  return { status, code: (JSON.parse(bodyOf(rawResponse)) as { code: string }).code };
}

describe("gateway over real sockets", () => {
  let r: Running;
  let keyId: string;
  let secret: string;
  beforeAll(async () => {
    r = await start({ serverTiming: true });
    const created = await r.core.createKey({ scopes: ["read", "trade"] });
    keyId = created.key.id;
    secret = created.secret ?? "";
  });
  afterAll(async () => {
    await stop(r);
  });

  const sign = (method: string, url: string, body?: string): Record<string, string> =>
    signRequest({ method, url, keyId, key: secret, created: Math.floor(Date.now() / 1000), host: `127.0.0.1:${r.port}`, ...(body === undefined ? {} : { body }) });

  it("forwards a signed request and adds identity headers the upstream can verify, once", async () => {
    const res = await request(`${r.base}/api/v3/account?symbol=BTCUSDT`, { headers: sign("GET", "/api/v3/account?symbol=BTCUSDT") });
    expect(res.statusCode).toBe(200);
    const echoed = (await res.body.json()) as { url: string; headers: Record<string, string>; body: string };
    expect(echoed.url).toBe("/api/v3/account?symbol=BTCUSDT");
    expect(echoed.headers["portcullis-identity"]).toMatch(/^v2=/);
    const none = Buffer.alloc(0);
    const verify = createIdentityVerifier(IDENTITY_SECRET);
    // Bound to the request: the same headers on another request do not verify.
    expect(verify({ method: "POST", url: echoed.url, headers: echoed.headers }, none)).toEqual({ ok: false, reason: "bad-signature" });
    expect(verify({ method: "GET", url: "/api/v3/order", headers: echoed.headers }, none)).toEqual({ ok: false, reason: "bad-signature" });
    expect(verify({ method: "GET", url: echoed.url, headers: { ...echoed.headers, "portcullis-account": "someone-else" } }, none)).toEqual({ ok: false, reason: "bad-signature" });
    expect(verify({ method: "GET", url: echoed.url, headers: echoed.headers }, Buffer.from("symbol=BTCUSDT"))).toEqual({ ok: false, reason: "body-mismatch" });
    expect(createIdentityVerifier("another-secret-another-secret-0123")({ method: "GET", url: echoed.url, headers: echoed.headers }, none)).toEqual({ ok: false, reason: "bad-signature" });
    expect(createIdentityVerifier(IDENTITY_SECRET, { now: () => Date.now() + 120_000 })({ method: "GET", url: echoed.url, headers: echoed.headers }, none)).toEqual({ ok: false, reason: "stale" });
    expect(verify({ method: "GET", url: echoed.url, headers: echoed.headers }, none)).toMatchObject({ ok: true, identity: { keyId, account: "acct-1", scopes: ["read", "trade"] } });
    expect(verify({ method: "GET", url: echoed.url, headers: echoed.headers }, none)).toEqual({ ok: false, reason: "replayed" });
  });

  it("identity headers captured from a forwarded order are refused again, and with another body", async () => {
    const order = '{"symbol":"BTCUSDT","side":"BUY","type":"LIMIT","quantity":"0.01","price":"50000"}';
    const res = await request(`${r.base}/api/v3/order`, { method: "POST", headers: { ...sign("POST", "/api/v3/order", order), "content-type": "application/json" }, body: order });
    expect(res.statusCode).toBe(200);
    const echoed = (await res.body.json()) as { url: string; headers: Record<string, string>; body: string };
    expect(echoed.body).toBe(order);
    const verify = createIdentityVerifier(IDENTITY_SECRET);
    const captured = { method: "POST", url: echoed.url, headers: echoed.headers };
    expect(verify(captured, Buffer.from(order))).toMatchObject({ ok: true });
    expect(verify(captured, Buffer.from(order))).toEqual({ ok: false, reason: "replayed" });
    const marketBuy = '{"symbol":"BTCUSDT","side":"BUY","type":"MARKET","quantity":"1"}';
    expect(verify(captured, Buffer.from(marketBuy))).toEqual({ ok: false, reason: "body-mismatch" });
    // A verifier that never saw the original (another upstream process) still refuses the new body.
    expect(createIdentityVerifier(IDENTITY_SECRET)(captured, Buffer.from(marketBuy))).toEqual({ ok: false, reason: "body-mismatch" });
  });

  it("strips client-sent portcullis-* headers, even on public routes", async () => {
    const res = await request(`${r.base}/public/echo`, { headers: { "portcullis-account": "victim", "portcullis-key-id": "pck_live_v1_x", "portcullis-identity": "v1=forged" } });
    const echoed = (await res.body.json()) as { headers: Record<string, string> };
    expect(Object.keys(echoed.headers).filter((h) => h.startsWith("portcullis-") && h !== "portcullis-request-id")).toEqual([]);
  });

  it("removes hop-by-hop headers in both directions", async () => {
    // Raw bytes: HTTP clients refuse to send a Connection header that names other headers.
    const out = await raw(
      r.port,
      "GET /public/echo HTTP/1.1\r\nHost: x\r\nConnection: close, x-client-hop\r\nX-Client-Hop: 1\r\nTE: trailers\r\nProxy-Authorization: Basic x\r\n\r\n",
    );
    const echoed = JSON.parse(bodyOf(out)) as { headers: Record<string, string> };
    expect(echoed.headers["x-client-hop"]).toBeUndefined();
    expect(echoed.headers["proxy-authorization"]).toBeUndefined();
    expect(echoed.headers.te).toBeUndefined();
    const hop = await request(`${r.base}/public/hop`);
    await hop.body.text();
    expect(hop.headers["x-upstream-hop"]).toBeUndefined();
    expect(hop.headers["x-kept"]).toBe("yes");
  });

  it("adds Server-Timing with every stage when enabled", async () => {
    const res = await request(`${r.base}/api/v3/account`, { headers: sign("GET", "/api/v3/account") });
    await res.body.text();
    const timing = String(res.headers["server-timing"]);
    for (const stage of ["addr", "shield", "route", "cred", "key", "fresh", "sig", "authz", "admit"]) expect(timing).toMatch(new RegExp(`${stage};dur=\\d+\\.\\d{3}`));
  });

  it("refuses a declared body above the limit with 413 before reading it", async () => {
    const res = await request(`${r.base}/api/v3/order`, { method: "POST", body: "x".repeat(2000), headers: sign("POST", "/api/v3/order", "x".repeat(2000)) });
    expect(res.statusCode).toBe(413);
    expect(((await res.body.json()) as { code: string }).code).toBe("BODY_TOO_LARGE");
  });

  it("refuses a chunked body as soon as it passes the limit", async () => {
    const out = await raw(r.port, `POST /api/v3/order HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n${"y".repeat(2048)}\r\n0\r\n\r\n`);
    expect(codeOf(out)).toEqual({ status: 413, code: "BODY_TOO_LARGE" });
  });

  it("refuses dot segments in the path", async () => {
    const out = await raw(r.port, "GET /api/v3/x/../account HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    expect(codeOf(out)).toEqual({ status: 400, code: "PATH_NOT_CANONICAL" });
  });

  it("refuses an absolute-form request target", async () => {
    const out = await raw(r.port, "GET http://evil.test/api/v3/account HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    expect(codeOf(out)).toEqual({ status: 400, code: "PATH_NOT_CANONICAL" });
  });

  it("answers unparsable HTTP with a JSON 400", async () => {
    const out = await raw(r.port, "THIS IS NOT HTTP\r\n\r\n");
    expect(codeOf(out)).toEqual({ status: 400, code: "HTTP_MALFORMED" });
  });

  it("answers oversized headers with a JSON 431", async () => {
    const out = await raw(r.port, `GET /public/echo HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`);
    expect(codeOf(out)).toEqual({ status: 431, code: "HEADERS_TOO_LARGE" });
  });

  it("answers what node cannot parse with the headers every answer carries, and a request id (found by the fuzz corpus)", async () => {
    for (const request of ["THIS IS NOT HTTP\r\n\r\n", `GET /public/echo HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`]) {
      const out = await raw(r.port, request);
      const head = out.slice(0, out.indexOf("\r\n\r\n")).toLowerCase();
      const id = /\r\nportcullis-request-id: ([0-9a-f-]{36})\r\n/.exec(head)?.[1];
      expect(id).toBeDefined();
      expect((JSON.parse(bodyOf(out)) as { requestId: string }).requestId).toBe(id);
      expect(head).toContain("\r\ncache-control: no-store\r\n");
      expect(head).toContain("\r\nx-content-type-options: nosniff\r\n");
    }
  });
});

describe("upstream failures", () => {
  let r: Running | null = null;
  afterEach(async () => {
    if (r !== null) await stop(r);
    r = null;
  });

  it("an unreachable upstream is a 502", async () => {
    const closed = createServer();
    await new Promise<void>((res) => closed.listen(0, "127.0.0.1", res));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((res) => closed.close(() => { res(); }));
    r = await start({ upstream: `http://127.0.0.1:${port}` });
    const res = await request(`${r.base}/public/echo`);
    expect(res.statusCode).toBe(502);
    expect(((await res.body.json()) as { code: string }).code).toBe("UPSTREAM_UNAVAILABLE");
  });

  it("a silent upstream is a 504", async () => {
    r = await start({ timeoutMs: 200 });
    const res = await request(`${r.base}/public/hang`);
    expect(res.statusCode).toBe(504);
    expect(((await res.body.json()) as { code: string }).code).toBe("UPSTREAM_TIMEOUT");
  });

  it("graceful shutdown lets an in-flight request finish and refuses new connections", async () => {
    r = await start();
    const inFlight = request(`${r.base}/public/slow`);
    await new Promise((res) => setTimeout(res, 50));
    const closing = r.gateway.close(5000);
    const res = await inFlight;
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe("slow done");
    await closing;
    await expect(request(`${r.base}/public/echo`)).rejects.toThrow();
  });
});

describe("trusted proxies", () => {
  let r: Running;
  beforeAll(async () => {
    r = await start({ trustedProxies: ["127.0.0.1/32"] });
  });
  afterAll(async () => {
    await stop(r);
  });

  it("believes X-Forwarded-For from a trusted proxy, for allowlists and identity", async () => {
    const { key, secret } = await r.core.createKey({ ipAllowlist: ["198.51.100.0/24"] });
    const headers = signRequest({ method: "GET", url: "/api/v3/account", keyId: key.id, key: secret ?? "", created: Math.floor(Date.now() / 1000), host: `127.0.0.1:${r.port}` });
    const refused = await request(`${r.base}/api/v3/account`, { headers });
    expect(refused.statusCode).toBe(403);
    await refused.body.text();
    const again = signRequest({ method: "GET", url: "/api/v3/account", keyId: key.id, key: secret ?? "", created: Math.floor(Date.now() / 1000), host: `127.0.0.1:${r.port}` });
    const ok = await request(`${r.base}/api/v3/account`, { headers: { ...again, "x-forwarded-for": "203.0.113.1, 198.51.100.9" } });
    expect(ok.statusCode).toBe(200);
    const echoed = (await ok.body.json()) as { headers: Record<string, string> };
    expect(echoed.headers["portcullis-client-ip"]).toBe("198.51.100.9");
    expect(echoed.headers["x-forwarded-for"]).toBe("198.51.100.9");
  });
});
