/** generateKeyPair and importPrivateKey: the formats interoperate with node:crypto. */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type JsonWebKey as NodeJwk, sign, verify } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createSigner, generateKeyPair, importPrivateKey, signSignatureBase, type KeyPairAlgorithm } from "../src/entry/index.js";
import { verifyWire } from "./support.js";

const CASES: readonly { algorithm: KeyPairAlgorithm; nodeType: string; alg: "ed25519" | "ecdsa-p256-sha256" }[] = [
  { algorithm: "ed25519", nodeType: "ed25519", alg: "ed25519" },
  { algorithm: "ecdsa-p256", nodeType: "ec", alg: "ecdsa-p256-sha256" },
];

describe.each(CASES)("generateKeyPair($algorithm)", ({ algorithm, nodeType, alg }) => {
  it("returns PEMs and JWKs that node:crypto reads as the same key pair", async () => {
    const pair = await generateKeyPair(algorithm);
    expect(pair.algorithm).toBe(algorithm);
    expect(pair.privateKey.extractable).toBe(true);
    expect(pair.privateKey.usages).toEqual(["sign"]);
    expect(pair.publicKey.usages).toEqual(["verify"]);
    expect(pair.publicKeyPem).toMatch(/^-----BEGIN PUBLIC KEY-----\n([A-Za-z0-9+/=]{1,64}\n)+-----END PUBLIC KEY-----\n$/);
    expect(pair.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n([A-Za-z0-9+/=]{1,64}\n)+-----END PRIVATE KEY-----\n$/);

    const publicKey = createPublicKey(pair.publicKeyPem);
    const privateKey = createPrivateKey(pair.privateKeyPem);
    expect(publicKey.asymmetricKeyType).toBe(nodeType);
    if (nodeType === "ec") expect(publicKey.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    // The three encodings describe one key.
    expect(createPublicKey(privateKey).export({ format: "jwk" })).toEqual(publicKey.export({ format: "jwk" }));
    expect(createPublicKey({ key: pair.publicKeyJwk as NodeJwk, format: "jwk" }).export({ format: "jwk" })).toEqual(publicKey.export({ format: "jwk" }));
    expect(createPrivateKey({ key: pair.privateKeyJwk as NodeJwk, format: "jwk" }).export({ format: "jwk" })).toEqual(privateKey.export({ format: "jwk" }));
    expect(typeof pair.privateKeyJwk.d).toBe("string");
    expect(pair.publicKeyJwk.d).toBeUndefined();
  });

  it("signs with the generated CryptoKey, PEM and JWK, verifiable with the public PEM", async () => {
    const pair = await generateKeyPair(algorithm);
    const publicKey = createPublicKey(pair.publicKeyPem);
    const base = '"@method": GET\n"@signature-params": ("@method")';
    const data = Buffer.from(base);
    const nodeVerify = (s: Uint8Array) =>
      alg === "ed25519" ? verify(null, data, publicKey, s) : verify("sha256", data, { key: publicKey, dsaEncoding: "ieee-p1363" }, s);
    for (const key of [pair.privateKey, await importPrivateKey(pair.privateKeyPem, algorithm), await importPrivateKey(pair.privateKeyJwk, algorithm)]) {
      const signature = await signSignatureBase(alg, key, base);
      expect(signature.length).toBe(64);
      expect(nodeVerify(signature)).toBe(true);
      expect(nodeVerify(await signSignatureBase(alg, key, base.replace("GET", "PUT")))).toBe(false);
    }

    const request = { method: "DELETE", url: "https://api.example.com/api/v3/order?orderId=42" };
    const headers = await createSigner({ keyId: "pck_test_v1_x", privateKey: pair.privateKeyPem, algorithm }).sign(request);
    const wire = { method: "DELETE", authority: "api.example.com", target: "/api/v3/order?orderId=42", body: Buffer.alloc(0), headers };
    expect(verifyWire(wire, { alg, publicKey: pair.publicKeyPem })).toBe(true);
  });

  it("generates a different key each time", async () => {
    const [a, b] = await Promise.all([generateKeyPair(algorithm), generateKeyPair(algorithm)]);
    expect(a.publicKeyPem).not.toBe(b.publicKeyPem);
  });
});

describe("importPrivateKey", () => {
  it("imports a node-generated Ed25519 PKCS#8 PEM, and its signatures match node's (deterministic)", async () => {
    const { privateKey } = generateKeyPairSync("ed25519");
    const pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    const key = await importPrivateKey(pem, "ed25519");
    expect(key.type).toBe("private");
    expect(key.extractable).toBe(false);
    const base = "hello";
    expect(Buffer.from(await signSignatureBase("ed25519", key, base)).toString("base64")).toBe(sign(null, Buffer.from(base), privateKey).toString("base64"));
  });

  it("accepts PEM with CRLF line ends and surrounding whitespace", async () => {
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString().replace(/\n/g, "\r\n");
    const key = await importPrivateKey(`\n  ${pem}  \n`, "ecdsa-p256");
    expect(key.algorithm).toEqual({ name: "ECDSA", namedCurve: "P-256" });
  });

  it("refuses the wrong PEM label, bad base64, a key of another curve and unknown algorithms", async () => {
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-384" });
    const p384 = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    await expect(importPrivateKey(p384, "ecdsa-p256")).rejects.toThrow(/not a valid ecdsa-p256 key/);
    await expect(importPrivateKey("-----BEGIN PRIVATE KEY-----\n@@@@\n-----END PRIVATE KEY-----", "ed25519")).rejects.toThrow(/not valid base64/);
    await expect(importPrivateKey("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----", "ed25519")).rejects.toThrow(TypeError);
    await expect(importPrivateKey("not a pem", "ed25519")).rejects.toThrow(TypeError);
    await expect(importPrivateKey(privateKey.export({ format: "jwk" }), "ecdsa-p256")).rejects.toThrow(TypeError);
    await expect(importPrivateKey(p384, "rsa" as KeyPairAlgorithm)).rejects.toThrow(TypeError);
    await expect(generateKeyPair("rsa" as KeyPairAlgorithm)).rejects.toThrow(TypeError);
  });
});
