/**
 * secp256k1 keys (`ecdsa-secp256k1-sha256`, native scheme only): key input in every form (SPKI
 * PEM, JWK, compressed and uncompressed hex points) and its refusals; requests signed by
 * node:crypto, by viem and by the client SDK (in-process and over the gateway's socket, sessions
 * included), and the refusals of a wrong key, a malformed signature, a wrong `alg`; high-s
 * signatures are accepted (docs/native-scheme.md says why) and their replay is refused.
 */
import { PortcullisApiError, createClient, generateSecp256k1Key, secp256k1PublicKey } from "@portcullis/client";
import { ECDH, createPublicKey, generateKeyPairSync, createHash, sign as cryptoSign, verify, type KeyObject } from "node:crypto";
import { sign as viemSign } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminApi } from "../../src/admin/server.js";
import { silentLogger } from "../../src/log/logger.js";
import type { PortcullisError } from "../../src/errors/catalogue.js";
import { type SignSpec, type SignedHeaders, signRequest } from "../support/harness.js";
import { type TestGateway, makeGateway } from "../support/gateway.js";

/** The order of the secp256k1 group (SEC 2, section 2.4.1). */
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

let t: TestGateway;
let base: string;

beforeAll(async () => {
  t = await makeGateway({ sessions: true });
  const address = await t.gateway.listen(0, "127.0.0.1");
  base = `http://127.0.0.1:${address.port}`;
});
afterAll(async () => {
  await t.close();
});

interface NodeKey {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly pem: string;
  readonly hex: `0x${string}`;
  readonly uncompressed: string;
  readonly compressed: string;
}

function nodeKey(): NodeKey {
  const pair = generateKeyPairSync("ec", { namedCurve: "secp256k1" });
  const jwk = pair.publicKey.export({ format: "jwk" });
  const uncompressed = `04${Buffer.from(jwk.x ?? "", "base64url").toString("hex")}${Buffer.from(jwk.y ?? "", "base64url").toString("hex")}`;
  return {
    ...pair,
    pem: pair.publicKey.export({ type: "spki", format: "pem" }).toString(),
    hex: `0x${Buffer.from(pair.privateKey.export({ format: "jwk" }).d ?? "", "base64url").toString("hex")}`,
    uncompressed: `0x${uncompressed}`,
    compressed: `0x${ECDH.convertKey(uncompressed, "secp256k1", "hex", "hex", "compressed") as string}`,
  };
}

async function creationError(input: Record<string, unknown>): Promise<PortcullisError> {
  // createKey throws at once for input the parser refuses, and rejects for what the key service refuses.
  const err = await Promise.resolve()
    .then(() => t.createKey(input))
    .then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).not.toBeNull();
  return err as PortcullisError;
}

