import { type KeyObject, createSecretKey, hkdfSync, randomBytes } from "node:crypto";
import { grantedPermissions, isScope } from "../contract/permissions.js";
import type { Envelope } from "../custody/envelope.js";
import { EnvelopeSigningKeys, openStoredSecret } from "../custody/signing.js";
import type { SigningKey, SigningKeyProvider } from "../contract/signing.js";
import type { MetaStore } from "../storage/types.js";
import { type Denial, PortcullisError, deny } from "../errors/catalogue.js";
import type { VerificationKey } from "../contract/verification-key.js";
import type { Environment } from "../contract/ids.js";
import { DEFAULT_SESSION_TTL_MS, MAX_SESSION_TTL_MS, MIN_SESSION_TTL_MS } from "../contract/keys.js";
import { ALGORITHMS_FOR_KEY } from "../signatures/algorithms.js";
import type { SessionClaims } from "../contract/sessions.js";
import { assemble, parseToken, signingInput, verifyToken } from "./token.js";

/**
 * The session authority: issues session tokens at logon and refresh, and turns a token on a
 * request into the key the pipeline verifies it with.
 *
 * Cost per request. A token is checked once per process (format, claims, the gateway's Ed25519
 * signature) and remembered, with its derived secret as a KeyObject; later requests cost one Map
 * lookup. The key a session request is verified with is built once per (session, version of the
 * API key's record) and remembered too: the key cache replaces its VerificationKey object on
 * every change of the record, which rebuilds it. What must be checked on every request — the
 * key's status, expiry and session epoch, the session's expiry and address, logout — is a field
 * comparison (logout: part of the one hot-store admission).
 *
 * The session secret. secret = base64url(HKDF-SHA256(session-secret key, salt = session id,
 * info = "portcullis session secret v1")), 256 bits, and the client uses it exactly as an API
 * key's HMAC secret (its UTF-8 bytes). The gateway stores no session: any process of the
 * deployment that holds the session-secret key and the token key's public half can serve it.
 */
export interface SessionAuthorityOptions {
  /** The session-token signing key (custody: keyring or HSM). */
  readonly signingKey: SigningKey;
  /** The key session secrets are derived from (a stored secret of the deployment). */
  readonly secretKey: KeyObject;
  readonly environment: Environment;
  /** Tokens remembered after their first check. Default 100 000. */
  readonly maxCached?: number;
}

/** What a logon asks for. Absent fields: the key's own settings. */
export interface LogonRequest {
  /** Narrower scopes than the key's (never wider). */
  readonly scopes?: readonly string[];
  /** A shorter lifetime than the key's session lifetime (ms). */
  readonly ttlMs?: number;
  /** Bind the session to the logon's client address (always, when the key asks for it). */
  readonly bindAddress?: boolean;
}

export interface IssuedSession {
  /** The token: the `keyid` of the session's requests. */
  readonly keyid: string;
  /** The session's HMAC secret (UTF-8 bytes, as an API key's). */
  readonly secret: string;
  /** Epoch ms. */
  readonly expiresAt: number;
  readonly scopes: readonly string[];
  /** The API key the session belongs to. */
  readonly keyId: string;
  /** Set when the session is bound to an address. */
  readonly boundAddress: string | null;
  /** The session's id (not a credential: for logs and the audit log). */
  readonly sessionId: string;
}

/** The longest a session lives, refreshes included, after its logon. */
export const MAX_SESSION_LIFETIME_MS = MAX_SESSION_TTL_MS;

const SECRET_INFO = Buffer.from("portcullis session secret v1", "utf8");
const NATIVE_ONLY: ReadonlySet<"native"> = new Set(["native"]);
const HMAC_ONLY = ALGORITHMS_FOR_KEY["hmac-sha256"];

/** A token that passed its one-time check. */
export interface CheckedSession {
  readonly token: string;
  readonly claims: SessionClaims;
  readonly secret: string;
  readonly hmacKey: KeyObject;
  /** The verification key last built for it, and the API key version it was built from. */
  view: VerificationKey | null;
  parent: VerificationKey | null;
}

export class SessionAuthority {
  private readonly signingKey: SigningKey;
  private readonly secretKey: KeyObject;
  readonly environment: Environment;
  private readonly maxCached: number;
  private readonly checked = new Map<string, CheckedSession>();

