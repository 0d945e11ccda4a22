/**
 * The Kraken dialect: Kraken's published signing example, the strict nonce parser, and every
 * refusal through the gateway's request handler (in-process inject), each asserting Kraken's
 * error string in Kraken's shape and that nothing reached the upstream. Requests are signed here
 * with node:crypto, independently of the implementation.
 */
import { createHash, createHmac, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Response } from "light-my-request";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RouteSpec, RouteTable } from "../../src/authz/routes.js";
import { KRAKEN_DEFAULT_NONCE_WINDOW, KRAKEN_ERROR_FOR, createKrakenScheme, findNonce } from "../../src/dialects/kraken/index.js";
import { createNativeScheme } from "../../src/dialects/native.js";
import { type AuthScheme, RequestContext } from "../../src/contract/request.js";
import { ERROR_CODES, deny, errorCatalogue } from "../../src/errors/catalogue.js";
import { createIdentityVerifier } from "../../src/gateway/identity.js";
import type { VerificationKey } from "../../src/contract/verification-key.js";
import { generateKeyId } from "../../src/contract/ids.js";
import type { Dialect } from "../../src/contract/keys.js";
import { ClientAddressResolver } from "../../src/net/client-address.js";
import { Pipeline } from "../../src/pipeline/pipeline.js";
import { LimitPlan } from "../../src/limits/plan.js";
import { Shield } from "../../src/limits/shield.js";
import { MemoryHotStore } from "../../src/storage/memory/hot.js";
import { MemorySequenceStore } from "../../src/replay/sequences.js";
import { IDENTITY_SECRET, type TestGateway, makeGateway } from "../support/gateway.js";
import { replayOnlyHot } from "../support/hot.js";
import { TEST_ROUTES, signRequest } from "../support/harness.js";
import { hmacVerificationKey } from "../support/keys.js";

const KRAKEN_ROUTES: RouteSpec[] = [
  ...TEST_ROUTES,
  { method: "GET", path: "/0/public/Time", permission: "public", dialect: "kraken" },
  { method: "POST", path: "/0/private/Balance", permission: "read", dialect: "kraken" },
  { method: "POST", path: "/0/private/AddOrder", permission: "trade", dialect: "kraken", tags: ["order"] },
];

const FORM = "application/x-www-form-urlencoded";

/** Kraken's algorithm, written out: base64(HMAC-SHA512(b64decode(secret), path + SHA-256(nonce + postData))). */
function krakenSign(secret: string, path: string, nonce: string, postData: string | Buffer): string {
  const inner = createHash("sha256").update(nonce).update(postData).digest();
  return createHmac("sha512", Buffer.from(secret, "base64")).update(path).update(inner).digest("base64");
}

// --- Kraken's published example ---------------------------------------------------------

/**
 * Kraken's Spot REST authentication guide, "Examples" (https://docs.kraken.com/api/docs/guides/spot-rest-auth):
 * a new limit order, buy 1.25 XBTUSD at $37,500. Values copied verbatim.
 */
const KRAKEN_EXAMPLE = {
  privateKey: "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==",
  nonce: "1616492376594",
  encodedPayload: "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25",
  uriPath: "/0/private/AddOrder",
  apiSign: "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ==",
} as const;

const SCHEME_OPTIONS = { scheme: "http", futureSkewMs: 1000 } as const;

function verificationKey(secretBase64: string, dialects: readonly Dialect[] = ["kraken"]): VerificationKey {
  return hmacVerificationKey(secretBase64, { id: generateKeyId("test"), account: "acct-1", scopes: ["read", "trade"], dialects });
}

function context(path: string, headers: Record<string, string>, body: string | Buffer): RequestContext {
  const ctx = new RequestContext({ method: "POST", url: path, headers, body: Buffer.from(body), socketAddress: "127.0.0.1" }, "req-1", 0);
  ctx.path = path;
  return ctx;
}

