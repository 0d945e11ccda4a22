/**
 * `portcullis audit …` on a data directory whose store.json names a PostgreSQL schema: the real
 * CLI in its own process, against a schema filled through PostgresStore, beside a SQLite data
 * directory filled with exactly the same entries. The reading commands must print the same bytes
 * on both, and verification must name the same problem for the same tampering. Without a
 * reachable PostgreSQL the file is skipped loudly, except under CI=true, where it fails.
 */
import Database from "better-sqlite3";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditFields } from "../../src/audit/events.js";
import { KeyringFileProvider } from "../../src/custody/keyring.js";
import { writeStoreFile } from "../../src/storage/location.js";
import { PostgresStore } from "../../src/storage/postgres/store.js";
import { SqliteStore } from "../../src/storage/sqlite/store.js";
import type { KeyChange, KeyRow, KeyStore } from "../../src/storage/types.js";
import { CLI, runCli } from "../support/cli.js";
import { keyRecord } from "../support/keys.js";
import { SHARED_POSTGRES_URL, adminQuery, dropSchema, postgresReachable, uniqueSchema } from "../support/postgres.js";
import { IN_CI, loudSkip } from "../support/redis.js";
import { decision } from "./support.js";

const pgUp = await postgresReachable(SHARED_POSTGRES_URL);
const runPg = pgUp || IN_CI;
if (!runPg) loudSkip("portcullis audit on a PostgreSQL data directory", `no PostgreSQL answers at ${SHARED_POSTGRES_URL}`);

const SCHEMA = uniqueSchema("auditcli");
/** Every time is fixed relative to this (an hour back), so `--since 1h` is meaningful on both stores. */
const NOW = Date.now() - 30 * 60_000;

let dir: string;
/** The PostgreSQL data directory (store.json only, plus what signing needs). */
let pgData: string;
/** The SQLite twin: the same entries in portcullis.db. */
let liteData: string;
const K1 = `pck_test_v1_${"a".repeat(28)}`;
const K2 = `pck_test_v1_${"b".repeat(28)}`;

const errorCode = (stderr: string): string => (JSON.parse(stderr) as { error: { code: string } }).error.code;
const lines = (text: string): Record<string, unknown>[] =>
  text
    .trim()
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as Record<string, unknown>);

function keyRow(id: string, account: string): KeyRow {
  const envelope = Buffer.alloc(23, 0xab);
  envelope.writeUInt8(1, 0);
  envelope.writeUInt32BE(1, 1);
  return { ...keyRecord({ id, account, createdAt: NOW, updatedAt: NOW }), secretEnvelope: envelope, passphraseHash: null, passphraseEnvelope: null };
}

const change = (action: KeyChange["action"], at: number, detail: Record<string, unknown> = {}): KeyChange => ({ action, actor: "cli:test", at, detail });

/** The same history on any store: two keys created, one suspended, 30 decisions. 33 entries. */
async function fill(store: KeyStore & { readonly audit: { append(entries: readonly AuditFields[]): Promise<unknown> } }): Promise<void> {
  await store.insert(keyRow(K1, "acct-a"), change("create", NOW));
  await store.insert(keyRow(K2, "acct-b"), change("create", NOW + 1));
  await store.transition(K1, ["active"], "suspended", "cli test", change("suspend", NOW + 2, { reason: "cli test" }));
  await store.audit.append(Array.from({ length: 30 }, (_, i) => decision(i + 1, NOW + 10 + i)));
}

/** Runs `audit ARGS` on both data directories; answers both results. */
async function both(args: readonly string[]): Promise<{ pg: Awaited<ReturnType<typeof runCli>>; lite: Awaited<ReturnType<typeof runCli>> }> {
  const [pg, lite] = await Promise.all([runCli(["audit", ...args, "--data", pgData]), runCli(["audit", ...args, "--data", liteData])]);
  return { pg, lite };
}

/** Runs `sql` on the schema behind the store's back (an intruder with database access). */
const tamperPg = (sql: string): Promise<unknown> => adminQuery(SHARED_POSTGRES_URL, `SET search_path TO ${SCHEMA}; ${sql}`);
function tamperLite(sql: string): void {
  const db = new Database(join(liteData, "portcullis.db"));
  try {
    db.exec(sql);
  } finally {
    db.close();
  }
}