  constructor(options: SessionAuthorityOptions) {
    if (options.secretKey.type !== "secret" || (options.secretKey.symmetricKeySize ?? 0) < 32) throw new TypeError("the session-secret key must be a secret of at least 256 bits");
    this.signingKey = options.signingKey;
    this.secretKey = options.secretKey;
    this.environment = options.environment;
    this.maxCached = options.maxCached ?? 100_000;
  }

  /**
   * The authority of a deployment: its session-token signing key (from `signingKeys`, by default
   * envelope-held in the meta store) and its session-secret key (a stored secret).
   */
  static async open(options: { meta: MetaStore; envelope: Envelope; environment: Environment; signingKeys?: SigningKeyProvider; maxCached?: number }): Promise<SessionAuthority> {
    const provider = options.signingKeys ?? new EnvelopeSigningKeys(options.meta, options.envelope);
    return new SessionAuthority({
      signingKey: await provider.open("session-token"),
      secretKey: await openStoredSecret(options.meta, options.envelope, "session-secret"),
      environment: options.environment,
      ...(options.maxCached === undefined ? {} : { maxCached: options.maxCached }),
    });
  }

  /** Tokens remembered (for tests and metrics). */
  get size(): number {
    return this.checked.size;
  }

  /**
   * Logon: a new session for `key` (an API key, checked by the pipeline), from `clientIp`, at
   * `now`. Throws PortcullisError for a request the key cannot have.
   */
  async logon(key: VerificationKey, request: LogonRequest, clientIp: string, now: number): Promise<IssuedSession> {
    const record = key.record;
    const scopes = request.scopes === undefined ? [...record.scopes] : this.narrowScopes(key, request.scopes);
    const keyTtl = record.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS;
    if (request.ttlMs !== undefined && (!Number.isSafeInteger(request.ttlMs) || request.ttlMs < MIN_SESSION_TTL_MS || request.ttlMs > keyTtl)) {
      throw new PortcullisError("VALIDATION_FAILED", `ttl must be from 1m to this key's session lifetime (${keyTtl / 1000} s)`, { ttl: "out of range" });
    }
    const ttl = request.ttlMs ?? keyTtl;
    const bind = record.sessionBindAddress || request.bindAddress === true;
    const claims: SessionClaims = {
      v: 1,
      sid: randomBytes(16).toString("base64url"),
      key: record.id,
      env: this.environment,
      ep: record.sessionEpoch,
      scp: scopes,
      iat: now,
      exp: this.expiry(now, ttl, now, record.expiresAt),
      auth: now,
      ...(bind ? { ip: clientIp } : {}),
      kid: this.signingKey.kid,
    };
    return this.issue(claims);
  }

  /**
   * Refresh: the same session (id, secret, scopes, binding) with a new expiry, one session
   * lifetime from now, never past 24 hours after the logon nor past the key's own expiry.
   */
  async refresh(session: SessionClaims, key: VerificationKey, now: number): Promise<IssuedSession> {
    // Already at the cap: a refresh would not extend it; the client must log on again.
    if (session.exp >= session.auth + MAX_SESSION_LIFETIME_MS) throw new PortcullisError("SESSION_LIFETIME_EXCEEDED");
    const ttl = Math.max(session.exp - session.iat, MIN_SESSION_TTL_MS);
    return this.issue({ ...session, iat: now, exp: this.expiry(now, ttl, session.auth, key.record.expiresAt), ep: key.record.sessionEpoch, kid: this.signingKey.kid });
  }

  /** The latest a session of this lineage may be refused for: its logon + the maximum lifetime. */
  static revokeUntil(session: SessionClaims): number {
    return session.auth + MAX_SESSION_LIFETIME_MS;
  }

  private expiry(now: number, ttl: number, auth: number, keyExpiresAt: number | null): number {
    return Math.min(now + ttl, auth + MAX_SESSION_LIFETIME_MS, keyExpiresAt ?? Number.MAX_SAFE_INTEGER);
  }

