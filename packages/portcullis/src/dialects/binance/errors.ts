import { type Denial, type ErrorCode, deny } from "../../errors/catalogue.js";
import type { RenderedError } from "../../contract/request.js";

/**
 * Refusals in Binance's wire format: `{"code": <negative int>, "msg": "<text>"}` with Binance's
 * HTTP statuses (400 for malformed, expired or badly signed requests, 401 for key problems, 429
 * for throttling, 5xx when execution status is unknown). Binance's own messages are used wherever
 * Binance has one, so clients that match on them (ccxt does, for a few) keep working.
 *
 * Every catalogue code has a mapping (the Record type makes a new code a compile error until it
 * is mapped here). The key family follows Binance: a missing or malformed API key is -2014, and
 * everything that means "this key may not do this" (unknown, revoked, suspended, expired, wrong
 * environment, wrong scheme, IP not allowed, missing permission) is -2015, which deliberately does
 * not say which.
 */
interface BinanceError {
  readonly status: number;
  readonly code: number;
  readonly msg: string;
}

const UNKNOWN = "An unknown error occurred while processing the request.";
const DISCONNECTED = "Internal error; unable to process your request. Please try again.";
const TOO_MANY_REQUESTS = "Too many requests queued.";
const TIMEOUT = "Timeout waiting for response from backend server. Send status unknown; execution status unknown.";
const UNSUPPORTED = "This operation is not supported.";
const OUTSIDE_WINDOW = "Timestamp for this request is outside of the recvWindow.";
const INVALID_SIGNATURE = "Signature for this request is not valid.";
const ILLEGAL_CHARS = "Illegal characters found in a parameter.";
const MANDATORY = "A mandatory parameter was not sent, was empty/null, or malformed.";
const INVALID_PARAMETER = "Invalid data sent for a parameter.";
const BAD_KEY_FORMAT = "API-key format invalid.";
const REJECTED_KEY = "Invalid API-key, IP, or permissions for action.";

const e = (status: number, code: number, msg: string): BinanceError => ({ status, code, msg });
const badFormat = e(401, -2014, BAD_KEY_FORMAT);
const rejected = e(401, -2015, REJECTED_KEY);
const outsideWindow = e(400, -1021, OUTSIDE_WINDOW);
const invalidSignature = e(400, -1022, INVALID_SIGNATURE);

