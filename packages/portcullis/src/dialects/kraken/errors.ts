import type { Denial, ErrorCode } from "../../errors/catalogue.js";
import type { RenderedError } from "../../contract/request.js";

/**
 * Refusals in Kraken's format. Kraken answers `{"error": ["<severity><category>:<message>"]}`
 * and, as its documentation says, does not use HTTP status codes to report the state of a
 * request: errors come with HTTP 200. Portcullis does the same for everything the caller did
 * (every 4xx of the catalogue); its own faults and fail-closed answers (5xx) keep their status,
 * like Kraken's front end answering 5xx when the service cannot be reached. The request id is in
 * the `portcullis-request-id` response header, never in the body.
 *
 * The strings are the ones Kraken documents and ccxt maps (ccxt's `kraken.exceptions`):
 *   EAPI:Invalid key            -> AuthenticationError
 *   EAPI:Invalid nonce          -> InvalidNonce
 *   EGeneral:Permission denied  -> PermissionDenied
 *   EGeneral:Invalid arguments  -> BadRequest
 *   EAPI:Rate limit exceeded    -> DDoSProtection
 *   EService:Unavailable/Busy   -> ExchangeNotAvailable
 *   EGeneral:Internal error     -> ExchangeNotAvailable
 *   EAPI:Invalid signature      -> (unmapped: ExchangeError)
 *
 * A signature that does not verify is answered `EAPI:Invalid key`, as Kraken itself often does:
 * a wrong secret is an authentication failure that a bot must not retry (ccxt raises
 * AuthenticationError for it, but only a plain ExchangeError for `EAPI:Invalid signature`), and
 * the answer must not tell a caller whether the key id it tried exists. `EAPI:Invalid signature`
 * is kept for an API-Sign header that is not a signature at all (missing, or not base64 of 64
 * bytes): a client bug, not a credential problem.
 */
export const KRAKEN_ERRORS = {
  INVALID_KEY: "EAPI:Invalid key",
  INVALID_SIGNATURE: "EAPI:Invalid signature",
  INVALID_NONCE: "EAPI:Invalid nonce",
  PERMISSION_DENIED: "EGeneral:Permission denied",
  INVALID_ARGUMENTS: "EGeneral:Invalid arguments",
  UNKNOWN_METHOD: "EGeneral:Unknown method",
  RATE_LIMIT: "EAPI:Rate limit exceeded",
  ORDER_RATE_LIMIT: "EOrder:Rate limit exceeded",
  LOCKOUT: "EGeneral:Temporary lockout",
  UNAVAILABLE: "EService:Unavailable",
  BUSY: "EService:Busy",
  INTERNAL: "EGeneral:Internal error",
  INVALID_PRICE: "EOrder:Invalid price",
} as const;

const K = KRAKEN_ERRORS;

