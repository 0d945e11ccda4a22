/**
 * The Binance dialect through the gateway's request handler (in-process inject, a clock the test
 * controls): requests signed the way Binance's documentation says, and every refusal the dialect
 * can give, each asserting Binance's code and HTTP status and that nothing reached the upstream.
 */
import { createHmac, generateKeyPairSync, sign as cryptoSign, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Response } from "light-my-request";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RouteSpec } from "../../src/authz/routes.js";
import { createBinanceScheme } from "../../src/dialects/binance/index.js";
import { binanceErrorFor } from "../../src/dialects/binance/errors.js";
import { formDecode, isFormBody } from "../../src/dialects/binance/params.js";
import { webSocketSignaturePayload } from "../../src/dialects/binance/signature.js";
import { ERROR_CODES, type ErrorCode, deny } from "../../src/errors/catalogue.js";
import { generateKeyId } from "../../src/contract/ids.js";
import { createIdentityVerifier } from "../../src/gateway/identity.js";
import { IDENTITY_SECRET, type TestGateway, makeGateway } from "../support/gateway.js";
import { signRequest } from "../support/harness.js";
import { replayOnlyHot } from "../support/hot.js";

const ROUTES: RouteSpec[] = [
  { method: "GET", path: "/api/v3/time", permission: "public", dialect: "binance" },
  { method: "GET", path: "/api/v3/account", permission: "read", weight: 20, dialect: "binance" },
  { method: "GET", path: "/api/v3/order", permission: "read", weight: 4, dialect: "binance" },
  { method: "POST", path: "/api/v3/order", permission: "trade", tags: ["order"], dialect: "binance" },
  { method: "DELETE", path: "/api/v3/order", permission: "trade", tags: ["cancel"], dialect: "binance" },
  { method: "GET", path: "/native/only", permission: "read" },
];

let t: TestGateway;
let hmac: { id: string; secret: string };
let readOnly: { id: string; secret: string };
let wide: { id: string; secret: string };
let nativeOnly: { id: string; secret: string };
let ed: { id: string; privateKey: KeyObject };
let rsa: { id: string; privateKey: KeyObject };

function hmacHex(secret: string, payload: string | Buffer): string {
  return createHmac("sha256", Buffer.from(secret, "utf8")).update(payload).digest("hex");
}

/** `params&timestamp=<ts>` and its signature appended, as ccxt and the connector send it. */
function signed(params: string, secret: string, ts: number | string = t.clock.ms, extra = ""): string {
  const payload = `${params}${params === "" ? "" : "&"}timestamp=${String(ts)}${extra}`;
  return `${payload}&signature=${hmacHex(secret, payload)}`;
}

async function hmacKey(input: Record<string, unknown> = {}): Promise<{ id: string; secret: string }> {
  const created = await t.createKey({ dialects: ["binance"], ...input });
  return { id: created.key.id, secret: created.secret ?? "" };
}

beforeAll(async () => {
  t = await makeGateway({ routes: ROUTES });
  hmac = await hmacKey();
  readOnly = await hmacKey({ scopes: ["read"] });
  wide = await hmacKey({ windowMs: 60_000 });
  nativeOnly = await hmacKey({ dialects: ["native"] });
  const edPair = generateKeyPairSync("ed25519");
  const edKey = await t.createKey({
    dialects: ["binance"],
    algorithm: "ed25519",
    publicKey: edPair.publicKey.export({ type: "spki", format: "pem" }).toString(),
  });
  ed = { id: edKey.key.id, privateKey: edPair.privateKey };
  const rsaPair = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const rsaKey = await t.createKey({
    dialects: ["binance"],
    algorithm: "rsa",
    publicKey: rsaPair.publicKey.export({ type: "spki", format: "pem" }).toString(),
  });
  rsa = { id: rsaKey.key.id, privateKey: rsaPair.privateKey };
});
afterAll(async () => {
  await t.close();
});

interface Call {
  readonly method?: "GET" | "POST" | "DELETE";
  readonly url: string;
  readonly key?: string | null;
  readonly body?: string | Buffer;
  readonly headers?: Record<string, string>;
  readonly remoteAddress?: string;
}

