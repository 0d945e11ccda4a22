import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { type RouteTable, isCanonicalPath } from "../authz/routes.js";
import { type AuthScheme, type StageAnswer, type PipelineRequest, RequestContext } from "../contract/request.js";
import { type Denial, type ErrorCode, deny } from "../errors/catalogue.js";
import type { KeyCache } from "../keys/cache.js";
import type { VerificationKey } from "../contract/verification-key.js";
import { type Environment, parseKeyId, isSessionToken } from "../contract/ids.js";
import type { Dialect } from "../contract/keys.js";
import type { LimitPlan } from "../limits/plan.js";
import type { Shield } from "../limits/shield.js";
import type { ClientAddressResolver } from "../net/client-address.js";
import { authorityOf } from "../signatures/rfc9421.js";
import type { Admission, AdmissionResult, FailureResult, HotStore } from "../storage/types.js";
import { AUTHENTICATED } from "../contract/permissions.js";
import type { CheckedSession, SessionAuthority } from "../sessions/authority.js";

export interface PipelineOptions {
  readonly routes: RouteTable;
  readonly keys: KeyCache;
  /** The signing schemes spoken (the native one at least), by name. */
  readonly schemes: ReadonlyMap<Dialect, AuthScheme>;
  /** Replay state, limits, bans: memory, or Redis shared by many gateways. */
  readonly hot: HotStore;
  /**
   * Local stand-in for routes marked degradable when `hot` cannot answer (Redis down); every
   * other route then fails closed. Null: everything fails closed.
   */
  readonly fallbackHot?: HotStore | null;
  /** Which limits apply to a request. */
  readonly limits: LimitPlan;
  /** Bans and blocks known in this process, and the per-key concurrency cap. */
  readonly shield: Shield;
  /** Count authentication failures toward blocks (on when limits are configured). Default false. */
  readonly blockOnAuthFailures?: boolean;
  readonly clientAddress: ClientAddressResolver;
  /** Keys of the other environment are refused. */
  readonly environment: Environment;
  /** The scheme clients use to reach the gateway (for the authority's default port). */
  readonly scheme: "http" | "https";
  /** If set, the only Host values (lower case, default port removed) the gateway serves. */
  readonly authorities?: readonly string[] | undefined;
  /** Record per-stage durations on the context (for Server-Timing). Default false. */
  readonly timing?: boolean;
  readonly now?: () => number;
  /** Called once per allowed, authenticated request. */
  readonly onKeyUsed?: (keyId: string, at: number) => void;
  /** Issues and checks session tokens; null (the default): session tokens are refused. */
  readonly sessions?: SessionAuthority | null;
}

interface Stage {
  /** The Server-Timing metric name. */
  readonly name: string;
  readonly run: (ctx: RequestContext) => StageAnswer;
}

/** Refusals that count toward an address's (or a key's) authentication-failure block. */
const AUTH_FAILURES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
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
]);
/** Of those, the ones that say someone is guessing at an existing key. */
const KEY_FAILURES: ReadonlySet<ErrorCode> = new Set<ErrorCode>(["SIGNATURE_INVALID", "ALGORITHM_MISMATCH", "PASSPHRASE_INVALID"]);

/**
 * The request pipeline (DESIGN.md): an ordered list of small stages, cheapest first. Each stage
 * returns nothing to continue or a denial to stop; a denial is a value, never an exception.
 *
 * 1 client address, 2 shield (bans and blocks already known here), routing, 3 credentials, 4 key,
 * 5 freshness, 6 signature, 8 authorization, then admission: 7 replay and 9 limits decided
 * together by the hot store, all or nothing, so nothing is consumed by a request refused earlier
 * and a request refused by any limit records nothing (one Redis round trip per request). A public
 * route skips from routing to admission (it is charged against the address's limits). Stages 3,
 * 5, 6 and 7's claim belong to the request's signing scheme (native, or an exchange dialect).
 */
export class Pipeline {
  private readonly stages: readonly Stage[];
  private readonly options: PipelineOptions;
  private readonly now: () => number;
  private readonly schemes: readonly AuthScheme[];
  private readonly native: AuthScheme;
  private readonly credentialHeaderSet: ReadonlySet<string>;
  private readonly authorities: ReadonlySet<string> | null;
  private readonly timing: boolean;
  private readonly blockOnAuthFailures: boolean;
  private readonly onKeyUsed: ((keyId: string, at: number) => void) | null;