describe("Kraken's published signing example", () => {
  it("is what an independent implementation computes", () => {
    const { privateKey, nonce, encodedPayload, uriPath, apiSign } = KRAKEN_EXAMPLE;
    expect(krakenSign(privateKey, uriPath, nonce, encodedPayload)).toBe(apiSign);
  });

  it("verifies in the Kraken scheme: nonce taken from the POST data, exact body, URI path", () => {
    const { privateKey, nonce, encodedPayload, uriPath, apiSign } = KRAKEN_EXAMPLE;
    const scheme = createKrakenScheme(SCHEME_OPTIONS);
    const key = verificationKey(privateKey);
    const headers = { "api-key": key.record.id, "api-sign": apiSign, "content-type": FORM };
    const ctx = context(uriPath, headers, encodedPayload);
    const credential = scheme.extract(ctx);
    if ("ok" in credential) throw new Error(credential.code);
    expect(credential.keyId).toBe(key.record.id);
    expect(findNonce(Buffer.from(encodedPayload), FORM)).toEqual({ text: nonce, value: 1616492376594n });
    expect(credential.fresh(ctx, key)).toBeUndefined();
    expect(credential.verify(ctx, key)).toBeUndefined();
    // One byte changed anywhere it covers, and it does not verify.
    const tampered = context(uriPath, headers, encodedPayload.replace("1.25", "1.26"));
    const other = scheme.extract(tampered);
    if ("ok" in other) throw new Error(other.code);
    expect(other.verify(tampered, key)).toMatchObject({ code: "SIGNATURE_INVALID" });
    const otherPath = context("/0/private/AddOrdeR", headers, encodedPayload);
    const third = scheme.extract(otherPath);
    if ("ok" in third) throw new Error(third.code);
    expect(third.verify(otherPath, key)).toMatchObject({ code: "SIGNATURE_INVALID" });
  });
});

describe("a key without a Kraken secret", () => {
  it("is refused at the signature stage: ALGORITHM_MISMATCH, EAPI:Invalid key", () => {
    const { privateKey, encodedPayload, uriPath, apiSign } = KRAKEN_EXAMPLE;
    const scheme = createKrakenScheme(SCHEME_OPTIONS);
    const key: VerificationKey = { ...verificationKey(privateKey), hmacKeyDecoded: null };
    const ctx = context(uriPath, { "api-key": key.record.id, "api-sign": apiSign }, encodedPayload);
    const credential = scheme.extract(ctx);
    if ("ok" in credential) throw new Error(credential.code);
    const denial = credential.verify(ctx, key);
    expect(denial).toMatchObject({ code: "ALGORITHM_MISMATCH" });
    if (denial === undefined || denial instanceof Promise) throw new Error("accepted, or asynchronous");
    expect(scheme.render(denial, "r").body).toBe('{"error":["EAPI:Invalid key"]}');
  });
});

// --- the nonce ----------------------------------------------------------------------------

