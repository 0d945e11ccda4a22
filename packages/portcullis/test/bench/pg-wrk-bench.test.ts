/**
 * Benchmark 19's harness (bench/pg-wrk-bench.js) without load: the production gateway's config
 * sections (accepted by the real config parser: PostgreSQL store, Redis hot state, benchmark 17's
 * routes and raised limits), the report's verdict on per-round ratios and its loud NOT RUN; then
 * one tiny run (one round of one second per mode) against the real processes — a private
 * PostgreSQL, a private redis-server and the four gateways — when wrk, redis-server and the
 * PostgreSQL server binaries are installed (always under CI), to show that every signed request is
 * answered 2xx by each and that the CPU of PostgreSQL and Redis is counted for the modes on them.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/index.js";
import { IN_CI, loudSkip, redisServerInstalled } from "../support/redis.js";

interface StoreRun {
  readonly round: number;
  readonly mode: "embedded" | "pg-redis";
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly requests: number;
  readonly failures: number;
  readonly warmupFailures: number;
  readonly cpu: { gateway: number; postgres: number | null; redis: number | null };
  readonly cpuUs: number;
  readonly load1: number;
}

interface StoreResult {
  readonly settings: { rounds: number; seconds: number; warmupSeconds: number; primeSeconds: number; connections: number };
  readonly notRun: string | null;
  readonly notes: string[];
  readonly runs: StoreRun[];
  readonly primeFailures: number;
}

interface PgWrkBench {
  productionSections(o: { postgresUrl: string; schema?: string; redisUrl: string; poolSize?: number }): Record<string, unknown>;
  runStoreWrkBench(o: StoreResult["settings"]): Promise<StoreResult>;
  storeWrkSection(result: StoreResult): { failures: number; summary: string[][]; text: string[] };
  STORE_WRK_TARGETS: { pgRedisOverEmbedded: number };
}

const bench = (await import(pathToFileURL(fileURLToPath(new URL("../../../../bench/pg-wrk-bench.js", import.meta.url))).href)) as PgWrkBench;
const servers = (await import(pathToFileURL(fileURLToPath(new URL("../../../../bench/postgres-server.js", import.meta.url))).href)) as { postgresBinDir(): string | null };
const WRK = process.env.PORTCULLIS_BENCH_WRK ?? "/usr/bin/wrk";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("benchmark 19: the production gateway's config", () => {
  it("is benchmark 17's gateway on a PostgreSQL store and Redis hot state, accepted by the real parser", () => {
    const dir = mkdtempSync(join(tmpdir(), "pg-wrk-bench-test-"));
    dirs.push(dir);
    const sections = bench.productionSections({ postgresUrl: "postgres://postgres@127.0.0.1:5999/postgres", redisUrl: "redis://127.0.0.1:6999" });
    const config = parseConfig({ ...sections, dataDir: dir, gateway: { host: "127.0.0.1", port: 0, upstream: "http://127.0.0.1:1" }, admin: { enabled: false } }, dir);
    expect(config.store).toMatchObject({ backend: "postgres", url: "postgres://postgres@127.0.0.1:5999/postgres", schema: "portcullis_bench_gw", poolSize: 10 });
    expect(config.hot).toEqual({ backend: "redis", url: "redis://127.0.0.1:6999", prefix: "pcbench:" });
    expect(config.routes.map((r) => r.path)).toEqual(["/api/v3/account", "/api/v3/exchangeInfo"]);
    for (const spec of config.limits.specs) expect(spec.limit).toBe(100_000_000);
  });
});

describe("benchmark 19: the report", () => {
  const settings = { rounds: 2, seconds: 3, warmupSeconds: 1, primeSeconds: 2, connections: 32 };
  const run = (round: number, mode: "embedded" | "pg-redis", rps: number, p99: number): StoreRun => ({
    round,
    mode,
    rps,
    p50: p99 / 3,
    p99,
    max: p99 * 2,
    requests: rps * 3,
    failures: 0,
    warmupFailures: 0,
    cpu: mode === "embedded" ? { gateway: 100, postgres: null, redis: null } : { gateway: 140, postgres: 15, redis: 25 },
    cpuUs: mode === "embedded" ? 100 : 180,
    load1: 1.5,
  });

  it("judges the median of per-round throughput ratios against 0.9, with p99 and CPU beside it", () => {
    const pass = bench.storeWrkSection({ settings, notRun: null, notes: ["a note"], runs: [run(0, "embedded", 8000, 8), run(0, "pg-redis", 7600, 10), run(1, "pg-redis", 7000, 12), run(1, "embedded", 7500, 9)], primeFailures: 0 });
    expect(pass.failures).toBe(0);
    expect(pass.summary[0]).toEqual(["Signed throughput, PostgreSQL + Redis / embedded (SQLite + memory), under wrk (benchmark 19)", "0.94× (p10–p90 0.94–0.95)", "≥ 0.9×", "**PASS**"]);
    const text = pass.text.join("\n");
    expect(text).toContain("| production: PostgreSQL + Redis | 7300 | 3.67 | 11.00 | 140.0 | 15.0 | 25.0 | 180.0 | 0 |");
    expect(text).toContain("| embedded: SQLite + memory | 7750 | 2.83 | 8.50 | 100.0 | – | – | 100.0 | 0 |");
    expect(text).toContain("- a note");
    const fail = bench.storeWrkSection({ settings, notRun: null, notes: [], runs: [run(0, "embedded", 8000, 8), { ...run(0, "pg-redis", 5000, 20), failures: 2, warmupFailures: 1 }], primeFailures: 1 });
    expect(fail.summary[0]?.[3]).toBe("**FAIL**");
    expect(fail.failures).toBe(4);
  });

  it("says loudly when it could not run", () => {
    const section = bench.storeWrkSection({ settings, notRun: "wrk not found at /usr/bin/wrk", notes: [], runs: [], primeFailures: 0 });
    expect(section.summary[0]?.[3]).toBe("**NOT RUN: wrk not found at /usr/bin/wrk**");
    expect(section.text.join("\n")).toContain("**NOT RUN on this machine: wrk not found at /usr/bin/wrk.**");
  });
});

const runnable = existsSync(WRK) && redisServerInstalled() && servers.postgresBinDir() !== null;
if (!runnable && !IN_CI) loudSkip("benchmark 19's tiny run", "it needs wrk, redis-server and the PostgreSQL server binaries");

describe.runIf(runnable || IN_CI)("benchmark 19: a tiny run against the real processes", () => {
  it("every gateway answers every signed request 2xx; PostgreSQL's and Redis's CPU is counted for the modes on them only", async () => {
    const result = await bench.runStoreWrkBench({ rounds: 1, seconds: 1, warmupSeconds: 1, primeSeconds: 1, connections: 4 });
    expect(result.notRun).toBeNull();
    expect(result.primeFailures).toBe(0);
    expect(result.runs.map((r) => r.mode).sort()).toEqual(["embedded", "pg-memory", "pg-redis", "sqlite-redis"]);
    for (const r of result.runs) {
      expect(r.failures + r.warmupFailures).toBe(0);
      expect(r.requests).toBeGreaterThan(0);
      expect(r.cpu.gateway).toBeGreaterThan(0);
    }
    const cpuOf = (mode: string) => result.runs.find((r) => r.mode === mode)?.cpu;
    expect(cpuOf("pg-redis")?.postgres).toBeGreaterThan(0);
    expect(cpuOf("pg-redis")?.redis).toBeGreaterThan(0);
    expect(cpuOf("embedded")).toMatchObject({ postgres: null, redis: null });
    expect(cpuOf("sqlite-redis")).toMatchObject({ postgres: null });
    expect(cpuOf("sqlite-redis")?.redis).toBeGreaterThan(0);
    expect(cpuOf("pg-memory")).toMatchObject({ redis: null });
    expect(cpuOf("pg-memory")?.postgres).toBeGreaterThan(0);
  }, 120_000);
});
