import { constants, createHmac, timingSafeEqual, verify } from "node:crypto";
import { type Denial, deny } from "../../errors/catalogue.js";
import type { VerificationKey } from "../../contract/verification-key.js";

/**
 * Binance's signature algorithms, by key type (https://github.com/binance/binance-spot-api-docs,
 * "SIGNED Endpoint Examples"):
 *
 *   HMAC keys     HMAC-SHA256 under the secret's UTF-8 bytes, as hex (either case)
 *   Ed25519 keys  Ed25519, as base64 (percent-encoded in transit)
 *   RSA keys      RSASSA-PKCS1-v1_5 with SHA-256, as base64 (percent-encoded in transit)
 *
 * The same rule serves REST (payload = query string + body, minus the signature) and the
 * WebSocket API (payload = sorted parameters, see `webSocketSignaturePayload`).
 */

/** An HMAC in progress (node's Hmac class, named through its factory). */
export type Hmac = ReturnType<typeof createHmac>;

/** The bytes a signature covers, fed to HMAC piecewise or assembled for the asymmetric algorithms. */
export interface SignedPayload {
  /** Feeds the payload to an HMAC, in order, without assembling it. */
  feed(hmac: Hmac): void;
  /** The payload as one buffer. */
  bytes(): Buffer;
}

const HMAC_HEX_LENGTH = 64;
const HMAC_BYTES = 32;
const ED25519_BYTES = 64;

/**
 * Checks `signature` (the parameter's value, percent-decoded) against `payload` with `key`.
 * Returns the signature's canonical text (lower-case hex for HMAC; the base64 text, which must be
 * canonical, otherwise) to use as the request's single-use value, or a denial. Never throws.
 */
export function verifyBinanceSignature(key: VerificationKey, payload: SignedPayload, signature: string): string | Denial {
  switch (key.record.algorithm) {
    case "hmac-sha256": {
      const secret = key.hmacKey;
      if (secret === null || signature.length !== HMAC_HEX_LENGTH) return deny("SIGNATURE_INVALID");
      // Buffer.from stops at the first non-hex pair, so a short result means a bad character.
      const given = Buffer.from(signature, "hex");
      if (given.length !== HMAC_BYTES) return deny("SIGNATURE_INVALID");
      const hmac = createHmac("sha256", secret);
      payload.feed(hmac);
      if (!timingSafeEqual(hmac.digest(), given)) return deny("SIGNATURE_INVALID");
      // Binance treats hex signatures as case-insensitive: one request, one single-use value.
      return signature.toLowerCase();
    }
    case "ed25519":
    case "rsa": {
      const publicKey = key.publicKey;
      if (publicKey === null) return deny("SIGNATURE_INVALID");
      const given = Buffer.from(signature, "base64");
      // Only canonical base64: otherwise one signature would have many spellings (and dodge replay).
      if (given.length === 0 || given.toString("base64") !== signature) return deny("SIGNATURE_INVALID");
      try {
        const ok =
          key.record.algorithm === "ed25519"
            ? given.length === ED25519_BYTES && verify(null, payload.bytes(), publicKey, given)
            : verify("sha256", payload.bytes(), { key: publicKey, padding: constants.RSA_PKCS1_PADDING }, given);
        return ok ? signature : deny("SIGNATURE_INVALID");
      } catch {
        // A malformed signature or a key/algorithm mismatch: not a valid signature.
        return deny("SIGNATURE_INVALID");
      }
    }
    default:
      return deny("ALGORITHM_MISMATCH", `binance does not sign with ${key.record.algorithm} keys`);
  }
}

/** A parameter value of a WebSocket API request (JSON scalars). */
export type WebSocketParamValue = string | number | boolean;

/**
 * The WebSocket API's signature payload (binance-spot-api-docs, web-socket-api "SIGNED request
 * security"): every parameter except `signature`, sorted by name, as `name=value` joined with
 * `&`, values as they are (no percent-encoding; the payload is signed as UTF-8). Numbers are
 * written with `String()`, so pass decimals as the exact strings the client sent.
 */
export function webSocketSignaturePayload(params: Readonly<Record<string, WebSocketParamValue>>): string {
  const names = Object.keys(params)
    .filter((name) => name !== "signature")
    .sort();
  let payload = "";
  for (const name of names) {
    const value = params[name];
    payload += `${payload === "" ? "" : "&"}${name}=${String(value)}`;
  }
  return payload;
}

/** A payload that is already one buffer (the WebSocket API's). */
export function bufferPayload(bytes: Buffer): SignedPayload {
  return {
    feed: (hmac) => {
      hmac.update(bytes);
    },
    bytes: () => bytes,
  };
}

/**
 * Verifies a WebSocket API request's `signature` against its other parameters with `key`;
 * returns the single-use value (see `verifyBinanceSignature`) or a denial.
 */
export function verifyWebSocketSignature(key: VerificationKey, params: Readonly<Record<string, WebSocketParamValue>>): string | Denial {
  const signature = params.signature;
  if (typeof signature !== "string" || signature === "") return deny("PARAM_MISSING", "signature");
  return verifyBinanceSignature(key, bufferPayload(Buffer.from(webSocketSignaturePayload(params), "utf8")), signature);
}
