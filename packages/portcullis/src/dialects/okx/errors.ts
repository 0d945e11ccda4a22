import { type Denial, type ErrorCode, deny } from "../../errors/catalogue.js";
import type { RenderedError } from "../../contract/request.js";

/**
 * OKX's error format and codes: `{"code":"50113","msg":"Invalid Sign","data":[]}`, with the HTTP
 * status OKX documents for the code (401 for the 501xx authentication family, 400 for parameter
 * errors, 429, 5xx for its own faults). Where OKX documents no status for the situation (a key
 * without the permission, a route it does not serve), the status is Portcullis's.
 *
 * Every catalogue code has an entry (the Record type makes a missing one a compile error), and
 * the refusals this dialect builds for one particular header (a missing OK-ACCESS-SIGN is 50106,
 * a missing OK-ACCESS-PASSPHRASE 50104…) are rendered from their own entries. Bodies are built
 * once, at load time: rendering a refusal allocates nothing.
 */
interface OkxError {
  readonly status: number;
  readonly code: string;
  readonly msg: string;
}

function okx(status: number, code: string, msg: string): RenderedError {
  return Object.freeze({ status, body: JSON.stringify({ code, msg, data: [] }) });
}

const E = {
  notFound: { status: 404, code: "404", msg: "Not Found" },
  serviceUnavailable: { status: 503, code: "50001", msg: "Service temporarily unavailable. Please try again later." },
  jsonSyntax: { status: 400, code: "50002", msg: "JSON syntax error" },
  timeout: {
    status: 504,
    code: "50004",
    msg: "API endpoint request timeout (does not mean that the request was successful or failed, please check the request result).",
  },
  busy: { status: 503, code: "50013", msg: "Systems are busy. Please try again later." },
  systemError: { status: 500, code: "50026", msg: "System error. Try again later." },
  apiFrozen: { status: 400, code: "50100", msg: "API frozen, please contact customer service." },
  environment: { status: 401, code: "50101", msg: "APIKey does not match current environment." },
  expired: { status: 401, code: "50102", msg: "Timestamp request expired." },
  keyEmpty: { status: 401, code: "50103", msg: 'Request header "OK-ACCESS-KEY" cannot be empty.' },
  passphraseEmpty: { status: 401, code: "50104", msg: 'Request header "OK-ACCESS-PASSPHRASE" cannot be empty.' },
  passphraseWrong: { status: 401, code: "50105", msg: 'Request header "OK-ACCESS-PASSPHRASE" incorrect.' },
  signEmpty: { status: 401, code: "50106", msg: 'Request header "OK-ACCESS-SIGN" cannot be empty.' },
  timestampEmpty: { status: 401, code: "50107", msg: 'Request header "OK-ACCESS-TIMESTAMP" cannot be empty.' },
  domain: { status: 401, code: "50109", msg: "Exchange domain does not exist." },
  ip: { status: 401, code: "50110", msg: "Your IP is not included in your API key's IP whitelist." },
  invalidKey: { status: 401, code: "50111", msg: "Invalid OK-ACCESS-KEY." },
  invalidTimestamp: { status: 401, code: "50112", msg: "Invalid OK-ACCESS-TIMESTAMP." },
  invalidSign: { status: 401, code: "50113", msg: "Invalid Sign" },
  invalidAuthorization: { status: 401, code: "50114", msg: "Invalid authorization." },
  noPermission: { status: 403, code: "50120", msg: "API key doesn't have permission." },
  // Order refusals: OKX answers them with HTTP 200 and the 51xxx code.
  maxOrderAmount: { status: 200, code: "51005", msg: "Your order amount exceeds the max order amount." },
  maxOrderValue: { status: 200, code: "51185", msg: "The maximum value allowed per order for this API key is exceeded." },
  priceLimit: { status: 200, code: "51006", msg: "Order price is not within the price limit." },
  unableToTake: { status: 200, code: "50028", msg: "Unable to take the order." },
  rateLimit: { status: 429, code: "50011", msg: "Rate limit reached. Please refer to API documentation and throttle requests accordingly." },
  ipBanned: { status: 429, code: "50061", msg: "Too many requests from this IP; it is banned for a while." },
} as const satisfies Record<string, OkxError>;

