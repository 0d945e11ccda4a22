/**
 * The OKX dialect through the gateway's request handler (in-process inject, echo upstream): the
 * good path, and every refusal with OKX's code and HTTP status, the catalogue code behind it (from
 * the gateway's log), and nothing reaching the upstream. Requests are signed here with node:crypto,
 * independently of the gateway's code.
 */
import { createHmac } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { RouteSpec } from "../../src/authz/routes.js";
import { generateKeyId } from "../../src/contract/ids.js";
import { PassphraseCheck } from "../../src/keys/passphrase.js";
import { IDENTITY_SECRET, type TestGateway, makeGateway } from "../support/gateway.js";
import { createIdentityVerifier } from "../../src/gateway/identity.js";

const ROUTES: RouteSpec[] = [
  { method: "GET", path: "/api/v5/public/time", permission: "public", dialect: "okx" },
  { method: "GET", path: "/api/v5/account/balance", permission: "read", dialect: "okx" },
  { method: "POST", path: "/api/v5/trade/order", permission: "trade", dialect: "okx" },
  { method: "GET", path: "/api/v3/account", permission: "read" },
];
const PASSPHRASE = "Okx-Passphrase-1";
const ORDER = '{"instId":"BTC-USDT","tdMode":"cash","side":"buy","ordType":"limit","px":"59000","sz":"0.01"}';

let t: TestGateway;
let keyId: string;
let secret: string;

beforeAll(async () => {
  t = await makeGateway({ routes: ROUTES });
  const created = await t.createKey({ scopes: ["read", "trade"], dialects: ["okx"], passphrase: PASSPHRASE });
  keyId = created.key.id;
  secret = created.secret ?? "";
});
afterAll(async () => {
  await t.close();
});

interface SignSpec {
  readonly method?: string;
  readonly url?: string;
  readonly body?: string;
  readonly keyId?: string;
  readonly secret?: string;
  readonly passphrase?: string;
  /** Epoch ms (default: the gateway's clock). */
  readonly time?: number;
}

/** Signs the way OKX documents it: base64(HMAC-SHA256(secret, timestamp + METHOD + requestPath + body)). */
function okxHeaders(spec: SignSpec = {}): Record<string, string> {
  const method = spec.method ?? "GET";
  const url = spec.url ?? "/api/v5/account/balance";
  const timestamp = new Date(spec.time ?? t.clock.ms).toISOString();
  const sign = createHmac("sha256", spec.secret ?? secret)
    .update(timestamp + method + url + (spec.body ?? ""))
    .digest("base64");
  return {
    host: "gateway.test",
    "ok-access-key": spec.keyId ?? keyId,
    "ok-access-sign": sign,
    "ok-access-timestamp": timestamp,
    "ok-access-passphrase": spec.passphrase ?? PASSPHRASE,
    ...(spec.body === undefined ? {} : { "content-type": "application/json" }),
  };
}

interface Request {
  readonly method?: string;
  readonly url?: string;
  readonly headers: Record<string, string>;
  readonly payload?: string;
  readonly remoteAddress?: string;
}

function send(r: Request): ReturnType<TestGateway["inject"]> {
  return t.inject({
    method: r.method ?? "GET",
    url: r.url ?? "/api/v5/account/balance",
    headers: r.headers,
    ...(r.payload === undefined ? {} : { payload: r.payload }),
    ...(r.remoteAddress === undefined ? {} : { remoteAddress: r.remoteAddress }),
  });
}

/** The catalogue code the gateway logged for its last refusal. */
function lastLoggedDenial(): string | undefined {
  for (let i = t.logLines.length - 1; i >= 0; i--) {
    const entry = JSON.parse(t.logLines[i] ?? "{}") as { msg?: string; code?: string };
    if (entry.msg === "request denied" || entry.msg === "upstream failure") return entry.code;
  }
  return undefined;
}

/** Expects OKX's answer `{code, msg, data: []}` with `status`, for catalogue code `why`, and no upstream call. */
async function expectRefused(r: Request, expected: { status: number; code: string; why: string }): Promise<{ msg: string }> {
  const before = t.upstream.requests.length;
  const res = await send(r);
  const body = res.json<{ code: string; msg: string; data: unknown[] }>();
  expect({ status: res.statusCode, code: body.code, why: lastLoggedDenial() }).toEqual({ status: expected.status, code: expected.code, why: expected.why });
  expect(body.data).toEqual([]);
  expect(typeof body.msg).toBe("string");
  expect(Object.keys(body).sort()).toEqual(["code", "data", "msg"]);
  expect(res.headers["portcullis-request-id"]).toBeTypeOf("string");
  expect(t.upstream.requests.length).toBe(before);
  return body;
}

