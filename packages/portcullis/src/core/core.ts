import { createHash } from "node:crypto";
import { AuditLog, type AuditSettings } from "../audit/log.js";
import { RouteTable, type RouteSpec } from "../authz/routes.js";
import type { Envelope } from "../custody/envelope.js";
import type { HpkeKeyring } from "../custody/hpke.js";
import { EnvelopeSigningKeys } from "../custody/signing.js";
import type { SigningKeyProvider } from "../contract/signing.js";
import { KeyCache } from "../keys/cache.js";
import type { Environment } from "../contract/ids.js";
import { DEFAULT_IDLE_EXPIRY_MS, DEFAULT_WINDOW_MS, type Dialect } from "../contract/keys.js";
import { type KeyMaterial, KeyService } from "../keys/service.js";
import { LAST_USED_FLUSH_MS, LastUsedRecorder } from "../keys/usage.js";
import { type Logger, silentLogger } from "../log/logger.js";
import { ClientAddressResolver } from "../net/client-address.js";
import type { PipelineRequest, RequestContext, AuthScheme } from "../contract/request.js";
import { Pipeline, type DecisionStats, type PipelineMetrics, type PipelineOptions } from "../pipeline/pipeline.js";
import { createSchemes } from "../dialects/registry.js";
import { LimitPlan } from "../limits/plan.js";
import { Shield } from "../limits/shield.js";
import { DEFAULT_SHIELD_POLICY, type ShieldPolicy } from "../limits/types.js";
import type { LimitSpec } from "../contract/limits.js";
import { MemoryHotStore } from "../storage/memory/hot.js";
import { SequenceReservations } from "../replay/reservations.js";
import type { BusMessage, ChangeBus, DurableStore, HotStore, StoreAvailability } from "../storage/types.js";
import { SessionAuthority } from "../sessions/authority.js";
import type { SessionClaims } from "../contract/sessions.js";
import type { ReferencePrices } from "../contract/prices.js";
import { BehaviourEngine } from "../anomaly/engine.js";
import { AnomalyResponder } from "../anomaly/responder.js";
import { type BehaviourSettings, liquidityOf } from "../anomaly/responses.js";
import type { AlertSink } from "../anomaly/webhook.js";
import { BehaviourModel } from "../behaviour/model.js";
import type { BehaviourStateStore } from "../storage/types.js";

/** How long keys cached before an outage of the durable store keep verifying, by default (ms). */
export const DEFAULT_OUTAGE_GRACE_MS = 60_000;

/** What `Portcullis.watch` reports. */
export type CoreEvent =
  | { readonly kind: "keys"; readonly ids: readonly string[] }
  | { readonly kind: "session-ended"; readonly sessionId: string; readonly keyId: string };

