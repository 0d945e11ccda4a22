import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { RouteTable } from "../authz/routes.js";
import { type AuthScheme, type PipelineRequest, RequestContext } from "../contract/request.js";
import type { Denial } from "../errors/catalogue.js";
import type { KeyCache } from "../keys/cache.js";
import type { Environment } from "../contract/ids.js";
import type { Dialect, KeyRecord } from "../contract/keys.js";
import type { ReferencePrices } from "../contract/prices.js";
import type { BehaviourEvent } from "../contract/behaviour.js";
import type { AuditSurface } from "../audit/events.js";
import type { LimitPlan } from "../limits/plan.js";
import type { Shield } from "../limits/shield.js";
import type { ClientAddressResolver } from "../net/client-address.js";
import type { FallbackHotStore, HotStore } from "../storage/types.js";
import type { SessionAuthority } from "../sessions/authority.js";
import { addressStage } from "./stages/address.js";
import { type AdmissionStage, DEFAULT_THROTTLE_PER_MINUTE, admissionStage } from "./stages/admission.js";
import { authorizeStage } from "./stages/authorize.js";
import { credentialStage } from "./stages/credentials.js";
import { type FailureRecorder, failureRecorder } from "./stages/failures.js";
import { type StoreOutagePolicy, keyStage } from "./stages/key.js";
import { messageCredentialStage, messageRouteStage } from "./stages/message.js";
import { behaviourStage } from "./stages/behaviour.js";
import { guardrailStage } from "./stages/guardrails.js";
import { operationStage } from "./stages/operation.js";
import { freshnessStage, signatureStage } from "./stages/proof.js";
import { routeStage } from "./stages/route.js";
import { shieldStage } from "./stages/shield.js";
import { looksSealed, unsealStage } from "./stages/unseal.js";
import type { HpkeKeyring } from "../custody/hpke.js";
import type { Stage } from "./stages/stage.js";
import { OpenNotional } from "./open-notional.js";
import type { Logger } from "../log/logger.js";

export interface PipelineOptions {
  readonly routes: RouteTable;
  readonly keys: KeyCache;
  /** Keys while the durable store is out (docs/failures.md); null or absent: it cannot be (SQLite). */
  readonly storeOutage?: StoreOutagePolicy | null;
  /** The signing schemes spoken (the native one at least), by name. */
  readonly schemes: ReadonlyMap<Dialect, AuthScheme>;
  /** Replay state, limits, bans: memory, or Redis shared by many gateways. */
  readonly hot: HotStore;
  /**
   * Local stand-in for routes marked degradable when `hot` cannot answer (Redis down); every
   * other route then fails closed. Null: everything fails closed.
   */
  readonly fallbackHot?: FallbackHotStore | null;
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
  /**
   * What the pipeline decides: HTTP requests (the default), or messages on long-lived connections
   * (WebSocket), whose surface sets each message's client, route and credential on the context
   * (stages/message.ts); the other stages are the same modules. `routes` is then unused.
   */
  readonly decides?: "requests" | "messages";
  /**
   * The surface this pipeline decides for, as failure blocks of a key count it: a key blocked
   * after failures on one surface (the gateway) is not blocked on another (the admin API). Stable
   * across the processes of a deployment (the hot store counts under it). Default "gateway".
   */
  readonly scope?: string;
  /**
   * Reference prices for the guardrails (docs/guardrails.md): the price band and a market
   * order's notional. Null or absent: none, and a guardrail that needs one refuses.
   */
  readonly prices?: ReferencePrices | null;
  /**
   * Requests a minute of a key the behaviour stage throttled (`KeyRisk` throttle), charged as one
   * more limit of the key, shared like every limit by the hot store. Default 6.
   */
  readonly throttlePerMinute?: number;
  /**
   * Stage 11's observer (docs/behaviour.md): every decided request, with how it ended, after its
   * audit entry. It must only queue (the behaviour engine scores off the request path).
   */
  readonly observe?: DecisionObserver | null;
  /** Decision counts and sampled stage durations for the metrics (docs/operations-endpoints.md); null: none. */
  readonly metrics?: PipelineMetrics | null;
  /** The live statistics the console charts (metrics/live-stats.ts); null: none. */
  readonly stats?: DecisionStats | null;
  /**
   * The gateway's HPKE keys (docs/sealed-orders.md): sealed requests are opened by the unseal
   * stage. Null or absent: sealing is off, and a sealed request is refused SEALED_NOT_SUPPORTED.
   */
  readonly sealing?: HpkeKeyring | null;
  /**
   * The maxOpenNotional guardrail's ledger settings (docs/guardrails.md, "Open notional"): how
   * long a reservation lives, how many a key may hold, and where settlement failures are logged.
   * The ledger itself is the hot store's (`hot.openOrders`).
   */
  readonly openOrders?: { readonly ttlMs?: number; readonly maxOpenOrders?: number; readonly logger?: Logger | null } | null;
}

