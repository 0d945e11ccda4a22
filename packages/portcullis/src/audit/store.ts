import type { SignedCheckpoint } from "./chain.js";
import type { AuditFields } from "./events.js";

/**
 * What the audit log needs of a durable store: append entries to the chain in one transaction,
 * read the chain's head, keep checkpoints and the public keys that signed them. SQLite implements
 * it (storage/sqlite/audit.ts); a PostgreSQL store implements the same, and the same contract
 * tests run on both.
 *
 * Entries of changes (keys, policies, approvals) are not appended through here: the store writes
 * them itself, in the transaction of the change.
 */
export interface ChainHead {
  /** The last entry's sequence number (0 when the log is empty). */
  readonly seq: number;
  /** Its hash, 64 hex digits (the genesis when the log is empty). */
  readonly hash: string;
}

export interface AuditKey {
  readonly kid: string;
  readonly algorithm: "ed25519";
  /** SPKI PEM. */
  readonly publicKey: string;
  /** Which provider holds the private key ("envelope", "pkcs11"…). */
  readonly provider: string;
  readonly createdAt: number;
}

export interface AppendOptions {
  /**
   * The id of a spill file being replayed: its entries are appended at most once, however many
   * times (and by however many processes) the file is replayed.
   */
  readonly spillId?: string;
  /** How long to wait for the database's write lock before failing (ms). */
  readonly lockTimeoutMs?: number;
  /**
   * Where the log will spill the batch if the append fails. A store with `writeSpill` may write
   * the spill file there itself as soon as the append fails, and answer the log's `writeSpill` of
   * the same batch with it (no second trip to its thread).
   */
  readonly spillDir?: string;
}

export interface AppendResult {
  /** Sequence number of the first appended entry. */
  readonly first: number;
  /** The head after the append. */
  readonly head: ChainHead;
  /** The spill file was already replayed: nothing was appended. */
  readonly duplicate: boolean;
}

/** An archived range: a signed segment file that replaced entries `first`–`last`. */
export interface ArchiveRecord {
  readonly first: number;
  readonly last: number;
  readonly prev: string;
  readonly hash: string;
  /** The segment's file name, in the archive directory. */
  readonly file: string;
  /** SHA-256 of the segment file's bytes, hex. */
  readonly digest: string;
  readonly at: number;
  readonly kid: string;
  /** The seal's signature (sealMessage). */
  readonly signature: Buffer;
}

export interface AuditStore {
  /** Where batches are spilled by default when the store cannot take them (null: nowhere). */
  readonly spillDir: string | null;
  /** Where archived segments are written by default. */
  readonly archiveDir: string | null;
  append(entries: readonly AuditFields[], options?: AppendOptions): Promise<AppendResult>;
  head(): Promise<ChainHead>;
  /** The stored hash of entry `seq` (undefined when there is no such entry in the store). */
  hashAt(seq: number): Promise<string | undefined>;
  /** Stores a checkpoint; false if one for that seq exists already. */
  addCheckpoint(checkpoint: SignedCheckpoint): Promise<boolean>;
  latestCheckpoint(): Promise<SignedCheckpoint | undefined>;
  /** Records a checkpoint key's public half (idempotent). */
  registerKey(key: AuditKey): Promise<void>;
  /**
   * Writes a spill file of `entries` in `dir` (as SpillDir.write does) and resolves to its name.
   * A store that appends off the request thread offers it so that spill files, fsyncs included,
   * are written there too; without it the log writes them itself.
   */
  writeSpill?(dir: string, entries: readonly AuditFields[]): Promise<string>;
}

/** One stored entry, as the chain and the query columns hold it. */
export interface StoredEntry {
  readonly seq: number;
  readonly at: number;
  readonly event: string;
  readonly key: string | null;
  readonly account: string | null;
  /** The canonical text the hash covers. */
  readonly entry: string;
  readonly hash: string;
}

/**
 * Everything verification reads, from a store or a copy of one. SQLite answers at once; a store
 * on a server (PostgreSQL) answers with promises, which `verifyAudit` awaits.
 */
export interface AuditSource {
  archives(): readonly ArchiveRecord[] | Promise<readonly ArchiveRecord[]>;
  /** Ordered by seq. */
  checkpoints(): readonly SignedCheckpoint[] | Promise<readonly SignedCheckpoint[]>;
  keys(): readonly AuditKey[] | Promise<readonly AuditKey[]>;
  /** The stored entries in seq order, in chunks. */
  entryChunks(): Iterable<readonly StoredEntry[]> | AsyncIterable<readonly StoredEntry[]>;
}

/** A query over the stored entries (`audit query`, `tail`, `export`; SqliteAudit and PostgresAudit). */
export interface EntryQuery {
  readonly key?: string;
  readonly account?: string;
  /** Event names; `resource.*` matches every event of a resource. */
  readonly events?: readonly string[];
  /** Epoch ms, inclusive. */
  readonly since?: number;
  /** Epoch ms, exclusive. */
  readonly until?: number;
  /** Only entries after this seq (paging). */
  readonly afterSeq?: number;
  /**
   * Only entries up to this seq (inclusive): with `afterSeq`, a window of the log, so that a read
   * whose filters match little looks at a bounded number of entries (admin/audit.ts walks the log
   * in such windows rather than scanning it whole in one synchronous SQLite statement).
   */
  readonly throughSeq?: number;
  /** At most this many (a non-negative integer). */
  readonly limit: number;
  /** Newest first (default: oldest first). */
  readonly descending?: boolean;
}

/**
 * What the reading commands (`audit verify|tail|query|export`) need of a store, and what
 * archiving reads: SQLite answers at once, PostgreSQL with promises — callers `await` every
 * answer, so one code path serves both.
 */
export interface AuditReader extends AuditSource {
  /** Where batches were spilled (pending files are reported by verify). */
  readonly spillDir: string | null;
  /** Where archived segments are, by default. */
  readonly archiveDir: string | null;
  /** The stored entries `from`–`to` in seq order, in chunks. */
  entryChunks(from?: number, to?: number): Iterable<readonly StoredEntry[]> | AsyncIterable<readonly StoredEntry[]>;
  /** Entries matching `q`, in seq order (newest first when `descending`), at most `limit`. */
  query(q: EntryQuery): readonly StoredEntry[] | Promise<readonly StoredEntry[]>;
  /** The first and last stored seq (null when nothing is stored). */
  bounds(): { first: number; last: number } | null | Promise<{ first: number; last: number } | null>;
  /** The seq of the first stored entry at or after `at` (epoch ms), or null. */
  firstAtOrAfter(at: number): number | null | Promise<number | null>;
  /**
   * One consistent view for verification while other processes append and archive (PostgreSQL:
   * one REPEATABLE READ transaction). Absent: the reader's own reads are consistent enough
   * (SQLite's single writer).
   */
  snapshot?(): Promise<AuditSource & { close(): Promise<void> }>;
}