describe("the nonce, parsed strictly as an unsigned 64-bit integer", () => {
  const form = (body: string): unknown => findNonce(Buffer.from(body), FORM);
  const json = (body: string): unknown => findNonce(Buffer.from(body), "application/json");

  it("is read from form-encoded POST data, anywhere in it", () => {
    expect(form("nonce=1")).toEqual({ text: "1", value: 1n });
    expect(form("pair=XBTUSD&nonce=42&type=buy")).toEqual({ text: "42", value: 42n });
    expect(form("a=1&&nonce=7&")).toEqual({ text: "7", value: 7n });
    expect(form("nonce=18446744073709551615")).toEqual({ text: "18446744073709551615", value: 2n ** 64n - 1n });
    expect(findNonce(Buffer.from("nonce=5"), undefined)).toEqual({ text: "5", value: 5n });
    expect(findNonce(Buffer.from("nonce=5"), "Application/X-WWW-Form-Urlencoded; charset=utf-8")).toEqual({ text: "5", value: 5n });
    // Names that merely contain "nonce" are other parameters.
    expect(form("nonces=1&xnonce=2&nonce=3")).toEqual({ text: "3", value: 3n });
  });

  it("is read from a JSON object: a string or a number, exactly as written", () => {
    expect(json('{"nonce":"1616492376594","pair":"XBTUSD"}')).toEqual({ text: "1616492376594", value: 1616492376594n });
    // Beyond 2^53: the digits are kept, not rounded through a double.
    expect(json('{ "pair": "XBTUSD", "nonce" : 9007199254740993 }')).toEqual({ text: "9007199254740993", value: 9007199254740993n });
    expect(json('{"orders":[{"nonce":"1"}],"meta":{"nonce":2},"s":"\\"nonce\\":3","nonce":"4"}')).toEqual({ text: "4", value: 4n });
    expect(json('{"non\\u0063e":"5"}')).toEqual({ text: "5", value: 5n });
    expect(findNonce(Buffer.from('{"nonce":"6"}'), "application/json; charset=utf-8")).toEqual({ text: "6", value: 6n });
  });

  it("refuses a missing nonce (PARAM_MISSING)", () => {
    for (const body of ["", "pair=XBTUSD", "noncE=1", '{"pair":"XBTUSD"}', "{}"]) {
      const result = body.startsWith("{") ? json(body) : form(body);
      expect(result, body).toMatchObject({ ok: false, code: "PARAM_MISSING" });
    }
  });

  it("refuses a malformed nonce (PARAM_INVALID)", () => {
    for (const body of [
      "nonce=",
      "nonce",
      "nonce=abc",
      "nonce=-1",
      "nonce=+1",
      "nonce=1.5",
      "nonce=1e3",
      "nonce= 1",
      "nonce=0x10",
      "nonce=18446744073709551616",
      "nonce=000000000000000000001",
      "nonce=%31",
      "nonce=1&nonce=2",
      "nonc%65=1",
      "nonce=1&nonc%65=2",
    ]) {
      expect(form(body), body).toMatchObject({ ok: false, code: "PARAM_INVALID" });
    }
    for (const body of ['{"nonce":"abc"}', '{"nonce":1.5}', '{"nonce":-1}', '{"nonce":1e3}', '{"nonce":true}', '{"nonce":null}', '{"nonce":["1"]}', '{"nonce":"1","nonce":"2"}', '{"nonce":" 1"}']) {
      expect(json(body), body).toMatchObject({ ok: false, code: "PARAM_INVALID" });
    }
  });

  it("refuses a body it cannot read (JSON_MALFORMED, VALIDATION_FAILED)", () => {
    for (const body of ["{", "[1]", '"nonce"', "nonce=1", '{"nonce":"1"} x']) expect(json(body), body).toMatchObject({ code: "JSON_MALFORMED" });
    expect(findNonce(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]), "application/json")).toMatchObject({ code: "JSON_MALFORMED" });
    expect(findNonce(Buffer.from("nonce=1"), "text/plain")).toMatchObject({ code: "VALIDATION_FAILED" });
    expect(findNonce(Buffer.from("nonce=1"), "multipart/form-data; boundary=x")).toMatchObject({ code: "VALIDATION_FAILED" });
  });
});

// --- rendering ----------------------------------------------------------------------------

describe("Kraken's error format", () => {
  const scheme = createKrakenScheme(SCHEME_OPTIONS);

  it("maps every catalogue code to a Kraken error string explicitly", () => {
    const codes = ERROR_CODES;
    expect(codes.filter((code) => KRAKEN_ERROR_FOR[code] === undefined)).toEqual([]);
    for (const code of codes) expect(KRAKEN_ERROR_FOR[code]).toMatch(/^E(API|General|Service|Order):[A-Z][a-z]+( [a-z]+)*$/);
  });

  it("answers the caller's errors with HTTP 200 and {error: [...]}, its own faults with their 5xx", () => {
    expect(scheme.render(deny("SIGNATURE_INVALID"), "r")).toEqual({ status: 200, body: '{"error":["EAPI:Invalid key"]}' });
    expect(scheme.render(deny("NONCE_NOT_INCREASING"), "r")).toEqual({ status: 200, body: '{"error":["EAPI:Invalid nonce"]}' });
    expect(scheme.render(deny("SCOPE_MISSING", "needs trade"), "r")).toEqual({ status: 200, body: '{"error":["EGeneral:Permission denied"]}' });
    expect(scheme.render(deny("REPLAY_CAPACITY"), "r")).toEqual({ status: 503, body: '{"error":["EService:Busy"]}' });
    expect(scheme.render(deny("UPSTREAM_UNAVAILABLE"), "r")).toEqual({ status: 502, body: '{"error":["EService:Unavailable"]}' });
    expect(scheme.render(deny("INTERNAL"), "r")).toEqual({ status: 500, body: '{"error":["EGeneral:Internal error"]}' });
    for (const code of ERROR_CODES) {
      const rendered = scheme.render(deny(code), "r");
      expect(rendered.status).toBe(errorCatalogue[code].status >= 500 ? errorCatalogue[code].status : 200);
      expect(JSON.parse(rendered.body)).toEqual({ error: [KRAKEN_ERROR_FOR[code]] });
    }
  });

  it("is documented: docs/dialects/kraken.md lists every code with its Kraken string and status", () => {
    const doc = readFileSync(new URL("../../../../docs/dialects/kraken.md", import.meta.url), "utf8");
    for (const code of ERROR_CODES) {
      const rendered = scheme.render(deny(code), "r");
      expect(doc).toContain(`| \`${code}\` | \`${KRAKEN_ERROR_FOR[code] ?? ""}\` | ${rendered.status} |`);
    }
    expect(doc).toContain(`to **${KRAKEN_DEFAULT_NONCE_WINDOW.toString()}** below`);
  });

  it("never puts the detail or the request id in the body", () => {
    const rendered = scheme.render(deny("PARAM_INVALID", "secret detail"), "request-123");
    expect(rendered.body).not.toContain("secret detail");
    expect(rendered.body).not.toContain("request-123");
  });
});