/**
 * The live statistics (the console's Overview, docs/console-backend.md): told of every decision
 * with the key it was made for (a session's: its API key; null before a key was found) and the
 * request's time. Called on the request path, once per decision: it must only count.
 */
export interface DecisionStats {
  /** `code`: the refusal's code, a failed hand on's, "HELD", or "OK". */
  decided(surface: AuditSurface, code: string, key: KeyRecord | null, at: number): void;
}

/**
 * What the pipeline tells the metrics. Called on the request path: `decided` once per decision
 * (it must only count), `sampled` for one request in `sampleEvery` with its stage durations.
 */
export interface PipelineMetrics {
  /** One request in this many has its stages timed for `sampled` (0: none). */
  readonly sampleEvery: number;
  /** A decision on `surface`: the refusal's code, a failed hand on's, "HELD", or "OK". */
  decided(surface: AuditSurface, code: string): void;
  /** A sampled request's stage durations in ms, by index of `stageNames` (NaN: the stage did not run). */
  sampled(stageNames: readonly string[], durations: readonly number[]): void;
  /** The hot store could not answer an admission (the request failed closed or went to the local stand-in). */
  hotStoreFailed?(): void;
  /** A durable store operation of the core (a key load, an audit group commit): its duration in ms and whether it failed. */
  readonly storeCall?: (store: "durable" | "hot", operation: string, ms: number, failed: boolean) => void;
}

/** How a decided request ended, for the behaviour stage. */
export type DecisionEnd = BehaviourEvent["outcome"];

/** Receives every decided request; called on the request path, so it must only queue. */
export type DecisionObserver = (ctx: RequestContext, end: DecisionEnd) => void;

/**
 * The request pipeline (DESIGN.md): an ordered list of small stages, cheapest first. Each stage
 * returns nothing to continue or a denial to stop; a denial is a value, never an exception.
 *
 * 1 client address, 2 shield (bans and blocks already known here), routing, 3 credentials, 4 key,
 * 5 freshness, 6 signature, 8 authorization, the operation (what the request does, decoded on a
 * route that declares one: docs/operations.md) and the key's guardrails against it
 * (docs/guardrails.md), both skipped on every other route, then admission: 7 replay
 * and 9 limits decided together by the hot store, all or nothing, so nothing is consumed by a
 * request refused earlier and a request refused by any limit records nothing (one Redis round
 * trip per request). A public
 * route skips from routing to admission (it is charged against the address's limits). Stages 3,
 * 5, 6 and 7's claim belong to the request's signing scheme (native, or an exchange dialect).
 */
export class Pipeline {
  private readonly stages: readonly Stage[];
  /** The pipeline's clock (epoch ms): every time check of a request uses it. */
  readonly now: () => number;
  private readonly credentialHeaderSet: ReadonlySet<string>;
  private readonly timing: boolean;
  private readonly onKeyUsed: ((keyId: string, at: number) => void) | null;
  private readonly admission: AdmissionStage;
  /** Counts authentication failures toward blocks (every surface records through it). */
  readonly recordFailure: FailureRecorder;
  /** Index of routing, and of admission: a public route skips from one to the other. */
  private readonly routeStage: number;
  private readonly admitStage: number;
  /** Index of the signature stage: a refusal by a later stage came after a verified signature. */
  private readonly signatureStage: number;
  /** Index of the unseal stage: a route that declares no operation skips the two stages after it. */
  private readonly unsealStage: number;
  private readonly observer: DecisionObserver | null;
  private readonly metrics: PipelineMetrics | null;
  private readonly stats: DecisionStats | null;
  /** Requests left until the next one sampled for the stage metrics. */
  private sampleCountdown: number;
  private readonly names: readonly string[];
  /** The maxOpenNotional guardrail's lifecycle step (open-notional.ts): reserve, release, settle. */
  readonly openNotional: OpenNotional;

