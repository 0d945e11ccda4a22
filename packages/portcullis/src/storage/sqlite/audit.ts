import Database from "better-sqlite3";
import { bounded, encodeEntry } from "../../audit/canonical.js";
import { GENESIS, type SignedCheckpoint, chainHash } from "../../audit/chain.js";
import { keyChangeFields } from "../../audit/entries.js";
import type { AuditFields } from "../../audit/events.js";
import type { AppendOptions, AppendResult, ArchiveRecord, AuditKey, AuditReader, AuditStore, ChainHead, EntryQuery, StoredEntry } from "../../audit/store.js";

export type { EntryQuery } from "../../audit/store.js";

/**
 * The audit log in SQLite (migration 6): the chain in `audit_log`, signed checkpoints, the public
 * keys that signed them, the archived ranges, and the spill files already replayed.
 *
 * Appends run inside a write transaction (`BEGIN IMMEDIATE`), which SQLite serialises across
 * connections and processes, and read the head inside it: the gateway, a CLI beside it and a
 * second gateway on the same file all extend one gap-free chain.
 */

interface HeadRow {
  seq: number;
  hash: string;
}

interface CheckpointRow {
  seq: number;
  hash: string;
  at: number;
  kid: string;
  signature: Buffer;
}

interface ArchiveRow {
  first_seq: number;
  last_seq: number;
  prev_hash: string;
  last_hash: string;
  file: string;
  digest: string;
  at: number;
  kid: string;
  signature: Buffer;
}

interface KeyRow {
  kid: string;
  algorithm: string;
  public_key: string;
  provider: string;
  created_at: number;
}

/** The columns of a stored entry, named as StoredEntry names them (rows need no copying). */
const ENTRY_COLUMNS = "seq, at, event, key_id AS key, account, entry, hash";

const CHUNK = 5000;

function toArchive(r: ArchiveRow): ArchiveRecord {
  return { first: r.first_seq, last: r.last_seq, prev: r.prev_hash, hash: r.last_hash, file: r.file, digest: r.digest, at: r.at, kid: r.kid, signature: r.signature };
}

/** Writes `fields` as entries after the current head. The caller holds a write transaction. */
function appendRows(stmts: Statements, entries: readonly AuditFields[]): AppendResult {
  const head = readHead(stmts);
  let seq = head.seq;
  let hash = head.hash;
  for (const f of entries) {
    seq += 1;
    const text = encodeEntry(seq, f);
    hash = chainHash(hash, text);
    // The query columns hold exactly what the entry holds (bounded like it).
    stmts.insert.run(seq, f.at, bounded(f.event), f.key === undefined ? null : bounded(f.key), f.account === undefined ? null : bounded(f.account), text, hash);
  }
  return { first: head.seq + 1, head: { seq, hash }, duplicate: false };
}

function readHead(stmts: Statements): ChainHead {
  const last = stmts.head.get();
  if (last !== undefined) return last;
  const archived = stmts.archivedHead.get();
  return archived ?? { seq: 0, hash: GENESIS };
}

interface Statements {
  insert: Database.Statement<[number, number, string, string | null, string | null, string, string]>;
  head: Database.Statement<[], HeadRow>;
  archivedHead: Database.Statement<[], HeadRow>;
  hashAt: Database.Statement<[number], { hash: string }>;
  keyOwner: Database.Statement<[string], { account: string; sub_account: string | null }>;
  markReplay: Database.Statement<[string, number, number, number]>;
  unmark: Database.Statement<[string]>;
}

function prepare(db: Database.Database): Statements {
  return {
    insert: db.prepare("INSERT INTO audit_log (seq, at, event, key_id, account, entry, hash) VALUES (?, ?, ?, ?, ?, ?, ?)"),
    head: db.prepare("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"),
    archivedHead: db.prepare("SELECT last_seq AS seq, last_hash AS hash FROM audit_archives ORDER BY last_seq DESC LIMIT 1"),
    hashAt: db.prepare("SELECT hash FROM audit_log WHERE seq = ?"),
    keyOwner: db.prepare("SELECT account, sub_account FROM keys WHERE id = ?"),
    markReplay: db.prepare("INSERT OR IGNORE INTO audit_spill_replays (id, first_seq, entries, at) VALUES (?, ?, ?, ?)"),
    unmark: db.prepare("DELETE FROM audit_spill_replays WHERE id = ?"),
  };
}

