/**
 * The Bybit (v5) dialect through the gateway's request handler (in-process inject, echo
 * upstream): the good path (HMAC and RSA keys), and every refusal with Bybit's retCode and HTTP
 * status, the catalogue code behind it (from the gateway's log), and nothing reaching the
 * upstream. Requests are signed here with node:crypto, independently of the gateway's code.
 */
import { createHmac, generateKeyPairSync, sign as cryptoSign, type KeyObject } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RouteSpec } from "../../src/authz/routes.js";
import { createIdentityVerifier } from "../../src/gateway/identity.js";
import { generateKeyId } from "../../src/contract/ids.js";
import { IDENTITY_SECRET, type TestGateway, makeGateway } from "../support/gateway.js";

const ROUTES: RouteSpec[] = [
  { method: "GET", path: "/v5/market/time", permission: "public", dialect: "bybit" },
  { method: "GET", path: "/v5/account/wallet-balance", permission: "read", dialect: "bybit" },
  { method: "POST", path: "/v5/order/create", permission: "trade", dialect: "bybit" },
  { method: "GET", path: "/api/v3/account", permission: "read" },
];
const BALANCE = "/v5/account/wallet-balance?accountType=UNIFIED";
const ORDER = '{"category":"spot","symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"0.01","price":"59000"}';

let t: TestGateway;
let keyId: string;
let secret: string;
let rsaKeyId: string;
let rsaPrivate: KeyObject;

beforeAll(async () => {
  t = await makeGateway({ routes: ROUTES });
  const created = await t.createKey({ scopes: ["read", "trade"], dialects: ["bybit"] });
  keyId = created.key.id;
  secret = created.secret ?? "";
  const pair = generateKeyPairSync("rsa", { modulusLength: 2048 });
  rsaPrivate = pair.privateKey;
  const rsa = await t.createKey({
    scopes: ["read", "trade"],
    dialects: ["bybit"],
    algorithm: "rsa",
    publicKey: pair.publicKey.export({ type: "spki", format: "pem" }).toString(),
  });
  rsaKeyId = rsa.key.id;
});
afterAll(async () => {
  await t.close();
});

interface SignSpec {
  readonly method?: string;
  readonly url?: string;
  readonly body?: string;
  readonly keyId?: string;
  /** An HMAC secret, or an RSA private key. */
  readonly key?: string | KeyObject;
  /** Epoch ms (default: the gateway's clock). */
  readonly time?: number;
  /** The X-BAPI-RECV-WINDOW value; null to leave the header out (then it is not signed). */
  readonly recvWindow?: string | null;
}

