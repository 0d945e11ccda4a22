/**
 * Encrypted backups of a PostgreSQL store (pg_dump custom format in the backup container): a filled
 * store round-trips into a fresh schema (its keys verify, its audit chain verifies), and into the
 * same schema after a loss; a damaged file, another KEK, a non-empty target and a backup of the
 * other backend are refused with the target unchanged and nothing left behind; a restore over a
 * newer store keeps what the newer store recorded since (replay state, the velocity ledger).
 * Real PostgreSQL (the shared server, a random schema per test, dropped afterwards), real pg_dump
 * and pg_restore.
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { verifyAudit } from "../../src/audit/verify.js";
import { readBackupHeader, restoreBackup, writeBackup } from "../../src/custody/backup.js";
import { restorePostgresBackup, writePostgresBackup } from "../../src/custody/backup-postgres.js";
import { Envelope } from "../../src/custody/envelope.js";
import { CustodyError } from "../../src/custody/errors.js";
import { KeyringFileProvider } from "../../src/custody/keyring.js";
import { childConnection, findPgTool, requirePgTool } from "../../src/custody/pg-tools.js";
import { initDataDir, openDataDir } from "../../src/core/data-dir.js";
import { valueOrThrow } from "../../src/errors/result.js";
import { parseCreateKeyInput } from "../../src/keys/input.js";
import { KeyService } from "../../src/keys/service.js";
import { PostgresStore } from "../../src/storage/postgres/store.js";
import { SHARED_POSTGRES_URL, adminQuery, dropSchema, postgresReachable, uniqueSchema } from "../support/postgres.js";
import { IN_CI, loudSkip } from "../support/redis.js";
import { newOperationId, type PolicySubject } from "../../src/contract/policy.js";
import { HoldService } from "../../src/holds/service.js";
import { HoldWithdrawals, Releases, WITHDRAWAL, approver, heldRequest } from "../approvals/support.js";
import { runCli } from "../support/cli.js";
import { itLeaksNoSecret, recordError, recordSecrets, recordText } from "./secrets.js";

const pgUp = await postgresReachable(SHARED_POSTGRES_URL);
const runPg = pgUp || IN_CI;
if (!runPg) loudSkip("the PostgreSQL backup tests", `no PostgreSQL answers at ${SHARED_POSTGRES_URL}`);

const URL = SHARED_POSTGRES_URL;
const dirs: string[] = [];
const schemas: string[] = [];
const T0 = 1_700_000_000_000;

function tempDir(tag: string): string {
  const d = mkdtempSync(join(tmpdir(), `portcullis-${tag}-`));
  dirs.push(d);
  return d;
}

function schema(tag: string): string {
  const s = uniqueSchema(tag);
  schemas.push(s);
  return s;
}

async function refusal(p: Promise<unknown>): Promise<CustodyError> {
  const err = await p.catch((e: unknown) => e);
  expect(err).toBeInstanceOf(CustodyError);
  recordError(err);
  return err as CustodyError;
}

/** The restore's own schemas and scratch databases: none may outlive it. */
async function leftovers(): Promise<string[]> {
  const rows = await adminQuery<{ name: string }>(URL, "SELECT nspname AS name FROM pg_namespace WHERE nspname LIKE 'pcrestore\\_%' UNION ALL SELECT datname FROM pg_database WHERE datname LIKE 'pcrestore\\_%'");
  return rows.map((r) => r.name);
}

async function schemaExists(name: string): Promise<boolean> {
  return (await adminQuery(URL, "SELECT 1 FROM pg_namespace WHERE nspname = $1", [name])).length === 1;
}

/** A source "host": a data directory's keyring, and a store in its own schema with two keys and some state. */
interface Source {
  readonly dir: string;
  readonly schema: string;
  readonly store: PostgresStore;
  readonly kek: KeyringFileProvider;
  readonly envelope: Envelope;
  readonly keys: KeyService;
  readonly secrets: Map<string, string>;
}