function call(c: Call): Promise<Response> {
  const headers: Record<string, string> = { host: "gateway.test", ...c.headers };
  if (c.key !== null) headers["x-mbx-apikey"] = c.key ?? hmac.id;
  if (c.body !== undefined && headers["content-type"] === undefined) headers["content-type"] = "application/x-www-form-urlencoded";
  return t.inject({
    method: c.method ?? "GET",
    url: c.url,
    headers,
    ...(c.body === undefined ? {} : { payload: c.body }),
    ...(c.remoteAddress === undefined ? {} : { remoteAddress: c.remoteAddress }),
  });
}

/** Asserts a refusal in Binance's shape, and that nothing reached the upstream. */
async function refused(c: Call, status: number, code: number, msg?: string): Promise<Response> {
  const before = t.upstream.requests.length;
  const res = await call(c);
  const body = res.json<{ code: number; msg: string }>();
  expect({ status: res.statusCode, code: body.code }).toEqual({ status, code });
  expect(Object.keys(body).sort()).toEqual(["code", "msg"]);
  if (msg !== undefined) expect(body.msg).toBe(msg);
  expect(res.headers["content-type"]).toMatch(/^application\/json/);
  expect(t.upstream.requests.length).toBe(before);
  return res;
}

async function allowed(c: Call): Promise<Response> {
  const before = t.upstream.requests.length;
  const res = await call(c);
  expect(res.statusCode, res.payload).toBe(200);
  expect(t.upstream.requests.length).toBe(before + 1);
  return res;
}

