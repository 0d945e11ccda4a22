/**
 * Asymmetric keys: generating a key pair to register with the gateway, and importing the private
 * half (PKCS#8 PEM, JWK or an existing CryptoKey) for signing. WebCrypto only.
 */
import { type KeyPairAlgorithm, checkSigningKey, isKeyPairAlgorithm, SIGNATURE_ALGORITHM_FOR, subtle, webCryptoKeyParams } from "./algorithms.js";
import { base64ToBytes, bytesToBase64 } from "./encoding.js";

/** A private key in any form `createSigner` accepts. */
export type PrivateKeyInput = CryptoKey | JsonWebKey | string;

export interface GeneratedKeyPair {
  readonly algorithm: KeyPairAlgorithm;
  /** Extractable, usage "sign". */
  readonly privateKey: CryptoKey;
  /** Usage "verify". */
  readonly publicKey: CryptoKey;
  /** SubjectPublicKeyInfo, PEM: what you register with the gateway. */
  readonly publicKeyPem: string;
  /** PKCS#8, unencrypted PEM: keep it secret. */
  readonly privateKeyPem: string;
  readonly publicKeyJwk: JsonWebKey;
  readonly privateKeyJwk: JsonWebKey;
}

const PEM = /^-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END ([A-Z0-9 ]+)-----$/;

/** Wraps DER bytes as PEM with 64-character lines. */
export function toPem(label: string, der: Uint8Array): string {
  const b64 = bytesToBase64(der);
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

/** The DER bytes of a PEM block with the given label. Throws TypeError for anything else. */
export function fromPem(pem: string, label: string): Uint8Array<ArrayBuffer> {
  const m = PEM.exec(pem.trim());
  if (m === null) throw new TypeError(`not a PEM block (expected -----BEGIN ${label}-----)`);
  const found = m[1] ?? "";
  if (found !== label || m[3] !== found) {
    const hint =
      found === "EC PRIVATE KEY" || found === "ENCRYPTED PRIVATE KEY"
        ? " (convert it to unencrypted PKCS#8: openssl pkcs8 -topk8 -nocrypt -in key.pem)"
        : "";
    throw new TypeError(`expected a "${label}" PEM block, got "${found}"${hint}`);
  }
  try {
    return base64ToBytes((m[2] ?? "").replace(/\s+/g, ""));
  } catch {
    throw new TypeError(`the ${label} PEM block is not valid base64`);
  }
}

function checkJwk(jwk: JsonWebKey, algorithm: KeyPairAlgorithm): void {
  const ok = algorithm === "ed25519" ? jwk.kty === "OKP" && jwk.crv === "Ed25519" : jwk.kty === "EC" && jwk.crv === "P-256";
  if (!ok) throw new TypeError(`the JWK (kty ${String(jwk.kty)}, crv ${String(jwk.crv)}) is not a ${algorithm} key`);
  if (typeof jwk.d !== "string") throw new TypeError("the JWK is a public key; a private key (with \"d\") is needed to sign");
}

/**
 * Synchronous shape checks for a private key: what can be known without WebCrypto. Throws
 * TypeError for a programmer mistake (wrong kind of key, wrong algorithm, not PKCS#8).
 */
export function checkPrivateKeyInput(key: unknown, algorithm: KeyPairAlgorithm): void {
  if (typeof key === "string") {
    fromPem(key, "PRIVATE KEY");
  } else if (key instanceof CryptoKey) {
    checkSigningKey(SIGNATURE_ALGORITHM_FOR[algorithm], key);
  } else if (typeof key === "object" && key !== null) {
    checkJwk(key, algorithm);
  } else {
    throw new TypeError("privateKey must be a CryptoKey, a private JWK or a PKCS#8 PEM string");
  }
}

/**
 * Imports a private key for signing (non-extractable, usage "sign"). Accepts a PKCS#8 PEM string
 * (`-----BEGIN PRIVATE KEY-----`), a private JWK, or a CryptoKey (checked and returned as is).
 */
export async function importPrivateKey(key: PrivateKeyInput, algorithm: KeyPairAlgorithm): Promise<CryptoKey> {
  if (!isKeyPairAlgorithm(algorithm)) throw new TypeError(`unsupported key algorithm ${JSON.stringify(algorithm)} (use "ed25519" or "ecdsa-p256")`);
  checkPrivateKeyInput(key, algorithm);
  if (key instanceof CryptoKey) return key;
  const params = webCryptoKeyParams(algorithm);
  try {
    if (typeof key === "string") return await subtle().importKey("pkcs8", fromPem(key, "PRIVATE KEY"), params, false, ["sign"]);
    // Drop key_ops/ext so a JWK exported with other usages still imports for signing.
    const { key_ops: _ops, ext: _ext, ...jwk } = key;
    return await subtle().importKey("jwk", jwk, params, false, ["sign"]);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new TypeError(`the private key is not a valid ${algorithm} key (${reason})`, { cause: err });
  }
}

/**
 * Generates a key pair for `algorithm` ("ed25519" or "ecdsa-p256"), extractable so that it can be
 * saved, with the public key as SPKI PEM (to register with the gateway) and both halves as PEM
 * and JWK.
 */
export async function generateKeyPair(algorithm: KeyPairAlgorithm): Promise<GeneratedKeyPair> {
  if (!isKeyPairAlgorithm(algorithm)) throw new TypeError(`unsupported key algorithm ${JSON.stringify(algorithm)} (use "ed25519" or "ecdsa-p256")`);
  const s = subtle();
  const pair =
    algorithm === "ed25519"
      ? await s.generateKey({ name: "Ed25519" }, true, ["sign", "verify"])
      : await s.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
  const [spki, pkcs8, publicKeyJwk, privateKeyJwk] = await Promise.all([
    s.exportKey("spki", pair.publicKey),
    s.exportKey("pkcs8", pair.privateKey),
    s.exportKey("jwk", pair.publicKey),
    s.exportKey("jwk", pair.privateKey),
  ]);
  return {
    algorithm,
    privateKey: pair.privateKey,
    publicKey: pair.publicKey,
    publicKeyPem: toPem("PUBLIC KEY", new Uint8Array(spki)),
    privateKeyPem: toPem("PRIVATE KEY", new Uint8Array(pkcs8)),
    publicKeyJwk,
    privateKeyJwk,
  };
}
