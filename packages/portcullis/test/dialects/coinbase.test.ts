/**
 * The Coinbase (CDP keys) dialect through the gateway's request handler (in-process inject):
 * tokens signed independently with jose (and by hand, for tokens jose would not make), the good
 * paths for ES256 and EdDSA, and every refusal in Coinbase's error shape with its Portcullis code,
 * none of which reaches the upstream.
 */
import { type KeyObject, createHmac, generateKeyPairSync, randomBytes, sign as cryptoSign } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { SignJWT, UnsecuredJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RouteSpec } from "../../src/authz/routes.js";
import { algorithmOf, verifyKeyFor } from "../../src/dialects/coinbase/keys.js";
import { coinbaseError } from "../../src/dialects/coinbase/render.js";
import { MAX_TOKEN_LENGTH, keyIdOf } from "../../src/dialects/coinbase/token.js";
import { ERROR_CODES, deny } from "../../src/errors/catalogue.js";
import { generateKeyId } from "../../src/contract/ids.js";
import { signRequest } from "../support/harness.js";
import { type TestGateway, makeGateway } from "../support/gateway.js";
import { replayOnlyHot } from "../support/hot.js";

const ROUTES: RouteSpec[] = [
  { method: "GET", path: "/api/v3/brokerage/accounts", permission: "read", dialect: "coinbase" },
  { method: "POST", path: "/api/v3/brokerage/orders", permission: "trade", dialect: "coinbase" },
  { method: "GET", path: "/api/v3/brokerage/market/products", permission: "public", dialect: "coinbase" },
  { method: "GET", path: "/native/only", permission: "read" },
];
const HOST = "gateway.test";
const ACCOUNTS = "/api/v3/brokerage/accounts";

