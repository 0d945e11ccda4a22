import { constants, createHmac, verify, timingSafeEqual, type KeyObject } from "node:crypto";
import type { KeyAlgorithm, NativeAlgorithm } from "../contract/keys.js";

/** Which RFC 9421 algorithms a key of each credential type may sign with; the first is the default. */
export const ALGORITHMS_FOR_KEY: Record<KeyAlgorithm, readonly NativeAlgorithm[]> = {
  "hmac-sha256": ["hmac-sha256"],
  ed25519: ["ed25519"],
  "ecdsa-p256": ["ecdsa-p256-sha256"],
  rsa: ["rsa-pss-sha512", "rsa-v1_5-sha256"],
  secp256k1: ["ecdsa-secp256k1-sha256"],
  // A wallet owner key signs no HTTP request: it logs on (EIP-4361 / EIP-712) for a session.
  ethereum: [],
};

const HMAC_SHA256_LEN = 32;

/** HMAC-SHA256 over a latin1 byte string, compared in constant time on equal-length digests. */
function verifyHmacSha256(key: KeyObject, data: string, signature: Uint8Array): boolean {
  const expected = createHmac("sha256", key).update(data, "latin1").digest();
  if (signature.length !== HMAC_SHA256_LEN) return false;
  return timingSafeEqual(expected, signature);
}

/**
 * Verifies `signature` over `data` (a latin1 byte string: one character per byte) with `alg`.
 * `key` is a secret KeyObject for HMAC, a public KeyObject otherwise. Never throws for a bad
 * signature; returns false.
 */
export function verifySignature(alg: NativeAlgorithm, key: KeyObject, data: string, signature: Uint8Array): boolean {
  try {
    if (alg === "hmac-sha256") return verifyHmacSha256(key, data, signature);
    const bytes = Buffer.from(data, "latin1");
    switch (alg) {
      case "ed25519":
        return signature.length === 64 && verify(null, bytes, key, signature);
      case "ecdsa-p256-sha256":
        // RFC 9421 section 3.3.4: the signature is r || s, 32 bytes each, not DER.
        return signature.length === 64 && verify("sha256", bytes, { key, dsaEncoding: "ieee-p1363" }, signature);
      case "ecdsa-secp256k1-sha256":
        // As P-256: r || s, 64 bytes. The key's curve is fixed by the key (material.ts). A high-s
        // signature (s > n/2) is accepted, as OpenSSL accepts it: see docs/native-scheme.md.
        return signature.length === 64 && verify("sha256", bytes, { key, dsaEncoding: "ieee-p1363" }, signature);
      case "rsa-pss-sha512":
        return verify("sha512", bytes, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 64 }, signature);
      case "rsa-v1_5-sha256":
        return verify("sha256", bytes, { key, padding: constants.RSA_PKCS1_PADDING }, signature);
    }
  } catch {
    // A key/algorithm mismatch or malformed signature bytes: not a valid signature.
    return false;
  }
}
