import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { constants, copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { OperatorError } from "../errors/catalogue.js";
import { SERVED_META } from "../storage/memory/hot.js";
import { LOCK_MIGRATIONS, schemaLockKey } from "../storage/postgres/locks.js";
import { PostgresStore } from "../storage/postgres/store.js";
import { type BackupResult, type RestoreResult, TARGET_CONTENT } from "./backup.js";
import { type PostgresBackupHeader, backupStore, decryptBody, readBackupHeader, unwrapDataKey, writeContainer } from "./backup-container.js";
import { Envelope } from "./envelope.js";
import { CustodyError } from "./errors.js";
import type { KekProvider } from "./keyring.js";
import { type PgRun, childConnection, pgToolVersion, requirePgTool, runPgTool, serverOf } from "./pg-tools.js";
import { custodyStatus } from "./rotation.js";

/**
 * Encrypted backups of a PostgreSQL durable store (docs/custody.md, "Backup and restore").
 *
 * `writePostgresBackup`: `pg_dump --format=custom` of the store's schema only (no owner, no
 * privileges: a restore belongs to whoever restores it), its output encrypted chunk by chunk into
 * the container of backup-container.ts as it arrives — no plaintext copy touches the disk. pg_dump
 * reads in one snapshot, so the gateways keep serving.
 *
 * `restorePostgresBackup`: the store is rebuilt beside the live one and swapped in, in one
 * transaction, only when everything checked out:
 *
 * 1. the backup file is copied into a private (0700) scratch directory, and its copy decrypted once
 *    without keeping anything, to check its tag: GCM authenticates only at the end, and pg_restore
 *    executes what it reads, so it is never given a byte that has not been authenticated (a
 *    ciphertext's bits can be flipped to flip the plaintext's: an altered dump could otherwise run
 *    SQL before the tag failed). The second pass decrypts the private copy, which no one else can
 *    change, into pg_restore's stdin: the plaintext never touches the disk either;
 * 2. pg_restore cannot rename a schema: a dump of schema A creates A. Where A does not exist in the
 *    target database, it is restored there and renamed to a staging schema; where it does (the
 *    store being replaced, or the live store a copy is made of), it is restored into a scratch
 *    database (CREATE DATABASE), renamed there, and dumped again from it into the target database;
 *    a role that may not create databases can still restore a store in place (the backup's schema
 *    is the target's): the store is moved aside under a holding name meanwhile, and back on failure;
 * 3. the staging schema is migrated (a backup of an older Portcullis), the replaced store's replay
 *    state, held operations' later states and velocity ledger entries are carried into it (as the
 *    SQLite restore does), and its envelopes are checked against this KEK;
 * 4. in one transaction (holding the target schema's migration lock, so a gateway starting meanwhile
 *    waits and then finds the new store): the old schema renamed away, the staging schema renamed to
 *    the target's, the old schema dropped. Any failure before leaves the target as it was (renamed
 *    back, when it was moved aside), and the staging schema and scratch database are dropped.
 */

const SCHEMA_RE = /^(?!pg_)[a-z_][a-z0-9_]{0,47}$/;

function checkSchema(schema: string): string {
  if (!SCHEMA_RE.test(schema)) throw new TypeError("schema: lower-case letters, digits and _, starting with a letter or _, at most 48 characters, not pg_…");
  return schema;
}

/** The arguments every pg_dump of a store is run with. */
function dumpArgs(url: string, schema: string): string[] {
  // --lock-wait-timeout: pg_dump's table locks (ACCESS SHARE) wait only for DDL, a migration; it
  // must not wait for ever. --no-password: fail rather than prompt, there is no one to answer.
  return ["--format=custom", "--no-owner", "--no-privileges", "--no-password", "--lock-wait-timeout=30000", `--schema=${schema}`, `--dbname=${url}`];
}

function restoreArgs(url: string): string[] {
  // One transaction: a dump that fails half-way leaves nothing.
  return ["--single-transaction", "--exit-on-error", "--no-owner", "--no-privileges", "--no-password", `--dbname=${url}`];
}

/** Yields a program's stdout; ends when it exits (rejecting when it failed); kills it when the consumer stops early. */
async function* outputOf(run: PgRun): AsyncGenerator<Buffer> {
  const { child } = run;
  child.stdin?.end();
  try {
    if (child.stdout === null) throw new TypeError("no stdout");
    for await (const chunk of child.stdout) yield chunk as Buffer;
    await run.done;
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
  }
}

/** Writes `chunk` to a program's stdin, waiting for it to drain; rejects when the program failed. */
async function feed(run: PgRun, chunk: Buffer): Promise<void> {
  const stdin = run.child.stdin;
  if (stdin === null || stdin.destroyed) {
    await run.done;
    return;
  }
  if (stdin.write(chunk)) return;
  try {
    await Promise.race([once(stdin, "drain"), run.done]);
  } catch (err) {
    // A pipe broken by the program's exit (EPIPE): its own failure is the one to report.
    await run.done;
    throw err;
  }
}

/**
 * Writes an encrypted backup of the store in `schema` at `url` to `out` (mode 0600; an existing file
 * is never overwritten). BACKUP_UNSUPPORTED when pg_dump cannot be found, BACKUP_TOOL_FAILED when it
 * fails (no file is left then).
 */
export async function writePostgresBackup(options: { url: string; schema: string; kek: KekProvider; environment: string; out: string }): Promise<BackupResult> {
  const schema = checkSchema(options.schema);
  const tool = requirePgTool("pg_dump", "backing up a PostgreSQL store");
  const { url, env } = childConnection(options.url);
  const fields = { store: "postgres", schema, server: serverOf(options.url), pgDump: pgToolVersion(tool), environment: options.environment } as const;
  const { header, size } = await writeContainer<PostgresBackupHeader>(options.out, options.kek, fields, () => outputOf(runPgTool(tool, dumpArgs(url, schema), env, "pg_dump")));
  return { file: options.out, header, size };
}

/** A connection of its own (administration: schemas, databases, the swap). */
async function connect(url: string, application: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: application, connectionTimeoutMillis: 10_000 });
  client.on("error", () => undefined);
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw new OperatorError("DURABLE_STORE_UNREACHABLE", `cannot connect to PostgreSQL at ${serverOf(url)}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  return client;
}

async function schemaExists(client: pg.Client, schema: string): Promise<boolean> {
  return (await client.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", [schema])).rowCount === 1;
}

async function tableExists(client: pg.Client, schema: string, table: string): Promise<boolean> {
  const found = (await client.query<{ t: string | null }>("SELECT to_regclass($1) AS t", [`${schema}.${table}`])).rows[0]?.t;
  return found !== undefined && found !== null;
}

/** What the target schema holds, by what (TARGET_CONTENT); throws when it holds tables that are not a store's. */
async function targetContent(client: pg.Client, schema: string): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  if (!(await schemaExists(client, schema))) return counts;
  if (!(await tableExists(client, schema, "schema_migrations"))) {
    const { rows } = await client.query<{ n: string }>("SELECT COUNT(*) AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1", [schema]);
    if (Number(rows[0]?.n ?? 0) > 0) {
      throw new CustodyError("RESTORE_TARGET_NOT_EMPTY", `schema ${schema} holds tables that are not a Portcullis store's: a restore replaces the whole schema, so name an empty or new one`);
    }
    return counts;
  }
  for (const [table, what] of TARGET_CONTENT) {
    if (!(await tableExists(client, schema, table))) continue;
    const n = Number((await client.query<{ n: string }>(`SELECT COUNT(*) AS n FROM ${schema}.${table}`)).rows[0]?.n ?? 0);
    if (n > 0) counts.set(what, n);
  }
  return counts;
}