function parseDetail(json: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(json);
    return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : { value: v };
  } catch {
    return {};
  }
}

/**
 * Migration 6's data step: the key changes recorded before the audit log existed become its first
 * entries, in their original order, marked `imported` (they were not tamper-evident before today).
 */
export function importKeyChanges(db: Database.Database): void {
  const stmts = prepare(db);
  const rows = db
    .prepare<[], { key_id: string; action: string; actor: string; at: number; detail: string; account: string | null; sub_account: string | null }>(
      "SELECT c.key_id, c.action, c.actor, c.at, c.detail, k.account, k.sub_account FROM key_changes c LEFT JOIN keys k ON k.id = c.key_id ORDER BY c.seq",
    )
    .all();
  if (rows.length === 0) return;
  appendRows(
    stmts,
    rows.map((r) =>
      keyChangeFields({ keyId: r.key_id, action: r.action, actor: r.actor, at: r.at, detail: { ...parseDetail(r.detail), imported: true }, account: r.account, subAccount: r.sub_account }),
    ),
  );
}

/** A batch's marker row (SqliteAudit.appendMarked): its id, and the writer's previous one (removed). */
export interface BatchMarker {
  readonly id: string;
  readonly previous: string | null;
}

export interface SqliteAuditOptions {
  readonly spillDir: string | null;
  readonly archiveDir: string | null;
}

/**
 * The SQLite audit store, on the store's own connection (the key-change entries must share its
 * transactions). Also an AuditSource for verification, and the reads behind queries and archiving.
 */
export class SqliteAudit implements AuditStore, AuditReader {
  readonly spillDir: string | null;
  readonly archiveDir: string | null;
  private readonly db: Database.Database;
  private readonly stmts: Statements;

  constructor(db: Database.Database, options: SqliteAuditOptions) {
    this.db = db;
    this.spillDir = options.spillDir;
    this.archiveDir = options.archiveDir;
    this.stmts = prepare(db);
  }

  /**
   * Appends the entry of a key change, inside the caller's transaction: the store calls this
   * wherever it records a `KeyChange` (its `key_changes` row), so every key operation is audited,
   * including ones added later. The arguments are the change feed row's.
   */
  keyChange(keyId: string, action: string, actor: string, at: number, detail: string): void {
    if (!this.db.inTransaction) throw new Error("a key change's audit entry must be written inside the change's transaction");
    const owner = this.stmts.keyOwner.get(keyId);
    appendRows(this.stmts, [
      keyChangeFields({ keyId, action, actor, at, detail: parseDetail(detail), account: owner?.account ?? null, subAccount: owner?.sub_account ?? null }),
    ]);
  }

  /** Appends entries inside the caller's transaction (changes of other kinds: policies, approvals…). */
  appendWithin(entries: readonly AuditFields[]): AppendResult {
    if (!this.db.inTransaction) throw new Error("appendWithin needs the caller's transaction");
    return appendRows(this.stmts, entries);
  }