describe("signed requests that pass", () => {
  it("HMAC in the query string (GET): forwarded without its credentials (X-MBX-APIKEY, signature), with the verified identity", async () => {
    const payload = `omitZeroBalances=true&timestamp=${String(t.clock.ms)}`;
    await allowed({ url: `/api/v3/account?${payload}&signature=${hmacHex(hmac.secret, payload)}` });
    const got = t.upstream.requests.at(-1);
    expect(got?.url).toBe(`/api/v3/account?${payload}`);
    expect(got?.headers["x-mbx-apikey"]).toBeUndefined();
    expect(got?.headers["portcullis-account"]).toBe("acct-1");
    expect(got?.headers["portcullis-key-id"]).toBe(hmac.id);
    expect(got?.headers["portcullis-identity"]).toBeDefined();
  });

  it("HMAC in a form body (POST, as ccxt sends it): the body reaches the upstream exactly as signed, without its signature", async () => {
    const body = signed("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.001&price=50000", hmac.secret);
    await allowed({ method: "POST", url: "/api/v3/order", body });
    expect(t.upstream.requests.at(-1)?.body).toBe(body.slice(0, body.indexOf("&signature=")));
    expect(t.upstream.requests.at(-1)?.headers["content-length"]).toBe(String(body.indexOf("&signature=")));
    // The identity headers cover the body as forwarded (without the signature), not as the client sent it.
    const got = t.upstream.requests.at(-1);
    const upstreamRequest = { method: got?.method, url: got?.url, headers: got?.headers ?? {} };
    const verify = createIdentityVerifier(IDENTITY_SECRET, { now: t.clock.now });
    expect(verify(upstreamRequest, Buffer.from(body))).toEqual({ ok: false, reason: "body-mismatch" });
    expect(verify(upstreamRequest, got?.rawBody ?? Buffer.alloc(0))).toMatchObject({ ok: true, identity: { keyId: hmac.id, account: "acct-1" } });
  });

  it("mixed query string and body: the payload is the query concatenated with the body, no separator", async () => {
    const query = "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC";
    const bodyPayload = `quantity=0.001&price=50000&recvWindow=5000&timestamp=${t.clock.ms}`;
    const body = `${bodyPayload}&signature=${hmacHex(hmac.secret, query + bodyPayload)}`;
    await allowed({ method: "POST", url: `/api/v3/order?${query}`, body });
  });

  it("the signature in the query and other parameters in the body", async () => {
    const query = `symbol=BTCUSDT&orderId=1&timestamp=${t.clock.ms}`;
    const body = "newClientOrderId=abc";
    const url = `/api/v3/order?${query}&signature=${hmacHex(hmac.secret, query + body)}`;
    await allowed({ method: "DELETE", url, body });
    expect(t.upstream.requests.at(-1)).toMatchObject({ url: `/api/v3/order?${query}`, body });
  });

  it("a query string that was only the signature is forwarded as the bare path", async () => {
    const body = `timestamp=${String(t.clock.ms)}`;
    await allowed({ method: "POST", url: `/api/v3/order?signature=${hmacHex(hmac.secret, body)}`, body });
    expect(t.upstream.requests.at(-1)).toMatchObject({ url: "/api/v3/order", body });
  });

  it("the signature first, and an upper-case hex signature (Binance: HMAC signatures are case-insensitive)", async () => {
    const payload = `symbol=BTCUSDT&timestamp=${t.clock.ms}`;
    await allowed({ url: `/api/v3/order?signature=${hmacHex(hmac.secret, payload)}&${payload}` });
    expect(t.upstream.requests.at(-1)?.url).toBe(`/api/v3/order?${payload}`);
    const other = `symbol=ETHUSDT&timestamp=${t.clock.ms}`;
    await allowed({ url: `/api/v3/order?${other}&signature=${hmacHex(hmac.secret, other).toUpperCase()}` });
  });

  it("percent-encoded non-ASCII values are signed as sent (not decoded)", async () => {
    const query = signed("symbol=%EF%BC%91%EF%BC%92%EF%BC%93", hmac.secret);
    await allowed({ url: `/api/v3/order?${query}` });
  });

  it("raw UTF-8 bytes in a form body are signed as the exact bytes", async () => {
    const payload = Buffer.from(`label=１２３&timestamp=${t.clock.ms}`, "utf8");
    const body = Buffer.concat([payload, Buffer.from(`&signature=${hmacHex(hmac.secret, payload)}`)]);
    await allowed({ method: "POST", url: "/api/v3/order", body, headers: { "content-type": "application/x-www-form-urlencoded; charset=UTF-8" } });
  });

  it("a JSON body is covered by the signature in the query string (it is not read for parameters)", async () => {
    const body = '{"symbol":"BTCUSDT"}';
    const query = `timestamp=${t.clock.ms}`;
    await allowed({
      method: "POST",
      url: `/api/v3/order?${query}&signature=${hmacHex(hmac.secret, query + body)}`,
      body,
      headers: { "content-type": "application/json" },
    });
  });

  it("Ed25519: base64, percent-encoded in the query string", async () => {
    const payload = `symbol=BTCUSDT&timestamp=${t.clock.ms}`;
    const signature = cryptoSign(null, Buffer.from(payload), ed.privateKey).toString("base64");
    await allowed({ url: `/api/v3/account?${payload}&signature=${encodeURIComponent(signature)}`, key: ed.id });
  });

  it("Ed25519 in a form body", async () => {
    const payload = `symbol=BTCUSDT&side=SELL&type=MARKET&quantity=0.01&timestamp=${t.clock.ms}`;
    const signature = cryptoSign(null, Buffer.from(payload), ed.privateKey).toString("base64");
    await allowed({ method: "POST", url: "/api/v3/order", body: `${payload}&signature=${encodeURIComponent(signature)}`, key: ed.id });
  });

  it("RSA (PKCS#1 v1.5, SHA-256): base64, percent-encoded", async () => {
    const payload = `symbol=BTCUSDT&side=SELL&type=LIMIT&timeInForce=GTC&quantity=1&price=0.2&timestamp=${t.clock.ms}&recvWindow=5000`;
    const signature = cryptoSign("sha256", Buffer.from(payload), rsa.privateKey).toString("base64");
    await allowed({ method: "POST", url: `/api/v3/order?${payload}&signature=${encodeURIComponent(signature)}`, key: rsa.id });
  });

  it("a microsecond timestamp, and a fractional recvWindow", async () => {
    await allowed({ url: `/api/v3/account?${signed("", hmac.secret, t.clock.ms * 1000 + 123)}` });
    await allowed({ url: `/api/v3/account?${signed("recvWindow=4999.5", hmac.secret, t.clock.ms - 4999)}` });
  });

  it("a public route with X-MBX-APIKEY (the connector sends it everywhere) needs no signature", async () => {
    await allowed({ url: "/api/v3/time" });
  });

  it("freshness at the edges: Binance's timestamp < now + 1000 and now - timestamp <= recvWindow", async () => {
    await allowed({ url: `/api/v3/account?${signed("", hmac.secret, t.clock.ms + 999)}` });
    await allowed({ url: `/api/v3/account?${signed("recvWindow=3000", hmac.secret, t.clock.ms - 3000)}` });
    await allowed({ url: `/api/v3/account?${signed("", hmac.secret, t.clock.ms - 5000)}` });
  });

  it("a key whose window is wider lets recvWindow up to 60000 through", async () => {
    await allowed({ url: `/api/v3/account?${signed("recvWindow=60000", wide.secret, t.clock.ms - 59_000)}`, key: wide.id });
  });
});

