/**
 * createSigner, per algorithm: the headers it returns verify with node:crypto against a signature
 * base rebuilt independently (test/support.ts), and stop verifying when anything signed changes.
 */
import { createHmac, createPrivateKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createSigner, generateKeyPair, type SignableRequest, type SignerOptions } from "../src/entry/index.js";
import { type Verifier, type WireRequest, parseNative, sha256Digest, verifyWire } from "./support.js";

const KEY_ID = "pck_test_v1_5Jx0sQ2fT9aLmB7cN1dE4gHk3Xq9Zp";
const SECRET = "pcs_secret_Zm9vYmFyYmF6cXV4";

/** The wire request the signed request becomes, with the signer's headers added. */
function wire(req: SignableRequest, headers: Readonly<Record<string, string>>): WireRequest {
  const url = new URL(req.url);
  return {
    method: req.method.toUpperCase(),
    authority: url.host,
    target: url.pathname + url.search,
    body: req.body === undefined || req.body === null ? Buffer.alloc(0) : typeof req.body === "string" ? Buffer.from(req.body, "utf8") : Buffer.from(req.body),
    headers,
  };
}

interface Case {
  readonly name: string;
  readonly options: SignerOptions;
  readonly verifier: Verifier;
  readonly signatureLength: number;
}

function cases(): Case[] {
  const ed = generateKeyPairSync("ed25519");
  const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const k1 = generateKeyPairSync("ec", { namedCurve: "secp256k1" });
  const pem = (k: KeyObject) => k.export({ type: "pkcs8", format: "pem" }).toString();
  const hex = (k: KeyObject): `0x${string}` => `0x${Buffer.from(k.export({ format: "jwk" }).d ?? "", "base64url").toString("hex")}`;
  return [
    { name: "hmac-sha256", options: { keyId: KEY_ID, secret: SECRET }, verifier: { alg: "hmac-sha256", secret: SECRET }, signatureLength: 32 },
    {
      name: "ed25519 (PKCS#8 PEM)",
      options: { keyId: KEY_ID, privateKey: pem(ed.privateKey), algorithm: "ed25519" },
      verifier: { alg: "ed25519", publicKey: ed.publicKey },
      signatureLength: 64,
    },
    {
      name: "ecdsa-p256 (PKCS#8 PEM)",
      options: { keyId: KEY_ID, privateKey: pem(ec.privateKey), algorithm: "ecdsa-p256" },
      verifier: { alg: "ecdsa-p256-sha256", publicKey: ec.publicKey },
      signatureLength: 64,
    },
    {
      name: "ed25519 (JWK)",
      options: { keyId: KEY_ID, privateKey: ed.privateKey.export({ format: "jwk" }), algorithm: "ed25519" },
      verifier: { alg: "ed25519", publicKey: ed.publicKey },
      signatureLength: 64,
    },
    {
      name: "ecdsa-p256 (JWK)",
      options: { keyId: KEY_ID, privateKey: ec.privateKey.export({ format: "jwk" }), algorithm: "ecdsa-p256" },
      verifier: { alg: "ecdsa-p256-sha256", publicKey: ec.publicKey },
      signatureLength: 64,
    },
    {
      name: "secp256k1 (hex, signed by viem)",
      options: { keyId: KEY_ID, privateKey: hex(k1.privateKey), algorithm: "secp256k1" },
      verifier: { alg: "ecdsa-secp256k1-sha256", publicKey: k1.publicKey },
      signatureLength: 64,
    },
  ];
}

const POST_BODY = '{"symbol":"BTCUSDT","quantity":"0.5","note":"caf\u00e9"}';
const POST = { method: "POST", url: "https://API.example.com/api/v3/order?symbol=BTCUSDT&side=BUY", body: POST_BODY } as const;