describe("creating a secp256k1 key", () => {
  it("from an SPKI PEM, a JWK, a compressed and an uncompressed hex point: the same SPKI PEM is stored", async () => {
    const k = nodeKey();
    const forms = [k.pem, JSON.stringify(k.publicKey.export({ format: "jwk" })), k.compressed, k.uncompressed, k.compressed.toUpperCase().replace("0X", "0x"), `  ${k.compressed}\n`];
    for (const publicKey of forms) {
      const { key, secret } = await t.createKey({ publicKey });
      expect({ algorithm: key.algorithm, publicKey: key.publicKey, secret, dialects: key.dialects }).toEqual({ algorithm: "secp256k1", publicKey: k.pem, secret: null, dialects: ["native"] });
    }
    const { key } = await t.createKey({ algorithm: "secp256k1", publicKey: k.compressed });
    expect(key.algorithm).toBe("secp256k1");
  });

  it("the SDK's public forms are accepted and name the same key", async () => {
    const generated = await generateSecp256k1Key();
    const a = await t.createKey({ algorithm: "secp256k1", publicKey: generated.publicKeyPem });
    const b = await t.createKey({ algorithm: "secp256k1", publicKey: generated.compressed });
    expect(a.key.publicKey).toBe(b.key.publicKey);
    expect(createPublicKey(a.key.publicKey ?? "").asymmetricKeyDetails?.namedCurve).toBe("secp256k1");
  });

  it.each([
    ["a compressed x that is on no point of the curve", `0x02${"00".repeat(32)}`],
    ["a compressed x not below the field prime", `0x03${"ff".repeat(32)}`],
    ["an uncompressed point off the curve", "off-curve"],
    ["the point's y of another x", "swapped"],
  ])("refuses %s: VALIDATION_FAILED, not a point on secp256k1", async (_name, given) => {
    const k = nodeKey();
    const other = nodeKey();
    const publicKey =
      given === "off-curve" ? `${k.uncompressed.slice(0, -2)}${k.uncompressed.endsWith("00") ? "01" : "00"}` : given === "swapped" ? `${k.uncompressed.slice(0, 68)}${other.uncompressed.slice(68)}` : given;
    const err = await creationError({ algorithm: "secp256k1", publicKey });
    expect({ code: err.code, status: err.status, fields: err.fields }).toEqual({ code: "VALIDATION_FAILED", status: 400, fields: { publicKey: "publicKey is not a point on the secp256k1 curve" } });
  });

  it("refuses a JWK whose point is off the curve: VALIDATION_FAILED", async () => {
    const jwk = nodeKey().publicKey.export({ format: "jwk" });
    const err = await creationError({ publicKey: JSON.stringify({ ...jwk, y: Buffer.alloc(32).toString("base64url") }) });
    expect({ code: err.code, field: err.fields?.publicKey }).toEqual({ code: "VALIDATION_FAILED", field: "publicKey could not be parsed as an SPKI PEM or JWK public key" });
  });

  it.each([
    ["the point at infinity", "0x00"],
    ["a hybrid point (0x06)", `0x06${"11".repeat(64)}`],
    ["a compressed point one digit short", `0x02${"1".repeat(63)}`],
    ["an uncompressed point one byte long", `0x04${"11".repeat(65)}`],
    ["hex that is not hex", `0x02${"zz".repeat(32)}`],
    ["an Ethereum address", "0x52908400098527886E0F7030069857D2E4169EE7"],
  ])("refuses %s: VALIDATION_FAILED", async (_name, publicKey) => {
    const err = await creationError({ algorithm: "secp256k1", publicKey });
    expect({ code: err.code, field: err.fields?.publicKey }).toEqual({
      code: "VALIDATION_FAILED",
      field: "a hex public key must be a secp256k1 point: 0x02 or 0x03 and 64 hex digits (compressed), or 0x04 and 128 (uncompressed)",
    });
  });

  it("refuses a private key in hex without echoing it", async () => {
    const k = nodeKey();
    const err = await creationError({ algorithm: "secp256k1", publicKey: k.hex });
    expect(err.code).toBe("VALIDATION_FAILED");
    expect(err.fields?.publicKey).toMatch(/size of a private key/);
    expect(JSON.stringify([err.message, err.fields])).not.toContain(k.hex.slice(2));
  });

  it("refuses a secp256k1 key for another algorithm, and any key of another type as secp256k1", async () => {
    const k = nodeKey();
    expect((await creationError({ algorithm: "ecdsa-p256", publicKey: k.compressed })).fields?.publicKey).toBe("the public key is secp256k1 but the algorithm requested is ecdsa-p256");
    const p256 = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ type: "spki", format: "pem" }).toString();
    expect((await creationError({ algorithm: "secp256k1", publicKey: p256 })).fields?.publicKey).toBe("the public key is ecdsa-p256 but the algorithm requested is secp256k1");
  });

  it("refuses a venue's dialect: secp256k1 signs the native scheme only", async () => {
    const k = nodeKey();
    for (const dialect of ["binance", "coinbase", "bybit"]) {
      const err = await creationError({ algorithm: "secp256k1", publicKey: k.compressed, dialects: ["native", dialect] });
      expect({ code: err.code, field: Object.keys(err.fields ?? {}) }).toEqual({ code: "VALIDATION_FAILED", field: ["dialects"] });
    }
    // Without --algorithm the type is known only once the key is parsed: the key service checks it.
    const err = await creationError({ publicKey: k.compressed, dialects: ["binance"] });
    expect({ code: err.code, fields: err.fields }).toEqual({ code: "VALIDATION_FAILED", fields: { dialects: "incompatible with the key" } });
  });
});