async function source(): Promise<Source> {
  const dir = tempDir("pgbk-src");
  KeyringFileProvider.create(join(dir, "keyring.json"));
  const kek = KeyringFileProvider.load(join(dir, "keyring.json"));
  const keyring = JSON.parse(readFileSync(join(dir, "keyring.json"), "utf8")) as { keks: Record<string, string> };
  recordSecrets(...Object.values(keyring.keks));
  const s = schema("bk");
  const store = await PostgresStore.open({ url: URL, schema: s, poolSize: 2 });
  await store.initMeta("environment", "test");
  const envelope = new Envelope(kek);
  const keys = new KeyService({ store: store, envelope, environment: "test" });
  const secrets = new Map<string, string>();
  for (const account of ["acct-a", "acct-b"]) {
    const created = await keys.create(valueOrThrow(parseCreateKeyInput({ account, scopes: ["read", "trade"] }, Date.now())), "test");
    if (created.secret === null) throw new Error("no secret");
    recordSecrets(created.secret);
    secrets.set(created.key.id, created.secret);
  }
  return { dir, schema: s, store, kek, envelope, keys, secrets };
}

/** A target data directory holding the source's keyring (as an operator copies it before a restore). */
function withKeyring(src: Source): { dir: string; kek: KeyringFileProvider } {
  const dir = tempDir("pgbk-dst");
  copyFileSync(join(src.dir, "keyring.json"), join(dir, "keyring.json"));
  return { dir, kek: KeyringFileProvider.load(join(dir, "keyring.json")) };
}

async function opened<T>(s: string, read: (store: PostgresStore) => Promise<T>): Promise<T> {
  const store = await PostgresStore.open({ url: URL, schema: s, poolSize: 2 });
  try {
    return await read(store);
  } finally {
    await store.close();
  }
}

const open: Source[] = [];

async function filled(): Promise<Source> {
  const s = await source();
  open.push(s);
  return s;
}

