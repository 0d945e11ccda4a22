/**
 * Every refusal of stages 1-8, through the gateway's request handler (in-process inject), each
 * asserting its stable code and status, and that nothing reached the upstream.
 */
import { generateKeyPairSync } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createIdentityVerifier } from "../../src/gateway/identity.js";
import { generateKeyId } from "../../src/contract/ids.js";
import { type SignSpec, type SignedHeaders, signRequest } from "../support/harness.js";
import { IDENTITY_SECRET, type TestGateway, makeGateway } from "../support/gateway.js";

let t: TestGateway;
let hmacId: string;
let secret: string;

beforeAll(async () => {
  t = await makeGateway({}, { bodyLimit: 4096 });
  const created = await t.createKey({ scopes: ["read", "trade"] });
  hmacId = created.key.id;
  secret = created.secret ?? "";
});
afterAll(async () => {
  await t.close();
});

function signed(overrides: Partial<SignSpec> = {}): SignedHeaders {
  return signRequest({ method: "GET", url: "/api/v3/account", keyId: hmacId, key: secret, created: t.clock.seconds, ...overrides });
}

async function expectRefused(
  request: { method?: string; url?: string; headers?: Record<string, string>; payload?: string; remoteAddress?: string },
  code: string,
  status: number,
): Promise<void> {
  const before = t.upstream.requests.length;
  const res = await t.inject({
    method: (request.method ?? "GET"),
    url: request.url ?? "/api/v3/account",
    headers: request.headers ?? {},
    ...(request.payload === undefined ? {} : { payload: request.payload }),
    ...(request.remoteAddress === undefined ? {} : { remoteAddress: request.remoteAddress }),
  });
  const body = res.json<{ code: string; message: string; requestId: string }>();
  expect({ code: body.code, status: res.statusCode }).toEqual({ code, status });
  expect(typeof body.message).toBe("string");
  expect(body.requestId).toBe(res.headers["portcullis-request-id"]);
  expect(res.payload).not.toMatch(/\bat .*\.(ts|js):\d+/);
  expect(t.upstream.requests.length).toBe(before);
}

describe("the good path", () => {
  it("forwards a signed GET with verified identity headers and without the credentials", async () => {
    const res = await t.inject({ method: "GET", url: "/api/v3/account?x=1", headers: signed({ url: "/api/v3/account?x=1" }) });
    expect(res.statusCode).toBe(200);
    const got = t.upstream.requests.at(-1);
    expect(got?.url).toBe("/api/v3/account?x=1");
    expect(got?.headers.signature).toBeUndefined();
    expect(got?.headers["signature-input"]).toBeUndefined();
    expect(got?.headers["portcullis-account"]).toBe("acct-1");
    expect(got?.headers["portcullis-scopes"]).toBe("read,trade");
    const verify = createIdentityVerifier(IDENTITY_SECRET, { now: t.clock.now });
    const identity = verify({ method: got?.method, url: got?.url, headers: got?.headers ?? {} }, got?.rawBody ?? Buffer.alloc(0));
    expect(identity).toMatchObject({ ok: true, identity: { keyId: hmacId, account: "acct-1", clientIp: "127.0.0.1" } });
  });

  it("forwards a signed POST with its exact body", async () => {
    const body = '{"symbol":"BTCUSDT","side":"BUY"}';
    const headers = { ...signed({ method: "POST", url: "/api/v3/order", body }), "content-type": "application/json" };
    const res = await t.inject({ method: "POST", url: "/api/v3/order", headers, payload: body });
    expect(res.statusCode).toBe(200);
    expect(t.upstream.requests.at(-1)?.body).toBe(body);
  });

  it("forwards a public route without credentials or identity", async () => {
    const res = await t.inject({ method: "GET", url: "/public/time", headers: { host: "gateway.test", "portcullis-account": "spoofed" } });
    expect(res.statusCode).toBe(200);
    const got = t.upstream.requests.at(-1);
    expect(got?.headers["portcullis-account"]).toBeUndefined();
    expect(got?.headers["portcullis-identity"]).toBeUndefined();
  });

  const asymmetric: [string, "ed25519" | "ec" | "rsa", "ed25519" | "ecdsa-p256-sha256" | "rsa-pss-sha512" | "rsa-v1_5-sha256"][] = [
    ["ed25519", "ed25519", "ed25519"],
    ["ecdsa-p256", "ec", "ecdsa-p256-sha256"],
    ["rsa (PSS)", "rsa", "rsa-pss-sha512"],
    ["rsa (PKCS#1 v1.5)", "rsa", "rsa-v1_5-sha256"],
  ];
  it.each(asymmetric)("accepts a %s key; the server holds only the public key", async (_name, type, alg) => {
    const pair =
      type === "ed25519"
        ? generateKeyPairSync("ed25519")
        : type === "ec"
          ? generateKeyPairSync("ec", { namedCurve: "P-256" })
          : generateKeyPairSync("rsa", { modulusLength: 2048 });
    const { key } = await t.createKey({ publicKey: pair.publicKey.export({ type: "spki", format: "pem" }).toString() });
    const res = await t.inject({ method: "GET", url: "/api/v3/account", headers: signed({ keyId: key.id, key: pair.privateKey, alg }) });
    expect(res.statusCode).toBe(200);
  });
});