describe("refusals: the API key (-2014 / -2015, HTTP 401)", () => {
  it("no X-MBX-APIKEY on a signed route: -2014 in Binance's shape (the route's dialect renders it)", async () => {
    await refused({ url: `/api/v3/account?${signed("", hmac.secret)}`, key: null }, 401, -2014, "API-key format invalid.");
  });

  it("an empty or malformed key: -2014", async () => {
    await refused({ url: `/api/v3/account?${signed("", hmac.secret)}`, key: "" }, 401, -2014);
    await refused({ url: `/api/v3/account?${signed("", hmac.secret)}`, key: "not-a-key" }, 401, -2014);
  });

  it("an unknown key: -2015", async () => {
    await refused({ url: `/api/v3/account?${signed("", hmac.secret)}`, key: generateKeyId("test") }, 401, -2015, "Invalid API-key, IP, or permissions for action.");
  });

  it("a key of the other environment: -2015", async () => {
    await refused({ url: `/api/v3/account?${signed("", hmac.secret)}`, key: generateKeyId("live") }, 401, -2015);
  });

  it("a key not issued for the binance dialect: -2015", async () => {
    await refused({ url: `/api/v3/account?${signed("", nativeOnly.secret)}`, key: nativeOnly.id }, 401, -2015);
  });

  it("a key without the route's permission (read-only key placing an order): -2015", async () => {
    const body = signed("symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.001", readOnly.secret);
    await refused({ method: "POST", url: "/api/v3/order", body, key: readOnly.id }, 401, -2015);
    // ...while the same key may read.
    await allowed({ url: `/api/v3/account?${signed("", readOnly.secret)}`, key: readOnly.id });
  });

  it("a Binance-signed request on a route that does not speak Binance: -2015", async () => {
    await refused({ url: `/native/only?${signed("", hmac.secret)}` }, 401, -2015);
  });

  it("a suspended, a revoked and an expired key: -2015", async () => {
    const suspended = await hmacKey();
    await t.core.keys.suspend(suspended.id, "test");
    await refused({ url: `/api/v3/account?${signed("", suspended.secret)}`, key: suspended.id }, 401, -2015);
    const revoked = await hmacKey();
    await t.core.keys.revoke(revoked.id, "test");
    await refused({ url: `/api/v3/account?${signed("", revoked.secret)}`, key: revoked.id }, 401, -2015);
    const expiring = await hmacKey({ expires: t.clock.ms + 1000 });
    t.clock.advance(1000);
    await refused({ url: `/api/v3/account?${signed("", expiring.secret)}`, key: expiring.id }, 401, -2015);
  });

  it("a key used from an address outside its allowlist: -2015", async () => {
    const pinned = await hmacKey({ ipAllowlist: ["10.0.0.0/8"] });
    await refused({ url: `/api/v3/account?${signed("", pinned.secret)}`, key: pinned.id }, 401, -2015);
    await allowed({ url: `/api/v3/account?${signed("", pinned.secret)}`, key: pinned.id, remoteAddress: "10.1.2.3" });
  });
});

