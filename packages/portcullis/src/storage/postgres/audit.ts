import type pg from "pg";
import type { ClientBase, PoolClient } from "pg";
import { bounded, encodeEntry } from "../../audit/canonical.js";
import { GENESIS, type SignedCheckpoint, chainHash } from "../../audit/chain.js";
import { keyChangeFields } from "../../audit/entries.js";
import type { AuditFields } from "../../audit/events.js";
import type { AppendOptions, AppendResult, ArchiveRecord, AuditKey, AuditReader, AuditSource, AuditStore, ChainHead, EntryQuery, StoredEntry } from "../../audit/store.js";
import { LOCK_AUDIT, schemaLockKey } from "./locks.js";
import { asError, transaction } from "./transaction.js";

/**
 * The audit log on PostgreSQL (migration 3): the chain in `audit_log`, signed checkpoints, the
 * public keys that signed them, the archived ranges, and the spill files already replayed (and
 * the durable writers' batch markers) — the tables, encoding and semantics of SQLite's
 * (storage/sqlite/audit.ts, docs/audit.md), held to the same contract
 * (test/storage/audit-contract.test.ts).
 *
 * ONE chain across processes. SQLite serialises writers with its write lock; PostgreSQL lets
 * transactions run side by side, so every append — a batch, a spill replay, a key change's entry
 * inside the change's transaction, an archive's entry — first takes the schema's audit lock, a
 * transaction-scoped advisory lock (`pg_advisory_xact_lock(LOCK_AUDIT, <schema's hash>)`), and
 * only then reads the head, in a later statement (READ COMMITTED: that statement's snapshot sees
 * every append committed before the lock was granted, since PostgreSQL makes a commit visible
 * before it releases the committing transaction's locks). The lock is held until commit or
 * rollback. So appends are totally ordered: each reads the head its predecessor committed, seq
 * stays gap-free and without duplicates, and each entry's hash covers the entry before it,
 * however many pools, processes or hosts write. (The primary key on seq would refuse a duplicate
 * anyway; the lock is what makes a concurrent writer wait instead of fail.) A writer that waits
 * longer than its lock timeout fails with 55P03 and appends nothing (`lockTimeoutMs` for batches:
 * the log then spills the batch).
 *
 * Lock order: a key change takes the store's feed lock, then the audit lock; nothing takes the
 * audit lock first and then the feed lock, so the two never deadlock.
 */

/** What a query runs on: the pool, or a client inside a transaction. */
interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

/** A stored entry as node-postgres returns it (BIGINT as strings). */
interface EntryRowSql {
  seq: string;
  at: string;
  event: string;
  key: string | null;
  account: string | null;
  entry: string;
  hash: string;
}

interface CheckpointRowSql {
  seq: string;
  hash: string;
  at: string;
  kid: string;
  signature: Buffer;
}

interface ArchiveRowSql {
  first_seq: string;
  last_seq: string;
  prev_hash: string;
  last_hash: string;
  file: string;
  digest: string;
  at: string;
  kid: string;
  signature: Buffer;
}

interface KeyRowSql {
  kid: string;
  public_key: string;
  provider: string;
  created_at: string;
}

const ENTRY_COLUMNS = "seq, at, event, key_id AS key, account, entry, hash";

const CHUNK = 5000;

function toEntry(r: EntryRowSql): StoredEntry {
  return { seq: Number(r.seq), at: Number(r.at), event: r.event, key: r.key, account: r.account, entry: r.entry, hash: r.hash };
}

function toCheckpoint(r: CheckpointRowSql): SignedCheckpoint {
  return { seq: Number(r.seq), hash: r.hash, at: Number(r.at), kid: r.kid, signature: r.signature };
}

function toArchive(r: ArchiveRowSql): ArchiveRecord {
  return {
    first: Number(r.first_seq),
    last: Number(r.last_seq),
    prev: r.prev_hash,
    hash: r.last_hash,
    file: r.file,
    digest: r.digest,
    at: Number(r.at),
    kid: r.kid,
    signature: r.signature,
  };
}

