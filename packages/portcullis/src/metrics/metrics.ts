import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { AuditSurface } from "../audit/events.js";
import type { AuditStats } from "../audit/log.js";
import type { CheckResult, Readiness, ReadinessCheck } from "../core/readiness.js";
import type { KeyCacheStats } from "../keys/cache.js";
import type { PipelineMetrics } from "../pipeline/pipeline.js";

/**
 * Portcullis's Prometheus metrics (docs/operations-endpoints.md), served as text by the admin
 * API's `GET /metrics`. One registry per running Portcullis (no global state: tests and embedded
 * uses may run several).
 *
 * The request path pays one counter increment per decision — two Map lookups and `n++` on a
 * plain object; no label objects, no strings built — and, for one request in `sampleEvery`, the
 * stage durations (a clock read per stage, one small array). Everything else is read when
 * Prometheus scrapes: the counters' `collect` copies the plain counts into prom-client, the
 * gauges read the key cache's and the audit log's statistics, and the readiness checks (cached
 * and shared, core/readiness.ts) time the dependencies.
 */

export interface MetricsOptions {
  /** One request in this many has its stages timed for the stage latency histogram. Default 64; 0: none. */
  readonly sampleEvery?: number;
  /** Adds prom-client's default process metrics (CPU, memory, event loop lag, GC…). Default true. */
  readonly processMetrics?: boolean;
}

/** What the metrics read at scrape time. */
export interface MetricSources {
  readonly keyCache: { readonly stats: KeyCacheStats; readonly size: number };
  readonly audit: { readonly stats: AuditStats };
  /** Run (cached) at every scrape: the dependencies' latency and state. */
  readonly readiness?: Readiness | null;
  readonly now?: () => number;
}

/** A count that the request path increments (a plain field; prom-client reads it at scrape time). */
interface Cell {
  n: number;
}

