import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { type RouteTable, isCanonicalPath } from "../authz/routes.js";
import { type Denial, deny } from "../errors/catalogue.js";
import type { KeyCache, VerificationKey } from "../keys/cache.js";
import { type Environment, parseKeyId } from "../keys/ids.js";
import type { ClientAddressResolver } from "../net/client-address.js";
import { verifySignature } from "../signatures/algorithms.js";
import { checkContentDigest } from "../signatures/content-digest.js";
import { checkFreshness, extractNativeCredential, nonceExpiry } from "../signatures/native.js";
import { authorityOf, signatureBase } from "../signatures/rfc9421.js";
import type { NonceStore } from "../storage/types.js";
import { type PipelineRequest, RequestContext } from "./context.js";

export interface PipelineOptions {
  readonly routes: RouteTable;
  readonly keys: KeyCache;
  readonly nonces: NonceStore;
  readonly clientAddress: ClientAddressResolver;
  /** Keys of the other environment are refused. */
  readonly environment: Environment;
  /** The scheme clients use to reach the gateway (for @scheme and @target-uri). */
  readonly scheme: "http" | "https";
  /** If set, the only Host values (lower case, default port removed) the gateway serves. */
  readonly authorities?: readonly string[] | undefined;
  /** How far in the future `created` may be (clock skew). Default 1000 ms. */
  readonly futureSkewMs?: number | undefined;
  /** Record per-stage durations on the context (for Server-Timing). Default false. */
  readonly timing?: boolean;
  readonly now?: () => number;
  /** Called once per allowed, authenticated request. */
  readonly onKeyUsed?: (keyId: string, at: number) => void;
}

type StageResult = Denial | undefined | Promise<Denial | undefined>;
interface Stage {
  /** The Server-Timing metric name. */
  readonly name: string;
  readonly run: (ctx: RequestContext) => StageResult;
}

/**
 * The request pipeline (DESIGN.md): an ordered list of small stages, cheapest first. Each stage
 * returns nothing to continue or a denial to stop; a denial is a value, never an exception. A
 * public route stops after routing. Stages that would consume quota come last (later issues add
 * limits, policy and behaviour after authorization).
 *
 * Implemented here: 1 client address, 3 credentials, 4 key, 5 freshness, 6 signature, 7 replay,
 * 8 authorization, with routing between 1 and 3 because every later stage depends on the route.
 */
export class Pipeline {
  private readonly stages: readonly Stage[];
  private readonly options: PipelineOptions;
  private readonly now: () => number;
  private readonly futureSkewMs: number;
  private readonly authorities: ReadonlySet<string> | null;
  private readonly timing: boolean;
  private readonly onKeyUsed: ((keyId: string, at: number) => void) | null;

  constructor(options: PipelineOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
    this.futureSkewMs = options.futureSkewMs ?? 1000;
    if (!Number.isInteger(this.futureSkewMs) || this.futureSkewMs < 0 || this.futureSkewMs > 60_000) {
      throw new TypeError("futureSkewMs must be an integer from 0 to 60000");
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
    const route = this.options.routes.match(ctx.method, ctx.path);
    if (route === undefined) return deny("ROUTE_NOT_FOUND");
    ctx.route = route;
    return undefined;
  }

  // --- stage 3 ------------------------------------------------------------------------------
  private credentials(ctx: RequestContext): Denial | undefined {
    const hasBody = ctx.body.length > 0;
    const credential = extractNativeCredential(ctx.headers["signature-input"], ctx.headers.signature, hasBody);
    if ("ok" in credential) return credential;
    if (hasBody && ctx.headers["content-digest"] === undefined) return deny("CONTENT_DIGEST_MISSING");
    ctx.signature = credential.signature;
    ctx.keyId = credential.keyId;
    return undefined;
  }

  // --- stage 4 ------------------------------------------------------------------------------
  private key(ctx: RequestContext): StageResult {
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
    if (!key.nativeAllowed) return deny("DIALECT_NOT_ALLOWED");
    if (key.allowlist !== null && (ctx.client === null || !key.allowlist.has(ctx.client.ip))) {
      return deny("IP_NOT_ALLOWED", ctx.client?.text);
    }
    ctx.key = key;
    return undefined;
  }

  // --- stage 5 ------------------------------------------------------------------------------
  private freshness(ctx: RequestContext): Denial | undefined {
    const sig = ctx.signature;
    const key = ctx.key;
    if (sig === null || key === null) return deny("INTERNAL", "freshness before credentials");
    return checkFreshness(sig.params.created ?? 0, sig.params.expires, ctx.now, key.windowMs, this.futureSkewMs) ?? undefined;
  }

  // --- stage 6 ------------------------------------------------------------------------------
  private signature(ctx: RequestContext): Denial | undefined {
    const sig = ctx.signature;
    const key = ctx.key;
    if (sig === null || key === null) return deny("INTERNAL", "signature before credentials");
    const requested = sig.params.alg;
    const alg = requested === undefined ? key.nativeAlgorithms[0] : key.nativeAlgorithms.find((a) => a === requested);
    if (alg === undefined) return deny("ALGORITHM_MISMATCH", `key is ${key.record.algorithm}, alg is ${String(requested)}`);
    ctx.algorithm = alg;
    const base = signatureBase(
      {
        method: ctx.method,
        authority: ctx.authority,
        scheme: this.options.scheme,
        path: ctx.path,
        query: ctx.query,
        headers: ctx.headers,
      },
      sig,
    );
    if (typeof base !== "string") return base;
    const material = alg === "hmac-sha256" ? key.hmacKey : key.publicKey;
    if (material === null || !verifySignature(alg, material, base, sig.signature)) return deny("SIGNATURE_INVALID");
    // The signature covers the Content-Digest header; now the header must match the body.
    if (ctx.body.length > 0 || sig.components.includes("content-digest")) {
      const digest = checkContentDigest(ctx.headers["content-digest"], ctx.body);
      if (digest !== null) return digest;
    }
    return undefined;
  }

  // --- stage 7 ------------------------------------------------------------------------------
  private replay(ctx: RequestContext): StageResult {
    const sig = ctx.signature;
    const key = ctx.key;
    if (sig === null || key === null || sig.params.nonce === undefined) return deny("INTERNAL", "replay before credentials");
    const expiresAt = nonceExpiry(sig.params.created ?? 0, key.windowMs);
    const claim = this.options.nonces.claim(key.record.id, sig.params.nonce, expiresAt, ctx.now);
    if (typeof claim === "string") return claimDenial(claim);
    return claim.then(claimDenial, () => deny("REPLAY_CAPACITY", "nonce store unavailable"));
  }

  // --- stage 8 ------------------------------------------------------------------------------
  private authorize(ctx: RequestContext): Denial | undefined {
    const permission = ctx.route?.permission;
    if (permission === undefined || permission === null || ctx.key === null) return deny("INTERNAL", "authorize before key");
    return ctx.key.permissions.has(permission) ? undefined : deny("SCOPE_MISSING", `needs ${permission}`);
  }
}

function claimDenial(claim: "fresh" | "replayed" | "full"): Denial | undefined {
  if (claim === "fresh") return undefined;
  return claim === "replayed" ? deny("NONCE_REPLAYED") : deny("REPLAY_CAPACITY");
}