  constructor(options: PipelineOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
    const native = options.schemes.get("native");
    if (native === undefined) throw new TypeError("the native scheme is required");
    this.native = native;
    this.schemes = [...options.schemes.values()];
    this.credentialHeaderSet = new Set(this.schemes.flatMap((s) => s.credentialHeaders));
    for (const route of options.routes.routes) {
      if (route.dialect !== null && !options.schemes.has(route.dialect)) {
        throw new TypeError(`route ${route.id} uses the ${route.dialect} dialect, which this gateway does not speak`);
      }
    }
    this.authorities = options.authorities === undefined || options.authorities.length === 0 ? null : new Set(options.authorities.map((a) => a.toLowerCase()));
    this.timing = options.timing ?? false;
    this.blockOnAuthFailures = options.blockOnAuthFailures ?? false;
    this.onKeyUsed = options.onKeyUsed ?? null;
    this.stages = [
      { name: "addr", run: (ctx) => this.clientAddress(ctx) },
      { name: "shield", run: (ctx) => this.shieldStage(ctx) },
      { name: "route", run: (ctx) => this.route(ctx) },
      { name: "cred", run: (ctx) => this.credentials(ctx) },
      { name: "key", run: (ctx) => this.key(ctx) },
      { name: "fresh", run: (ctx) => this.freshness(ctx) },
      { name: "sig", run: (ctx) => this.signature(ctx) },
      { name: "authz", run: (ctx) => this.authorize(ctx) },
      { name: "admit", run: (ctx) => this.admit(ctx) },
    ];
    this.routeStage = 2;
    this.admitStage = this.stages.length - 1;
  }

  private readonly routeStage: number;
  private readonly admitStage: number;

  /** Every scheme's credential headers: never forwarded upstream. */
  get credentialHeaders(): ReadonlySet<string> {
    return this.credentialHeaderSet;
  }

  /** The stage names, in order (Server-Timing metric names). */
  get stageNames(): readonly string[] {
    return this.stages.map((s) => s.name);
  }

  /**
   * Runs every stage. The context comes back with `denial` set, or null when allowed. When every
   * stage answers synchronously (the embedded stores with a warm key cache) so does this: the
   * result is a context, not a promise, and no microtask is spent. Callers `await` it either way.
   */
  run(req: PipelineRequest, requestId: string = randomUUID()): RequestContext | Promise<RequestContext> {
    const ctx = new RequestContext(req, requestId, this.now());
    if (this.timing) ctx.timings = new Array<number>(this.stages.length).fill(Number.NaN);
    return this.continueFrom(ctx, 0, ctx.timings === null ? 0 : performance.now());
  }

  private continueFrom(ctx: RequestContext, first: number, mark: number): RequestContext | Promise<RequestContext> {
    const stages = this.stages;
    for (let i = first; i < stages.length; i++) {
      const result = (stages[i] as Stage).run(ctx);
      if (result instanceof Promise) return this.resume(ctx, i, result, mark);
      mark = this.record(ctx, i, mark);
      if (result !== undefined) return this.refuse(ctx, result);
      // A public route goes straight to admission (its address's limits).
      if (i === this.routeStage && ctx.route !== null && ctx.route.permission === null) i = this.admitStage - 1;
    }
    if (this.onKeyUsed !== null && ctx.key !== null) this.onKeyUsed(ctx.key.record.id, ctx.now);
    return ctx;
  }

  private async resume(ctx: RequestContext, i: number, pending: Promise<Denial | undefined>, mark: number): Promise<RequestContext> {
    const result = await pending;
    const next = this.record(ctx, i, mark);
    if (result !== undefined) return this.refuse(ctx, result);
    return this.continueFrom(ctx, i + 1, next);
  }

  private refuse(ctx: RequestContext, denial: Denial): RequestContext {
    ctx.denial = denial;
    if (this.blockOnAuthFailures && AUTH_FAILURES.has(denial.code) && ctx.client !== null) this.recordFailure(ctx, denial.code);
    return ctx;
  }

  private record(ctx: RequestContext, stage: number, mark: number): number {
    const timings = ctx.timings;
    if (timings === null) return mark;
    const t = performance.now();
    timings[stage] = t - mark;
    return t;
  }