describe.runIf(runPg)("portcullis audit on a PostgreSQL data directory", () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "portcullis-audit-cli-pg-"));
    pgData = join(dir, "pg");
    liteData = join(dir, "lite");
    for (const d of [pgData, liteData]) {
      // What `portcullis init` lays out: the keyring and identity secret beside the store.
      rmSync(d, { recursive: true, force: true });
      mkdirSync(d, { mode: 0o700 });
      KeyringFileProvider.create(join(d, "keyring.json"));
      writeFileSync(join(d, "identity.secret"), `${randomBytes(32).toString("base64url")}\n`, { mode: 0o600 });
    }
    writeStoreFile(pgData, { backend: "postgres", url: SHARED_POSTGRES_URL, schema: SCHEMA, poolSize: 2 });
    const pg = await PostgresStore.open({ url: SHARED_POSTGRES_URL, schema: SCHEMA, poolSize: 2 });
    const lite = new SqliteStore(join(liteData, "portcullis.db"));
    try {
      for (const s of [pg, lite]) {
        await s.initMeta("environment", "test");
        await fill(s);
      }
    } finally {
      await pg.close();
      await lite.close();
    }
  });
  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    await dropSchema(SHARED_POSTGRES_URL, SCHEMA);
  });

  it("verify passes the intact log and prints what SQLite prints for the same entries", async () => {
    const { pg, lite } = await both(["verify"]);
    expect(pg.code).toBe(0);
    expect(pg.stdout).toContain("audit log verified: 33 entries checked (stored: #1–#33");
    expect(pg.stdout).toBe(lite.stdout);
    const json = await both(["verify", "--json"]);
    expect(JSON.parse(json.pg.stdout)).toMatchObject({ ok: true, verified: 33, first: 1, last: 33, checkpoints: 0, unconfirmed: 33 });
    expect(json.pg.stdout).toBe(json.lite.stdout);
  });

  it("query: every filter answers what it answers on SQLite", async () => {
    for (const args of [
      ["--key", K1],
      ["--account", "acct-b", "--event", "key.*"],
      ["--event", "request.deny"],
      ["--event", "key.*", "--event", "request.allow", "--limit", "5"],
      ["--since", "2999-01-01T00:00:00Z"],
      ["--since", "1h", "--limit", "5"],
      ["--since", String(NOW + 12), "--until", String(NOW + 20)],
    ]) {
      const { pg, lite } = await both(["query", ...args, "--json"]);
      expect(pg.code, args.join(" ")).toBe(0);
      expect(pg.stdout, args.join(" ")).toBe(lite.stdout);
    }
    const byKey = lines((await runCli(["audit", "query", "--data", pgData, "--key", K1, "--json"])).stdout);
    expect(byKey.map((e) => e.event)).toEqual(["key.create", "key.suspend"]);
    expect(lines((await runCli(["audit", "query", "--data", pgData, "--event", "request.deny", "--json"])).stdout)).toHaveLength(10);
    const window = lines((await runCli(["audit", "query", "--data", pgData, "--since", String(NOW + 12), "--until", String(NOW + 20), "--json"])).stdout);
    expect(window.map((e) => e.seq)).toEqual([6, 7, 8, 9, 10, 11, 12, 13]);
    // Bad filters are refused before the store is asked.
    const bad = await runCli(["audit", "query", "--data", pgData, "--event", "Not An Event", "--json"]);
    expect(bad.code).toBe(1);
    expect(errorCode(bad.stderr)).toBe("VALIDATION_FAILED");
    // 18 CLI processes, each about a second to start under load: more than the default 20 s.
  }, 60_000);

  it("tail: the latest entries oldest first, as on SQLite", async () => {
    const { pg, lite } = await both(["tail", "-n", "2", "--json"]);
    expect(lines(pg.stdout).map((e) => e.seq)).toEqual([32, 33]);
    expect(pg.stdout).toBe(lite.stdout);
    const human = await both(["tail", "-n", "3", "--account", "acct-1"]);
    expect(human.pg.stdout).not.toBe("");
    expect(human.pg.stdout).toBe(human.lite.stdout);
  });

  it("export: every entry as JSON Lines with its hash (the same bytes as SQLite's); --out creates a 0600 file once", async () => {
    const { pg, lite } = await both(["export"]);
    expect(pg.code).toBe(0);
    const all = lines(pg.stdout);
    expect(all.map((e) => e.seq)).toEqual(Array.from({ length: 33 }, (_, i) => i + 1));
    for (const e of all) expect(e.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(pg.stdout).toBe(lite.stdout);
    const out = join(dir, "pg-export.jsonl");
    const file = await runCli(["audit", "export", "--data", pgData, "--event", "key.*", "--out", out]);
    expect(file.code).toBe(0);
    expect(file.stderr).toContain("exported 3 entries");
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(readFileSync(out, "utf8").trim().split("\n")).toHaveLength(3);
    expect(errorCode((await runCli(["audit", "export", "--data", pgData, "--out", out, "--json"])).stderr)).toBe("VALIDATION_FAILED");
  });

  it("tail --follow prints entries another process commits to PostgreSQL, and stops cleanly on SIGTERM", async () => {
    const child = spawn(process.execPath, [CLI, "audit", "tail", "--data", pgData, "-n", "1", "--follow", "--json"], { stdio: "pipe" });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    const until = async (what: string): Promise<void> => {
      for (let i = 0; i < 200 && !out.includes(what); i++) await new Promise((r) => setTimeout(r, 50));
      expect(out).toContain(what);
    };
    const store = await PostgresStore.open({ url: SHARED_POSTGRES_URL, schema: SCHEMA, poolSize: 1 });
    try {
      await until('"seq":33');
      // The reader's sessions are read-only on the server (what the contract suite proves by writing).
      const sessions = await adminQuery<{ n: string }>(SHARED_POSTGRES_URL, "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE application_name = $1", [`portcullis:${SCHEMA}:audit-reader`]);
      expect(Number(sessions[0]?.n)).toBeGreaterThan(0);
      await store.audit.append([{ ...decision(99, NOW + 100), account: "acct-follow" }]);
      await until("acct-follow");
      expect(lines(out).at(-1)).toMatchObject({ seq: 34, account: "acct-follow" });
    } finally {
      await store.close();
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
    }
    // Keep the SQLite twin the same history.
    const lite = new SqliteStore(join(liteData, "portcullis.db"));
    try {
      await lite.audit.append([{ ...decision(99, NOW + 100), account: "acct-follow" }]);
    } finally {
      await lite.close();
    }
  });

  it("the store.json names nothing usable: AUDIT_LOG_UNAVAILABLE, DURABLE_STORE_UNREACHABLE, DATA_DIR_INVALID", async () => {
    const empty = join(dir, "empty-schema");
    mkdirSync(empty);
    writeStoreFile(empty, { backend: "postgres", url: SHARED_POSTGRES_URL, schema: uniqueSchema("none"), poolSize: 2 });
    const none = await runCli(["audit", "verify", "--data", empty, "--json"]);
    expect(none.code).toBe(1);
    expect(errorCode(none.stderr)).toBe("AUDIT_LOG_UNAVAILABLE");
    const down = join(dir, "down");
    mkdirSync(down);
    writeStoreFile(down, { backend: "postgres", url: "postgres://postgres@127.0.0.1:1/test", schema: "portcullis", poolSize: 2 });
    const unreachable = await runCli(["audit", "query", "--data", down]);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/^DURABLE_STORE_UNREACHABLE: cannot read PostgreSQL at 127\.0\.0\.1:1\/test: /);
    const garbled = join(dir, "garbled");
    mkdirSync(garbled);
    writeFileSync(join(garbled, "store.json"), "{ not json");
    const bad = await runCli(["audit", "tail", "--data", garbled, "--json"]);
    expect(bad.code).toBe(1);
    expect(errorCode(bad.stderr)).toBe("DATA_DIR_INVALID");
  });

  it("verify names the same problem as SQLite for the same tampering: an entry's text, its query columns, a deleted entry", async () => {
    const cases: { tamper: string; restore: string; code: string; seq: number }[] = [
      {
        tamper: "UPDATE audit_log SET entry = replace(entry, 'req-7', 'req-X') WHERE seq = 10",
        restore: "UPDATE audit_log SET entry = replace(entry, 'req-X', 'req-7') WHERE seq = 10",
        code: "ENTRY_ALTERED",
        seq: 10,
      },
      {
        tamper: "UPDATE audit_log SET account = 'acct-other' WHERE seq = 12",
        restore: "UPDATE audit_log SET account = 'acct-4' WHERE seq = 12",
        code: "ENTRY_COLUMNS_ALTERED",
        seq: 12,
      },
    ];
    for (const c of cases) {
      await tamperPg(c.tamper);
      tamperLite(c.tamper);
      try {
        const { pg, lite } = await both(["verify", "--json"]);
        expect(pg.code).toBe(1);
        expect(errorCode(pg.stderr)).toBe("AUDIT_VERIFY_FAILED");
        expect((JSON.parse(pg.stdout) as { problem: unknown }).problem).toMatchObject({ code: c.code, seq: c.seq });
        expect(pg.stdout).toBe(lite.stdout);
        expect(pg.stderr).toBe(lite.stderr);
      } finally {
        await tamperPg(c.restore);
        tamperLite(c.restore);
      }
      expect((await runCli(["audit", "verify", "--data", pgData])).code).toBe(0);
    }
    // Last, as it cannot be undone: a deleted entry.
    await tamperPg("DELETE FROM audit_log WHERE seq = 20");
    tamperLite("DELETE FROM audit_log WHERE seq = 20");
    const { pg, lite } = await both(["verify", "--json"]);
    expect((JSON.parse(pg.stdout) as { problem: unknown }).problem).toMatchObject({ code: "ENTRY_MISSING", seq: 20 });
    expect(pg.stdout).toBe(lite.stdout);
  });
});

