/**
 * The RFC 9421 algorithms the SDK signs with, mapped onto WebCrypto. Nothing is implemented by
 * hand: every primitive is `crypto.subtle`.
 */
import { byteStringToBytes, copyBytes, utf8 } from "./encoding.js";

/**
 * RFC 9421 `alg` values (section 3.3) this SDK can produce, and `ecdsa-secp256k1-sha256` (ECDSA
 * on secp256k1 over SHA-256, r || s: signed by viem, see secp256k1.ts, not by a CryptoKey).
 */
export type SignatureAlgorithm = "hmac-sha256" | "ed25519" | "ecdsa-p256-sha256" | "ecdsa-secp256k1-sha256";

/** Asymmetric key types, as named in `createSigner` and `generateKeyPair`. */
export type KeyPairAlgorithm = "ed25519" | "ecdsa-p256";

/** The RFC 9421 algorithm each asymmetric key type signs with. */
export const SIGNATURE_ALGORITHM_FOR: Readonly<Record<KeyPairAlgorithm, SignatureAlgorithm>> = {
  ed25519: "ed25519",
  "ecdsa-p256": "ecdsa-p256-sha256",
};

export function isKeyPairAlgorithm(value: unknown): value is KeyPairAlgorithm {
  return value === "ed25519" || value === "ecdsa-p256";
}

/** The WebCrypto import/generate parameters for a key type. */
export function webCryptoKeyParams(algorithm: KeyPairAlgorithm): Algorithm | EcKeyImportParams {
  return algorithm === "ed25519" ? { name: "Ed25519" } : { name: "ECDSA", namedCurve: "P-256" };
}

/** The platform SubtleCrypto, or a TypeError explaining its absence. */
export function subtle(): SubtleCrypto {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  if (c?.subtle === undefined) throw new TypeError("WebCrypto (globalThis.crypto.subtle) is not available; a secure context is required");
  return c.subtle;
}

/**
 * Imports an HMAC-SHA256 signing key. A string is used as its UTF-8 bytes, exactly as printed
 * (Portcullis secrets are not base64-decoded); a Uint8Array is used as raw key bytes (for example
 * the RFC 9421 test secret after base64 decoding).
 */
export async function importHmacKey(secret: string | Uint8Array): Promise<CryptoKey> {
  const bytes = typeof secret === "string" ? utf8(secret) : copyBytes(secret);
  if (bytes.length === 0) throw new TypeError("the HMAC secret is empty");
  return subtle().importKey("raw", bytes, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
}

/** Checks that `key` is a private/secret signing key usable for `algorithm`; throws TypeError. */
export function checkSigningKey(algorithm: SignatureAlgorithm, key: CryptoKey): void {
  const alg = key.algorithm as { name: string; namedCurve?: string; hash?: { name: string } };
  let ok: boolean;
  switch (algorithm) {
    case "hmac-sha256":
      ok = key.type === "secret" && alg.name === "HMAC" && alg.hash?.name === "SHA-256";
      break;
    case "ed25519":
      ok = key.type === "private" && alg.name === "Ed25519";
      break;
    case "ecdsa-p256-sha256":
      ok = key.type === "private" && alg.name === "ECDSA" && alg.namedCurve === "P-256";
      break;
    case "ecdsa-secp256k1-sha256":
      // WebCrypto has no secp256k1: such a key is a hex private key (createSigner, secp256k1.ts).
      ok = false;
      break;
  }
  if (!ok) throw new TypeError(`the CryptoKey (${key.type} ${alg.name}) cannot sign with ${algorithm}`);
  if (!key.usages.includes("sign")) throw new TypeError("the CryptoKey does not allow the \"sign\" usage");
}

/**
 * Signs a signature base with `algorithm`. The base is a byte string (one character per byte) as
 * the RFC defines it; the result is the raw signature: 32 bytes for HMAC, 64 for Ed25519, and
 * r || s (64 bytes) for ECDSA P-256, which is what WebCrypto produces and RFC 9421 section 3.3.4
 * requires.
 */
export async function signSignatureBase(algorithm: SignatureAlgorithm, key: CryptoKey, base: string): Promise<Uint8Array> {
  checkSigningKey(algorithm, key);
  const data = byteStringToBytes(base);
  const params: Algorithm | EcdsaParams =
    algorithm === "hmac-sha256" ? { name: "HMAC" } : algorithm === "ed25519" ? { name: "Ed25519" } : { name: "ECDSA", hash: "SHA-256" };
  return new Uint8Array(await subtle().sign(params, key, data));
}

/** SHA-256 of some bytes. */
export async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  return new Uint8Array(await subtle().digest("SHA-256", bytes));
}