  /**
   * An authentication failure counts toward a block of the address (and of the key, for a wrong
   * signature on an existing key). Off the response path: the refusal does not wait for it.
   */
  private recordFailure(ctx: RequestContext, code: ErrorCode): void {
    const ip = ctx.client?.text ?? "";
    const keyId = KEY_FAILURES.has(code) ? (ctx.key?.record.id ?? null) : null;
    const learn = (r: FailureResult): void => {
      if (r.ipBlockedUntil !== null) this.options.shield.blockIp(ip, r.ipBlockedUntil);
      if (r.keyBlockedUntil !== null && keyId !== null) this.options.shield.blockKey(keyId, r.keyBlockedUntil);
    };
    try {
      const result = this.options.hot.recordFailure(ip, keyId, ctx.now);
      if (result instanceof Promise) result.then(learn, () => undefined);
      else learn(result);
    } catch {
      // Counting failures must never break a refusal.
    }
  }

  /** Releases the request's concurrency slot; call once the response is finished. */
  finish(ctx: RequestContext): void {
    if (ctx.slotHeld && ctx.key !== null) {
      ctx.slotHeld = false;
      this.options.shield.release(ctx.key.record.id);
    }
  }

  // --- stage 1 ------------------------------------------------------------------------------
  private clientAddress(ctx: RequestContext): Denial | undefined {
    ctx.client = this.options.clientAddress.resolve(ctx.socketAddress, ctx.headers["x-forwarded-for"]);
    return ctx.client === null ? deny("HTTP_MALFORMED", "no usable peer address") : undefined;
  }

  // --- stage 2 ------------------------------------------------------------------------------
  private shieldStage(ctx: RequestContext): Denial | undefined {
    const ip = ctx.client?.text ?? "";
    const shield = this.options.shield;
    const banned = shield.bannedUntil(ip, ctx.now);
    if (banned !== null) return this.shielded(ctx, "IP_BANNED", banned);
    const blocked = shield.blockedIpUntil(ip, ctx.now);
    if (blocked !== null) return this.shielded(ctx, "IP_BLOCKED", blocked);
    return undefined;
  }

  /**
   * A refusal by the shield, in the dialect the caller speaks (its credential headers, else its
   * route's dialect) so that a Binance client sees Binance's 418 — without the rest of routing.
   */
  private shielded(ctx: RequestContext, code: "IP_BANNED" | "IP_BLOCKED", until: number): Denial {
    for (const scheme of this.schemes) {
      if (scheme.detect(ctx.headers)) {
        ctx.renderer = scheme;
        break;
      }
    }
    if (ctx.renderer === null) {
      const q = ctx.url.indexOf("?");
      const dialect = this.options.routes.match(ctx.method, q < 0 ? ctx.url : ctx.url.slice(0, q))?.dialect ?? null;
      if (dialect !== null) ctx.renderer = this.options.schemes.get(dialect) ?? null;
    }
    return retryAfter(deny(code), ctx, until);
  }

  // --- routing ------------------------------------------------------------------------------
  private route(ctx: RequestContext): Denial | undefined {
    const url = ctx.url;
    const q = url.indexOf("?");
    ctx.path = q < 0 ? url : url.slice(0, q);
    ctx.query = q < 0 ? null : url.slice(q + 1);
    if (!isCanonicalPath(ctx.path)) return deny("PATH_NOT_CANONICAL");
    ctx.authority = authorityOf(ctx.headers.host, this.options.scheme);
    if (this.authorities !== null && (ctx.authority === undefined || !this.authorities.has(ctx.authority))) {
      return deny("AUTHORITY_NOT_ALLOWED");
    }
    // Which scheme is the request signed in? (Header presence only; parsing is stage 3.)
    const schemes = this.schemes;
    for (let i = 0; i < schemes.length; i++) {
      const scheme = schemes[i] as AuthScheme;
      if (!scheme.detect(ctx.headers)) continue;
      if (ctx.scheme === null) ctx.scheme = scheme;
      else ctx.schemeAmbiguous = true;
    }
    ctx.renderer = ctx.scheme;
    const route = this.options.routes.match(ctx.method, ctx.path);
    if (route === undefined) return deny("ROUTE_NOT_FOUND");
    ctx.route = route;
    if (ctx.renderer === null && route.dialect !== null) ctx.renderer = this.options.schemes.get(route.dialect) ?? null;
    return undefined;
  }