describe("refusals: the signing parameters (-1100, -1101, -1102, -1105, -1131; HTTP 400)", () => {
  it("no signature, or an empty one: -1102 naming it", async () => {
    const msg = "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.";
    await refused({ url: `/api/v3/account?timestamp=${t.clock.ms}` }, 400, -1102, msg);
    await refused({ url: `/api/v3/account?timestamp=${t.clock.ms}&signature=` }, 400, -1102, msg);
    await refused({ url: "/api/v3/account" }, 400, -1102, msg);
  });

  it("no timestamp, or an empty one: -1102 naming it", async () => {
    const msg = "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.";
    await refused({ url: `/api/v3/account?a=1&signature=${hmacHex(hmac.secret, "a=1")}` }, 400, -1102, msg);
    await refused({ url: `/api/v3/account?timestamp=&signature=${hmacHex(hmac.secret, "timestamp=")}` }, 400, -1102, msg);
    await refused({ url: `/api/v3/account?timestamp&signature=${hmacHex(hmac.secret, "timestamp")}` }, 400, -1102, msg);
  });

  it("a signing parameter sent twice (in one part, across query and body, or percent-encoded): -1101", async () => {
    const msg = "Duplicate values for a parameter detected.";
    const ts = t.clock.ms;
    await refused({ url: `/api/v3/account?${signed(`timestamp=${ts}`, hmac.secret)}` }, 400, -1101, msg);
    await refused({ url: `/api/v3/account?${signed("recvWindow=5000&recvWindow=6000", hmac.secret)}` }, 400, -1101, msg);
    await refused({ url: `/api/v3/account?${signed("", hmac.secret)}&signature=00` }, 400, -1101, msg);
    await refused({ url: `/api/v3/account?${signed("%74imestamp=1", hmac.secret)}` }, 400, -1101, msg);
    await refused({ method: "POST", url: `/api/v3/order?timestamp=${ts}`, body: signed("symbol=BTCUSDT", hmac.secret) }, 400, -1101, msg);
    await refused(
      { method: "POST", url: `/api/v3/order?signature=${"0".repeat(64)}`, body: signed("symbol=BTCUSDT", hmac.secret) },
      400,
      -1101,
      msg,
    );
  });

  it("a timestamp that is not 1-20 digits: -1100", async () => {
    for (const bad of ["abc", "1.5", "-1", "%31%32", "+1", "1".repeat(21)]) {
      await refused({ url: `/api/v3/account?${signed("", hmac.secret, bad)}` }, 400, -1100, "Illegal characters found in parameter 'timestamp'; legal range is '^[0-9]{1,20}$'.");
    }
  });

  it("a malformed recvWindow: -1100; an empty one: -1105; one above 60000: -1131", async () => {
    for (const bad of ["abc", "1.2345", "-5", "5000.", ".5", "1e3"]) {
      await refused({ url: `/api/v3/account?${signed(`recvWindow=${bad}`, hmac.secret)}` }, 400, -1100);
    }
    await refused({ url: `/api/v3/account?${signed("recvWindow=", hmac.secret)}` }, 400, -1105, "Parameter 'recvWindow' was empty.");
    await refused({ url: `/api/v3/account?${signed("recvWindow=60000.001", hmac.secret)}` }, 400, -1131, "'recvWindow' must be less than 60000.");
  });
});

describe("refusals: freshness (-1021, HTTP 400)", () => {
  it("older than recvWindow (default 5000)", async () => {
    const msg = "Timestamp for this request is outside of the recvWindow.";
    await refused({ url: `/api/v3/account?${signed("", hmac.secret, t.clock.ms - 5001)}` }, 400, -1021, msg);
    await refused({ url: `/api/v3/account?${signed("recvWindow=1000", hmac.secret, t.clock.ms - 1001)}` }, 400, -1021, msg);
    await refused({ url: `/api/v3/account?${signed("recvWindow=1000.5", hmac.secret, t.clock.ms - 1001)}` }, 400, -1021, msg);
  });

  it("1000 ms or more ahead of the gateway's clock", async () => {
    const msg = "Timestamp for this request was 1000ms ahead of the server's time.";
    await refused({ url: `/api/v3/account?${signed("", hmac.secret, t.clock.ms + 1000)}` }, 400, -1021, msg);
    await refused({ url: `/api/v3/account?${signed("", hmac.secret, (t.clock.ms + 2000) * 1000)}` }, 400, -1021, msg);
  });

  it("the key's window caps recvWindow (the operator's policy wins over the client's)", async () => {
    await refused({ url: `/api/v3/account?${signed("recvWindow=60000", hmac.secret, t.clock.ms - 10_000)}` }, 400, -1021);
  });
});

