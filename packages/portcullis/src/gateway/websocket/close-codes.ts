import type { ErrorCode } from "../../errors/catalogue.js";

/**
 * How the gateway closes a client's WebSocket connection. Codes 4000-4999 are the application's
 * (RFC 6455 section 7.4.2); the reason is always the stable error code (docs/errors.md) that
 * ended the connection, so a bot can tell "log on again" from "stop, the key is gone".
 *
 * | code | reason                  | when                                                            |
 * | 4001 | KEY_REVOKED             | the key was revoked                                             |
 * | 4002 | SESSION_EXPIRED         | the session token the connection was opened with expired        |
 * | 4003 | KEY_SUSPENDED           | the key was suspended                                           |
 * | 4004 | KEY_EXPIRED             | the key expired (its expiry, or a rotation's grace period)      |
 * | 4005 | SESSION_REVOKED         | the session was logged out, or the key's sessions were ended    |
 * | 4006 | KEY_CHANGED             | the key's scopes, allowlist or address binding changed, or its  |
 * |      |                         | sessions were ended (a connection is a session of its key)      |
 * | 4007 | IP_NOT_ALLOWED          | the key's allowlist no longer contains the client's address     |
 * | 4008 | KEY_UNKNOWN             | the key no longer exists                                        |
 * | 4009 | KEY_STORE_UNAVAILABLE   | a change to the key could not be read back (fail closed)        |
 * | 1001 | GATEWAY_CLOSING         | the gateway is shutting down                                    |
 * | 1008 | (the refusal's code)    | any other reason a connection's identity stopped being valid    |
 * | 1009 | (empty)                 | a message larger than `maxMessageBytes`                         |
 * | 1011 | INTERNAL                | a fault of the gateway's own                                    |
 * | 1014 | UPSTREAM_CLOSED         | the upstream closed (or lost) its side of the connection        |
 */
const CLOSE_CODES: Readonly<Partial<Record<ErrorCode, number>>> = {
  KEY_REVOKED: 4001,
  SESSION_EXPIRED: 4002,
  KEY_SUSPENDED: 4003,
  KEY_EXPIRED: 4004,
  SESSION_REVOKED: 4005,
  KEY_CHANGED: 4006,
  IP_NOT_ALLOWED: 4007,
  KEY_UNKNOWN: 4008,
  KEY_STORE_UNAVAILABLE: 4009,
  GATEWAY_CLOSING: 1001,
  INTERNAL: 1011,
  UPSTREAM_CLOSED: 1014,
};

/** The close code for ending a connection because of `code`. */
export function closeCodeFor(code: ErrorCode): number {
  return CLOSE_CODES[code] ?? 1008;
}

/** Every close code the gateway sends, for documentation and tests. */
export const WEBSOCKET_CLOSE_CODES: Readonly<Partial<Record<ErrorCode, number>>> = CLOSE_CODES;
