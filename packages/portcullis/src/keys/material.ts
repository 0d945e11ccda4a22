import { ECDH, createPublicKey, type JsonWebKey, type KeyObject } from "node:crypto";
import { PortcullisError } from "../errors/catalogue.js";
import type { KeyAlgorithm } from "../contract/keys.js";

export const MIN_RSA_BITS = 2048;

export interface ImportedPublicKey {
  readonly algorithm: Exclude<KeyAlgorithm, "hmac-sha256">;
  /** Normalised SPKI PEM: what is stored. */
  readonly pem: string;
  readonly keyObject: KeyObject;
}

function invalid(message: string): PortcullisError {
  return new PortcullisError("VALIDATION_FAILED", message, { publicKey: message });
}

/** A secp256k1 public key as hex: `0x02…`/`0x03…` (compressed, 33 bytes) or `0x04…` (uncompressed, 65 bytes). */
const SECP256K1_HEX_RE = /^0x(?:0[23][0-9a-fA-F]{64}|04[0-9a-fA-F]{128})$/;

/**
 * A secp256k1 public key from its SEC 1 point in hex. OpenSSL decodes the point (a compressed one
 * is decompressed) and refuses one that is not on the curve; the JWK import makes the KeyObject.
 */
function secp256k1FromHex(hex: string): KeyObject {
  let point: Buffer;
  try {
    point = ECDH.convertKey(hex.slice(2), "secp256k1", "hex", undefined, "uncompressed") as Buffer;
  } catch {
    throw invalid("publicKey is not a point on the secp256k1 curve");
  }
  const x = point.subarray(1, 33).toString("base64url");
  const y = point.subarray(33, 65).toString("base64url");
  return createPublicKey({ key: { kty: "EC", crv: "secp256k1", x, y }, format: "jwk" });
}

/**
 * Imports a user's public key from SPKI PEM, a public JWK (JSON text) or, for secp256k1, the hex
 * of its point (`0x02…`, `0x03…` or `0x04…`), checks it is a type and size Portcullis accepts and
 * matches the requested algorithm, and returns it normalised (SPKI PEM). A private key is refused
 * outright, and never echoed back in the error.
 */
export function importPublicKey(text: string, requested: KeyAlgorithm | undefined): ImportedPublicKey {
  if (typeof text !== "string" || text.length === 0 || text.length > 16_384) {
    throw invalid("publicKey must be a PEM or JWK text of at most 16 KiB");
  }
  const trimmed = text.trim();
  if (/PRIVATE KEY/.test(trimmed)) {
    throw invalid("that is a private key: send only the public key; keep the private key to yourself");
  }
  let keyObject: KeyObject;
  try {
    if (trimmed.startsWith("{")) {
      const jwk = JSON.parse(trimmed) as JsonWebKey;
      if (typeof jwk !== "object" || "d" in jwk || "p" in jwk) {
        throw invalid("that JWK holds private key material: send only the public key");
      }
      keyObject = createPublicKey({ key: jwk, format: "jwk" });
    } else if (trimmed.startsWith("-----BEGIN PUBLIC KEY-----")) {
      keyObject = createPublicKey({ key: trimmed, format: "pem" });
    } else if (trimmed.startsWith("0x")) {
      if (/^0x[0-9a-fA-F]{64}$/.test(trimmed)) {
        throw invalid("that is 32 bytes of hex, the size of a private key: send only the public key (0x02…, 0x03… or 0x04…); keep the private key to yourself");
      }
      if (!SECP256K1_HEX_RE.test(trimmed)) {
        throw invalid("a hex public key must be a secp256k1 point: 0x02 or 0x03 and 64 hex digits (compressed), or 0x04 and 128 (uncompressed)");
      }
      keyObject = secp256k1FromHex(trimmed);
    } else {
      throw invalid("publicKey must be an SPKI PEM (-----BEGIN PUBLIC KEY-----), a JWK or, for secp256k1, a hex point (0x02…, 0x03…, 0x04…)");
    }
  } catch (err) {
    if (err instanceof PortcullisError) throw err;
    throw invalid("publicKey could not be parsed as an SPKI PEM or JWK public key");
  }

  let algorithm: ImportedPublicKey["algorithm"];
  const type = keyObject.asymmetricKeyType;
  if (type === "ed25519") {
    algorithm = "ed25519";
  } else if (type === "ec") {
    const curve = keyObject.asymmetricKeyDetails?.namedCurve;
    if (curve === "prime256v1") algorithm = "ecdsa-p256";
    else if (curve === "secp256k1") algorithm = "secp256k1";
    else throw invalid("EC keys must be on the P-256 or the secp256k1 curve");
  } else if (type === "rsa") {
    const bits = keyObject.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS) throw invalid(`RSA keys must have at least ${MIN_RSA_BITS} bits (this one has ${bits})`);
    algorithm = "rsa";
  } else {
    throw invalid(`unsupported key type ${String(type)}: use Ed25519, ECDSA P-256, secp256k1 or RSA >= ${MIN_RSA_BITS}`);
  }
  if (requested !== undefined && requested !== algorithm) {
    throw invalid(`the public key is ${algorithm} but the algorithm requested is ${requested}`);
  }
  const pem = keyObject.export({ type: "spki", format: "pem" }).toString();
  return { algorithm, pem, keyObject };
}