describe("refusals: the signature (-1022, HTTP 400)", () => {
  const msg = "Signature for this request is not valid.";

  it("signed with another secret", async () => {
    await refused({ url: `/api/v3/account?${signed("", readOnly.secret)}` }, 400, -1022, msg);
  });

  it("a parameter changed after signing, or re-encoded", async () => {
    const payload = `symbol=BTCUSDT&timestamp=${t.clock.ms}`;
    const signature = hmacHex(hmac.secret, payload);
    await refused({ url: `/api/v3/order?symbol=ETHUSDT&timestamp=${t.clock.ms}&signature=${signature}` }, 400, -1022, msg);
    const encoded = `symbol=%EF%BC%91&timestamp=${t.clock.ms}`;
    await refused({ url: `/api/v3/order?symbol=%ef%bc%91&timestamp=${t.clock.ms}&signature=${hmacHex(hmac.secret, encoded)}` }, 400, -1022, msg);
  });

  it("a body changed after signing", async () => {
    const payload = `symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.001&timestamp=${t.clock.ms}`;
    const signature = hmacHex(hmac.secret, payload);
    await refused({ method: "POST", url: "/api/v3/order", body: `${payload.replace("0.001", "1")}&signature=${signature}` }, 400, -1022, msg);
  });

  it("not hex for an HMAC key, or the wrong length", async () => {
    for (const bad of ["zz".repeat(32), "ab".repeat(31), "ab".repeat(33), `${"0".repeat(63)}g`]) {
      await refused({ url: `/api/v3/account?timestamp=${t.clock.ms}&signature=${bad}` }, 400, -1022, msg);
    }
  });

  it("Ed25519: a wrong signature, an unencoded `+` (a space once decoded) and non-canonical base64", async () => {
    const payload = `symbol=BTCUSDT&timestamp=${t.clock.ms}`;
    const good = cryptoSign(null, Buffer.from(payload), ed.privateKey).toString("base64");
    const other = cryptoSign(null, Buffer.from(`${payload}0`), ed.privateKey).toString("base64");
    await refused({ url: `/api/v3/account?${payload}&signature=${encodeURIComponent(other)}`, key: ed.id }, 400, -1022, msg);
    // The 86th character carries 2 bits: flipping an unused one is the same bytes, spelled differently.
    const last = good.charAt(85);
    const respelled = `${good.slice(0, 85)}${String.fromCharCode(last.charCodeAt(0) + 1)}==`;
    expect(Buffer.from(respelled, "base64").equals(Buffer.from(good, "base64"))).toBe(true);
    await refused({ url: `/api/v3/account?${payload}&signature=${encodeURIComponent(respelled)}`, key: ed.id }, 400, -1022, msg);
    if (good.includes("+")) await refused({ url: `/api/v3/account?${payload}&signature=${good}`, key: ed.id }, 400, -1022, msg);
    await refused({ url: `/api/v3/account?${payload}&signature=${"ab".repeat(32)}`, key: ed.id }, 400, -1022, msg);
  });

  it("RSA: a signature by another key", async () => {
    const payload = `symbol=BTCUSDT&timestamp=${t.clock.ms}`;
    const otherKey = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
    const signature = cryptoSign("sha256", Buffer.from(payload), otherKey).toString("base64");
    await refused({ url: `/api/v3/account?${payload}&signature=${encodeURIComponent(signature)}`, key: rsa.id }, 400, -1022, msg);
  });
});