/** The replaced store's state carried into the restored one (see RestoreResult). */
interface Carried {
  reservations: number;
  logouts: number;
  holds: number;
  spend: number;
}

/**
 * Carries into `staging` what the store in `previous` recorded that an older backup must not roll
 * back, in one transaction (as restoreBackup does for SQLite): increasing-nonce reservations (only
 * ever raised) and logouts not yet expired; the later state of every held operation the previous
 * store had claimed, released or ended while the backup holds it as pending, ready or releasing
 * (states only move forward: nothing sent is sent again); the velocity ledger entries recorded after
 * the backup's last.
 */
async function carryOver(client: pg.Client, previous: string, staging: string, now: number): Promise<Carried> {
  const carried: Carried = { reservations: 0, logouts: 0, holds: 0, spend: 0 };
  const both = async (table: string): Promise<boolean> => (await tableExists(client, previous, table)) && (await tableExists(client, staging, table));
  await client.query("BEGIN");
  try {
    if (await both("sequence_reservations")) {
      carried.reservations = Number((await client.query<{ n: string }>(`SELECT COUNT(*) AS n FROM ${previous}.sequence_reservations`)).rows[0]?.n ?? 0);
      await client.query(
        `INSERT INTO ${staging}.sequence_reservations AS r (key_id, ceiling) SELECT key_id, ceiling FROM ${previous}.sequence_reservations
         ON CONFLICT (key_id) DO UPDATE SET ceiling = excluded.ceiling WHERE excluded.ceiling > r.ceiling`,
      );
    }
    if (await both("ended_sessions")) {
      const { rowCount } = await client.query(
        `INSERT INTO ${staging}.ended_sessions AS e (session_id, until) SELECT session_id, until FROM ${previous}.ended_sessions WHERE until > $1
         ON CONFLICT (session_id) DO UPDATE SET until = GREATEST(e.until, excluded.until)`,
        [now],
      );
      carried.logouts = rowCount ?? 0;
    }
    if (await both("held_operations")) {
      const { rowCount } = await client.query(
        `UPDATE ${staging}.held_operations h SET state = p.state, outcome_status = p.outcome_status, outcome = p.outcome, claimed_by = p.claimed_by,
           claimed_at = p.claimed_at, updated_at = GREATEST(h.updated_at, p.updated_at), reason = p.reason
         FROM ${previous}.held_operations p
         WHERE h.id = p.id AND p.state NOT IN ('pending', 'ready') AND h.state IN ('pending', 'ready', 'releasing') AND h.state <> p.state`,
      );
      carried.holds = rowCount ?? 0;
    }
    if (await both("policy_spend")) {
      const { rowCount } = await client.query(
        `INSERT INTO ${staging}.policy_spend (ref, kind, key_id, account, asset, value, at)
         SELECT ref, kind, key_id, account, asset, value, at FROM ${previous}.policy_spend
         WHERE seq > (SELECT COALESCE(MAX(seq), 0) FROM ${staging}.policy_spend) ORDER BY seq`,
      );
      carried.spend = rowCount ?? 0;
    }
    await client.query("COMMIT");
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  }
  return carried;
}

