/**
 * Sessions sign native requests only (docs/sessions.md; issue 13, finding 7): a session token
 * with an HMAC from the session's secret is refused in the venue dialects, with
 * SESSION_SCHEME_NOT_ALLOWED, even when its API key may use them.
 */
import { createHmac } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RouteSpec } from "../../src/authz/routes.js";
import type { PipelineRequest } from "../../src/contract/request.js";
import { type TestGateway, makeGateway } from "../support/gateway.js";
import { signRequest } from "../support/harness.js";

const ROUTES: RouteSpec[] = [
  { method: "GET", path: "/api/v3/account", permission: "read", dialect: "binance" },
  { method: "GET", path: "/v5/account/wallet-balance", permission: "read", dialect: "bybit" },
];

let t: TestGateway;
let session: { keyid: string; secret: string };

beforeAll(async () => {
  t = await makeGateway({ routes: ROUTES, sessions: true });
  const created = await t.createKey({ scopes: ["read"], dialects: ["native", "binance", "bybit"] });
  const url = "/portcullis/v1/session";
  const headers = signRequest({ method: "POST", url, keyId: created.key.id, key: created.secret ?? "", created: t.clock.seconds });
  const res = await t.inject({ method: "POST", url, headers });
  expect(res.statusCode).toBe(201);
  session = res.json<{ keyid: string; secret: string }>();
});
afterAll(async () => {
  await t.close();
});

const hmacHex = (secret: string, text: string): string => createHmac("sha256", Buffer.from(secret, "utf8")).update(text).digest("hex");

function binanceRequest(): PipelineRequest {
  const payload = `timestamp=${t.clock.ms}`;
  return {
    method: "GET",
    url: `/api/v3/account?${payload}&signature=${hmacHex(session.secret, payload)}`,
    headers: { host: "gateway.test", "x-mbx-apikey": session.keyid },
    body: Buffer.alloc(0),
    socketAddress: "127.0.0.1",
  };
}

function bybitRequest(): PipelineRequest {
  const query = "accountType=UNIFIED";
  const timestamp = String(t.clock.ms);
  return {
    method: "GET",
    url: `/v5/account/wallet-balance?${query}`,
    headers: {
      host: "gateway.test",
      "x-bapi-api-key": session.keyid,
      "x-bapi-timestamp": timestamp,
      "x-bapi-recv-window": "5000",
      "x-bapi-sign": hmacHex(session.secret, timestamp + session.keyid + "5000" + query),
    },
    body: Buffer.alloc(0),
    socketAddress: "127.0.0.1",
  };
}

describe("a session token in a venue dialect", () => {
  it("Binance: refused with SESSION_SCHEME_NOT_ALLOWED (Binance's -2015), nothing forwarded", async () => {
    const before = t.upstream.requests.length;
    const req = binanceRequest();
    const res = await t.inject({ method: req.method, url: req.url, headers: req.headers });
    expect(res.statusCode).toBe(401);
    expect(res.json<{ code: number }>().code).toBe(-2015);
    expect(t.upstream.requests.length).toBe(before);
    expect((await t.core.verify(binanceRequest())).denial?.code).toBe("SESSION_SCHEME_NOT_ALLOWED");
  });

  it("Bybit: refused with SESSION_SCHEME_NOT_ALLOWED (Bybit's 10003), nothing forwarded", async () => {
    const before = t.upstream.requests.length;
    const req = bybitRequest();
    const res = await t.inject({ method: req.method, url: req.url, headers: req.headers });
    expect(res.json<{ retCode: number }>().retCode).toBe(10003);
    expect(t.upstream.requests.length).toBe(before);
    expect((await t.core.verify(bybitRequest())).denial?.code).toBe("SESSION_SCHEME_NOT_ALLOWED");
  });

  it("the same session still signs native requests", async () => {
    const url = "/api/v3/account";
    const headers = signRequest({ method: "GET", url, keyId: session.keyid, key: session.secret, created: t.clock.seconds });
    expect((await t.inject({ method: "GET", url, headers })).statusCode).toBe(200);
  });
});