export interface LimitsOptions {
  readonly specs: readonly LimitSpec[];
  readonly shield?: ShieldPolicy;
  /** Requests one key may have in flight in this process (0: no cap). */
  readonly maxConcurrentPerKey?: number;
  /**
   * The prefix length IPv6 clients are grouped by in every per-address limit, ban and block
   * (32 to 128; default 64: one subscriber's /64 is one client).
   */
  readonly ipv6Prefix?: number;
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
  /**
   * Keys that may trade or withdraw from any address stop after this long unused (contract/keys.ts
   * `idleExpiresAt`); null: never. Default 90 days.
   */
  readonly idleExpiryMs?: number | null;
  readonly futureSkewMs?: number;
  readonly trustedProxies?: readonly string[];
  /** The header a trusted proxy passes the client certificate in (URL-encoded PEM, docs/tls.md), lower case; absent: none. */
  readonly clientCertHeader?: string | null;
  readonly authorities?: readonly string[];
  readonly scheme?: "http" | "https";
  /** Record per-stage timings (Server-Timing). */
  readonly timing?: boolean;
  readonly logger?: Logger;
  readonly now?: () => number;
  readonly keyCache?: { readonly freshMs?: number; readonly staleMs?: number; readonly negativeMs?: number };
  /**
   * While the durable store is out (PostgreSQL unreachable, docs/failures.md), keys cached before
   * the outage keep verifying for this long after its start (ms; 0: none do); a key not cached is
   * refused at once (KEY_STORE_UNAVAILABLE). The config's `store.outageGrace`. Default 60000.
   */
  readonly outageGraceMs?: number;
  /** Where outages are learnt (tests inject one). Default: the store's own (`store.availability`; SQLite has none). */
  readonly availability?: StoreAvailability | null;
  /**
   * Session logon and session-signed requests (SessionAuthority.open builds one from the data
   * directory's keys). Without it, session tokens are refused.
   */
  readonly sessions?: SessionAuthority;
  /**
   * The bus to the deployment's other gateway processes (Redis pub/sub): key changes made here
   * and logouts are published, theirs received, so revocation reaches every process at once. Not
   * closed by the core. Without it, other processes learn of changes through the durable store's
   * change feed (polled).
   */
  readonly bus?: ChangeBus;
  /**
   * The audit log (docs/audit.md): which request decisions are recorded (default all), batching,
   * checkpoints; `signer` signs checkpoints (default: the envelope provider on this store).
   */
  readonly audit?: AuditSettings & { readonly signer?: SigningKeyProvider | null };
  /**
   * Reference prices (contract/prices.ts): what the guardrails measure a price band and a market
   * order's notional against (docs/guardrails.md), and what the policy values amounts in. Kept
   * current off the request path by whoever owns it (the runtime's refresher); never closed by
   * the core. Without it, a guardrail that needs a reference price refuses.
   */
  readonly prices?: ReferencePrices | null;
  /** The maxOpenNotional ledger's settings (docs/guardrails.md): reservation TTL, reservations per key. */
  readonly openOrders?: { readonly ttlMs?: number; readonly maxOpenOrders?: number };
  /**
   * Decision counts and sampled stage durations of every pipeline the core builds (the metrics of
   * docs/operations-endpoints.md); default none.
   */
  readonly metrics?: PipelineMetrics | null;
  /** The live statistics of every pipeline the core builds (the console's charts, docs/console-backend.md); default none. */
  readonly stats?: DecisionStats | null;
  /** Requests a minute of a key the behaviour stage throttled (docs/behaviour.md). Default 6, or the behaviour settings' throttle. */
  readonly throttlePerMinute?: number;
  /**
   * Stage 11 off the request path (docs/behaviour.md): every decided request is queued and scored
   * against its key's normal by the behaviour engine, and the responder acts on the scores by the
   * response policy. Absent or null: nothing is observed (the risk states keys already carry are
   * still checked on the request path).
   */
  readonly behaviour?: BehaviourOptions | null;
  /**
   * The gateway's HPKE keys (docs/sealed-orders.md): every pipeline the core builds opens sealed
   * requests with them. Absent or null: sealing is off (sealed requests are refused).
   */
  readonly sealing?: HpkeKeyring | null;
}

export interface BehaviourOptions {
  /** The response policy and the model's settings (the configuration's `behaviour` section). `enabled` false: responder only (operators can still undo). */
  readonly settings: BehaviourSettings;
  /** Where each key's and account's state lives. Default: the durable store's (SQLite); Redis shares it between processes. Not closed by the core. */
  readonly states?: BehaviourStateStore;
  /** Where alerts go (the RFC 9421-signed webhook); default none. Not closed by the core. */
  readonly alerts?: AlertSink | null;
  /** How long decisions wait to be scored together (ms). Default 250. */
  readonly flushMs?: number;
}

