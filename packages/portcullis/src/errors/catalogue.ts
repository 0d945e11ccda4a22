/**
 * The one error catalogue. Every refusal Portcullis gives and every failure it reports to an
 * operator has a code here, in one of two groups:
 *
 * - `request`: a refused request (HTTP gateway, WebSocket, admin API), with its HTTP status and
 *   its public message. Refusals are values (`Denial`, `deny`), not exceptions.
 * - `operator`: a failure an operator sees from the CLI or at startup (config, data directory,
 *   custody, audit, the CLI itself), with the area it belongs to and the CLI's exit status.
 *
 * Codes are string literals that are never reused and never renamed: bots, dashboards and scripts
 * match on them. Add new codes at the end of their group. docs/errors.md is generated from this
 * file (`npm run docs:errors`), and a test fails when the two differ.
 */

// --- request refusals ---------------------------------------------------------------------
const requestRefusals = {
  // --- the request itself -----------------------------------------------------------------
  ROUTE_NOT_FOUND: { status: 404, message: "No route is mapped for this method and path." },
  PATH_NOT_CANONICAL: {
    status: 400,
    message: "The request path is not in canonical form (dot segments, empty segments or needless percent-encoding).",
  },
  BODY_TOO_LARGE: { status: 413, message: "The request body is larger than the gateway accepts." },
  BODY_INCOMPLETE: { status: 400, message: "The request body ended before its declared length." },
  AUTHORITY_NOT_ALLOWED: { status: 400, message: "The Host of this request is not served by this gateway." },
  HTTP_MALFORMED: { status: 400, message: "The HTTP request could not be parsed." },
  AUTHORIZER_PEER_UNTRUSTED: { status: 403, message: "The authorizer only answers the proxies configured in gateway.trustedProxies." },
  HEADERS_TOO_LARGE: { status: 431, message: "The request headers are larger than the gateway accepts." },
  EXPECTATION_FAILED: { status: 417, message: "The only expectation the gateway meets is Expect: 100-continue (RFC 9110 section 10.1.1)." },

  // --- credentials: presence and syntax (stage 3) -----------------------------------------
  CREDENTIALS_MISSING: {
    status: 401,
    message: "This route requires a signed request: send Signature-Input and Signature headers (RFC 9421).",
  },
  CREDENTIALS_AMBIGUOUS: { status: 400, message: "The request carries credentials of more than one signing scheme." },
  SCHEME_NOT_ACCEPTED: { status: 400, message: "This route does not accept that signing scheme." },
  PARAM_MISSING: { status: 400, message: "A parameter the signing scheme requires is missing." },
  PARAM_INVALID: { status: 400, message: "A parameter of the signing scheme is malformed or out of range." },
  SIGNATURE_HEADER_MALFORMED: {
    status: 400,
    message: "The Signature or Signature-Input header is not a valid structured field dictionary.",
  },
  SIGNATURE_HEADER_DUPLICATED: {
    status: 400,
    message: "The Signature and Signature-Input headers must each carry exactly one signature.",
  },
  SIGNATURE_LABEL_MISMATCH: {
    status: 400,
    message: "The signature label in Signature does not match the one in Signature-Input.",
  },
  SIGNATURE_PARAM_MISSING: {
    status: 400,
    message: "The signature parameters must include created, nonce and keyid.",
  },
  SIGNATURE_PARAM_INVALID: { status: 400, message: "A signature parameter has the wrong type or an unsupported value." },
  SIGNATURE_COMPONENT_MISSING: {
    status: 400,
    message: "The signature must cover @method, @authority, @path, @query, and content-digest when there is a body.",
  },
  SIGNATURE_COMPONENT_INVALID: {
    status: 400,
    message: "A covered component is malformed, duplicated or not supported.",
  },
  SIGNATURE_COMPONENT_ABSENT: { status: 400, message: "A covered header field is not present in the request." },
  NONCE_MALFORMED: {
    status: 400,
    message: "The nonce must be 8 to 128 characters of letters, digits and -._~+/=.",
  },
  CONTENT_DIGEST_MISSING: { status: 400, message: "A request with a body must carry a Content-Digest header (RFC 9530)." },
  CONTENT_DIGEST_MALFORMED: { status: 400, message: "The Content-Digest header is malformed." },
  CONTENT_DIGEST_UNSUPPORTED: { status: 400, message: "Content-Digest must include sha-256 or sha-512." },
  CONTENT_DIGEST_MISMATCH: { status: 400, message: "The Content-Digest does not match the request body." },

  // --- the key (stage 4) ------------------------------------------------------------------
  KEY_ID_MALFORMED: { status: 401, message: "The key id is not a valid Portcullis key id." },
  KEY_UNKNOWN: { status: 401, message: "No such API key." },
  KEY_ENVIRONMENT_MISMATCH: { status: 401, message: "This key belongs to another environment (test/live)." },
  KEY_REVOKED: { status: 401, message: "This API key has been revoked." },
  KEY_SUSPENDED: { status: 403, message: "This API key is suspended." },
  KEY_EXPIRED: { status: 401, message: "This API key has expired." },
  KEY_IDLE_EXPIRED: {
    status: 401,
    message: "This API key may trade or withdraw from any address and was not used for longer than the idle expiry allows; an operator can renew it, better with an IP allowlist.",
  },
  IP_NOT_ALLOWED: { status: 403, message: "This API key may not be used from this address." },
  DIALECT_NOT_ALLOWED: { status: 401, message: "This API key was not issued for this signing scheme." },
  KEY_STORE_UNAVAILABLE: { status: 503, message: "API keys cannot be checked right now; retry shortly." },

  // --- freshness, signature, replay (stages 5-7) ------------------------------------------
  CREATED_TOO_OLD: { status: 401, message: "The signature's created time is outside the accepted window; check your clock." },
  CREATED_IN_FUTURE: { status: 401, message: "The signature's created time is in the future; check your clock." },
  SIGNATURE_EXPIRED: { status: 401, message: "The signature's expires time has passed." },
  ALGORITHM_MISMATCH: { status: 401, message: "The signature algorithm does not match this key's algorithm." },
  SIGNATURE_INVALID: { status: 401, message: "The signature does not verify." },
  NONCE_REPLAYED: { status: 409, message: "This nonce was already used with this key; every request needs a fresh nonce." },
  NONCE_NOT_INCREASING: { status: 401, message: "The nonce must be higher than the key's previous nonces (within its window)." },
  REPLAY_FENCED: {
    status: 401,
    message:
      "This request was signed before the gateway's replay protection last started (a restart), so it may already have been accepted once; sign it again with the current time.",
  },
  PASSPHRASE_INVALID: { status: 401, message: "The passphrase does not match this API key." },
  TOKEN_MALFORMED: { status: 401, message: "The bearer token is not a well-formed signed JWT." },
  TOKEN_EXPIRED: { status: 401, message: "The token has expired." },
  TOKEN_NOT_YET_VALID: { status: 401, message: "The token is not valid yet (nbf); check your clock." },
  TOKEN_LIFETIME_TOO_LONG: { status: 401, message: "The token's lifetime (exp - nbf) is longer than allowed." },
  TOKEN_URI_MISMATCH: { status: 401, message: "The token's uri claim does not match this request." },
  REPLAY_CAPACITY: { status: 503, message: "The gateway cannot record more nonces right now; retry shortly." },

  // --- sessions (stages 4-5, and the session endpoints) -------------------------------------
  SESSION_INVALID: { status: 401, message: "The session token is malformed or was not issued by this gateway." },
  SESSION_EXPIRED: { status: 401, message: "The session has expired; log on again with the API key." },
  SESSION_REVOKED: {
    status: 401,
    message: "The session has ended (logged out, or its API key was revoked, suspended or changed); log on again with the API key.",
  },
  SESSION_ADDRESS_MISMATCH: { status: 403, message: "This session is bound to the address it logged on from." },
  SESSION_SCOPE_NOT_HELD: { status: 403, message: "A session can narrow its API key's scopes, never widen them." },
  SESSION_REQUIRED: { status: 400, message: "Sign this request with the session itself (its keyid and secret), not with the API key." },
  SESSION_NOT_ALLOWED: { status: 400, message: "Log on with the API key itself; a session cannot open another session (refresh it instead)." },
  SESSION_LIFETIME_EXCEEDED: { status: 401, message: "The session has reached its maximum lifetime (24 hours after logon); log on again with the API key." },
  SESSION_SCHEME_NOT_ALLOWED: {
    status: 401,
    message: "Session tokens sign native requests only (RFC 9421); sign venue-dialect requests with the API key itself.",
  },

  // --- authorization (stage 8) ------------------------------------------------------------
  SCOPE_MISSING: { status: 403, message: "This API key does not have the permission this route requires." },

  // --- the operation (after stage 8; docs/operations.md) -----------------------------------
  OPERATION_MALFORMED: {
    status: 400,
    message: "The request cannot be read as this route's operation: the body is not the form or JSON object the route's venue takes.",
  },
  OPERATION_PARAM_MISSING: { status: 400, message: "A parameter this route's operation requires is missing or empty." },
  OPERATION_PARAM_INVALID: {
    status: 400,
    message:
      "A parameter of this route's operation is malformed or out of range (amounts are plain decimal strings greater than zero: digits, optionally a point and digits).",
  },
  OPERATION_PARAM_DUPLICATED: { status: 400, message: "A parameter of this route's operation is sent more than once." },

  // --- guardrails (after the operation; docs/guardrails.md) --------------------------------
  GUARDRAIL_SYMBOL: { status: 403, message: "This API key's guardrails do not allow orders on this symbol." },
  GUARDRAIL_QUANTITY: { status: 403, message: "The order's quantity is above the largest this API key's guardrails allow." },
  GUARDRAIL_NOTIONAL: { status: 403, message: "The order's value is above the largest this API key's guardrails allow." },
  GUARDRAIL_PRICE_BAND: {
    status: 403,
    message: "The order's limit price is further from the symbol's reference price than this API key's guardrails allow.",
  },
  GUARDRAIL_ASSET: { status: 403, message: "This API key's guardrails do not allow withdrawing or transferring this asset." },
  GUARDRAIL_OPEN_NOTIONAL: {
    status: 403,
    message: "The order would take this API key's open orders above the value its guardrails allow open at once; cancel an open order or wait for one to end.",
  },
  GUARDRAIL_NO_REFERENCE_PRICE: {
    status: 403,
    message: "The order cannot be checked against this API key's guardrails now: the gateway has no current reference price for its symbol.",
  },

  // --- limits and shields (stages 2 and 9) -------------------------------------------------
  RATE_LIMITED: { status: 429, message: "Too many requests for this limit; retry after the time in Retry-After." },
  ANOMALY_THROTTLED: { status: 429, message: "This API key is throttled after unusual activity (the behaviour stage); retry after the time in Retry-After, or ask the venue to lift it." },
  ORDERS_LIMITED: { status: 429, message: "Too many new orders for this account; retry after the time in Retry-After (cancels are not limited by this)." },
  IP_BANNED: { status: 429, message: "This address is banned for a while after repeated refusals (429s, replayed or unauthorized signed requests); retry after the time in Retry-After." },
  IP_BLOCKED: { status: 429, message: "This address is blocked for a while after repeated authentication failures." },
  KEY_BLOCKED: { status: 429, message: "This API key is blocked for a while for requests from this address, after repeated authentication failures from it." },
  CONCURRENCY_LIMITED: { status: 429, message: "This API key has too many requests in flight." },
  HOT_STORE_UNAVAILABLE: { status: 503, message: "Limits and replay protection cannot be checked right now; retry shortly." },

  // --- upstream (stage 12) ----------------------------------------------------------------
  UPSTREAM_UNAVAILABLE: { status: 502, message: "The upstream service could not be reached." },
  UPSTREAM_TIMEOUT: { status: 504, message: "The upstream service did not answer in time." },

  // --- WebSocket connections and messages (docs/websocket.md) ------------------------------
  MESSAGE_MALFORMED: {
    status: 400,
    message: "The message must be one JSON object {id, method, params} in a text frame, params an object of strings, numbers and booleans.",
  },
  METHOD_NOT_FOUND: { status: 400, message: "No WebSocket method of this name is mapped on this route." },
  LOGON_KEY_TYPE_NOT_SUPPORTED: {
    status: 400,
    message: "session.logon accepts Ed25519 keys only; sign each request with an HMAC or RSA key instead.",
  },
  CONNECTION_AUTHENTICATED: {
    status: 400,
    message: "This connection was authenticated at its upgrade; its identity cannot change (sign single requests instead).",
  },
  KEY_CHANGED: {
    status: 401,
    message: "The API key's scopes, address allowlist or sessions changed while connected; connect again.",
  },
  UPSTREAM_CLOSED: { status: 502, message: "The upstream service closed its WebSocket connection." },
  GATEWAY_CLOSING: { status: 503, message: "The gateway is shutting down; connect again (to another gateway)." },

  // --- admin API and key service ----------------------------------------------------------
  VALIDATION_FAILED: { status: 400, message: "The request body is not valid." },
  JSON_MALFORMED: { status: 400, message: "The request body is not valid JSON." },
  KEY_NOT_FOUND: { status: 404, message: "No such API key." },
  KEY_STATE_CONFLICT: { status: 409, message: "The key is not in a state that allows this change." },
  ADMIN_GRANT_EXCEEDED: {
    status: 403,
    message:
      "An account admin key manages keys of its own account only, and grants only scopes and addresses it holds itself; operator keys, limit overrides and other accounts need an operator key.",
  },

  // --- the policy and the address book (docs/policy.md) ----------------------------------------
  POLICY_HOLD_UNAVAILABLE: {
    status: 503,
    message: "The policy holds this change for approvals or a time lock, and no hold service is available here to keep it; make the change through the admin API of a running gateway.",
  },
  POLICY_VERSION_CONFLICT: { status: 409, message: "The policy changed meanwhile: this change was made against an older version. Apply it again." },
  POLICY_VERSION_NOT_FOUND: { status: 404, message: "No such policy version." },
  ADDRESS_NOT_FOUND: { status: 404, message: "No such address in the address book." },
  ADDRESS_EXISTS: { status: 409, message: "The address book already holds this address (same account, asset, network and tag)." },
  // --- high-value policy, held operations and approvals (stage 10; docs/approvals.md) -------
  POLICY_BLOCKED: { status: 403, message: "The venue's high-value policy blocks this operation." },
  POLICY_UNAVAILABLE: { status: 503, message: "The high-value policy cannot be applied right now; the operation was not sent. Retry shortly." },
  HOLD_NOT_SUPPORTED: {
    status: 403,
    message: "This operation needs approvals or a time lock, and this surface cannot hold it for later release; send it through the gateway's HTTP API.",
  },
  OPERATION_NOT_FOUND: { status: 404, message: "No such held operation." },
  OPERATION_STATE_CONFLICT: { status: 409, message: "The held operation is not in a state that allows this (it was released, cancelled, rejected or expired, or is being released)." },
  APPROVER_NOT_FOUND: { status: 404, message: "No such approver." },
  APPROVER_EXISTS: { status: 409, message: "An approver of this name is registered with another public key; remove it first." },
  APPROVAL_SELF: { status: 403, message: "The owner of the key that initiated an operation cannot approve it." },
  APPROVAL_NOT_IN_GROUP: { status: 403, message: "This approver is in no group whose approval the operation still needs." },
  APPROVAL_DIGEST_MISMATCH: { status: 409, message: "The approval is over another digest than this operation's; show the operation again and sign the digest shown." },
  APPROVAL_SIGNATURE_INVALID: { status: 401, message: "The approval's signature does not verify with the approver's registered public key." },
  APPROVAL_EXPIRED: { status: 409, message: "The operation's approval window has passed." },
  APPROVAL_DUPLICATE: { status: 409, message: "This approver has already approved or rejected this operation." },
  // --- behaviour: anomaly actions (docs/behaviour.md, "Responses") ---------------------------
  ANOMALY_ACTION_NOT_FOUND: { status: 404, message: "No such anomaly action." },
  ANOMALY_ACTION_FINAL: { status: 409, message: "The anomaly action was already undone, or (a revoke) already carried out: there is nothing left to undo." },
  // --- passkeys: WebAuthn sign-in to the console (docs/passkeys.md) ------------------------------
  PASSKEY_CHALLENGE_INVALID: {
    status: 401,
    message: "The WebAuthn challenge was not issued by this server for this ceremony, was used already, or has expired; ask for new options and try again.",
  },
  PASSKEY_VERIFICATION_FAILED: {
    status: 401,
    message: "The passkey's answer did not verify (origin, relying party, user verification, attestation or signature).",
  },
  PASSKEY_UNKNOWN: { status: 401, message: "No passkey with this credential id is registered here." },
  PASSKEY_COUNTER_REGRESSED: {
    status: 401,
    message: "The passkey's signature counter did not increase: the credential may have been cloned. The sign-in is refused and audited.",
  },
  PASSKEY_NOT_FOUND: { status: 404, message: "No such passkey on this key." },
  PASSKEY_EXISTS: { status: 409, message: "This credential is already registered." },
  PASSKEY_LIMIT_REACHED: { status: 409, message: "This key has as many passkeys as it may have; remove one first." },
  // --- wallet-owned accounts and agent keys (docs/wallets.md) ---------------------------------
  WALLET_MESSAGE_MALFORMED: {
    status: 400,
    message: "The wallet message is not well formed: an EIP-4361 (SIWE) text or EIP-712 typed data of the documented type, with every required field.",
  },
  WALLET_SIGNATURE_INVALID: { status: 401, message: "The wallet signature does not verify over this message (EIP-191 / EIP-712), or was made by another key." },
  WALLET_DOMAIN_MISMATCH: { status: 401, message: "The message's domain is not this venue's (wallets.domain)." },
  WALLET_URI_MISMATCH: { status: 401, message: "The message's URI is not this venue's API origin (wallets.uri)." },
  WALLET_CHAIN_MISMATCH: { status: 401, message: "The message's chain id is not the one this venue signs for (wallets.chainId)." },
  WALLET_EXPIRED: {
    status: 401,
    message: "The message has expired, is not yet valid, or is valid for longer than a logon may be (at most 10 minutes after issuedAt); sign a new one.",
  },
  WALLET_NOT_YET_VALID: { status: 401, message: "The message is issued in the future (more than a minute ahead of the gateway's clock), or its Not Before has not come." },
  WALLET_NONCE_REPLAYED: { status: 401, message: "This message's nonce was used already (or may have been): sign a new message with a new nonce." },
  WALLET_UNKNOWN: { status: 401, message: "No active wallet owner key of this address (and account) is registered here." },
  AGENT_SCOPE_FORBIDDEN: { status: 403, message: "An agent may hold only the read and trade scopes: never withdraw, transfer or admin." },
  AGENT_WIDENED: {
    status: 403,
    message: "A link of the chain grants more than the key above it holds (scopes, symbols, caps, limits or expiry); every link may only narrow.",
  },
  AGENT_ALREADY_REGISTERED: { status: 409, message: "An agent with this derived id is already registered (revoked or not): sign a new approval with a new nonce." },
  AGENT_LINK_REVOKED: { status: 409, message: "A key above the new agent (its owner key or a parent agent) is revoked, suspended or expired." },
  AGENT_CHAIN_REVOKED: { status: 401, message: "A key above this agent key (its owner key or a parent agent) is no longer active." },
  AGENT_CHAIN_BROKEN: { status: 400, message: "A delegation of the chain does not name the agent above it as its parent." },
  AGENT_REVOKE_FORBIDDEN: { status: 403, message: "Only the owner wallet or an agent above it in the chain may revoke an agent." },

  // --- the authorizer's nginx auth_request protocol (docs/deploy/authorizer.md) ---------------
  AUTHORIZER_BODY_UNSEEN: {
    status: 400,
    message:
      "This request has or may have a body, which an nginx auth_request subrequest cannot show the authorizer; the proxy must send such requests through the full-request protocol of docs/deploy/nginx.conf.",
  },
  AUTHORIZER_REFUSAL_INVALID: { status: 403, message: "The refusal token is missing, altered, forged or expired." },

  // --- certificate-bound keys (mutual TLS; docs/tls.md) ---------------------------------------
  KEY_CERT_MISMATCH: {
    status: 401,
    message: "This API key is bound to a client certificate: send the request over TLS with that certificate (mutual TLS).",
  },
  // --- operational endpoints (docs/operations-endpoints.md) -----------------------------------
  DRAINING: { status: 503, message: "This gateway process is shutting down (draining); send new requests to another instance." },
  NOT_READY: { status: 503, message: "A dependency of this gateway is not answering; the body names each check and its state." },
  DURABLE_STORE_UNAVAILABLE: {
    status: 503,
    message: "The durable store (SQLite or PostgreSQL) cannot be reached right now (readiness: it did not answer a trivial read); retry shortly.",
  },
  AUDIT_LOG_STUCK: { status: 503, message: "The audit log holds entries that neither the store nor the spill directory acknowledged in time." },
  CUSTODY_UNAVAILABLE: { status: 503, message: "The key custody provider (keyring file or PKCS#11 token) did not answer." },
  CHECK_TIMED_OUT: { status: 503, message: "A readiness check did not answer within its timeout." },
  METRICS_UNAUTHORIZED: { status: 401, message: "The metrics endpoint needs the bearer token configured in admin.metrics.tokenFile (or admin.metrics.public)." },
  // --- the audit log over the admin API (docs/audit.md, "Over the admin API") --------------------
  AUDIT_VERIFY_RUNNING: {
    status: 409,
    message: "A verification of the audit log is already running in this process; wait for its answer and ask again.",
  },
  // --- the console (issue 18: docs/console-backend.md) ------------------------------------
  CONSOLE_NOT_AVAILABLE: { status: 404, message: "The console is not served here: admin.console is off, or its files are not built (npm run build -w @portcullis/console)." },
  STATS_STREAMS_EXHAUSTED: { status: 429, message: "Too many live statistics streams are open on this admin listener; close one or retry later." },

  // --- sealed orders: HPKE (RFC 9180) request bodies (issue 19: docs/sealed-orders.md) -------
  SEALED_MALFORMED: {
    status: 400,
    message:
      "The sealed request is malformed: Portcullis-Sealed (an HPKE key id), Portcullis-Sealed-Type (the plaintext's content type) and Content-Type: application/portcullis-sealed come together, with a body of enc (32 bytes) then the ciphertext.",
  },
  SEALED_KEY_UNKNOWN: {
    status: 400,
    message: "The HPKE key named in Portcullis-Sealed is unknown or retired: fetch /portcullis/v1/hpke again and seal with its first key.",
  },
  SEALED_OPEN_FAILED: {
    status: 400,
    message: "The sealed body does not open: it was altered, sealed for another key, or bound to another signature (key id, nonce, method or target).",
  },
  SEALED_NOT_COVERED: { status: 400, message: "The signature must cover Portcullis-Sealed and Portcullis-Sealed-Type (and content-digest) on a sealed request." },
  SEALED_NOT_SUPPORTED: {
    status: 400,
    message:
      "Sealed requests are opened only when signed in the native scheme (or a session) on a route that needs a key, by a gateway or embedded surface with sealing on; not in a venue dialect nor through the authorizer, which does not forward the body itself.",
  },

  // --- our own faults ---------------------------------------------------------------------
  INTERNAL: { status: 500, message: "Internal error. The request id identifies it in the gateway's logs." },
} as const satisfies Record<string, { status: number; message: string }>;