/** Headers signed over the harness's signature base by an async signer (viem), or with bytes a test chose. */
async function signedBy(spec: Omit<SignSpec, "key" | "signWith">, signBase: (base: Buffer) => Promise<Uint8Array>): Promise<SignedHeaders> {
  let captured: Buffer = Buffer.alloc(0);
  const headers = signRequest({
    ...spec,
    key: "unused",
    signWith: (b) => {
      captured = b;
      return new Uint8Array(0);
    },
  });
  const signature = await signBase(captured);
  return { ...headers, signature: `sig1=:${Buffer.from(signature).toString("base64")}:` };
}

/** viem's signature of SHA-256(base): r || s (it gives r || s || v; v is for recovery). */
async function viemSignature(privateKey: `0x${string}`, b: Buffer): Promise<Uint8Array> {
  const hash: `0x${string}` = `0x${createHash("sha256").update(b).digest("hex")}`;
  return (await viemSign({ hash, privateKey, to: "bytes" })).slice(0, 64);
}

/** The same signature with s replaced by n - s: the other valid encoding (high s when s was low). */
function flipS(signature: Uint8Array): Uint8Array {
  const s = BigInt(`0x${Buffer.from(signature.subarray(32)).toString("hex")}`);
  return Buffer.concat([signature.subarray(0, 32), Buffer.from((N - s).toString(16).padStart(64, "0"), "hex")]);
}

async function answer(headers: Record<string, string>, request: { method?: string; url?: string; payload?: string } = {}): Promise<{ status: number; code: string | undefined }> {
  const before = t.upstream.requests.length;
  const res = await t.inject({ method: request.method ?? "GET", url: request.url ?? "/api/v3/account", headers, ...(request.payload === undefined ? {} : { payload: request.payload }) });
  const code = res.statusCode === 200 ? undefined : res.json<{ code: string }>().code;
  if (res.statusCode !== 200) expect(t.upstream.requests.length).toBe(before);
  expect(res.payload).not.toMatch(/\bat .*\.(ts|js):\d+/);
  return { status: res.statusCode, code };
}