/** The Binance answer for each catalogue code. `ahead` is the -1021 "in the future" message. */
function table(ahead: string): Readonly<Record<ErrorCode, BinanceError>> {
  return {
    // The request itself.
    ROUTE_NOT_FOUND: e(404, -1020, UNSUPPORTED),
    PATH_NOT_CANONICAL: e(400, -1100, "Illegal characters found in the request path."),
    BODY_TOO_LARGE: e(413, -1101, "Request body too large."),
    BODY_INCOMPLETE: e(400, -1102, "The request body ended before its declared length."),
    AUTHORITY_NOT_ALLOWED: e(400, -1020, UNSUPPORTED),
    HTTP_MALFORMED: e(400, -1100, "The HTTP request could not be parsed."),
    HEADERS_TOO_LARGE: e(431, -1101, "Request headers too large."),
    EXPECTATION_FAILED: e(400, -1100, "Only Expect: 100-continue is supported."),
    // Credentials: presence and syntax.
    CREDENTIALS_MISSING: badFormat,
    CREDENTIALS_AMBIGUOUS: badFormat,
    SCHEME_NOT_ACCEPTED: rejected,
    PARAM_MISSING: e(400, -1102, MANDATORY),
    PARAM_INVALID: e(400, -1100, ILLEGAL_CHARS),
    // RFC 9421 syntax (native requests only; mapped for completeness).
    SIGNATURE_HEADER_MALFORMED: invalidSignature,
    SIGNATURE_HEADER_DUPLICATED: invalidSignature,
    SIGNATURE_LABEL_MISMATCH: invalidSignature,
    SIGNATURE_PARAM_MISSING: e(400, -1102, MANDATORY),
    SIGNATURE_PARAM_INVALID: e(400, -1100, ILLEGAL_CHARS),
    SIGNATURE_COMPONENT_MISSING: invalidSignature,
    SIGNATURE_COMPONENT_INVALID: invalidSignature,
    SIGNATURE_COMPONENT_ABSENT: invalidSignature,
    NONCE_MALFORMED: e(400, -1100, ILLEGAL_CHARS),
    CONTENT_DIGEST_MISSING: e(400, -1102, MANDATORY),
    CONTENT_DIGEST_MALFORMED: e(400, -1100, ILLEGAL_CHARS),
    CONTENT_DIGEST_UNSUPPORTED: e(400, -1100, ILLEGAL_CHARS),
    CONTENT_DIGEST_MISMATCH: invalidSignature,
    // The key.
    KEY_ID_MALFORMED: badFormat,
    KEY_UNKNOWN: rejected,
    KEY_ENVIRONMENT_MISMATCH: rejected,
    KEY_REVOKED: rejected,
    KEY_SUSPENDED: rejected,
    KEY_EXPIRED: rejected,
    KEY_IDLE_EXPIRED: rejected,
    IP_NOT_ALLOWED: rejected,
    KEY_CERT_MISMATCH: rejected,
    AUTHORIZER_PEER_UNTRUSTED: rejected,
    AUTHORIZER_BODY_UNSEEN: e(400, -1020, UNSUPPORTED),
    AUTHORIZER_REFUSAL_INVALID: rejected,
    DRAINING: e(503, -1001, DISCONNECTED),
    NOT_READY: e(503, -1001, DISCONNECTED),
    DURABLE_STORE_UNAVAILABLE: e(503, -1001, DISCONNECTED),
    AUDIT_LOG_STUCK: e(503, -1001, DISCONNECTED),
    CUSTODY_UNAVAILABLE: e(503, -1001, DISCONNECTED),
    CHECK_TIMED_OUT: e(503, -1001, DISCONNECTED),
    METRICS_UNAUTHORIZED: rejected,
    CONSOLE_NOT_AVAILABLE: e(404, -1020, UNSUPPORTED),
    STATS_STREAMS_EXHAUSTED: e(429, -1003, TOO_MANY_REQUESTS),
    // Sealed orders are native only (docs/sealed-orders.md): a Binance-signed one is unsupported.
    SEALED_MALFORMED: e(400, -1130, INVALID_PARAMETER),
    SEALED_KEY_UNKNOWN: e(400, -1130, INVALID_PARAMETER),
    SEALED_OPEN_FAILED: e(400, -1130, INVALID_PARAMETER),
    SEALED_NOT_COVERED: e(400, -1130, INVALID_PARAMETER),
    SEALED_NOT_SUPPORTED: e(400, -1020, UNSUPPORTED),
    DIALECT_NOT_ALLOWED: rejected,
    KEY_STORE_UNAVAILABLE: e(503, -1001, DISCONNECTED),
    // Freshness, signature, replay.
    CREATED_TOO_OLD: outsideWindow,
    REPLAY_FENCED: outsideWindow,
    CREATED_IN_FUTURE: e(400, -1021, ahead),
    SIGNATURE_EXPIRED: outsideWindow,
    ALGORITHM_MISMATCH: invalidSignature,
    SIGNATURE_INVALID: invalidSignature,
    // A replayed request is a request that is no longer valid: clients re-sign with a new timestamp.
    NONCE_REPLAYED: e(400, -1021, "This request was already received; sign every request with a new timestamp."),
    NONCE_NOT_INCREASING: outsideWindow,
    PASSPHRASE_INVALID: rejected,
    TOKEN_MALFORMED: badFormat,
    TOKEN_EXPIRED: outsideWindow,
    TOKEN_NOT_YET_VALID: e(400, -1021, ahead),
    TOKEN_LIFETIME_TOO_LONG: e(400, -1130, INVALID_PARAMETER),
    TOKEN_URI_MISMATCH: invalidSignature,
    REPLAY_CAPACITY: e(429, -1003, TOO_MANY_REQUESTS),
    // Authorization.
    SCOPE_MISSING: rejected,
    // Sessions are native only; a venue client never holds one.
    SESSION_INVALID: rejected,
    SESSION_EXPIRED: rejected,
    SESSION_REVOKED: rejected,
    SESSION_ADDRESS_MISMATCH: rejected,
    SESSION_SCOPE_NOT_HELD: rejected,
    SESSION_REQUIRED: rejected,
    SESSION_NOT_ALLOWED: rejected,
    SESSION_LIFETIME_EXCEEDED: rejected,
    SESSION_SCHEME_NOT_ALLOWED: rejected,
    // The operation (docs/operations.md).
    OPERATION_MALFORMED: e(400, -1130, INVALID_PARAMETER),
    OPERATION_PARAM_MISSING: e(400, -1102, MANDATORY),
    OPERATION_PARAM_INVALID: e(400, -1130, INVALID_PARAMETER),
    OPERATION_PARAM_DUPLICATED: e(400, -1101, "Duplicate values for a parameter detected."),
    // Guardrails (docs/guardrails.md): an order is -2010 NEW_ORDER_REJECTED with a message, as
    // Binance rejects an order its filters refuse; a withdrawal -1002 UNAUTHORIZED.
    GUARDRAIL_SYMBOL: e(400, -2010, "Order rejected: this API key may not trade this symbol."),
    GUARDRAIL_QUANTITY: e(400, -2010, "Order rejected: quantity is above this API key's maximum."),
    GUARDRAIL_NOTIONAL: e(400, -2010, "Order rejected: order value is above this API key's maximum."),
    GUARDRAIL_PRICE_BAND: e(400, -2010, "Order rejected: price is too far from the current price for this API key."),
    GUARDRAIL_OPEN_NOTIONAL: e(400, -2010, "Order rejected: the value of this API key's open orders would be above its maximum."),
    GUARDRAIL_NO_REFERENCE_PRICE: e(400, -2010, "Order rejected: no reference price to check this API key's limits; try again later."),
    GUARDRAIL_ASSET: e(400, -1002, "You are not authorized to execute this request."),
    // Limits and shields: Binance's 429, and its 418 for an address banned after repeated 429s.
    RATE_LIMITED: e(429, -1003, "Too much request weight used; please use WebSocket Streams for live updates to avoid polling the API."),
    ANOMALY_THROTTLED: e(429, -1003, "Too much request weight used; please use WebSocket Streams for live updates to avoid polling the API."),
    // Binance's order-count refusal ("Too many new orders; current limit is %s orders per %s.").
    ORDERS_LIMITED: e(429, -1015, "Too many new orders."),
    IP_BANNED: e(418, -1003, "Way too much request weight used; IP banned for a while. Please use WebSocket Streams for live updates to avoid bans."),
    IP_BLOCKED: e(418, -1003, "Too many failed requests from this IP; it is blocked for a while."),
    KEY_BLOCKED: e(429, -1003, "Too many failed requests for this API key; it is blocked for a while."),
    CONCURRENCY_LIMITED: e(429, -1003, TOO_MANY_REQUESTS),
    HOT_STORE_UNAVAILABLE: e(503, -1001, DISCONNECTED),
    // Upstream: 5xx means "execution status unknown" to a Binance client.
    UPSTREAM_UNAVAILABLE: e(502, -1001, DISCONNECTED),
    UPSTREAM_TIMEOUT: e(504, -1007, TIMEOUT),
    // WebSocket API (gateway/websocket/). A logon with a key that is not Ed25519 is answered as
    // Binance answers it (-4056 for HMAC keys; the WebSocket module gives RSA keys -4057).
    MESSAGE_MALFORMED: e(400, -1102, MANDATORY),
    METHOD_NOT_FOUND: e(400, -1020, UNSUPPORTED),
    LOGON_KEY_TYPE_NOT_SUPPORTED: e(400, -4056, "HMAC_SHA256 API key is not supported."),
    CONNECTION_AUTHENTICATED: e(400, -1020, UNSUPPORTED),
    KEY_CHANGED: rejected,
    UPSTREAM_CLOSED: e(502, -1001, DISCONNECTED),
    GATEWAY_CLOSING: e(503, -1016, "This service is no longer available."),
    // Admin API and key service (never rendered by a venue dialect; mapped for completeness).
    VALIDATION_FAILED: e(400, -1130, INVALID_PARAMETER),
    JSON_MALFORMED: e(400, -1135, "Invalid JSON Request"),
    KEY_NOT_FOUND: rejected,
    KEY_STATE_CONFLICT: e(400, -1130, INVALID_PARAMETER),
    ADMIN_GRANT_EXCEEDED: rejected,
    // The policy (stage 10) and the address book.
    POLICY_HOLD_UNAVAILABLE: e(503, -1001, DISCONNECTED),
    POLICY_VERSION_CONFLICT: e(400, -1130, INVALID_PARAMETER),
    POLICY_VERSION_NOT_FOUND: e(400, -1130, INVALID_PARAMETER),
    ADDRESS_NOT_FOUND: e(400, -1130, INVALID_PARAMETER),
    ADDRESS_EXISTS: e(400, -1130, INVALID_PARAMETER),
    // The high-value policy (docs/approvals.md): a blocked withdrawal is Binance's -1002; the rest
    // are the admin API's (never rendered by a venue dialect; mapped for completeness).
    POLICY_BLOCKED: e(401, -1002, "You are not authorized to execute this request."),
    POLICY_UNAVAILABLE: e(503, -1001, DISCONNECTED),
    HOLD_NOT_SUPPORTED: e(400, -1020, UNSUPPORTED),
    OPERATION_NOT_FOUND: e(404, -1020, UNSUPPORTED),
    OPERATION_STATE_CONFLICT: e(400, -1130, INVALID_PARAMETER),
    APPROVER_NOT_FOUND: e(404, -1020, UNSUPPORTED),
    APPROVER_EXISTS: e(400, -1130, INVALID_PARAMETER),
    APPROVAL_SELF: rejected,
    APPROVAL_NOT_IN_GROUP: rejected,
    APPROVAL_DIGEST_MISMATCH: e(400, -1130, INVALID_PARAMETER),
    APPROVAL_SIGNATURE_INVALID: invalidSignature,
    APPROVAL_EXPIRED: e(400, -1130, INVALID_PARAMETER),
    APPROVAL_DUPLICATE: e(400, -1130, INVALID_PARAMETER),
    // Anomaly actions (the admin API only; mapped for completeness).
    ANOMALY_ACTION_NOT_FOUND: e(404, -1020, UNSUPPORTED),
    ANOMALY_ACTION_FINAL: e(400, -1130, INVALID_PARAMETER),
    // The audit log (the admin API only; mapped for completeness).
    AUDIT_VERIFY_RUNNING: e(400, -1130, INVALID_PARAMETER),
    // Passkey sign-in (admin API only; never on a venue's routes).
    PASSKEY_CHALLENGE_INVALID: invalidSignature,
    PASSKEY_VERIFICATION_FAILED: invalidSignature,
    PASSKEY_UNKNOWN: rejected,
    PASSKEY_COUNTER_REGRESSED: invalidSignature,
    PASSKEY_NOT_FOUND: e(404, -1020, UNSUPPORTED),
    PASSKEY_EXISTS: e(400, -1130, INVALID_PARAMETER),
    PASSKEY_LIMIT_REACHED: e(400, -1130, INVALID_PARAMETER),
    WALLET_MESSAGE_MALFORMED: e(400, -1130, INVALID_PARAMETER),
    WALLET_SIGNATURE_INVALID: invalidSignature,
    WALLET_DOMAIN_MISMATCH: invalidSignature,
    WALLET_URI_MISMATCH: invalidSignature,
    WALLET_CHAIN_MISMATCH: invalidSignature,
    WALLET_EXPIRED: invalidSignature,
    WALLET_NOT_YET_VALID: invalidSignature,
    WALLET_NONCE_REPLAYED: invalidSignature,
    WALLET_UNKNOWN: rejected,
    AGENT_SCOPE_FORBIDDEN: rejected,
    AGENT_WIDENED: rejected,
    AGENT_ALREADY_REGISTERED: e(400, -1130, INVALID_PARAMETER),
    AGENT_LINK_REVOKED: e(400, -1130, INVALID_PARAMETER),
    AGENT_CHAIN_REVOKED: rejected,
    AGENT_CHAIN_BROKEN: e(400, -1130, INVALID_PARAMETER),
    AGENT_REVOKE_FORBIDDEN: rejected,
    // Our own faults.
    INTERNAL: e(500, -1000, UNKNOWN),
  };
}