// --- operator failures ----------------------------------------------------------------------
// `exit` is the CLI's exit status: 1 for every failure (the CLI's documented contract); a closed
// stdout is not a failure (exit 0, nothing printed).
const operatorFailures = {
  // --- configuration (startup, `portcullis start`) ------------------------------------------
  CONFIG_INVALID: { area: "config", exit: 1, message: "The configuration is not valid; the message names the setting." },
  CONFIG_UNREADABLE: { area: "config", exit: 1, message: "The configuration file cannot be read or is not JSON." },
  ROUTE_TABLE_INVALID: { area: "config", exit: 1, message: "A route in the route table is not valid, or two routes overlap ambiguously." },
  WEBSOCKET_CONFIG_INVALID: { area: "config", exit: 1, message: "The websocket section of the configuration is not valid." },
  CIDR_INVALID: { area: "config", exit: 1, message: "An address or CIDR block in an allowlist or trusted-proxy list is not valid." },
  WORKERS_NEED_SHARED_HOT_STATE: {
    area: "config",
    exit: 1,
    message: 'More than one gateway process (--workers, gateway.workers) needs hot.backend "redis": with hot state in process memory, a nonce used at one process could be replayed at another and every limit would count per process.',
  },
  WORKER_START_FAILED: {
    area: "config",
    exit: 1,
    message: "A gateway process of `portcullis start --workers N` exited before it was serving; the message says why (its own error, or its exit status). Nothing was restarted.",
  },

  // --- data directory -----------------------------------------------------------------------
  DATA_DIR_INVALID: {
    area: "data-dir",
    exit: 1,
    message: "The data directory is missing, not initialised (run `portcullis init`), for another environment, or holds an insecure or short secret.",
  },

  DATABASE_TOO_NEW: {
    area: "data-dir",
    exit: 1,
    message: "The data directory's database was written by a newer Portcullis (a later schema version); upgrade Portcullis.",
  },

  DURABLE_STORE_UNREACHABLE: {
    area: "data-dir",
    exit: 1,
    message: "The PostgreSQL durable store could not be reached, or refused the connection (address, database, credentials); the message names the server (never the password) and says why.",
  },

  // --- custody (keyring, HSM, backups) --------------------------------------------------------
  KEYRING_MISSING: { area: "custody", exit: 1, message: "no keyring file" },
  KEYRING_INSECURE: { area: "custody", exit: 1, message: "the keyring file is readable by group or others" },
  KEYRING_INVALID: { area: "custody", exit: 1, message: "the keyring file is not a valid Portcullis keyring" },
  KEYRING_EXISTS: { area: "custody", exit: 1, message: "a keyring file already exists" },
  CUSTODY_MODULE_NOT_FOUND: { area: "custody", exit: 1, message: "the PKCS#11 module cannot be loaded" },
  CUSTODY_TOKEN_NOT_FOUND: { area: "custody", exit: 1, message: "no PKCS#11 token with the configured label" },
  CUSTODY_PIN_INCORRECT: { area: "custody", exit: 1, message: "the token refused the PIN" },
  CUSTODY_PIN_LOCKED: { area: "custody", exit: 1, message: "the token's PIN is locked" },
  CUSTODY_PIN_MISSING: { area: "custody", exit: 1, message: "no PIN for the token" },
  CUSTODY_PIN_FILE_INSECURE: { area: "custody", exit: 1, message: "the pin file is readable by group or others" },
  CUSTODY_MECHANISM_UNSUPPORTED: { area: "custody", exit: 1, message: "the token does not support a required mechanism" },
  CUSTODY_HSM_FAILED: { area: "custody", exit: 1, message: "the HSM failed" },
  CUSTODY_KEK_VERSION_UNKNOWN: { area: "custody", exit: 1, message: "the KEK version is not held by this provider" },
  CUSTODY_DECRYPT_FAILED: { area: "custody", exit: 1, message: "the ciphertext does not decrypt" },
  CUSTODY_ENVELOPE_MALFORMED: { area: "custody", exit: 1, message: "the envelope is malformed" },
  CUSTODY_PROVIDER_MISMATCH: { area: "custody", exit: 1, message: "the data directory's secrets are under another custody provider" },
  CUSTODY_ROTATION_IN_PROGRESS: { area: "custody", exit: 1, message: "another KEK rotation is running" },
  CUSTODY_SIGNING_KEY_MISMATCH: { area: "custody", exit: 1, message: "the token's signing key does not match the recorded one" },
  CUSTODY_KEK_RETIRED: { area: "custody", exit: 1, message: "the envelope is under a KEK version below the floor (retired or being retired)" },
  BACKUP_MALFORMED: { area: "custody", exit: 1, message: "not a Portcullis backup, or a damaged one" },
  BACKUP_PROVIDER_MISMATCH: { area: "custody", exit: 1, message: "the backup was made under another custody provider" },
  BACKUP_KEK_MISMATCH: { area: "custody", exit: 1, message: "the backup cannot be opened with this KEK" },
  RESTORE_TARGET_NOT_EMPTY: { area: "custody", exit: 1, message: "the restore target already holds keys, held operations or policy state" },
  BACKUP_UNSUPPORTED: { area: "custody", exit: 1, message: "this store cannot be backed up this way (a PostgreSQL store without pg_dump / pg_restore on this host)" },
  BACKUP_STORE_MISMATCH: { area: "custody", exit: 1, message: "the backup holds another kind of store (SQLite against PostgreSQL)" },
  BACKUP_TOOL_FAILED: { area: "custody", exit: 1, message: "pg_dump, pg_restore or a PostgreSQL step of the restore failed" },

  // --- audit commands (problems found *in* a log are audit/verify.ts AUDIT_PROBLEMS) ----------
  AUDIT_LOG_UNAVAILABLE: {
    area: "audit",
    exit: 1,
    message: "There is no audit log here: no database at this path, or one without the audit tables (open it once with this version).",
  },
  AUDIT_VERIFY_FAILED: { area: "audit", exit: 1, message: "The audit log failed verification." },
  AUDIT_ARCHIVE_REFUSED: {
    area: "audit",
    exit: 1,
    message: "Nothing was archived: the range does not verify, or it changed while the segment was being written.",
  },
  AUDIT_KEY_INVALID: { area: "audit", exit: 1, message: "The public key file is not an Ed25519 public key (SPKI PEM)." },
  AUDIT_ANCHOR_INVALID: { area: "audit", exit: 1, message: "The anchor file is not a checkpoint printed by `portcullis audit checkpoint --json`." },
  AUDIT_SEGMENT_UNREADABLE: { area: "audit", exit: 1, message: "The segment file cannot be read." },
  AUDIT_SIGNER_UNAVAILABLE: {
    area: "audit",
    exit: 1,
    message: "The audit-checkpoint signing key cannot be opened (keyring missing or unreadable).",
  },

  // --- the CLI --------------------------------------------------------------------------------
  ADMIN_UNREACHABLE: {
    area: "cli",
    exit: 1,
    message: "The admin API at the --admin URL cannot be reached; is the gateway running with its admin API enabled?",
  },
  GATEWAY_UNREACHABLE: { area: "cli", exit: 1, message: "The gateway at the request's URL cannot be reached; is it running?" },
  FILE_ACCESS_FAILED: {
    area: "cli",
    exit: 1,
    message: "A file named on the command line cannot be read or written (missing, unreadable, or already there where a new file is written).",
  },
  USAGE_INVALID: {
    area: "cli",
    exit: 1,
    message: "The command line is not valid: an unknown command or option, a missing argument, or a bad option value (the usage follows).",
  },

  // --- the demo (portcullis demo, npm start) ------------------------------------------------------
  DEMO_PORT_IN_USE: {
    area: "demo",
    exit: 1,
    message: "A port the demo listens on is in use (often by a demo already running); the message names the option that moves it.",
  },
  DEMO_NOT_INSTALLED: {
    area: "demo",
    exit: 1,
    message: "The demo exchange package is not installed: it comes with the repository (npm install && npm start), not with the published package.",
  },

  // --- behaviour state (storage/types.ts BehaviourStateStore; docs/behaviour.md) -------------------
  BEHAVIOUR_STATE_CONFLICT: {
    area: "data-dir",
    exit: 1,
    message: "A key's behaviour state was written by another gateway process at every try of an update; the update of that state was given up.",
  },
  BEHAVIOUR_STATE_UNAVAILABLE: { area: "data-dir", exit: 1, message: "The store of behaviour states (Redis) cannot be reached." },
  BEHAVIOUR_STATE_MALFORMED: {
    area: "data-dir",
    exit: 1,
    message: "A stored behaviour state is not one Portcullis writes (another value under its Redis key, or larger than 2,048 bytes).",
  },

  // --- TLS (gateway.tls, admin.tls; docs/tls.md) ------------------------------------------------
  TLS_MATERIAL_INVALID: {
    area: "config",
    exit: 1,
    message: "A TLS certificate, private key or CA file cannot be read, is not PEM, or the key does not match the certificate; nothing was started.",
  },
  TLS_RELOAD_FAILED: {
    area: "config",
    exit: 1,
    message: "Reloading the TLS certificate and key failed (a warning in the log): the previous certificate is still served; fix the files and reload again.",
  },
} as const satisfies Record<string, { area: OperatorArea; exit: number; message: string }>;

