import { type Denial, type ErrorCode, deny } from "../../errors/catalogue.js";
import type { RenderedError } from "../../contract/request.js";

/**
 * Bybit's (v5) error format and codes:
 * `{"retCode":10003,"retMsg":"API key is invalid.","result":{},"retExtInfo":{},"time":1700000000000}`.
 *
 * Bybit answers authentication and permission failures with HTTP 200 and the failure in
 * `retCode` (what ccxt and Bybit's own SDKs read), so every refusal of a caller's credentials is
 * 200 here too. Faults of the request's transport (an unknown route 404, a body or headers too
 * large) keep their HTTP status, and so do the gateway's own faults (5xx), so that load balancers
 * and monitoring still see them.
 *
 * Every catalogue code has an entry (the Record type makes a missing one a compile error); the
 * per-header refusals of stage 3 have their own. Each body is prebuilt up to its `time` field.
 */
interface BybitError {
  readonly status: number;
  readonly retCode: number;
  readonly retMsg: string;
}

const E = {
  serverTimeout: { status: 504, retCode: 10000, retMsg: "Server Timeout" },
  params: { status: 200, retCode: 10001, retMsg: "Request parameter error." },
  timestamp: {
    status: 200,
    retCode: 10002,
    retMsg: "invalid request, please check your server timestamp or recv_window param",
  },
  invalidKey: { status: 200, retCode: 10003, retMsg: "API key is invalid." },
  environment: {
    status: 200,
    retCode: 10003,
    retMsg: "API key is invalid. Check whether the key and domain are matched (test and live keys are distinct).",
  },
  sign: { status: 200, retCode: 10004, retMsg: "Error sign, please check your signature generation algorithm." },
  permission: { status: 200, retCode: 10005, retMsg: "Permission denied, please check your API key permissions." },
  authFailed: { status: 200, retCode: 10007, retMsg: "User authentication failed." },
  ip: { status: 200, retCode: 10010, retMsg: "Unmatched IP, please check your API key's bound IP addresses." },
  duplicate: { status: 200, retCode: 10014, retMsg: "Invalid duplicate request." },
  serverError: { status: 500, retCode: 10016, retMsg: "Server error." },
  routeNotFound: { status: 404, retCode: 10017, retMsg: "Route not found." },
  keyExpired: { status: 200, retCode: 33004, retMsg: "Your api key has expired." },
  tooMany: { status: 429, retCode: 10006, retMsg: "Too many visits!" },
  ipBanned: { status: 403, retCode: 10018, retMsg: "Exceeded the IP rate limit; access is banned for a while." },
  symbolWhitelist: { status: 200, retCode: 10029, retMsg: "The requested symbol is invalid, please check symbol whitelist" },
  compliance: { status: 200, retCode: 10024, retMsg: "Compliance rules triggered" },
  quantityUpper: { status: 200, retCode: 170136, retMsg: "Order quantity exceeded upper limit." },
  priceRange: { status: 200, retCode: 110003, retMsg: "Order price is out of permissible range." },
} as const satisfies Record<string, BybitError>;

const status = (e: BybitError, httpStatus: number): BybitError => ({ ...e, status: httpStatus });