describe("the good path", () => {
  it("forwards a signed GET with its query, without the OKX headers, with verified identity headers", async () => {
    const url = "/api/v5/account/balance?ccy=BTC,USDT";
    const res = await send({ url, headers: okxHeaders({ url }) });
    expect(res.statusCode).toBe(200);
    const got = t.upstream.requests.at(-1);
    expect(got?.url).toBe(url);
    for (const name of ["ok-access-key", "ok-access-sign", "ok-access-timestamp", "ok-access-passphrase"]) {
      expect(got?.headers[name], name).toBeUndefined();
    }
    const verify = createIdentityVerifier(IDENTITY_SECRET, { now: t.clock.now });
    expect(verify({ method: got?.method, url: got?.url, headers: got?.headers ?? {} }, got?.rawBody ?? Buffer.alloc(0))).toMatchObject({
      ok: true,
      identity: { keyId, account: "acct-1", scopes: ["read", "trade"] },
    });
  });

  it("forwards a signed POST with its exact body", async () => {
    const res = await send({ method: "POST", url: "/api/v5/trade/order", headers: okxHeaders({ method: "POST", url: "/api/v5/trade/order", body: ORDER }), payload: ORDER });
    expect(res.statusCode).toBe(200);
    expect(t.upstream.requests.at(-1)?.body).toBe(ORDER);
  });

  it("accepts a request up to 30 s old, and one up to the future skew (1 s) ahead", async () => {
    expect((await send({ headers: okxHeaders({ time: t.clock.ms - 30_000 }) })).statusCode).toBe(200);
    expect((await send({ headers: okxHeaders({ time: t.clock.ms + 1_000 }) })).statusCode).toBe(200);
  });

  it("a key created with its own window uses it instead of OKX's 30 s", async () => {
    const { key, secret: s } = await t.createKey({ dialects: ["okx"], passphrase: PASSPHRASE, windowMs: 45_000 });
    expect((await send({ headers: okxHeaders({ keyId: key.id, secret: s ?? "", time: t.clock.ms - 44_000 }) })).statusCode).toBe(200);
    await expectRefused({ headers: okxHeaders({ keyId: key.id, secret: s ?? "", time: t.clock.ms - 46_000 }) }, { status: 401, code: "50102", why: "CREATED_TOO_OLD" });
  });

  it("a public route needs no credentials; a refusal on it is in OKX's shape", async () => {
    expect((await send({ url: "/api/v5/public/time", headers: { host: "gateway.test" } })).statusCode).toBe(200);
    await expectRefused({ url: "/api/v5/public/nope", headers: okxHeaders({ url: "/api/v5/public/nope" }) }, { status: 404, code: "404", why: "ROUTE_NOT_FOUND" });
  });
});