/** Signs the way Bybit documents it: timestamp + key + recv_window + (query string | body). */
function bybitHeaders(spec: SignSpec = {}): Record<string, string> {
  const method = spec.method ?? "GET";
  const url = spec.url ?? BALANCE;
  const q = url.indexOf("?");
  const payload = method === "GET" ? (q < 0 ? "" : url.slice(q + 1)) : (spec.body ?? "");
  const timestamp = String(spec.time ?? t.clock.ms);
  const key = spec.keyId ?? keyId;
  const recvWindow = spec.recvWindow === undefined ? "5000" : spec.recvWindow;
  const text = timestamp + key + (recvWindow ?? "") + payload;
  const material = spec.key ?? secret;
  const sign =
    typeof material === "string" ? createHmac("sha256", material).update(text).digest("hex") : cryptoSign("sha256", Buffer.from(text), material).toString("base64");
  return {
    host: "gateway.test",
    "x-bapi-api-key": key,
    "x-bapi-sign": sign,
    "x-bapi-timestamp": timestamp,
    ...(recvWindow === null ? {} : { "x-bapi-recv-window": recvWindow }),
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
    url: r.url ?? BALANCE,
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

interface BybitBody {
  retCode: number;
  retMsg: string;
  result: unknown;
  retExtInfo: unknown;
  time: number;
}

/** Expects Bybit's answer with `status` and `retCode`, for catalogue code `why`, and no upstream call. */
async function expectRefused(r: Request, expected: { status?: number; retCode: number; why: string }): Promise<BybitBody> {
  const before = t.upstream.requests.length;
  const res = await send(r);
  const body = res.json<BybitBody>();
  expect({ status: res.statusCode, retCode: body.retCode, why: lastLoggedDenial() }).toEqual({
    status: expected.status ?? 200,
    retCode: expected.retCode,
    why: expected.why,
  });
  expect(body).toEqual({ retCode: expected.retCode, retMsg: body.retMsg, result: {}, retExtInfo: {}, time: expect.any(Number) as number });
  expect(body.retMsg.length).toBeGreaterThan(0);
  expect(res.headers["portcullis-request-id"]).toBeTypeOf("string");
  expect(t.upstream.requests.length).toBe(before);
  return body;
}

describe("the good path", () => {
  it("forwards a signed GET with its query, without the Bybit headers, with verified identity headers", async () => {
    const res = await send({ headers: bybitHeaders() });
    expect(res.statusCode).toBe(200);
    const got = t.upstream.requests.at(-1);
    expect(got?.url).toBe(BALANCE);
    for (const name of ["x-bapi-api-key", "x-bapi-sign", "x-bapi-timestamp", "x-bapi-recv-window"]) expect(got?.headers[name], name).toBeUndefined();
    const verify = createIdentityVerifier(IDENTITY_SECRET, { now: t.clock.now });
    expect(verify({ method: got?.method, url: got?.url, headers: got?.headers ?? {} }, got?.rawBody ?? Buffer.alloc(0))).toMatchObject({ ok: true, identity: { keyId, account: "acct-1" } });
  });

  it("forwards a signed POST with its exact body", async () => {
    const res = await send({ method: "POST", url: "/v5/order/create", headers: bybitHeaders({ method: "POST", url: "/v5/order/create", body: ORDER }), payload: ORDER });
    expect(res.statusCode).toBe(200);
    expect(t.upstream.requests.at(-1)?.body).toBe(ORDER);
  });

  it("without X-BAPI-RECV-WINDOW: it is not signed, and the window is Bybit's default 5000 ms", async () => {
    expect((await send({ headers: bybitHeaders({ recvWindow: null, time: t.clock.ms - 5_000 }) })).statusCode).toBe(200);
    await expectRefused({ headers: bybitHeaders({ recvWindow: null, time: t.clock.ms - 5_001 }) }, { retCode: 10002, why: "CREATED_TOO_OLD" });
  });

  it("X-BAPI-SIGN-TYPE: 2 (HMAC-SHA256), as v3-era clients send it", async () => {
    expect((await send({ headers: { ...bybitHeaders({ url: `${BALANCE}&coin=BTC` }), "x-bapi-sign-type": "2" }, url: `${BALANCE}&coin=BTC` })).statusCode).toBe(200);
  });

  it("a signature in upper-case hex", async () => {
    const headers = bybitHeaders({ url: `${BALANCE}&coin=ETH` });
    expect((await send({ url: `${BALANCE}&coin=ETH`, headers: { ...headers, "x-bapi-sign": (headers["x-bapi-sign"] ?? "").toUpperCase() } })).statusCode).toBe(200);
  });

  it("an RSA key: RSA-SHA256, base64, verified with the public key", async () => {
    const get = bybitHeaders({ keyId: rsaKeyId, key: rsaPrivate });
    expect((await send({ headers: get })).statusCode).toBe(200);
    const post = bybitHeaders({ method: "POST", url: "/v5/order/create", body: ORDER, keyId: rsaKeyId, key: rsaPrivate });
    expect((await send({ method: "POST", url: "/v5/order/create", headers: post, payload: ORDER })).statusCode).toBe(200);
  });

  it("the key's window caps the recv_window a client asks for", async () => {
    await expectRefused({ headers: bybitHeaders({ recvWindow: "20000", time: t.clock.ms - 6_000 }) }, { retCode: 10002, why: "CREATED_TOO_OLD" });
    const { key, secret: s } = await t.createKey({ dialects: ["bybit"], windowMs: 30_000 });
    expect((await send({ headers: bybitHeaders({ keyId: key.id, key: s ?? "", recvWindow: "20000", time: t.clock.ms - 19_000 }) })).statusCode).toBe(200);
    // …and a client's smaller window is honoured.
    await expectRefused({ headers: bybitHeaders({ keyId: key.id, key: s ?? "", recvWindow: "1000", time: t.clock.ms - 1_001 }) }, { retCode: 10002, why: "CREATED_TOO_OLD" });
  });

  it("a public route needs no credentials; a refusal on it is in Bybit's shape", async () => {
    expect((await send({ url: "/v5/market/time", headers: { host: "gateway.test" } })).statusCode).toBe(200);
    await expectRefused({ url: "/v5/market/nope", headers: bybitHeaders({ url: "/v5/market/nope" }) }, { status: 404, retCode: 10017, why: "ROUTE_NOT_FOUND" });
  });
});

describe("stage 3: the Bybit headers", () => {
  it("no credentials on a Bybit route", async () => {
    await expectRefused({ headers: { host: "gateway.test" } }, { retCode: 10003, why: "CREDENTIALS_MISSING" });
  });
  it("an empty X-BAPI-API-KEY", async () => {
    await expectRefused({ headers: { ...bybitHeaders(), "x-bapi-api-key": "" } }, { retCode: 10003, why: "PARAM_MISSING" });
  });
  it("no X-BAPI-SIGN", async () => {
    const { "x-bapi-sign": _s, ...headers } = bybitHeaders();
    await expectRefused({ headers }, { retCode: 10004, why: "PARAM_MISSING" });
  });
  it("no X-BAPI-TIMESTAMP", async () => {
    const { "x-bapi-timestamp": _s, ...headers } = bybitHeaders();
    await expectRefused({ headers }, { retCode: 10002, why: "PARAM_MISSING" });
  });
  it.each([["seconds with a fraction", "1795000000.5"], ["an ISO date", "2026-11-22T12:00:00.000Z"], ["negative", "-1"], ["sixteen digits", "1".repeat(16)]])(
    "an X-BAPI-TIMESTAMP that is %s",
    async (_name, timestamp) => {
      await expectRefused({ headers: { ...bybitHeaders(), "x-bapi-timestamp": timestamp } }, { retCode: 10002, why: "PARAM_INVALID" });
    },
  );
  it.each([["zero", "0"], ["negative", "-5000"], ["with a unit", "5s"], ["a fraction", "5000.5"]])("an X-BAPI-RECV-WINDOW that is %s", async (_name, recvWindow) => {
    await expectRefused({ headers: { ...bybitHeaders(), "x-bapi-recv-window": recvWindow } }, { retCode: 10002, why: "PARAM_INVALID" });
  });
  it("an X-BAPI-SIGN-TYPE other than 2", async () => {
    await expectRefused({ headers: { ...bybitHeaders(), "x-bapi-sign-type": "1" } }, { retCode: 10001, why: "PARAM_INVALID" });
  });
  it("an X-BAPI-SIGN that is neither hex nor base64", async () => {
    await expectRefused({ headers: { ...bybitHeaders(), "x-bapi-sign": "not a signature!" } }, { retCode: 10004, why: "PARAM_INVALID" });
    await expectRefused({ headers: { ...bybitHeaders(), "x-bapi-sign": "A".repeat(2049) } }, { retCode: 10004, why: "PARAM_INVALID" });
  });
  it("a GET with a body (the body would not be signed)", async () => {
    await expectRefused({ headers: bybitHeaders(), payload: "{}" }, { retCode: 10001, why: "PARAM_INVALID" });
  });
  it("a POST with a query string (the query would not be signed)", async () => {
    const url = "/v5/order/create?symbol=ETHUSDT";
    await expectRefused({ method: "POST", url, headers: bybitHeaders({ method: "POST", url, body: ORDER }), payload: ORDER }, { retCode: 10001, why: "PARAM_INVALID" });
  });
  it("both Bybit and OKX credentials (rendered by the first scheme detected, OKX)", async () => {
    const res = await send({ headers: { ...bybitHeaders(), "ok-access-key": keyId } });
    expect({ status: res.statusCode, code: res.json<{ code: string }>().code, why: lastLoggedDenial() }).toEqual({ status: 401, code: "50114", why: "CREDENTIALS_AMBIGUOUS" });
  });
  it("Bybit credentials on a route that does not speak Bybit", async () => {
    await expectRefused({ url: "/api/v3/account", headers: bybitHeaders({ url: "/api/v3/account" }) }, { retCode: 10007, why: "SCHEME_NOT_ACCEPTED" });
  });
});

describe("stage 4: the key", () => {
  it("a malformed key id", async () => {
    await expectRefused({ headers: bybitHeaders({ keyId: "not-a-key" }) }, { retCode: 10003, why: "KEY_ID_MALFORMED" });
  });
  it("an unknown key", async () => {
    await expectRefused({ headers: bybitHeaders({ keyId: generateKeyId("test") }) }, { retCode: 10003, why: "KEY_UNKNOWN" });
  });
  it("a live key on a test gateway", async () => {
    const body = await expectRefused({ headers: bybitHeaders({ keyId: generateKeyId("live") }) }, { retCode: 10003, why: "KEY_ENVIRONMENT_MISMATCH" });
    expect(body.retMsg).toContain("domain");
  });
  it("a revoked key", async () => {
    const { key, secret: s } = await t.createKey({ dialects: ["bybit"] });
    await t.core.keys.revoke(key.id, "test");
    await expectRefused({ headers: bybitHeaders({ keyId: key.id, key: s ?? "" }) }, { retCode: 10003, why: "KEY_REVOKED" });
  });
  it("a suspended key", async () => {
    const { key, secret: s } = await t.createKey({ dialects: ["bybit"] });
    await t.core.keys.suspend(key.id, "test");
    await expectRefused({ headers: bybitHeaders({ keyId: key.id, key: s ?? "" }) }, { retCode: 10003, why: "KEY_SUSPENDED" });
  });
  it("an expired key", async () => {
    const { key, secret: s } = await t.createKey({ dialects: ["bybit"], expires: "1h" });
    t.clock.advance(3_600_000);
    try {
      await expectRefused({ headers: bybitHeaders({ keyId: key.id, key: s ?? "" }) }, { retCode: 33004, why: "KEY_EXPIRED" });
    } finally {
      t.clock.advance(-3_600_000);
    }
  });
  it("an address outside the key's allowlist", async () => {
    const { key, secret: s } = await t.createKey({ dialects: ["bybit"], ipAllowlist: ["198.51.100.0/24"] });
    await expectRefused({ headers: bybitHeaders({ keyId: key.id, key: s ?? "" }) }, { retCode: 10010, why: "IP_NOT_ALLOWED" });
    expect((await send({ headers: bybitHeaders({ keyId: key.id, key: s ?? "" }), remoteAddress: "198.51.100.7" })).statusCode).toBe(200);
  });
  it("a key that was not issued for Bybit", async () => {
    const { key, secret: s } = await t.createKey({ dialects: ["native", "okx"], passphrase: "Okx-Passphrase-1" });
    await expectRefused({ headers: bybitHeaders({ keyId: key.id, key: s ?? "" }) }, { retCode: 10003, why: "DIALECT_NOT_ALLOWED" });
  });
});

describe("stages 5-7: time, signature, replay", () => {
  it("a timestamp older than the recv_window", async () => {
    await expectRefused({ headers: bybitHeaders({ time: t.clock.ms - 5_001 }) }, { retCode: 10002, why: "CREATED_TOO_OLD" });
  });
  it("a timestamp ahead of the clock by more than the future skew (Bybit: 1000 ms)", async () => {
    expect((await send({ headers: bybitHeaders({ url: `${BALANCE}&coin=USDT`, time: t.clock.ms + 1_000 }), url: `${BALANCE}&coin=USDT` })).statusCode).toBe(200);
    await expectRefused({ headers: bybitHeaders({ time: t.clock.ms + 1_001 }) }, { retCode: 10002, why: "CREATED_IN_FUTURE" });
  });
  it("a signature made with another secret", async () => {
    await expectRefused({ headers: bybitHeaders({ key: "not-the-secret" }) }, { retCode: 10004, why: "SIGNATURE_INVALID" });
  });
  it("a signature over another query, body, key or recv_window", async () => {
    const signed = bybitHeaders({ url: `${BALANCE}&coin=BTC` });
    await expectRefused({ url: `${BALANCE}&coin=ETH`, headers: signed }, { retCode: 10004, why: "SIGNATURE_INVALID" });
    const post = bybitHeaders({ method: "POST", url: "/v5/order/create", body: ORDER });
    await expectRefused({ method: "POST", url: "/v5/order/create", headers: post, payload: ORDER.replace("0.01", "1.00") }, { retCode: 10004, why: "SIGNATURE_INVALID" });
    await expectRefused({ headers: { ...signed, "x-bapi-recv-window": "4000" }, url: `${BALANCE}&coin=BTC` }, { retCode: 10004, why: "SIGNATURE_INVALID" });
  });
  it("an HMAC key's signature in base64 instead of hex", async () => {
    const headers = bybitHeaders();
    const base64 = Buffer.from(headers["x-bapi-sign"] ?? "", "hex").toString("base64");
    await expectRefused({ headers: { ...headers, "x-bapi-sign": base64 } }, { retCode: 10004, why: "SIGNATURE_INVALID" });
  });
  it("an RSA signature made with another private key, or spelled in non-canonical base64 or in hex", async () => {
    const other = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
    await expectRefused({ headers: bybitHeaders({ keyId: rsaKeyId, key: other }) }, { retCode: 10004, why: "SIGNATURE_INVALID" });
    const headers = bybitHeaders({ keyId: rsaKeyId, key: rsaPrivate, url: `${BALANCE}&coin=ETH` });
    const sign = headers["x-bapi-sign"] ?? "";
    await expectRefused({ url: `${BALANCE}&coin=ETH`, headers: { ...headers, "x-bapi-sign": sign.replace(/=+$/, "") } }, { retCode: 10004, why: "SIGNATURE_INVALID" });
    const hex = Buffer.from(sign, "base64").toString("hex");
    await expectRefused({ url: `${BALANCE}&coin=ETH`, headers: { ...headers, "x-bapi-sign": hex } }, { retCode: 10004, why: "SIGNATURE_INVALID" });
  });
  it("the same signed request twice, in either hex case: the signature is single-use", async () => {
    const url = `${BALANCE}&coin=BTC,ETH`;
    const headers = bybitHeaders({ url });
    expect((await send({ url, headers })).statusCode).toBe(200);
    await expectRefused({ url, headers }, { retCode: 10014, why: "NONCE_REPLAYED" });
    await expectRefused({ url, headers: { ...headers, "x-bapi-sign": (headers["x-bapi-sign"] ?? "").toUpperCase() } }, { retCode: 10014, why: "NONCE_REPLAYED" });
  });
  it("the same RSA-signed request twice", async () => {
    const url = `${BALANCE}&coin=USDT,BTC`;
    const headers = bybitHeaders({ url, keyId: rsaKeyId, key: rsaPrivate });
    expect((await send({ url, headers })).statusCode).toBe(200);
    await expectRefused({ url, headers }, { retCode: 10014, why: "NONCE_REPLAYED" });
  });
});

describe("stage 8: authorization", () => {
  it("a key without the route's permission", async () => {
    const { key, secret: s } = await t.createKey({ scopes: ["read"], dialects: ["bybit"] });
    const headers = bybitHeaders({ method: "POST", url: "/v5/order/create", body: ORDER, keyId: key.id, key: s ?? "" });
    await expectRefused({ method: "POST", url: "/v5/order/create", headers, payload: ORDER }, { retCode: 10005, why: "SCOPE_MISSING" });
  });
});

describe("secrets stay out of the logs", () => {
  it("no log line carries the secret or a signature", () => {
    const all = t.logLines.join("\n");
    expect(all).not.toContain(secret);
    expect(all).not.toContain(bybitHeaders()["x-bapi-sign"]);
  });
});