/** The commands that sign (checkpoint, public-key, archive) open the data directory with openDataDir, keyring and all. */
describe.runIf(runPg)("portcullis audit checkpoint | public-key | archive on a PostgreSQL data directory", () => {
  const schema = uniqueSchema("auditsign");
  let root: string;
  let data: string;
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "portcullis-audit-sign-pg-"));
    data = join(root, "data");
    mkdirSync(data, { mode: 0o700 });
    KeyringFileProvider.create(join(data, "keyring.json"));
    writeFileSync(join(data, "identity.secret"), `${randomBytes(32).toString("base64url")}\n`, { mode: 0o600 });
    writeStoreFile(data, { backend: "postgres", url: SHARED_POSTGRES_URL, schema, poolSize: 2 });
    const store = await PostgresStore.open({ url: SHARED_POSTGRES_URL, schema, poolSize: 2 });
    try {
      await store.initMeta("environment", "test");
      await fill(store);
    } finally {
      await store.close();
    }
  });
  afterAll(async () => {
    rmSync(root, { recursive: true, force: true });
    await dropSchema(SHARED_POSTGRES_URL, schema);
  });

  it("checkpoint signs the head; public-key prints the key verify then trusts", async () => {
    const res = await runCli(["audit", "checkpoint", "--data", data, "--json"]);
    expect(res.stderr).toBe("");
    expect(JSON.parse(res.stdout)).toMatchObject({ seq: 33 });
    const anchor = join(root, "anchor.json");
    writeFileSync(anchor, res.stdout);
    const pub = await runCli(["audit", "public-key", "--data", data]);
    expect(pub.code).toBe(0);
    const key = join(root, "audit.pub");
    writeFileSync(key, pub.stdout);
    const verified = await runCli(["audit", "verify", "--data", data, "--public-key", key, "--anchor", anchor, "--json"]);
    expect(verified.code).toBe(0);
    expect(JSON.parse(verified.stdout)).toMatchObject({ ok: true, verified: 33, unconfirmed: 0, keys: [{ trustedBy: "given" }] });
  });

  it("archive moves a prefix into a signed segment that verify reads; a tampered range is refused", async () => {
    const res = await runCli(["audit", "archive", "--data", data, "--upto", "20", "--json"]);
    expect(res.stderr).toBe("");
    expect(JSON.parse(res.stdout)).toMatchObject({ first: 1, last: 20 });
    const report = JSON.parse((await runCli(["audit", "verify", "--data", data, "--json"])).stdout) as { ok: boolean; first: number; archived: { entries: number; filesVerified: number } };
    expect(report).toMatchObject({ ok: true, first: 21, archived: { entries: 20, filesVerified: 1 } });
    await adminQuery(SHARED_POSTGRES_URL, `UPDATE ${schema}.audit_log SET entry = replace(entry, 'req-20', 'req-X') WHERE seq = 23`);
    const refused = await runCli(["audit", "archive", "--data", data, "--upto", "25", "--json"]);
    expect(refused.code).toBe(1);
    expect(errorCode(refused.stderr)).toBe("AUDIT_ARCHIVE_REFUSED");
    expect((JSON.parse((await runCli(["audit", "verify", "--data", data, "--json"])).stdout) as { problem: unknown }).problem).toMatchObject({ code: "ENTRY_ALTERED", seq: 23 });
  });
});