/** Takes the chain's append lock (held until the transaction ends). Call inside a transaction. */
async function lockChain(tx: Queryable, lockKey: number): Promise<void> {
  await tx.query("SELECT pg_advisory_xact_lock($1, $2)", [LOCK_AUDIT, lockKey]);
}

async function readHead(q: Queryable): Promise<ChainHead> {
  const last = (await q.query<{ seq: string; hash: string }>("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")).rows[0];
  if (last !== undefined) return { seq: Number(last.seq), hash: last.hash };
  const archived = (await q.query<{ seq: string; hash: string }>("SELECT last_seq AS seq, last_hash AS hash FROM audit_archives ORDER BY last_seq DESC LIMIT 1")).rows[0];
  return archived === undefined ? { seq: 0, hash: GENESIS } : { seq: Number(archived.seq), hash: archived.hash };
}

/**
 * Writes `entries` after the current head, in one statement. The caller holds a transaction and
 * the chain's lock (`lockChain`), taken before this reads the head.
 */
async function appendLocked(tx: Queryable, entries: readonly AuditFields[]): Promise<AppendResult> {
  const head = await readHead(tx);
  let seq = head.seq;
  let hash = head.hash;
  const cols: [number[], number[], string[], (string | null)[], (string | null)[], string[], string[]] = [[], [], [], [], [], [], []];
  for (const f of entries) {
    seq += 1;
    const text = encodeEntry(seq, f);
    hash = chainHash(hash, text);
    // The query columns hold exactly what the entry holds (bounded like it).
    cols[0].push(seq);
    cols[1].push(f.at);
    cols[2].push(bounded(f.event));
    cols[3].push(f.key === undefined ? null : bounded(f.key));
    cols[4].push(f.account === undefined ? null : bounded(f.account));
    cols[5].push(text);
    cols[6].push(hash);
  }
  if (entries.length > 0) {
    await tx.query(
      `INSERT INTO audit_log (seq, at, event, key_id, account, entry, hash)
       SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])`,
      cols,
    );
  }
  return { first: head.seq + 1, head: { seq, hash }, duplicate: false };
}

function parseDetail(json: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(json);
    return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : { value: v };
  } catch {
    return {};
  }
}

async function readArchives(q: Queryable): Promise<readonly ArchiveRecord[]> {
  return (await q.query<ArchiveRowSql>("SELECT * FROM audit_archives ORDER BY last_seq")).rows.map(toArchive);
}

async function readCheckpoints(q: Queryable): Promise<readonly SignedCheckpoint[]> {
  return (await q.query<CheckpointRowSql>("SELECT seq, hash, at, kid, signature FROM audit_checkpoints ORDER BY seq")).rows.map(toCheckpoint);
}

async function readKeys(q: Queryable): Promise<readonly AuditKey[]> {
  const { rows } = await q.query<KeyRowSql>("SELECT kid, public_key, provider, created_at FROM audit_keys ORDER BY created_at, kid");
  return rows.map((r) => ({ kid: r.kid, algorithm: "ed25519" as const, publicKey: r.public_key, provider: r.provider, createdAt: Number(r.created_at) }));
}

async function* readEntryChunks(q: Queryable, from: number, to: number): AsyncGenerator<readonly StoredEntry[]> {
  let next = from;
  for (;;) {
    const { rows } = await q.query<EntryRowSql>(`SELECT ${ENTRY_COLUMNS} FROM audit_log WHERE seq >= $1 AND seq <= $2 ORDER BY seq LIMIT $3`, [next, to, CHUNK]);
    if (rows.length === 0) return;
    const chunk = rows.map(toEntry);
    yield chunk;
    next = (chunk[chunk.length - 1] as StoredEntry).seq + 1;
    if (rows.length < CHUNK) return;
  }
}

