/**
 * `portcullis init --store URL` and `--production` (issue 17): a data directory that names its
 * PostgreSQL store in store.json, and the commented production configuration. Run as the real CLI
 * against the shared PostgreSQL (127.0.0.1:5432, database test), each test in a schema of its own.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfigText } from "../../src/config/config.js";
import { readStoreFile } from "../../src/storage/location.js";
import { DataDirError, openDataDir } from "../../src/core/data-dir.js";
import { runCli } from "../support/cli.js";
import { SHARED_POSTGRES_URL, adminQuery, dropSchema, postgresReachable, uniqueSchema } from "../support/postgres.js";
import { makePki } from "../support/tls.js";

const reachable = await postgresReachable(SHARED_POSTGRES_URL);
// Under CI nothing skips: a PostgreSQL that cannot be reached fails the suite.
const suite = reachable || process.env.CI === "true" ? describe : describe.skip;

const dirs: string[] = [];
const schemas: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "pc-init-store-"));
  dirs.push(d);
  return d;
}
function schema(): string {
  const s = uniqueSchema("init");
  schemas.push(s);
  return s;
}

beforeAll(() => {
  if (!reachable && process.env.CI === "true") throw new Error(`PostgreSQL is not reachable at ${SHARED_POSTGRES_URL}`);
});

afterAll(async () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  if (reachable) for (const s of schemas) await dropSchema(SHARED_POSTGRES_URL, s);
});

suite("portcullis init --store", () => {
  it("names the PostgreSQL store in store.json, migrates the schema and records the environment there", async () => {
    const dir = join(tempDir(), "data");
    const s = schema();
    const res = await runCli(["init", "--data", dir, "--store", SHARED_POSTGRES_URL, "--schema", s, "--environment", "test", "--json"]);
    expect(res.code, res.stderr).toBe(0);
    const out = JSON.parse(res.stdout) as { store: string; created: string[] };
    expect(out.store).toBe(`PostgreSQL postgres@127.0.0.1:5432/test, schema ${s}`);
    expect(readdirSync(dir).sort()).toEqual(["identity.secret", "keyring.json", "portcullis.json", "store.json"]);
    expect(readStoreFile(dir)).toEqual({ backend: "postgres", url: SHARED_POSTGRES_URL, schema: s, poolSize: 10 });
    const rows = await adminQuery<{ value: string }>(SHARED_POSTGRES_URL, `SELECT value FROM ${s}.meta WHERE key = 'environment'`);
    expect(rows).toEqual([{ value: "test" }]);
    // The starter config names the same store.
    const config = parseConfigText(readFileSync(join(dir, "portcullis.json"), "utf8"), dir);
    expect(config.store).toMatchObject({ backend: "postgres", url: SHARED_POSTGRES_URL, schema: s });
    // Again: nothing new, and the other environment is refused.
    const again = await runCli(["init", "--data", dir, "--store", SHARED_POSTGRES_URL, "--schema", s, "--environment", "test", "--json"]);
    expect(again.code, again.stderr).toBe(0);
    expect((JSON.parse(again.stdout) as { created: string[] }).created).toEqual([]);
    const live = await runCli(["init", "--data", dir, "--environment", "live"]);
    expect(live.code).not.toBe(0);
    expect(live.stderr).toMatch(/^DATA_DIR_INVALID: .*initialised for the test environment/);
  });

  it("a host joining a schema of the other environment is refused before it writes anything", async () => {
    const first = join(tempDir(), "data");
    const s = schema();
    expect((await runCli(["init", "--data", first, "--store", SHARED_POSTGRES_URL, "--schema", s, "--environment", "test"])).code).toBe(0);
    const second = join(tempDir(), "data");
    mkdirSync(second, { mode: 0o700 });
    for (const name of ["keyring.json", "identity.secret"]) writeFileSync(join(second, name), readFileSync(join(first, name)), { mode: 0o600 });
    const res = await runCli(["init", "--data", second, "--store", SHARED_POSTGRES_URL, "--schema", s, "--environment", "live"]);
    expect(res.stderr).toMatch(/^DATA_DIR_INVALID: PostgreSQL .* was initialised for the test environment, not live/);
    expect(readdirSync(second).sort()).toEqual(["identity.secret", "keyring.json"]);
  });

  it("refuses another store for a directory that has one, and PostgreSQL for a SQLite directory", async () => {
    const dir = join(tempDir(), "data");
    const s = schema();
    expect((await runCli(["init", "--data", dir, "--store", SHARED_POSTGRES_URL, "--schema", s])).code).toBe(0);
    const other = await runCli(["init", "--data", dir, "--store", SHARED_POSTGRES_URL, "--schema", schema()]);
    expect(other.stderr).toMatch(/^DATA_DIR_INVALID: .*already keeps its store in PostgreSQL/);
    const sqlite = join(tempDir(), "data");
    expect((await runCli(["init", "--data", sqlite])).code).toBe(0);
    const switched = await runCli(["init", "--data", sqlite, "--store", SHARED_POSTGRES_URL, "--schema", schema()]);
    expect(switched.stderr).toMatch(/^DATA_DIR_INVALID: .*already (keeps its store in SQLite|holds a SQLite store)/);
    expect(existsSync(join(sqlite, "store.json"))).toBe(false);
  });

  it("a gateway whose configuration names another store than its data directory does not start", async () => {
    const sqlite = join(tempDir(), "data");
    expect((await runCli(["init", "--data", sqlite])).code).toBe(0);
    const pgSettings = { backend: "postgres", url: SHARED_POSTGRES_URL, schema: schema(), poolSize: 2 } as const;
    await expect(openDataDir(sqlite, { store: pgSettings })).rejects.toThrow(DataDirError);
    await expect(openDataDir(sqlite, { store: pgSettings })).rejects.toThrow(/names PostgreSQL .* keeps its store in SQLite|store is PostgreSQL .* keeps its store in SQLite/);
    const pgDir = join(tempDir(), "data");
    const s = schema();
    expect((await runCli(["init", "--data", pgDir, "--store", SHARED_POSTGRES_URL, "--schema", s])).code).toBe(0);
    await expect(openDataDir(pgDir, { store: { backend: "sqlite" } })).rejects.toThrow(/store is SQLite, but .* keeps its store in PostgreSQL/);
    await expect(openDataDir(pgDir, { store: { ...pgSettings, schema: "another_schema" } })).rejects.toThrow(/keeps its store in PostgreSQL postgres@127\.0\.0\.1:5432\/test, schema pctest_/);
    // Nothing was created by the refused opens.
    expect(existsSync(join(sqlite, "store.json"))).toBe(false);
    expect(existsSync(join(pgDir, "portcullis.db"))).toBe(false);
  });

  it("refuses a password in the URL without printing it, and leaves nothing behind", async () => {
    const dir = join(tempDir(), "data");
    const res = await runCli(["init", "--data", dir, "--store", "postgres://postgres:s3cret-pw@127.0.0.1:5432/test"]);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/^VALIDATION_FAILED: --store must not hold a password/);
    expect(res.stderr + res.stdout).not.toContain("s3cret-pw");
    expect(existsSync(dir)).toBe(false);
  });

  it("a server that cannot be reached is DURABLE_STORE_UNREACHABLE, and nothing is written", async () => {
    const dir = join(tempDir(), "data");
    // Port 9 (discard) on loopback: nothing listens there.
    const res = await runCli(["init", "--data", dir, "--store", "postgres://postgres@127.0.0.1:9/test"]);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/^DURABLE_STORE_UNREACHABLE: cannot connect to PostgreSQL at 127\.0\.0\.1:9\/test/);
    expect(existsSync(dir)).toBe(false);
  });

  it("--production needs --store, and --schema needs --store", async () => {
    const dir = join(tempDir(), "data");
    expect((await runCli(["init", "--data", dir, "--production"])).stderr).toMatch(/^VALIDATION_FAILED: --production needs --store/);
    expect((await runCli(["init", "--data", dir, "--schema", "x"])).stderr).toMatch(/^VALIDATION_FAILED: --schema goes with --store/);
    expect((await runCli(["init", "--data", dir, "--production", "--store", SHARED_POSTGRES_URL, "--redis", "http://x"])).stderr).toMatch(/^VALIDATION_FAILED: --redis/);
    expect(existsSync(dir)).toBe(false);
  });
});

suite("portcullis init --production", () => {
  it("writes a commented configuration that parses as written (once its certificates exist): PostgreSQL, Redis, TLS, workers, a metrics token", async () => {
    const dir = join(tempDir(), "data");
    const s = schema();
    const res = await runCli(["init", "--data", dir, "--production", "--store", SHARED_POSTGRES_URL, "--schema", s, "--redis", "redis://127.0.0.1:6379", "--upstream", "http://10.0.0.7:9000"]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/store: PostgreSQL postgres@127\.0\.0\.1:5432\/test/);
    expect(res.stdout).toMatch(/copy .*keyring\.json, identity\.secret, store\.json, metrics\.token/);
    const text = readFileSync(join(dir, "portcullis.json"), "utf8");
    expect(text).toMatch(/^\/\/ Portcullis production configuration/);
    expect(text.split("\n").filter((l) => l.trim().startsWith("//")).length).toBeGreaterThan(15);
    expect(statSync(join(dir, "metrics.token")).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, "metrics.token"), "utf8").trim().length).toBeGreaterThanOrEqual(32);
    // The certificates the file names, made here (the operator brings their own).
    mkdirSync(join(dir, "tls"));
    const pki = makePki();
    try {
      for (const name of ["gateway", "admin"]) {
        writeFileSync(join(dir, "tls", `${name}.crt`), pki.server.certPem);
        writeFileSync(join(dir, "tls", `${name}.key`), pki.server.keyPem, { mode: 0o600 });
      }
    } finally {
      pki.cleanup();
    }
    const config = parseConfigText(text, dir);
    expect(config.store).toMatchObject({ backend: "postgres", url: SHARED_POSTGRES_URL, schema: s, poolSize: 10, outageGraceMs: 60_000 });
    expect(config.hot).toEqual({ backend: "redis", url: "redis://127.0.0.1:6379", prefix: "portcullis:" });
    expect(config.gateway).toMatchObject({ upstream: "http://10.0.0.7:9000", port: 8443, workers: "auto", scheme: "https", drainDelayMs: 5000, drainTimeoutMs: 20_000 });
    expect(config.gateway.tls).not.toBeNull();
    expect(config.admin.tls).not.toBeNull();
    expect(config.admin.metrics.tokenFile).toBe(join(dir, "metrics.token"));
    expect(config.routes.length).toBeGreaterThan(0);
    // A second run keeps the operator's edits.
    writeFileSync(join(dir, "portcullis.json"), `${text}// edited\n`);
    expect((await runCli(["init", "--data", dir, "--production", "--store", SHARED_POSTGRES_URL, "--schema", s])).code).toBe(0);
    expect(readFileSync(join(dir, "portcullis.json"), "utf8")).toMatch(/\/\/ edited\n$/);
  });
});