afterEach(async () => {
  for (const s of open.splice(0)) await s.store.close();
  for (const s of schemas.splice(0)) await dropSchema(URL, s);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

afterAll(async () => {
  if (pgUp) expect(await leftovers()).toEqual([]);
});

describe("pg tools", () => {
  it("finds pg_dump on PATH or under /usr/lib/postgresql/*/bin, and says what to install when neither has it", () => {
    const empty = tempDir("nopath");
    expect(findPgTool("pg_dump", empty, join(empty, "none"))).toBeNull();
    const err = (() => {
      try {
        requirePgTool("pg_dump", "backing up a PostgreSQL store", { path: empty, versionsRoot: join(empty, "none") });
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(CustodyError);
    expect(err).toMatchObject({ code: "BACKUP_UNSUPPORTED", message: expect.stringContaining("postgresql-client") as unknown });
    recordError(err);
    // Without PATH, Debian's versioned directory.
    const root = "/usr/lib/postgresql";
    const viaRoot = findPgTool("pg_restore", empty, root);
    if (viaRoot !== null) expect(viaRoot).toMatch(/^\/usr\/lib\/postgresql\/\d+\/bin\/pg_restore$/);
    expect(findPgTool("pg_dump")).not.toBeNull();
  });

  it("never puts a password on a child's command line: it goes to PGPASSWORD", () => {
    const { url, env } = childConnection("postgres://app:p%40ss-w0rd@db.internal:6432/venue", "scratch");
    expect(url).toBe("postgres://app@db.internal:6432/scratch");
    expect(env.PGPASSWORD).toBe("p@ss-w0rd");
    const plain = childConnection("postgres://app@db.internal/venue");
    expect(plain.url).toBe("postgres://app@db.internal/venue");
    expect(plain.env.PGPASSWORD).toBe(process.env.PGPASSWORD);
  });
});

describe.runIf(runPg)("backup and restore of a PostgreSQL store", () => {
  it("round-trips a filled store into a fresh schema: the keys verify, the audit chain verifies, the state is there", async () => {
    const src = await filled();
    await src.store.reserve("pck_test_v1_reserved", 123_456_789_012_345_678_901n);
    await src.store.policies.insert({ version: 1, document: '{"rules":[]}', digest: "d".repeat(64), rules: 0, createdAt: T0, createdBy: "cli:test" }, {});
    const out = join(tempDir("out"), "pg.backup");
    const written = await writePostgresBackup({ url: URL, schema: src.schema, kek: src.kek, environment: "test", out });
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(written.header).toMatchObject({ format: "portcullis-backup", version: 1, store: "postgres", schema: src.schema, provider: "keyring-file", kekVersion: 1, environment: "test", server: "postgres@127.0.0.1:5432/test" });
    expect(written.header.store === "postgres" ? written.header.pgDump : "").toMatch(/^\d+\.\d+/);
    expect(readBackupHeader(out).header).toEqual(written.header);
    const bytes = readFileSync(out);
    // pg_dump's custom format starts with "PGDMP"; none of it, no key id, no secret is in clear.
    expect(bytes.includes(Buffer.from("PGDMP"))).toBe(false);
    for (const [id, secret] of src.secrets) {
      expect(bytes.includes(Buffer.from(id))).toBe(false);
      expect(bytes.includes(Buffer.from(secret))).toBe(false);
    }

    // The source schema still exists (a copy made beside the live store): restored through a scratch database.
    const target = schema("bkdst");
    const { dir, kek } = withKeyring(src);
    const result = await restorePostgresBackup({ file: out, dataDir: dir, url: URL, schema: target, kek, force: false });
    expect(result).toMatchObject({ keys: 2, replaced: false, carried: null, carriedHolds: null, carriedSpend: null });
    expect(await leftovers()).toEqual([]);
    await opened(target, async (store) => {
      const keys = new KeyService({ store: store, envelope: new Envelope(kek), environment: "test" });
      for (const [id, secret] of src.secrets) expect((await keys.loadMaterial(id))?.hmacKey?.export().toString()).toBe(secret);
      const report = await verifyAudit(store.audit);
      expect(report).toMatchObject({ ok: true, problem: null });
      expect(report.verified).toBeGreaterThanOrEqual(2);
      expect(await store.getMeta("environment")).toBe("test");
      expect((await store.reservations()).get("pck_test_v1_reserved")).toBe(123_456_789_012_345_678_901n);
      expect(await store.policies.latest()).toEqual({ version: 1, digest: "d".repeat(64) });
      // The change feed's trigger notifies on the restored schema's own channel (its name is not in the dump).
      const heard = new Promise<readonly string[]>((resolve) => {
        const stop = store.subscribe((ids) => {
          stop();
          resolve(ids);
        });
      });
      const other = await PostgresStore.open({ url: URL, schema: target, poolSize: 1 });
      try {
        const id = [...src.secrets.keys()][0] ?? "";
        await new KeyService({ store: other, envelope: new Envelope(kek), environment: "test" }).suspend(id, "cli:test", "test");
        expect(await heard).toEqual([id]);
      } finally {
        await other.close();
      }
    });
    // The source is untouched.
    expect((await src.store.list({ limit: 10 })).length).toBe(2);
  });

  it("a pg_dump that fails is BACKUP_TOOL_FAILED with its own words, and leaves no file", async () => {
    const src = await filled();
    const outDir = tempDir("out");
    const missing = join(outDir, "missing-schema.backup");
    const noSchema = await refusal(writePostgresBackup({ url: URL, schema: "pctest_never_made", kek: src.kek, environment: "test", out: missing }));
    expect(noSchema.code).toBe("BACKUP_TOOL_FAILED");
    expect(noSchema.message).toMatch(/^pg_dump failed \(exit 1\): .*no matching schemas were found/);
    expect(existsSync(missing)).toBe(false);
    // No server there: pg_dump's connection error, never a password (the URL has one, moved to PGPASSWORD).
    const unreachable = join(outDir, "unreachable.backup");
    const down = await refusal(writePostgresBackup({ url: "postgres://postgres:Sekret-Password-1@127.0.0.1:1/test", schema: src.schema, kek: src.kek, environment: "test", out: unreachable }));
    recordSecrets("Sekret-Password-1");
    expect(down.code).toBe("BACKUP_TOOL_FAILED");
    expect(down.message).toContain("127.0.0.1");
    expect(existsSync(unreachable)).toBe(false);
  });

  it("restores under the schema's own name after it was lost (no scratch database)", async () => {
    const src = await filled();
    const out = join(tempDir("out"), "pg.backup");
    await writePostgresBackup({ url: URL, schema: src.schema, kek: src.kek, environment: "test", out });
    await src.store.close();
    open.splice(0);
    await dropSchema(URL, src.schema);
    const { dir, kek } = withKeyring(src);
    const result = await restorePostgresBackup({ file: out, dataDir: dir, url: URL, schema: src.schema, kek, force: false });
    expect(result).toMatchObject({ keys: 2, replaced: false });
    expect(await leftovers()).toEqual([]);
    await opened(src.schema, async (store) => {
      expect((await store.list({ limit: 10 })).map((k) => k.id).sort()).toEqual([...src.secrets.keys()].sort());
      expect(await verifyAudit(store.audit)).toMatchObject({ ok: true });
    });
  });

  it("refuses a damaged file, another KEK and a retired KEK version, leaving the target as it was and nothing behind", async () => {
    const src = await filled();
    const out = join(tempDir("out"), "pg.backup");
    await writePostgresBackup({ url: URL, schema: src.schema, kek: src.kek, environment: "test", out });
    const original = readFileSync(out);
    const parsed = readBackupHeader(out);
    const target = schema("bkdst");
    const { dir, kek } = withKeyring(src);
    const cases: [string, Buffer][] = [
      ["body byte", Buffer.from(original.map((b, i) => (i === parsed.bodyStart + 40 ? b ^ 1 : b)))],
      ["last body byte", Buffer.from(original.map((b, i) => (i === original.length - 17 ? b ^ 0x80 : b)))],
      ["tag byte", Buffer.from(original.map((b, i) => (i === original.length - 1 ? b ^ 1 : b)))],
      ["truncated", original.subarray(0, original.length - 100)],
      ["header schema", Buffer.from(original.toString("latin1").replace(`"schema":"${src.schema}"`, `"schema":"${src.schema.slice(0, -1)}x"`), "latin1")],
      ["not a backup", Buffer.from("PGDMP and so on")],
    ];
    for (const [what, bad] of cases) {
      const file = join(tempDir("bad"), "b");
      writeFileSync(file, bad);
      const err = await refusal(restorePostgresBackup({ file, dataDir: dir, url: URL, schema: target, kek, force: false }));
      expect([what, err.code]).toEqual([what, "BACKUP_MALFORMED"]);
      expect(await schemaExists(target)).toBe(false);
    }
    // Another keyring.
    const stranger = tempDir("stranger");
    KeyringFileProvider.create(join(stranger, "keyring.json"));
    const other = await refusal(restorePostgresBackup({ file: out, dataDir: stranger, url: URL, schema: target, kek: KeyringFileProvider.load(join(stranger, "keyring.json")), force: false }));
    expect(other.code).toBe("BACKUP_KEK_MISMATCH");
    expect(other.message).toContain("another KEK");
    // The same keyring, with the backup's version retired.
    await kek.addVersion();
    await kek.retire(1);
    const retired = await refusal(restorePostgresBackup({ file: out, dataDir: dir, url: URL, schema: target, kek, force: false }));
    expect(retired.code).toBe("BACKUP_KEK_MISMATCH");
    expect(retired.message).toContain("KEK version 1 is not held here");
    expect(await schemaExists(target)).toBe(false);
    expect(await leftovers()).toEqual([]);
  });

  it("refuses an envelope inside the dump under a KEK version the target no longer holds, and drops its staging schema", async () => {
    const src = await filled();
    // The backup's own data key under version 2, the keys' envelopes under version 1.
    expect(await src.kek.addVersion()).toBe(2);
    const out = join(tempDir("out"), "pg.backup");
    expect((await writePostgresBackup({ url: URL, schema: src.schema, kek: src.kek, environment: "test", out })).header.kekVersion).toBe(2);
    const { dir, kek } = withKeyring(src);
    await kek.retire(1);
    const target = schema("bkdst");
    const err = await refusal(restorePostgresBackup({ file: out, dataDir: dir, url: URL, schema: target, kek, force: false }));
    expect(err.code).toBe("BACKUP_KEK_MISMATCH");
    expect(err.message).toContain("KEK version(s) 1");
    expect(await schemaExists(target)).toBe(false);
    expect(await leftovers()).toEqual([]);
  });

  it("will not replace a schema that holds keys or policy state unless forced, nor one that is not a store's", async () => {
    const src = await filled();
    const out = join(tempDir("out"), "pg.backup");
    await writePostgresBackup({ url: URL, schema: src.schema, kek: src.kek, environment: "test", out });
    const { dir, kek } = withKeyring(src);
    // Another store with a key of its own.
    const target = schema("bkdst");
    const theirs = await opened(target, async (store) => {
      const created = await new KeyService({ store: store, envelope: new Envelope(kek), environment: "test" }).create(
        valueOrThrow(parseCreateKeyInput({ account: "theirs", scopes: ["read"] }, Date.now())),
        "test",
      );
      return created.key.id;
    });
    const err = await refusal(restorePostgresBackup({ file: out, dataDir: dir, url: URL, schema: target, kek, force: false }));
    expect(err.code).toBe("RESTORE_TARGET_NOT_EMPTY");
    expect(err.message).toMatch(/schema pctest_bkdst_\w+ already holds keys: .*--force/);
    expect(await opened(target, async (store) => (await store.get(theirs))?.id)).toBe(theirs);
    // Only policy state, no keys.
    const policyOnly = schema("bkdst");
    await opened(policyOnly, (store) => store.policies.insert({ version: 1, document: "{}", digest: "e".repeat(64), rules: 0, createdAt: T0, createdBy: "cli:test" }, {}));
    expect((await refusal(restorePostgresBackup({ file: out, dataDir: dir, url: URL, schema: policyOnly, kek, force: false }))).message).toContain("already holds policy versions");
    // A schema of something else is never replaced, forced or not.
    const foreign = schema("bkdst");
    await adminQuery(URL, `CREATE SCHEMA ${foreign}; CREATE TABLE ${foreign}.orders (id int)`);
    expect((await refusal(restorePostgresBackup({ file: out, dataDir: dir, url: URL, schema: foreign, kek, force: true }))).message).toContain("not a Portcullis store's");
    // Forced: the store is replaced, in one swap.
    const forced = await restorePostgresBackup({ file: out, dataDir: dir, url: URL, schema: target, kek, force: true });
    expect(forced).toMatchObject({ keys: 2, replaced: true, carried: { reservations: 0, logouts: 0 }, carriedSpend: 0 });
    await opened(target, async (store) => {
      expect(await store.get(theirs)).toBeUndefined();
      expect((await store.list({ limit: 10 })).length).toBe(2);
    });
    expect(await leftovers()).toEqual([]);
  });

  it("restores in place for a role without CREATEDB: the store moved aside and swapped, or moved back when the restore is refused", async () => {
    const role = `pctest_nocreatedb_${Date.now().toString(36)}`;
    await adminQuery(URL, `CREATE ROLE ${role} LOGIN NOCREATEDB; GRANT CREATE ON DATABASE test TO ${role}`);
    const roleUrl = `postgres://${role}@127.0.0.1:5432/test`;
    try {
      // The store is the role's own (it owns the schema), as a deployment's application role.
      const dir = tempDir("pgbk-role");
      KeyringFileProvider.create(join(dir, "keyring.json"));
      const kek = KeyringFileProvider.load(join(dir, "keyring.json"));
      recordSecrets(...Object.values((JSON.parse(readFileSync(join(dir, "keyring.json"), "utf8")) as { keks: Record<string, string> }).keks));
      const s = schema("bkrole");
      const store = await PostgresStore.open({ url: roleUrl, schema: s, poolSize: 2 });
      const keys = new KeyService({ store, envelope: new Envelope(kek), environment: "test" });
      const create = async (account: string): Promise<string> => (await keys.create(valueOrThrow(parseCreateKeyInput({ account, scopes: ["read"] }, Date.now())), "test")).key.id;
      let kept: string;
      const out = join(tempDir("out"), "b");
      const newer = join(tempDir("out"), "newer");
      try {
        kept = await create("kept");
        await writePostgresBackup({ url: roleUrl, schema: s, kek, environment: "test", out });
        await create("later");
        // A backup whose data key is under version 2 while the keys' envelopes are under version 1.
        await kek.addVersion();
        await writePostgresBackup({ url: roleUrl, schema: s, kek, environment: "test", out: newer });
      } finally {
        await store.close();
      }
      expect((await adminQuery(URL, "SELECT 1 FROM pg_roles WHERE rolname = $1 AND NOT rolcreatedb", [role])).length).toBe(1);
      // Refused after the store was moved aside (version 1 retired here): it is moved back, whole.
      const retiredHere = KeyringFileProvider.load(join(dir, "keyring.json"));
      const copyDir = tempDir("pgbk-role-retired");
      copyFileSync(join(dir, "keyring.json"), join(copyDir, "keyring.json"));
      const retiring = KeyringFileProvider.load(join(copyDir, "keyring.json"));
      await retiring.retire(1);
      const refused = await refusal(restorePostgresBackup({ file: newer, dataDir: copyDir, url: roleUrl, schema: s, kek: retiring, force: true }));
      expect(refused.code).toBe("BACKUP_KEK_MISMATCH");
      expect(await opened(s, async (st) => (await st.list({ limit: 10 })).length)).toBe(2);
      expect(await leftovers()).toEqual([]);
      // The older backup, in place: one key again.
      const result = await restorePostgresBackup({ file: out, dataDir: dir, url: roleUrl, schema: s, kek: retiredHere, force: true });
      expect(result).toMatchObject({ keys: 1, replaced: true, carried: { reservations: 0, logouts: 0 }, carriedHolds: 0, carriedSpend: 0 });
      expect(await opened(s, async (st) => (await st.list({ limit: 10 })).map((k) => k.id))).toEqual([kept]);
      expect(await leftovers()).toEqual([]);
    } finally {
      for (const st of schemas.splice(0)) await dropSchema(URL, st);
      await adminQuery(URL, `DROP OWNED BY ${role}; DROP ROLE ${role}`);
    }
  });

  it("refuses a backup of the other backend, both ways", async () => {
    const src = await filled();
    const pgOut = join(tempDir("out"), "pg.backup");
    await writePostgresBackup({ url: URL, schema: src.schema, kek: src.kek, environment: "test", out: pgOut });
    // A SQLite data directory with the same keyring.
    const sqliteDir = tempDir("sqlite");
    copyFileSync(join(src.dir, "keyring.json"), join(sqliteDir, "keyring.json"));
    await initDataDir(sqliteDir, "test");
    const toSqlite = await refusal(restoreBackup({ file: pgOut, dataDir: sqliteDir, kek: KeyringFileProvider.load(join(sqliteDir, "keyring.json")), force: true }));
    expect(toSqlite.code).toBe("BACKUP_STORE_MISMATCH");
    expect(toSqlite.message).toContain("holds a PostgreSQL store");
    const data = await openDataDir(sqliteDir);
    const sqliteOut = join(tempDir("out"), "sqlite.backup");
    try {
      if (data.store.kind !== "sqlite") throw new Error("not a SQLite data directory");
      await writeBackup({ dataDir: sqliteDir, store: data.store, kek: data.kek, environment: "test", out: sqliteOut });
    } finally {
      await data.close();
    }
    expect(readBackupHeader(sqliteOut).header).toMatchObject({ store: "sqlite" });
    const target = schema("bkdst");
    const { dir, kek } = withKeyring(src);
    const toPg = await refusal(restorePostgresBackup({ file: sqliteOut, dataDir: dir, url: URL, schema: target, kek, force: true }));
    expect(toPg.code).toBe("BACKUP_STORE_MISMATCH");
    expect(toPg.message).toContain("holds a SQLite store");
    expect(await schemaExists(target)).toBe(false);
  });

  it("restoring an older backup over the store keeps what the store recorded since: reservations, logouts, the velocity ledger", async () => {
    const src = await filled();
    const now = Date.now();
    await src.store.reserve("pck_test_v1_k1", 100n);
    await src.store.spend.decide({ kind: "withdraw", keyId: null, account: "acct-a", at: now, windows: [] }, () => ({
      record: { ref: "op_1", kind: "withdraw", keyId: null, account: "acct-a", asset: "USDT", value: { coefficient: 5n, scale: 0 }, at: now },
      result: null,
    }));
    const older = join(tempDir("out"), "older");
    await writePostgresBackup({ url: URL, schema: src.schema, kek: src.kek, environment: "test", out: older });
    // Since the backup: the reservation raised, a new one, a logout, a second spend.
    await src.store.reserve("pck_test_v1_k1", 5_000n);
    await src.store.reserve("pck_test_v1_k2", 7n);
    await src.store.endSession("ses_later", now + 3_600_000, now);
    await src.store.endSession("ses_expired", now - 1, now - 10);
    await src.store.spend.decide({ kind: "withdraw", keyId: null, account: "acct-a", at: now, windows: [] }, () => ({
      record: { ref: "op_2", kind: "withdraw", keyId: null, account: "acct-a", asset: "USDT", value: { coefficient: 9n, scale: 0 }, at: now },
      result: null,
    }));
    await src.store.close();
    open.splice(0);
    const { dir, kek } = withKeyring(src);
    // Into the store itself (its schema exists: through a scratch database), forced.
    const result = await restorePostgresBackup({ file: older, dataDir: dir, url: URL, schema: src.schema, kek, force: true });
    expect(result).toMatchObject({ keys: 2, replaced: true, carried: { reservations: 2, logouts: 1 }, carriedSpend: 1 });
    await opened(src.schema, async (store) => {
      expect(await store.reservations()).toEqual(new Map([["pck_test_v1_k1", 5_000n], ["pck_test_v1_k2", 7n]]));
      expect([...(await store.endedSessions(now)).keys()]).toEqual(["ses_later"]);
      expect(await store.spend.sums({ kind: "withdraw", keyId: null, account: "acct-a", at: now, windows: [{ per: "account", windowMs: 60_000 }] })).toEqual([{ coefficient: 14n, scale: 0 }]);
      expect(await verifyAudit(store.audit)).toMatchObject({ ok: true });
    });
    expect(await leftovers()).toEqual([]);
  });
});

describe.runIf(runPg)("PostgreSQL data directories: held operations and the CLI", () => {
  const alice = approver("alice");
  const bob = approver("bob");
  const policy = new HoldWithdrawals([{ group: "treasury", count: 2 }], 0);

  async function pgDataDir(tag: string, keyringFrom?: string): Promise<{ dir: string; schema: string }> {
    // As an operator prepares a host to restore on: the backup's keyring first, then init --store.
    const dir = tempDir(tag);
    if (keyringFrom !== undefined) copyFileSync(join(keyringFrom, "keyring.json"), join(dir, "keyring.json"));
    const s = schema(tag);
    await initDataDir(dir, "test", { backend: "postgres", url: URL, schema: s, poolSize: 2 });
    return { dir, schema: s };
  }

  async function within<T>(dir: string, run: (d: Awaited<ReturnType<typeof openDataDir>>) => Promise<T>): Promise<T> {
    const d = await openDataDir(dir);
    try {
      return await run(d);
    } finally {
      await d.close();
    }
  }

  function holdService(d: Awaited<ReturnType<typeof openDataDir>>): HoldService {
    return new HoldService({ store: d.store.holds, envelope: d.envelope, policy, pollMs: 1_000_000 });
  }

  async function approve(holds: HoldService, id: string, who: ReturnType<typeof approver>): Promise<string> {
    const digest = (await holds.view(id)).digest;
    return (await holds.decide(id, who.name, "approve", digest, who.sign("approve", digest))).state;
  }

  it("restoring an older backup never makes an operation the replaced store released ready again; its answer and envelopes carry over", async () => {
    const src = await pgDataDir("bkh");
    const older = join(tempDir("out"), "older");
    const id = newOperationId();
    await within(src.dir, async (d) => {
      const holds = holdService(d);
      const releases = new Releases();
      holds.setRequestReleaser(releases.releaser);
      await holds.addApprover("alice", ["treasury"], alice.publicPem, "test");
      await holds.addApprover("bob", ["treasury"], bob.publicPem, "test");
      const subject: PolicySubject = { operation: WITHDRAWAL, account: "acct", keyId: null, client: "127.0.0.1", at: Date.now() };
      await holds.holdRequest(id, subject, policy.decide(subject, id), heldRequest("coin=USDT&amount=9&address=0xdd&network=ETH"), null);
      expect(await approve(holds, id, alice)).toBe("pending");
      // The backup: one approval to go.
      await writePostgresBackup({ url: URL, schema: src.schema, kek: d.kek, environment: "test", out: older });
      // Ready, and released by the service's loop at once: the decision answers ready, releasing or
      // released, as the loop's claim races it; idle() waits for the release.
      expect(["ready", "releasing", "released"]).toContain(await approve(holds, id, bob));
      await holds.idle();
      await holds.stop();
      expect(releases.count(id)).toBe(1);
      expect((await holds.view(id)).state).toBe("released");
    });
    // The older backup restored over the store where it was released.
    const target = withKeyring({ dir: src.dir } as Source);
    const result = await restorePostgresBackup({ file: older, dataDir: target.dir, url: URL, schema: src.schema, kek: target.kek, force: true });
    expect(result).toMatchObject({ replaced: true, carriedHolds: 1 });
    await within(src.dir, async (d) => {
      const there = holdService(d);
      const again = new Releases();
      there.setRequestReleaser(again.releaser);
      expect(await there.view(id)).toMatchObject({ state: "released", outcome: { status: 200, body: '{"id":"venue-1"}' } });
      // The approval the backup lacks cannot make it ready, and no pass of the loop sends it.
      expect(await approve(there, id, bob).catch((e: unknown) => (e as { code?: string }).code)).toBe("OPERATION_STATE_CONFLICT");
      await there.tick();
      await there.stop();
      expect(again.calls).toEqual([]);
      const row = await d.store.holds.hold(id);
      if (row === undefined) throw new Error("not restored");
      expect(JSON.parse((await d.envelope.decrypt(row.held, "held-request", id)).toString("utf8"))).toMatchObject({ url: "/sapi/v1/capital/withdraw/apply" });
      expect(await verifyAudit(d.store.audit)).toMatchObject({ ok: true });
    });
  });

  it("the CLI: backup and restore follow the data directory's store; refusals are one line with their code", async () => {
    const src = await pgDataDir("bkcli");
    const created = await runCli(["keys", "create", "--data", src.dir, "--account", "acct-1", "--scopes", "read", "--json"]);
    expect(created.code).toBe(0);
    const key = JSON.parse(created.stdout) as { id: string; secret: string };
    recordSecrets(key.secret);
    const out = join(tempDir("out"), "cli.backup");
    const backup = await runCli(["backup", "--data", src.dir, "--out", out, "--json"]);
    expect([backup.code, backup.stderr]).toEqual([0, ""]);
    expect(JSON.parse(backup.stdout)).toMatchObject({ file: out, header: { store: "postgres", schema: src.schema, provider: "keyring-file", kekVersion: 1 } });
    // Another "host": the same keyring, its own (empty) schema.
    const dst = await pgDataDir("bkcli", src.dir);
    const restore = await runCli(["restore", "--in", out, "--data", dst.dir]);
    expect([restore.code, restore.stderr]).toEqual([0, ""]);
    expect(restore.stdout).toContain(`restored 1 key(s) into ${dst.dir} (PostgreSQL postgres@127.0.0.1:5432/test, schema ${dst.schema})`);
    const list = await runCli(["keys", "list", "--data", dst.dir, "--json"]);
    expect((JSON.parse(list.stdout) as { id: string }[]).map((k) => k.id)).toEqual([key.id]);
    const again = await runCli(["restore", "--in", out, "--data", dst.dir]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^RESTORE_TARGET_NOT_EMPTY: schema \w+ already holds keys.*--force to replace it\n$/);
    const forced = await runCli(["restore", "--in", out, "--data", dst.dir, "--force", "--json"]);
    expect(forced.code).toBe(0);
    expect(JSON.parse(forced.stdout)).toMatchObject({ keys: 1, replaced: true, carriedHolds: 0, carriedSpend: 0 });
    // A SQLite data directory with the same keyring.
    const sqliteDir = tempDir("bkcli-sqlite");
    copyFileSync(join(src.dir, "keyring.json"), join(sqliteDir, "keyring.json"));
    const mismatch = await runCli(["restore", "--in", out, "--data", sqliteDir, "--json"]);
    expect(mismatch.code).toBe(1);
    expect(JSON.parse(mismatch.stderr)).toMatchObject({ error: { code: "BACKUP_STORE_MISMATCH" } });
    recordText(created.stderr, backup.stdout, restore.stdout, list.stdout, again.stderr, forced.stdout, mismatch.stderr);
  });
});

itLeaksNoSecret();