/**
 * A number compared with a BIGINT column, as an integer with the same answer: `column >= x` is
 * `column >= ceil(x)` (`up`), `column > x` is `column > floor(x)`. SQLite compares any number with
 * its integers; PostgreSQL refuses a fractional or out-of-range bigint parameter, so the value is
 * rounded the way that keeps the comparison's answer and clamped to the safe integers (every
 * stored seq and time is one). Not a number: the caller's mistake.
 */
function integerBound(value: number, name: string, up: boolean): number {
  if (typeof value !== "number" || Number.isNaN(value)) throw new TypeError(`${name}: a number`);
  const n = up ? Math.ceil(value) : Math.floor(value);
  return Math.min(Number.MAX_SAFE_INTEGER, Math.max(-Number.MAX_SAFE_INTEGER, n));
}

/** PostgreSQL text cannot hold U+0000 (the server refuses the parameter): such a value matches no stored entry. */
const NUL = "\u0000";

/**
 * SqliteAudit.query's SQL, in PostgreSQL's dialect, with SQLite's semantics: equality on key and
 * account, events by name or by `resource.*` prefix (a range of the "C"-collated column, compared
 * byte by byte as SQLite's TEXT is: `event >= 'key.' AND event < 'key/'`), `since` inclusive,
 * `until` exclusive, `afterSeq` exclusive, `throughSeq` inclusive, in seq order (DESC when `descending`), at most `limit`
 * (negative: no limit, as SQLite's LIMIT -1). Null when nothing can match.
 */
function querySql(q: EntryQuery): { sql: string; params: unknown[] } | null {
  if (!Number.isSafeInteger(q.limit)) throw new TypeError("limit: an integer");
  const where: string[] = [];
  const params: unknown[] = [];
  const param = (v: unknown): string => {
    params.push(v);
    return `$${params.length}`;
  };
  if (q.key !== undefined) {
    if (q.key.includes(NUL)) return null;
    where.push(`key_id = ${param(q.key)}`);
  }
  if (q.account !== undefined) {
    if (q.account.includes(NUL)) return null;
    where.push(`account = ${param(q.account)}`);
  }
  if (q.events !== undefined && q.events.length > 0) {
    const parts: string[] = [];
    for (const e of q.events) {
      if (e.includes(NUL)) continue;
      if (e.endsWith(".*")) parts.push(`(event >= ${param(e.slice(0, -1))} AND event < ${param(`${e.slice(0, -2)}/`)})`);
      else parts.push(`event = ${param(e)}`);
    }
    if (parts.length === 0) return null;
    where.push(`(${parts.join(" OR ")})`);
  }
  if (q.since !== undefined) where.push(`at >= ${param(integerBound(q.since, "since", true))}`);
  if (q.until !== undefined) where.push(`at < ${param(integerBound(q.until, "until", true))}`);
  if (q.afterSeq !== undefined) where.push(`seq > ${param(integerBound(q.afterSeq, "afterSeq", false))}`);
  if (q.throughSeq !== undefined) where.push(`seq <= ${param(integerBound(q.throughSeq, "throughSeq", false))}`);
  const limit = param(q.limit < 0 ? null : q.limit);
  return {
    sql: `SELECT ${ENTRY_COLUMNS} FROM audit_log ${where.length === 0 ? "" : `WHERE ${where.join(" AND ")}`} ORDER BY seq ${q.descending === true ? "DESC" : "ASC"} LIMIT ${limit}`,
    params,
  };
}

/** A key change as the store records it (its change-feed row's facts). */
export interface KeyChangeRecord {
  readonly keyId: string;
  readonly action: string;
  readonly actor: string;
  readonly at: number;
  /** The change feed row's detail (JSON text). */
  readonly detail: string;
}

/**
 * Appends the entry of a key change inside the change's transaction (`tx`, on the schema whose
 * lock key is `lockKey`): PostgresStore calls it wherever it records a key change, so the change
 * exists if and only if its entry does. Its facts are SQLite's (`SqliteAudit.keyChange`): the
 * same change gives the same entry text on both stores.
 */