/** Where an operator failure comes from (the heading it is listed under in docs/errors.md). */
export type OperatorArea = "config" | "data-dir" | "custody" | "audit" | "cli" | "demo";

type Grouped<G extends string, T> = { readonly [C in keyof T]: T[C] & { readonly group: G } };

function grouped<G extends string, T extends Record<string, object>>(group: G, entries: T): Grouped<G, T> {
  const out: Record<string, object> = {};
  for (const [code, entry] of Object.entries(entries)) out[code] = Object.freeze({ group, ...entry });
  return out as Grouped<G, T>;
}

/** Every code, request refusals first; each entry carries its `group`. */
export const errorCatalogue = Object.freeze({ ...grouped("request", requestRefusals), ...grouped("operator", operatorFailures) });

/** A code of the request group: what `deny` and `PortcullisError` take. */
export type ErrorCode = keyof typeof requestRefusals;

/** Every request-refusal code, in catalogue order (what a dialect must map). */
export const ERROR_CODES: readonly ErrorCode[] = Object.freeze(Object.keys(requestRefusals) as ErrorCode[]);
/** A code of the operator group: what the CLI and startup report. */
export type OperatorCode = keyof typeof operatorFailures;
/** Any code of the catalogue. */
export type CatalogueCode = ErrorCode | OperatorCode;