/** Every catalogue code in Bybit's terms. */
export const BYBIT_ERRORS: Readonly<Record<ErrorCode, BybitError>> = {
  ROUTE_NOT_FOUND: E.routeNotFound,
  PATH_NOT_CANONICAL: status(E.params, 400),
  BODY_TOO_LARGE: status(E.params, 413),
  BODY_INCOMPLETE: status(E.params, 400),
  AUTHORITY_NOT_ALLOWED: status(E.params, 400),
  HTTP_MALFORMED: status(E.params, 400),
  HEADERS_TOO_LARGE: status(E.params, 431),
  EXPECTATION_FAILED: status(E.params, 417),

  CREDENTIALS_MISSING: E.invalidKey,
  CREDENTIALS_AMBIGUOUS: E.authFailed,
  SCHEME_NOT_ACCEPTED: E.authFailed,
  PARAM_MISSING: E.params,
  PARAM_INVALID: E.params,
  SIGNATURE_HEADER_MALFORMED: E.sign,
  SIGNATURE_HEADER_DUPLICATED: E.sign,
  SIGNATURE_LABEL_MISMATCH: E.sign,
  SIGNATURE_PARAM_MISSING: E.sign,
  SIGNATURE_PARAM_INVALID: E.sign,
  SIGNATURE_COMPONENT_MISSING: E.sign,
  SIGNATURE_COMPONENT_INVALID: E.sign,
  SIGNATURE_COMPONENT_ABSENT: E.sign,
  NONCE_MALFORMED: E.sign,
  CONTENT_DIGEST_MISSING: E.params,
  CONTENT_DIGEST_MALFORMED: E.params,
  CONTENT_DIGEST_UNSUPPORTED: E.params,
  CONTENT_DIGEST_MISMATCH: E.params,

  KEY_ID_MALFORMED: E.invalidKey,
  KEY_UNKNOWN: E.invalidKey,
  KEY_ENVIRONMENT_MISMATCH: E.environment,
  KEY_REVOKED: E.invalidKey,
  KEY_SUSPENDED: E.invalidKey,
  KEY_EXPIRED: E.keyExpired,
  KEY_IDLE_EXPIRED: E.keyExpired,
  IP_NOT_ALLOWED: E.ip,
  KEY_CERT_MISMATCH: E.invalidKey,
  AUTHORIZER_PEER_UNTRUSTED: E.ip,
  AUTHORIZER_BODY_UNSEEN: status(E.params, 400),
  AUTHORIZER_REFUSAL_INVALID: E.permission,
  DRAINING: status(E.serverError, 503),
  NOT_READY: status(E.serverError, 503),
  DURABLE_STORE_UNAVAILABLE: status(E.serverError, 503),
  AUDIT_LOG_STUCK: status(E.serverError, 503),
  CUSTODY_UNAVAILABLE: status(E.serverError, 503),
  CHECK_TIMED_OUT: status(E.serverError, 503),
  METRICS_UNAUTHORIZED: E.invalidKey,
  CONSOLE_NOT_AVAILABLE: E.routeNotFound,
  STATS_STREAMS_EXHAUSTED: E.tooMany,
  SEALED_MALFORMED: E.params,
  SEALED_KEY_UNKNOWN: E.params,
  SEALED_OPEN_FAILED: E.params,
  SEALED_NOT_COVERED: E.params,
  SEALED_NOT_SUPPORTED: E.params,
  DIALECT_NOT_ALLOWED: E.invalidKey,
  KEY_STORE_UNAVAILABLE: status(E.serverError, 503),

  CREATED_TOO_OLD: E.timestamp,
  REPLAY_FENCED: E.timestamp,
  CREATED_IN_FUTURE: E.timestamp,
  SIGNATURE_EXPIRED: E.timestamp,
  ALGORITHM_MISMATCH: E.sign,
  SIGNATURE_INVALID: E.sign,
  NONCE_REPLAYED: E.duplicate,
  NONCE_NOT_INCREASING: E.duplicate,
  PASSPHRASE_INVALID: E.authFailed,
  TOKEN_MALFORMED: E.authFailed,
  TOKEN_EXPIRED: E.authFailed,
  TOKEN_NOT_YET_VALID: E.authFailed,
  TOKEN_LIFETIME_TOO_LONG: E.authFailed,
  TOKEN_URI_MISMATCH: E.authFailed,
  RATE_LIMITED: E.tooMany,
  ANOMALY_THROTTLED: E.tooMany,
  ORDERS_LIMITED: E.tooMany,
  IP_BANNED: E.ipBanned,
  IP_BLOCKED: E.ipBanned,
  KEY_BLOCKED: { ...E.tooMany, retMsg: "Too many failed requests for this API key; it is blocked for a while." },
  CONCURRENCY_LIMITED: E.tooMany,
  HOT_STORE_UNAVAILABLE: status(E.serverError, 503),
  REPLAY_CAPACITY: status(E.serverError, 503),

  SCOPE_MISSING: E.permission,
  // The operation (docs/operations.md): Bybit answers parameter errors with HTTP 200.
  OPERATION_MALFORMED: E.params,
  OPERATION_PARAM_MISSING: E.params,
  OPERATION_PARAM_INVALID: E.params,
  OPERATION_PARAM_DUPLICATED: E.params,
  // Guardrails (docs/guardrails.md): Bybit's own refusals of such orders (HTTP 200, as Bybit answers them).
  GUARDRAIL_SYMBOL: E.symbolWhitelist,
  GUARDRAIL_QUANTITY: E.quantityUpper,
  GUARDRAIL_NOTIONAL: E.compliance,
  GUARDRAIL_PRICE_BAND: E.priceRange,
  GUARDRAIL_NO_REFERENCE_PRICE: E.compliance,
  GUARDRAIL_OPEN_NOTIONAL: E.compliance,
  GUARDRAIL_ASSET: E.permission,
  // Sessions are native only; a venue client never holds one.
  SESSION_INVALID: E.invalidKey,
  SESSION_EXPIRED: E.invalidKey,
  SESSION_REVOKED: E.invalidKey,
  SESSION_ADDRESS_MISMATCH: E.permission,
  SESSION_SCOPE_NOT_HELD: E.permission,
  SESSION_REQUIRED: E.invalidKey,
  SESSION_NOT_ALLOWED: E.invalidKey,
  SESSION_LIFETIME_EXCEEDED: E.invalidKey,
  SESSION_SCHEME_NOT_ALLOWED: E.invalidKey,

  UPSTREAM_UNAVAILABLE: status(E.serverError, 502),
  UPSTREAM_TIMEOUT: E.serverTimeout,

  // WebSocket messages and connections (never rendered for a Bybit route today; mapped for completeness).
  MESSAGE_MALFORMED: status(E.params, 400),
  METHOD_NOT_FOUND: status(E.routeNotFound, 400),
  LOGON_KEY_TYPE_NOT_SUPPORTED: E.invalidKey,
  CONNECTION_AUTHENTICATED: status(E.params, 400),
  KEY_CHANGED: E.invalidKey,
  UPSTREAM_CLOSED: status(E.serverError, 502),
  GATEWAY_CLOSING: status(E.serverError, 503),

  VALIDATION_FAILED: status(E.params, 400),
  JSON_MALFORMED: status(E.params, 400),
  KEY_NOT_FOUND: E.invalidKey,
  KEY_STATE_CONFLICT: status(E.params, 409),
  ADMIN_GRANT_EXCEEDED: E.permission,
  POLICY_BLOCKED: E.permission,
  POLICY_HOLD_UNAVAILABLE: status(E.serverError, 503),
  POLICY_VERSION_CONFLICT: status(E.params, 409),
  POLICY_VERSION_NOT_FOUND: status(E.params, 404),
  ADDRESS_NOT_FOUND: status(E.params, 404),
  ADDRESS_EXISTS: status(E.params, 409),

  // The high-value policy and approvals (docs/approvals.md; only the first two reach a venue client).
  POLICY_UNAVAILABLE: status(E.serverError, 503),
  HOLD_NOT_SUPPORTED: E.permission,
  OPERATION_NOT_FOUND: status(E.params, 404),
  OPERATION_STATE_CONFLICT: status(E.params, 409),
  APPROVER_NOT_FOUND: status(E.params, 404),
  APPROVER_EXISTS: status(E.params, 409),
  APPROVAL_SELF: E.permission,
  APPROVAL_NOT_IN_GROUP: E.permission,
  APPROVAL_DIGEST_MISMATCH: status(E.params, 409),
  APPROVAL_SIGNATURE_INVALID: E.sign,
  APPROVAL_EXPIRED: status(E.params, 409),
  APPROVAL_DUPLICATE: status(E.params, 409),
  // Anomaly actions (the admin API only; mapped for completeness).
  ANOMALY_ACTION_NOT_FOUND: status(E.params, 404),
  ANOMALY_ACTION_FINAL: status(E.params, 409),
  // The audit log (the admin API only; mapped for completeness).
  AUDIT_VERIFY_RUNNING: status(E.params, 409),
  // Passkey sign-in (admin API only; never on a venue's routes).
  PASSKEY_CHALLENGE_INVALID: E.sign,
  PASSKEY_VERIFICATION_FAILED: E.sign,
  PASSKEY_UNKNOWN: E.invalidKey,
  PASSKEY_COUNTER_REGRESSED: E.sign,
  PASSKEY_NOT_FOUND: status(E.params, 404),
  PASSKEY_EXISTS: status(E.params, 409),
  PASSKEY_LIMIT_REACHED: status(E.params, 409),
  WALLET_MESSAGE_MALFORMED: status(E.params, 400),
  WALLET_SIGNATURE_INVALID: E.sign,
  WALLET_DOMAIN_MISMATCH: E.sign,
  WALLET_URI_MISMATCH: E.sign,
  WALLET_CHAIN_MISMATCH: E.sign,
  WALLET_EXPIRED: E.sign,
  WALLET_NOT_YET_VALID: E.sign,
  WALLET_NONCE_REPLAYED: E.sign,
  WALLET_UNKNOWN: E.invalidKey,
  AGENT_SCOPE_FORBIDDEN: E.permission,
  AGENT_WIDENED: E.permission,
  AGENT_ALREADY_REGISTERED: status(E.params, 409),
  AGENT_LINK_REVOKED: status(E.params, 409),
  AGENT_CHAIN_REVOKED: E.invalidKey,
  AGENT_CHAIN_BROKEN: status(E.params, 400),
  AGENT_REVOKE_FORBIDDEN: E.permission,
  INTERNAL: E.serverError,
};