export async function appendKeyChange(tx: Queryable, lockKey: number, c: KeyChangeRecord): Promise<AppendResult> {
  await lockChain(tx, lockKey);
  const owner = (await tx.query<{ account: string; sub_account: string | null }>("SELECT account, sub_account FROM keys WHERE id = $1", [c.keyId])).rows[0];
  return appendLocked(tx, [
    keyChangeFields({ keyId: c.keyId, action: c.action, actor: c.actor, at: c.at, detail: parseDetail(c.detail), account: owner?.account ?? null, subAccount: owner?.sub_account ?? null }),
  ]);
}

/**
 * Migration 3's data step: the key changes recorded before the audit log existed become its first
 * entries, in their order, marked `imported` (as SQLite's migration 6 does). Runs in the
 * migration's transaction, with `search_path` set to the schema.
 */
export async function importKeyChanges(tx: ClientBase): Promise<void> {
  const schema = (await tx.query<{ schema: string }>("SELECT current_schema() AS schema")).rows[0]?.schema ?? "";
  const { rows } = await tx.query<{ key_id: string; action: string; actor: string; at: string; detail: string; account: string | null; sub_account: string | null }>(
    "SELECT c.key_id, c.action, c.actor, c.at, c.detail, k.account, k.sub_account FROM key_changes c LEFT JOIN keys k ON k.id = c.key_id ORDER BY c.seq",
  );
  if (rows.length === 0) return;
  await lockChain(tx, schemaLockKey(schema));
  await appendLocked(
    tx,
    rows.map((r) =>
      keyChangeFields({
        keyId: r.key_id,
        action: r.action,
        actor: r.actor,
        at: Number(r.at),
        detail: { ...parseDetail(r.detail), imported: true },
        account: r.account,
        subAccount: r.sub_account,
      }),
    ),
  );
}

/** A batch's marker row (see SqliteAudit.appendMarked): its id, and the writer's previous one (removed). */
export interface BatchMarker {
  readonly id: string;
  readonly previous: string | null;
}

export interface PostgresAuditOptions {
  readonly spillDir: string | null;
  readonly archiveDir: string | null;
}

/**
 * The PostgreSQL audit store, on a PostgresStore's pool (`PostgresStore.audit`); the store writes
 * the key changes' entries itself, in their transactions (`appendKeyChange`). Also an AuditSource
 * for verification (its reads are asynchronous: `verifyAudit` awaits them).
 */
export class PostgresAudit implements AuditStore, AuditReader {
  readonly spillDir: string | null;
  readonly archiveDir: string | null;
  private readonly pool: pg.Pool;
  private readonly lockKey: number;

  constructor(pool: pg.Pool, schema: string, options: PostgresAuditOptions) {
    this.pool = pool;
    this.lockKey = schemaLockKey(schema);
    this.spillDir = options.spillDir;
    this.archiveDir = options.archiveDir;
  }

  private tx<T>(fn: (client: PoolClient) => Promise<T>): Promise<T> {
    return transaction(this.pool, fn);
  }

  /** Appends entries inside the caller's transaction (changes of other kinds, when they come to PostgreSQL). */
  async appendWithin(tx: PoolClient, entries: readonly AuditFields[]): Promise<AppendResult> {
    await lockChain(tx, this.lockKey);
    return appendLocked(tx, entries);
  }

  append(entries: readonly AuditFields[], options: AppendOptions = {}): Promise<AppendResult> {
    return this.appendMarked(entries, options, null);
  }

