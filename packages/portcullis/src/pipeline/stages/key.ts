import type { StageAnswer, RequestContext } from "../../contract/request.js";
import { type Denial, deny } from "../../errors/catalogue.js";
import type { KeyCache } from "../../keys/cache.js";
import type { VerificationKey } from "../../contract/verification-key.js";
import { type Environment, parseKeyId, isSessionToken } from "../../contract/ids.js";
import type { Dialect } from "../../contract/keys.js";
import type { Shield } from "../../limits/shield.js";
import type { ClientAddress } from "../../net/client-address.js";
import type { CheckedSession, SessionAuthority } from "../../sessions/authority.js";
import { type Stage, retryAfter } from "./stage.js";
import type { StoreAvailability } from "../../storage/types.js";

/** Keys during an outage of the durable store (docs/failures.md). */
export interface StoreOutagePolicy {
  /** The store's availability: one field read per request. */
  readonly availability: StoreAvailability;
  /** How long after the outage's start keys cached before it keep verifying (ms); 0: none do. */
  readonly graceMs: number;
}

export interface KeyStageOptions {
  readonly keys: KeyCache;
  /** Keys of the other environment are refused. */
  readonly environment: Environment;
  /** Issues and checks session tokens; null: session tokens are refused. */
  readonly sessions: SessionAuthority | null;
  /** Blocks of a key earned by failed signatures. */
  readonly shield: Shield;
  /** The surface the pipeline decides for (its key blocks are its own): PipelineOptions.scope. */
  readonly scope: string;
  /** Outages of a durable store on another host; null (SQLite): the store is never out. */
  readonly outage?: StoreOutagePolicy | null;
}

/**
 * What makes `key` unusable, in this order: unknown, environment, status, expiry, the scheme it
 * is used in, a failure block (when `shield` is given), the address allowlist, the client
 * certificate it is bound to (`clientCert`: the connection's, docs/tls.md). The one key check:
 * stage 4 runs it for every request, and a long-lived connection (WebSocket) runs it again on
 * every change to its key.
 *
 * A failure block is of the key for the client's address group on surface `scope` only (failures
 * elsewhere never refuse a request from here: anyone may send a key id), and never refuses a
 * cancel (`cancel`: the route is tagged "cancel"), so an owner can always pull its orders.
 */
export function keyDenial(
  key: VerificationKey | null,
  environment: Environment,
  scheme: Dialect | undefined,
  client: ClientAddress | null,
  clientCert: string | null,
  now: number,
  shield: Shield | null,
  scope = "gateway",
  cancel = false,
): Denial | undefined {
  if (key === null) return deny("KEY_UNKNOWN");
  const record = key.record;
  if (record.environment !== environment) return deny("KEY_ENVIRONMENT_MISMATCH");
  if (record.status === "revoked") return deny("KEY_REVOKED");
  if (record.status === "suspended") return deny("KEY_SUSPENDED");
  if (record.expiresAt !== null && record.expiresAt <= now) return deny("KEY_EXPIRED");
  if (key.idle !== null && key.idle.expiresAt <= now) return deny("KEY_IDLE_EXPIRED");
  if (scheme === undefined || !key.dialects.has(scheme)) return deny("DIALECT_NOT_ALLOWED", scheme);
  if (shield !== null && !cancel && client !== null && shield.blockedKeyUntil(scope, record.id, client.group, now) !== null) return deny("KEY_BLOCKED");
  if (key.allowlist !== null && (client === null || !key.allowlist.has(client.ip))) return deny("IP_NOT_ALLOWED", client?.text);
  // A bound key (and every session of it: a session's record is its key's) needs its certificate.
  const bound = record.certThumbprint;
  if (bound !== null && bound !== clientCert) return deny("KEY_CERT_MISMATCH", clientCert === null ? "no client certificate" : `client certificate ${clientCert}`);
  return undefined;
}

/**
 * What ends a session of a usable key: the key's session epoch moved on (revoked, suspended,
 * changed, sessions ended), the session's expiry, the address it is bound to.
 */
