import { type KeyObject, verify } from "node:crypto";
import { KEY_ID_PREFIX } from "../contract/ids.js";
import type { SessionClaims } from "../contract/sessions.js";

/**
 * Session tokens. A session's `keyid` (what the client puts in its RFC 9421 signatures) is a token
 * the gateway signed at logon:
 *
 *   pcs_<environment>_v1_<payload>.<signature>
 *
 * - the prefix says what it is (`pcs`: a Portcullis session, as `pck` is a key), and its
 *   environment, so a leaked token is recognisable by secret scanners;
 * - `payload` is base64url of the claims (`SessionClaims`, contract/sessions.ts) as JSON;
 * - `signature` is base64url of the gateway's Ed25519 signature over everything before the dot,
 *   by its session-token signing key (`kid` names the key version).
 *
 * A token alone does not sign anything: every request also proves possession of the session's
 * secret (an HMAC over the request's signature base), which the gateway derives from the session
 * id and a secret of its own, and which the token does not contain. So a stolen token is useless,
 * and checking one costs one Ed25519 verification per process per session, then a cache lookup.
 */
const VERSION = "v1";
const TOKEN_RE = /^pcs_(live|test)_v1_([A-Za-z0-9_-]{16,2048})\.([A-Za-z0-9_-]{86})$/;
const SID_RE = /^[A-Za-z0-9_-]{22}$/;

/** What the token signs: everything before the dot. */
export function signingInput(claims: SessionClaims): string {
  return `${KEY_ID_PREFIX.session}_${claims.env}_${VERSION}_${Buffer.from(JSON.stringify(claims), "utf8").toString("base64url")}`;
}

export function assemble(input: string, signature: Buffer): string {
  return `${input}.${signature.toString("base64url")}`;
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === "string");
}

function isTime(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/** The claims, if `value` has every field with the right type (nothing else is trusted yet). */
function asClaims(value: unknown): SessionClaims | null {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return null;
  const o = value as Record<string, unknown>;
  if (o.v !== 1 || typeof o.sid !== "string" || !SID_RE.test(o.sid) || typeof o.key !== "string" || typeof o.kid !== "string") return null;
  if ((o.env !== "live" && o.env !== "test") || !isTime(o.ep) || !isStringArray(o.scp) || !isTime(o.iat) || !isTime(o.exp) || !isTime(o.auth)) return null;
  if (o.ip !== undefined && typeof o.ip !== "string") return null;
  return o as unknown as SessionClaims;
}

export type ParsedToken =
  | { readonly ok: true; readonly claims: SessionClaims; readonly input: string; readonly signature: Buffer }
  | { readonly ok: false; readonly why: string };

/** Parses a token's syntax and claims; says nothing yet about its signature. */
export function parseToken(token: string): ParsedToken {
  const m = TOKEN_RE.exec(token);
  if (m === null) return { ok: false, why: "not a session token" };
  const payload = Buffer.from(m[2] ?? "", "base64url");
  const signature = Buffer.from(m[3] ?? "", "base64url");
  // One spelling per token: base64url whose unused low bits are not zero decodes to the same
  // bytes as the canonical text, and is refused, so a token has exactly one valid form.
  if (payload.toString("base64url") !== m[2] || signature.toString("base64url") !== m[3]) return { ok: false, why: "non-canonical base64url" };
  let json: unknown;
  try {
    json = JSON.parse(payload.toString("utf8"));
  } catch {
    return { ok: false, why: "unreadable claims" };
  }
  const claims = asClaims(json);
  if (claims === null || claims.env !== m[1]) return { ok: false, why: "malformed claims" };
  return { ok: true, claims, input: token.slice(0, token.lastIndexOf(".")), signature };
}

/** Verifies the token's Ed25519 signature with the public key of its `kid`. */
export function verifyToken(parsed: { readonly input: string; readonly signature: Buffer }, publicKey: KeyObject): boolean {
  try {
    return verify(null, Buffer.from(parsed.input, "latin1"), publicKey, parsed.signature);
  } catch {
    return false;
  }
}