/** Binance asks clients to wait this long (seconds) after a 429. */
const RETRY_AFTER = { "retry-after": "1" } as const;

function rendered(error: BinanceError): RenderedError {
  const body = JSON.stringify({ code: error.code, msg: error.msg });
  return error.status === 429 ? { status: error.status, body, headers: RETRY_AFTER } : { status: error.status, body };
}

/**
 * Refusals the Binance scheme gives with Binance's more specific messages. They are shared frozen
 * values, so `render` recognises them by identity (one Map lookup) and the request path allocates
 * nothing to refuse. The detail stays a log-only note, as everywhere.
 */
function specific(code: ErrorCode, detail: string): Denial {
  return Object.freeze(deny(code, detail));
}

export const DENIALS = {
  apiKeyMissing: specific("PARAM_MISSING", "apiKey"),
  signatureMissing: specific("PARAM_MISSING", "signature"),
  timestampMissing: specific("PARAM_MISSING", "timestamp"),
  duplicate: specific("PARAM_INVALID", "signature, timestamp or recvWindow sent more than once"),
  timestampInvalid: specific("PARAM_INVALID", "timestamp is not 1-20 digits"),
  recvWindowInvalid: specific("PARAM_INVALID", "recvWindow is not a decimal with at most 3 decimal places"),
  recvWindowEmpty: specific("PARAM_INVALID", "recvWindow is empty"),
  recvWindowTooLarge: specific("PARAM_INVALID", "recvWindow above 60000"),
} as const;