export function sessionDenial(session: CheckedSession, key: VerificationKey, client: ClientAddress | null, now: number): Denial | undefined {
  const claims = session.claims;
  if (key.record.sessionEpoch !== claims.ep) return deny("SESSION_REVOKED", `epoch ${claims.ep}, key at ${key.record.sessionEpoch}`);
  if (claims.exp <= now) return deny("SESSION_EXPIRED");
  if (claims.ip !== undefined && client?.text !== claims.ip) return deny("SESSION_ADDRESS_MISMATCH", client?.text);
  return undefined;
}

/**
 * Stage 4, the key: through the cache (negative caching, eviction on every change), an id that
 * cannot be a key of this environment refused without a lookup; then `keyDenial`. A session token
 * is checked once per process (then remembered), then its API key exactly as for a request signed
 * with the key itself, then `sessionDenial`; logout is part of the admission.
 */
export function keyStage(options: KeyStageOptions): Stage {
  const { keys, environment, sessions, shield, scope } = options;
  const loadFailed = (err: unknown): Denial => deny("KEY_STORE_UNAVAILABLE", err instanceof Error ? err.message : "load failed");
  const availability = options.outage?.availability ?? null;
  const graceMs = options.outage?.graceMs ?? 0;
  if (!Number.isSafeInteger(graceMs) || graceMs < 0) throw new TypeError("outage.graceMs must be a non-negative integer (ms)");

  /**
   * While the store is out (`since`: the outage's start): the key cached before it, whatever the
   * entry's age, until `graceMs` after the start — the change feed is down, so a change made
   * meanwhile elsewhere is not seen, and the grace bounds how long that can last. A key not cached
   * is refused at once (no lookup that could only fail, or hang on a dead server); after the grace
   * every key is.
   */
  const duringOutage = (ctx: RequestContext, id: string, since: number): VerificationKey | null | Denial => {
    const out = ctx.now - since;
    if (out >= graceMs) return deny("KEY_STORE_UNAVAILABLE", `the durable store has been out for ${out} ms, past store.outageGrace (${graceMs} ms)`);
    const cached = keys.cached(id);
    return cached === undefined ? deny("KEY_STORE_UNAVAILABLE", "the durable store is out and the key is not cached") : cached;
  };
  const isDenial = (v: VerificationKey | null | Denial): v is Denial => v !== null && "ok" in v;

  const checkKey = (ctx: RequestContext, key: VerificationKey | null): Denial | undefined => {
    const cancel = ctx.route !== null && ctx.route.tags.includes("cancel");
    const denial = keyDenial(key, environment, ctx.credential?.scheme, ctx.client, ctx.clientCert, ctx.now, shield, scope, cancel);
    if (denial !== undefined) {
      // A blocked key's refusal says when to retry.
      const until = denial.code === "KEY_BLOCKED" && key !== null && ctx.client !== null ? shield.blockedKeyUntil(scope, key.record.id, ctx.client.group, ctx.now) : null;
      return until === null ? denial : retryAfter(denial, ctx, until);
    }
    ctx.key = key;
    return undefined;
  };

  const checkSession = (ctx: RequestContext, authority: SessionAuthority, session: CheckedSession, key: VerificationKey | null): Denial | undefined => {
    const denial = checkKey(ctx, key);
    if (denial !== undefined || key === null) return denial ?? deny("KEY_UNKNOWN");
    const ended = sessionDenial(session, key, ctx.client, ctx.now);
    if (ended !== undefined) {
      ctx.key = null;
      return ended;
    }
    ctx.key = authority.keyFor(session, key);
    return undefined;
  };

  const sessionKey = (ctx: RequestContext, token: string): StageAnswer => {
    if (sessions === null) return deny("SESSION_INVALID", "sessions are not enabled");
    // Sessions sign native requests only (docs/sessions.md): a venue dialect has no session.
    const scheme = ctx.credential?.scheme;
    if (scheme !== "native") return deny("SESSION_SCHEME_NOT_ALLOWED", scheme);
    const session = sessions.check(token, ctx.now);
    if ("ok" in session) return session;
    const keyId = session.claims.key;
    const since = availability === null ? null : availability.outageSince;
    if (since !== null) {
      const key = duringOutage(ctx, keyId, since);
      return isDenial(key) ? key : checkSession(ctx, sessions, session, key);
    }
    const cached = keys.peek(keyId);
    if (cached !== undefined) return checkSession(ctx, sessions, session, cached);
    return keys.load(keyId).then((key) => checkSession(ctx, sessions, session, key), loadFailed);
  };

  /**
   * An agent key's chain (docs/wallets.md): the owner key and every agent above it must be active,
   * else AGENT_CHAIN_REVOKED. A revoke cascades down in the store (permanent); this makes it
   * immediate, even against a registration racing a revoke. A few lookups in the key cache when
   * the chain is cached (it is after the first request); a link not cached is loaded, or during an
   * outage of the store taken as cached before it, or refused.
   */
  const aboveDenial = (above: VerificationKey | null, id: string, now: number): Denial | undefined => {
    if (above === null) return deny("AGENT_CHAIN_REVOKED", `${id} is unknown`);
    const record = above.record;
    if (record.status !== "active") return deny("AGENT_CHAIN_REVOKED", `${id} is ${record.status}`);
    if (record.expiresAt !== null && record.expiresAt <= now) return deny("AGENT_CHAIN_REVOKED", `${id} has expired`);
    return undefined;
  };
  const chainFrom = async (ctx: RequestContext, chain: readonly string[], from: number): Promise<Denial | undefined> => {
    for (let i = from; i < chain.length; i++) {
      const id = chain[i] as string;
      let above: VerificationKey | null | undefined = keys.peek(id);
      if (above === undefined) {
        try {
          above = await keys.load(id);
        } catch (err) {
          ctx.key = null;
          return loadFailed(err);
        }
      }
      const denial = aboveDenial(above, id, ctx.now);
      if (denial !== undefined) {
        ctx.key = null;
        return denial;
      }
    }
    return undefined;
  };
  const checkChain = (ctx: RequestContext): StageAnswer => {
    const chain = ctx.key?.chain;
    if (chain === null || chain === undefined) return undefined;
    const since = availability === null ? null : availability.outageSince;
    for (let i = 0; i < chain.length; i++) {
      const id = chain[i] as string;
      const above = since === null ? keys.peek(id) : keys.cached(id);
      if (above === undefined) {
        if (since === null) return chainFrom(ctx, chain, i);
        ctx.key = null;
        return deny("KEY_STORE_UNAVAILABLE", "the durable store is out and a key above the agent is not cached");
      }
      const denial = aboveDenial(above, id, ctx.now);
      if (denial !== undefined) {
        ctx.key = null;
        return denial;
      }
    }
    return undefined;
  };
  const withChain = (ctx: RequestContext, answer: StageAnswer): StageAnswer => {
    if (answer === undefined) return checkChain(ctx);
    if (answer instanceof Promise) return answer.then((denial) => denial ?? checkChain(ctx));
    return answer;
  };

  const lookup = (ctx: RequestContext): StageAnswer => {
    const id = ctx.keyId ?? "";
    if (isSessionToken(id)) return sessionKey(ctx, id);
    const since = availability === null ? null : availability.outageSince;
    if (since === null) {
      const cached = keys.peek(id);
      if (cached !== undefined) return checkKey(ctx, cached);
    }
    const parsed = parseKeyId(id);
    if (parsed === null) return deny("KEY_ID_MALFORMED");
    if (parsed.kind !== "key") return deny("KEY_UNKNOWN", "session ids are not API keys");
    if (parsed.environment !== environment) return deny("KEY_ENVIRONMENT_MISMATCH");
    if (since !== null) {
      const key = duringOutage(ctx, id, since);
      return isDenial(key) ? key : checkKey(ctx, key);
    }
    return keys.load(id).then((key) => checkKey(ctx, key), loadFailed);
  };

  return {
    name: "key",
    run: (ctx) => withChain(ctx, lookup(ctx)),
  };
}
