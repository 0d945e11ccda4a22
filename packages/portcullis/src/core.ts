import { AuditLog, type AuditSettings } from "./audit/log.js";
import { RouteTable, type RouteSpec } from "./authz/routes.js";
import type { Envelope } from "./custody/envelope.js";
import { EnvelopeSigningKeys, type SigningKeyProvider } from "./custody/signing.js";
import { KeyCache } from "./keys/cache.js";
import type { Environment } from "./keys/ids.js";
import { DEFAULT_WINDOW_MS } from "./keys/model.js";
import { KeyService } from "./keys/service.js";
import { LastUsedRecorder } from "./keys/usage.js";
import { type Logger, silentLogger } from "./log/logger.js";
import { ClientAddressResolver } from "./net/client-address.js";
import type { PipelineRequest, RequestContext } from "./pipeline/context.js";
import { Pipeline, type PipelineOptions } from "./pipeline/pipeline.js";
import { createSchemes } from "./dialects/registry.js";
import { LimitPlan } from "./limits/plan.js";
import { Shield } from "./limits/shield.js";
import { DEFAULT_SHIELD_POLICY, type LimitSpec, type ShieldPolicy } from "./limits/types.js";
import { MemoryHotStore } from "./storage/memory/hot.js";
import type { DurableStore, HotStore } from "./storage/types.js";

export interface LimitsOptions {
  readonly specs: readonly LimitSpec[];
  readonly shield?: ShieldPolicy;
  /** Requests one key may have in flight in this process (0: no cap). */
  readonly maxConcurrentPerKey?: number;
}

export interface PortcullisOptions {
  /** Durable state (keys). */
  readonly store: DurableStore;
  /** Encrypts stored secrets under the key-encryption key. */
  readonly envelope: Envelope;
  readonly environment: Environment;
  /** The route table: method + path pattern -> permission and weight. */
  readonly routes: readonly RouteSpec[];
  /**
   * Hot state (replay protection, limits, bans). Default: process memory. With a shared store
   * (Redis), a memory store stands in for degradable routes while it is unreachable. A store
   * given here escalates by its own shield policy: construct it with `limits.shield`.
   */
  readonly hot?: HotStore;
  /**
   * Limits, shields (bans after repeated 429s, blocks after repeated authentication failures) and
   * the concurrency cap. Default: none of them.
   */
  readonly limits?: LimitsOptions;
  /** Default freshness window for `created` (ms). Default 5000. */
  readonly windowMs?: number;
  readonly futureSkewMs?: number;
  readonly trustedProxies?: readonly string[];
  readonly authorities?: readonly string[];
  readonly scheme?: "http" | "https";
  /** Record per-stage timings (Server-Timing). */
  readonly timing?: boolean;
  readonly logger?: Logger;
  readonly now?: () => number;
  readonly keyCache?: { readonly freshMs?: number; readonly staleMs?: number; readonly negativeMs?: number };
  /**
   * The audit log (docs/audit.md): which request decisions are recorded (default all), batching,
   * checkpoints; `signer` signs checkpoints (default: the envelope provider on this store).
   */
  readonly audit?: AuditSettings & { readonly signer?: SigningKeyProvider | null };
}

/**
 * The core, assembled: key service, key cache kept coherent by the store's change feed, and the
 * pipeline. The gateway, the admin API and the embedded middleware are thin layers over this.
 */
export class Portcullis {
  readonly keys: KeyService;
  readonly cache: KeyCache;
  readonly pipeline: Pipeline;
  readonly routes: RouteTable;
  readonly logger: Logger;
  /** Replay state, limits and bans. */
  readonly hot: HotStore;
  /** Bans and blocks known in this process, and the concurrency cap. */
  readonly shield: Shield;
  /** The audit log: request decisions (recorded by the gateway, admin API and middleware), checkpoints. */
  readonly audit: AuditLog;
  private readonly store: DurableStore;
  private readonly usage: LastUsedRecorder;
  private readonly unsubscribe: () => void;
  private readonly shared: Omit<PipelineOptions, "routes">;

  constructor(options: PortcullisOptions) {
    const now = options.now ?? Date.now;
    this.logger = options.logger ?? silentLogger();
    this.store = options.store;
    this.routes = new RouteTable(options.routes);
    this.keys = new KeyService({
      store: options.store,
      envelope: options.envelope,
      environment: options.environment,
      now,
      ...(options.limits === undefined ? {} : { limitWindows: new Map(options.limits.specs.map((s) => [s.name, s.windowMs])) }),
    });
    this.cache = new KeyCache({
      load: (id) => this.keys.loadMaterial(id),
      defaultWindowMs: options.windowMs ?? DEFAULT_WINDOW_MS,
      now,
      ...options.keyCache,
      onRefreshError: (keyId, err) => {
        this.logger.warn({ keyId, err }, "key refresh failed; serving the cached copy");
      },
    });
    this.unsubscribe = options.store.changes.subscribe((ids) => {
      this.cache.evict(ids);
    });
    this.usage = new LastUsedRecorder(
      (batch) => this.keys.touch(batch),
      5_000,
      (err) => {
        this.logger.warn({ err }, "recording key last-use failed");
      },
    );
    this.usage.start();
    const policy = options.limits?.shield ?? DEFAULT_SHIELD_POLICY;
    this.hot = options.hot ?? new MemoryHotStore({ policy });
    this.shield = new Shield(options.limits?.maxConcurrentPerKey ?? 0);
    const futureSkewMs = options.futureSkewMs ?? 1000;
    if (!Number.isInteger(futureSkewMs) || futureSkewMs < 0 || futureSkewMs > 60_000) {
      throw new TypeError("futureSkewMs must be an integer from 0 to 60000");
    }
    const scheme = options.scheme ?? "http";
    this.shared = {
      keys: this.cache,
      schemes: createSchemes({ scheme, futureSkewMs }),
      hot: this.hot,
      fallbackHot: this.hot.kind === "memory" ? null : new MemoryHotStore({ policy }),
      limits: new LimitPlan(options.limits?.specs ?? []),
      shield: this.shield,
      blockOnAuthFailures: options.limits !== undefined,
      clientAddress: new ClientAddressResolver(options.trustedProxies ?? []),
      environment: options.environment,
      scheme,
      authorities: options.authorities,
      timing: options.timing ?? false,
      now,
      onKeyUsed: (id, at) => {
        this.usage.record(id, at);
      },
    };
    this.pipeline = this.createPipeline(this.routes);
    const signer = options.audit?.signer;
    this.audit = new AuditLog({
      ...options.audit,
      store: options.store.audit,
      signer: signer === undefined ? new EnvelopeSigningKeys(options.store.meta, options.envelope) : signer,
      logger: this.logger,
      now,
      stageNames: this.pipeline.stageNames,
    });
  }

  /**
   * A pipeline over another route table that shares this core's keys, cache and replay state
   * (the admin API uses one, so a nonce spent on the gateway cannot be replayed on it).
   */
  createPipeline(routes: RouteTable): Pipeline {
    return new Pipeline({ ...this.shared, routes });
  }

  /** Runs a request through every stage; `ctx.denial` is null when it is allowed. */
  verify(req: PipelineRequest, requestId?: string): RequestContext | Promise<RequestContext> {
    return this.pipeline.run(req, requestId);
  }

  /** Writes pending last-use times now (they are otherwise batched every few seconds). */
  flushUsage(): Promise<void> {
    return this.usage.flush();
  }

  async close(): Promise<void> {
    this.unsubscribe();
    await this.usage.stop();
    await this.audit.close();
    await this.store.close();
    await this.hot.close();
  }
}
