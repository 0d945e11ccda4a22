/**
 * Benchmark 18's harness (bench/pg-bench.js, bench/postgres-server.js) with a tiny N: the fill's
 * statement, the report's verdicts, one whole run on the shared PostgreSQL (a schema of its own,
 * dropped afterwards) and one on a private server, restarted and its files evicted from the page
 * cache before the first-touch runs. Seconds, not the benchmark's minutes; the figures are not
 * looked at, only that every lookup found its key and that the cold state was what it claims.
 */
import { fileURLToPath, pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { IN_CI, loudSkip } from "../support/redis.js";
import { SHARED_POSTGRES_URL, adminQuery, postgresReachable, uniqueSchema } from "../support/postgres.js";

interface Run {
  readonly phase: string;
  readonly kind: "get" | "load";
  readonly concurrency: number;
  readonly lookups: number;
  readonly failures: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly blocks: { heapRead: number; heapHit: number; idxRead: number; idxHit: number };
  readonly state?: { osCached: number | null; buffers: { heapBytes: number; indexBytes: number } | null };
}

interface LookupResult {
  readonly settings: { keys: number; lookups: number; concurrencies: number[]; batch: number; poolSize: number };
  readonly server: { private: boolean; version: string; sharedBuffers: string };
  readonly fill: { seconds: number; keys: number };
  readonly relations: { heapBytes: number; indexBytes: number; totalBytes: number; pkeyBytes: number; files: number };
  readonly warmState: unknown;
  readonly warm: Run[];
  readonly firstTouch: Run[];
  readonly missing: Record<string, string>;
}

interface Section {
  failures: number;
  summary: string[][];
  text: string[];
}

interface PgBench {
  fillStatement(columns: readonly string[]): string;
  runPgLookupBench(o: { keys: number; lookups: number; concurrencies: number[]; batch: number; poolSize: number; privateServer?: boolean; url?: string; schema?: string }): Promise<LookupResult>;
  pgLookupSection(result: LookupResult | { error: string }): Section;
  saturation(warm: readonly (Run & { rate: number })[]): string[];
  PG_TARGETS: { coldLookupP99Ms: number };
}

interface PgServer {
  postgresBinDir(): string | null;
}

const bench = (await import(pathToFileURL(fileURLToPath(new URL("../../../../bench/pg-bench.js", import.meta.url))).href)) as PgBench;
const servers = (await import(pathToFileURL(fileURLToPath(new URL("../../../../bench/postgres-server.js", import.meta.url))).href)) as PgServer;

const pgUp = await postgresReachable(SHARED_POSTGRES_URL);
if (!pgUp && !IN_CI) loudSkip("benchmark 18's run on the shared PostgreSQL", `no PostgreSQL answers at ${SHARED_POSTGRES_URL}`);
const binaries = servers.postgresBinDir() !== null;
if (!binaries && !IN_CI) loudSkip("benchmark 18's run on a private PostgreSQL", "no PostgreSQL server binaries (initdb, postgres)");

/** Table and index blocks touched per lookup of a run (its 64 warm-up lookups included). */
const blocksPerLookup = (r: Run): number => (r.blocks.heapHit + r.blocks.heapRead + r.blocks.idxHit + r.blocks.idxRead) / (r.lookups + 64);

const TINY = { keys: 600, lookups: 40, concurrencies: [1, 4], batch: 200, poolSize: 4 };

describe("benchmark 18: the fill", () => {
  it("copies every column from the template row except the ones that differ between keys, which come from the arrays", () => {
    const sql = bench.fillStatement(["id", "environment", "account", "label", "secret_envelope", "scopes", "created_at", "updated_at", "status"]);
    expect(sql).toBe(
      "INSERT INTO keys (id, environment, account, label, secret_envelope, scopes, created_at, updated_at, status) " +
        "SELECT u.id, t.environment, u.account, t.label, u.secret_envelope, t.scopes, u.created_at, u.updated_at, t.status " +
        "FROM keys t, unnest($2::text[], $3::text[], $4::bytea[], $5::bigint[], $6::bigint[]) AS u(id, account, secret_envelope, created_at, updated_at) WHERE t.id = $1",
    );
    expect(() => bench.fillStatement(["id", "account"])).toThrow(/no column secret_envelope/);
  });
});

describe("benchmark 18: the report", () => {
  const run = (phase: string, kind: "get" | "load", concurrency: number, p99: number): Run => ({
    phase,
    kind,
    concurrency,
    lookups: 1000,
    failures: 0,
    p50: p99 / 4,
    p99,
    max: p99 * 3,
    blocks: { heapRead: 0, heapHit: 1064, idxRead: 0, idxHit: 3192 },
  });
  const result = (warm: Run[], firstTouch: Run[], missing: Record<string, string> = {}): LookupResult => ({
    settings: { keys: 1_000_000, lookups: 1000, concurrencies: [1, 16], batch: 10_000, poolSize: 16 },
    server: { private: true, version: "15.20", sharedBuffers: "128MB" },
    fill: { seconds: 60, keys: 1_000_000 },
    relations: { heapBytes: 400 * 2 ** 20, indexBytes: 150 * 2 ** 20, totalBytes: 550 * 2 ** 20, pkeyBytes: 60 * 2 ** 20, files: 4 },
    warmState: { buffers: { heapBytes: 60 * 2 ** 20, indexBytes: 60 * 2 ** 20 }, osCached: 1 },
    warm,
    firstTouch,
    missing,
  });

  it("judges the warm keys.get runs against the target, each concurrency apart, and shows first touch beside them", () => {
    const section = bench.pgLookupSection(
      result([run("warm", "get", 1, 0.6), run("warm", "load", 1, 0.9), run("warm", "get", 16, 2.5), run("warm", "load", 16, 3)], [{ ...run("first touch", "get", 1, 9), state: { osCached: 0, buffers: { heapBytes: 0, indexBytes: 0 } } }]),
    );
    expect(section.failures).toBe(0);
    expect(section.summary).toEqual([
      ["Cold-key lookup (`keys.get`), 1,000,000 keys in PostgreSQL, warm buffers, concurrency 1: p99", "0.60 ms", "≤ 2 ms", "**PASS**"],
      ["Cold-key lookup (`keys.get`), 1,000,000 keys in PostgreSQL, warm buffers, concurrency 16: p99", "2.50 ms", "≤ 2 ms", "**FAIL**"],
      ["Cold-key lookup (`keys.get`), 1,000,000 keys, first touch (restarted, files evicted), concurrency 1: p99", "9.00 ms", "none (informational)", "–"],
    ]);
    const text = section.text.join("\n");
    expect(text).toContain("| warm | KeyCache miss (`loadMaterial` + `compileKey`) | 16 | 1000 | 0.750 |");
    expect(text).toContain("| Before the first-touch run at concurrency 1 | shared buffers held 0 MiB of the indexes and 0 MiB of the rows; the OS page cache 0 % of their files |");
  });

  it("says when a higher concurrency only queued (the lookups/s did not rise), with the mean latency Little's law gives", () => {
    const at = (concurrency: number, rate: number): Run & { rate: number } => ({ ...run("warm", "get", concurrency, 1), rate });
    expect(bench.saturation([at(1, 8000), at(16, 7200)])).toEqual([
      "At concurrency 16 the warm `keys.get` runs made 7200 lookups/s, 0.90× concurrency 1's 8000: the machine's cores (this Node process and the PostgreSQL backends share them) were saturated, so latency there is mostly waiting behind the other lookups in flight — 16 in flight at that rate is 2.22 ms on average (Little's law), against 0.13 ms at concurrency 1.",
      "",
    ]);
    expect(bench.saturation([at(1, 4000), at(16, 20_000)])[0]).toContain("the server absorbed the extra lookups in flight");
  });

  it("counts failed lookups, and says loudly when first touch or the whole benchmark could not run", () => {
    const failed = bench.pgLookupSection(result([{ ...run("warm", "get", 1, 0.5), failures: 3 }], [], { firstTouch: "no PostgreSQL server binaries" }));
    expect(failed.failures).toBe(3);
    expect(failed.summary.at(-1)?.[1]).toBe("**NOT MEASURED: no PostgreSQL server binaries**");
    expect(failed.text.join("\n")).toContain("**First touch NOT MEASURED: no PostgreSQL server binaries.**");
    const none = bench.pgLookupSection({ error: "connect ECONNREFUSED" });
    expect(none.summary[0]?.[3]).toBe("**NOT RUN: connect ECONNREFUSED**");
    expect(none.failures).toBe(1);
  });
});

describe.runIf(pgUp || IN_CI)("benchmark 18: a tiny run on the shared PostgreSQL", () => {
  it("fills the schema, finds every key it looks up (each once, none from a cache), and drops the schema", async () => {
    const schema = uniqueSchema("bench");
    const result = await bench.runPgLookupBench({ ...TINY, privateServer: false, url: SHARED_POSTGRES_URL, schema });
    expect(result.server.private).toBe(false);
    expect(result.fill.keys).toBe(TINY.keys);
    expect(result.warm.map((r) => `${r.kind}@${r.concurrency}`)).toEqual(["get@1", "load@1", "get@4", "load@4"]);
    for (const r of result.warm) {
      expect(r.failures).toBe(0);
      expect(r.lookups).toBe(TINY.lookups);
      expect(r.p99).toBeGreaterThan(0);
      // Every lookup went to PostgreSQL: at least an index page and a heap page each.
      expect(r.blocks.heapHit + r.blocks.heapRead).toBeGreaterThanOrEqual(TINY.lookups);
      // …and the counts are the run's own, not the fill's (a few pages of a small b-tree and one heap page each).
      expect(blocksPerLookup(r)).toBeLessThan(6);
    }
    expect(result.firstTouch).toEqual([]);
    expect(result.missing.firstTouch).toMatch(/private server/);
    expect(await adminQuery(SHARED_POSTGRES_URL, "SELECT 1 FROM pg_namespace WHERE nspname = $1", [schema])).toEqual([]);
  }, 60_000);
});

describe.runIf(binaries || IN_CI)("benchmark 18: a tiny run on a private PostgreSQL", () => {
  it("measures warm runs, then first-touch runs that start with empty shared buffers and the files out of the page cache", async () => {
    const result = await bench.runPgLookupBench({ ...TINY, concurrencies: [2] });
    expect(result.server.private).toBe(true);
    expect(result.warm.every((r) => r.failures === 0)).toBe(true);
    expect(result.firstTouch).toHaveLength(1);
    const [first] = result.firstTouch;
    expect(first?.failures).toBe(0);
    expect(first?.state?.buffers).toEqual({ heapBytes: 0, indexBytes: 0 });
    expect(first?.state?.osCached).toBe(0);
    // Blocks had to be read into shared buffers, which the warm runs never needed.
    expect(first?.blocks.heapRead ?? 0).toBeGreaterThan(0);
    for (const r of result.warm) {
      expect(r.blocks.heapRead + r.blocks.idxRead).toBe(0);
      // The prewarm's reads are not counted in the first run.
      expect(blocksPerLookup(r)).toBeLessThan(6);
    }
  }, 90_000);
});