/** A pipeline's scope by default: a digest of what it decides and its routes (stable across processes). */
function pipelineScope(routes: RouteTable, decides: "requests" | "messages"): string {
  const hash = createHash("sha256").update(decides);
  for (const route of routes.routes) hash.update(`\n${route.id}`);
  return `${decides === "messages" ? "m" : "r"}${hash.digest("hex").slice(0, 16)}`;
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
  /** Issues and checks session tokens; null when sessions are not enabled. */
  readonly sessions: SessionAuthority | null;
  /** The audit log: request decisions (recorded by the gateway, admin API and middleware), checkpoints. */
  readonly audit: AuditLog;
  /** Reference prices (the guardrails', and the policy's asset values); null when none are configured. */
  readonly prices: ReferencePrices | null;
  /** The gateway's HPKE keys (docs/sealed-orders.md); null when sealing is off. */
  readonly sealing: HpkeKeyring | null;
  /** Outages of the durable store (docs/failures.md): `outageSince` is one field read; null for a store that cannot be out (SQLite). */
  readonly availability: StoreAvailability | null;
  private readonly store: DurableStore;
  private readonly usage: LastUsedRecorder;
  private unsubscribe: () => void;
  private readonly watchers = new Set<(event: CoreEvent) => void>();
  private readonly bus: ChangeBus | null;
  private readonly shared: Omit<PipelineOptions, "routes">;
  /** Stage 11's engine (docs/behaviour.md): scores every decided request off the request path; null when behaviour is off. */
  readonly behaviour: BehaviourEngine | null;
  /** The responder: acts on scores, and undoes actions for operators; null without behaviour options. */
  readonly anomalies: AnomalyResponder | null;

  constructor(options: PortcullisOptions) {
    const now = options.now ?? Date.now;
    this.logger = options.logger ?? silentLogger();
    this.store = options.store;
    this.routes = new RouteTable(options.routes);
    const idleExpiryMs = options.idleExpiryMs === undefined ? DEFAULT_IDLE_EXPIRY_MS : options.idleExpiryMs;
    this.keys = new KeyService({
      store: options.store,
      envelope: options.envelope,
      environment: options.environment,
      now,
      idleExpiryMs,
      ...(options.limits === undefined ? {} : { limitWindows: new Map(options.limits.specs.map((s) => [s.name, s.windowMs])) }),
    });
    // Each load timed for the metrics (a cache miss or refresh: never the common case).
    const storeCall = options.metrics?.storeCall ?? null;
    const load = (id: string): Promise<KeyMaterial | null> => this.keys.loadMaterial(id);
    this.cache = new KeyCache({
      load: storeCall === null ? load : timed(load, (ms, failed) => { storeCall("durable", "key_load", ms, failed); }),
      defaultWindowMs: options.windowMs ?? DEFAULT_WINDOW_MS,
      idleExpiryMs,
      now,
      ...options.keyCache,
      onRefreshError: (keyId, err) => {
        this.logger.warn({ keyId, err }, "key refresh failed; serving the cached copy");
      },
    });
    this.bus = options.bus ?? null;
    const unsubscribeStore = options.store.changes.subscribe((ids, local) => {
      this.keysChanged(ids);
      if (local) this.bus?.publish({ kind: "keys", ids });
    });
    const unsubscribeBus = this.bus?.subscribe((message) => {
      this.received(message);
    });
    this.unsubscribe = () => {
      unsubscribeStore();
      unsubscribeBus?.();
    };
    this.usage = new LastUsedRecorder(
      (batch) => this.keys.touch(batch),
      LAST_USED_FLUSH_MS,
      (err) => {
        this.logger.warn({ err }, "recording key last-use failed");
      },
    );
    this.usage.start();
    const policy = options.limits?.shield ?? DEFAULT_SHIELD_POLICY;
    // Replay state survives restarts (replay/claims.ts `fenced`, replay/reservations.ts): the
    // memory begins now, and increasing nonces are reserved in the durable store.
    const epochStart = now();
    this.hot =
      options.hot ??
      new MemoryHotStore({ policy, epochStart, reservations: new SequenceReservations(options.store.replay), served: options.store.meta, logouts: options.store.logouts });
    this.shield = new Shield(options.limits?.maxConcurrentPerKey ?? 0);
    const futureSkewMs = options.futureSkewMs ?? 1000;
    if (!Number.isInteger(futureSkewMs) || futureSkewMs < 0 || futureSkewMs > 60_000) {
      throw new TypeError("futureSkewMs must be an integer from 0 to 60000");
    }
    const scheme = options.scheme ?? "http";
    this.sessions = options.sessions ?? null;
    this.prices = options.prices ?? null;
    this.sealing = options.sealing ?? null;
    const behaviour = options.behaviour ?? null;
    let responder: AnomalyResponder | null = null;
    this.behaviour =
      behaviour === null || !behaviour.settings.enabled
        ? null
        : new BehaviourEngine({
            model: new BehaviourModel({ liquidity: liquidityOf(behaviour.settings) }),
            states: behaviour.states ?? options.store.behaviour,
            // The responder is built with the audit log, below; the engine calls it only later.
            respond: (score, ceiling) => (responder === null ? Promise.resolve(null) : responder.respond(score, ceiling)),
            prices: this.prices,
            addresses: options.store.addresses,
            logger: this.logger,
            ...(behaviour.flushMs === undefined ? {} : { flushMs: behaviour.flushMs }),
          });
    const throttlePerMinute = options.throttlePerMinute ?? behaviour?.settings.throttle.perMinute;
    const availability = options.availability === undefined ? (options.store.availability ?? null) : options.availability;
    this.availability = availability;
    this.shared = {
      keys: this.cache,
      storeOutage: availability === null ? null : { availability, graceMs: options.outageGraceMs ?? DEFAULT_OUTAGE_GRACE_MS },
      schemes: createSchemes({ scheme, futureSkewMs }),
      hot: this.hot,
      fallbackHot:
        this.hot.kind === "memory" ? null : new MemoryHotStore({ policy, epochStart, reservations: new SequenceReservations(options.store.replay), logouts: options.store.logouts }),
      limits: new LimitPlan(options.limits?.specs ?? []),
      shield: this.shield,
      blockOnAuthFailures: options.limits !== undefined,
      clientAddress: new ClientAddressResolver(options.trustedProxies ?? [], options.limits?.ipv6Prefix, options.clientCertHeader ?? null),
      environment: options.environment,
      scheme,
      authorities: options.authorities,
      timing: options.timing ?? false,
      now,
      onKeyUsed: (id, at) => {
        this.usage.record(id, at);
      },
      sessions: this.sessions,
      prices: this.prices,
      openOrders: { ...options.openOrders, logger: this.logger },
      ...(throttlePerMinute === undefined ? {} : { throttlePerMinute }),
      observe: this.behaviour?.observe ?? null,
      metrics: options.metrics ?? null,
      stats: options.stats ?? null,
      sealing: options.sealing ?? null,
    };
    this.pipeline = this.createPipeline(this.routes);
    const signer = options.audit?.signer;
    this.audit = new AuditLog({
      ...options.audit,
      store: options.store.decisions ?? options.store.audit,
      signer: signer === undefined ? new EnvelopeSigningKeys(options.store.meta, options.envelope) : signer,
      logger: this.logger,
      now,
      stageNames: this.pipeline.stageNames,
      ...(storeCall === null ? {} : { onStoreCall: (ms: number, failed: boolean) => { storeCall("durable", "audit_append", ms, failed); } }),
    });
    // The audit log learns of the store's outages from the store: it spills at once while the
    // store is out, and replays the moment it is back (docs/failures.md).
    const unwatchStore = availability?.watch((since) => {
      if (since === null) this.audit.storeAvailable();
      else this.audit.storeUnavailable();
    });
    if (availability !== null && availability.outageSince !== null) this.audit.storeUnavailable();
    const unsubscribeFeeds = this.unsubscribe;
    this.unsubscribe = () => {
      unsubscribeFeeds();
      unwatchStore?.();
    };
    this.anomalies =
      behaviour === null ? null : new AnomalyResponder({ settings: behaviour.settings, keys: this.keys, store: options.store.anomalies, audit: this.audit, alerts: behaviour.alerts ?? null, logger: this.logger, now });
    responder = this.anomalies;
  }

  /**
   * A pipeline over another route table that shares this core's keys, cache and replay state
   * (the admin API uses one, so a nonce spent on the gateway cannot be replayed on it).
   * `decides: "messages"`: a pipeline for WebSocket messages (PipelineOptions.decides).
   *
   * Its `scope` (PipelineOptions.scope) is its own: failures against a key on one pipeline never
   * block the key on another (failures at the gateway never lock operators out of the admin API).
   * By default it is named after the route table, so every process of a deployment names it alike.
   */
  createPipeline(routes: RouteTable, decides: "requests" | "messages" = "requests", scope?: string): Pipeline {
    const named = scope ?? (routes === this.routes && decides === "requests" ? "gateway" : pipelineScope(routes, decides));
    return new Pipeline({ ...this.shared, routes, decides, scope: named });
  }

  /** The signing schemes spoken (the native one at least), by name: the pipelines' own instances. */
  get schemes(): ReadonlyMap<Dialect, AuthScheme> {
    return this.shared.schemes;
  }

  /**
   * Calls `listener` on every change that can end what a key or a session may do: keys changed
   * (in this process or, through the durable store's change feed, another), a session logged out.
   * Long-lived connections (WebSockets) use it to close at once. Returns an unsubscribe.
   */
  watch(listener: (event: CoreEvent) => void): () => void {
    this.watchers.add(listener);
    return () => {
      this.watchers.delete(listener);
    };
  }

  private emit(event: CoreEvent): void {
    for (const listener of this.watchers) {
      try {
        listener(event);
      } catch (err) {
        this.logger.warn({ err }, "a change listener failed");
      }
    }
  }

  private keysChanged(ids: readonly string[]): void {
    this.cache.evict(ids);
    this.emit({ kind: "keys", ids });
  }

  /** Another gateway process changed something. */
  private received(message: BusMessage): void {
    switch (message.kind) {
      case "keys":
        this.keysChanged(message.ids);
        return;
      case "session-ended":
        this.sessions?.forgetSession(message.sessionId);
        this.emit(message);
        return;
      case "resync":
        // Messages may have been missed: every cached key is loaded again.
        this.keysChanged(this.cache.cachedIds());
        return;
    }
  }

  /**
   * Logout: the session is refused from now on by every gateway sharing the hot store (until it
   * would have expired anyway), and forgotten here. Recorded in the durable store first, so a
   * restart of the hot state does not bring it back. Rejects when either cannot record it.
   */
  async endSession(session: SessionClaims, token: string, now: number): Promise<void> {
    if (this.sessions === null) throw new TypeError("sessions are not enabled");
    const until = SessionAuthority.revokeUntil(session);
    await this.store.logouts.endSession(session.sid, until, now);
    await this.hot.revokeSession(session.sid, until, now);
    this.sessions.forget(token);
    const event = { kind: "session-ended", sessionId: session.sid, keyId: session.key } as const;
    this.emit(event);
    this.bus?.publish(event);
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
    // What is queued is scored and answered before the audit log closes.
    await this.behaviour?.close();
    await this.usage.stop();
    await this.audit.close();
    await this.store.close();
    await this.hot.close();
  }
}

/** `fn` with each call's duration (ms) and outcome reported to `report`. */
function timed<A, R>(fn: (arg: A) => Promise<R>, report: (ms: number, failed: boolean) => void): (arg: A) => Promise<R> {
  return async (arg) => {
    const started = performance.now();
    try {
      const result = await fn(arg);
      report(performance.now() - started, false);
      return result;
    } catch (err) {
      report(performance.now() - started, true);
      throw err;
    }
  };
}
