/**
 * secp256k1 keys in the SDK: the public forms match node:crypto's (compressed point, uncompressed
 * point, SPKI PEM), signatures are 64 bytes of r || s with a low s that node:crypto verifies, and
 * bad keys are TypeErrors.
 */
import { ECDH, createPublicKey, generateKeyPairSync, verify } from "node:crypto";
import { privateKeyToAccount } from "viem/accounts";
import { describe, expect, it } from "vitest";
import { createSigner, generateSecp256k1Key, secp256k1PublicKey } from "../src/entry/index.js";
import { signSecp256k1 } from "../src/secp256k1.js";
import { signSignatureBase } from "../src/algorithms.js";
import { generateKeyPair } from "../src/keys.js";
import { parseNative } from "./support.js";

/** The order of the secp256k1 group (SEC 2, section 2.4.1). */
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

function nodeKey() {
  const pair = generateKeyPairSync("ec", { namedCurve: "secp256k1" });
  const jwk = pair.publicKey.export({ format: "jwk" });
  const privateKey: `0x${string}` = `0x${Buffer.from(pair.privateKey.export({ format: "jwk" }).d ?? "", "base64url").toString("hex")}`;
  const uncompressed = `0x04${Buffer.from(jwk.x ?? "", "base64url").toString("hex")}${Buffer.from(jwk.y ?? "", "base64url").toString("hex")}`;
  return { pair, privateKey, uncompressed };
}

describe("secp256k1PublicKey", () => {
  it.each([1, 2, 3, 4, 5, 6, 7, 8])("matches node:crypto's forms of the same key (%i)", async () => {
    const { pair, privateKey, uncompressed } = nodeKey();
    const forms = await secp256k1PublicKey(privateKey);
    expect(forms.uncompressed).toBe(uncompressed);
    expect(forms.compressed).toBe(`0x${ECDH.convertKey(uncompressed.slice(2), "secp256k1", "hex", "hex", "compressed") as string}`);
    expect(forms.agentKey).toBe(`secp256k1:${forms.compressed}`);
    expect(forms.publicKeyPem).toBe(pair.publicKey.export({ type: "spki", format: "pem" }).toString());
    expect(createPublicKey(forms.publicKeyPem).asymmetricKeyDetails?.namedCurve).toBe("secp256k1");
    expect(forms.uncompressed).toBe(privateKeyToAccount(privateKey).publicKey);
  });

  it("generateSecp256k1Key: a fresh key with its public forms", async () => {
    const a = await generateSecp256k1Key();
    const b = await generateSecp256k1Key();
    expect(a.privateKey).toMatch(/^0x[0-9a-f]{64}$/);
    expect(a.privateKey).not.toBe(b.privateKey);
    expect(a.compressed).toMatch(/^0x0[23][0-9a-f]{64}$/);
    expect(await secp256k1PublicKey(a.privateKey)).toEqual({ compressed: a.compressed, uncompressed: a.uncompressed, publicKeyPem: a.publicKeyPem, agentKey: a.agentKey });
  });

  it("refuses what is not a private key with TypeError", async () => {
    for (const bad of ["", "0x", `0x${"a".repeat(63)}`, `0x${"a".repeat(66)}`, "a".repeat(64), `0x${"g".repeat(64)}`, 42]) {
      await expect(secp256k1PublicKey(bad as `0x${string}`)).rejects.toThrow(TypeError);
    }
    // The right shape but not in [1, n-1].
    await expect(secp256k1PublicKey(`0x${"0".repeat(64)}`)).rejects.toThrow(TypeError);
    await expect(secp256k1PublicKey(`0x${N.toString(16)}`)).rejects.toThrow(TypeError);
  });
});

describe("signing ecdsa-secp256k1-sha256", () => {
  const base = '"@method": GET\n"@authority": api.example.com\n"@path": /api/v3/account\n"@query": ?\n"@signature-params": ("@method" "@authority" "@path" "@query");created=1700000000;nonce="abcdefgh12345678";keyid="k";alg="ecdsa-secp256k1-sha256"';

  it("signs r || s with a low s, deterministically (RFC 6979), and node:crypto verifies it", async () => {
    for (let i = 0; i < 16; i++) {
      const { pair, privateKey } = nodeKey();
      const signature = await signSecp256k1(privateKey, base);
      expect(signature.length).toBe(64);
      expect(BigInt(`0x${Buffer.from(signature.subarray(32)).toString("hex")}`) <= N / 2n).toBe(true);
      expect(verify("sha256", Buffer.from(base, "latin1"), { key: pair.publicKey, dsaEncoding: "ieee-p1363" }, signature)).toBe(true);
      expect(Buffer.from(await signSecp256k1(privateKey, base)).equals(signature)).toBe(true);
      expect(verify("sha256", Buffer.from(`${base} `, "latin1"), { key: pair.publicKey, dsaEncoding: "ieee-p1363" }, signature)).toBe(false);
    }
  });

  it("signs the bytes of the base (latin1), not its UTF-8", async () => {
    const { pair, privateKey } = nodeKey();
    const latin = "caf\u00e9";
    const signature = await signSecp256k1(privateKey, latin);
    expect(verify("sha256", Buffer.from(latin, "latin1"), { key: pair.publicKey, dsaEncoding: "ieee-p1363" }, signature)).toBe(true);
  });

  it("createSigner: TypeError at construction for a private key that is not 0x and 64 hex digits", () => {
    for (const privateKey of ["", `0x${"a".repeat(62)}`, "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----"]) {
      expect(() => createSigner({ keyId: "k", privateKey: privateKey as `0x${string}`, algorithm: "secp256k1" })).toThrow(TypeError);
    }
  });

  it("createSigner: a key out of range is a TypeError when signing", async () => {
    const zero: `0x${string}` = `0x${"0".repeat(64)}`;
    const signer = createSigner({ keyId: "k", privateKey: zero, algorithm: "secp256k1" });
    expect(signer.algorithm).toBe("ecdsa-secp256k1-sha256");
    await expect(signer.sign({ method: "GET", url: "https://api.example.com/" })).rejects.toThrow(TypeError);
  });

  it("createSigner: the signature header carries 64 bytes", async () => {
    const { privateKey } = nodeKey();
    const headers = await createSigner({ keyId: "k", privateKey, algorithm: "secp256k1" }).sign({ method: "GET", url: "https://api.example.com/" });
    expect(parseNative(headers)).toMatchObject({ alg: "ecdsa-secp256k1-sha256" });
    expect(parseNative(headers).signature.length).toBe(64);
  });

  it("no CryptoKey signs ecdsa-secp256k1-sha256 (WebCrypto has no secp256k1)", async () => {
    const pair = await generateKeyPair("ecdsa-p256");
    await expect(signSignatureBase("ecdsa-secp256k1-sha256", pair.privateKey, base)).rejects.toThrow(TypeError);
  });
});