// --- through the gateway ------------------------------------------------------------------

let t: TestGateway;
let trader: { id: string; secret: string };
let nextNonce = Date.UTC(2026, 10, 22) * 1000;

async function krakenKey(input: Record<string, unknown> = {}): Promise<{ id: string; secret: string }> {
  const created = await t.createKey({ dialects: ["kraken"], ...input });
  return { id: created.key.id, secret: created.secret ?? "" };
}

beforeAll(async () => {
  t = await makeGateway({ routes: KRAKEN_ROUTES }, { bodyLimit: 4096 });
  trader = await krakenKey();
});
afterAll(async () => {
  await t.close();
});

interface KrakenCall {
  readonly path?: string;
  readonly url?: string;
  readonly method?: string;
  readonly key?: { id: string; secret: string };
  /** The POST data sent (default `nonce=<fresh>&pair=XBTUSD`). */
  readonly body?: string;
  /** The nonce to sign with (default: the one in the body). */
  readonly nonce?: string;
  readonly sign?: string;
  readonly contentType?: string;
  readonly headers?: Record<string, string | string[]>;
  readonly omit?: readonly string[];
  readonly remoteAddress?: string;
}

function freshNonce(): string {
  nextNonce += 1000;
  return String(nextNonce);
}

async function kraken(call: KrakenCall = {}): Promise<Response> {
  const path = call.path ?? "/0/private/Balance";
  const key = call.key ?? trader;
  const body = call.body ?? `nonce=${freshNonce()}&pair=XBTUSD`;
  const nonce = call.nonce ?? /(?:^|&)nonce=([^&]*)/.exec(body)?.[1] ?? /"nonce":"?([0-9]*)/.exec(body)?.[1] ?? "";
  const headers: Record<string, string | string[]> = {
    host: "gateway.test",
    "api-key": key.id,
    "api-sign": call.sign ?? krakenSign(key.secret, path, nonce, body),
    "content-type": call.contentType ?? FORM,
    ...call.headers,
  };
  for (const name of call.omit ?? []) Reflect.deleteProperty(headers, name);
  return t.inject({
    method: call.method ?? "POST",
    url: call.url ?? path,
    headers,
    payload: body,
    ...(call.remoteAddress === undefined ? {} : { remoteAddress: call.remoteAddress }),
  });
}