  constructor(options: PipelineOptions) {
    this.now = options.now ?? Date.now;
    const schemes = options.schemes;
    const native = schemes.get("native");
    if (native === undefined) throw new TypeError("the native scheme is required");
    // The client certificate a trusted proxy passes on (docs/tls.md) is the gateway's to decide, never the upstream's.
    const certHeader = options.clientAddress.clientCertHeader;
    this.credentialHeaderSet = new Set([...[...schemes.values()].flatMap((s) => s.credentialHeaders), ...(certHeader === null ? [] : [certHeader])]);
    this.timing = options.timing ?? false;
    this.onKeyUsed = options.onKeyUsed ?? null;
    const scope = options.scope ?? "gateway";
    this.recordFailure = failureRecorder(options.hot, options.shield, options.blockOnAuthFailures ?? false, scope);
    this.admission = admissionStage({
      hot: options.hot,
      fallbackHot: options.fallbackHot ?? null,
      limits: options.limits,
      shield: options.shield,
      throttlePerMinute: options.throttlePerMinute ?? DEFAULT_THROTTLE_PER_MINUTE,
      onHotFailure: options.metrics?.hotStoreFailed?.bind(options.metrics) ?? null,
    });
    this.observer = options.observe ?? null;
    this.metrics = options.metrics ?? null;
    this.stats = options.stats ?? null;
    const every = this.metrics?.sampleEvery ?? 0;
    if (!Number.isSafeInteger(every) || every < 0) throw new TypeError("metrics.sampleEvery must be a non-negative integer");
    this.sampleCountdown = every;
    const messages = options.decides === "messages";
    const route = messages ? messageRouteStage() : routeStage({ routes: options.routes, schemes, scheme: options.scheme, authorities: options.authorities });
    const signature = signatureStage();
    const authorize = authorizeStage();
    const unseal = unsealStage(options.sealing ?? null);
    this.stages = [
      addressStage(options.clientAddress),
      shieldStage({ shield: options.shield, routes: options.routes, schemes }),
      route,
      messages ? messageCredentialStage(schemes) : credentialStage(native),
      keyStage({ keys: options.keys, environment: options.environment, sessions: options.sessions ?? null, shield: options.shield, scope, outage: options.storeOutage ?? null }),
      freshnessStage(),
      signature,
      authorize,
      unseal,
      operationStage(messages ? null : options.routes, messages),
      guardrailStage(options.prices ?? null),
      behaviourStage(),
      this.admission,
    ];
    this.routeStage = this.stages.indexOf(route);
    this.admitStage = this.stages.length - 1;
    this.signatureStage = this.stages.indexOf(signature);
    this.unsealStage = this.stages.indexOf(unseal);
    this.names = this.stages.map((s) => s.name);
    const open = options.openOrders ?? null;
    this.openNotional = new OpenNotional({
      ledger: options.hot.openOrders ?? null,
      prices: options.prices ?? null,
      ...(open?.ttlMs === undefined ? {} : { ttlMs: open.ttlMs }),
      ...(open?.maxOpenOrders === undefined ? {} : { maxOpenOrders: open.maxOpenOrders }),
      logger: open?.logger ?? null,
    });
  }

  /** Every scheme's credential headers, and the configured client-certificate header: never forwarded upstream. */
  get credentialHeaders(): ReadonlySet<string> {
    return this.credentialHeaderSet;
  }

  /** The stage names, in order (Server-Timing metric names). */
  get stageNames(): readonly string[] {
    return this.names;
  }

  /**
   * Runs every stage. The context comes back with `denial` set, or null when allowed. When every
   * stage answers synchronously (the embedded stores with a warm key cache) so does this: the
   * result is a context, not a promise, and no microtask is spent. Callers `await` it either way.
   */
  run(req: PipelineRequest, requestId: string = randomUUID()): RequestContext | Promise<RequestContext> {
    return this.decide(new RequestContext(req, requestId, this.now()));
  }