/** A random name for a staging schema or scratch database. */
function scratchName(): string {
  return `pcrestore_${randomBytes(6).toString("hex")}`;
}

/**
 * Restores a PostgreSQL backup into the store in `schema` at `url` (the data directory's store), with
 * `kek` (the data directory's own provider). Refused, with the target unchanged, when the backup
 * holds a SQLite store (BACKUP_STORE_MISMATCH), was made under another provider or KEK
 * (BACKUP_PROVIDER_MISMATCH, BACKUP_KEK_MISMATCH — its own data key, or any envelope inside it), is
 * damaged (BACKUP_MALFORMED), or the target holds keys, held operations, approvers or policy state
 * and `force` is not set (RESTORE_TARGET_NOT_EMPTY). Stop the gateways on the store first.
 */
export async function restorePostgresBackup(options: { file: string; dataDir: string; url: string; schema: string; kek: KekProvider; force: boolean }): Promise<RestoreResult> {
  const { file, dataDir, kek } = options;
  const target = checkSchema(options.schema);
  const outer = readBackupHeader(file);
  if (backupStore(outer.header) !== "postgres") {
    throw new CustodyError("BACKUP_STORE_MISMATCH", `the backup holds a SQLite store; ${dataDir} keeps its store in PostgreSQL (schema ${target}): restore it into a data directory without --store`);
  }
  const pgRestore = requirePgTool("pg_restore", "restoring a PostgreSQL store");
  const admin = await connect(options.url, "portcullis-restore");
  let dataKey: Buffer | null = null;
  let staging: string | null = null;
  let scratchDb: string | null = null;
  let scratch: string | null = null;
  /** The dump's own schema while it exists under its name (dropped if the rename never happened). */
  let restoredSource: string | null = null;
  /** The replaced store's holding schema while it is moved aside (no scratch database). */
  let aside: string | null = null;
  try {
    const existing = await targetContent(admin, target);
    if (!options.force && existing.size > 0) {
      throw new CustodyError("RESTORE_TARGET_NOT_EMPTY", `schema ${target} already holds ${[...existing.keys()].join(", ")}: restore into an empty schema, or pass --force to replace it`);
    }
    if (!existsSync(dataDir)) mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    scratch = mkdtempSync(join(dataDir, ".restore-"));
    // The private copy both passes read: a file someone else can write could change between them.
    const copy = join(scratch, "backup");
    copyFileSync(file, copy, constants.COPYFILE_EXCL);
    const parsed = readBackupHeader(copy);
    if (!parsed.prefix.equals(outer.prefix)) throw new CustodyError("BACKUP_MALFORMED", `${file} changed while it was being restored`);
    const header = parsed.header as PostgresBackupHeader;
    dataKey = await unwrapDataKey(parsed, kek, "this data directory");
    // Pass 1: the tag, before pg_restore sees anything.
    await decryptBody(copy, parsed, dataKey, () => undefined);

    staging = scratchName();
    const source = checkSchema(header.schema);
    const { url: targetUrl, env } = childConnection(options.url);
    const restoreInto = async (url: string): Promise<void> => {
      const key = dataKey;
      if (key === null) throw new TypeError("no data key");
      const run = runPgTool(pgRestore, restoreArgs(url), env, "pg_restore");
      run.child.stdin?.on("error", () => undefined);
      await decryptBody(copy, parsed, key, (chunk) => feed(run, chunk));
      run.child.stdin?.end();
      await run.done;
    };
    if (!(await schemaExists(admin, source))) {
      await restoreInto(targetUrl);
      restoredSource = source;
      await admin.query(`ALTER SCHEMA ${source} RENAME TO ${staging}`);
      restoredSource = null;
    } else {
      // The dump's schema exists here: restored into a scratch database, renamed there, dumped again.
      const name = scratchName();
      let refused: unknown = null;
      try {
        await admin.query(`CREATE DATABASE ${name}`);
        scratchDb = name;
      } catch (err) {
        refused = err;
      }
      if (scratchDb !== null) {
        const pgDump = requirePgTool("pg_dump", "restoring a backup of a schema that exists in the target database");
        const { url: scratchUrl } = childConnection(options.url, scratchDb);
        await restoreInto(scratchUrl);
        const inScratch = await connect(scratchUrl, "portcullis-restore");
        try {
          await inScratch.query(`ALTER SCHEMA ${source} RENAME TO ${staging}`);
        } finally {
          await inScratch.end().catch(() => undefined);
        }
        const dump = runPgTool(pgDump, dumpArgs(scratchUrl, staging), env, "pg_dump (scratch database)");
        const load = runPgTool(pgRestore, restoreArgs(targetUrl), env, "pg_restore");
        load.child.stdin?.on("error", () => undefined);
        for await (const chunk of outputOf(dump)) await feed(load, chunk);
        load.child.stdin?.end();
        await load.done;
      } else if (source === target) {
        // The store being replaced is the backup's own schema, and no scratch database may be made
        // (a role without CREATEDB): the store is moved aside under a holding name, the dump
        // restored under its own name and renamed to the staging schema. Not atomic, unlike the
        // swap: any failure before the swap renames the store back, but a process killed in
        // between leaves it in the holding schema (pcrestore_…), which ALTER SCHEMA … RENAME TO
        // brings back.
        const holding = scratchName();
        await admin.query(`ALTER SCHEMA ${target} RENAME TO ${holding}`);
        aside = holding;
        await restoreInto(targetUrl);
        restoredSource = source;
        await admin.query(`ALTER SCHEMA ${source} RENAME TO ${staging}`);
        restoredSource = null;
      } else {
        throw new CustodyError(
          "BACKUP_UNSUPPORTED",
          `the backup holds schema ${source}, which exists in this database: restoring it under ${target} needs a scratch database, which could not be created (${refused instanceof Error ? refused.message : String(refused)}): grant CREATEDB, or restore into a database without schema ${source}`,
        );
      }
    }

    // The staging schema: migrated to this Portcullis, the replaced store's later state carried
    // over, every envelope's KEK version held here.
    const now = Date.now();
    // Where the replaced store is meanwhile: its own schema, or the holding one.
    const previous = aside ?? target;
    const replaced = await tableExists(admin, previous, "keys");
    const store = await PostgresStore.open({ url: options.url, schema: staging, poolSize: 2 });
    let carried: Carried | null = null;
    let keys: number;
    try {
      if (replaced) carried = await carryOver(admin, previous, staging, now);
      const status = await custodyStatus(store, new Envelope(kek));
      if (status.envelopes.missingVersions.length > 0) {
        throw new CustodyError(
          "BACKUP_KEK_MISMATCH",
          `the backup holds secrets under KEK version(s) ${status.envelopes.missingVersions.join(", ")}, which this ${kek.name} no longer holds`,
        );
      }
      keys = Number((await admin.query<{ n: string }>(`SELECT COUNT(*) AS n FROM ${staging}.keys`)).rows[0]?.n ?? 0);
      // The next process fences its in-memory replay state as after any restart (docs/replay.md).
      await store.initMeta(SERVED_META, `restored ${new Date(now).toISOString()}`);
    } finally {
      await store.close();
    }

    // The swap, in one transaction.
    const old = scratchName();
    await admin.query("BEGIN");
    try {
      await admin.query("SET LOCAL lock_timeout = 30000");
      await admin.query("SELECT pg_advisory_xact_lock($1, $2)", [LOCK_MIGRATIONS, schemaLockKey(target)]);
      if (await schemaExists(admin, target)) await admin.query(`ALTER SCHEMA ${target} RENAME TO ${old}`);
      await admin.query(`ALTER SCHEMA ${staging} RENAME TO ${target}`);
      await admin.query(`DROP SCHEMA IF EXISTS ${old} CASCADE`);
      if (aside !== null) await admin.query(`DROP SCHEMA ${aside} CASCADE`);
      await admin.query("COMMIT");
    } catch (err) {
      await admin.query("ROLLBACK").catch(() => undefined);
      throw new CustodyError(
        "BACKUP_TOOL_FAILED",
        `the restored store could not replace schema ${target} (${err instanceof Error ? err.message : String(err)}): is a gateway still using it? Stop it, then restore again`,
      );
    }
    staging = null;
    aside = null;
    return {
      header,
      keys,
      replaced,
      carried: carried === null ? null : { reservations: carried.reservations, logouts: carried.logouts },
      carriedHolds: carried === null ? null : carried.holds,
      carriedSpend: carried === null ? null : carried.spend,
    };
  } finally {
    dataKey?.fill(0);
    if (staging !== null) await admin.query(`DROP SCHEMA IF EXISTS ${staging} CASCADE`).catch(() => undefined);
    if (restoredSource !== null) await admin.query(`DROP SCHEMA IF EXISTS ${restoredSource} CASCADE`).catch(() => undefined);
    // The replaced store back under its name (nothing else holds it: the restored schema is
    // staging's, or was dropped just above).
    if (aside !== null) await admin.query(`ALTER SCHEMA ${aside} RENAME TO ${target}`).catch(() => undefined);
    if (scratchDb !== null) await admin.query(`DROP DATABASE IF EXISTS ${scratchDb} WITH (FORCE)`).catch(() => undefined);
    await admin.end().catch(() => undefined);
    if (scratch !== null) rmSync(scratch, { recursive: true, force: true });
  }
}