/**
 * Authentication failures, counted toward blocks: the one list, for every surface (HTTP requests,
 * WebSocket upgrades, signed WebSocket messages and logons).
 */
export const AUTH_FAILURES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "KEY_ID_MALFORMED",
  "KEY_UNKNOWN",
  "KEY_REVOKED",
  "KEY_ENVIRONMENT_MISMATCH",
  "SIGNATURE_INVALID",
  "ALGORITHM_MISMATCH",
  "PASSPHRASE_INVALID",
  "TOKEN_MALFORMED",
  "TOKEN_URI_MISMATCH",
  "SESSION_INVALID",
  "KEY_CERT_MISMATCH",
  // Passkey sign-ins (admin/passkeys.ts counts them: they are refused by its handler, not a stage).
  "PASSKEY_CHALLENGE_INVALID",
  "PASSKEY_VERIFICATION_FAILED",
  "PASSKEY_UNKNOWN",
  "PASSKEY_COUNTER_REGRESSED",
]);

/** Of those, the ones that say someone is guessing at an existing key (they count toward the key's block too). */
export const KEY_FAILURES: ReadonlySet<ErrorCode> = new Set<ErrorCode>(["SIGNATURE_INVALID", "ALGORITHM_MISMATCH", "PASSPHRASE_INVALID"]);

