import { type Denial, deny } from "../../errors/catalogue.js";
import { DENIALS } from "../../dialects/binance/errors.js";
import { DEFAULT_RECV_WINDOW_MS } from "../../dialects/binance/params.js";
import type { VerificationKey } from "../../contract/verification-key.js";
import type { ReplayClaim } from "../../contract/request.js";
import type { ParamValue, Params } from "./messages.js";
import { WS_DENIALS } from "./messages.js";

/**
 * The Binance WebSocket API's request security (binance-spot-api-docs, web-socket-api.md,
 * "Request security" and "Session Authentication"), checked by the gateway:
 *
 * - a SIGNED request carries `apiKey`, `timestamp`, optional `recvWindow` (at most 60000, up to
 *   three decimals) and `signature` over every other parameter, sorted by name, as
 *   `name=value&…` in raw UTF-8 (dialects/binance/signature.ts); HMAC, Ed25519 and RSA keys;
 * - `session.logon` is such a request with only those parameters, and only an Ed25519 key may log
 *   on; after it, requests may omit `apiKey` and `signature` but SIGNED ones still carry a fresh
 *   `timestamp`;
 * - freshness as on REST: `timestamp < now + 1000 ms` (the gateway's futureSkewMs) and
 *   `now - timestamp <= recvWindow`, the key's own window capping recvWindow; every signature is
 *   accepted once (its replay claim is recorded with the request's limits).
 */
export interface SigningFields {
  readonly apiKey: string;
  readonly timestamp: number;
  readonly recvWindow: number;
  readonly signature: string;
}

const DIGITS_RE = /^[0-9]{1,20}$/;
const RECV_WINDOW_RE = /^[0-9]{1,20}(\.[0-9]{1,3})?$/;
const MAX_RECV_WINDOW_MS = 60_000;

function present(v: ParamValue | undefined): v is ParamValue {
  return v !== undefined && v !== "";
}

/** `timestamp` (a JSON integer, or its digits as a string), or why not. */
export function timestampOf(params: Params | null): number | Denial {
  const v = params?.timestamp;
  if (!present(v)) return DENIALS.timestampMissing;
  const n = typeof v === "number" ? v : typeof v === "string" && DIGITS_RE.test(v) ? Number(v) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 0) return DENIALS.timestampInvalid;
  return n;
}

/** `recvWindow` (default 5000), or why not. */
export function recvWindowOf(params: Params | null): number | Denial {
  const v = params?.recvWindow;
  if (v === undefined) return DEFAULT_RECV_WINDOW_MS;
  if (v === "") return DENIALS.recvWindowEmpty;
  let n: number;
  if (typeof v === "number") {
    n = v;
    if (!Number.isFinite(n) || n < 0 || Math.round(n * 1000) !== n * 1000) return DENIALS.recvWindowInvalid;
  } else if (typeof v === "string" && RECV_WINDOW_RE.test(v)) {
    n = Number(v);
  } else {
    return DENIALS.recvWindowInvalid;
  }
  if (n > MAX_RECV_WINDOW_MS) return DENIALS.recvWindowTooLarge;
  return n;
}

/** The signing parameters of a SIGNED request (or a logon), or the first one missing or malformed. */
export function signingFields(params: Params | null): SigningFields | Denial {
  const apiKey = params?.apiKey;
  if (typeof apiKey !== "string" || apiKey === "") return WS_DENIALS.apiKeyMissing;
  const timestamp = timestampOf(params);
  if (typeof timestamp !== "number") return timestamp;
  const recvWindow = recvWindowOf(params);
  if (typeof recvWindow !== "number") return recvWindow;
  const signature = params?.signature;
  if (typeof signature !== "string" || signature === "") return DENIALS.signatureMissing;
  return { apiKey, timestamp, recvWindow, signature };
}

/** Binance's freshness rule, as the REST dialect applies it. */
export function freshness(timestamp: number, recvWindow: number, key: VerificationKey, now: number, futureSkewMs: number): Denial | undefined {
  const ahead = timestamp - now;
  if (ahead > 0 && ahead >= futureSkewMs) return deny("CREATED_IN_FUTURE");
  const window = recvWindow < key.windowMs ? recvWindow : key.windowMs;
  if (-ahead > window) return deny("CREATED_TOO_OLD");
  return undefined;
}

/** The signature, single-use for as long as any window could accept it. */
export function signatureClaim(key: VerificationKey, canonical: string, fields: SigningFields): ReplayClaim {
  return { kind: "nonce", keyId: key.record.id, value: canonical, expiresAt: Math.ceil(fields.timestamp + fields.recvWindow + 1000) };
}

/** The parameters forwarded upstream: the credentials (`apiKey`, `signature`) removed. */
export function withoutCredentials(params: Params | null): Params | null {
  if (params === null || (params.apiKey === undefined && params.signature === undefined)) return params;
  const out: Record<string, ParamValue> = {};
  for (const [name, value] of Object.entries(params)) if (name !== "apiKey" && name !== "signature") out[name] = value;
  return out;
}

/** The answer of session.logon, session.status and session.logout (Binance's shape). */
export function sessionStatus(apiKey: string | null, authorizedSince: number | null, connectedSince: number, now: number): Record<string, unknown> {
  return { apiKey, authorizedSince, connectedSince, returnRateLimits: false, serverTime: now, userDataStream: false };
}