describe("verifying ecdsa-secp256k1-sha256", () => {
  let k: NodeKey;
  let keyId: string;
  const spec = (over: Partial<SignSpec> = {}): SignSpec => ({ method: "GET", url: "/api/v3/account", keyId, key: k.privateKey, alg: "ecdsa-secp256k1-sha256", created: t.clock.seconds, ...over });

  beforeAll(async () => {
    k = nodeKey();
    keyId = (await t.createKey({ algorithm: "secp256k1", publicKey: k.compressed })).key.id;
  });

  it("accepts signatures made by node:crypto (OpenSSL: low and high s alike), with and without alg, GET and POST", async () => {
    let high = 0;
    for (let i = 0; i < 24; i++) {
      const headers = signRequest(spec());
      const sig = Buffer.from(/:(.*):/.exec(headers.signature)?.[1] ?? "", "base64");
      if (BigInt(`0x${sig.subarray(32).toString("hex")}`) > N / 2n) high++;
      expect(await answer(headers)).toEqual({ status: 200, code: undefined });
    }
    // OpenSSL draws k at random and does not normalise s: about half are high (2^-24 odds of none).
    expect(high).toBeGreaterThan(0);
    expect(await answer(signRequest(spec({ includeAlg: false })))).toEqual({ status: 200, code: undefined });
    const body = '{"symbol":"BTCUSDT","side":"BUY"}';
    expect(await answer({ ...signRequest(spec({ method: "POST", url: "/api/v3/order", body })), "content-type": "application/json" }, { method: "POST", url: "/api/v3/order", payload: body })).toEqual({ status: 200, code: undefined });
    expect(t.upstream.requests.at(-1)?.headers["portcullis-key-id"]).toBe(keyId);
  });

  it("accepts signatures made by viem, and node:crypto verifies viem's signatures", async () => {
    for (let i = 0; i < 8; i++) {
      let base: Buffer = Buffer.alloc(0);
      const headers = await signedBy(spec(), async (b) => {
        base = b;
        return viemSignature(k.hex, b);
      });
      const sig = Buffer.from(/:(.*):/.exec(headers.signature)?.[1] ?? "", "base64");
      expect(sig.length).toBe(64);
      expect(BigInt(`0x${sig.subarray(32).toString("hex")}`) <= N / 2n).toBe(true);
      expect(verify("sha256", base, { key: k.publicKey, dsaEncoding: "ieee-p1363" }, sig)).toBe(true);
      expect(await answer(headers)).toEqual({ status: 200, code: undefined });
    }
  });

  it("accepts the high-s form of a signature, and refuses its replay (the nonce is spent, whatever the encoding)", async () => {
    const nonce = "high-s-nonce-0001";
    const low = await signedBy(spec({ nonce }), (b) => viemSignature(k.hex, b));
    const lowBytes = Buffer.from(/:(.*):/.exec(low.signature)?.[1] ?? "", "base64");
    const high = { ...low, signature: `sig1=:${Buffer.from(flipS(lowBytes)).toString("base64")}:` };
    expect(await answer(high)).toEqual({ status: 200, code: undefined });
    expect(await answer(low)).toEqual({ status: 409, code: "NONCE_REPLAYED" });
    expect(await answer(high)).toEqual({ status: 409, code: "NONCE_REPLAYED" });
  });

  it("refuses a signature by another secp256k1 key: SIGNATURE_INVALID", async () => {
    const other = nodeKey();
    expect(await answer(signRequest(spec({ key: other.privateKey })))).toEqual({ status: 401, code: "SIGNATURE_INVALID" });
    expect(await answer(await signedBy(spec(), (b) => viemSignature(other.hex, b)))).toEqual({ status: 401, code: "SIGNATURE_INVALID" });
  });

  it("refuses a signature over the Keccak-256 of the base (an Ethereum habit): SIGNATURE_INVALID", async () => {
    const { keccak256 } = await import("viem");
    expect(await answer(await signedBy(spec(), (b) => viemSign({ hash: keccak256(b), privateKey: k.hex, to: "bytes" }).then((s) => s.slice(0, 64))))).toEqual({ status: 401, code: "SIGNATURE_INVALID" });
  });

  it.each([
    ["65 bytes: r || s || v, as viem and wallets give it", (s: Uint8Array) => Buffer.concat([s, Buffer.from([27])])],
    ["63 bytes", (s: Uint8Array) => s.subarray(0, 63)],
    ["an empty signature", () => new Uint8Array(0)],
    ["DER (ASN.1) instead of r || s", "der"],
    ["r = 0", (s: Uint8Array) => Buffer.concat([Buffer.alloc(32), s.subarray(32)])],
    ["s = 0", (s: Uint8Array) => Buffer.concat([s.subarray(0, 32), Buffer.alloc(32)])],
    ["s = n", (s: Uint8Array) => Buffer.concat([s.subarray(0, 32), Buffer.from(N.toString(16), "hex")])],
    ["r and s all ones", () => Buffer.alloc(64, 0xff)],
  ] as const)("refuses a malformed signature, %s: SIGNATURE_INVALID", async (_name, tamper) => {
    const headers = await signedBy(spec(), async (b) => {
      if (tamper === "der") return cryptoSign("sha256", b, k.privateKey);
      return tamper(await viemSignature(k.hex, b));
    });
    expect(await answer(headers)).toEqual({ status: 401, code: "SIGNATURE_INVALID" });
  });

  it("refuses another alg for a secp256k1 key, and ecdsa-secp256k1-sha256 for a P-256 key: ALGORITHM_MISMATCH", async () => {
    expect(await answer(signRequest(spec({ alg: "ecdsa-p256-sha256" })))).toEqual({ status: 401, code: "ALGORITHM_MISMATCH" });
    const p256 = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const { key } = await t.createKey({ publicKey: p256.publicKey.export({ type: "spki", format: "pem" }).toString() });
    expect(await answer(signRequest(spec({ keyId: key.id, key: p256.privateKey })))).toEqual({ status: 401, code: "ALGORITHM_MISMATCH" });
  });
});