export function isCatalogueCode(code: unknown): code is CatalogueCode {
  return typeof code === "string" && Object.hasOwn(errorCatalogue, code);
}

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === "string" && Object.hasOwn(requestRefusals, code);
}

/** A refusal: a normal value, not an exception. `detail` is for logs only, never sent. */
export interface Denial {
  readonly ok: false;
  readonly code: ErrorCode;
  readonly status: number;
  readonly message: string;
  readonly detail: string | undefined;
}

const frozenDenials = new Map<ErrorCode, Denial>();

/**
 * Builds the denial for `code`. Denials without a detail are shared frozen objects, so the
 * common refusals allocate nothing.
 */
export function deny(code: ErrorCode, detail?: string): Denial {
  if (detail === undefined) {
    let cached = frozenDenials.get(code);
    if (cached === undefined) {
      const entry = requestRefusals[code];
      cached = Object.freeze({ ok: false, code, status: entry.status, message: entry.message, detail: undefined });
      frozenDenials.set(code, cached);
    }
    return cached;
  }
  const entry = requestRefusals[code];
  return { ok: false, code, status: entry.status, message: entry.message, detail };
}

/** The JSON body sent to a native client. Never contains `detail`. */
export function errorBody(denial: Denial, requestId: string): string {
  return JSON.stringify({ code: denial.code, message: denial.message, requestId });
}

