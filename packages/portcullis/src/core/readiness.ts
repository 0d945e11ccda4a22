import type { AuditStats } from "../audit/log.js";
import type { ErrorCode } from "../errors/catalogue.js";
import type { Logger } from "../log/logger.js";
import type { DurableStore, HotStore, StoreAvailability } from "../storage/types.js";

/**
 * Readiness (`GET /portcullis/v1/readyz`, docs/operations-endpoints.md): does every dependency of
 * this process answer? Four checks, each bounded by its own timeout:
 *
 * - `durable`: a trivial read of the durable store (a meta row); failed at once, without the
 *   read, while the store itself knows it is out (PostgreSQL's availability, docs/failures.md);
 * - `hot`: PING, when the hot store is Redis (process memory always answers);
 * - `audit`: no audit entry waits unacknowledged longer than `auditStuckMs` (neither the store
 *   nor the spill directory took it);
 * - `custody`: the custody provider lists its KEK versions (a PKCS#11 token answers).
 *
 * A report names each check, its status and, when it failed, a stable code from the catalogue;
 * never an error's message (that goes to the log, once per change of state). Checks run at most
 * once per `cacheMs`, and callers arriving meanwhile share the run in flight: a flood of readyz
 * requests costs the dependencies nothing more.
 */

export const READINESS_CHECKS = ["durable", "hot", "audit", "custody"] as const;
export type ReadinessCheck = (typeof READINESS_CHECKS)[number];

export interface CheckResult {
  readonly status: "ok" | "failed" | "timeout";
  /** Set when not ok: the check's own code, or CHECK_TIMED_OUT. */
  readonly code?: ErrorCode;
  /** How long the check took, in ms. */
  readonly ms: number;
}

export interface ReadinessReport {
  readonly ready: boolean;
  readonly checks: Readonly<Record<ReadinessCheck, CheckResult>>;
}

export interface ReadinessOptions {
  readonly store: DurableStore;
  /** The durable store's outages; default the store's own (`store.availability`; SQLite has none). */
  readonly availability?: StoreAvailability | null;
  readonly hot: HotStore;
  readonly audit: { readonly stats: AuditStats };
  /** The custody provider's KEK (anything that can list its versions); null: not checked. */
  readonly custody: { versions(): Promise<unknown> } | null;
  /** Each check's timeout, ms. Default 1000. */
  readonly timeoutMs?: number;
  /** An audit entry unacknowledged for longer than this makes the log stuck, ms. Default 10000. */
  readonly auditStuckMs?: number;
  /** How long a report is reused, ms. Default 1000. */
  readonly cacheMs?: number;
  readonly now?: () => number;
  readonly logger?: Logger;
  /** Every check's result as it completes (the metrics). */
  readonly onCheck?: (check: ReadinessCheck, result: CheckResult) => void;
}

const META_PROBE = "readiness:probe";

function positive(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < 1 || v > 600_000) throw new TypeError(`${name} must be an integer from 1 to 600000`);
  return v;
}

export class Readiness {
  private readonly options: ReadinessOptions;
  private readonly timeoutMs: number;
  private readonly auditStuckMs: number;
  private readonly cacheMs: number;
  private readonly now: () => number;
  private running: Promise<ReadinessReport> | null = null;
  private last: ReadinessReport | null = null;
  private lastAt = 0;
  /** Each check's last status, so a failure is logged once per change. */
  private readonly states = new Map<ReadinessCheck, CheckResult["status"]>();

  constructor(options: ReadinessOptions) {
    this.options = options;
    this.timeoutMs = positive("readiness timeoutMs", options.timeoutMs, 1000);
    this.auditStuckMs = positive("readiness auditStuckMs", options.auditStuckMs, 10_000);
    this.cacheMs = positive("readiness cacheMs", options.cacheMs, 1000);
    this.now = options.now ?? Date.now;
  }

  /** The latest report: reused within `cacheMs`, shared while a run is in flight. Never rejects. */
  check(): Promise<ReadinessReport> {
    if (this.running !== null) return this.running;
    if (this.last !== null && this.now() - this.lastAt < this.cacheMs) return Promise.resolve(this.last);
    this.running = this.run().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async run(): Promise<ReadinessReport> {
    const { store, hot, audit, custody } = this.options;
    const ping = hot.ping?.bind(hot);
    const availability = this.options.availability === undefined ? (store.availability ?? null) : this.options.availability;
    const [durable, hotResult, auditResult, custodyResult] = await Promise.all([
      this.probe("durable", "DURABLE_STORE_UNAVAILABLE", () => {
        const since = availability === null ? null : availability.outageSince;
        if (since !== null) return Promise.reject(new Error(`the durable store has been out since ${new Date(since).toISOString()}`));
        return store.meta.getMeta(META_PROBE);
      }),
      this.probe("hot", "HOT_STORE_UNAVAILABLE", ping === undefined ? null : ping),
      this.probe("audit", "AUDIT_LOG_STUCK", () => {
        const oldest = audit.stats.oldestPendingAt;
        if (oldest !== null && this.now() - oldest > this.auditStuckMs) throw new Error(`an audit entry has waited ${this.now() - oldest} ms for the store or the spill directory`);
        return Promise.resolve();
      }),
      this.probe("custody", "CUSTODY_UNAVAILABLE", custody === null ? null : () => custody.versions()),
    ]);
    const checks = { durable, hot: hotResult, audit: auditResult, custody: custodyResult };
    const report: ReadinessReport = { ready: READINESS_CHECKS.every((c) => checks[c].status === "ok"), checks };
    this.last = report;
    this.lastAt = this.now();
    return report;
  }

  private async probe(name: ReadinessCheck, code: ErrorCode, call: (() => Promise<unknown>) | null): Promise<CheckResult> {
    const started = performance.now();
    let result: CheckResult;
    if (call === null) {
      result = { status: "ok", ms: 0 };
    } else {
      let timer: NodeJS.Timeout | undefined;
      let reason = "";
      const timedOut = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => {
          resolve("timeout");
        }, this.timeoutMs);
        timer.unref();
      });
      let answered: Promise<"ok" | "failed">;
      try {
        answered = call().then(
          () => "ok" as const,
          (err: unknown) => {
            reason = err instanceof Error ? err.message : String(err);
            return "failed" as const;
          },
        );
      } catch (err) {
        reason = err instanceof Error ? err.message : String(err);
        answered = Promise.resolve("failed");
      }
      const status = await Promise.race([answered, timedOut]);
      clearTimeout(timer);
      const ms = Math.round((performance.now() - started) * 1000) / 1000;
      result = status === "ok" ? { status, ms } : { status, code: status === "timeout" ? "CHECK_TIMED_OUT" : code, ms };
      if (status !== "ok" && this.states.get(name) !== status) {
        this.options.logger?.warn({ check: name, status, code: result.code, reason: reason === "" ? undefined : reason }, "readiness check failed");
      } else if (status === "ok" && this.states.has(name) && this.states.get(name) !== "ok") {
        this.options.logger?.info({ check: name }, "readiness check answers again");
      }
    }
    this.states.set(name, result.status);
    this.options.onCheck?.(name, result);
    return result;
  }
}