describe("stage 3: the OKX headers", () => {
  it("no credentials on an OKX route", async () => {
    await expectRefused({ headers: { host: "gateway.test" } }, { status: 401, code: "50103", why: "CREDENTIALS_MISSING" });
  });
  it("an empty OK-ACCESS-KEY", async () => {
    await expectRefused({ headers: { ...okxHeaders(), "ok-access-key": "" } }, { status: 401, code: "50103", why: "PARAM_MISSING" });
  });
  it("no OK-ACCESS-SIGN", async () => {
    const { "ok-access-sign": _s, ...headers } = okxHeaders();
    await expectRefused({ headers }, { status: 401, code: "50106", why: "PARAM_MISSING" });
  });
  it("no OK-ACCESS-TIMESTAMP", async () => {
    const { "ok-access-timestamp": _s, ...headers } = okxHeaders();
    await expectRefused({ headers }, { status: 401, code: "50107", why: "PARAM_MISSING" });
  });
  it("no OK-ACCESS-PASSPHRASE", async () => {
    const { "ok-access-passphrase": _s, ...headers } = okxHeaders();
    await expectRefused({ headers }, { status: 401, code: "50104", why: "PARAM_MISSING" });
  });
  it.each([
    ["epoch milliseconds", String(Date.UTC(2026, 10, 22, 12))],
    ["no milliseconds", "2026-11-22T12:00:00Z"],
    ["microseconds", "2026-11-22T12:00:00.000000Z"],
    ["an offset instead of Z", "2026-11-22T12:00:00.000+00:00"],
    ["lower-case t and z", "2026-11-22t12:00:00.000z"],
    ["an impossible date", "2026-02-30T12:00:00.000Z"],
    ["hour 24", "2026-11-22T24:00:00.000Z"],
    ["a two-digit year read as 19xx", "0026-11-22T12:00:00.000Z"],
  ])("an OK-ACCESS-TIMESTAMP that is %s", async (_name, timestamp) => {
    await expectRefused({ headers: { ...okxHeaders(), "ok-access-timestamp": timestamp } }, { status: 401, code: "50112", why: "PARAM_INVALID" });
  });
  it.each([
    ["hex", "a".repeat(64)],
    ["base64url", "_".repeat(43) + "="],
    ["too short", "AAAA"],
    ["without padding", "A".repeat(43)],
    ["with non-zero trailing bits (a second spelling of a signature)", `${"A".repeat(42)}B=`],
  ])("an OK-ACCESS-SIGN that is %s", async (_name, sign) => {
    await expectRefused({ headers: { ...okxHeaders(), "ok-access-sign": sign } }, { status: 401, code: "50113", why: "PARAM_INVALID" });
  });
  it("both OKX and Bybit credentials", async () => {
    await expectRefused({ headers: { ...okxHeaders(), "x-bapi-api-key": keyId } }, { status: 401, code: "50114", why: "CREDENTIALS_AMBIGUOUS" });
  });
  it("OKX credentials on a route that does not speak OKX", async () => {
    await expectRefused({ url: "/api/v3/account", headers: okxHeaders({ url: "/api/v3/account" }) }, { status: 401, code: "50114", why: "SCHEME_NOT_ACCEPTED" });
  });
});

describe("stage 4: the key", () => {
  it("a malformed key id", async () => {
    await expectRefused({ headers: okxHeaders({ keyId: "not-a-key" }) }, { status: 401, code: "50111", why: "KEY_ID_MALFORMED" });
  });
  it("an unknown key", async () => {
    await expectRefused({ headers: okxHeaders({ keyId: generateKeyId("test") }) }, { status: 401, code: "50111", why: "KEY_UNKNOWN" });
  });
  it("a live key on a test gateway", async () => {
    await expectRefused({ headers: okxHeaders({ keyId: generateKeyId("live") }) }, { status: 401, code: "50101", why: "KEY_ENVIRONMENT_MISMATCH" });
  });
  it("a revoked key", async () => {
    const { key, secret: s } = await t.createKey({ dialects: ["okx"], passphrase: PASSPHRASE });
    await t.core.keys.revoke(key.id, "test");
    await expectRefused({ headers: okxHeaders({ keyId: key.id, secret: s ?? "" }) }, { status: 401, code: "50111", why: "KEY_REVOKED" });
  });
  it("a suspended key", async () => {
    const { key, secret: s } = await t.createKey({ dialects: ["okx"], passphrase: PASSPHRASE });
    await t.core.keys.suspend(key.id, "test");
    await expectRefused({ headers: okxHeaders({ keyId: key.id, secret: s ?? "" }) }, { status: 400, code: "50100", why: "KEY_SUSPENDED" });
  });
  it("an expired key", async () => {
    const { key, secret: s } = await t.createKey({ dialects: ["okx"], passphrase: PASSPHRASE, expires: "1h" });
    t.clock.advance(3_600_000);
    try {
      await expectRefused({ headers: okxHeaders({ keyId: key.id, secret: s ?? "" }) }, { status: 401, code: "50111", why: "KEY_EXPIRED" });
    } finally {
      t.clock.advance(-3_600_000);
    }
  });
  it("an address outside the key's allowlist", async () => {
    const { key, secret: s } = await t.createKey({ dialects: ["okx"], passphrase: PASSPHRASE, ipAllowlist: ["198.51.100.0/24"] });
    await expectRefused({ headers: okxHeaders({ keyId: key.id, secret: s ?? "" }) }, { status: 401, code: "50110", why: "IP_NOT_ALLOWED" });
    expect((await send({ headers: okxHeaders({ keyId: key.id, secret: s ?? "" }), remoteAddress: "198.51.100.7" })).statusCode).toBe(200);
  });
  it("a key that was not issued for OKX", async () => {
    const { key, secret: s } = await t.createKey({ dialects: ["native", "bybit"] });
    await expectRefused({ headers: okxHeaders({ keyId: key.id, secret: s ?? "" }) }, { status: 401, code: "50111", why: "DIALECT_NOT_ALLOWED" });
  });
});