describe.each(cases())("createSigner: $name", ({ options, verifier, signatureLength }) => {
  const signer = createSigner(options);

  it("reports its key id and RFC 9421 algorithm", () => {
    expect(signer.keyId).toBe(KEY_ID);
    expect(signer.algorithm).toBe(verifier.alg);
  });

  it("signs a request with a body: all components, exact params, correct digest, verifies", async () => {
    const headers = await signer.sign(POST, { created: 1700000000, nonce: "0f3kQm1x2Yz7cB9dE4gHkA" });
    expect(Object.keys(headers).sort()).toEqual(["content-digest", "signature", "signature-input"]);
    expect(headers["signature-input"]).toBe(
      `sig1=("@method" "@authority" "@path" "@query" "content-digest");created=1700000000;nonce="0f3kQm1x2Yz7cB9dE4gHkA";keyid="${KEY_ID}";alg="${verifier.alg}"`,
    );
    expect(headers["content-digest"]).toBe(sha256Digest(Buffer.from(POST_BODY, "utf8")));
    expect(parseNative(headers).signature.length).toBe(signatureLength);
    expect(verifyWire(wire(POST, headers), verifier)).toBe(true);
  });

  it("signs a request without a body: no content-digest, @query is ?", async () => {
    const get: SignableRequest = { method: "get", url: new URL("https://api.example.com:8443/api/v3/account") };
    const headers = await signer.sign(get, { created: 1700000001 });
    expect(headers["content-digest"]).toBeUndefined();
    expect(headers["signature-input"]).toMatch(/^sig1=\("@method" "@authority" "@path" "@query"\);created=1700000001;nonce="[A-Za-z0-9_-]{22}";/);
    const w = wire(get, headers);
    expect(w.authority).toBe("api.example.com:8443");
    expect(verifyWire(w, verifier)).toBe(true);
    // An empty body is no body.
    expect((await signer.sign({ ...get, body: "" }))["content-digest"]).toBeUndefined();
    expect((await signer.sign({ ...get, body: new Uint8Array(0) }))["content-digest"]).toBeUndefined();
  });

  it("does not verify once the method, path, query, authority or body changes", async () => {
    const headers = await signer.sign(POST);
    const good = wire(POST, headers);
    expect(verifyWire(good, verifier)).toBe(true);
    expect(verifyWire({ ...good, method: "PUT" }, verifier)).toBe(false);
    expect(verifyWire({ ...good, target: "/api/v3/orders?symbol=BTCUSDT&side=BUY" }, verifier)).toBe(false);
    expect(verifyWire({ ...good, target: "/api/v3/order?symbol=BTCUSDT&side=SELL" }, verifier)).toBe(false);
    expect(verifyWire({ ...good, target: "/api/v3/order" }, verifier)).toBe(false);
    expect(verifyWire({ ...good, authority: "api.example.org" }, verifier)).toBe(false);
    // A changed body with its own correct digest still fails: the digest is covered.
    const body = Buffer.from('{"symbol":"BTCUSDT","quantity":"5.0"}');
    expect(verifyWire({ ...good, body, headers: { ...headers, "content-digest": sha256Digest(body) } }, verifier)).toBe(false);
    // A changed body with the old digest fails the digest check.
    expect(verifyWire({ ...good, body }, verifier)).toBe(false);
  });

  it("uses a fresh 22-character nonce and the current time by default", async () => {
    const before = Math.floor(Date.now() / 1000);
    const a = parseNative(await signer.sign(POST));
    const b = parseNative(await signer.sign(POST));
    const after = Math.floor(Date.now() / 1000);
    expect(a.nonce).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(b.nonce).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(a.nonce).not.toBe(b.nonce);
    expect(a.created).toBeGreaterThanOrEqual(before);
    expect(a.created).toBeLessThanOrEqual(after);
  });

  it("signs the same bytes for a string body and its UTF-8 Uint8Array", async () => {
    const fixed = { created: 1700000000, nonce: "fixed-nonce-123" };
    const fromString = await signer.sign(POST, fixed);
    const fromBytes = await signer.sign({ ...POST, body: new TextEncoder().encode(POST_BODY) }, fixed);
    expect(fromBytes["content-digest"]).toBe(fromString["content-digest"]);
    expect(fromBytes["signature-input"]).toBe(fromString["signature-input"]);
    expect(verifyWire(wire({ ...POST, body: new TextEncoder().encode(POST_BODY) }, fromBytes), verifier)).toBe(true);
  });

  it("refuses bad sign options with TypeError", async () => {
    await expect(signer.sign(POST, { created: 1.5 })).rejects.toThrow(TypeError);
    await expect(signer.sign(POST, { created: -1 })).rejects.toThrow(TypeError);
    await expect(signer.sign(POST, { nonce: "short" })).rejects.toThrow(TypeError);
    await expect(signer.sign(POST, { nonce: "has space in it" })).rejects.toThrow(TypeError);
    await expect(signer.sign(POST, { nonce: "x".repeat(129) })).rejects.toThrow(TypeError);
    await expect(signer.sign({ ...POST, method: "PO ST" })).rejects.toThrow(TypeError);
  });
});