describe("the client SDK against the gateway's socket", () => {
  it("signs GET and POST with a secp256k1 key; the gateway forwards both", async () => {
    const generated = await generateSecp256k1Key();
    const { key } = await t.createKey({ algorithm: "secp256k1", publicKey: generated.compressed });
    const client = createClient({ baseUrl: base, keyId: key.id, privateKey: generated.privateKey, algorithm: "secp256k1", now: t.clock.now });
    expect(client.algorithm).toBe("ecdsa-secp256k1-sha256");
    expect(await client.json("GET", "/api/v3/account?omitZeroBalances=true")).toEqual({ ok: true, url: "/api/v3/account?omitZeroBalances=true" });
    expect(await client.json("POST", "/api/v3/order", { json: { symbol: "BTCUSDT", side: "BUY", quantity: "0.1" } })).toMatchObject({ ok: true });
    const got = t.upstream.requests.at(-1);
    expect({ key: got?.headers["portcullis-key-id"], body: got?.body }).toEqual({ key: key.id, body: '{"symbol":"BTCUSDT","side":"BUY","quantity":"0.1"}' });
  });

  it("opens a session with a secp256k1 key: one signature at logon, HMAC afterwards", async () => {
    const generated = await generateSecp256k1Key();
    const { key } = await t.createKey({ algorithm: "secp256k1", publicKey: generated.publicKeyPem });
    const session = await createClient({ baseUrl: base, keyId: key.id, privateKey: generated.privateKey, algorithm: "secp256k1", now: t.clock.now }).logon({ scopes: ["read"] });
    expect(session.algorithm).toBe("hmac-sha256");
    expect(session.session).toMatchObject({ apiKeyId: key.id, scopes: ["read"] });
    expect(await session.json("GET", "/api/v3/account")).toMatchObject({ ok: true });
    const err = await session.json("POST", "/api/v3/order", { json: {} }).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(PortcullisApiError);
    expect({ status: (err as PortcullisApiError).status, code: (err as PortcullisApiError).code }).toEqual({ status: 403, code: "SCOPE_MISSING" });
  });

  it("a client with another key's private half is refused SIGNATURE_INVALID", async () => {
    const [registered, other] = [await generateSecp256k1Key(), await generateSecp256k1Key()];
    const { key } = await t.createKey({ algorithm: "secp256k1", publicKey: (await secp256k1PublicKey(registered.privateKey)).uncompressed });
    const client = createClient({ baseUrl: base, keyId: key.id, privateKey: other.privateKey, algorithm: "secp256k1", now: t.clock.now });
    const err = await client.json("GET", "/api/v3/account").then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(PortcullisApiError);
    expect({ status: (err as PortcullisApiError).status, code: (err as PortcullisApiError).code }).toEqual({ status: 401, code: "SIGNATURE_INVALID" });
  });
});

describe("the admin API", () => {
  let admin: AdminApi;
  let adminBase: string;
  beforeAll(async () => {
    admin = new AdminApi({ core: t.core, logger: silentLogger(), now: t.clock.now });
    const address = await admin.listen(0, "127.0.0.1");
    adminBase = `http://127.0.0.1:${address.port}`;
  });
  afterAll(async () => {
    await admin.close(500);
  });

  it("an operator's secp256k1 key creates a secp256k1 key from a hex point; an invalid point is VALIDATION_FAILED", async () => {
    const operatorKey = await generateSecp256k1Key();
    const { key } = await t.createKey({ account: "ops", scopes: ["admin:*"], operator: true, algorithm: "secp256k1", publicKey: operatorKey.compressed });
    const client = createClient({ baseUrl: adminBase, keyId: key.id, privateKey: operatorKey.privateKey, algorithm: "secp256k1", now: t.clock.now });
    const agent = await generateSecp256k1Key();
    const created = await client.json<{ algorithm: string; publicKey: string }>("POST", "/portcullis/v1/keys", { json: { account: "bot-1", scopes: ["read", "trade"], algorithm: "secp256k1", publicKey: agent.compressed } });
    expect(created).toMatchObject({ algorithm: "secp256k1", publicKey: agent.publicKeyPem });
    const err = await client.json("POST", "/portcullis/v1/keys", { json: { account: "bot-1", scopes: ["read"], algorithm: "secp256k1", publicKey: `0x02${"00".repeat(32)}` } }).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(PortcullisApiError);
    const e = err as PortcullisApiError;
    expect({ status: e.status, code: e.code, fields: (e.body as { fields?: unknown }).fields }).toEqual({ status: 400, code: "VALIDATION_FAILED", fields: { publicKey: "publicKey is not a point on the secp256k1 curve" } });
  });
});