const param = (status: number, name: string): OkxError => ({ status, code: "51000", msg: `Parameter ${name} error.` });
const empty = (name: string): OkxError => ({ status: 400, code: "50014", msg: `Parameter ${name} cannot be empty.` });

/** Every catalogue code in OKX's terms. */
export const OKX_ERRORS: Readonly<Record<ErrorCode, OkxError>> = {
  ROUTE_NOT_FOUND: E.notFound,
  PATH_NOT_CANONICAL: param(400, "requestPath"),
  BODY_TOO_LARGE: param(413, "body"),
  BODY_INCOMPLETE: param(400, "body"),
  AUTHORITY_NOT_ALLOWED: E.domain,
  HTTP_MALFORMED: param(400, "request"),
  HEADERS_TOO_LARGE: param(431, "header"),
  EXPECTATION_FAILED: param(417, "Expect"),

  CREDENTIALS_MISSING: E.keyEmpty,
  CREDENTIALS_AMBIGUOUS: E.invalidAuthorization,
  SCHEME_NOT_ACCEPTED: E.invalidAuthorization,
  PARAM_MISSING: empty("header"),
  PARAM_INVALID: param(400, "header"),
  SIGNATURE_HEADER_MALFORMED: E.invalidSign,
  SIGNATURE_HEADER_DUPLICATED: E.invalidSign,
  SIGNATURE_LABEL_MISMATCH: E.invalidSign,
  SIGNATURE_PARAM_MISSING: E.invalidSign,
  SIGNATURE_PARAM_INVALID: E.invalidSign,
  SIGNATURE_COMPONENT_MISSING: E.invalidSign,
  SIGNATURE_COMPONENT_INVALID: E.invalidSign,
  SIGNATURE_COMPONENT_ABSENT: E.invalidSign,
  NONCE_MALFORMED: E.invalidSign,
  CONTENT_DIGEST_MISSING: param(400, "Content-Digest"),
  CONTENT_DIGEST_MALFORMED: param(400, "Content-Digest"),
  CONTENT_DIGEST_UNSUPPORTED: param(400, "Content-Digest"),
  CONTENT_DIGEST_MISMATCH: param(400, "Content-Digest"),

  KEY_ID_MALFORMED: E.invalidKey,
  KEY_UNKNOWN: E.invalidKey,
  KEY_ENVIRONMENT_MISMATCH: E.environment,
  KEY_REVOKED: E.invalidKey,
  KEY_SUSPENDED: E.apiFrozen,
  KEY_EXPIRED: E.invalidKey,
  KEY_IDLE_EXPIRED: E.invalidKey,
  IP_NOT_ALLOWED: E.ip,
  KEY_CERT_MISMATCH: E.invalidKey,
  AUTHORIZER_PEER_UNTRUSTED: E.ip,
  AUTHORIZER_BODY_UNSEEN: param(400, "request"),
  AUTHORIZER_REFUSAL_INVALID: E.noPermission,
  DRAINING: E.serviceUnavailable,
  NOT_READY: E.serviceUnavailable,
  DURABLE_STORE_UNAVAILABLE: E.serviceUnavailable,
  AUDIT_LOG_STUCK: E.serviceUnavailable,
  CUSTODY_UNAVAILABLE: E.serviceUnavailable,
  CHECK_TIMED_OUT: E.serviceUnavailable,
  METRICS_UNAUTHORIZED: E.invalidKey,
  CONSOLE_NOT_AVAILABLE: E.notFound,
  STATS_STREAMS_EXHAUSTED: E.rateLimit,
  SEALED_MALFORMED: param(400, "body"),
  SEALED_KEY_UNKNOWN: param(400, "Portcullis-Sealed"),
  SEALED_OPEN_FAILED: param(400, "body"),
  SEALED_NOT_COVERED: param(400, "Signature-Input"),
  SEALED_NOT_SUPPORTED: param(400, "body"),
  DIALECT_NOT_ALLOWED: E.invalidKey,
  KEY_STORE_UNAVAILABLE: E.serviceUnavailable,

  CREATED_TOO_OLD: E.expired,
  REPLAY_FENCED: E.expired,
  CREATED_IN_FUTURE: E.expired,
  SIGNATURE_EXPIRED: E.expired,
  ALGORITHM_MISMATCH: E.invalidSign,
  SIGNATURE_INVALID: E.invalidSign,
  NONCE_REPLAYED: E.invalidAuthorization,
  NONCE_NOT_INCREASING: E.invalidAuthorization,
  PASSPHRASE_INVALID: E.passphraseWrong,
  TOKEN_MALFORMED: E.invalidAuthorization,
  TOKEN_EXPIRED: E.invalidAuthorization,
  TOKEN_NOT_YET_VALID: E.invalidAuthorization,
  TOKEN_LIFETIME_TOO_LONG: E.invalidAuthorization,
  TOKEN_URI_MISMATCH: E.invalidAuthorization,
  RATE_LIMITED: E.rateLimit,
  ANOMALY_THROTTLED: E.rateLimit,
  ORDERS_LIMITED: E.rateLimit,
  IP_BANNED: E.ipBanned,
  IP_BLOCKED: E.ipBanned,
  KEY_BLOCKED: { ...E.rateLimit, msg: "Too many failed requests for this API key; it is blocked for a while." },
  CONCURRENCY_LIMITED: E.rateLimit,
  HOT_STORE_UNAVAILABLE: E.serviceUnavailable,
  REPLAY_CAPACITY: E.busy,

  SCOPE_MISSING: E.noPermission,
  // The operation (docs/operations.md).
  OPERATION_MALFORMED: E.jsonSyntax,
  OPERATION_PARAM_MISSING: empty("body"),
  OPERATION_PARAM_INVALID: param(400, "body"),
  OPERATION_PARAM_DUPLICATED: param(400, "body"),
  // Guardrails (docs/guardrails.md): OKX's order refusals, and "no permission" for a symbol or an asset the key may not use.
  GUARDRAIL_SYMBOL: E.noPermission,
  GUARDRAIL_QUANTITY: E.maxOrderAmount,
  GUARDRAIL_NOTIONAL: E.maxOrderValue,
  GUARDRAIL_PRICE_BAND: E.priceLimit,
  GUARDRAIL_NO_REFERENCE_PRICE: E.unableToTake,
  GUARDRAIL_OPEN_NOTIONAL: E.unableToTake,
  GUARDRAIL_ASSET: E.noPermission,
  // Sessions are native only; a venue client never holds one.
  SESSION_INVALID: E.invalidKey,
  SESSION_EXPIRED: E.invalidKey,
  SESSION_REVOKED: E.invalidKey,
  SESSION_ADDRESS_MISMATCH: E.noPermission,
  SESSION_SCOPE_NOT_HELD: E.noPermission,
  SESSION_REQUIRED: E.invalidKey,
  SESSION_NOT_ALLOWED: E.invalidKey,
  SESSION_LIFETIME_EXCEEDED: E.invalidKey,
  SESSION_SCHEME_NOT_ALLOWED: E.invalidKey,

  UPSTREAM_UNAVAILABLE: { ...E.serviceUnavailable, status: 502 },
  UPSTREAM_TIMEOUT: E.timeout,

  // WebSocket messages and connections (never rendered for an OKX route today; mapped for completeness).
  MESSAGE_MALFORMED: E.jsonSyntax,
  METHOD_NOT_FOUND: { ...E.notFound, status: 400 },
  LOGON_KEY_TYPE_NOT_SUPPORTED: E.invalidKey,
  CONNECTION_AUTHENTICATED: param(400, "method"),
  KEY_CHANGED: E.invalidKey,
  UPSTREAM_CLOSED: { ...E.serviceUnavailable, status: 502 },
  GATEWAY_CLOSING: E.serviceUnavailable,

  VALIDATION_FAILED: param(400, "body"),
  JSON_MALFORMED: E.jsonSyntax,
  KEY_NOT_FOUND: E.invalidKey,
  KEY_STATE_CONFLICT: { ...E.invalidAuthorization, status: 409 },
  ADMIN_GRANT_EXCEEDED: E.noPermission,
  POLICY_BLOCKED: E.noPermission,
  POLICY_HOLD_UNAVAILABLE: E.serviceUnavailable,
  POLICY_VERSION_CONFLICT: { ...E.invalidAuthorization, status: 409 },
  POLICY_VERSION_NOT_FOUND: E.notFound,
  ADDRESS_NOT_FOUND: E.notFound,
  ADDRESS_EXISTS: { ...E.invalidAuthorization, status: 409 },

  // The high-value policy and approvals (docs/approvals.md; only the first two reach a venue client).
  POLICY_UNAVAILABLE: E.serviceUnavailable,
  HOLD_NOT_SUPPORTED: E.noPermission,
  OPERATION_NOT_FOUND: E.notFound,
  OPERATION_STATE_CONFLICT: { ...E.invalidAuthorization, status: 409 },
  APPROVER_NOT_FOUND: E.notFound,
  APPROVER_EXISTS: { ...E.invalidAuthorization, status: 409 },
  APPROVAL_SELF: E.noPermission,
  APPROVAL_NOT_IN_GROUP: E.noPermission,
  APPROVAL_DIGEST_MISMATCH: { ...E.invalidAuthorization, status: 409 },
  APPROVAL_SIGNATURE_INVALID: E.invalidSign,
  APPROVAL_EXPIRED: { ...E.invalidAuthorization, status: 409 },
  APPROVAL_DUPLICATE: { ...E.invalidAuthorization, status: 409 },
  // Anomaly actions (the admin API only; mapped for completeness).
  ANOMALY_ACTION_NOT_FOUND: E.notFound,
  ANOMALY_ACTION_FINAL: { ...E.invalidAuthorization, status: 409 },
  // The audit log (the admin API only; mapped for completeness).
  AUDIT_VERIFY_RUNNING: { ...E.invalidAuthorization, status: 409 },
  // Passkey sign-in (admin API only; never on a venue's routes).
  PASSKEY_CHALLENGE_INVALID: E.invalidSign,
  PASSKEY_VERIFICATION_FAILED: E.invalidSign,
  PASSKEY_UNKNOWN: E.invalidKey,
  PASSKEY_COUNTER_REGRESSED: E.invalidSign,
  PASSKEY_NOT_FOUND: E.notFound,
  PASSKEY_EXISTS: { ...E.invalidAuthorization, status: 409 },
  PASSKEY_LIMIT_REACHED: { ...E.invalidAuthorization, status: 409 },
  WALLET_MESSAGE_MALFORMED: param(400, "body"),
  WALLET_SIGNATURE_INVALID: E.invalidSign,
  WALLET_DOMAIN_MISMATCH: E.invalidSign,
  WALLET_URI_MISMATCH: E.invalidSign,
  WALLET_CHAIN_MISMATCH: E.invalidSign,
  WALLET_EXPIRED: E.invalidSign,
  WALLET_NOT_YET_VALID: E.invalidSign,
  WALLET_NONCE_REPLAYED: E.invalidSign,
  WALLET_UNKNOWN: E.invalidKey,
  AGENT_SCOPE_FORBIDDEN: E.noPermission,
  AGENT_WIDENED: E.noPermission,
  AGENT_ALREADY_REGISTERED: { ...E.invalidAuthorization, status: 409 },
  AGENT_LINK_REVOKED: { ...E.invalidAuthorization, status: 409 },
  AGENT_CHAIN_REVOKED: E.invalidKey,
  AGENT_CHAIN_BROKEN: param(400, "body"),
  AGENT_REVOKE_FORBIDDEN: E.noPermission,
  INTERNAL: E.systemError,
};