const STAGE_BUCKETS = [0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
const CHECK_BUCKETS = [0.000_1, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export class PortcullisMetrics implements PipelineMetrics {
  readonly registry = new Registry();
  readonly sampleEvery: number;
  /** surface → code → count. */
  private readonly decisions = new Map<string, Map<string, Cell>>();
  private readonly stageSeconds: Histogram<"stage">;
  private readonly stageChildren = new Map<string, Histogram.Internal<"stage">>();
  private readonly checkSeconds: Histogram<"check">;
  private readonly checkUp: Gauge<"check">;
  private readonly checkFailures: Counter<"check" | "code">;
  private readonly storeSeconds: Histogram<"store" | "operation">;
  private readonly storeErrors: Counter<"store" | "operation">;
  /** "store/operation" → its histogram child, so a call builds no label object. */
  private readonly storeChildren = new Map<string, Histogram.Internal<"store" | "operation">>();
  private sources: MetricSources | null = null;

  constructor(options: MetricsOptions = {}) {
    const every = options.sampleEvery ?? 64;
    if (!Number.isSafeInteger(every) || every < 0) throw new TypeError("metrics sampleEvery must be a non-negative integer");
    this.sampleEvery = every;
    const registers = [this.registry];
    const decisions = this.decisions;
    new Counter({
      name: "portcullis_decisions_total",
      help: 'Requests decided, by surface and code: the refusal\'s code, a failed hand on\'s (UPSTREAM_UNAVAILABLE…), "HELD" (stage 10 held it) or "OK".',
      labelNames: ["surface", "code"] as const,
      registers,
      collect() {
        this.reset();
        for (const [surface, codes] of decisions) for (const [code, cell] of codes) this.inc({ surface, code }, cell.n);
      },
    });
    this.stageSeconds = new Histogram({
      name: "portcullis_stage_duration_seconds",
      help: `Time spent in each pipeline stage, in seconds, sampled: ${every === 0 ? "sampling is off" : `one request in ${every}`} is timed (the others pay no clock read).`,
      labelNames: ["stage"] as const,
      buckets: STAGE_BUCKETS,
      registers,
    });
    // Inside `collect`, `this` is the metric: the sources are reached through this arrow.
    const sourcesOf = (): MetricSources | null => this.sources;
    new Gauge({
      name: "portcullis_key_cache_entries",
      help: "Keys (and unknown ids, negatively cached) held by the key cache.",
      registers,
      collect() {
        const s = sourcesOf();
        if (s !== null) this.set(s.keyCache.size);
      },
    });
    new Counter({
      name: "portcullis_key_cache_lookups_total",
      help: 'Key cache lookups by result: "hit" (fresh), "stale" (served while refreshed), "negative" (a known-unknown id), "miss" (read from the durable store). Hit rate: (hit+stale+negative)/all.',
      labelNames: ["result"] as const,
      registers,
      collect() {
        const s = sourcesOf();
        if (s === null) return;
        const st = s.keyCache.stats;
        this.reset();
        this.inc({ result: "hit" }, st.hits);
        this.inc({ result: "stale" }, st.staleHits);
        this.inc({ result: "negative" }, st.negativeHits);
        this.inc({ result: "miss" }, st.misses);
      },
    });
    new Counter({
      name: "portcullis_key_cache_loads_total",
      help: "Key reads from the durable store by the key cache (misses and refreshes, de-duplicated).",
      registers,
      collect() {
        const s = sourcesOf();
        if (s === null) return;
        this.reset();
        this.inc(s.keyCache.stats.loads);
      },
    });
    new Counter({
      name: "portcullis_audit_entries_total",
      help: 'Audit log decision entries by what became of them: "recorded", "committed" (to the store), "spilled" (to a spill file), "replayed" (spill to store), "dropped" (lost).',
      labelNames: ["result"] as const,
      registers,
      collect() {
        const s = sourcesOf();
        if (s === null) return;
        const st = s.audit.stats;
        this.reset();
        this.inc({ result: "recorded" }, st.recorded);
        this.inc({ result: "committed" }, st.committed);
        this.inc({ result: "spilled" }, st.spilled);
        this.inc({ result: "replayed" }, st.replayed);
        this.inc({ result: "dropped" }, st.dropped);
      },
    });
    new Gauge({
      name: "portcullis_audit_entries_buffered",
      help: "Audit entries waiting in memory for the next group commit (not yet acknowledged).",
      registers,
      collect() {
        const s = sourcesOf();
        if (s !== null) this.set(s.audit.stats.buffered);
      },
    });
    new Gauge({
      name: "portcullis_audit_oldest_pending_seconds",
      help: "Age of the oldest audit entry not yet acknowledged by the store or a spill file, in seconds (0: none pending).",
      registers,
      collect() {
        const s = sourcesOf();
        if (s === null) return;
        const oldest = s.audit.stats.oldestPendingAt;
        this.set(oldest === null ? 0 : Math.max(0, ((s.now ?? Date.now)() - oldest) / 1000));
      },
    });
    this.checkSeconds = new Histogram({
      name: "portcullis_dependency_check_duration_seconds",
      help: "Duration of the readiness checks (durable store read, hot store PING, audit lag, custody), run at most once a second by /metrics and /portcullis/v1/readyz.",
      labelNames: ["check"] as const,
      buckets: CHECK_BUCKETS,
      registers,
    });
    this.checkUp = new Gauge({
      name: "portcullis_dependency_up",
      help: "1 when the dependency answered its last readiness check, else 0.",
      labelNames: ["check"] as const,
      registers,
      collect: async () => {
        await sourcesOf()?.readiness?.check();
      },
    });
    this.checkFailures = new Counter({
      name: "portcullis_dependency_check_failures_total",
      help: "Readiness checks that failed or timed out, by check and code.",
      labelNames: ["check", "code"] as const,
      registers,
    });
    this.storeSeconds = new Histogram({
      name: "portcullis_store_operation_duration_seconds",
      help: 'Duration of the stores\' operations: store "durable" (SQLite or PostgreSQL) operation "key_load" (a key cache miss or refresh) and "audit_append" (a group commit of the audit log); store "hot" (memory or Redis) operation "admit" (the admission stage: replay claim and limits in one round trip), sampled with the stage durations.',
      labelNames: ["store", "operation"] as const,
      buckets: STAGE_BUCKETS,
      registers,
    });
    this.storeErrors = new Counter({
      name: "portcullis_store_errors_total",
      help: 'Store operations that failed, by store and operation (as in portcullis_store_operation_duration_seconds): a durable key load or audit append that threw, a hot-store admission that could not be answered (the request then failed closed, HOT_STORE_UNAVAILABLE, or was served by the local stand-in on a degradable route).',
      labelNames: ["store", "operation"] as const,
      registers,
    });
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** A store operation's duration (ms) and whether it failed. Off the request path's common case: key loads, group commits. */
  readonly storeCall = (store: "durable" | "hot", operation: string, ms: number, failed: boolean): void => {
    const name = `${store}/${operation}`;
    let child = this.storeChildren.get(name);
    if (child === undefined) {
      child = this.storeSeconds.labels(store, operation);
      this.storeChildren.set(name, child);
    }
    child.observe(ms / 1000);
    if (failed) this.storeErrors.labels(store, operation).inc();
  };

  /** PipelineMetrics: the hot store could not answer an admission. */
  hotStoreFailed(): void {
    this.storeErrors.labels("hot", "admit").inc();
  }

  /** Where the scrape-time metrics read from (the running core); call once, after it is built. */
  watch(sources: MetricSources): void {
    this.sources = sources;
  }

  /** PipelineMetrics: one decision. */
  decided(surface: AuditSurface, code: string): void {
    let codes = this.decisions.get(surface);
    if (codes === undefined) {
      codes = new Map();
      this.decisions.set(surface, codes);
    }
    const cell = codes.get(code);
    if (cell === undefined) codes.set(code, { n: 1 });
    else cell.n++;
  }

  /** PipelineMetrics: a sampled request's stage durations (ms). */
  sampled(stageNames: readonly string[], durations: readonly number[]): void {
    for (let i = 0; i < durations.length; i++) {
      const ms = durations[i] as number;
      if (Number.isNaN(ms)) continue;
      const name = stageNames[i] ?? String(i);
      let child = this.stageChildren.get(name);
      if (child === undefined) {
        child = this.stageSeconds.labels(name);
        this.stageChildren.set(name, child);
      }
      child.observe(ms / 1000);
      // The admission stage is the hot store's round trip (its limit arithmetic is a microsecond).
      if (name === "admit") this.storeCall("hot", "admit", ms, false);
    }
  }

  /** A readiness check's result (Readiness's `onCheck`). */
  readonly checked = (check: ReadinessCheck, result: CheckResult): void => {
    this.checkSeconds.labels(check).observe(result.ms / 1000);
    this.checkUp.labels(check).set(result.status === "ok" ? 1 : 0);
    if (result.code !== undefined) this.checkFailures.labels(check, result.code).inc();
  };

  /** The exposition text (Prometheus text format 0.0.4). */
  render(): Promise<string> {
    return this.registry.metrics();
  }
}
