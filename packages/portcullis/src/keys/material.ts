import { createPublicKey, type JsonWebKey, type KeyObject } from "node:crypto";
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

/**
 * Imports a user's public key from SPKI PEM or a public JWK (JSON text), checks it is a type and
 * size Portcullis accepts and matches the requested algorithm, and returns it normalised. A
 * private key is refused outright, and never echoed back in the error.
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
    } else {
      throw invalid("publicKey must be an SPKI PEM (-----BEGIN PUBLIC KEY-----) or a JWK");
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
    if (keyObject.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
      throw invalid("EC keys must be on the P-256 curve");
    }
    algorithm = "ecdsa-p256";
  } else if (type === "rsa") {
    const bits = keyObject.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS) throw invalid(`RSA keys must have at least ${MIN_RSA_BITS} bits (this one has ${bits})`);
    algorithm = "rsa";
  } else {
    throw invalid(`unsupported key type ${String(type)}: use Ed25519, ECDSA P-256 or RSA >= ${MIN_RSA_BITS}`);
  }
  if (requested !== undefined && requested !== algorithm) {
    throw invalid(`the public key is ${algorithm} but the algorithm requested is ${requested}`);
  }
  const pem = keyObject.export({ type: "spki", format: "pem" }).toString();
  return { algorithm, pem, keyObject };
}