/** The four OKX credential headers, as sent (lower case, as node delivers them). */
export const OKX_HEADERS = {
  key: "ok-access-key",
  sign: "ok-access-sign",
  timestamp: "ok-access-timestamp",
  passphrase: "ok-access-passphrase",
} as const;

const refusal = (code: ErrorCode, detail: string): Denial => Object.freeze(deny(code, detail));

/**
 * The refusals of stage 3, one per header and fault. Each is a shared frozen value, and the
 * renderer knows it by identity, so it answers with the header's own OKX code.
 */
export const OKX_REFUSALS = {
  keyMissing: refusal("PARAM_MISSING", "OK-ACCESS-KEY is missing"),
  keyInvalid: refusal("PARAM_INVALID", "OK-ACCESS-KEY is not one header value"),
  signMissing: refusal("PARAM_MISSING", "OK-ACCESS-SIGN is missing"),
  signInvalid: refusal("PARAM_INVALID", "OK-ACCESS-SIGN is not the base64 of 32 bytes"),
  timestampMissing: refusal("PARAM_MISSING", "OK-ACCESS-TIMESTAMP is missing"),
  timestampInvalid: refusal("PARAM_INVALID", "OK-ACCESS-TIMESTAMP is not YYYY-MM-DDTHH:mm:ss.sssZ"),
  passphraseMissing: refusal("PARAM_MISSING", "OK-ACCESS-PASSPHRASE is missing"),
  passphraseInvalid: refusal("PARAM_INVALID", "OK-ACCESS-PASSPHRASE is not one header value"),
  notHmac: refusal("ALGORITHM_MISMATCH", "OKX signs with HMAC-SHA256; this key has no HMAC secret"),
  noPassphrase: refusal("PASSPHRASE_INVALID", "the key has no passphrase"),
  passphraseTooLong: refusal("PASSPHRASE_INVALID", "longer than any passphrase a key can have"),
} as const;