describe("createSigner: hmac-sha256 is deterministic for fixed created and nonce", () => {
  it("produces exactly the HMAC of the expected signature base under the secret's UTF-8 bytes", async () => {
    const signer = createSigner({ keyId: KEY_ID, secret: SECRET });
    const request = { method: "POST", url: "https://api.example.com/api/v3/order?symbol=BTCUSDT", body: '{"a":1}' };
    const opts = { created: 1700000000, nonce: "0f3kQm1x2Yz7cB9dE4gHkA" };
    const first = await signer.sign(request, opts);
    const second = await createSigner({ keyId: KEY_ID, secret: SECRET }).sign(request, opts);
    expect(second).toEqual(first);

    const digest = "sha-256=:AVq9f1zFei3ZS3WQ8ErYCEJzkF7jPsXOvq5iJ2qX+GI=:";
    const params = `("@method" "@authority" "@path" "@query" "content-digest");created=1700000000;nonce="0f3kQm1x2Yz7cB9dE4gHkA";keyid="${KEY_ID}";alg="hmac-sha256"`;
    const base = [
      '"@method": POST',
      '"@authority": api.example.com',
      '"@path": /api/v3/order',
      '"@query": ?symbol=BTCUSDT',
      `"content-digest": ${digest}`,
      `"@signature-params": ${params}`,
    ].join("\n");
    const mac = createHmac("sha256", Buffer.from(SECRET, "utf8")).update(base).digest("base64");
    expect(first).toEqual({ "signature-input": `sig1=${params}`, signature: `sig1=:${mac}:`, "content-digest": digest });
  });
});

describe("createSigner with a CryptoKey", () => {
  it("accepts a private CryptoKey from generateKeyPair and refuses the public one", async () => {
    const pair = await generateKeyPair("ecdsa-p256");
    const signer = createSigner({ keyId: KEY_ID, privateKey: pair.privateKey, algorithm: "ecdsa-p256" });
    const headers = await signer.sign(POST);
    expect(verifyWire(wire(POST, headers), { alg: "ecdsa-p256-sha256", publicKey: pair.publicKeyPem })).toBe(true);
    expect(() => createSigner({ keyId: KEY_ID, privateKey: pair.publicKey, algorithm: "ecdsa-p256" })).toThrow(TypeError);
    expect(() => createSigner({ keyId: KEY_ID, privateKey: pair.privateKey, algorithm: "ed25519" })).toThrow(TypeError);
  });
});

describe("createSigner: programmer mistakes are TypeErrors at construction", () => {
  const ed = generateKeyPairSync("ed25519");
  const edPem = ed.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  const bad = (options: unknown) => () => createSigner(options as SignerOptions);

  it("refuses a missing or unusable keyId", () => {
    expect(bad({ secret: SECRET })).toThrow(TypeError);
    expect(bad({ keyId: "", secret: SECRET })).toThrow(TypeError);
    expect(bad({ keyId: 42, secret: SECRET })).toThrow(TypeError);
    expect(bad({ keyId: "pck_caf\u00e9", secret: SECRET })).toThrow(TypeError);
    expect(bad(undefined)).toThrow(TypeError);
  });

  it("refuses an empty secret, or neither/both kinds of key", () => {
    expect(bad({ keyId: KEY_ID, secret: "" })).toThrow(TypeError);
    expect(bad({ keyId: KEY_ID })).toThrow(TypeError);
    expect(bad({ keyId: KEY_ID, secret: SECRET, privateKey: edPem, algorithm: "ed25519" })).toThrow(TypeError);
    expect(bad({ keyId: KEY_ID, secret: SECRET, algorithm: "ed25519" })).toThrow(TypeError);
  });

  it("refuses unsupported algorithms and keys of the wrong kind", () => {
    expect(bad({ keyId: KEY_ID, privateKey: edPem })).toThrow(TypeError);
    expect(bad({ keyId: KEY_ID, privateKey: edPem, algorithm: "rsa-pss-sha512" })).toThrow(TypeError);
    expect(bad({ keyId: KEY_ID, privateKey: edPem, algorithm: "ecdsa-p256-sha256" })).toThrow(TypeError);
    const publicPem = ed.publicKey.export({ type: "spki", format: "pem" }).toString();
    expect(bad({ keyId: KEY_ID, privateKey: publicPem, algorithm: "ed25519" })).toThrow(/PRIVATE KEY/);
    const sec1 = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "sec1", format: "pem" }).toString();
    expect(bad({ keyId: KEY_ID, privateKey: sec1, algorithm: "ecdsa-p256" })).toThrow(/openssl pkcs8/);
    expect(bad({ keyId: KEY_ID, privateKey: ed.publicKey.export({ format: "jwk" }), algorithm: "ed25519" })).toThrow(/private key/);
    expect(bad({ keyId: KEY_ID, privateKey: ed.privateKey.export({ format: "jwk" }), algorithm: "ecdsa-p256" })).toThrow(TypeError);
    expect(bad({ keyId: KEY_ID, privateKey: 12, algorithm: "ed25519" })).toThrow(TypeError);
  });

  it("surfaces a PEM whose key does not match the algorithm when signing", async () => {
    const ecPem = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    expect(createPrivateKey(ecPem).asymmetricKeyType).toBe("ec");
    // The PEM's shape is fine, so construction succeeds; WebCrypto refuses the key on first use.
    const signer = createSigner({ keyId: KEY_ID, privateKey: ecPem, algorithm: "ed25519" });
    await expect(signer.sign(POST)).rejects.toThrow(/not a valid ed25519 key/);
  });
});
