/**
 * Benchmark 20's harness (bench/console-bench.js): the first load measured on a tiny fake console
 * build in a temporary directory (and "not built" without one), the fill's statements, the search
 * reference the q answers are checked against, the report's verdicts, and one whole run with a
 * tiny N on both stores (seconds; its figures are not looked at, only that every answer checked out).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IN_CI, loudSkip } from "../support/redis.js";
import { SHARED_POSTGRES_URL, postgresReachable } from "../support/postgres.js";

interface Run {
  kind: string;
  requests: number;
  failures: number;
  unsupported?: boolean;
  p50?: number;
  p95?: number;
  p99?: number;
  max?: number;
}
interface StoreResult {
  store: string;
  keys?: number;
  runs?: Run[];
  error?: string;
}
interface FirstLoad {
  built: boolean;
  files?: { url: string; file: string; raw: number; gzip: number; brotli: number }[];
  problems?: string[];
  raw?: number;
  gzip?: number;
  brotli?: number;
}
interface Result {
  settings: { keys: number; requests: number; warmup: number };
  stores: StoreResult[];
  firstLoad: FirstLoad;
}
interface Section {
  summary: string[][];
  text: string[];
  failures: number;
}
interface ConsoleBench {
  consoleFirstLoad(dist: string): FirstLoad;
  firstLoadScripts(html: string): string[];
  fillStatement(columns: readonly string[], dialect: "sqlite" | "postgres"): { sql: string; order: string[] };
  matchesSearch(key: { id: string; account: string; label: string }, q: string): boolean;
  runConsoleBench(o: { keys: number; requests: number; warmup: number; url?: string; dist?: string }): Promise<Result>;
  consoleSection(result: Result): Section;
  CONSOLE_TARGETS: { keyListP95Ms: number; firstLoadGzipBytes: number };
}

const bench = (await import(pathToFileURL(fileURLToPath(new URL("../../../../bench/console-bench.js", import.meta.url))).href)) as ConsoleBench;

const pgUp = await postgresReachable(SHARED_POSTGRES_URL);
if (!pgUp && !IN_CI) loudSkip("benchmark 20's run on PostgreSQL", `no PostgreSQL answers at ${SHARED_POSTGRES_URL}`);

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "pc-console-bench-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A console build in `dir/<name>`: index.html and the given assets (name -> contents). */
function fakeDist(name: string, html: string, assets: Record<string, string>): string {
  const dist = join(dir, name);
  mkdirSync(join(dist, "assets"), { recursive: true });
  writeFileSync(join(dist, "index.html"), html);
  for (const [file, body] of Object.entries(assets)) writeFileSync(join(dist, "assets", file), body);
  return dist;
}

const APP = `export const app = () => ${JSON.stringify("x".repeat(5000))};\n`.repeat(3);
const VENDOR = Array.from({ length: 2000 }, (_, i) => `export function f${i}(a) { return a * ${i}; }`).join("\n");
const gz = (text: string): number => gzipSync(Buffer.from(text), { level: 9 }).length;

describe("benchmark 20: the console's first load", () => {
  it("is 'not built' without packages/console/dist/index.html, reported as such and not as a failure", () => {
    const result = bench.consoleFirstLoad(join(dir, "absent"));
    expect(result.built).toBe(false);
    const section = bench.consoleSection({ settings: { keys: 10, requests: 1, warmup: 0 }, stores: [], firstLoad: result });
    expect(section.summary).toEqual([["Console: first load, JavaScript (gzip as served)", "**not built** (no packages/console/dist/index.html)", "≤ 300 KB", "–"]]);
    expect(section.failures).toBe(0);
    expect(section.text.join("\n")).toContain("**not built**");
  });

  it("finds every script and module preload of index.html, whatever the attributes' order and quotes, and nothing else", () => {
    const html = `<!doctype html><html><head>
      <link rel="stylesheet" href="/console/assets/index.css">
      <link crossorigin href='/console/assets/vendor.js' rel='modulepreload'>
      <script type="module" crossorigin src="/console/assets/index.js"></script>
      <link rel="icon" href="/console/favicon.svg">
      <script>/* inline: no src */</script>
      <script type=module src=/console/assets/index.js></script>
    </head><body><div id="root"></div></body></html>`;
    expect(bench.firstLoadScripts(html)).toEqual(["/console/assets/vendor.js", "/console/assets/index.js"]);
  });

  it("adds up the gzip (level 9) bytes of a build's first-load scripts, and judges them against 300 KB", () => {
    const dist = fakeDist(
      "small",
      `<html><head><script type="module" src="/console/assets/index.js"></script><link rel="modulepreload" href="/console/assets/vendor.js"><link rel="stylesheet" href="/console/assets/index.css"></head></html>`,
      { "index.js": APP, "vendor.js": VENDOR, "index.css": "body { color: red }", "lazy.js": VENDOR },
    );
    const result = bench.consoleFirstLoad(dist);
    expect(result).toMatchObject({ built: true, problems: [], raw: APP.length + VENDOR.length, gzip: gz(APP) + gz(VENDOR) });
    expect(result.files?.map((f) => f.file)).toEqual(["assets/index.js", "assets/vendor.js"]);
    expect(result.brotli).toBeLessThan(result.raw ?? 0);
    const section = bench.consoleSection({ settings: { keys: 10, requests: 1, warmup: 0 }, stores: [], firstLoad: result });
    expect(section.summary[0]?.[3]).toBe("**PASS**");
    expect(section.failures).toBe(0);
    expect(section.text.join("\n")).toContain("| `/console/assets/vendor.js` |");
  });

  it("fails a build over 300 KB, and one whose index.html names a script it does not hold or another origin's", () => {
    // Random text compresses little: 600 KB of base-36 digits stays over 300 KB gzipped.
    const big = Array.from({ length: 600_000 / 8 }, () => Math.random().toString(36).slice(2, 10)).join("");
    const heavy = bench.consoleFirstLoad(fakeDist("heavy", `<script type="module" src="/console/assets/big.js"></script>`, { "big.js": big }));
    expect(heavy.gzip).toBeGreaterThan(bench.CONSOLE_TARGETS.firstLoadGzipBytes);
    expect(bench.consoleSection({ settings: { keys: 10, requests: 1, warmup: 0 }, stores: [], firstLoad: heavy }).summary[0]?.[3]).toBe("**FAIL**");
    const broken = bench.consoleFirstLoad(
      fakeDist("broken", `<script src="/console/assets/missing.js"></script><script src="https://cdn.example/x.js"></script><script src="/console/../../etc/passwd"></script>`, {}),
    );
    expect(broken.problems).toEqual([
      "/console/assets/missing.js: no such file under /console/",
      "https://cdn.example/x.js: not served by the admin listener",
      "/console/../../etc/passwd: no such file under /console/",
    ]);
    const section = bench.consoleSection({ settings: { keys: 10, requests: 1, warmup: 0 }, stores: [], firstLoad: broken });
    expect(section.failures).toBe(1);
    expect(section.summary[0]?.[3]).toBe("**FAIL** (scripts missing)");
  });
});

