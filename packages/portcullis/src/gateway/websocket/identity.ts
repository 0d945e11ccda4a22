import type { Credential, StageAnswer, RequestContext } from "../../contract/request.js";
import { type Denial, deny } from "../../errors/catalogue.js";
import type { KeyCache } from "../../keys/cache.js";
import type { VerificationKey } from "../../contract/verification-key.js";
import type { Environment } from "../../contract/ids.js";
import type { Dialect } from "../../contract/keys.js";
import type { ClientAddress } from "../../net/client-address.js";
import { keyDenial, sessionDenial } from "../../pipeline/stages/key.js";
import type { SessionAuthority } from "../../sessions/authority.js";

/**
 * Who a WebSocket connection (or one signed message) acts for. Every message the connection sends
 * for it is decided by the pipeline with the identity as its credential (`IdentityCredential`):
 * the key stage checks the key (or session) as for any request. Between messages, on every change
 * to the key and when the key or session expires, `currentKey` checks it again with the same key
 * and session checks (pipeline/stages/key.ts): those are not requests, and end the connection.
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

/**
 * A key's session epoch moves on whenever what it may do changes (revoked, suspended, scopes,
 * allowlist…): an identity proven with the API key itself ends with it. (A session's epoch is in
 * its token, checked by `sessionDenial`.)
 */
function epochDenial(identity: Identity, key: VerificationKey): Denial | undefined {
  if (identity.token !== null || key.record.sessionEpoch === identity.epoch) return undefined;
  return deny("KEY_CHANGED", `epoch ${identity.epoch} -> ${key.record.sessionEpoch}`);
}

/**
 * The connection's identity as a message's credential: proven once (the signed upgrade, or the
 * logon), so there is nothing to verify but that it still holds (the key's epoch), and nothing to
 * claim for replay. `freshness` is what the scheme still asks of each message (Binance's logged-on
 * requests carry a fresh timestamp: MessageSigning.loggedOn), or null.
 */
export class IdentityCredential implements Credential {
  readonly scheme: Dialect;
  /** The key id, or the session token (the key stage checks a session as for a request). */
  readonly keyId: string;

  constructor(
    readonly identity: Identity,
    private readonly freshness: Credential | null,
  ) {
    this.scheme = identity.scheme;
    this.keyId = identity.token ?? identity.keyId;
  }

  fresh(ctx: RequestContext, key: VerificationKey): StageAnswer {
    return this.freshness === null ? undefined : this.freshness.fresh(ctx, key);
  }

  verify(_ctx: RequestContext, key: VerificationKey): Denial | undefined {
    return epochDenial(this.identity, key);
  }

  replayClaim(): null {
    return null;
  }
}

/** The key as it stands, or why the identity is over. The key's status and allowlist come first. */
export async function currentKey(checks: IdentityChecks, identity: Identity, client: ClientAddress, clientCert: string | null, now: number): Promise<VerificationKey | Denial> {
  let parent: VerificationKey | null | undefined = checks.cache.peek(identity.keyId);
  if (parent === undefined) {
    try {
      parent = await checks.cache.load(identity.keyId);
    } catch (err) {
      return deny("KEY_STORE_UNAVAILABLE", err instanceof Error ? err.message : "load failed");
    }
  }
  return checkIdentity(checks, identity, parent, client, clientCert, now);
}

/** The synchronous part of `currentKey`, for a key already loaded. A block earned by failures is not the end of an identity. */
function checkIdentity(checks: IdentityChecks, identity: Identity, parent: VerificationKey | null, client: ClientAddress, clientCert: string | null, now: number): VerificationKey | Denial {
  const denial = keyDenial(parent, checks.environment, identity.scheme, client, clientCert, now, null);
  if (denial !== undefined || parent === null) return denial ?? deny("KEY_UNKNOWN");
  const changed = epochDenial(identity, parent);
  if (changed !== undefined) return changed;
  if (identity.token === null) return parent;
  const sessions = checks.sessions;
  if (sessions === null) return deny("SESSION_INVALID", "sessions are not enabled");
  const session = sessions.check(identity.token, now);
  if ("ok" in session) return session;
  const ended = sessionDenial(session, parent, client, now);
  if (ended !== undefined) return ended;
  return sessions.keyFor(session, parent);
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