/** The Bybit credential headers, as sent (lower case, as node delivers them). */
export const BYBIT_HEADERS = {
  key: "x-bapi-api-key",
  sign: "x-bapi-sign",
  timestamp: "x-bapi-timestamp",
  recvWindow: "x-bapi-recv-window",
  signType: "x-bapi-sign-type",
} as const;

const refusal = (code: ErrorCode, detail: string): Denial => Object.freeze(deny(code, detail));

/** The refusals of stage 3, one per header and fault (shared frozen values, known by identity). */
export const BYBIT_REFUSALS = {
  keyMissing: refusal("PARAM_MISSING", "X-BAPI-API-KEY is missing"),
  keyInvalid: refusal("PARAM_INVALID", "X-BAPI-API-KEY is not one header value"),
  signMissing: refusal("PARAM_MISSING", "X-BAPI-SIGN is missing"),
  signInvalid: refusal("PARAM_INVALID", "X-BAPI-SIGN is not hex or base64 text"),
  timestampMissing: refusal("PARAM_MISSING", "X-BAPI-TIMESTAMP is missing"),
  timestampInvalid: refusal("PARAM_INVALID", "X-BAPI-TIMESTAMP is not epoch milliseconds"),
  recvWindowInvalid: refusal("PARAM_INVALID", "X-BAPI-RECV-WINDOW is not a positive integer of milliseconds"),
  signTypeInvalid: refusal("PARAM_INVALID", 'X-BAPI-SIGN-TYPE, when sent, must be "2"'),
  bodyOnGet: refusal("PARAM_INVALID", "a GET request signs its query string and may not carry a body"),
  queryOnPost: refusal("PARAM_INVALID", "a request with a body signs the body and may not carry a query string"),
  keyAlgorithm: refusal("ALGORITHM_MISMATCH", "Bybit signs with HMAC-SHA256 or RSA-SHA256; this key is neither"),
  hmacNotHex: refusal("SIGNATURE_INVALID", "an HMAC key's X-BAPI-SIGN is 64 hex digits"),
  rsaNotBase64: refusal("SIGNATURE_INVALID", "an RSA key's X-BAPI-SIGN is canonical base64"),
} as const;

