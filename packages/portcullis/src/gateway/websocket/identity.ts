import { type Denial, deny } from "../../errors/catalogue.js";
import type { KeyCache } from "../../keys/cache.js";
import type { VerificationKey } from "../../contract/verification-key.js";
import { type Environment, parseKeyId, isSessionToken } from "../../contract/ids.js";
import type { Dialect } from "../../contract/keys.js";
import type { ClientAddress } from "../../net/client-address.js";
import type { SessionAuthority } from "../../sessions/authority.js";

/**
 * Who a WebSocket connection (or one signed message) acts for, and how to check, at any later
 * moment, that it still may: the same checks stage 4 of the pipeline makes for every HTTP request
 * (the key's status, expiry, environment, scheme and address allowlist; a session's token, epoch,
 * expiry and address binding), made again on every message, on every change to the key, and when
 * the key or session expires.
 */
export interface Identity {
  /** The API key. */
  readonly keyId: string;
  /** The scheme the identity was proven in ("native": a signed upgrade; "binance": by message). */
  readonly scheme: Dialect;
  /** How it was proven. */
  readonly via: "upgrade" | "logon" | "signed";
  /** The session token the connection was opened with (null: the API key itself). */
  readonly token: string | null;
  /** The session's id, for logout. */
  readonly sessionId: string | null;
  /** The key's session epoch when the identity was proven: a change of it ends the identity. */
  readonly epoch: number;
  /** When it was proven (epoch ms). */
  readonly since: number;
}

export interface IdentityChecks {
  readonly cache: KeyCache;
  readonly sessions: SessionAuthority | null;
  readonly environment: Environment;
}

/** The key as it stands, or why the identity is over. The key's status and allowlist come first. */
export async function currentKey(checks: IdentityChecks, identity: Identity, client: ClientAddress, now: number): Promise<VerificationKey | Denial> {
  let parent: VerificationKey | null | undefined = checks.cache.peek(identity.keyId);
  if (parent === undefined) {
    try {
      parent = await checks.cache.load(identity.keyId);
    } catch (err) {
      return deny("KEY_STORE_UNAVAILABLE", err instanceof Error ? err.message : "load failed");
    }
  }
  return checkIdentity(checks, identity, parent, client, now);
}

/** The synchronous part of `currentKey`, for a key already loaded. */
export function checkIdentity(checks: IdentityChecks, identity: Identity, parent: VerificationKey | null, client: ClientAddress, now: number): VerificationKey | Denial {
  const denial = keyDenial(parent, checks.environment, identity.scheme, client, now);
  if (denial !== undefined || parent === null) return denial ?? deny("KEY_UNKNOWN");
  if (parent.record.sessionEpoch !== identity.epoch) {
    return identity.token === null ? deny("KEY_CHANGED", `epoch ${identity.epoch} -> ${parent.record.sessionEpoch}`) : deny("SESSION_REVOKED", "epoch moved");
  }
  if (identity.token === null) return parent;
  const sessions = checks.sessions;
  if (sessions === null) return deny("SESSION_INVALID", "sessions are not enabled");
  const session = sessions.check(identity.token, now);
  if ("ok" in session) return session;
  if (session.claims.ip !== undefined && session.claims.ip !== client.text) return deny("SESSION_ADDRESS_MISMATCH");
  return sessions.keyFor(session, parent);
}

/**
 * What makes a key unusable for `scheme` from `client` at `now` (the pipeline's key checks, in its
 * order), or undefined.
 */
export function keyDenial(key: VerificationKey | null, environment: Environment, scheme: Dialect, client: ClientAddress, now: number): Denial | undefined {
  if (key === null) return deny("KEY_UNKNOWN");
  const record = key.record;
  if (record.environment !== environment) return deny("KEY_ENVIRONMENT_MISMATCH");
  if (record.status === "revoked") return deny("KEY_REVOKED");
  if (record.status === "suspended") return deny("KEY_SUSPENDED");
  if (record.expiresAt !== null && record.expiresAt <= now) return deny("KEY_EXPIRED");
  if (!key.dialects.has(scheme)) return deny("DIALECT_NOT_ALLOWED", scheme);
  if (key.allowlist !== null && !key.allowlist.has(client.ip)) return deny("IP_NOT_ALLOWED", client.text);
  return undefined;
}

/**
 * Looks up the key a Binance-style message names in `apiKey` (stage 4 for a message): through the
 * cache, an id that cannot be a key of this environment refused without a lookup.
 */
export async function lookupKey(checks: IdentityChecks, id: string): Promise<VerificationKey | Denial> {
  const cached = checks.cache.peek(id);
  if (cached !== undefined) return cached ?? deny("KEY_UNKNOWN");
  if (isSessionToken(id)) return deny("KEY_UNKNOWN", "session tokens are not API keys");
  const parsed = parseKeyId(id);
  if (parsed === null) return deny("KEY_ID_MALFORMED");
  if (parsed.kind !== "key") return deny("KEY_UNKNOWN");
  if (parsed.environment !== checks.environment) return deny("KEY_ENVIRONMENT_MISMATCH");
  try {
    return (await checks.cache.load(id)) ?? deny("KEY_UNKNOWN");
  } catch (err) {
    return deny("KEY_STORE_UNAVAILABLE", err instanceof Error ? err.message : "load failed");
  }
}

/** When the identity ends by itself: the key's expiry, or the session's (ms; Infinity: never). */
export function expiryOf(key: VerificationKey): number {
  const keyExpiry = key.record.expiresAt ?? Number.POSITIVE_INFINITY;
  const sessionExpiry = key.session?.exp ?? Number.POSITIVE_INFINITY;
  return Math.min(keyExpiry, sessionExpiry);
}

export function isDenial(value: VerificationKey | Denial): value is Denial {
  return "ok" in value;
}