/** The JSON body for a service's refusal: code, public message, request id, and the fields at fault. */
export function serviceErrorBody(err: PortcullisError, requestId: string): string {
  const payload: Record<string, unknown> = { code: err.code, message: err.publicMessage, requestId };
  if (err.fields !== undefined) payload.fields = err.fields;
  return JSON.stringify(payload);
}

/** The base of every exception that carries a catalogue code. */
export abstract class CodedError<C extends CatalogueCode = CatalogueCode> extends Error {
  readonly code: C;

  constructor(code: C, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/**
 * Thrown by services (key service, admin API) for a caller's bad input; carries a request code and
 * its HTTP status. Parsers return a `Result` instead; `invalidInput` turns one into this error.
 */
export class PortcullisError extends CodedError<ErrorCode> {
  readonly status: number;
  readonly publicMessage: string;
  readonly fields: Readonly<Record<string, string>> | undefined;

  constructor(code: ErrorCode, message?: string, fields?: Record<string, string>) {
    const entry = requestRefusals[code];
    super(code, message ?? entry.message);
    this.name = "PortcullisError";
    this.status = entry.status;
    this.publicMessage = message ?? entry.message;
    this.fields = fields;
  }
}

/**
 * Thrown for a failure an operator sees (config, data directory, custody, audit, the CLI): the
 * CLI prints it as `code: message` and exits with the code's `exit` status. Its subclasses
 * (ConfigError, DataDirError, CustodyError, AuditError…) keep their names for `instanceof`.
 */
export class OperatorError<C extends OperatorCode = OperatorCode> extends CodedError<C> {
  readonly area: OperatorArea;
  readonly exit: number;

  constructor(code: C, message?: string, options?: ErrorOptions) {
    const entry: { readonly area: OperatorArea; readonly exit: number; readonly message: string } = operatorFailures[code];
    super(code, message ?? entry.message, options);
    this.name = "OperatorError";
    this.area = entry.area;
    this.exit = entry.exit;
  }
}

/** `err` is an operator failure (of any area), with its code and exit status. */
export function isOperatorError(err: unknown): err is OperatorError {
  return err instanceof OperatorError;
}

/** The catalogue messages of a family of codes, by code (CUSTODY_ERRORS, AUDIT_ERRORS). */
export function messagesOf<const C extends CatalogueCode>(codes: readonly C[]): { readonly [K in C]: (typeof errorCatalogue)[K]["message"] } {
  return Object.freeze(Object.fromEntries(codes.map((code) => [code, errorCatalogue[code].message]))) as { readonly [K in C]: (typeof errorCatalogue)[K]["message"] };
}
