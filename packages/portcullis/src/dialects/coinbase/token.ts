import { type Denial, deny } from "../../errors/catalogue.js";
import { PROTOTYPE_NAMES, isJsonObject, parseJson } from "../../contract/json.js";

/**
 * Strict parsing of a Coinbase CDP API key JWT (stage 3), before any cryptography: the compact
 * serialization's three base64url parts, the protected header and the claims as JSON objects,
 * every member the scheme needs with the right type, nothing that would change how the token is
 * processed. What the claims say about time (stage 5), the request (uri) and the key (stage 6)
 * is checked later, against the request and the key.
 *
 * Accepted tokens (what ccxt, Coinbase's SDKs and CDP tooling send):
 *
 *   header  { "alg": "ES256" | "EdDSA", "kid": <key name>, "nonce": <8-128 chars>, "typ"?: "JWT" }
 *   claims  { "sub": <key name, = kid>, "iss": "cdp" | "coinbase-cloud", "nbf": <s>, "exp": <s>,
 *             "iat"?: <s>, "aud"?: <one or more of "cdp_service", "retail_rest_api_proxy">,
 *             "uri": "<METHOD> <host><path>"  or  "uris": ["<METHOD> <host><path>"] }
 *
 * Other header members (`crit`, `b64`, `jku`, `jwk`, `x5u`, `x5c`, …) are refused: the key is
 * the one registered with Portcullis, never one the token names. Other claims are ignored.
 */

/** The JWS algorithms the dialect accepts. */
export type CdpAlgorithm = "ES256" | "EdDSA";

export interface CdpToken {
  /** The compact JWS exactly as sent (what the signature is verified over). */
  readonly compact: string;
  readonly alg: CdpAlgorithm;
  /** The key name as sent (`kid`, equal to `sub`). */
  readonly kid: string;
  /** The Portcullis key id the key name carries. */
  readonly keyId: string;
  readonly nonce: string;
  /** NumericDate seconds. */
  readonly nbf: number;
  readonly exp: number;
  readonly iat: number | undefined;
  /** The request the token was made for: "METHOD host/path" (possibly with a scheme prefix). */
  readonly uri: string;
}

/** The longest Authorization token accepted, in characters (a CDP token is about 600-900). */
export const MAX_TOKEN_LENGTH = 4096;
/** The longest key name (kid/sub). */
const MAX_KID_LENGTH = 256;
/** The longest uri claim. */
const MAX_URI_LENGTH = 2048;

export const ACCEPTED_ISSUERS: ReadonlySet<string> = new Set(["cdp", "coinbase-cloud"]);
export const ACCEPTED_AUDIENCES: ReadonlySet<string> = new Set(["cdp_service", "retail_rest_api_proxy"]);
const HEADER_MEMBERS: ReadonlySet<string> = new Set(["alg", "kid", "nonce", "typ"]);

const COMPACT_RE = /^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/;
const NONCE_RE = /^[A-Za-z0-9\-._~+/=]{8,128}$/;
/** `organizations/{org}/apiKeys/{id}`: the CDP key name form; `{id}` is the Portcullis key id. */
const CDP_KEY_NAME_RE = /^organizations\/[A-Za-z0-9._~-]{1,128}\/apiKeys\/([A-Za-z0-9_]{1,64})$/;

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** The Portcullis key id a key name carries: the name itself, or the `{id}` of a CDP key name. */
export function keyIdOf(kid: string): string {
  const cdp = CDP_KEY_NAME_RE.exec(kid);
  return cdp === null ? kid : (cdp[1] ?? kid);
}

/**
 * Decodes one base64url part of a JWS into a JSON object (without a prototype: a member is there
 * only if it was sent, contract/json.ts); null if any step fails.
 */
function decodeJsonPart(part: string): Record<string, unknown> | null {
  // Canonical base64url only: no padding, and no stray bits in the last character.
  if (part.length % 4 === 1) return null;
  const bytes = Buffer.from(part, "base64url");
  if (bytes.toString("base64url") !== part) return null;
  let parsed: unknown;
  try {
    parsed = parseJson(utf8.decode(bytes));
  } catch {
    return null;
  }
  return isJsonObject(parsed) ? parsed : null;
}