  private narrowScopes(key: VerificationKey, requested: readonly string[]): string[] {
    const scopes = [...new Set(requested)].sort();
    const unknown = scopes.filter((s) => !isScope(s));
    if (scopes.length === 0 || unknown.length > 0) {
      throw new PortcullisError("VALIDATION_FAILED", `scopes must be a non-empty list of known scopes${unknown.length > 0 ? ` (unknown: ${unknown.join(", ")})` : ""}`, { scopes: "invalid" });
    }
    const wider = [...grantedPermissions(scopes)].filter((p) => !key.permissions.has(p));
    if (wider.length > 0) throw new PortcullisError("SESSION_SCOPE_NOT_HELD", `the key does not hold ${wider.join(", ")}`);
    return scopes;
  }

  private async issue(claims: SessionClaims): Promise<IssuedSession> {
    const input = signingInput(claims);
    const token = assemble(input, await this.signingKey.sign(Buffer.from(input, "latin1")));
    return {
      keyid: token,
      secret: this.secretOf(claims.sid),
      expiresAt: claims.exp,
      scopes: claims.scp,
      keyId: claims.key,
      boundAddress: claims.ip ?? null,
      sessionId: claims.sid,
    };
  }

  private secretOf(sid: string): string {
    return Buffer.from(hkdfSync("sha256", this.secretKey, Buffer.from(sid, "utf8"), SECRET_INFO, 32)).toString("base64url");
  }

  /**
   * Stage 4 for a session token: the checked session, or why the token is refused. Synchronous:
   * a token seen before is a Map lookup; a new one costs one Ed25519 verification.
   */
  check(token: string, now: number): CheckedSession | Denial {
    const known = this.checked.get(token);
    if (known !== undefined) {
      if (known.claims.exp > now) return known;
      this.checked.delete(token);
      return deny("SESSION_EXPIRED");
    }
    const parsed = parseToken(token);
    if (!parsed.ok) return deny("SESSION_INVALID", parsed.why);
    const claims = parsed.claims;
    if (claims.env !== this.environment) return deny("KEY_ENVIRONMENT_MISMATCH", "session of another environment");
    // An expired token is refused without spending a signature verification on it.
    if (claims.exp <= now) return deny("SESSION_EXPIRED");
    if (claims.kid !== this.signingKey.kid || !verifyToken(parsed, this.signingKey.publicKey)) return deny("SESSION_INVALID", "signature");
    const secret = this.secretOf(claims.sid);
    const session: CheckedSession = { token, claims, secret, hmacKey: createSecretKey(Buffer.from(secret, "utf8")), view: null, parent: null };
    if (this.checked.size >= this.maxCached) {
      const oldest = this.checked.keys().next();
      if (oldest.done !== true) this.checked.delete(oldest.value);
    }
    this.checked.set(token, session);
    return session;
  }

  /**
   * The key a session request is verified with: the API key's record (its id, account, limits
   * and address allowlist apply), the session's HMAC secret, and the session's scopes within the
   * key's permissions. Built once per version of the key's record.
   */
  keyFor(session: CheckedSession, parent: VerificationKey): VerificationKey {
    if (session.parent === parent && session.view !== null) return session.view;
    const permissions = new Set([...grantedPermissions(session.claims.scp)].filter((p) => parent.permissions.has(p)));
    const view: VerificationKey = {
      record: parent.record,
      hmacKey: session.hmacKey,
      hmacKeyDecoded: null,
      publicKey: null,
      dialects: NATIVE_ONLY,
      passphrase: null,
      allowlist: parent.allowlist,
      permissions,
      nativeAlgorithms: HMAC_ONLY,
      windowMs: parent.windowMs,
      scopes: session.claims.scp,
      scopesText: session.claims.scp.join(","),
      idle: parent.idle,
      session: session.claims,
      // The key's guardrails: a session narrows scopes, never loosens what the key may carry.
      guardrails: parent.guardrails,
      // An agent's session stops with its chain (docs/wallets.md).
      chain: parent.chain,
    };
    session.parent = parent;
    session.view = view;
    return view;
  }

  /** Forgets a token (after logout), so nothing of it stays in memory. */
  forget(token: string): void {
    this.checked.delete(token);
  }

  /** Forgets every token of a session (a logout in another process). */
  forgetSession(sessionId: string): void {
    for (const [token, session] of this.checked) if (session.claims.sid === sessionId) this.checked.delete(token);
  }
}
