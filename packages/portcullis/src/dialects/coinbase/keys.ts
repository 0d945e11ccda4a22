import { type KeyObject, webcrypto } from "node:crypto";
import type { VerificationKey } from "../../contract/verification-key.js";
import type { CdpAlgorithm } from "./token.js";

/**
 * The verification key in the form jose verifies with (a WebCrypto CryptoKey), imported once per
 * loaded key and cached against the key's KeyObject: a WeakMap, so the entry goes when the key
 * cache drops (or reloads) the key, and no request ever imports a key.
 */
export type VerifyKey = webcrypto.CryptoKey;

/** The JWS algorithm a key verifies, or null when the key cannot sign CDP tokens. */
export function algorithmOf(key: VerificationKey): CdpAlgorithm | null {
  switch (key.record.algorithm) {
    case "ecdsa-p256":
      return "ES256";
    case "ed25519":
      return "EdDSA";
    default:
      return null;
  }
}

const imported = new WeakMap<KeyObject, VerifyKey | Promise<VerifyKey>>();

function importParams(alg: CdpAlgorithm): webcrypto.EcKeyImportParams | webcrypto.Algorithm {
  return alg === "ES256" ? { name: "ECDSA", namedCurve: "P-256" } : { name: "Ed25519" };
}

/**
 * The CryptoKey for `publicKey` (already imported: returned as is; else the one import, shared
 * by concurrent first requests). A failed import is not cached, so a later request retries.
 */
export function verifyKeyFor(publicKey: KeyObject, alg: CdpAlgorithm): VerifyKey | Promise<VerifyKey> {
  const cached = imported.get(publicKey);
  if (cached !== undefined) return cached;
  const der = publicKey.export({ type: "spki", format: "der" });
  const pending = webcrypto.subtle.importKey("spki", der, importParams(alg), false, ["verify"]).then(
    (key) => {
      imported.set(publicKey, key);
      return key;
    },
    (err: unknown) => {
      imported.delete(publicKey);
      throw err;
    },
  );
  imported.set(publicKey, pending);
  return pending;
}