  /**
   * `append`, and in the same transaction a marker row for the batch (`audit_spill_replays`, id
   * `marker.id`, replacing the writer's previous marker `marker.previous`), as SqliteAudit's: a
   * writer that lost the answer asks `marked` whether the batch committed. `beforeCommit` runs
   * last inside the transaction (a throw rolls everything back).
   */
  appendMarked(entries: readonly AuditFields[], options: AppendOptions, marker: BatchMarker | null, beforeCommit?: () => void | Promise<void>): Promise<AppendResult> {
    if (options.lockTimeoutMs !== undefined && !(Number.isFinite(options.lockTimeoutMs) && options.lockTimeoutMs >= 0)) {
      return Promise.reject(new TypeError("lockTimeoutMs: a non-negative number of ms"));
    }
    return this.tx(async (client): Promise<AppendResult> => {
      if (options.lockTimeoutMs !== undefined) {
        // 0 would mean "wait forever" to PostgreSQL; SQLite's busy_timeout 0 means "do not wait".
        await client.query("SELECT set_config('lock_timeout', $1, true)", [`${Math.max(1, Math.floor(options.lockTimeoutMs))}ms`]);
      }
      await lockChain(client, this.lockKey);
      if (options.spillId !== undefined) {
        const head = await readHead(client);
        const marked = await client.query("INSERT INTO audit_spill_replays (id, first_seq, entries, at) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING", [
          options.spillId,
          head.seq + 1,
          entries.length,
          Date.now(),
        ]);
        if (marked.rowCount === 0) return { first: head.seq + 1, head, duplicate: true };
      }
      const result = await appendLocked(client, entries);
      if (marker !== null && options.spillId === undefined) {
        if (marker.previous !== null) await client.query("DELETE FROM audit_spill_replays WHERE id = $1", [marker.previous]);
        await client.query(
          "INSERT INTO audit_spill_replays (id, first_seq, entries, at) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET first_seq = excluded.first_seq, entries = excluded.entries, at = excluded.at",
          [marker.id, result.first, entries.length, Date.now()],
        );
      }
      await beforeCommit?.();
      return result;
    });
  }

  /** The batch a marker names, if it committed (its first seq and its number of entries). */
  async marked(id: string): Promise<{ first: number; entries: number } | undefined> {
    const row = (await this.pool.query<{ first: string; entries: number }>("SELECT first_seq AS first, entries FROM audit_spill_replays WHERE id = $1", [id])).rows[0];
    return row === undefined ? undefined : { first: Number(row.first), entries: row.entries };
  }

  /** Removes a writer's last marker (at its clean close). */
  async unmark(id: string): Promise<void> {
    await this.pool.query("DELETE FROM audit_spill_replays WHERE id = $1", [id]);
  }

  /** Spill files already replayed (by id). */
  async replayed(id: string): Promise<boolean> {
    return (await this.pool.query("SELECT 1 FROM audit_spill_replays WHERE id = $1", [id])).rowCount === 1;
  }

  head(): Promise<ChainHead> {
    return readHead(this.pool);
  }

  async hashAt(seq: number): Promise<string | undefined> {
    return (await this.pool.query<{ hash: string }>("SELECT hash FROM audit_log WHERE seq = $1", [seq])).rows[0]?.hash;
  }

  async addCheckpoint(c: SignedCheckpoint): Promise<boolean> {
    const result = await this.pool.query("INSERT INTO audit_checkpoints (seq, hash, at, kid, signature) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING", [
      c.seq,
      c.hash,
      c.at,
      c.kid,
      c.signature,
    ]);
    return result.rowCount === 1;
  }

  async latestCheckpoint(): Promise<SignedCheckpoint | undefined> {
    const row = (await this.pool.query<CheckpointRowSql>("SELECT seq, hash, at, kid, signature FROM audit_checkpoints ORDER BY seq DESC LIMIT 1")).rows[0];
    return row === undefined ? undefined : toCheckpoint(row);
  }

  async registerKey(key: AuditKey): Promise<void> {
    await this.pool.query(
      "INSERT INTO audit_keys (kid, algorithm, public_key, provider, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kid) DO NOTHING",
      [key.kid, key.algorithm, key.publicKey, key.provider, key.createdAt],
    );
  }

  // --- reads: verification, queries, archiving --------------------------------------------------
  // Each read is its own statement: while other processes archive, use `snapshot()` to verify.

  archives(): Promise<readonly ArchiveRecord[]> {
    return readArchives(this.pool);
  }

  checkpoints(): Promise<readonly SignedCheckpoint[]> {
    return readCheckpoints(this.pool);
  }

  keys(): Promise<readonly AuditKey[]> {
    return readKeys(this.pool);
  }