  /**
   * Runs every stage over a context the caller built (a surface that knows more than an HTTP
   * request carries, such as a WebSocket message's client, sets it first).
   */
  decide(ctx: RequestContext): RequestContext | Promise<RequestContext> {
    if (this.timing) ctx.timings = new Array<number>(this.stages.length).fill(Number.NaN);
    // One request in N is timed for the stage metrics (a countdown: no clock read, no allocation for the others).
    if (this.sampleCountdown > 0 && --this.sampleCountdown === 0) {
      this.sampleCountdown = this.metrics?.sampleEvery ?? 0;
      ctx.sample = new Array<number>(this.stages.length).fill(Number.NaN);
    }
    return this.continueFrom(ctx, 0, ctx.timings === null && ctx.sample === null ? 0 : performance.now());
  }

  private continueFrom(ctx: RequestContext, first: number, mark: number): RequestContext | Promise<RequestContext> {
    const stages = this.stages;
    for (let i = first; i < stages.length; i++) {
      const result = (stages[i] as Stage).run(ctx);
      if (result instanceof Promise) return this.resume(ctx, i, result, mark);
      mark = this.record(ctx, i, mark);
      if (result !== undefined) return this.refuse(ctx, result, i);
      if (i === this.signatureStage) ctx.verified = true;
      i = this.skip(ctx, i);
    }
    if (this.onKeyUsed !== null && ctx.key !== null) this.onKeyUsed(ctx.key.record.id, ctx.now);
    return ctx;
  }

  private async resume(ctx: RequestContext, i: number, pending: Promise<Denial | undefined>, mark: number): Promise<RequestContext> {
    const result = await pending;
    const next = this.record(ctx, i, mark);
    if (result !== undefined) return this.refuse(ctx, result, i);
    if (i === this.signatureStage) ctx.verified = true;
    return this.continueFrom(ctx, this.skip(ctx, i) + 1, next);
  }

  /**
   * The stage to go on after (the loop adds one): a public route goes from routing straight to
   * admission (its address's limits), unless the request says it is sealed (then to the unseal
   * stage, which refuses it: nothing would open it); a route that declares no operation skips
   * the operation and guard stages (one check: `route.operation === null`).
   */
  private skip(ctx: RequestContext, i: number): number {
    if (i === this.routeStage) {
      if (ctx.route !== null && ctx.route.permission === null) return looksSealed(ctx) ? this.unsealStage - 1 : this.admitStage - 1;
    } else if (i === this.unsealStage) {
      if (ctx.route !== null && ctx.route.operation === null) return i + 2;
    }
    return i;
  }

  /** `stage` refused: the failure is counted (a stage after the signature's refused a verified request). */
  private refuse(ctx: RequestContext, denial: Denial, stage: number): RequestContext {
    ctx.denial = denial;
    if (ctx.client !== null) {
      const verified = stage > this.signatureStage && ctx.credential !== null;
      this.recordFailure(denial.code, ctx.client.group, ctx.key?.record.id ?? null, verified, ctx.now);
    }
    return ctx;
  }

  private record(ctx: RequestContext, stage: number, mark: number): number {
    const timings = ctx.timings;
    const sample = ctx.sample;
    if (timings === null && sample === null) return mark;
    const t = performance.now();
    if (timings !== null) timings[stage] = t - mark;
    if (sample !== null) sample[stage] = t - mark;
    return t;
  }

  /**
   * Hands a decided request to stage 11's observer and counts it for the metrics (the lifecycle
   * calls it once, after the audit entry).
   */
  observe(ctx: RequestContext, end: DecisionEnd, surface: AuditSurface): void {
    this.observer?.(ctx, end);
    const metrics = this.metrics;
    const stats = this.stats;
    if (metrics === null && stats === null) return;
    const code = ctx.denial?.code ?? ctx.outcome ?? (end === "held" ? "HELD" : "OK");
    if (stats !== null) stats.decided(surface, code, ctx.key?.record ?? null, ctx.now);
    if (metrics === null) return;
    metrics.decided(surface, code);
    if (ctx.sample !== null) metrics.sampled(this.names, ctx.sample);
  }

  /** Releases the request's concurrency slot; the lifecycle calls it once the answer is over. */
  finish(ctx: RequestContext): void {
    this.admission.finish(ctx);
  }
}