  // --- stage 3 ------------------------------------------------------------------------------
  private credentials(ctx: RequestContext): Denial | undefined {
    if (ctx.schemeAmbiguous) return deny("CREDENTIALS_AMBIGUOUS");
    const scheme = ctx.scheme;
    if (scheme === null) return deny("CREDENTIALS_MISSING");
    if (scheme !== this.native && scheme.name !== ctx.route?.dialect) return deny("SCHEME_NOT_ACCEPTED", `${scheme.name} on ${ctx.route?.id ?? "?"}`);
    const credential = scheme.extract(ctx);
    if ("ok" in credential) return credential;
    ctx.credential = credential;
    ctx.keyId = credential.keyId;
    return undefined;
  }

  // --- stage 4 ------------------------------------------------------------------------------
  private key(ctx: RequestContext): StageAnswer {
    const id = ctx.keyId ?? "";
    if (isSessionToken(id)) return this.sessionKey(ctx, id);
    const cached = this.options.keys.peek(id);
    if (cached !== undefined) return this.checkKey(ctx, cached);
    const parsed = parseKeyId(id);
    if (parsed === null) return deny("KEY_ID_MALFORMED");
    if (parsed.kind !== "key") return deny("KEY_UNKNOWN", "session ids are not API keys");
    if (parsed.environment !== this.options.environment) return deny("KEY_ENVIRONMENT_MISMATCH");
    return this.options.keys.load(id).then(
      (key) => this.checkKey(ctx, key),
      (err: unknown) => deny("KEY_STORE_UNAVAILABLE", err instanceof Error ? err.message : "load failed"),
    );
  }

  /**
   * Stage 4 for a session: the token (checked once per process, then remembered), then its API
   * key exactly as for a request signed with the key itself, then what ends a session: the key's
   * epoch moved on (revoked, suspended, changed, sessions ended), the address it is bound to.
   * Expiry is checked here too (stage 5 checks the proof's own `created`); logout is part of the
   * admission.
   */
  private sessionKey(ctx: RequestContext, token: string): StageAnswer {
    const sessions = this.options.sessions ?? null;
    if (sessions === null) return deny("SESSION_INVALID", "sessions are not enabled");
    const session = sessions.check(token, ctx.now);
    if ("ok" in session) return session;
    const keyId = session.claims.key;
    const cached = this.options.keys.peek(keyId);
    if (cached !== undefined) return this.checkSession(ctx, sessions, session, cached);
    return this.options.keys.load(keyId).then(
      (key) => this.checkSession(ctx, sessions, session, key),
      (err: unknown) => deny("KEY_STORE_UNAVAILABLE", err instanceof Error ? err.message : "load failed"),
    );
  }

  private checkSession(ctx: RequestContext, sessions: SessionAuthority, session: CheckedSession, key: VerificationKey | null): Denial | undefined {
    const denial = this.checkKey(ctx, key);
    if (denial !== undefined || key === null) return denial ?? deny("KEY_UNKNOWN");
    const claims = session.claims;
    if (key.record.sessionEpoch !== claims.ep) return deny("SESSION_REVOKED", `epoch ${claims.ep}, key at ${key.record.sessionEpoch}`);
    if (claims.exp <= ctx.now) return deny("SESSION_EXPIRED");
    if (claims.ip !== undefined && ctx.client?.text !== claims.ip) return deny("SESSION_ADDRESS_MISMATCH", ctx.client?.text);
    ctx.key = sessions.keyFor(session, key);
    return undefined;
  }

  private checkKey(ctx: RequestContext, key: VerificationKey | null): Denial | undefined {
    if (key === null) return deny("KEY_UNKNOWN");
    const record = key.record;
    if (record.environment !== this.options.environment) return deny("KEY_ENVIRONMENT_MISMATCH");
    if (record.status === "revoked") return deny("KEY_REVOKED");
    if (record.status === "suspended") return deny("KEY_SUSPENDED");
    if (record.expiresAt !== null && record.expiresAt <= ctx.now) return deny("KEY_EXPIRED");
    const scheme = ctx.credential?.scheme;
    if (scheme === undefined || !key.dialects.has(scheme)) return deny("DIALECT_NOT_ALLOWED", scheme);
    const blocked = this.options.shield.blockedKeyUntil(record.id, ctx.now);
    if (blocked !== null) return retryAfter(deny("KEY_BLOCKED"), ctx, blocked);
    if (key.allowlist !== null && (ctx.client === null || !key.allowlist.has(ctx.client.ip))) {
      return deny("IP_NOT_ALLOWED", ctx.client?.text);
    }
    ctx.key = key;
    return undefined;
  }