  /** Entries with seq in [from, to], in order, `CHUNK` at a time. */
  entryChunks(from = 1, to = Number.MAX_SAFE_INTEGER): AsyncGenerator<readonly StoredEntry[]> {
    return readEntryChunks(this.pool, from, to);
  }

  /**
   * One consistent view of the whole log, for verification while other processes append and
   * archive: every read runs in one REPEATABLE READ, READ ONLY transaction on a connection of its
   * own (an archive committed meanwhile cannot make a range look deleted). `close` ends it.
   */
  async snapshot(): Promise<AuditSource & { close(): Promise<void> }> {
    const client = await this.pool.connect();
    let archives: readonly ArchiveRecord[];
    let checkpoints: readonly SignedCheckpoint[];
    let keys: readonly AuditKey[];
    try {
      await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      archives = await readArchives(client);
      checkpoints = await readCheckpoints(client);
      keys = await readKeys(client);
    } catch (err) {
      await client.query("ROLLBACK").catch(() => undefined);
      client.release(asError(err));
      throw err;
    }
    let closed = false;
    return {
      archives: () => archives,
      checkpoints: () => checkpoints,
      keys: () => keys,
      entryChunks: () => readEntryChunks(client, 1, Number.MAX_SAFE_INTEGER),
      close: async () => {
        if (closed) return;
        closed = true;
        let broken: Error | undefined;
        await client.query("ROLLBACK").catch((e: unknown) => {
          broken = asError(e);
        });
        client.release(broken);
      },
    };
  }

  /** The first and last stored seq (null when the table is empty). */
  async bounds(q: Queryable = this.pool): Promise<{ first: number; last: number } | null> {
    const row = (await q.query<{ first: string | null; last: string | null }>("SELECT MIN(seq) AS first, MAX(seq) AS last FROM audit_log")).rows[0];
    if (row === undefined || row.first === null || row.last === null) return null;
    return { first: Number(row.first), last: Number(row.last) };
  }

  /** Entries matching a query, in seq order (newest first when `descending`): SqliteAudit.query's semantics. */
  async query(q: EntryQuery): Promise<StoredEntry[]> {
    const built = querySql(q);
    if (built === null) return [];
    return (await this.pool.query<EntryRowSql>(built.sql, built.params)).rows.map(toEntry);
  }

  /** The seq of the first entry at or after `at` (null when there is none). */
  async firstAtOrAfter(at: number): Promise<number | null> {
    const seq = (await this.pool.query<{ seq: string | null }>("SELECT MIN(seq) AS seq FROM audit_log WHERE at >= $1", [integerBound(at, "at", true)])).rows[0]?.seq ?? null;
    return seq === null ? null : Number(seq);
  }

  /**
   * Replaces entries `record.first`–`record.last` (and the checkpoints inside them) by the archive
   * record, in one transaction under the chain's lock, and appends the `audit.archive` entry.
   * Refuses (false) when the range is not the stored prefix any more, or its last hash changed.
   */
  commitArchive(record: ArchiveRecord, entry: AuditFields): Promise<boolean> {
    return this.tx(async (client): Promise<boolean> => {
      await lockChain(client, this.lockKey);
      const bounds = await this.bounds(client);
      if (bounds?.first !== record.first || bounds.last < record.last) return false;
      const hash = (await client.query<{ hash: string }>("SELECT hash FROM audit_log WHERE seq = $1", [record.last])).rows[0]?.hash;
      if (hash !== record.hash) return false;
      await client.query(
        "INSERT INTO audit_archives (first_seq, last_seq, prev_hash, last_hash, file, digest, at, kid, signature) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        [record.first, record.last, record.prev, record.hash, record.file, record.digest, record.at, record.kid, record.signature],
      );
      await client.query("DELETE FROM audit_log WHERE seq <= $1", [record.last]);
      await client.query("DELETE FROM audit_checkpoints WHERE seq <= $1", [record.last]);
      await appendLocked(client, [entry]);
      return true;
    });
  }
}
