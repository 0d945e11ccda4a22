import type { Denial, ErrorCode } from "../../errors/catalogue.js";
import type { RenderedError } from "../../contract/request.js";

/**
 * Refusals in Coinbase Advanced Trade's error shape:
 *
 *   {"error": "<kind>", "error_details": "<Portcullis code>", "message": "<what went wrong>"}
 *
 * `error` is chosen so that clients map it the way they map Coinbase's own answers (ccxt's
 * coinbase `handleErrors` matches `error` exactly): every authentication failure is HTTP 401
 * `unauthorized` (as on Coinbase, whatever was wrong with the JWT; ccxt: AuthenticationError), a
 * missing permission 403 `PERMISSION_DENIED` (PermissionDenied), a bad request 400
 * `INVALID_ARGUMENT` (BadRequest), rate limiting 429 `rate_limit_exceeded` (RateLimitExceeded),
 * and the gateway's own faults 5xx `INTERNAL` / `UNAVAILABLE`. `error_details` carries the
 * stable Portcullis error code (docs/errors.md), which bots and dashboards match on.
 */

/** Coinbase's machine-readable error kinds used by the dialect. */
export type CoinbaseErrorKind =
  | "unauthorized"
  | "PERMISSION_DENIED"
  | "INVALID_ARGUMENT"
  | "NOT_FOUND"
  | "rate_limit_exceeded"
  | "INTERNAL"
  | "UNAVAILABLE";

/** Refusals of the credential that Coinbase answers as 401 although the catalogue says otherwise. */
const AUTHENTICATION_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "PARAM_MISSING",
  "PARAM_INVALID",
  "NONCE_MALFORMED",
  "NONCE_REPLAYED",
]);

const CREDENTIALS_MISSING_MESSAGE =
  "This route requires a signed request: send a CDP API key JWT in Authorization: Bearer (or a native RFC 9421 signature).";

/** The HTTP status and Coinbase error kind for a denial. */
export function coinbaseError(denial: Denial): { readonly status: number; readonly error: CoinbaseErrorKind } {
  const status = denial.status;
  if (status === 401 || AUTHENTICATION_CODES.has(denial.code)) return { status: 401, error: "unauthorized" };
  if (status === 403) return { status, error: "PERMISSION_DENIED" };
  if (status === 404) return { status, error: "NOT_FOUND" };
  if (status === 429) return { status, error: "rate_limit_exceeded" };
  if (status === 503 || status === 502 || status === 504) return { status, error: "UNAVAILABLE" };
  if (status >= 500) return { status, error: "INTERNAL" };
  return { status, error: "INVALID_ARGUMENT" };
}

/** The JSON body of a Coinbase error. */
export function coinbaseErrorBody(error: string, details: string, message: string): string {
  return JSON.stringify({ error, error_details: details, message });
}

export function renderCoinbase(denial: Denial, _requestId: string): RenderedError {
  const { status, error } = coinbaseError(denial);
  const message = denial.code === "CREDENTIALS_MISSING" ? CREDENTIALS_MISSING_MESSAGE : denial.message;
  return { status, body: coinbaseErrorBody(error, denial.code, message) };
}