interface TestKey {
  readonly id: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

let t: TestGateway;
let ec: TestKey;
let ed: TestKey;
let tradeOnly: TestKey;
let nativeOnlyEd: TestKey;

async function registerKey(type: "ec" | "ed25519", input: Record<string, unknown> = {}): Promise<TestKey> {
  const { publicKey, privateKey } = type === "ec" ? generateKeyPairSync("ec", { namedCurve: "P-256" }) : generateKeyPairSync("ed25519");
  const { key } = await t.createKey({ dialects: ["coinbase"], publicKey: publicKey.export({ type: "spki", format: "pem" }), ...input });
  return { id: key.id, privateKey, publicKey };
}

beforeAll(async () => {
  t = await makeGateway({ routes: ROUTES });
  ec = await registerKey("ec");
  ed = await registerKey("ed25519");
  tradeOnly = await registerKey("ec", { scopes: ["trade"] });
  nativeOnlyEd = await registerKey("ed25519", { dialects: ["native"] });
});
afterAll(async () => {
  await t.close();
});

interface TokenSpec {
  readonly key?: TestKey;
  readonly kid?: string;
  readonly sub?: string;
  readonly alg?: "ES256" | "EdDSA";
  readonly nonce?: string | null;
  readonly nbf?: number;
  readonly exp?: number;
  readonly uri?: string;
  readonly claims?: Record<string, unknown>;
  readonly header?: Record<string, unknown>;
}

/** A CDP token signed by jose, the way Coinbase's SDKs make them. */
async function token(spec: TokenSpec = {}): Promise<string> {
  const key = spec.key ?? ec;
  const kid = spec.kid ?? `organizations/test-org/apiKeys/${key.id}`;
  const alg = spec.alg ?? (key.publicKey.asymmetricKeyType === "ed25519" ? "EdDSA" : "ES256");
  const nbf = spec.nbf ?? t.clock.seconds;
  const claims: Record<string, unknown> = {
    sub: spec.sub ?? kid,
    iss: "cdp",
    nbf,
    exp: spec.exp ?? nbf + 120,
    uri: spec.uri ?? `GET ${HOST}${ACCOUNTS}`,
    ...spec.claims,
  };
  const header: Record<string, unknown> = { alg, kid, typ: "JWT", ...spec.header };
  if (spec.nonce !== null) header.nonce = spec.nonce ?? randomBytes(16).toString("hex");
  return new SignJWT(claims).setProtectedHeader({ ...header, alg }).sign(key.privateKey);
}

/** A token put together by hand (for shapes jose will not produce), ES256-signed with `key`. */
function handmade(header: unknown, claims: unknown, key: TestKey = ec): string {
  const input = `${Buffer.from(JSON.stringify(header)).toString("base64url")}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}`;
  const signature = cryptoSign("sha256", Buffer.from(input), { key: key.privateKey, dsaEncoding: "ieee-p1363" });
  return `${input}.${signature.toString("base64url")}`;
}

function baseClaims(key: TestKey = ec): { header: Record<string, unknown>; claims: Record<string, unknown> } {
  const kid = key.id;
  return {
    header: { alg: "ES256", kid, nonce: randomBytes(16).toString("hex"), typ: "JWT" },
    claims: { sub: kid, iss: "cdp", nbf: t.clock.seconds, exp: t.clock.seconds + 60, uri: `GET ${HOST}${ACCOUNTS}` },
  };
}

interface Call {
  readonly method?: "GET" | "POST";
  readonly url?: string;
  readonly host?: string;
  readonly authorization?: string;
  readonly headers?: Record<string, string>;
  readonly payload?: string;
}

async function send(call: Call): Promise<Awaited<ReturnType<TestGateway["inject"]>>> {
  const headers: Record<string, string> = { host: call.host ?? HOST, ...call.headers };
  if (call.authorization !== undefined) headers.authorization = call.authorization;
  return t.inject({
    method: call.method ?? "GET",
    url: call.url ?? ACCOUNTS,
    headers,
    ...(call.payload === undefined ? {} : { payload: call.payload }),
  });
}

async function bearer(jwt: string, call: Call = {}): Promise<Awaited<ReturnType<TestGateway["inject"]>>> {
  return send({ ...call, authorization: `Bearer ${jwt}` });
}

/** The request was refused in Coinbase's shape with this Portcullis code, and never forwarded. */
async function expectRefused(pending: Promise<Awaited<ReturnType<TestGateway["inject"]>>>, code: string, status = 401): Promise<void> {
  const before = t.upstream.requests.length;
  const res = await pending;
  const body = res.json<{ error: string; error_details: string; message: string }>();
  expect({ status: res.statusCode, details: body.error_details }).toEqual({ status, details: code });
  expect(Object.keys(body).sort()).toEqual(["error", "error_details", "message"]);
  expect(body.error).toBe(status === 401 ? "unauthorized" : status === 403 ? "PERMISSION_DENIED" : status === 404 ? "NOT_FOUND" : status >= 500 ? "UNAVAILABLE" : "INVALID_ARGUMENT");
  expect(body.message.length).toBeGreaterThan(0);
  expect(res.headers["content-type"]).toMatch(/^application\/json/);
  expect(typeof res.headers["portcullis-request-id"]).toBe("string");
  expect(t.upstream.requests.length).toBe(before);
}

describe("the good path", () => {
  it("forwards an ES256 token (CDP key name) with identity headers and without Authorization", async () => {
    const res = await bearer(await token(), { url: `${ACCOUNTS}?limit=250` });
    expect(res.statusCode).toBe(200);
    const got = t.upstream.requests.at(-1);
    expect(got?.url).toBe(`${ACCOUNTS}?limit=250`);
    expect(got?.headers.authorization).toBeUndefined();
    expect(got?.headers["portcullis-account"]).toBe("acct-1");
    expect(got?.headers["portcullis-key-id"]).toBe(ec.id);
    expect(got?.headers["portcullis-identity"]).toBeDefined();
  });

  it("forwards an EdDSA token made the way CDP tooling makes them (iss cdp, aud cdp_service, uris, iat)", async () => {
    const nbf = t.clock.seconds;
    const jwt = await new SignJWT({ sub: ed.id, iss: "cdp", aud: ["cdp_service"], uris: [`GET ${HOST}${ACCOUNTS}`] })
      .setProtectedHeader({ alg: "EdDSA", kid: ed.id, typ: "JWT", nonce: randomBytes(16).toString("hex") })
      .setIssuedAt(nbf)
      .setNotBefore(nbf)
      .setExpirationTime(nbf + 120)
      .sign(ed.privateKey);
    expect((await bearer(jwt)).statusCode).toBe(200);
  });

  it("accepts ccxt's ES256 claims (iss coinbase-cloud, aud retail_rest_api_proxy) and the bare key id", async () => {
    const jwt = await token({ kid: ec.id, claims: { iss: "coinbase-cloud", aud: ["retail_rest_api_proxy"], iat: t.clock.seconds } });
    expect((await bearer(jwt)).statusCode).toBe(200);
  });

  it("accepts a uri with the gateway's scheme, any case of host, and the default port", async () => {
    for (const uri of [`GET http://${HOST}${ACCOUNTS}`, `GET GATEWAY.Test${ACCOUNTS}`, `GET ${HOST}:80${ACCOUNTS}`]) {
      expect((await bearer(await token({ uri }))).statusCode, uri).toBe(200);
    }
  });

  it("forwards a POST with its exact body (the body is not covered, as on Coinbase)", async () => {
    const body = '{"client_order_id":"a","product_id":"BTC-USDT"}';
    const jwt = await token({ uri: `POST ${HOST}/api/v3/brokerage/orders` });
    const res = await bearer(jwt, { method: "POST", url: "/api/v3/brokerage/orders", payload: body, headers: { "content-type": "application/json" } });
    expect(res.statusCode).toBe(200);
    expect(t.upstream.requests.at(-1)?.body).toBe(body);
  });

  it("accepts a lifetime of exactly 120 s and an nbf within the future skew", async () => {
    expect((await bearer(await token({ nbf: t.clock.seconds, exp: t.clock.seconds + 120 }))).statusCode).toBe(200);
    // Half a second past a whole second, an nbf of the next second is 500 ms ahead: within the 1000 ms skew.
    t.clock.advance(500);
    expect((await bearer(await token({ nbf: t.clock.seconds + 1 }))).statusCode).toBe(200);
    t.clock.advance(500);
  });

  it("'Bearer' is case-insensitive", async () => {
    expect((await send({ authorization: `bearer ${await token()}` })).statusCode).toBe(200);
  });

  it("a public route needs no token and ignores one", async () => {
    expect((await send({ url: "/api/v3/brokerage/market/products" })).statusCode).toBe(200);
  });

  it("imports each key's CryptoKey once: later requests get it synchronously", async () => {
    const pending = verifyKeyFor(ec.publicKey, "ES256");
    const first = await pending;
    expect(verifyKeyFor(ec.publicKey, "ES256")).toBe(first);
    expect(first.algorithm.name).toBe("ECDSA");
    expect(first.usages).toEqual(["verify"]);
  });
});

describe("stage 3: the token", () => {
  it("no credentials on a Coinbase route", async () => {
    const res = await send({});
    expect(res.json<{ message: string }>().message).toMatch(/Authorization: Bearer/);
    await expectRefused(send({}), "CREDENTIALS_MISSING");
  });
  it("garbage instead of a JWT", async () => {
    await expectRefused(send({ authorization: "Bearer not-a-jwt" }), "TOKEN_MALFORMED");
    await expectRefused(send({ authorization: "Bearer a.b.c" }), "TOKEN_MALFORMED");
    await expectRefused(send({ authorization: "Bearer   " }), "TOKEN_MALFORMED");
    await expectRefused(send({ authorization: `Bearer  ${await token()}` }), "TOKEN_MALFORMED");
    await expectRefused(send({ authorization: `Bearer ${await token()}.x` }), "TOKEN_MALFORMED");
  });
  it("header or payload that is not a JSON object", async () => {
    const { header, claims } = baseClaims();
    await expectRefused(bearer(handmade([header], claims)), "TOKEN_MALFORMED");
    await expectRefused(bearer(handmade(header, "claims")), "TOKEN_MALFORMED");
    const [h = "", p = "", s = ""] = handmade(header, claims).split(".");
    await expectRefused(bearer(`${Buffer.from("{not json").toString("base64url")}.${p}.${s}`), "TOKEN_MALFORMED");
    await expectRefused(bearer(`${h}.${Buffer.from([0xff, 0xfe]).toString("base64url")}.${s}`), "TOKEN_MALFORMED");
  });
  it("non-canonical base64url", async () => {
    const { header, claims } = baseClaims();
    const [h = "", p = "", s = ""] = handmade(header, claims).split(".");
    await expectRefused(bearer(`${h}=.${p}.${s}`), "TOKEN_MALFORMED");
    await expectRefused(bearer(`${h}.${p}A.${s}`), "TOKEN_MALFORMED");
  });
  it("a token over the size cap", async () => {
    const jwt = await token({ claims: { padding: "x".repeat(MAX_TOKEN_LENGTH) } });
    await expectRefused(bearer(jwt), "TOKEN_MALFORMED");
  });
  it("alg none (an unsigned JWT)", async () => {
    const { claims } = baseClaims();
    const unsigned = new UnsecuredJWT(claims).encode();
    await expectRefused(bearer(unsigned), "TOKEN_MALFORMED");
    const [h = "", p = ""] = handmade({ alg: "none", kid: ec.id, nonce: "0123456789abcdef" }, claims).split(".");
    await expectRefused(bearer(`${h}.${p}.AAAA`), "TOKEN_MALFORMED");
    await expectRefused(bearer(handmade({ alg: "None", kid: ec.id, nonce: "0123456789abcdef" }, claims)), "TOKEN_MALFORMED");
  });
  it("HS256 (even keyed with the public key's bytes)", async () => {
    const secret = ec.publicKey.export({ type: "spki", format: "der" });
    const kid = ec.id;
    const jwt = await new SignJWT({ sub: kid, iss: "cdp", nbf: t.clock.seconds, exp: t.clock.seconds + 60, uri: `GET ${HOST}${ACCOUNTS}` })
      .setProtectedHeader({ alg: "HS256", kid, nonce: randomBytes(16).toString("hex") })
      .sign(secret);
    await expectRefused(bearer(jwt), "ALGORITHM_MISMATCH");
    const { header, claims } = baseClaims();
    const input = `${Buffer.from(JSON.stringify({ ...header, alg: "HS256" })).toString("base64url")}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}`;
    await expectRefused(bearer(`${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`), "ALGORITHM_MISMATCH");
  });
  it("other algorithms (RS256, ES384, Ed25519 by its new name)", async () => {
    for (const alg of ["RS256", "ES384", "Ed25519", "es256"]) {
      const { header, claims } = baseClaims();
      await expectRefused(bearer(handmade({ ...header, alg }, claims)), "ALGORITHM_MISMATCH");
    }
  });
  it("header members that would change processing (crit, b64, jku, jwk, x5u)", async () => {
    for (const extra of [{ crit: ["b64"], b64: false }, { jku: "https://evil.example/jwks" }, { jwk: { kty: "EC" } }, { x5u: "https://evil.example/c" }]) {
      const { header, claims } = baseClaims();
      await expectRefused(bearer(handmade({ ...header, ...extra }, claims)), "TOKEN_MALFORMED");
    }
  });
  it("typ other than JWT", async () => {
    await expectRefused(bearer(await token({ header: { typ: "at+jwt" } })), "PARAM_INVALID");
  });
  it("missing nonce", async () => {
    await expectRefused(bearer(await token({ nonce: null })), "PARAM_MISSING");
  });
  it("a malformed nonce (too short, wrong characters, not a string)", async () => {
    await expectRefused(bearer(await token({ nonce: "short" })), "NONCE_MALFORMED");
    await expectRefused(bearer(await token({ nonce: "has spaces in it" })), "NONCE_MALFORMED");
    const { header, claims } = baseClaims();
    await expectRefused(bearer(handmade({ ...header, nonce: 12345678901 }, claims)), "NONCE_MALFORMED");
  });
  it("missing kid", async () => {
    const { header, claims } = baseClaims();
    const { kid: _kid, ...rest } = header;
    await expectRefused(bearer(handmade(rest, claims)), "PARAM_MISSING");
  });
  it("sub different from kid", async () => {
    await expectRefused(bearer(await token({ sub: "organizations/other/apiKeys/x" })), "PARAM_INVALID");
    // The same key, named differently in sub and kid, is still refused.
    await expectRefused(bearer(await token({ kid: ec.id, sub: `organizations/test-org/apiKeys/${ec.id}` })), "PARAM_INVALID");
    await expectRefused(bearer(await token({ claims: { sub: undefined } })), "PARAM_MISSING");
  });
  it("an issuer or audience that is not Coinbase's", async () => {
    await expectRefused(bearer(await token({ claims: { iss: "someone-else" } })), "PARAM_INVALID");
    await expectRefused(bearer(await token({ claims: { iss: undefined } })), "PARAM_MISSING");
    await expectRefused(bearer(await token({ claims: { aud: ["another_service"] } })), "PARAM_INVALID");
    await expectRefused(bearer(await token({ claims: { aud: [] } })), "PARAM_INVALID");
  });
  it("missing or mistyped times", async () => {
    const { header, claims } = baseClaims();
    const { nbf: _nbf, ...noNbf } = claims;
    const { exp: _exp, ...noExp } = claims;
    await expectRefused(bearer(handmade(header, noNbf)), "PARAM_MISSING");
    await expectRefused(bearer(handmade({ ...header, nonce: randomBytes(8).toString("hex") }, noExp)), "PARAM_MISSING");
    await expectRefused(bearer(await token({ claims: { nbf: String(t.clock.seconds) } })), "PARAM_INVALID");
    await expectRefused(bearer(await token({ claims: { exp: t.clock.seconds + 0.5 } })), "PARAM_INVALID");
    await expectRefused(bearer(await token({ claims: { iat: "now" } })), "PARAM_INVALID");
    await expectRefused(bearer(await token({ nbf: t.clock.seconds, exp: t.clock.seconds })), "PARAM_INVALID");
  });
  it("missing uri, both uri and uris, or uris naming more than one request", async () => {
    await expectRefused(bearer(await token({ claims: { uri: undefined } })), "PARAM_MISSING");
    await expectRefused(bearer(await token({ claims: { uris: [`GET ${HOST}${ACCOUNTS}`] } })), "PARAM_INVALID");
    const two = { uri: undefined, uris: [`GET ${HOST}${ACCOUNTS}`, `POST ${HOST}/api/v3/brokerage/orders`] };
    await expectRefused(bearer(await token({ claims: two })), "PARAM_INVALID");
    await expectRefused(bearer(await token({ claims: { uri: 42 } })), "PARAM_INVALID");
  });
  it("a Bearer token on a route that does not speak the dialect", async () => {
    await expectRefused(bearer(await token({ uri: `GET ${HOST}/native/only` }), { url: "/native/only" }), "SCHEME_NOT_ACCEPTED", 400);
  });
  it("a Bearer token together with a native signature (refused in the first detected scheme's format, native)", async () => {
    const native = signRequest({ method: "GET", url: ACCOUNTS, keyId: generateKeyId("test"), key: "x".repeat(32), created: t.clock.seconds });
    const before = t.upstream.requests.length;
    const res = await bearer(await token(), { headers: native });
    expect([res.statusCode, res.json<{ code: string }>().code]).toEqual([400, "CREDENTIALS_AMBIGUOUS"]);
    expect(t.upstream.requests.length).toBe(before);
  });
  it("an unknown route answered in the dialect of the request's token", async () => {
    await expectRefused(bearer(await token(), { url: "/api/v3/brokerage/nothing" }), "ROUTE_NOT_FOUND", 404);
  });
});

describe("stage 4: the key", () => {
  it("a kid that is not a Portcullis key id (nor a CDP name carrying one)", async () => {
    await expectRefused(bearer(await token({ kid: "organizations/x/apiKeys/0b6f0d47-1d0d-4c1f-9c41-0b7b0d8e2a11" })), "KEY_ID_MALFORMED");
    await expectRefused(bearer(await token({ kid: "not-a-key" })), "KEY_ID_MALFORMED");
    await expectRefused(bearer(await token({ kid: `organizations//apiKeys/${ec.id}` })), "KEY_ID_MALFORMED");
  });
  it("a well-formed but unknown key id", async () => {
    await expectRefused(bearer(await token({ kid: `organizations/test-org/apiKeys/${generateKeyId("test")}` })), "KEY_UNKNOWN");
  });
  it("a key not issued for the Coinbase dialect", async () => {
    await expectRefused(bearer(await token({ key: nativeOnlyEd })), "DIALECT_NOT_ALLOWED");
  });
});

describe("stage 5: freshness", () => {
  it("expired", async () => {
    const nbf = t.clock.seconds - 100;
    await expectRefused(bearer(await token({ nbf, exp: nbf + 100 })), "TOKEN_EXPIRED");
    await expectRefused(bearer(await token({ nbf: t.clock.seconds - 700, exp: t.clock.seconds - 600 })), "TOKEN_EXPIRED");
  });
  it("nbf in the future (beyond the skew)", async () => {
    await expectRefused(bearer(await token({ nbf: t.clock.seconds + 30 })), "TOKEN_NOT_YET_VALID");
  });
  it("iat in the future", async () => {
    await expectRefused(bearer(await token({ claims: { iat: t.clock.seconds + 30 } })), "TOKEN_NOT_YET_VALID");
  });
  it("a lifetime over 120 s", async () => {
    await expectRefused(bearer(await token({ nbf: t.clock.seconds, exp: t.clock.seconds + 121 })), "TOKEN_LIFETIME_TOO_LONG");
    await expectRefused(bearer(await token({ nbf: t.clock.seconds - 3600, exp: t.clock.seconds + 3600 })), "TOKEN_LIFETIME_TOO_LONG");
  });
});

describe("stage 6: algorithm, uri, signature", () => {
  it("an ES256 token for an Ed25519 key, and EdDSA for a P-256 key", async () => {
    // Each signed correctly for its header's alg, by a key of that type, but naming a key of the other.
    const es = baseClaims(ed);
    await expectRefused(bearer(handmade({ ...es.header, alg: "ES256" }, es.claims, ec)), "ALGORITHM_MISMATCH");
    const eddsa = baseClaims(ec);
    const input = `${Buffer.from(JSON.stringify({ ...eddsa.header, alg: "EdDSA" })).toString("base64url")}.${Buffer.from(JSON.stringify(eddsa.claims)).toString("base64url")}`;
    await expectRefused(bearer(`${input}.${cryptoSign(null, Buffer.from(input), ed.privateKey).toString("base64url")}`), "ALGORITHM_MISMATCH");
  });
  it("a uri for another method", async () => {
    await expectRefused(bearer(await token({ uri: `POST ${HOST}${ACCOUNTS}` })), "TOKEN_URI_MISMATCH");
    await expectRefused(bearer(await token({ uri: `get ${HOST}${ACCOUNTS}` })), "TOKEN_URI_MISMATCH");
  });
  it("a uri for another host (including Coinbase's own)", async () => {
    await expectRefused(bearer(await token({ uri: `GET api.coinbase.com${ACCOUNTS}` })), "TOKEN_URI_MISMATCH");
    await expectRefused(bearer(await token({ uri: `GET ${HOST}:8080${ACCOUNTS}` })), "TOKEN_URI_MISMATCH");
    await expectRefused(bearer(await token(), { host: "other.test" }), "TOKEN_URI_MISMATCH");
  });
  it("a uri for another path, or with the query", async () => {
    await expectRefused(bearer(await token({ uri: `GET ${HOST}/api/v3/brokerage/orders` })), "TOKEN_URI_MISMATCH");
    await expectRefused(bearer(await token({ uri: `GET ${HOST}${ACCOUNTS}/` })), "TOKEN_URI_MISMATCH");
    await expectRefused(bearer(await token({ uri: `GET ${HOST}${ACCOUNTS}?limit=1` }), { url: `${ACCOUNTS}?limit=1` }), "TOKEN_URI_MISMATCH");
    await expectRefused(bearer(await token({ uri: `GET ${HOST}` })), "TOKEN_URI_MISMATCH");
    await expectRefused(bearer(await token({ uri: `GET${HOST}${ACCOUNTS}` })), "TOKEN_URI_MISMATCH");
  });
  it("a scheme prefix that is not the gateway's", async () => {
    await expectRefused(bearer(await token({ uri: `GET https://${HOST}${ACCOUNTS}` })), "TOKEN_URI_MISMATCH");
    await expectRefused(bearer(await token({ uri: `GET ftp://${HOST}${ACCOUNTS}` })), "TOKEN_URI_MISMATCH");
  });
  it("a token signed by another key", async () => {
    const other = await registerKey("ec");
    await expectRefused(bearer(await token({ key: { ...other, id: ec.id } })), "SIGNATURE_INVALID");
  });
  it("a tampered payload", async () => {
    const [h = "", , s = ""] = (await token()).split(".");
    const forged = Buffer.from(JSON.stringify({ ...baseClaims().claims, sub: `organizations/test-org/apiKeys/${ec.id}` })).toString("base64url");
    await expectRefused(bearer(`${h}.${forged}.${s}`), "SIGNATURE_INVALID");
  });
  it("a DER-encoded or truncated ES256 signature", async () => {
    const { header, claims } = baseClaims();
    const input = `${Buffer.from(JSON.stringify(header)).toString("base64url")}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}`;
    const der = cryptoSign("sha256", Buffer.from(input), ec.privateKey).toString("base64url");
    await expectRefused(bearer(`${input}.${der}`), "SIGNATURE_INVALID");
    await expectRefused(bearer(`${input}.${der.slice(0, 20)}`), "SIGNATURE_INVALID");
  });
});

describe("stage 7: replay", () => {
  it("the same token twice", async () => {
    const jwt = await token();
    expect((await bearer(jwt)).statusCode).toBe(200);
    await expectRefused(bearer(jwt), "NONCE_REPLAYED");
  });
  it("a new token reusing a nonce while the first is valid", async () => {
    const nonce = randomBytes(16).toString("hex");
    expect((await bearer(await token({ nonce }))).statusCode).toBe(200);
    t.clock.advance(60_000);
    await expectRefused(bearer(await token({ nonce })), "NONCE_REPLAYED");
  });
  it("a nonce is per key", async () => {
    const nonce = randomBytes(16).toString("hex");
    expect((await bearer(await token({ nonce }))).statusCode).toBe(200);
    expect((await bearer(await token({ nonce, key: ed }))).statusCode).toBe(200);
  });
});

describe("stage 8: authorization", () => {
  it("a key without the route's permission is 403 PERMISSION_DENIED", async () => {
    await expectRefused(bearer(await token({ key: tradeOnly })), "SCOPE_MISSING", 403);
  });
});

describe("hot state in a network store", () => {
  it("an asynchronous nonce store works, and a failing one fails closed", async () => {
    let fail = false;
    const seen = new Set<string>();
    const hot = replayOnlyHot((claim) => {
      if (fail) return Promise.reject(new Error("down"));
      const k = `${claim.keyId} ${String(claim.value)}`;
      const fresh = !seen.has(k);
      seen.add(k);
      return Promise.resolve(fresh ? "fresh" : "replayed");
    });
    const g = await makeGateway({ routes: ROUTES, hot });
    try {
      const { key } = await g.createKey({ dialects: ["coinbase"], publicKey: ec.publicKey.export({ type: "spki", format: "pem" }) });
      const jwt = await new SignJWT({ sub: key.id, iss: "cdp", nbf: g.clock.seconds, exp: g.clock.seconds + 60, uri: `GET ${HOST}${ACCOUNTS}` })
        .setProtectedHeader({ alg: "ES256", kid: key.id, nonce: randomBytes(16).toString("hex") })
        .sign(ec.privateKey);
      const headers = { host: HOST, authorization: `Bearer ${jwt}` };
      expect((await g.inject({ method: "GET", url: ACCOUNTS, headers })).statusCode).toBe(200);
      const replayed = await g.inject({ method: "GET", url: ACCOUNTS, headers });
      expect([replayed.statusCode, replayed.json<{ error_details: string }>().error_details]).toEqual([401, "NONCE_REPLAYED"]);
      fail = true;
      const jwt2 = await new SignJWT({ sub: key.id, iss: "cdp", nbf: g.clock.seconds, exp: g.clock.seconds + 60, uri: `GET ${HOST}${ACCOUNTS}` })
        .setProtectedHeader({ alg: "ES256", kid: key.id, nonce: randomBytes(16).toString("hex") })
        .sign(ec.privateKey);
      const down = await g.inject({ method: "GET", url: ACCOUNTS, headers: { host: HOST, authorization: `Bearer ${jwt2}` } });
      expect(down.statusCode).toBe(503);
      expect(down.json()).toMatchObject({ error: "UNAVAILABLE", error_details: "HOT_STORE_UNAVAILABLE" });
    } finally {
      await g.close();
    }
  });
});

describe("an https gateway", () => {
  it("accepts the https:// prefix (ccxt strips it) and refuses http://", async () => {
    const g = await makeGateway({ routes: ROUTES, scheme: "https" });
    try {
      const { key } = await g.createKey({ dialects: ["coinbase"], publicKey: ec.publicKey.export({ type: "spki", format: "pem" }) });
      const make = (uri: string): Promise<string> =>
        new SignJWT({ sub: key.id, iss: "cdp", nbf: g.clock.seconds, exp: g.clock.seconds + 60, uri })
          .setProtectedHeader({ alg: "ES256", kid: key.id, nonce: randomBytes(16).toString("hex") })
          .sign(ec.privateKey);
      const call = async (uri: string, host = HOST): Promise<number> =>
        (await g.inject({ method: "GET", url: ACCOUNTS, headers: { host, authorization: `Bearer ${await make(uri)}` } })).statusCode;
      expect(await call(`GET https://${HOST}${ACCOUNTS}`)).toBe(200);
      expect(await call(`GET ${HOST}${ACCOUNTS}`)).toBe(200);
      expect(await call(`GET ${HOST}:443${ACCOUNTS}`, `${HOST}:443`)).toBe(200);
      expect(await call(`GET http://${HOST}${ACCOUNTS}`)).toBe(401);
    } finally {
      await g.close();
    }
  });
});

describe("other schemes are not affected", () => {
  it("a native request with an unrelated Authorization header is still native", async () => {
    const { key, secret } = await t.createKey({});
    const headers = signRequest({ method: "GET", url: "/native/only", keyId: key.id, key: secret ?? "", created: t.clock.seconds });
    const res = await send({ url: "/native/only", headers: { ...headers, authorization: "Basic dXNlcjpwYXNz" } });
    expect(res.statusCode).toBe(200);
    // Authorization is a credential header of the gateway: never forwarded upstream.
    expect(t.upstream.requests.at(-1)?.headers.authorization).toBeUndefined();
  });
  it("Authorization without the Bearer scheme is not a Coinbase credential", async () => {
    await expectRefused(send({ authorization: "Basic dXNlcjpwYXNz" }), "CREDENTIALS_MISSING");
    await expectRefused(send({ authorization: "Bearer" }), "CREDENTIALS_MISSING");
    await expectRefused(send({ authorization: "BearerX abc" }), "CREDENTIALS_MISSING");
  });
});

describe("helpers", () => {
  it("maps key names to Portcullis key ids", () => {
    const id = generateKeyId("test");
    expect(keyIdOf(id)).toBe(id);
    expect(keyIdOf(`organizations/3b910e93-aaaa/apiKeys/${id}`)).toBe(id);
    expect(keyIdOf(`organizations/a/b/apiKeys/${id}`)).toBe(`organizations/a/b/apiKeys/${id}`);
    expect(keyIdOf(`apiKeys/${id}`)).toBe(`apiKeys/${id}`);
  });
  it("knows each key type's JWS algorithm", () => {
    expect(algorithmOf({ record: { algorithm: "ecdsa-p256" } } as Parameters<typeof algorithmOf>[0])).toBe("ES256");
    expect(algorithmOf({ record: { algorithm: "ed25519" } } as Parameters<typeof algorithmOf>[0])).toBe("EdDSA");
    expect(algorithmOf({ record: { algorithm: "hmac-sha256" } } as Parameters<typeof algorithmOf>[0])).toBeNull();
  });
  it("maps every denial to a Coinbase status and error kind ccxt understands", () => {
    expect(coinbaseError(deny("TOKEN_EXPIRED"))).toEqual({ status: 401, error: "unauthorized" });
    expect(coinbaseError(deny("NONCE_REPLAYED"))).toEqual({ status: 401, error: "unauthorized" });
    expect(coinbaseError(deny("PARAM_INVALID"))).toEqual({ status: 401, error: "unauthorized" });
    expect(coinbaseError(deny("KEY_SUSPENDED"))).toEqual({ status: 403, error: "PERMISSION_DENIED" });
    expect(coinbaseError(deny("IP_NOT_ALLOWED"))).toEqual({ status: 403, error: "PERMISSION_DENIED" });
    expect(coinbaseError(deny("ROUTE_NOT_FOUND"))).toEqual({ status: 404, error: "NOT_FOUND" });
    expect(coinbaseError(deny("BODY_TOO_LARGE"))).toEqual({ status: 413, error: "INVALID_ARGUMENT" });
    expect(coinbaseError({ ...deny("INTERNAL"), status: 429 })).toEqual({ status: 429, error: "rate_limit_exceeded" });
    expect(coinbaseError(deny("UPSTREAM_TIMEOUT"))).toEqual({ status: 504, error: "UNAVAILABLE" });
    expect(coinbaseError(deny("INTERNAL"))).toEqual({ status: 500, error: "INTERNAL" });
  });
});

describe("docs/dialects/coinbase.md", () => {
  it("lists the mapping of every catalogue code, as the code has it", () => {
    const doc = readFileSync(fileURLToPath(new URL("../../../../docs/dialects/coinbase.md", import.meta.url)), "utf8");
    for (const code of ERROR_CODES) {
      const { status, error } = coinbaseError(deny(code));
      expect(doc, code).toContain(`| \`${code}\` | ${status} | \`${error}\` |`);
    }
  });
});