describe("stages 5-7: time, signature, passphrase, replay", () => {
  it("a timestamp more than 30 s old", async () => {
    await expectRefused({ headers: okxHeaders({ time: t.clock.ms - 30_001 }) }, { status: 401, code: "50102", why: "CREATED_TOO_OLD" });
  });
  it("a timestamp ahead of the clock by more than the future skew", async () => {
    await expectRefused({ headers: okxHeaders({ time: t.clock.ms + 1_001 }) }, { status: 401, code: "50102", why: "CREATED_IN_FUTURE" });
  });
  it("a signature made with another secret", async () => {
    await expectRefused({ headers: okxHeaders({ secret: "not-the-secret" }) }, { status: 401, code: "50113", why: "SIGNATURE_INVALID" });
  });
  it("a signature over another query, method or body", async () => {
    const signed = okxHeaders({ url: "/api/v5/account/balance?ccy=BTC" });
    await expectRefused({ url: "/api/v5/account/balance?ccy=ETH", headers: signed }, { status: 401, code: "50113", why: "SIGNATURE_INVALID" });
    await expectRefused({ url: "/api/v5/account/balance", headers: signed }, { status: 401, code: "50113", why: "SIGNATURE_INVALID" });
    const post = okxHeaders({ method: "POST", url: "/api/v5/trade/order", body: ORDER });
    await expectRefused({ method: "POST", url: "/api/v5/trade/order", headers: post, payload: ORDER.replace("0.01", "1.00") }, { status: 401, code: "50113", why: "SIGNATURE_INVALID" });
    await expectRefused({ method: "POST", url: "/api/v5/trade/order", headers: post, payload: `${ORDER} ` }, { status: 401, code: "50113", why: "SIGNATURE_INVALID" });
  });
  it("a wrong passphrase, after a valid signature", async () => {
    await expectRefused({ headers: okxHeaders({ passphrase: "Wrong-Passphrase" }) }, { status: 401, code: "50105", why: "PASSPHRASE_INVALID" });
    await expectRefused({ headers: okxHeaders({ passphrase: "x".repeat(65) }) }, { status: 401, code: "50105", why: "PASSPHRASE_INVALID" });
  });
  it("the passphrase is never checked for a request whose signature fails (no slow hash for strangers)", async () => {
    const { key, secret: s } = await t.createKey({ dialects: ["okx"], passphrase: PASSPHRASE });
    const spy = vi.spyOn(PassphraseCheck.prototype, "check");
    try {
      await expectRefused({ headers: okxHeaders({ keyId: key.id, secret: "wrong", passphrase: "Wrong-Passphrase" }) }, { status: 401, code: "50113", why: "SIGNATURE_INVALID" });
      expect(spy).not.toHaveBeenCalled();
      expect((await send({ headers: okxHeaders({ keyId: key.id, secret: s ?? "" }) })).statusCode).toBe(200);
      expect(spy).toHaveBeenCalledTimes(1);
    } finally {
      spy.mockRestore();
    }
  });
  it("the same signed request twice: the signature is single-use", async () => {
    const headers = okxHeaders({ url: "/api/v5/account/balance?ccy=ETH" });
    expect((await send({ url: "/api/v5/account/balance?ccy=ETH", headers })).statusCode).toBe(200);
    await expectRefused({ url: "/api/v5/account/balance?ccy=ETH", headers }, { status: 401, code: "50114", why: "NONCE_REPLAYED" });
  });
});

describe("stage 8: authorization", () => {
  it("a key without the route's permission", async () => {
    const { key, secret: s } = await t.createKey({ scopes: ["read"], dialects: ["okx"], passphrase: PASSPHRASE });
    const headers = okxHeaders({ method: "POST", url: "/api/v5/trade/order", body: ORDER, keyId: key.id, secret: s ?? "" });
    await expectRefused({ method: "POST", url: "/api/v5/trade/order", headers, payload: ORDER }, { status: 403, code: "50120", why: "SCOPE_MISSING" });
  });
});

describe("secrets stay out of the logs", () => {
  it("no log line carries the secret, the passphrase or a signature", () => {
    const all = t.logLines.join("\n");
    expect(all).not.toContain(secret);
    expect(all).not.toContain(PASSPHRASE);
    expect(all).not.toContain(okxHeaders()["ok-access-sign"]);
  });
});