  append(entries: readonly AuditFields[], options: AppendOptions = {}): Promise<AppendResult> {
    try {
      return Promise.resolve(this.withLockTimeout(options.lockTimeoutMs, () => this.appendNow(entries, options.spillId)));
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /**
   * `append`, and in the same transaction a marker row for the batch (`audit_spill_replays`, id
   * `marker.id`, replacing the writer's previous marker `marker.previous`): a writer that lost
   * the answer (its worker died) asks `marked` whether the batch committed, rather than guessing.
   */
  appendMarked(entries: readonly AuditFields[], options: AppendOptions, marker: BatchMarker | null, beforeCommit?: () => void): AppendResult {
    return this.withLockTimeout(options.lockTimeoutMs, () => this.appendNow(entries, options.spillId, marker ?? undefined, beforeCommit));
  }

  /** The batch a marker names, if it committed (its first seq and its number of entries). */
  marked(id: string): { first: number; entries: number } | undefined {
    return this.db.prepare<[string], { first: number; entries: number }>("SELECT first_seq AS first, entries FROM audit_spill_replays WHERE id = ?").get(id);
  }

  /** Removes a writer's last marker (at its clean close). */
  unmark(id: string): void {
    this.stmts.unmark.run(id);
  }

  private appendNow(entries: readonly AuditFields[], spillId: string | undefined, marker?: BatchMarker, beforeCommit?: () => void): AppendResult {
    return this.db
      .transaction((): AppendResult => {
        if (spillId !== undefined) {
          const head = readHead(this.stmts);
          if (this.stmts.markReplay.run(spillId, head.seq + 1, entries.length, Date.now()).changes === 0) {
            return { first: head.seq + 1, head, duplicate: true };
          }
        }
        const result = appendRows(this.stmts, entries);
        if (marker !== undefined && spillId === undefined) {
          if (marker.previous !== null) this.stmts.unmark.run(marker.previous);
          this.stmts.markReplay.run(marker.id, result.first, entries.length, Date.now());
        }
        beforeCommit?.();
        return result;
      })
      .immediate();
  }

  /** Runs `fn` with the connection's busy timeout set to `ms` (restored afterwards). */
  private withLockTimeout<T>(ms: number | undefined, fn: () => T): T {
    if (ms === undefined) return fn();
    const previous = this.db.pragma("busy_timeout", { simple: true }) as number;
    this.db.pragma(`busy_timeout = ${Math.max(0, Math.floor(ms))}`);
    try {
      return fn();
    } finally {
      this.db.pragma(`busy_timeout = ${previous}`);
    }
  }

  head(): Promise<ChainHead> {
    return Promise.resolve(readHead(this.stmts));
  }

  hashAt(seq: number): Promise<string | undefined> {
    return Promise.resolve(this.stmts.hashAt.get(seq)?.hash);
  }

  addCheckpoint(c: SignedCheckpoint): Promise<boolean> {
    try {
      return Promise.resolve(this.addCheckpointNow(c));
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** addCheckpoint, synchronously (the durable writer's thread). */
  addCheckpointNow(c: SignedCheckpoint): boolean {
    const result = this.db
      .prepare("INSERT OR IGNORE INTO audit_checkpoints (seq, hash, at, kid, signature) VALUES (?, ?, ?, ?, ?)")
      .run(c.seq, c.hash, c.at, c.kid, c.signature);
    return result.changes === 1;
  }

  latestCheckpoint(): Promise<SignedCheckpoint | undefined> {
    return Promise.resolve(this.db.prepare<[], CheckpointRow>("SELECT seq, hash, at, kid, signature FROM audit_checkpoints ORDER BY seq DESC LIMIT 1").get());
  }

  registerKey(key: AuditKey): Promise<void> {
    try {
      this.registerKeyNow(key);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** registerKey, synchronously (the durable writer's thread). */
  registerKeyNow(key: AuditKey): void {
    this.db
      .prepare("INSERT OR IGNORE INTO audit_keys (kid, algorithm, public_key, provider, created_at) VALUES (?, ?, ?, ?, ?)")
      .run(key.kid, key.algorithm, key.publicKey, key.provider, key.createdAt);
  }

  // --- reads: verification, queries, archiving ------------------------------------------------

  archives(): readonly ArchiveRecord[] {
    return this.db.prepare<[], ArchiveRow>("SELECT * FROM audit_archives ORDER BY last_seq").all().map(toArchive);
  }

  checkpoints(): readonly SignedCheckpoint[] {
    return this.db.prepare<[], CheckpointRow>("SELECT seq, hash, at, kid, signature FROM audit_checkpoints ORDER BY seq").all();
  }

  keys(): readonly AuditKey[] {
    return this.db
      .prepare<[], KeyRow>("SELECT * FROM audit_keys ORDER BY created_at, kid")
      .all()
      .map((r) => ({ kid: r.kid, algorithm: "ed25519" as const, publicKey: r.public_key, provider: r.provider, createdAt: r.created_at }));
  }

  /** Entries with seq in [from, to], in order, `CHUNK` at a time. */
  *entryChunks(from = 1, to = Number.MAX_SAFE_INTEGER): Generator<readonly StoredEntry[]> {
    const stmt = this.db.prepare<[number, number, number], StoredEntry>(`SELECT ${ENTRY_COLUMNS} FROM audit_log WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT ?`);
    let next = from;
    for (;;) {
      const rows = stmt.all(next, to, CHUNK);
      if (rows.length === 0) return;
      yield rows;
      next = (rows[rows.length - 1] as StoredEntry).seq + 1;
      if (rows.length < CHUNK) return;
    }
  }

  /** The first and last stored seq (null when the table is empty). */
  bounds(): { first: number; last: number } | null {
    const row = this.db.prepare<[], { first: number | null; last: number | null }>("SELECT MIN(seq) AS first, MAX(seq) AS last FROM audit_log").get();
    if (row === undefined || row.first === null || row.last === null) return null;
    return { first: row.first, last: row.last };
  }

  /** Entries matching a query, newest first when `descending`. */
  query(q: EntryQuery): StoredEntry[] {
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (q.key !== undefined) {
      where.push("key_id = ?");
      params.push(q.key);
    }
    if (q.account !== undefined) {
      where.push("account = ?");
      params.push(q.account);
    }
    if (q.events !== undefined && q.events.length > 0) {
      const parts: string[] = [];
      for (const e of q.events) {
        if (e.endsWith(".*")) {
          parts.push("event >= ? AND event < ?");
          params.push(e.slice(0, -1), `${e.slice(0, -2)}/`);
        } else {
          parts.push("event = ?");
          params.push(e);
        }
      }
      where.push(`(${parts.map((p) => `(${p})`).join(" OR ")})`);
    }
    if (q.since !== undefined) {
      where.push("at >= ?");
      params.push(q.since);
    }
    if (q.until !== undefined) {
      where.push("at < ?");
      params.push(q.until);
    }
    if (q.afterSeq !== undefined) {
      where.push("seq > ?");
      params.push(q.afterSeq);
    }
    if (q.throughSeq !== undefined) {
      where.push("seq <= ?");
      params.push(q.throughSeq);
    }
    params.push(q.limit);
    const sql = `SELECT ${ENTRY_COLUMNS} FROM audit_log ${where.length === 0 ? "" : `WHERE ${where.join(" AND ")}`} ORDER BY seq ${q.descending === true ? "DESC" : "ASC"} LIMIT ?`;
    return this.db.prepare<(string | number)[], StoredEntry>(sql).all(...params);
  }

  /** The seq of the first entry at or after `at` (null when there is none). */
  firstAtOrAfter(at: number): number | null {
    return this.db.prepare<[number], { seq: number | null }>("SELECT MIN(seq) AS seq FROM audit_log WHERE at >= ?").get(at)?.seq ?? null;
  }

  /** Spill files already replayed (by id). */
  replayed(id: string): boolean {
    return this.db.prepare<[string], { id: string }>("SELECT id FROM audit_spill_replays WHERE id = ?").get(id) !== undefined;
  }

  /**
   * Replaces entries `record.first`–`record.last` (and the checkpoints inside them, which the seal
   * replaces) by the archive record, in one transaction, and appends the `audit.archive` entry. Refuses (returns false) when the range is not
   * the stored prefix any more, or its last hash changed since the segment was written.
   */
  commitArchive(record: ArchiveRecord, entry: AuditFields): boolean {
    return this.db
      .transaction((): boolean => {
        const bounds = this.bounds();
        if (bounds?.first !== record.first || bounds.last < record.last) return false;
        const hash = this.stmts.hashAt.get(record.last)?.hash;
        if (hash !== record.hash) return false;
        this.db
          .prepare(
            "INSERT INTO audit_archives (first_seq, last_seq, prev_hash, last_hash, file, digest, at, kid, signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
          )
          .run(record.first, record.last, record.prev, record.hash, record.file, record.digest, record.at, record.kid, record.signature);
        this.db.prepare("DELETE FROM audit_log WHERE seq <= ?").run(record.last);
        // The seal now vouches for the whole range: its checkpoints would only accumulate.
        this.db.prepare("DELETE FROM audit_checkpoints WHERE seq <= ?").run(record.last);
        appendRows(this.stmts, [entry]);
        return true;
      })
      .immediate();
  }
}

export interface ReadOnlyAudit {
  readonly audit: SqliteAudit;
  close(): void;
}

/**
 * Opens a database's audit log for reading only (verification, queries, export): nothing is
 * migrated or written, so a copy handed to an auditor is checked as it is. Null when there is no
 * database at `path` or it has no audit tables.
 */
export function openAuditReadOnly(path: string, dirs: SqliteAuditOptions): ReadOnlyAudit | null {
  let db: Database.Database;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
  } catch {
    return null;
  }
  try {
    db.pragma("busy_timeout = 5000");
    const tables = db.prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'audit_%'").all().map((r) => r.name);
    for (const t of ["audit_log", "audit_checkpoints", "audit_keys", "audit_archives", "audit_spill_replays"]) {
      if (!tables.includes(t)) {
        db.close();
        return null;
      }
    }
    return { audit: new SqliteAudit(db, dirs), close: () => db.close() };
  } catch {
    db.close();
    return null;
  }
}
