import { createHmac, timingSafeEqual, type KeyObject } from "node:crypto";

/**
 * Refusal tokens of the authorizer's nginx `auth_request` protocol (docs/deploy/authorizer.md).
 * nginx's `auth_request` only passes 401 and 403 on (anything else becomes its own 500), so a
 * refusal's real answer — status, content type, the dialect's body, RateLimit / Retry-After and the
 * request id — travels in the `Portcullis-Refusal` header of a 403, sealed with HMAC-SHA256 under a
 * key derived for this purpose alone (`IdentitySigner.deriveKey(REFUSAL_KEY_INFO)`). nginx's
 * `error_page 401 403 = @portcullis_refusal` proxies the token to the refusal endpoint, which
 * opens it (constant-time MAC check, expiry) and writes that answer.
 *
 * A token only ever holds what Portcullis rendered, and opening one only writes a fixed set of
 * headers with values free of line breaks: replayed or not, it cannot make Portcullis serve
 * anyone else's content. It expires `ttlMs` after it was sealed.
 *
 * Format: `pr1.<base64url JSON {e: expiry ms, s: status, h: headers, b: body}>.<base64url MAC over
 * "pr1." and the payload>`.
 */
export const REFUSAL_KEY_INFO = "portcullis-authz-refusal/v1";
/** The header that carries the token (from Portcullis to nginx, and back from nginx). */
export const REFUSAL_HEADER = "portcullis-refusal";
/** How long a token is good for: nginx asks for the refusal right after the subrequest. */
export const REFUSAL_TTL_MS = 15_000;

const VERSION = "pr1";
/** The headers a refusal may carry; anything else is not sealed, and never written. */
const CARRIED = ["content-type", "ratelimit", "ratelimit-policy", "retry-after", "portcullis-request-id"] as const;
/** Longest token accepted: larger than any rendered refusal, well below nginx's header buffer. */
const MAX_TOKEN = 12_000;

export interface SealedRefusal {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

export type OpenedRefusal = { readonly ok: true; readonly refusal: SealedRefusal } | { readonly ok: false; readonly reason: "missing" | "malformed" | "mac" | "expired" };

export class RefusalTokens {
  private readonly key: KeyObject;
  private readonly ttlMs: number;

  constructor(key: KeyObject, ttlMs = REFUSAL_TTL_MS) {
    this.key = key;
    this.ttlMs = ttlMs;
  }

  /** Seals a refusal Portcullis rendered; only the carried headers are kept. */
  seal(refusal: SealedRefusal, now: number): string {
    const headers: Record<string, string> = {};
    for (const name of CARRIED) {
      const value = refusal.headers[name];
      if (value !== undefined && safeValue(value)) headers[name] = value;
    }
    const payload = Buffer.from(JSON.stringify({ e: now + this.ttlMs, s: refusal.status, h: headers, b: refusal.body }), "utf8").toString("base64url");
    return `${VERSION}.${payload}.${this.mac(payload).toString("base64url")}`;
  }

  /** Opens a token: its MAC (constant-time), its expiry, then its shape. */
  open(token: string | string[] | undefined, now: number): OpenedRefusal {
    if (token === undefined || token === "") return { ok: false, reason: "missing" };
    if (typeof token !== "string" || token.length > MAX_TOKEN) return { ok: false, reason: "malformed" };
    const parts = token.split(".");
    const [version, payload, mac] = parts;
    if (parts.length !== 3 || version !== VERSION || payload === undefined || mac === undefined || !BASE64URL.test(payload) || !BASE64URL.test(mac)) return { ok: false, reason: "malformed" };
    const expected = this.mac(payload);
    const given = Buffer.from(mac, "base64url");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: "mac" };
    let value: unknown;
    try {
      value = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
    } catch {
      return { ok: false, reason: "malformed" };
    }
    const refusal = shape(value);
    if (refusal === null) return { ok: false, reason: "malformed" };
    if (!(now < refusal.expires)) return { ok: false, reason: "expired" };
    return { ok: true, refusal: { status: refusal.status, headers: refusal.headers, body: refusal.body } };
  }

  private mac(payload: string): Buffer {
    return createHmac("sha256", this.key).update(`${VERSION}.${payload}`, "latin1").digest();
  }
}

const BASE64URL = /^[A-Za-z0-9_-]+$/;

function safeValue(value: string): boolean {
  // A header value nginx and node will pass as is: visible ASCII and spaces, no line break.
  return /^[\x20-\x7e]*$/.test(value);
}

function shape(value: unknown): (SealedRefusal & { readonly expires: number }) | null {
  if (typeof value !== "object" || value === null) return null;
  const { e, s, h, b } = value as Record<string, unknown>;
  if (typeof e !== "number" || !Number.isSafeInteger(e)) return null;
  if (typeof s !== "number" || !Number.isInteger(s) || s < 200 || s > 599) return null;
  if (typeof b !== "string" || typeof h !== "object" || h === null) return null;
  const headers: Record<string, string> = {};
  for (const [name, v] of Object.entries(h)) {
    if (!(CARRIED as readonly string[]).includes(name) || typeof v !== "string" || !safeValue(v)) return null;
    headers[name] = v;
  }
  return { expires: e, status: s, headers, body: b };
}