const specific = new Map<Denial, BybitError>([
  [BYBIT_REFUSALS.keyMissing, E.invalidKey],
  [BYBIT_REFUSALS.keyInvalid, E.invalidKey],
  [BYBIT_REFUSALS.signMissing, E.sign],
  [BYBIT_REFUSALS.signInvalid, E.sign],
  [BYBIT_REFUSALS.timestampMissing, E.timestamp],
  [BYBIT_REFUSALS.timestampInvalid, E.timestamp],
  [BYBIT_REFUSALS.recvWindowInvalid, E.timestamp],
]);

interface Prebuilt {
  readonly status: number;
  /** The body up to and including `"time":`. */
  readonly head: string;
}

const prebuild = (e: BybitError): Prebuilt => ({
  status: e.status,
  head: `{"retCode":${e.retCode},"retMsg":${JSON.stringify(e.retMsg)},"result":{},"retExtInfo":{},"time":`,
});
const byCode = new Map<ErrorCode, Prebuilt>();
for (const [code, e] of Object.entries(BYBIT_ERRORS) as [ErrorCode, BybitError][]) byCode.set(code, prebuild(e));
const bySpecific = new Map<Denial, Prebuilt>();
for (const [denial, e] of specific) bySpecific.set(denial, prebuild(e));
const fallback = prebuild(E.serverError);

/** The Bybit answer for a refusal (the request id travels in the portcullis-request-id header). */
export function renderBybit(denial: Denial, _requestId: string, now: number = Date.now()): RenderedError {
  const prebuilt = bySpecific.get(denial) ?? byCode.get(denial.code) ?? fallback;
  return { status: prebuilt.status, body: `${prebuilt.head}${now}}` };
}

/** The Bybit retCode and HTTP status a refusal is answered with (for documentation and tests). */
export function bybitErrorOf(denial: Denial): BybitError {
  return specific.get(denial) ?? BYBIT_ERRORS[denial.code];
}