/** A Kraken refusal: HTTP 200 (5xx for Portcullis's own faults), `{"error":[error]}`, nothing forwarded. */
async function expectKrakenError(send: () => Promise<Response>, error: string, status = 200): Promise<void> {
  const before = t.upstream.requests.length;
  const res = await send();
  expect({ status: res.statusCode, body: res.json<unknown>() }).toEqual({ status, body: { error: [error] } });
  expect(res.headers["content-type"]).toBe("application/json; charset=utf-8");
  expect(res.headers["portcullis-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
  expect(t.upstream.requests.length).toBe(before);
}

describe("the good path", () => {
  it("forwards a Kraken-signed POST with its exact body, without the credentials, with the identity", async () => {
    const body = `nonce=${freshNonce()}&ordertype=limit&pair=XBTUSDT&price=37500&type=buy&volume=1.25`;
    const res = await kraken({ path: "/0/private/AddOrder", body });
    expect(res.statusCode).toBe(200);
    const got = t.upstream.requests.at(-1);
    expect(got?.body).toBe(body);
    expect(got?.url).toBe("/0/private/AddOrder");
    expect(got?.headers["api-key"]).toBeUndefined();
    expect(got?.headers["api-sign"]).toBeUndefined();
    const verify = createIdentityVerifier(IDENTITY_SECRET, { now: t.clock.now });
    const identity = verify({ method: got?.method, url: got?.url, headers: got?.headers ?? {} }, got?.rawBody ?? Buffer.alloc(0));
    expect(identity).toMatchObject({ ok: true, identity: { keyId: trader.id, account: "acct-1", scopes: ["read", "trade"] } });
  });

  it("accepts a JSON body, with the nonce as a string or as a number beyond 2^53", async () => {
    const n = freshNonce();
    expect((await kraken({ body: `{"nonce":"${n}","asset":"XBT"}`, contentType: "application/json" })).statusCode).toBe(200);
    const big = await krakenKey();
    const res = await kraken({ key: big, body: '{"nonce": 9007199254740993}', nonce: "9007199254740993", contentType: "application/json" });
    expect(res.statusCode).toBe(200);
  });

  it("accepts the largest unsigned 64-bit nonce", async () => {
    const key = await krakenKey();
    expect((await kraken({ key, body: "nonce=18446744073709551615" })).statusCode).toBe(200);
  });

  it("tolerates nonces arriving out of order within the window, each once", async () => {
    const key = await krakenKey();
    const base = 1_800_000_000_000;
    expect((await kraken({ key, body: `nonce=${base}` })).statusCode).toBe(200);
    expect((await kraken({ key, body: `nonce=${base - 10}` })).statusCode).toBe(200);
    expect((await kraken({ key, body: `nonce=${base - Number(KRAKEN_DEFAULT_NONCE_WINDOW)}` })).statusCode).toBe(200);
    await expectKrakenError(() => kraken({ key, body: `nonce=${base - 10}` }), "EAPI:Invalid nonce");
  });

  it("serves a public Kraken route without credentials", async () => {
    const res = await t.inject({ method: "GET", url: "/0/public/Time", headers: { host: "gateway.test" } });
    expect(res.statusCode).toBe(200);
    expect(t.upstream.requests.at(-1)?.url).toBe("/0/public/Time");
  });
});

describe("every refusal, in Kraken's words", () => {
  it("no credentials on a Kraken route: EAPI:Invalid key", async () => {
    await expectKrakenError(() => t.inject({ method: "POST", url: "/0/private/Balance", headers: { host: "gateway.test" }, payload: "nonce=1" }), "EAPI:Invalid key");
  });

  it("API-Sign without API-Key: EAPI:Invalid key", async () => {
    await expectKrakenError(() => kraken({ omit: ["api-key"] }), "EAPI:Invalid key");
    await expectKrakenError(() => kraken({ headers: { "api-key": "" } }), "EAPI:Invalid key");
    await expectKrakenError(() => kraken({ headers: { "api-key": [trader.id, trader.id] } }), "EAPI:Invalid key");
  });

  it("API-Key without API-Sign, or an API-Sign that is not base64 of 64 bytes: EAPI:Invalid signature", async () => {
    await expectKrakenError(() => kraken({ omit: ["api-sign"] }), "EAPI:Invalid signature");
    const good = krakenSign(trader.secret, "/0/private/Balance", "1", "nonce=1");
    for (const sign of [
      "",
      "not base64 at all",
      good.slice(0, -4),
      `${good}AAAA`,
      good.replace("==", ""),
      `${good.slice(0, 85)}B==`, // non-canonical: stray bits in the last character
      // base64url (from bytes whose base64 surely has "+" and "/": a random signature may have neither)
      Buffer.alloc(64, 0xfb).toString("base64").replaceAll("+", "-").replaceAll("/", "_"),
      randomBytes(32).toString("base64"),
    ]) {
      await expectKrakenError(() => kraken({ sign }), "EAPI:Invalid signature");
    }
    await expectKrakenError(() => kraken({ headers: { "api-sign": [good, good] } }), "EAPI:Invalid signature");
  });

  it("a query string (API-Sign does not cover it): EGeneral:Invalid arguments", async () => {
    await expectKrakenError(() => kraken({ url: "/0/private/Balance?asset=XBT" }), "EGeneral:Invalid arguments");
  });

  it("a missing or malformed nonce: EAPI:Invalid nonce", async () => {
    for (const body of ["pair=XBTUSD", "", "nonce=", "nonce=abc", "nonce=-5", "nonce=1.5", "nonce=18446744073709551616", "nonce=1&nonce=2", "nonc%65=1"]) {
      await expectKrakenError(() => kraken({ body, nonce: "1" }), "EAPI:Invalid nonce");
    }
    await expectKrakenError(() => kraken({ body: '{"pair":"XBTUSD"}', contentType: "application/json" }), "EAPI:Invalid nonce");
    await expectKrakenError(() => kraken({ body: '{"nonce":1.5}', nonce: "1.5", contentType: "application/json" }), "EAPI:Invalid nonce");
  });

  it("a body that cannot be read: EGeneral:Invalid arguments", async () => {
    await expectKrakenError(() => kraken({ body: '{"nonce":"1"', nonce: "1", contentType: "application/json" }), "EGeneral:Invalid arguments");
    await expectKrakenError(() => kraken({ body: "[1]", nonce: "1", contentType: "application/json" }), "EGeneral:Invalid arguments");
    await expectKrakenError(() => kraken({ contentType: "text/plain" }), "EGeneral:Invalid arguments");
  });

  it("a malformed, unknown or other-environment key id: EAPI:Invalid key", async () => {
    for (const id of ["not-a-key", generateKeyId("test"), generateKeyId("live")]) {
      await expectKrakenError(() => kraken({ key: { id, secret: trader.secret } }), "EAPI:Invalid key");
    }
  });

  it("a revoked, suspended or expired key: EAPI:Invalid key", async () => {
    const revoked = await krakenKey();
    await t.core.keys.revoke(revoked.id, "test");
    await expectKrakenError(() => kraken({ key: revoked }), "EAPI:Invalid key");
    const suspended = await krakenKey();
    await t.core.keys.suspend(suspended.id, "test");
    await expectKrakenError(() => kraken({ key: suspended }), "EAPI:Invalid key");
    const expiring = await krakenKey({ expires: "1m" });
    expect((await kraken({ key: expiring })).statusCode).toBe(200);
    t.clock.advance(61_000);
    await expectKrakenError(() => kraken({ key: expiring }), "EAPI:Invalid key");
  });

  it("a key not issued for Kraken (native only): EAPI:Invalid key", async () => {
    const native = await t.createKey({});
    await expectKrakenError(() => kraken({ key: { id: native.key.id, secret: randomBytes(64).toString("base64") } }), "EAPI:Invalid key");
  });

  it("a request from outside the key's IP allowlist: EGeneral:Permission denied", async () => {
    const fenced = await krakenKey({ ipAllowlist: ["10.0.0.0/8"] });
    await expectKrakenError(() => kraken({ key: fenced }), "EGeneral:Permission denied");
    expect((await kraken({ key: fenced, remoteAddress: "10.1.2.3" })).statusCode).toBe(200);
  });

  it("a signature that does not verify (wrong secret, other body, path or nonce): EAPI:Invalid key", async () => {
    const wrong = { id: trader.id, secret: randomBytes(64).toString("base64") };
    await expectKrakenError(() => kraken({ key: wrong }), "EAPI:Invalid key");
    // The secret as text (the native scheme's HMAC key) instead of base64-decoded.
    const n = freshNonce();
    const asText = createHmac("sha512", Buffer.from(trader.secret, "utf8"))
      .update("/0/private/Balance")
      .update(createHash("sha256").update(`${n}nonce=${n}`).digest())
      .digest("base64");
    await expectKrakenError(() => kraken({ body: `nonce=${n}`, sign: asText }), "EAPI:Invalid key");
    const m = freshNonce();
    const signedBody = krakenSign(trader.secret, "/0/private/Balance", m, `nonce=${m}&volume=1`);
    await expectKrakenError(() => kraken({ body: `nonce=${m}&volume=9`, sign: signedBody }), "EAPI:Invalid key");
    const p = freshNonce();
    const signedPath = krakenSign(trader.secret, "/0/private/Balance", p, `nonce=${p}`);
    await expectKrakenError(() => kraken({ path: "/0/private/AddOrder", body: `nonce=${p}`, sign: signedPath }), "EAPI:Invalid key");
    const q = freshNonce();
    await expectKrakenError(() => kraken({ body: `nonce=${q}`, nonce: `0${q}` }), "EAPI:Invalid key");
  });

  it("a refused signature does not spend the nonce", async () => {
    const key = await krakenKey();
    const n = freshNonce();
    await expectKrakenError(() => kraken({ key, body: `nonce=${n}`, sign: krakenSign(randomBytes(64).toString("base64"), "/0/private/Balance", n, `nonce=${n}`) }), "EAPI:Invalid key");
    expect((await kraken({ key, body: `nonce=${n}` })).statusCode).toBe(200);
  });

  it("a replayed nonce: EAPI:Invalid nonce", async () => {
    const body = `nonce=${freshNonce()}`;
    const first = await kraken({ body });
    expect(first.statusCode).toBe(200);
    await expectKrakenError(() => kraken({ body }), "EAPI:Invalid nonce");
    // The same nonce with another body and path is still spent.
    await expectKrakenError(() => kraken({ path: "/0/private/AddOrder", body: `${body}&pair=XBTUSDT` }), "EAPI:Invalid nonce");
  });

  it("a nonce below the window: EAPI:Invalid nonce", async () => {
    const key = await krakenKey();
    const base = 1_700_000_000_000;
    expect((await kraken({ key, body: `nonce=${base}` })).statusCode).toBe(200);
    await expectKrakenError(() => kraken({ key, body: `nonce=${base - Number(KRAKEN_DEFAULT_NONCE_WINDOW) - 1}` }), "EAPI:Invalid nonce");
    await expectKrakenError(() => kraken({ key, body: "nonce=1" }), "EAPI:Invalid nonce");
  });

  it("a key without the route's permission: EGeneral:Permission denied", async () => {
    const reader = await krakenKey({ scopes: ["read"] });
    expect((await kraken({ key: reader })).statusCode).toBe(200);
    await expectKrakenError(() => kraken({ key: reader, path: "/0/private/AddOrder" }), "EGeneral:Permission denied");
  });

  it("Kraken and native credentials together: refused (the pipeline renders it in the first scheme detected, native)", async () => {
    const native = signRequest({ method: "POST", url: "/0/private/Balance", body: "nonce=1", keyId: trader.id, key: trader.secret, created: t.clock.seconds });
    const before = t.upstream.requests.length;
    const res = await kraken({ headers: { "signature-input": native["signature-input"], signature: native.signature } });
    expect({ status: res.statusCode, code: res.json<{ code: string }>().code }).toEqual({ status: 400, code: "CREDENTIALS_AMBIGUOUS" });
    expect(t.upstream.requests.length).toBe(before);
    // Were Kraken the renderer, the answer would be:
    expect(createKrakenScheme(SCHEME_OPTIONS).render(deny("CREDENTIALS_AMBIGUOUS"), "r").body).toBe('{"error":["EGeneral:Invalid arguments"]}');
  });

  it("Kraken credentials on a route that does not speak Kraken: EAPI:Invalid key", async () => {
    await expectKrakenError(() => kraken({ path: "/api/v3/order" }), "EAPI:Invalid key");
  });

  it("Kraken credentials on an unmapped path: EGeneral:Unknown method", async () => {
    await expectKrakenError(() => kraken({ path: "/0/private/Withdraw" }), "EGeneral:Unknown method");
  });
});

describe("state and upstream failures, in Kraken's words", () => {
  type Claim = "fresh" | "replayed" | "too-low" | "full";
  async function withSequences(
    sequences: { claim(keyId: string, value: bigint, window: bigint): Claim | Promise<Claim> },
    run: (g: TestGateway, key: { id: string; secret: string }) => Promise<void>,
  ): Promise<void> {
    const hot = replayOnlyHot((c) => (c.kind === "sequence" ? sequences.claim(c.keyId, c.value, c.window) : "fresh"));
    const g = await makeGateway({ routes: KRAKEN_ROUTES, hot });
    try {
      const created = await g.createKey({ dialects: ["kraken"] });
      await run(g, { id: created.key.id, secret: created.secret ?? "" });
    } finally {
      await g.close();
    }
  }

  async function balance(g: TestGateway, key: { id: string; secret: string }): Promise<Response> {
    const n = freshNonce();
    return g.inject({
      method: "POST",
      url: "/0/private/Balance",
      headers: { host: "gateway.test", "api-key": key.id, "api-sign": krakenSign(key.secret, "/0/private/Balance", n, `nonce=${n}`), "content-type": FORM },
      payload: `nonce=${n}`,
    });
  }

  it("a full sequence store fails closed: 503 EService:Busy", async () => {
    await withSequences({ claim: () => "full" }, async (g, key) => {
      const res = await balance(g, key);
      expect({ status: res.statusCode, body: res.json<unknown>() }).toEqual({ status: 503, body: { error: ["EService:Busy"] } });
      expect(g.upstream.requests).toHaveLength(0);
    });
  });

  it("an unreachable sequence store fails closed: 503 EService:Unavailable", async () => {
    await withSequences({ claim: () => Promise.reject(new Error("down")) }, async (g, key) => {
      const res = await balance(g, key);
      expect({ status: res.statusCode, body: res.json<unknown>() }).toEqual({ status: 503, body: { error: ["EService:Unavailable"] } });
    });
  });

  it("an asynchronous store is awaited", async () => {
    const memory = new MemorySequenceStore();
    await withSequences({ claim: (id, value, window) => Promise.resolve(memory.claim(id, value, window)) }, async (g, key) => {
      expect((await balance(g, key)).statusCode).toBe(200);
    });
  });

  it("an unreachable upstream: 502 EService:Unavailable", async () => {
    const g = await makeGateway({ routes: KRAKEN_ROUTES }, { upstreamUrl: "http://127.0.0.1:9" });
    try {
      const created = await g.createKey({ dialects: ["kraken"] });
      const res = await balance(g, { id: created.key.id, secret: created.secret ?? "" });
      expect({ status: res.statusCode, body: res.json<unknown>() }).toEqual({ status: 502, body: { error: ["EService:Unavailable"] } });
    } finally {
      await g.close();
    }
  });
});

describe("the nonce window is configurable through the scheme factory", () => {
  function pipelineWith(kraken: AuthScheme): Pipeline {
    return new Pipeline({
      routes: new RouteTable(KRAKEN_ROUTES),
      keys: t.core.cache,
      schemes: new Map<Dialect, AuthScheme>([
        ["native", createNativeScheme(SCHEME_OPTIONS)],
        ["kraken", kraken],
      ]),
      hot: new MemoryHotStore({ epochStart: t.clock.ms }),
      limits: new LimitPlan([]),
      shield: new Shield(),
      clientAddress: new ClientAddressResolver([]),
      environment: "test",
      scheme: "http",
      now: t.clock.now,
    });
  }

  async function run(pipeline: Pipeline, nonce: number): Promise<string | null> {
    const body = `nonce=${nonce}`;
    const headers = { host: "gateway.test", "api-key": trader.id, "api-sign": krakenSign(trader.secret, "/0/private/Balance", String(nonce), body), "content-type": FORM };
    const ctx = await pipeline.run({ method: "POST", url: "/0/private/Balance", headers, body: Buffer.from(body), socketAddress: "127.0.0.1" });
    if (ctx.denial === null) return null;
    return ctx.renderer?.render(ctx.denial, ctx.requestId).body ?? ctx.denial.code;
  }

  it("a window of 0: every nonce must be higher than the last", async () => {
    const strict = pipelineWith(createKrakenScheme({ ...SCHEME_OPTIONS, krakenNonceWindow: 0n }));
    expect(await run(strict, 1000)).toBeNull();
    expect(await run(strict, 999)).toBe('{"error":["EAPI:Invalid nonce"]}');
    expect(await run(strict, 1001)).toBeNull();
  });

  it("a wide window (a number is accepted too)", async () => {
    const wide = pipelineWith(createKrakenScheme({ ...SCHEME_OPTIONS, krakenNonceWindow: 1_000_000 }));
    expect(await run(wide, 5_000_000)).toBeNull();
    expect(await run(wide, 4_000_000)).toBeNull();
    expect(await run(wide, 4_000_000)).toBe('{"error":["EAPI:Invalid nonce"]}');
    expect(await run(wide, 3_999_999)).toBe('{"error":["EAPI:Invalid nonce"]}');
  });

  it("refuses a window that is not an unsigned 64-bit integer", () => {
    for (const bad of [-1n, 2n ** 64n, -1, 1.5, Number.NaN, 2 ** 60]) {
      expect(() => createKrakenScheme({ ...SCHEME_OPTIONS, krakenNonceWindow: bad })).toThrow(TypeError);
    }
  });
});