describe("refusals: replay (-1021, HTTP 400)", () => {
  it("a captured request is accepted once, whatever the case of its hex signature", async () => {
    const url = `/api/v3/account?${signed("replay=1", hmac.secret)}`;
    await allowed({ url });
    const res = await refused({ url }, 400, -1021);
    expect(res.json<{ msg: string }>().msg).toContain("already received");
    const upper = url.replace(/signature=([0-9a-f]+)$/, (_m, hex: string) => `signature=${hex.toUpperCase()}`);
    expect(upper).not.toBe(url);
    await refused({ url: upper }, 400, -1021);
  });

  it("a captured signature cannot be spent again on another route, or moved into the body", async () => {
    const query = signed("symbol=BTCUSDT&orderId=7", hmac.secret);
    await allowed({ url: `/api/v3/order?${query}` });
    // Binance's signature does not cover the method or path: the single-use rule is what stops this.
    await refused({ method: "DELETE", url: `/api/v3/order?${query}` }, 400, -1021);
    const [params = "", signature = ""] = query.split("&signature=");
    await refused({ method: "DELETE", url: `/api/v3/order?${params}`, body: `signature=${signature}` }, 400, -1021);
  });

  it("a captured Ed25519 request too (also spelled with lower-case percent-escapes)", async () => {
    const payload = `replay=2&timestamp=${t.clock.ms}`;
    const signature = encodeURIComponent(cryptoSign(null, Buffer.from(payload), ed.privateKey).toString("base64"));
    await allowed({ url: `/api/v3/account?${payload}&signature=${signature}`, key: ed.id });
    await refused({ url: `/api/v3/account?${payload}&signature=${signature}`, key: ed.id }, 400, -1021);
    const lower = signature.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase());
    await refused({ url: `/api/v3/account?${payload}&signature=${lower}`, key: ed.id }, 400, -1021);
  });
});

describe("refusals: everything else, in Binance's shape", () => {
  it("an unmapped path with X-MBX-APIKEY: 404 -1020", async () => {
    await refused({ url: `/api/v3/nothing?${signed("", hmac.secret)}` }, 404, -1020);
  });

  it("an unmapped path without credentials is the native 404 (no venue is known)", async () => {
    const res = await call({ url: "/api/v3/nothing", key: null });
    expect(res.statusCode).toBe(404);
    expect(res.json<{ code: string }>().code).toBe("ROUTE_NOT_FOUND");
  });

  it("a natively signed request on a Binance route is answered natively", async () => {
    const native = await t.createKey({ dialects: ["native", "binance"] });
    const headers = signRequest({ method: "GET", url: "/api/v3/account", keyId: native.key.id, key: native.secret ?? "", created: t.clock.seconds });
    const ok = await call({ url: "/api/v3/account", key: null, headers });
    expect(ok.statusCode).toBe(200);
    const both = await call({ url: "/api/v3/account", headers });
    expect(both.json<{ code: string }>().code).toBe("CREDENTIALS_AMBIGUOUS");
  });

  it("a full nonce store: 429 -1003 with Retry-After", async () => {
    const g = await makeGateway({ routes: ROUTES, hot: replayOnlyHot(() => "full") });
    try {
      const created = await g.createKey({ dialects: ["binance"] });
      const res = await g.inject({
        method: "GET",
        url: `/api/v3/account?${signed("", created.secret ?? "", g.clock.ms)}`,
        headers: { host: "gateway.test", "x-mbx-apikey": created.key.id },
      });
      expect(res.statusCode).toBe(429);
      expect(res.json()).toEqual({ code: -1003, msg: "Too many requests queued." });
      expect(res.headers["retry-after"]).toBe("1");
    } finally {
      await g.close();
    }
  });

  it("an unreachable upstream: 502 -1001", async () => {
    const g = await makeGateway({ routes: ROUTES }, { upstreamUrl: "http://127.0.0.1:9" });
    try {
      const created = await g.createKey({ dialects: ["binance"] });
      const res = await g.inject({
        method: "GET",
        url: `/api/v3/account?${signed("", created.secret ?? "", g.clock.ms)}`,
        headers: { host: "gateway.test", "x-mbx-apikey": created.key.id },
      });
      expect(res.statusCode).toBe(502);
      expect(res.json<{ code: number }>().code).toBe(-1001);
    } finally {
      await g.close();
    }
  });

  it("every catalogue code renders as a Binance error: a negative code, Binance's statuses, no request detail", () => {
    const scheme = createBinanceScheme({ scheme: "http", futureSkewMs: 1000 });
    const seen = new Set<number>();
    for (const code of ERROR_CODES) {
      const rendered = scheme.render(deny(code, "secret detail"), "req-1");
      const body = JSON.parse(rendered.body) as { code: number; msg: string };
      expect(Object.keys(body).sort()).toEqual(["code", "msg"]);
      expect(body.code, code).toBeLessThan(0);
      expect(rendered.body).not.toContain("secret detail");
      expect(rendered.body).not.toContain("req-1");
      expect([400, 401, 404, 413, 418, 429, 431, 500, 502, 503, 504]).toContain(rendered.status);
      expect(binanceErrorFor(code)).toMatchObject({ code: body.code, status: rendered.status });
      seen.add(body.code);
    }
    const expected: [ErrorCode, number, number][] = [
      ["CREDENTIALS_MISSING", 401, -2014],
      ["CREDENTIALS_AMBIGUOUS", 401, -2014],
      ["KEY_ID_MALFORMED", 401, -2014],
      ["KEY_UNKNOWN", 401, -2015],
      ["KEY_REVOKED", 401, -2015],
      ["KEY_SUSPENDED", 401, -2015],
      ["KEY_EXPIRED", 401, -2015],
      ["IP_NOT_ALLOWED", 401, -2015],
      ["SCOPE_MISSING", 401, -2015],
      ["DIALECT_NOT_ALLOWED", 401, -2015],
      ["CREATED_TOO_OLD", 400, -1021],
      ["CREATED_IN_FUTURE", 400, -1021],
      ["SIGNATURE_INVALID", 400, -1022],
      ["PARAM_MISSING", 400, -1102],
      ["PARAM_INVALID", 400, -1100],
      ["REPLAY_CAPACITY", 429, -1003],
      ["BODY_TOO_LARGE", 413, -1101],
      ["ROUTE_NOT_FOUND", 404, -1020],
      ["KEY_STORE_UNAVAILABLE", 503, -1001],
      ["UPSTREAM_UNAVAILABLE", 502, -1001],
      ["UPSTREAM_TIMEOUT", 504, -1007],
      ["INTERNAL", 500, -1000],
    ];
    for (const [code, status, binance] of expected) {
      const rendered = scheme.render(deny(code), "r");
      expect({ code, status: rendered.status, binance: (JSON.parse(rendered.body) as { code: number }).code }).toEqual({ code, status, binance });
    }
    expect(seen.size).toBeGreaterThan(10);
  });

  it("a gateway whose futureSkewMs is not Binance's says so in the -1021 message", () => {
    const scheme = createBinanceScheme({ scheme: "http", futureSkewMs: 250 });
    expect(JSON.parse(scheme.render(deny("CREATED_IN_FUTURE"), "r").body)).toEqual({
      code: -1021,
      msg: "Timestamp for this request was 250ms ahead of the server's time.",
    });
  });
});