describe("benchmark 20: the keys list", () => {
  it("copies the template's columns except the varying ones, on both stores", () => {
    const columns = ["id", "environment", "account", "label", "scopes", "created_at", "updated_at", "status"];
    expect(bench.fillStatement(columns, "sqlite")).toEqual({
      sql: "INSERT INTO keys (id, environment, account, label, scopes, created_at, updated_at, status) SELECT ? AS id, t.environment, ? AS account, ? AS label, t.scopes, ? AS created_at, ? AS updated_at, t.status FROM keys t WHERE t.id = ?",
      order: ["id", "account", "label", "created_at", "updated_at"],
    });
    expect(bench.fillStatement(columns, "postgres").sql).toBe(
      "INSERT INTO keys (id, environment, account, label, scopes, created_at, updated_at, status) SELECT u.id, t.environment, u.account, u.label, t.scopes, u.created_at, u.updated_at, t.status " +
        "FROM keys t, unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[]) AS u(id, account, label, created_at, updated_at) WHERE t.id = $1",
    );
    expect(() => bench.fillStatement(["id", "account"], "sqlite")).toThrow(/no column label/);
  });

  it("checks q answers against the search's definition: id or account prefix, part of the label, ASCII case folded", () => {
    const key = { id: "pck_live_v1_AbC", account: "Acct-7", label: "Hedging bot 3" };
    for (const q of ["PCK_LIVE_V1_abc", "acct-", "DGING", "bot 3"]) expect(bench.matchesSearch(key, q)).toBe(true);
    for (const q of ["v1_abc", "cct-7", "bot 4"]) expect(bench.matchesSearch(key, q)).toBe(false);
  });

  it("reports each store's worst p95 against 50 ms, a q the admin API ignores as unsupported, and a store that could not run as a failure", () => {
    const run = (kind: string, p95: number): Run => ({ kind, requests: 10, failures: 0, p50: p95 / 2, p95, p99: p95 * 1.2, max: p95 * 2 });
    const section = bench.consoleSection({
      settings: { keys: 10_000, requests: 10, warmup: 1 },
      stores: [
        { store: "SQLite", keys: 10_000, runs: [run("first page", 3), run("q: no match", 60), { kind: "q: id prefix", unsupported: true, requests: 0, failures: 0 }] },
        { store: "PostgreSQL", error: "connect ECONNREFUSED" },
      ],
      firstLoad: { built: false },
    });
    expect(section.summary.slice(0, 2)).toEqual([
      ["Console: keys list (`GET /portcullis/v1/keys?limit=50`), 10,000 keys, SQLite: p95, worst kind (q: no match)", "60.00 ms", "≤ 50 ms", "**FAIL**"],
      ["Console: keys list, 10,000 keys, PostgreSQL: p95 (worst kind)", "**not run: connect ECONNREFUSED**", "≤ 50 ms", "**FAIL**"],
    ]);
    expect(section.failures).toBe(1);
    const text = section.text.join("\n");
    expect(text).toContain("| SQLite | first page | 10 | 1.50 | 3.00 | 3.60 | 6.00 | **PASS** |");
    expect(text).toContain("| SQLite | q: id prefix | – | **q not supported by this admin API** |");
  });

  it.runIf(pgUp || IN_CI)(
    "runs whole on both stores with a tiny N: every answer checks out",
    async () => {
      const result = await bench.runConsoleBench({ keys: 200, requests: 3, warmup: 1, dist: join(dir, "absent") });
      expect(result.stores.map((s) => s.store)).toEqual(["SQLite", "PostgreSQL"]);
      for (const s of result.stores) {
        expect(s.error).toBeUndefined();
        expect(s.keys).toBe(200);
        expect(s.runs?.map((r) => r.kind)).toEqual(["first page", "later page (after)", "q: label word (`hedging`)", "q: account prefix (`acct-<n>`)", "q: id prefix (14 characters)", "q: no match"]);
        for (const r of s.runs ?? []) {
          expect(r.failures).toBe(0);
          // Timed, or (an admin API that ignores q) said to be unsupported; the pages always timed.
          if (r.unsupported !== true) expect(r.requests).toBe(3);
          else expect(r.kind.startsWith("q:")).toBe(true);
        }
      }
      expect(bench.consoleSection(result).failures).toBe(0);
    },
    60_000,
  );
});