function isNumericDate(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/** Parses `Authorization: Bearer <token>` strictly. */
export function parseBearerToken(authorization: string): CdpToken | Denial {
  // "Bearer" is case-insensitive (RFC 9110); exactly one space, then the token and nothing else.
  const compact = authorization.slice(7);
  if (compact.length > MAX_TOKEN_LENGTH) return deny("TOKEN_MALFORMED", "token too long");
  const parts = COMPACT_RE.exec(compact);
  if (parts === null) return deny("TOKEN_MALFORMED", "not three base64url parts");
  const header = decodeJsonPart(parts[1] ?? "");
  if (header === null) return deny("TOKEN_MALFORMED", "header is not base64url JSON object");
  const claims = decodeJsonPart(parts[2] ?? "");
  if (claims === null) return deny("TOKEN_MALFORMED", "payload is not base64url JSON object");

  // --- protected header -------------------------------------------------------------------
  for (const name of Object.keys(header)) {
    if (!HEADER_MEMBERS.has(name)) return deny("TOKEN_MALFORMED", `header member ${name} is not accepted`);
  }
  const { alg, kid, nonce, typ } = header;
  if (typeof alg !== "string") return deny("TOKEN_MALFORMED", "alg missing");
  if (alg.toLowerCase() === "none") return deny("TOKEN_MALFORMED", "alg none");
  if (alg !== "ES256" && alg !== "EdDSA") return deny("ALGORITHM_MISMATCH", `alg ${alg.slice(0, 32)} is not ES256 or EdDSA`);
  if (typ !== undefined && (typeof typ !== "string" || typ.toUpperCase() !== "JWT")) return deny("PARAM_INVALID", "typ must be JWT");
  if (kid === undefined) return deny("PARAM_MISSING", "kid");
  if (typeof kid !== "string" || kid.length === 0 || kid.length > MAX_KID_LENGTH) return deny("PARAM_INVALID", "kid");
  if (nonce === undefined) return deny("PARAM_MISSING", "nonce");
  if (typeof nonce !== "string" || !NONCE_RE.test(nonce)) return deny("NONCE_MALFORMED");

  // --- claims -----------------------------------------------------------------------------
  // Unknown claims are ignored (RFC 7519), but none may be named like a member of Object.prototype.
  for (const name of Object.keys(claims)) {
    if (PROTOTYPE_NAMES.has(name)) return deny("TOKEN_MALFORMED", `claim ${name} is not accepted`);
  }
  const { sub, iss, aud, nbf, exp, iat, uri, uris } = claims;
  if (sub === undefined) return deny("PARAM_MISSING", "sub");
  if (sub !== kid) return deny("PARAM_INVALID", "sub must equal kid");
  if (iss === undefined) return deny("PARAM_MISSING", "iss");
  if (typeof iss !== "string" || !ACCEPTED_ISSUERS.has(iss)) return deny("PARAM_INVALID", "iss");
  if (aud !== undefined) {
    const audiences: unknown[] = Array.isArray(aud) ? aud : [aud];
    if (audiences.length === 0 || !audiences.every((a) => typeof a === "string" && ACCEPTED_AUDIENCES.has(a))) {
      return deny("PARAM_INVALID", "aud");
    }
  }
  if (nbf === undefined) return deny("PARAM_MISSING", "nbf");
  if (exp === undefined) return deny("PARAM_MISSING", "exp");
  if (!isNumericDate(nbf)) return deny("PARAM_INVALID", "nbf");
  if (!isNumericDate(exp)) return deny("PARAM_INVALID", "exp");
  if (exp <= nbf) return deny("PARAM_INVALID", "exp must be after nbf");
  if (iat !== undefined && !isNumericDate(iat)) return deny("PARAM_INVALID", "iat");

  let target: unknown;
  if (uri !== undefined && uris !== undefined) return deny("PARAM_INVALID", "both uri and uris");
  if (uri !== undefined) target = uri;
  else if (uris !== undefined) {
    if (!Array.isArray(uris) || uris.length !== 1) return deny("PARAM_INVALID", "uris must list exactly one request");
    target = uris[0];
  } else return deny("PARAM_MISSING", "uri");
  if (typeof target !== "string" || target.length === 0 || target.length > MAX_URI_LENGTH) return deny("PARAM_INVALID", "uri");

  return { compact, alg, kid, keyId: keyIdOf(kid), nonce, nbf, exp, iat, uri: target };
}