describe("docs/dialects/binance.md", () => {
  it("lists the mapping of every catalogue code, as the code has it", () => {
    const doc = readFileSync(fileURLToPath(new URL("../../../../docs/dialects/binance.md", import.meta.url)), "utf8");
    for (const code of ERROR_CODES) {
      const e = binanceErrorFor(code);
      expect(doc, code).toContain(`| \`${code}\` | ${e.status} | \`${e.code}\` | ${e.msg} |`);
    }
  });
});

describe("helpers", () => {
  it("form decoding follows the WHATWG rules the venue's parser uses", () => {
    expect(formDecode("a+b%20c%zz%4")).toBe("a b c%zz%4");
    expect(formDecode("%EF%BC%91")).toBe("１");
    expect(formDecode("%74imestamp")).toBe("timestamp");
  });

  it("a form body is one with no Content-Type or application/x-www-form-urlencoded (any parameters, any case)", () => {
    expect(isFormBody(undefined)).toBe(true);
    expect(isFormBody("application/x-www-form-urlencoded")).toBe(true);
    expect(isFormBody("Application/X-WWW-Form-Urlencoded; charset=UTF-8")).toBe(true);
    expect(isFormBody("application/json")).toBe(false);
    expect(isFormBody("text/plain")).toBe(false);
  });

  it("the WebSocket API payload: every parameter but signature, sorted by name, raw UTF-8 values", () => {
    expect(webSocketSignaturePayload({ timestamp: 2, symbol: "１２３", apiKey: "k", signature: "x", recvWindow: 100, test: true })).toBe(
      "apiKey=k&recvWindow=100&symbol=１２３&test=true&timestamp=2",
    );
    expect(webSocketSignaturePayload({})).toBe("");
    expect(webSocketSignaturePayload({ signature: "only" })).toBe("");
  });
});
