/**
 * core/readiness.ts on its own: each check's failure code, the timeout, the cache and the shared
 * run. The durable store is a real SQLite store (closed to fail), the hot store the real memory
 * store; the audit log's statistics and the custody provider are given as the plain values and
 * answers the checks read (a stuck log, a token that fails or never answers).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { AuditLog, type AuditStats } from "../../src/audit/log.js";
import { ManualTimers } from "../audit/support.js";
import { Readiness, type ReadinessOptions } from "../../src/core/readiness.js";
import { MemoryHotStore } from "../../src/storage/memory/hot.js";
import { SqliteStore } from "../../src/storage/sqlite/store.js";
import { captureLogger } from "../support/gateway.js";

const T0 = 1_800_000_000_000;
const IDLE: AuditStats = { recorded: 0, committed: 0, spilled: 0, replayed: 0, dropped: 0, checkpoints: 0, buffered: 0, tampered: false, oldestPendingAt: null };

describe("Readiness", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  function fixture(over: Partial<ReadinessOptions> = {}): { readiness: Readiness; store: SqliteStore; clock: { now: number }; calls: { versions: number }; audit: { stats: AuditStats }; lines: string[] } {
    const dir = mkdtempSync(join(tmpdir(), "portcullis-readiness-"));
    dirs.push(dir);
    const store = new SqliteStore(join(dir, "portcullis.db"));
    const clock = { now: T0 };
    const calls = { versions: 0 };
    const audit = { stats: IDLE };
    const { logger, lines } = captureLogger();
    const readiness = new Readiness({
      store,
      hot: new MemoryHotStore(),
      audit,
      custody: {
        versions: () => {
          calls.versions++;
          return Promise.resolve({ active: 1, held: [1] });
        },
      },
      timeoutMs: 50,
      now: () => clock.now,
      logger,
      ...over,
    });
    return { readiness, store, clock, calls, audit, lines };
  }

  it("ready when every check answers; the report is reused within cacheMs and shared while running", async () => {
    const f = fixture();
    const [a, b] = await Promise.all([f.readiness.check(), f.readiness.check()]);
    expect(a).toBe(b);
    expect(a.ready).toBe(true);
    expect(Object.fromEntries(Object.entries(a.checks).map(([k, v]) => [k, v.status]))).toEqual({ durable: "ok", hot: "ok", audit: "ok", custody: "ok" });
    expect(f.calls.versions).toBe(1);
    f.clock.now += 999;
    expect(await f.readiness.check()).toBe(a);
    expect(f.calls.versions).toBe(1);
    f.clock.now += 1;
    await f.readiness.check();
    expect(f.calls.versions).toBe(2);
    await f.store.close();
  });

  it("DURABLE_STORE_UNAVAILABLE when the store cannot be read, logged once with its reason (never in the report)", async () => {
    const f = fixture();
    await f.store.close();
    const r = await f.readiness.check();
    expect(r.ready).toBe(false);
    expect(r.checks.durable).toMatchObject({ status: "failed", code: "DURABLE_STORE_UNAVAILABLE" });
    expect(JSON.stringify(r)).not.toMatch(/database|closed|Error/i);
    f.clock.now += 5_000;
    await f.readiness.check();
    const logged = f.lines.filter((l) => l.includes("readiness check failed"));
    expect(logged).toHaveLength(1);
    expect(logged[0]).toContain('"code":"DURABLE_STORE_UNAVAILABLE"');
  });

  it("AUDIT_LOG_STUCK once an entry has waited longer than auditStuckMs", async () => {
    const f = fixture({ auditStuckMs: 10_000 });
    f.audit.stats = { ...IDLE, buffered: 3, oldestPendingAt: T0 - 10_000 };
    expect((await f.readiness.check()).checks.audit.status).toBe("ok");
    f.clock.now += 1_000;
    const r = await f.readiness.check();
    expect(r.checks.audit).toMatchObject({ status: "failed", code: "AUDIT_LOG_STUCK" });
    expect(r.ready).toBe(false);
    await f.store.close();
  });

  it("CUSTODY_UNAVAILABLE when the provider fails, CHECK_TIMED_OUT when it never answers", async () => {
    const failing = fixture({ custody: { versions: () => Promise.reject(new Error("CKR_DEVICE_REMOVED")) } });
    const r = await failing.readiness.check();
    expect(r.checks.custody).toMatchObject({ status: "failed", code: "CUSTODY_UNAVAILABLE" });
    expect(JSON.stringify(r)).not.toContain("CKR_DEVICE_REMOVED");
    await failing.store.close();
    const hanging = fixture({ custody: { versions: () => new Promise(() => undefined) } });
    const h = await hanging.readiness.check();
    expect(h.checks.custody).toMatchObject({ status: "timeout", code: "CHECK_TIMED_OUT" });
    expect(h.checks.custody.ms).toBeGreaterThanOrEqual(40);
    expect(h.ready).toBe(false);
    await hanging.store.close();
  });

  it("the audit log's lag: oldestPendingAt is the oldest unacknowledged entry's time, null once committed; readiness reads it", async () => {
    const f = fixture({ auditStuckMs: 1_000 });
    const log = new AuditLog({ store: f.store.audit, signer: null, now: () => f.clock.now, timers: new ManualTimers(), checkpointIntervalMs: 0 });
    // Readiness reads the log's live statistics.
    Object.defineProperty(f.audit, "stats", { get: () => log.stats });
    expect(log.stats.oldestPendingAt).toBeNull();
    log.record({ event: "request.deny", at: T0 - 500, actor: "anonymous", code: "ROUTE_NOT_FOUND" });
    log.record({ event: "request.deny", at: T0, actor: "anonymous", code: "ROUTE_NOT_FOUND" });
    expect(log.stats).toMatchObject({ buffered: 2, oldestPendingAt: T0 - 500 });
    f.clock.now = T0 + 501;
    expect((await f.readiness.check()).checks.audit).toMatchObject({ status: "failed", code: "AUDIT_LOG_STUCK" });
    await log.flush();
    expect(log.stats).toMatchObject({ buffered: 0, committed: 2, oldestPendingAt: null });
    f.clock.now += 1_000;
    expect((await f.readiness.check()).checks.audit.status).toBe("ok");
    await log.close();
    await f.store.close();
  });

  it("refuses bad options", async () => {
    const f = fixture();
    expect(() => new Readiness({ store: f.store, hot: new MemoryHotStore(), audit: f.audit, custody: null, timeoutMs: 0 })).toThrow(TypeError);
    expect(() => new Readiness({ store: f.store, hot: new MemoryHotStore(), audit: f.audit, custody: null, cacheMs: 1.5 })).toThrow(TypeError);
    await f.store.close();
  });
});
