/**
 * The audit event catalogue: every kind of thing the audit log records, named `resource.action`.
 * Names are stable (auditors and SIEM rules match on them): never renamed, never reused; add new
 * ones at the end of their resource.
 *
 * Each event has a durability class (docs/audit.md):
 *
 * - `change`: a change to durable state (keys, policies, approvals, released operations). Its entry
 *   is written in the same database transaction as the change itself: the change exists if and
 *   only if its entry does.
 * - `decision`: something decided without a durable change (a request allowed or refused, a
 *   session issued from hot state, an anomaly action). Entries are buffered and group-committed;
 *   one is acknowledged once committed to the store or to the local spill file.
 *
 * Some events belong to features that do not exist yet (approvals, policies, anomaly actions);
 * they are defined now so that the log's vocabulary does not change when those features emit them.
 */
export const AUDIT_EVENTS = {
  "key.create": { durability: "change", description: "an API key was created" },
  "key.revoke": { durability: "change", description: "an API key was revoked for good" },
  "key.suspend": { durability: "change", description: "an API key was suspended" },
  "key.resume": { durability: "change", description: "a suspended API key was resumed" },
  "key.limits": { durability: "change", description: "a key's limit overrides were replaced" },
  "key.update": { durability: "change", description: "a key's settings (label, allowlist, scopes…) were changed" },
  "key.rotate": { durability: "change", description: "a key was rotated: a new key replaces it, the old one stays valid for a grace period" },
  "key.end-sessions": { durability: "change", description: "every session of a key was ended (its session epoch moved)" },
  "session.create": { durability: "decision", description: "a session token was issued at logon" },
  "session.refresh": { durability: "decision", description: "a session token was refreshed" },
  "session.revoke": { durability: "decision", description: "a session was logged out or revoked" },
  "request.allow": { durability: "decision", description: "a request passed every stage (and was forwarded or handed on)" },
  "request.deny": { durability: "decision", description: "a request was refused, with its code" },
  "approval.request": { durability: "change", description: "a held operation asked for approvals" },
  "approval.sign": { durability: "change", description: "an approver signed a held operation" },
  "approval.reject": { durability: "change", description: "an approver rejected a held operation" },
  "operation.hold": { durability: "change", description: "a high-value operation was held for approvals or a time lock" },
  "operation.release": { durability: "change", description: "a held operation was released to the upstream" },
  "policy.change": { durability: "change", description: "a high-value policy was created, changed or removed" },
  "anomaly.action": { durability: "decision", description: "the behaviour engine throttled, stepped up, suspended or revoked" },
  "audit.archive": { durability: "change", description: "old entries were moved into a signed segment file" },
  "address.add": { durability: "change", description: "an address was added to an account's withdrawal address book (usable after its cooldown)" },
  "address.remove": { durability: "change", description: "an address was removed from an account's withdrawal address book" },
  "approver.add": { durability: "change", description: "an approver was registered, or added to a group" },
  "approver.remove": { durability: "change", description: "an approver was removed" },
  "operation.ready": { durability: "change", description: "a held operation met its approvals and delay, and waits for release" },
  "operation.reject": { durability: "change", description: "a held operation was rejected by an approver, and will not be released" },
  "operation.cancel": { durability: "change", description: "a held operation was cancelled (by its initiator, an operator, or its key being revoked or suspended)" },
  "operation.expire": { durability: "change", description: "a held operation passed its expiry without being released" },
  "operation.unknown": { durability: "change", description: "a held operation's release was interrupted: it may or may not have reached the upstream, and is never sent again" },
  "passkey.register": { durability: "change", description: "a passkey (WebAuthn credential) was registered to an API key, to sign in to the console as that key" },
  "passkey.remove": { durability: "change", description: "a passkey was removed from its API key" },
  "passkey.clone": { durability: "decision", description: "a passkey sign-in was refused because the credential's signature counter went back: a cloned authenticator" },
} as const satisfies Record<string, { durability: "change" | "decision"; description: string }>;

export type CatalogueEvent = keyof typeof AUDIT_EVENTS;

/**
 * An event name: one of the catalogue's, or `key.<action>` for a key change whose action the
 * catalogue does not name yet (every `KeyChange` the store records is audited, whatever its action).
 */
export type AuditEventName = CatalogueEvent | `key.${string}`;

export type Durability = "change" | "decision";

const ACTION_RE = /^[a-z][a-z0-9-]{0,31}$/;
const EVENT_RE = /^[a-z][a-z0-9-]{0,31}\.[a-z][a-z0-9-]{0,31}$/;

/** The event a key change (`KeyChange.action`) is recorded as. */
export function keyChangeEvent(action: string): AuditEventName {
  return ACTION_RE.test(action) ? `key.${action}` : "key.update";
}

export function isCatalogueEvent(name: string): name is CatalogueEvent {
  return Object.prototype.hasOwnProperty.call(AUDIT_EVENTS, name);
}

/** Whether `name` is shaped like an event name (`resource.action`, lower case). */
export function isEventName(name: string): boolean {
  return EVENT_RE.test(name);
}

export function durabilityOf(event: AuditEventName): Durability {
  return isCatalogueEvent(event) ? AUDIT_EVENTS[event].durability : "change";
}

/** Where a request decision was made. */
export type AuditSurface = "gateway" | "admin" | "embedded" | "websocket" | "authorizer";

/**
 * The facts of one audit entry. Everything is optional except what every entry has (event, time,
 * actor); absent fields are left out of the encoding. Never a secret: no signature, token, secret,
 * credential header, body or query string (a query can carry a signature: Binance's `signature=`).
 */
export interface AuditFields {
  readonly event: AuditEventName;
  /** When it happened, epoch ms (for a request: the pipeline's clock at its start). */
  readonly at: number;
  /**
   * Who acted: `key:<id>` (an allowed signed request, or the admin key behind a change),
   * `cli:<user>`, `anonymous` (any refused request: it may be a forgery or a replay)…
   */
  readonly actor: string;
  /** The API key concerned. */
  readonly key?: string | undefined;
  readonly account?: string | undefined;
  readonly subAccount?: string | undefined;
  /** The client address (resolved through trusted proxies). */
  readonly client?: string | undefined;
  readonly surface?: AuditSurface | undefined;
  readonly requestId?: string | undefined;
  readonly method?: string | undefined;
  /** The request path, without its query. */
  readonly path?: string | undefined;
  /** The matched route, "METHOD /pattern". */
  readonly route?: string | undefined;
  /** The signing scheme the request used (native or a dialect). */
  readonly scheme?: string | undefined;
  /** The decision code (a refusal's error code). */
  readonly code?: string | undefined;
  /** The HTTP status of a refusal. */
  readonly status?: number | undefined;
  /** Per-stage durations in µs, when the pipeline records them. */
  readonly timings?: Readonly<Record<string, number>> | undefined;
  /** Non-secret facts about a change (reason, scopes…). Credential-like names are redacted. */
  readonly detail?: Readonly<Record<string, unknown>> | undefined;
}

/** An entry as stored: its facts, its position in the chain and the encoding version. */
export interface AuditEntry extends AuditFields {
  readonly v: 1;
  readonly seq: number;
}