const specific = new Map<Denial, OkxError>([
  [OKX_REFUSALS.keyMissing, E.keyEmpty],
  [OKX_REFUSALS.keyInvalid, E.invalidKey],
  [OKX_REFUSALS.signMissing, E.signEmpty],
  [OKX_REFUSALS.signInvalid, E.invalidSign],
  [OKX_REFUSALS.timestampMissing, E.timestampEmpty],
  [OKX_REFUSALS.timestampInvalid, E.invalidTimestamp],
  [OKX_REFUSALS.passphraseMissing, E.passphraseEmpty],
  [OKX_REFUSALS.passphraseInvalid, E.passphraseWrong],
]);

const byCode = new Map<ErrorCode, RenderedError>();
for (const [code, e] of Object.entries(OKX_ERRORS) as [ErrorCode, OkxError][]) byCode.set(code, okx(e.status, e.code, e.msg));
const bySpecific = new Map<Denial, RenderedError>();
for (const [denial, e] of specific) bySpecific.set(denial, okx(e.status, e.code, e.msg));
const fallback = okx(E.systemError.status, E.systemError.code, E.systemError.msg);

/** The OKX answer for a refusal (the request id travels in the portcullis-request-id header). */
export function renderOkx(denial: Denial, _requestId: string): RenderedError {
  return bySpecific.get(denial) ?? byCode.get(denial.code) ?? fallback;
}

/** The OKX code and HTTP status a refusal is answered with (for documentation and tests). */
export function okxErrorOf(denial: Denial): { readonly status: number; readonly code: string; readonly msg: string } {
  return specific.get(denial) ?? OKX_ERRORS[denial.code];
}