describe("stage 3: credentials", () => {
  it("no signature headers", async () => {
    await expectRefused({ headers: { host: "gateway.test" } }, "CREDENTIALS_MISSING", 401);
  });
  it("only one of the two headers", async () => {
    const { signature: _s, ...rest } = signed();
    await expectRefused({ headers: rest }, "CREDENTIALS_MISSING", 401);
  });
  it("garbage in Signature-Input", async () => {
    await expectRefused({ headers: { ...signed(), "signature-input": "sig1=(((" } }, "SIGNATURE_HEADER_MALFORMED", 400);
  });
  it("garbage in Signature", async () => {
    await expectRefused({ headers: { ...signed(), signature: "sig1=not-bytes" } }, "SIGNATURE_HEADER_MALFORMED", 400);
  });
  it("two signatures", async () => {
    const h = signed();
    const other = signed({ label: "sig2" });
    await expectRefused(
      { headers: { ...h, "signature-input": `${h["signature-input"]}, ${other["signature-input"]}`, signature: `${h.signature}, ${other.signature}` } },
      "SIGNATURE_HEADER_DUPLICATED",
      400,
    );
  });
  it("the same label twice (duplicated header)", async () => {
    const h = signed();
    await expectRefused({ headers: { ...h, signature: `${h.signature}, ${h.signature}` } }, "SIGNATURE_HEADER_DUPLICATED", 400);
  });
  it("labels that do not match", async () => {
    const h = signed();
    await expectRefused({ headers: { ...h, signature: h.signature.replace("sig1=", "other=") } }, "SIGNATURE_LABEL_MISMATCH", 400);
  });
  it("no nonce", async () => {
    const h = signed();
    await expectRefused({ headers: { ...h, "signature-input": h["signature-input"].replace(/;nonce="[^"]*"/, "") } }, "SIGNATURE_PARAM_MISSING", 400);
  });
  it("no created", async () => {
    const h = signed();
    await expectRefused({ headers: { ...h, "signature-input": h["signature-input"].replace(/;created=\d+/, "") } }, "SIGNATURE_PARAM_MISSING", 400);
  });
  it("a malformed nonce", async () => {
    await expectRefused({ headers: signed({ nonce: "short" }) }, "NONCE_MALFORMED", 400);
  });
  it("an unknown signature parameter", async () => {
    await expectRefused({ headers: signed({ extraParams: ';color="red"' }) }, "SIGNATURE_PARAM_INVALID", 400);
  });
  it("created of the wrong type", async () => {
    const h = signed();
    await expectRefused({ headers: { ...h, "signature-input": h["signature-input"].replace(/created=\d+/, 'created="1"') } }, "SIGNATURE_PARAM_INVALID", 400);
  });
  it("an unsupported alg", async () => {
    const h = signed();
    await expectRefused({ headers: { ...h, "signature-input": h["signature-input"].replace('alg="hmac-sha256"', 'alg="hmac-md5"') } }, "SIGNATURE_PARAM_INVALID", 400);
  });
  it("@query not covered", async () => {
    await expectRefused({ headers: signed({ components: ["@method", "@authority", "@path"] }) }, "SIGNATURE_COMPONENT_MISSING", 400);
  });
  it("@method not covered", async () => {
    await expectRefused({ headers: signed({ components: ["@authority", "@path", "@query"] }) }, "SIGNATURE_COMPONENT_MISSING", 400);
  });
  it("a body without content-digest covered", async () => {
    const body = "symbol=BTCUSDT";
    await expectRefused(
      { method: "POST", url: "/api/v3/order", headers: signed({ method: "POST", url: "/api/v3/order", body, components: ["@method", "@authority", "@path", "@query"] }), payload: body },
      "SIGNATURE_COMPONENT_MISSING",
      400,
    );
  });
  it("a component listed twice", async () => {
    await expectRefused({ headers: signed({ components: ["@method", "@method", "@authority", "@path", "@query"] }) }, "SIGNATURE_COMPONENT_INVALID", 400);
  });
  it("a component with parameters", async () => {
    const h = signed();
    await expectRefused(
      { headers: { ...h, "signature-input": h["signature-input"].replace('"@query"', '"@query" "date";sf') } },
      "SIGNATURE_COMPONENT_INVALID",
      400,
    );
  });
  it("an unsupported derived component", async () => {
    const h = signed();
    await expectRefused({ headers: { ...h, "signature-input": h["signature-input"].replace('"@query"', '"@query" "@status"') } }, "SIGNATURE_COMPONENT_INVALID", 400);
  });
  it("a covered header that is absent", async () => {
    await expectRefused({ headers: signed({ components: ["@method", "@authority", "@path", "@query", "x-absent"] }) }, "SIGNATURE_COMPONENT_ABSENT", 400);
  });
});

describe("stage 4: the key", () => {
  it("a malformed key id", async () => {
    await expectRefused({ headers: signed({ keyId: "not-a-key" }) }, "KEY_ID_MALFORMED", 401);
  });
  it("a key id with a bad checksum", async () => {
    const bad = `${hmacId.slice(0, -1)}${hmacId.endsWith("A") ? "B" : "A"}`;
    await expectRefused({ headers: signed({ keyId: bad }) }, "KEY_ID_MALFORMED", 401);
  });
  it("an unknown key", async () => {
    await expectRefused({ headers: signed({ keyId: generateKeyId("test") }) }, "KEY_UNKNOWN", 401);
  });
  it("a live key on a test gateway", async () => {
    await expectRefused({ headers: signed({ keyId: generateKeyId("live") }) }, "KEY_ENVIRONMENT_MISMATCH", 401);
  });
  it("a revoked key", async () => {
    const { key, secret: s } = await t.createKey({});
    await t.core.keys.revoke(key.id, "test");
    await expectRefused({ headers: signed({ keyId: key.id, key: s ?? "" }) }, "KEY_REVOKED", 401);
  });
  it("a suspended key, then resumed", async () => {
    const { key, secret: s } = await t.createKey({});
    await t.core.keys.suspend(key.id, "test");
    await expectRefused({ headers: signed({ keyId: key.id, key: s ?? "" }) }, "KEY_SUSPENDED", 403);
    await t.core.keys.resume(key.id, "test");
    const res = await t.inject({ method: "GET", url: "/api/v3/account", headers: signed({ keyId: key.id, key: s ?? "" }) });
    expect(res.statusCode).toBe(200);
  });
  it("an expired key", async () => {
    const { key, secret: s } = await t.createKey({ expires: "1h" });
    t.clock.advance(3_600_000);
    try {
      await expectRefused({ headers: signed({ keyId: key.id, key: s ?? "" }) }, "KEY_EXPIRED", 401);
    } finally {
      t.clock.advance(-3_600_000);
    }
  });
  it("an address outside the key's allowlist", async () => {
    const { key, secret: s } = await t.createKey({ ipAllowlist: ["198.51.100.0/24", "2001:db8::/32"] });
    await expectRefused({ headers: signed({ keyId: key.id, key: s ?? "" }) }, "IP_NOT_ALLOWED", 403);
    const ok = await t.inject({ method: "GET", url: "/api/v3/account", headers: signed({ keyId: key.id, key: s ?? "" }), remoteAddress: "198.51.100.7" });
    expect(ok.statusCode).toBe(200);
    const ok6 = await t.inject({ method: "GET", url: "/api/v3/account", headers: signed({ keyId: key.id, key: s ?? "" }), remoteAddress: "2001:db8::5" });
    expect(ok6.statusCode).toBe(200);
  });
  it("a key that was not issued for the native scheme", async () => {
    const { key, secret: s } = await t.createKey({ dialects: ["binance"] });
    await expectRefused({ headers: signed({ keyId: key.id, key: s ?? "" }) }, "DIALECT_NOT_ALLOWED", 401);
  });
  it("a spoofed X-Forwarded-For from an untrusted peer", async () => {
    const { key, secret: s } = await t.createKey({ ipAllowlist: ["198.51.100.0/24"] });
    await expectRefused({ headers: { ...signed({ keyId: key.id, key: s ?? "" }), "x-forwarded-for": "198.51.100.7" } }, "IP_NOT_ALLOWED", 403);
  });
});

describe("stages 5-7: freshness, signature, replay", () => {
  it("created too old", async () => {
    await expectRefused({ headers: signed({ created: t.clock.seconds - 7 }) }, "CREATED_TOO_OLD", 401);
  });
  it("created in the future", async () => {
    await expectRefused({ headers: signed({ created: t.clock.seconds + 3 }) }, "CREATED_IN_FUTURE", 401);
  });
  it("accepts the edges of the window", async () => {
    expect((await t.inject({ method: "GET", url: "/api/v3/account", headers: signed({ created: t.clock.seconds - 5 }) })).statusCode).toBe(200);
    expect((await t.inject({ method: "GET", url: "/api/v3/account", headers: signed({ created: t.clock.seconds + 1 }) })).statusCode).toBe(200);
  });
  it("a per-key window of 30 s", async () => {
    const { key, secret: s } = await t.createKey({ windowMs: 30_000 });
    const res = await t.inject({ method: "GET", url: "/api/v3/account", headers: signed({ keyId: key.id, key: s ?? "", created: t.clock.seconds - 25 }) });
    expect(res.statusCode).toBe(200);
    await expectRefused({ headers: signed({ keyId: key.id, key: s ?? "", created: t.clock.seconds - 32 }) }, "CREATED_TOO_OLD", 401);
  });
  it("an expired signature", async () => {
    await expectRefused({ headers: signed({ extraParams: `;expires=${t.clock.seconds - 1}` }) }, "SIGNATURE_EXPIRED", 401);
  });
  it("the wrong algorithm for the key", async () => {
    await expectRefused({ headers: signed({ alg: "ed25519" }) }, "ALGORITHM_MISMATCH", 401);
  });
  it("the wrong secret", async () => {
    await expectRefused({ headers: signed({ key: `${secret}x` }) }, "SIGNATURE_INVALID", 401);
  });
  it("a tampered query", async () => {
    await expectRefused({ url: "/api/v3/account?x=2", headers: signed({ url: "/api/v3/account?x=1" }) }, "SIGNATURE_INVALID", 401);
  });
  it("a query added to a request signed without one", async () => {
    await expectRefused({ url: "/api/v3/account?x=1", headers: signed() }, "SIGNATURE_INVALID", 401);
  });
  it("a tampered path (another mapped route)", async () => {
    await expectRefused({ url: "/api/v3/order", headers: signed({ url: "/api/v3/account" }) }, "SIGNATURE_INVALID", 401);
  });
  it("a tampered method (another mapped route)", async () => {
    await expectRefused({ method: "DELETE", url: "/api/v3/order", headers: signed({ method: "POST", url: "/api/v3/order" }) }, "SIGNATURE_INVALID", 401);
  });
  it("a tampered authority", async () => {
    await expectRefused({ headers: { ...signed({ host: "other.test" }), host: "gateway.test" } }, "SIGNATURE_INVALID", 401);
  });
  it("a tampered body with the original digest", async () => {
    const h = signed({ method: "POST", url: "/api/v3/order", body: "qty=1" });
    await expectRefused({ method: "POST", url: "/api/v3/order", headers: h, payload: "qty=9" }, "CONTENT_DIGEST_MISMATCH", 400);
  });
  it("a tampered body with a recomputed digest", async () => {
    const h = signed({ method: "POST", url: "/api/v3/order", body: "qty=1" });
    const other = signed({ method: "POST", url: "/api/v3/order", body: "qty=9" });
    await expectRefused(
      { method: "POST", url: "/api/v3/order", headers: { ...h, "content-digest": other["content-digest"] ?? "" }, payload: "qty=9" },
      "SIGNATURE_INVALID",
      401,
    );
  });
  it("a covered content-digest that is missing", async () => {
    const { "content-digest": _d, ...h } = signed({ method: "POST", url: "/api/v3/order", body: "qty=1" });
    await expectRefused({ method: "POST", url: "/api/v3/order", headers: h, payload: "qty=1" }, "CONTENT_DIGEST_MISSING", 400);
  });
  it("a content-digest with only unknown algorithms", async () => {
    const body = "qty=1";
    const h = signed({ method: "POST", url: "/api/v3/order", body, contentDigest: "md5=:AAAAAAAAAAAAAAAAAAAAAA==:" });
    await expectRefused({ method: "POST", url: "/api/v3/order", headers: h, payload: body }, "CONTENT_DIGEST_UNSUPPORTED", 400);
  });
  it("a malformed content-digest", async () => {
    const body = "qty=1";
    const h = signed({ method: "POST", url: "/api/v3/order", body, contentDigest: "sha-256=notbytes" });
    await expectRefused({ method: "POST", url: "/api/v3/order", headers: h, payload: body }, "CONTENT_DIGEST_MALFORMED", 400);
  });
  it("a content-digest whose sha-512 is wrong although its sha-256 is right", async () => {
    const body = "qty=1";
    const good = signed({ method: "POST", url: "/api/v3/order", body })["content-digest"] ?? "";
    const h = signed({ method: "POST", url: "/api/v3/order", body, contentDigest: `${good}, sha-512=:${Buffer.alloc(64).toString("base64")}:` });
    await expectRefused({ method: "POST", url: "/api/v3/order", headers: h, payload: body }, "CONTENT_DIGEST_MISMATCH", 400);
  });
  it("a replayed nonce", async () => {
    const h = signed({ nonce: "replay-me-0123456789" });
    const first = await t.inject({ method: "GET", url: "/api/v3/account", headers: h });
    expect(first.statusCode).toBe(200);
    await expectRefused({ headers: h }, "NONCE_REPLAYED", 409);
  });
  it("a nonce reused on another request is still a replay", async () => {
    await t.inject({ method: "GET", url: "/api/v3/account", headers: signed({ nonce: "reused-nonce-abcdef" }) });
    await expectRefused({ url: "/api/v3/order", headers: signed({ url: "/api/v3/order", nonce: "reused-nonce-abcdef" }) }, "NONCE_REPLAYED", 409);
  });
});

describe("stage 8 and routing", () => {
  it("a missing scope", async () => {
    const { key, secret: s } = await t.createKey({ scopes: ["read"] });
    const body = "qty=1";
    await expectRefused(
      { method: "POST", url: "/api/v3/order", headers: signed({ keyId: key.id, key: s ?? "", method: "POST", url: "/api/v3/order", body }), payload: body },
      "SCOPE_MISSING",
      403,
    );
  });
  it("withdraw needs the withdraw scope", async () => {
    await expectRefused({ method: "POST", url: "/sapi/v1/capital/withdraw/apply", headers: signed({ method: "POST", url: "/sapi/v1/capital/withdraw/apply" }) }, "SCOPE_MISSING", 403);
  });
  it("an unmapped route", async () => {
    await expectRefused({ url: "/api/v3/secret-admin", headers: signed({ url: "/api/v3/secret-admin" }) }, "ROUTE_NOT_FOUND", 404);
  });
  it("an unmapped method on a mapped path", async () => {
    await expectRefused({ method: "PUT", url: "/api/v3/order", headers: signed({ method: "PUT", url: "/api/v3/order" }) }, "ROUTE_NOT_FOUND", 404);
  });
  it("a non-canonical path", async () => {
    // (Dot segments are tested over a real socket: the in-process injector normalises them away.)
    await expectRefused({ url: "/api/v3/%61ccount", headers: signed({ url: "/api/v3/%61ccount" }) }, "PATH_NOT_CANONICAL", 400);
  });
  it("an oversized body", async () => {
    const body = "x".repeat(5000);
    await expectRefused({ method: "POST", url: "/api/v3/order", headers: signed({ method: "POST", url: "/api/v3/order", body }), payload: body }, "BODY_TOO_LARGE", 413);
  });
  it("an unknown gateway endpoint", async () => {
    await expectRefused({ url: "/portcullis/v1/nothing-here" }, "ROUTE_NOT_FOUND", 404);
  });
});

describe("the gateway's own endpoints", () => {
  it("answers the time", async () => {
    const res = await t.inject({ method: "GET", url: "/portcullis/v1/time" });
    expect(res.json()).toEqual({ serverTime: t.clock.ms });
  });
});
