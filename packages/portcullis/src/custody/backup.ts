import { closeSync, constants, createReadStream, existsSync, fsyncSync, mkdirSync, mkdtempSync, openSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { SqliteStore } from "../storage/sqlite/store.js";
import { SERVED_META } from "../storage/memory/hot.js";
import { Envelope } from "./envelope.js";
import { CustodyError } from "./errors.js";
import type { KekProvider } from "./keyring.js";
import { custodyStatus } from "./rotation.js";
import { type BackupHeader, type PostgresBackupHeader, type SqliteBackupHeader, backupStore, decryptBody, malformed, readBackupHeader, unwrapDataKey, writeContainer } from "./backup-container.js";

/**
 * Encrypted backups of a SQLite durable store. `backup` takes a consistent copy of the SQLite
 * database with SQLite's online backup API (the gateway keeps serving meanwhile), and encrypts it
 * with AES-256-GCM under a fresh data key wrapped by the deployment's KEK, in the container of
 * custody/backup-container.ts. Restoring needs that KEK: the same keyring file (or HSM token) and
 * a KEK version it still holds. The secrets inside the database are envelope-encrypted as well,
 * under the same KEK. A PostgreSQL store's backups are custody/backup-postgres.ts's.
 */
export { readBackupHeader } from "./backup-container.js";
export type { BackupHeader, PostgresBackupHeader, SqliteBackupHeader } from "./backup-container.js";

export interface BackupResult {
  readonly file: string;
  readonly header: BackupHeader;
  /** Size of the backup file (bytes). */
  readonly size: number;
}

/**
 * Writes an encrypted backup of `store` to `out` (created with mode 0600; an existing file is
 * never overwritten). The plaintext copy lives only in a private (0700) directory inside the data
 * directory while it is encrypted, and is removed afterwards.
 */
export async function writeBackup(options: { dataDir: string; store: SqliteStore; kek: KekProvider; environment: string; out: string }): Promise<BackupResult> {
  const { dataDir, store, kek, out } = options;
  const scratch = mkdtempSync(join(dataDir, ".backup-"));
  try {
    const copy = join(scratch, "portcullis.db");
    await store.backupTo(copy);
    const fields = { store: "sqlite", environment: options.environment, bytes: statSync(copy).size } as const;
    const { header, size } = await writeContainer<SqliteBackupHeader>(out, kek, fields, () => createReadStream(copy) as AsyncIterable<Buffer>);
    return { file: out, header, size };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

export interface RestoreResult {
  readonly header: BackupHeader;
  readonly keys: number;
  readonly replaced: boolean;
  /**
   * The replay state carried over from the replaced database (docs/replay.md): its increasing-
   * nonce reservations and logouts, which a backup taken earlier does not hold; null when there
   * was none, or it could not be read (then rotate the keys that sign with increasing nonces).
   */
  readonly carried: { readonly reservations: number; readonly logouts: number } | null;
  /**
   * Held operations the backup holds as pending, ready or releasing that the replaced database had
   * already claimed, released or ended: they keep the later state, so none is sent twice; null
   * when there was no database, or it could not be read.
   */
  readonly carriedHolds: number | null;
  /**
   * Velocity ledger entries the replaced database recorded after the backup's last: carried over,
   * so what was spent since still counts toward the caps; null as for `carriedHolds`.
   */
  readonly carriedSpend: number | null;
}

interface ReplayState {
  readonly reservations: ReadonlyMap<string, bigint>;
  readonly logouts: ReadonlyMap<string, number>;
}

/** The replay state of the database a restore replaces, read without changing it; null if unreadable. */
function replayStateOf(path: string, now: number): ReplayState | null {
  try {
    const db = new Database(path, { readonly: true, fileMustExist: true });
    try {
      const has = (table: string): boolean => db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table) !== undefined;
      const reservations = has("sequence_reservations")
        ? new Map(db.prepare<[], { key_id: string; ceiling: string }>("SELECT key_id, ceiling FROM sequence_reservations").all().map((r) => [r.key_id, BigInt(r.ceiling)]))
        : new Map<string, bigint>();
      const logouts = has("ended_sessions")
        ? new Map(db.prepare<[number], { session_id: string; until: number }>("SELECT session_id, until FROM ended_sessions WHERE until > ?").all(now).map((r) => [r.session_id, r.until]))
        : new Map<string, number>();
      return { reservations, logouts };
    } finally {
      db.close();
    }
  } catch {
    return null;
  }
}

/**
 * What a restore would replace, by table: the keys, and what migrations 11 and 12 added (policy
 * versions, address books, the velocity ledger, approvers, held operations). A table the database
 * does not have yet counts 0.
 */
export const TARGET_CONTENT = [
  ["keys", "keys"],
  ["held_operations", "held operations"],
  ["approvers", "approvers"],
  ["policy_versions", "policy versions"],
  ["address_book", "address book entries"],
  ["policy_spend", "velocity ledger entries"],
] as const;

function contentCounts(path: string): Map<string, number> {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const counts = new Map<string, number>();
    for (const [table, what] of TARGET_CONTENT) {
      const exists = db.prepare<[string], { n: number }>("SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ?").get(table);
      if ((exists?.n ?? 0) === 0) continue;
      const n = db.prepare<[], { n: number }>(`SELECT COUNT(*) AS n FROM ${table}`).get()?.n ?? 0;
      if (n > 0) counts.set(what, n);
    }
    return counts;
  } finally {
    db.close();
  }
}

/** A velocity ledger entry (migration 11) as stored. */
interface SpendRow {
  readonly seq: number;
  readonly ref: string;
  readonly kind: string;
  readonly key_id: string | null;
  readonly account: string | null;
  readonly asset: string;
  readonly coefficient: string | null;
  readonly scale: number | null;
  readonly at: number;
}

/** The velocity ledger of the database a restore replaces, read without changing it; null if unreadable. */
function ledgerOf(path: string): SpendRow[] | null {
  try {
    const db = new Database(path, { readonly: true, fileMustExist: true });
    try {
      if (db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'policy_spend'").get() === undefined) return [];
      return db.prepare<[], SpendRow>("SELECT seq, ref, kind, key_id, account, asset, coefficient, scale, at FROM policy_spend ORDER BY seq").all();
    } finally {
      db.close();
    }
  } catch {
    return null;
  }
}

/**
 * Carries into the restored database at `path` (migrated) the ledger entries the replaced one
 * recorded after the backup's last (a higher sequence number): what was spent since the backup
 * still counts toward every cap. Answers how many.
 */
function carryLedger(path: string, entries: readonly SpendRow[]): number {
  if (entries.length === 0) return 0;
  const db = new Database(path, { fileMustExist: true });
  try {
    db.pragma("busy_timeout = 5000");
    const insert = db.prepare("INSERT INTO policy_spend (ref, kind, key_id, account, asset, coefficient, scale, at) VALUES (@ref, @kind, @key_id, @account, @asset, @coefficient, @scale, @at)");
    return db
      .transaction(() => {
        const last = db.prepare<[], { seq: number | null }>("SELECT MAX(seq) AS seq FROM policy_spend").get()?.seq ?? 0;
        const later = entries.filter((e) => e.seq > last);
        for (const e of later) insert.run({ ref: e.ref, kind: e.kind, key_id: e.key_id, account: e.account, asset: e.asset, coefficient: e.coefficient, scale: e.scale, at: e.at });
        return later.length;
      })
      .immediate();
  } finally {
    db.close();
  }
}

/** A held operation's state in the database a restore replaces, once it moved past ready or ended. */
interface HeldState {
  readonly id: string;
  readonly state: string;
  readonly outcome_status: number | null;
  readonly outcome: Buffer | null;
  readonly claimed_by: string | null;
  readonly claimed_at: number | null;
  readonly updated_at: number;
  readonly reason: string | null;
}

/**
 * The held operations of the database a restore replaces that are no longer pending or ready
 * (claimed, released, unknown, cancelled, rejected, expired), read without changing it; null if
 * unreadable. A backup is older: it may hold one of them still ready, and the restored gateway
 * would send it a second time.
 */
function heldStatesOf(path: string): HeldState[] | null {
  try {
    const db = new Database(path, { readonly: true, fileMustExist: true });
    try {
      if (db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'held_operations'").get() === undefined) return [];
      return db
        .prepare<[], HeldState>("SELECT id, state, outcome_status, outcome, claimed_by, claimed_at, updated_at, reason FROM held_operations WHERE state NOT IN ('pending', 'ready')")
        .all();
    } finally {
      db.close();
    }
  } catch {
    return null;
  }
}

/**
 * Carries `states` into the restored database at `path` (migrated): an operation it holds as
 * pending, ready or releasing takes the later state (states only move forward), so nothing the
 * replaced database had claimed, sent or ended is claimed again. Answers how many moved.
 */
function carryHeldStates(path: string, states: readonly HeldState[]): number {
  if (states.length === 0) return 0;
  const db = new Database(path, { fileMustExist: true });
  try {
    db.pragma("busy_timeout = 5000");
    const update = db.prepare(
      `UPDATE held_operations SET state = @state, outcome_status = @outcome_status, outcome = @outcome, claimed_by = @claimed_by,
         claimed_at = @claimed_at, updated_at = MAX(updated_at, @updated_at), reason = @reason
       WHERE id = @id AND state IN ('pending', 'ready', 'releasing') AND state <> @state`,
    );
    return db.transaction(() => states.reduce((n, s) => n + update.run(s).changes, 0)).immediate();
  } finally {
    db.close();
  }
}

/**
 * Restores a backup into `dataDir` with `kek` (the data directory's own KEK provider). Refused,
 * with nothing written, when the backup was made under another provider or another KEK
 * (BACKUP_PROVIDER_MISMATCH, BACKUP_KEK_MISMATCH), when it is damaged (BACKUP_MALFORMED), or
 * when the target already holds keys and `force` is not set (RESTORE_TARGET_NOT_EMPTY). Stop
 * the gateway on the data directory first.
 */
export async function restoreBackup(options: { file: string; dataDir: string; kek: KekProvider; force: boolean }): Promise<RestoreResult> {
  const { file, dataDir, kek } = options;
  const parsed = readBackupHeader(file);
  const { header } = parsed;
  if (backupStore(header) !== "sqlite") {
    throw new CustodyError(
      "BACKUP_STORE_MISMATCH",
      `the backup holds a PostgreSQL store (schema ${(header as PostgresBackupHeader).schema}); ${dataDir} keeps its store in SQLite: restore it into a data directory initialised with --store postgres://…`,
    );
  }
  const dataKey = await unwrapDataKey(parsed, kek, "this data directory");
  const target = join(dataDir, "portcullis.db");
  if (!existsSync(dataDir)) mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const existing = existsSync(target) ? contentCounts(target) : new Map<string, number>();
  if (!options.force && existing.size > 0) {
    dataKey.fill(0);
    throw new CustodyError("RESTORE_TARGET_NOT_EMPTY", `${target} already holds ${[...existing.keys()].join(", ")}: restore into an empty data directory, or pass --force to replace it`);
  }
  const scratch = mkdtempSync(join(dataDir, ".restore-"));
  const staged = join(scratch, "portcullis.db");
  try {
    const out = openSync(staged, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    try {
      // Into a private file: nothing reads it until the tag has been checked.
      await decryptBody(file, parsed, dataKey, (chunk) => {
        writeSync(out, chunk);
      });
      fsyncSync(out);
    } finally {
      closeSync(out);
      dataKey.fill(0);
    }
    // Check what came out before it replaces anything: a database, with envelopes this KEK opens.
    const store = new SqliteStore(staged);
    let keys: number;
    const now = Date.now();
    const previous = existsSync(target) ? replayStateOf(target, now) : null;
    const previousHolds = existsSync(target) ? heldStatesOf(target) : null;
    const previousLedger = existsSync(target) ? ledgerOf(target) : null;
    let carriedHolds = 0;
    let carriedSpend = 0;
    try {
      // Held operations the replaced database had claimed, sent or ended keep that state: at most
      // once survives a restore (docs/approvals.md). Carried before the KEK check, which covers the
      // answers carried with them. What it spent since the backup still counts toward the caps.
      if (previousHolds !== null) carriedHolds = carryHeldStates(staged, previousHolds);
      if (previousLedger !== null) carriedSpend = carryLedger(staged, previousLedger);
      const status = await custodyStatus(store, new Envelope(kek));
      if (status.envelopes.missingVersions.length > 0) {
        throw new CustodyError(
          "BACKUP_KEK_MISMATCH",
          `the backup holds secrets under KEK version(s) ${status.envelopes.missingVersions.join(", ")}, which this ${kek.name} no longer holds`,
        );
      }
      keys = contentCounts(staged).get("keys") ?? 0;
      // A backup is older than the database it replaces: the replay state is carried over (only
      // ever raised), and the next process fences as after any restart.
      if (previous !== null) {
        for (const [keyId, ceiling] of previous.reservations) await store.reserve(keyId, ceiling);
        for (const [sessionId, until] of previous.logouts) await store.endSession(sessionId, until, now);
      }
      await store.initMeta(SERVED_META, `restored ${new Date(now).toISOString()}`);
    } finally {
      await store.close();
    }
    const replaced = existsSync(target);
    for (const suffix of ["-wal", "-shm"]) rmSync(`${target}${suffix}`, { force: true });
    renameSync(staged, target);
    return {
      header,
      keys,
      replaced,
      carried: previous === null ? null : { reservations: previous.reservations.size, logouts: previous.logouts.size },
      carriedHolds: previousHolds === null ? null : carriedHolds,
      carriedSpend: previousLedger === null ? null : carriedSpend,
    };
  } catch (err) {
    if (err instanceof Error && err.name === "SqliteError") throw malformed("the contents are not a Portcullis database");
    throw err;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