  // --- stages 5-7: the scheme's own checks ---------------------------------------------------
  private freshness(ctx: RequestContext): StageAnswer {
    const { credential, key } = ctx;
    if (credential === null || key === null) return deny("INTERNAL", "freshness before credentials");
    return credential.fresh(ctx, key);
  }

  private signature(ctx: RequestContext): StageAnswer {
    const { credential, key } = ctx;
    if (credential === null || key === null) return deny("INTERNAL", "signature before credentials");
    return credential.verify(ctx, key);
  }

  // --- stage 8 ------------------------------------------------------------------------------
  private authorize(ctx: RequestContext): Denial | undefined {
    const permission = ctx.route?.permission;
    if (permission === undefined || permission === null || ctx.key === null) return deny("INTERNAL", "authorize before key");
    return permission === AUTHENTICATED || ctx.key.permissions.has(permission) ? undefined : deny("SCOPE_MISSING", `needs ${permission}`);
  }

  // --- stages 7 and 9: admission ---------------------------------------------------------------
  private admit(ctx: RequestContext): StageAnswer {
    const route = ctx.route;
    if (route === null) return deny("INTERNAL", "admission before routing");
    const key = ctx.key;
    const ip = ctx.client?.text ?? "";
    const replay = key === null || ctx.credential === null ? null : ctx.credential.replayClaim(ctx, key);
    const charges = this.options.limits.empty ? [] : this.options.limits.charges(route, ip, key);
    ctx.charges = charges;
    const session = key?.session ?? null;
    if (replay === null && charges.length === 0 && session === null) return undefined;
    // Without a cap there is no slot to hold (nor a release to wait for when the answer ends).
    if (key !== null && this.options.shield.capped) {
      if (!this.options.shield.acquire(key.record.id)) return deny("CONCURRENCY_LIMITED");
      ctx.slotHeld = true;
    }
    const admission: Admission = { now: ctx.now, ip, replay, charges, session: session === null ? null : session.sid };
    let result: AdmissionResult | Promise<AdmissionResult>;
    try {
      result = this.options.hot.admit(admission);
    } catch (err) {
      return this.degrade(ctx, admission, err);
    }
    if (result instanceof Promise) {
      return result.then(
        (r) => this.admitted(ctx, r),
        (err: unknown) => this.degrade(ctx, admission, err),
      );
    }
    return this.admitted(ctx, result);
  }

  /** The hot store could not answer: degradable routes use local state, the rest fail closed. */
  private degrade(ctx: RequestContext, admission: Admission, err: unknown): StageAnswer {
    const fallback = this.options.fallbackHot ?? null;
    if (fallback === null || ctx.route?.degradable !== true) {
      this.finish(ctx);
      return deny("HOT_STORE_UNAVAILABLE", err instanceof Error ? err.message : String(err));
    }
    ctx.degraded = true;
    const result = fallback.admit(admission);
    if (result instanceof Promise) return result.then((r) => this.admitted(ctx, r), () => deny("HOT_STORE_UNAVAILABLE"));
    return this.admitted(ctx, result);
  }

  private admitted(ctx: RequestContext, r: AdmissionResult): Denial | undefined {
    if (r.ok) {
      ctx.chargeStates = r.states;
      return undefined;
    }
    this.finish(ctx);
    switch (r.reason) {
      case "limited": {
        ctx.chargeStates = r.states;
        ctx.refusedCharge = r.index;
        const ip = ctx.client?.text ?? "";
        if (r.bannedUntil !== null) {
          // The strike that earns the ban is answered as the ban it earned.
          this.options.shield.ban(ip, r.bannedUntil);
          return retryAfter(deny("IP_BANNED"), ctx, r.bannedUntil);
        }
        ctx.retryAfterMs = r.retryAfterMs;
        const spec = ctx.charges?.[r.index]?.spec;
        return deny(spec?.kind === "orders" ? "ORDERS_LIMITED" : "RATE_LIMITED", spec?.name);
      }
      case "banned":
        this.options.shield.ban(ctx.client?.text ?? "", r.until);
        return retryAfter(deny("IP_BANNED"), ctx, r.until);
      case "replayed":
        return deny("NONCE_REPLAYED");
      case "too-low":
        return deny("NONCE_NOT_INCREASING");
      case "full":
        return deny("REPLAY_CAPACITY");
      case "session-revoked":
        return deny("SESSION_REVOKED", "logged out");
    }
  }
}

function retryAfter(denial: Denial, ctx: RequestContext, until: number): Denial {
  ctx.retryAfterMs = Math.max(0, until - ctx.now);
  return denial;
}