/** The Kraken error string for every catalogue code. */
export const KRAKEN_ERROR_FOR: Readonly<Partial<Record<ErrorCode, string>>> = {
  // The request itself.
  ROUTE_NOT_FOUND: K.UNKNOWN_METHOD,
  PATH_NOT_CANONICAL: K.UNKNOWN_METHOD,
  BODY_TOO_LARGE: K.INVALID_ARGUMENTS,
  BODY_INCOMPLETE: K.INVALID_ARGUMENTS,
  AUTHORITY_NOT_ALLOWED: K.INVALID_ARGUMENTS,
  HTTP_MALFORMED: K.INVALID_ARGUMENTS,
  HEADERS_TOO_LARGE: K.INVALID_ARGUMENTS,
  EXPECTATION_FAILED: K.INVALID_ARGUMENTS,
  // Credentials (stage 3). For Kraken: PARAM_* is the nonce, SIGNATURE_HEADER_* the API-Sign
  // header, SIGNATURE_COMPONENT_MISSING a query string (API-Sign does not cover it).
  CREDENTIALS_MISSING: K.INVALID_KEY,
  CREDENTIALS_AMBIGUOUS: K.INVALID_ARGUMENTS,
  SCHEME_NOT_ACCEPTED: K.INVALID_KEY,
  PARAM_MISSING: K.INVALID_NONCE,
  PARAM_INVALID: K.INVALID_NONCE,
  SIGNATURE_HEADER_MALFORMED: K.INVALID_SIGNATURE,
  SIGNATURE_HEADER_DUPLICATED: K.INVALID_SIGNATURE,
  SIGNATURE_LABEL_MISMATCH: K.INVALID_SIGNATURE,
  SIGNATURE_PARAM_MISSING: K.INVALID_SIGNATURE,
  SIGNATURE_PARAM_INVALID: K.INVALID_SIGNATURE,
  SIGNATURE_COMPONENT_MISSING: K.INVALID_ARGUMENTS,
  SIGNATURE_COMPONENT_INVALID: K.INVALID_SIGNATURE,
  SIGNATURE_COMPONENT_ABSENT: K.INVALID_SIGNATURE,
  NONCE_MALFORMED: K.INVALID_NONCE,
  CONTENT_DIGEST_MISSING: K.INVALID_SIGNATURE,
  CONTENT_DIGEST_MALFORMED: K.INVALID_SIGNATURE,
  CONTENT_DIGEST_UNSUPPORTED: K.INVALID_SIGNATURE,
  CONTENT_DIGEST_MISMATCH: K.INVALID_SIGNATURE,
  // The key (stage 4).
  KEY_ID_MALFORMED: K.INVALID_KEY,
  KEY_UNKNOWN: K.INVALID_KEY,
  KEY_ENVIRONMENT_MISMATCH: K.INVALID_KEY,
  KEY_REVOKED: K.INVALID_KEY,
  KEY_SUSPENDED: K.INVALID_KEY,
  KEY_EXPIRED: K.INVALID_KEY,
  KEY_IDLE_EXPIRED: K.INVALID_KEY,
  IP_NOT_ALLOWED: K.PERMISSION_DENIED,
  KEY_CERT_MISMATCH: K.INVALID_KEY,
  AUTHORIZER_PEER_UNTRUSTED: K.PERMISSION_DENIED,
  AUTHORIZER_BODY_UNSEEN: K.INVALID_ARGUMENTS,
  AUTHORIZER_REFUSAL_INVALID: K.PERMISSION_DENIED,
  DRAINING: K.UNAVAILABLE,
  NOT_READY: K.UNAVAILABLE,
  DURABLE_STORE_UNAVAILABLE: K.UNAVAILABLE,
  AUDIT_LOG_STUCK: K.UNAVAILABLE,
  CUSTODY_UNAVAILABLE: K.UNAVAILABLE,
  CHECK_TIMED_OUT: K.UNAVAILABLE,
  METRICS_UNAUTHORIZED: K.INVALID_KEY,
  CONSOLE_NOT_AVAILABLE: K.UNKNOWN_METHOD,
  STATS_STREAMS_EXHAUSTED: K.RATE_LIMIT,
  SEALED_MALFORMED: K.INVALID_ARGUMENTS,
  SEALED_KEY_UNKNOWN: K.INVALID_ARGUMENTS,
  SEALED_OPEN_FAILED: K.INVALID_ARGUMENTS,
  SEALED_NOT_COVERED: K.INVALID_ARGUMENTS,
  SEALED_NOT_SUPPORTED: K.INVALID_ARGUMENTS,
  DIALECT_NOT_ALLOWED: K.INVALID_KEY,
  KEY_STORE_UNAVAILABLE: K.UNAVAILABLE,
  // Freshness, signature, replay (stages 5-7).
  CREATED_TOO_OLD: K.INVALID_NONCE,
  REPLAY_FENCED: K.INVALID_NONCE,
  CREATED_IN_FUTURE: K.INVALID_NONCE,
  SIGNATURE_EXPIRED: K.INVALID_NONCE,
  ALGORITHM_MISMATCH: K.INVALID_KEY,
  SIGNATURE_INVALID: K.INVALID_KEY,
  NONCE_REPLAYED: K.INVALID_NONCE,
  NONCE_NOT_INCREASING: K.INVALID_NONCE,
  PASSPHRASE_INVALID: K.INVALID_KEY,
  TOKEN_MALFORMED: K.INVALID_KEY,
  TOKEN_EXPIRED: K.INVALID_KEY,
  TOKEN_NOT_YET_VALID: K.INVALID_KEY,
  TOKEN_LIFETIME_TOO_LONG: K.INVALID_KEY,
  TOKEN_URI_MISMATCH: K.INVALID_KEY,
  // Sessions are native only; a Kraken client never holds one.
  SESSION_INVALID: K.INVALID_KEY,
  SESSION_EXPIRED: K.INVALID_KEY,
  SESSION_REVOKED: K.INVALID_KEY,
  SESSION_ADDRESS_MISMATCH: K.PERMISSION_DENIED,
  SESSION_SCOPE_NOT_HELD: K.PERMISSION_DENIED,
  SESSION_REQUIRED: K.INVALID_KEY,
  SESSION_NOT_ALLOWED: K.INVALID_KEY,
  SESSION_LIFETIME_EXCEEDED: K.INVALID_KEY,
  SESSION_SCHEME_NOT_ALLOWED: K.INVALID_KEY,
  REPLAY_CAPACITY: K.BUSY,
  // Limits and shields.
  RATE_LIMITED: K.RATE_LIMIT,
  ANOMALY_THROTTLED: K.RATE_LIMIT,
  ORDERS_LIMITED: K.ORDER_RATE_LIMIT,
  IP_BANNED: K.LOCKOUT,
  IP_BLOCKED: K.LOCKOUT,
  KEY_BLOCKED: K.LOCKOUT,
  CONCURRENCY_LIMITED: K.RATE_LIMIT,
  HOT_STORE_UNAVAILABLE: K.UNAVAILABLE,
  // Authorization (stage 8).
  SCOPE_MISSING: K.PERMISSION_DENIED,
  // The operation (docs/operations.md).
  OPERATION_MALFORMED: K.INVALID_ARGUMENTS,
  OPERATION_PARAM_MISSING: K.INVALID_ARGUMENTS,
  OPERATION_PARAM_INVALID: K.INVALID_ARGUMENTS,
  OPERATION_PARAM_DUPLICATED: K.INVALID_ARGUMENTS,
  // Guardrails (docs/guardrails.md): what the key may not do is Kraken's permission refusal; a
  // price outside the band is its invalid price.
  GUARDRAIL_SYMBOL: K.PERMISSION_DENIED,
  GUARDRAIL_QUANTITY: K.PERMISSION_DENIED,
  GUARDRAIL_NOTIONAL: K.PERMISSION_DENIED,
  GUARDRAIL_PRICE_BAND: K.INVALID_PRICE,
  GUARDRAIL_NO_REFERENCE_PRICE: K.PERMISSION_DENIED,
  GUARDRAIL_OPEN_NOTIONAL: K.PERMISSION_DENIED,
  GUARDRAIL_ASSET: K.PERMISSION_DENIED,
  // Upstream.
  UPSTREAM_UNAVAILABLE: K.UNAVAILABLE,
  UPSTREAM_TIMEOUT: K.BUSY,
  // WebSocket messages and connections (never rendered for a Kraken route today; mapped for completeness).
  MESSAGE_MALFORMED: K.INVALID_ARGUMENTS,
  METHOD_NOT_FOUND: K.UNKNOWN_METHOD,
  LOGON_KEY_TYPE_NOT_SUPPORTED: K.INVALID_KEY,
  CONNECTION_AUTHENTICATED: K.INVALID_ARGUMENTS,
  KEY_CHANGED: K.INVALID_KEY,
  UPSTREAM_CLOSED: K.UNAVAILABLE,
  GATEWAY_CLOSING: K.UNAVAILABLE,
  // Admin API and key service (the Kraken dialect uses the first two for a body it cannot read).
  VALIDATION_FAILED: K.INVALID_ARGUMENTS,
  JSON_MALFORMED: K.INVALID_ARGUMENTS,
  KEY_NOT_FOUND: K.INVALID_KEY,
  KEY_STATE_CONFLICT: K.INVALID_ARGUMENTS,
  ADMIN_GRANT_EXCEEDED: K.PERMISSION_DENIED,
  POLICY_BLOCKED: K.PERMISSION_DENIED,
  POLICY_HOLD_UNAVAILABLE: K.UNAVAILABLE,
  POLICY_VERSION_CONFLICT: K.INVALID_ARGUMENTS,
  POLICY_VERSION_NOT_FOUND: K.INVALID_ARGUMENTS,
  ADDRESS_NOT_FOUND: K.INVALID_ARGUMENTS,
  ADDRESS_EXISTS: K.INVALID_ARGUMENTS,
  // Our own faults.
  // The high-value policy and approvals (docs/approvals.md; only the first two reach a venue client).
  POLICY_UNAVAILABLE: K.UNAVAILABLE,
  HOLD_NOT_SUPPORTED: K.PERMISSION_DENIED,
  OPERATION_NOT_FOUND: K.INVALID_ARGUMENTS,
  OPERATION_STATE_CONFLICT: K.INVALID_ARGUMENTS,
  APPROVER_NOT_FOUND: K.INVALID_ARGUMENTS,
  APPROVER_EXISTS: K.INVALID_ARGUMENTS,
  APPROVAL_SELF: K.PERMISSION_DENIED,
  APPROVAL_NOT_IN_GROUP: K.PERMISSION_DENIED,
  APPROVAL_DIGEST_MISMATCH: K.INVALID_ARGUMENTS,
  APPROVAL_SIGNATURE_INVALID: K.INVALID_SIGNATURE,
  APPROVAL_EXPIRED: K.INVALID_ARGUMENTS,
  APPROVAL_DUPLICATE: K.INVALID_ARGUMENTS,
  // Anomaly actions (the admin API only; mapped for completeness).
  ANOMALY_ACTION_NOT_FOUND: K.INVALID_ARGUMENTS,
  ANOMALY_ACTION_FINAL: K.INVALID_ARGUMENTS,
  // The audit log (the admin API only; mapped for completeness).
  AUDIT_VERIFY_RUNNING: K.INVALID_ARGUMENTS,
  // Passkey sign-in (admin API only; never on a venue's routes).
  PASSKEY_CHALLENGE_INVALID: K.INVALID_KEY,
  PASSKEY_VERIFICATION_FAILED: K.INVALID_KEY,
  PASSKEY_UNKNOWN: K.INVALID_KEY,
  PASSKEY_COUNTER_REGRESSED: K.INVALID_KEY,
  PASSKEY_NOT_FOUND: K.INVALID_ARGUMENTS,
  PASSKEY_EXISTS: K.INVALID_ARGUMENTS,
  PASSKEY_LIMIT_REACHED: K.INVALID_ARGUMENTS,
  WALLET_MESSAGE_MALFORMED: K.INVALID_ARGUMENTS,
  WALLET_SIGNATURE_INVALID: K.INVALID_KEY,
  WALLET_DOMAIN_MISMATCH: K.INVALID_KEY,
  WALLET_URI_MISMATCH: K.INVALID_KEY,
  WALLET_CHAIN_MISMATCH: K.INVALID_KEY,
  WALLET_EXPIRED: K.INVALID_KEY,
  WALLET_NOT_YET_VALID: K.INVALID_KEY,
  WALLET_NONCE_REPLAYED: K.INVALID_KEY,
  WALLET_UNKNOWN: K.INVALID_KEY,
  AGENT_SCOPE_FORBIDDEN: K.PERMISSION_DENIED,
  AGENT_WIDENED: K.PERMISSION_DENIED,
  AGENT_ALREADY_REGISTERED: K.INVALID_ARGUMENTS,
  AGENT_LINK_REVOKED: K.INVALID_ARGUMENTS,
  AGENT_CHAIN_REVOKED: K.INVALID_KEY,
  AGENT_CHAIN_BROKEN: K.INVALID_ARGUMENTS,
  AGENT_REVOKE_FORBIDDEN: K.PERMISSION_DENIED,
  INTERNAL: K.INTERNAL,
};