const SPECIFIC: ReadonlyMap<Denial, BinanceError> = new Map([
  // The WebSocket API's signed requests carry the key in `apiKey` (REST: the X-MBX-APIKEY header).
  [DENIALS.apiKeyMissing, e(400, -1102, "Mandatory parameter 'apiKey' was not sent, was empty/null, or malformed.")],
  [DENIALS.signatureMissing, e(400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")],
  [DENIALS.timestampMissing, e(400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")],
  [DENIALS.duplicate, e(400, -1101, "Duplicate values for a parameter detected.")],
  [DENIALS.timestampInvalid, e(400, -1100, "Illegal characters found in parameter 'timestamp'; legal range is '^[0-9]{1,20}$'.")],
  [
    DENIALS.recvWindowInvalid,
    e(400, -1100, "Illegal characters found in parameter 'recvWindow'; legal range is '^[0-9]{1,20}(\\.[0-9]{1,3})?$'."),
  ],
  [DENIALS.recvWindowEmpty, e(400, -1105, "Parameter 'recvWindow' was empty.")],
  [DENIALS.recvWindowTooLarge, e(400, -1131, "'recvWindow' must be less than 60000.")],
]);

/**
 * Builds the renderer: every answer is rendered once, here, and served from a lookup afterwards.
 * `futureSkewMs` is the gateway's allowance for clocks ahead (Binance's is 1000 ms).
 */
export function createBinanceRenderer(futureSkewMs: number): (denial: Denial, requestId: string) => RenderedError {
  const byCode = new Map<ErrorCode, RenderedError>();
  for (const [code, error] of Object.entries(table(`Timestamp for this request was ${futureSkewMs}ms ahead of the server's time.`))) {
    byCode.set(code as ErrorCode, rendered(error));
  }
  const bySpecific = new Map<Denial, RenderedError>();
  for (const [denial, error] of SPECIFIC) bySpecific.set(denial, rendered(error));
  const internal = rendered(e(500, -1000, UNKNOWN));
  return (denial) => bySpecific.get(denial) ?? byCode.get(denial.code) ?? internal;
}

/** The Binance code and status for a catalogue code (for documentation and tests). */
export function binanceErrorFor(code: ErrorCode, futureSkewMs = 1000): BinanceError {
  return table(`Timestamp for this request was ${futureSkewMs}ms ahead of the server's time.`)[code];
}
