import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { type RouteTable, isCanonicalPath } from "../authz/routes.js";
import type { AuthScheme, HotState, StageAnswer } from "../dialects/scheme.js";
import { type Denial, deny } from "../errors/catalogue.js";
import type { KeyCache, VerificationKey } from "../keys/cache.js";
import { type Environment, parseKeyId } from "../keys/ids.js";
import type { Dialect } from "../keys/model.js";
import type { ClientAddressResolver } from "../net/client-address.js";
import { authorityOf } from "../signatures/rfc9421.js";
import { type PipelineRequest, RequestContext } from "./context.js";

export interface PipelineOptions {
  readonly routes: RouteTable;
  readonly keys: KeyCache;
  /** The signing schemes spoken (the native one at least), by name. */
  readonly schemes: ReadonlyMap<Dialect, AuthScheme>;
  /** Replay state. */
  readonly hot: HotState;
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
}

interface Stage {
  /** The Server-Timing metric name. */
  readonly name: string;
  readonly run: (ctx: RequestContext) => StageAnswer;
}

/**
 * The request pipeline (DESIGN.md): an ordered list of small stages, cheapest first. Each stage
 * returns nothing to continue or a denial to stop; a denial is a value, never an exception. A
 * public route stops after routing. Stages that would consume quota come last (later issues add
 * limits, policy and behaviour after authorization).
 *
 * Implemented here: 1 client address, 3 credentials, 4 key, 5 freshness, 6 signature, 7 replay,
 * 8 authorization, with routing between 1 and 3 because every later stage depends on the route.
 * Stages 3 and 5-7 belong to the request's signing scheme (native, or an exchange dialect): the
 * pipeline detects the scheme from the headers and runs the credential that scheme extracts.
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
    this.onKeyUsed = options.onKeyUsed ?? null;
    this.stages = [
      { name: "addr", run: (ctx) => this.clientAddress(ctx) },
      { name: "route", run: (ctx) => this.route(ctx) },
      { name: "cred", run: (ctx) => this.credentials(ctx) },
      { name: "key", run: (ctx) => this.key(ctx) },
      { name: "fresh", run: (ctx) => this.freshness(ctx) },
      { name: "sig", run: (ctx) => this.signature(ctx) },
      { name: "replay", run: (ctx) => this.replay(ctx) },
      { name: "authz", run: (ctx) => this.authorize(ctx) },
    ];
  }

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
    if (this.timing) ctx.timings = [];
    return this.continueFrom(ctx, 0, ctx.timings === null ? 0 : performance.now());
  }

  private continueFrom(ctx: RequestContext, first: number, mark: number): RequestContext | Promise<RequestContext> {
    const stages = this.stages;
    for (let i = first; i < stages.length; i++) {
      const result = (stages[i] as Stage).run(ctx);
      if (result instanceof Promise) return this.resume(ctx, i, result, mark);
      mark = this.record(ctx, mark);
      if (result !== undefined) {
        ctx.denial = result;
        return ctx;
      }
      if (ctx.route !== null && ctx.route.permission === null) return ctx;
    }
    if (this.onKeyUsed !== null && ctx.key !== null) this.onKeyUsed(ctx.key.record.id, ctx.now);
    return ctx;
  }

  private async resume(ctx: RequestContext, i: number, pending: Promise<Denial | undefined>, mark: number): Promise<RequestContext> {
    const result = await pending;
    const next = this.record(ctx, mark);
    if (result !== undefined) {
      ctx.denial = result;
      return ctx;
    }
    return this.continueFrom(ctx, i + 1, next);
  }

  private record(ctx: RequestContext, mark: number): number {
    const timings = ctx.timings;
    if (timings === null) return mark;
    const t = performance.now();
    timings.push(t - mark);
    return t;
  }

  // --- stage 1 ------------------------------------------------------------------------------
  private clientAddress(ctx: RequestContext): Denial | undefined {
    ctx.client = this.options.clientAddress.resolve(ctx.socketAddress, ctx.headers["x-forwarded-for"]);
    return ctx.client === null ? deny("HTTP_MALFORMED", "no usable peer address") : undefined;
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

  private checkKey(ctx: RequestContext, key: VerificationKey | null): Denial | undefined {
    if (key === null) return deny("KEY_UNKNOWN");
    const record = key.record;
    if (record.environment !== this.options.environment) return deny("KEY_ENVIRONMENT_MISMATCH");
    if (record.status === "revoked") return deny("KEY_REVOKED");
    if (record.status === "suspended") return deny("KEY_SUSPENDED");
    if (record.expiresAt !== null && record.expiresAt <= ctx.now) return deny("KEY_EXPIRED");
    const scheme = ctx.credential?.scheme;
    if (scheme === undefined || !key.dialects.has(scheme)) return deny("DIALECT_NOT_ALLOWED", scheme);
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

  private replay(ctx: RequestContext): StageAnswer {
    const { credential, key } = ctx;
    if (credential === null || key === null) return deny("INTERNAL", "replay before credentials");
    return credential.replay(ctx, key, this.options.hot);
  }

  // --- stage 8 ------------------------------------------------------------------------------
  private authorize(ctx: RequestContext): Denial | undefined {
    const permission = ctx.route?.permission;
    if (permission === undefined || permission === null || ctx.key === null) return deny("INTERNAL", "authorize before key");
    return ctx.key.permissions.has(permission) ? undefined : deny("SCOPE_MISSING", `needs ${permission}`);
  }
}