/**
 * For a code added to the catalogue after this table (a test lists them), by status: the
 * nearest Kraken answer rather than none.
 */
function fallbackFor(status: number): string {
  if (status === 429) return K.RATE_LIMIT;
  if (status === 401) return K.INVALID_KEY;
  if (status === 403) return K.PERMISSION_DENIED;
  if (status === 404) return K.UNKNOWN_METHOD;
  if (status === 503 || status === 502 || status === 504) return K.UNAVAILABLE;
  if (status >= 500) return K.INTERNAL;
  return K.INVALID_ARGUMENTS;
}

/** Kraken's HTTP status for a refusal: 200 for the caller's errors, the real status for ours. */
export function krakenStatus(status: number): number {
  return status >= 500 ? status : 200;
}

/** The body Kraken sends for one error. */
export function krakenErrorBody(error: string): string {
  return JSON.stringify({ error: [error] });
}

/** Renders refusals; every answer is built once per code and shared (refusals allocate nothing). */
export function createKrakenRenderer(): (denial: Denial) => RenderedError {
  const rendered = new Map<ErrorCode, RenderedError>();
  return (denial) => {
    let answer = rendered.get(denial.code);
    if (answer === undefined) {
      const error = KRAKEN_ERROR_FOR[denial.code] ?? fallbackFor(denial.status);
      answer = Object.freeze({ status: krakenStatus(denial.status), body: krakenErrorBody(error) });
      rendered.set(denial.code, answer);
    }
    return answer;
  };
}
