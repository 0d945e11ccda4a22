import pg from "pg";
import { asError, transaction } from "./transaction.js";
import type { Notification, PoolClient, PoolConfig } from "pg";
import { OperatorError } from "../../errors/catalogue.js";
import type { ReservationStore } from "../../replay/reservations.js";
import type {
  ChangeFeed,
  DurableStore,
  EndedSessionStore,
  EnvelopeReplacement,
  EnvelopeStore,
  HeldEnvelopeColumn,
  HeldEnvelopes,
  KeyChange,
  KeyEnvelopes,
  KeyListFilter,
  KeyPatch,
  KeyRow,
  KeyStore,
  MetaStore,
  PolicyStore,
  AddressStore,
  AnomalyActionStore,
  PasskeyStore,
  HpkeKeyStore,
  BehaviourStateStore,
  CustodyLock,
  RotationResult,
  SpendStore,
  TransitionResult,
} from "../types.js";
import { ENVELOPE_META_PREFIXES, KEK_FLOOR_META, envelopeKekVersion, metaEnvelopeKekVersion, parseKekFloor } from "../kek-floor.js";
import type { KeyStatus } from "../../contract/keys.js";
import { type ColumnTypes, type KeyRowColumns, keyRowFromColumns, patchColumns, searchPatterns } from "../key-rows.js";
import { LOCK_KEK_FLOOR, LOCK_KEY_FEED, migrate, schemaLockKey } from "./migrations.js";
import { LOCK_CUSTODY } from "./locks.js";
import { PostgresAudit, appendKeyChange } from "./audit.js";
import { PostgresAddressStore, PostgresPolicyStore, PostgresSpendStore } from "./policy.js";
import { PostgresBehaviourStore } from "./behaviour.js";
import { PostgresAnomalies } from "./anomalies.js";
import { PostgresPasskeys } from "./passkeys.js";
import { PostgresHpkeKeys } from "./hpke.js";
import { PostgresHolds } from "./holds.js";
import { Availability } from "../availability.js";
import type { AgentInsert, AgentInsertResult, StoreAvailability, TreeRevokeResult } from "../types.js";
import { DurableStoreUnavailable, guardPool, isConnectionError } from "./unavailable.js";

/** What a query runs on: the pool, or a client inside a transaction. */
export interface PgQueryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

/** A key change as recorded, handed to the hook in its transaction. */
export interface RecordedKeyChange {
  readonly keyId: string;
  /** Its row in the change feed. */
  readonly seq: number;
  readonly change: KeyChange;
  /** The key's status once the change commits. */
  readonly status: KeyStatus;
}

/**
 * Runs inside the transaction of every key change, after its change-feed row and its audit entry
 * are written; a rejection rolls the whole change back (all or nothing).
 *
 * Nothing the store's own semantics need is a hook: the store always writes the audit entry
 * (`appendKeyChange`), as SqliteStore always calls `SqliteAudit.keyChange`, and always cancels a
 * key's held operations in the transaction that revokes or suspends it
 * (`PostgresHolds.cancelForKey`, as `SqliteHolds.cancelForKey`). The hook is for a caller that
 * must add to a key change atomically.
 */
export type KeyChangeHook = (tx: PgQueryable, recorded: RecordedKeyChange) => Promise<void>;

export interface PostgresStoreOptions {
  /** A `postgres://` URL. */
  readonly url: string;
  /**
   * The schema that holds the store's tables (created when missing): lower-case letters, digits
   * and `_`, starting with a letter or `_`, at most 48 characters, not `pg_…`. Default "portcullis".
   */
  readonly schema?: string;
  /** The pool's size. Default 10. */
  readonly poolSize?: number;
  /** How long the change feed's listener waits before connecting again after losing its connection (ms). Default 1000. */
  readonly reconnectDelayMs?: number;
  /** Told about connection failures the store recovers from by itself (the listener's, idle pooled connections'). */
  readonly onError?: (err: Error) => void;
  /**
   * How long a statement waits for a lock (a row another process is changing, the feed or KEK
   * floor lock) before it fails with PostgreSQL's lock_not_available (55P03), as SQLite's
   * busy_timeout makes a write fail instead of waiting forever (ms). Default 5000.
   */
  readonly lockTimeoutMs?: number;
  /** See `KeyChangeHook`. */
  readonly keyChangeHook?: KeyChangeHook;
  /** Where the audit log spills batches and writes archived segments (`PostgresAudit`). Default: nowhere (null). */
  readonly audit?: { readonly spillDir?: string | null; readonly archiveDir?: string | null };
  /**
   * How long opening a connection may take before it fails (ms): a server that does not answer
   * (a hung host, a partition) is found out in this long, not in the kernel's minutes. Default 3000.
   */
  readonly connectTimeoutMs?: number;
  /**
   * How long any statement may wait for its answer before it fails (ms; node-postgres's
   * `query_timeout`, measured here: a frozen server cannot cancel it). Migrations are not bound by
   * it. Default 30000.
   */
  readonly queryTimeoutMs?: number;
  /** How long a key lookup (the request path's only read) may wait for its answer (ms). Default 2000. */
  readonly keyReadTimeoutMs?: number;
  /**
   * How often the change feed's connection is checked with `SELECT 1` (ms), answered within
   * `heartbeatTimeoutMs` (default 2000): a connection that went silent without being closed (a
   * partition, a frozen server) is an outage found within about their sum. Default 5000.
   */
  readonly heartbeatMs?: number;
  readonly heartbeatTimeoutMs?: number;
  /** The clock of `availability.outageSince`. Default Date.now. */
  readonly now?: () => number;
}

const SCHEMA_RE = /^(?!pg_)[a-z_][a-z0-9_]{0,47}$/;

/** A `keys` row as node-postgres returns it: BIGINT columns as strings (exact), flags as booleans. */
type KeyRowSql = KeyRowColumns<string, boolean>;

/** Times and durations fit a double. */
const POSTGRES_TYPES: ColumnTypes<string, boolean> = { int: (v) => Number(v), flag: (v) => v };

function fromSql(r: KeyRowSql): KeyRow {
  return keyRowFromColumns(r, POSTGRES_TYPES);
}

const asFlag = (v: boolean): boolean => v;

const INSERT_KEY = `INSERT INTO keys (id, environment, account, sub_account, label, algorithm, public_key, secret_envelope,
    scopes, ip_allowlist, dialects, expires_at, window_ms, status, status_reason, created_at, updated_at,
    last_used_at, revision, passphrase_hash, limits, session_epoch, session_ttl_ms, session_bind_address,
    rotated_from, rotated_to, max_age_ms, passphrase_envelope, operator, owner, guardrails, risk, cert_thumbprint, agent)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24,
    $25, $26, $27, $28, $29, $30, $31, $32, $33, $34)`;

/** The key directly above an agent (contract/keys.ts agentAbove), as migration 9's index has it. */
const AGENT_ABOVE_SQL = "COALESCE(agent::jsonb ->> 'parent', agent::jsonb ->> 'ownerKey')";

function insertValues(row: KeyRow): unknown[] {
  return [
    row.id,
    row.environment,
    row.account,
    row.subAccount,
    row.label,
    row.algorithm,
    row.publicKey,
    row.secretEnvelope,
    JSON.stringify(row.scopes),
    JSON.stringify(row.ipAllowlist),
    JSON.stringify(row.dialects),
    row.expiresAt,
    row.windowMs,
    row.status,
    row.statusReason,
    row.createdAt,
    row.updatedAt,
    row.lastUsedAt,
    row.revision,
    row.passphraseHash,
    JSON.stringify(row.limits),
    row.sessionEpoch,
    row.sessionTtlMs,
    row.sessionBindAddress,
    row.rotatedFrom,
    row.rotatedTo,
    row.maxAgeMs,
    row.passphraseEnvelope,
    row.operator,
    row.owner,
    row.guardrails === null ? null : JSON.stringify(row.guardrails),
    row.risk === null ? null : JSON.stringify(row.risk),
    row.certThumbprint,
    row.agent === null ? null : JSON.stringify(row.agent),
  ];
}

/** Where a URL points, for messages: host, port and database — never the user's password. */
export function serverName(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port === "" ? "5432" : u.port}${u.pathname}`;
  } catch {
    return "(an unreadable URL)";
  }
}

type Listener = (ids: readonly string[], local: boolean) => void;

/**
 * The production durable store on PostgreSQL (docs/storage-postgres.md): keys and
 * their change feed, meta entries, custody's envelopes and the KEK floor, increasing-nonce
 * reservations and ended sessions — the same semantics as SqliteStore's, which the contract suite
 * (test/storage/durable-contract.test.ts) holds both to — and the audit log (`audit`, a
 * PostgresAudit; test/storage/audit-contract.test.ts), every key change audited in its own
 * transaction; and the policy's state (`policies`, `addresses`, `spend`: storage/postgres/policy.ts;
 * test/storage/policy-contract.test.ts), its audited changes in their own transactions; the
 * behaviour states and anomaly actions (`behaviour`, `anomalies`); and approvers and held
 * operations (`holds`: storage/postgres/holds.ts; test/storage/holds-contract.test.ts), every
 * transition audited in its own transaction. The whole `DurableStore`; nothing wires it into the
 * configuration or the runtime yet.
 *
 * Concurrency, where SQLite has one writer at a time and PostgreSQL does not:
 * - every transaction that writes the change feed first takes the schema's feed lock (a
 *   transaction advisory lock), so feed rows become visible in seq order and a reader that has
 *   seen seq n has seen every row before it;
 * - every envelope write (a key's, a meta entry's, a held operation's request or answer) takes
 *   the KEK-floor lock shared and `raiseKekFloor` takes it exclusive, so a floor raise and an
 *   envelope write under an old version cannot both commit (SQLite gets this from its immediate
 *   transactions);
 * - conditional changes are `UPDATE … WHERE status = ANY(…) RETURNING`: of two processes that
 *   race, the second waits for the row and then matches nothing.
 * - every audit append (a key change's entry included) takes the schema's audit lock before it
 *   reads the chain's head (storage/postgres/audit.ts): one gap-free chain for every process.
 *
 * The change feed: a dedicated connection LISTENs on "<schema>_key_changes" (a trigger on the
 * feed table notifies at commit) while anyone is subscribed; on a notification, and after every
 * (re)connection, it reads the rows after the last seq it delivered. Changes written through this
 * instance are delivered (local) before the write's promise resolves.
 */
export class PostgresStore implements DurableStore, KeyStore, ChangeFeed, MetaStore, EnvelopeStore, ReservationStore, EndedSessionStore {
  readonly kind = "postgres";
  readonly keys: KeyStore = this;
  readonly replay: ReservationStore = this;
  readonly logouts: EndedSessionStore = this;
  readonly changes: ChangeFeed = this;
  readonly meta: MetaStore = this;
  readonly envelopes: EnvelopeStore = this;
  readonly schema: string;
  /** The audit log (migration 3); every recorded key change is also an audit entry, in its transaction. */
  readonly audit: PostgresAudit;
  /** Versioned policy documents (migration 4); each new version audited (`policy.change`) in its transaction. */
  readonly policies: PolicyStore;
  /** The withdrawal address books; `address.add` and `address.remove` audited in their transactions. */
  readonly addresses: AddressStore;
  /** The velocity ledger: `decide` reads and records under the advisory locks of the windows it reads. */
  readonly spend: SpendStore;
  /** Each key's and account's behaviour state (migration 5; docs/behaviour.md), by compare-and-set. */
  readonly behaviour: BehaviourStateStore;
  /** The behaviour stage's anomaly actions (migration 5; docs/behaviour.md). */
  readonly anomalies: AnomalyActionStore;
  /** Passkeys and their challenges (migration 8; docs/passkeys.md); registrations and removals audited in their transactions. */
  readonly passkeys: PasskeyStore;
  /** The gateway's HPKE keys (migration 10; docs/sealed-orders.md): one row per generation, envelopes under the KEK floor. */
  readonly hpke: HpkeKeyStore;
  /** Approvers and held operations (migration 6; docs/approvals.md); every transition audited in its transaction. */
  readonly holds: PostgresHolds;
  /**
   * Whether this process has PostgreSQL (docs/failures.md): lost when the change feed's connection
   * drops or stops answering its heartbeat, or when a statement fails with a connection error and
   * a check confirms it; back once the feed's connection is open again and has caught up with the
   * feed (so what changed meanwhile is evicted before the store counts as back).
   */
  readonly availability: StoreAvailability;

  private readonly state: Availability;
  private readonly pool: pg.Pool;
  private readonly clientConfig: pg.ClientConfig;
  private readonly lockKey: number;
  private readonly channel: string;
  private readonly reconnectDelayMs: number;
  private readonly onError: (err: Error) => void;
  private readonly hook: KeyChangeHook | null;
  private readonly listeners = new Set<Listener>();
  /** Feed rows written through this instance and not delivered yet (their seqs). */
  private readonly localSeqs = new Set<number>();
  private lastSeq: number;
  private delivering: Promise<void> = Promise.resolve();
  private listener: pg.Client | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private closed = false;
  /** The listening connection is open, LISTENing and caught up (it can vouch for the server). */
  private listenerReady = false;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  /** Without subscribers: the timer that tries the pool until the server answers again. */
  private probeTimer: NodeJS.Timeout | null = null;
  /** A connection error is being checked (`suspect`). */
  private checking = false;
  private readonly server: string;
  private readonly keyReadTimeoutMs: number;
  private readonly heartbeatMs: number;
  private readonly heartbeatTimeoutMs: number;

  private constructor(options: PostgresStoreOptions, schema: string, pool: pg.Pool, clientConfig: pg.ClientConfig, lastSeq: number) {
    this.schema = schema;
    this.pool = pool;
    this.clientConfig = clientConfig;
    this.lockKey = schemaLockKey(schema);
    this.channel = `${schema}_key_changes`;
    this.reconnectDelayMs = options.reconnectDelayMs ?? 1_000;
    this.onError = options.onError ?? (() => undefined);
    this.hook = options.keyChangeHook ?? null;
    this.lastSeq = lastSeq;
    this.audit = new PostgresAudit(pool, schema, { spillDir: options.audit?.spillDir ?? null, archiveDir: options.audit?.archiveDir ?? null });
    this.policies = new PostgresPolicyStore(pool, schema, this.audit);
    this.addresses = new PostgresAddressStore(pool, schema, this.audit);
    this.spend = new PostgresSpendStore(pool, schema);
    this.behaviour = new PostgresBehaviourStore(pool);
    this.anomalies = new PostgresAnomalies(pool);
    this.passkeys = new PostgresPasskeys(pool, this.audit);
    this.hpke = new PostgresHpkeKeys(pool, (client, envelopes, what) => this.checkKekFloor(client, envelopes, what));
    this.holds = new PostgresHolds(pool, schema, this.audit, (client, envelopes, what) => this.checkKekFloor(client, envelopes, what));
    this.server = serverName(options.url);
    this.keyReadTimeoutMs = options.keyReadTimeoutMs ?? 2_000;
    this.heartbeatMs = options.heartbeatMs ?? 5_000;
    this.heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 2_000;
    this.state = new Availability(options.now);
    this.availability = this.state;
    // From here on every connection error of the pool and its clients is one coded error
    // (DURABLE_STORE_UNAVAILABLE), and a hint that the server may be gone.
    guardPool(pool, (err, connecting) => this.unavailable(err, connecting));
  }

  /**
   * Connects, applies the migrations the schema lacks (under an advisory lock: processes that
   * start together do not race) and answers the store. Throws TypeError for bad options.
   */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const schema = options.schema ?? "portcullis";
    if (typeof schema !== "string" || !SCHEMA_RE.test(schema)) {
      throw new TypeError("schema: lower-case letters, digits and _, starting with a letter or _, at most 48 characters, not pg_…");
    }
    if (typeof options.url !== "string" || !/^postgres(ql)?:\/\//.test(options.url)) throw new TypeError("url: a postgres:// URL");
    const poolSize = options.poolSize ?? 10;
    if (!Number.isSafeInteger(poolSize) || poolSize < 1 || poolSize > 1000) throw new TypeError("poolSize: an integer from 1 to 1000");
    const reconnect = options.reconnectDelayMs ?? 1_000;
    if (!Number.isFinite(reconnect) || reconnect < 1) throw new TypeError("reconnectDelayMs: a positive number of ms");
    const lockTimeoutMs = options.lockTimeoutMs ?? 5_000;
    if (!Number.isSafeInteger(lockTimeoutMs) || lockTimeoutMs < 1) throw new TypeError("lockTimeoutMs: a positive integer (ms)");
    const connectTimeoutMs = options.connectTimeoutMs ?? 3_000;
    const queryTimeoutMs = options.queryTimeoutMs ?? 30_000;
    for (const [name, value] of [
      ["connectTimeoutMs", connectTimeoutMs],
      ["queryTimeoutMs", queryTimeoutMs],
      ["keyReadTimeoutMs", options.keyReadTimeoutMs ?? 2_000],
      ["heartbeatMs", options.heartbeatMs ?? 5_000],
      ["heartbeatTimeoutMs", options.heartbeatTimeoutMs ?? 2_000],
    ] as const) {
      if (!Number.isSafeInteger(value) || value < 1 || value > 3_600_000) throw new TypeError(`${name}: an integer from 1 to 3600000 (ms)`);
    }
    const migrationConfig: pg.ClientConfig = {
      connectionString: options.url,
      options: `-c search_path=${schema} -c lock_timeout=${lockTimeoutMs}`,
      application_name: `portcullis:${schema}`,
      connectionTimeoutMillis: connectTimeoutMs,
      // TCP keepalive: a connection whose peer vanished is closed by the kernel too.
      keepAlive: true,
    };
    const clientConfig: pg.ClientConfig = { ...migrationConfig, query_timeout: queryTimeoutMs };
    const poolConfig: PoolConfig = { ...clientConfig, max: poolSize };
    const pool = new pg.Pool(poolConfig);
    const onError = options.onError ?? (() => undefined);
    // An idle pooled connection that fails (server restart) is dropped; the next query opens another.
    pool.on("error", (err) => {
      onError(err);
    });
    try {
      // Migrations on a connection of their own, without the statement timeout: a data step over
      // a large table may take longer than any request should.
      const client = new pg.Client(migrationConfig);
      client.on("error", () => undefined);
      try {
        await client.connect();
      } catch (err) {
        await client.end().catch(() => undefined);
        throw new OperatorError("DURABLE_STORE_UNREACHABLE", `cannot connect to PostgreSQL at ${serverName(options.url)}: ${asError(err).message}`, { cause: err });
      }
      try {
        await migrate(client, schema);
      } finally {
        await client.end().catch(() => undefined);
      }
      const { rows } = await pool.query<{ seq: string | null }>("SELECT MAX(seq) AS seq FROM key_changes");
      return new PostgresStore(options, schema, pool, clientConfig, Number(rows[0]?.seq ?? 0));
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw err;
    }
  }

  // --- transactions ------------------------------------------------------------------------------

  private tx<T>(fn: (client: PoolClient) => Promise<T>): Promise<T> {
    return transaction(this.pool, fn);
  }

  /**
   * The KEK floor read under its lock (shared), then every envelope version checked against it.
   * Call inside the write's transaction, before the write.
   */
  private async checkKekFloor(client: PoolClient, versions: readonly (Buffer | number | null)[], what: string): Promise<void> {
    await client.query("SELECT pg_advisory_xact_lock_shared($1, $2)", [LOCK_KEK_FLOOR, this.lockKey]);
    const { rows } = await client.query<{ value: string }>("SELECT value FROM meta WHERE key = $1", [KEK_FLOOR_META]);
    const floor = parseKekFloor(rows[0]?.value);
    if (floor === 0) return;
    for (const item of versions) {
      const version = item === null ? null : typeof item === "number" ? item : envelopeKekVersion(item);
      if (version !== null && version < floor) {
        throw new OperatorError("CUSTODY_KEK_RETIRED", `the envelope of ${what} is under KEK version ${version}, below the floor ${floor}: wrap it under the active version`);
      }
    }
  }

  private async recordChange(client: PoolClient, id: string, change: KeyChange, status: KeyStatus, seqs: number[]): Promise<void> {
    const { rows } = await client.query<{ seq: string }>(
      "INSERT INTO key_changes (key_id, action, actor, at, detail) VALUES ($1, $2, $3, $4, $5) RETURNING seq",
      [id, change.action, change.actor, change.at, JSON.stringify(change.detail)],
    );
    const seq = Number(rows[0]?.seq);
    seqs.push(seq);
    this.localSeqs.add(seq);
    // Its audit entry, in this transaction: the change commits if and only if the entry does.
    await appendKeyChange(client, this.lockKey, { keyId: id, action: change.action, actor: change.actor, at: change.at, detail: JSON.stringify(change.detail) });
    if (this.hook !== null) await this.hook(client, { keyId: id, seq, change, status });
  }

  /**
   * A transaction that writes the change feed: the feed lock first; the seqs it writes are marked
   * local before the commit (a notification of it may be read before this resumes), unmarked if it
   * fails; after the commit this instance's subscribers hear of it before the write resolves.
   */
  private async feedTx<T>(fn: (client: PoolClient, seqs: number[]) => Promise<T>): Promise<T> {
    const seqs: number[] = [];
    let result: T;
    try {
      result = await this.tx(async (client) => {
        await client.query("SELECT pg_advisory_xact_lock($1, $2)", [LOCK_KEY_FEED, this.lockKey]);
        return fn(client, seqs);
      });
    } catch (err) {
      for (const seq of seqs) this.localSeqs.delete(seq);
      throw err;
    }
    if (seqs.length > 0) await this.deliver();
    return result;
  }

  // --- keys --------------------------------------------------------------------------------------

  async insert(row: KeyRow, change: KeyChange): Promise<void> {
    await this.feedTx((client, seqs) => this.insertRow(client, row, change, seqs));
  }

  private async insertRow(client: PoolClient, row: KeyRow, change: KeyChange, seqs: number[]): Promise<void> {
    await this.checkKekFloor(client, [row.secretEnvelope, row.passphraseEnvelope], `key ${row.id}`);
    await client.query(INSERT_KEY, insertValues(row));
    await this.recordChange(client, row.id, change, row.status, seqs);
  }

  async get(id: string): Promise<KeyRow | undefined> {
    // The request path's read (a key not in the cache): bounded tighter than other statements.
    const { rows } = await this.pool.query<KeyRowSql>({ text: "SELECT * FROM keys WHERE id = $1", values: [id], query_timeout: this.keyReadTimeoutMs } as pg.QueryConfig);
    const row = rows[0];
    return row === undefined ? undefined : fromSql(row);
  }

  async list(filter: KeyListFilter): Promise<KeyRow[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const param = (v: unknown): string => {
      params.push(v);
      return `$${params.length}`;
    };
    if (filter.account !== undefined) where.push(`account = ${param(filter.account)}`);
    if (filter.operator !== undefined) where.push(`operator = ${param(filter.operator)}`);
    if (filter.status !== undefined) where.push(`status = ${param(filter.status)}`);
    if (filter.after !== undefined) where.push(`id > ${param(filter.after)}`);
    let sql: string;
    if (filter.search !== undefined) {
      const patterns = searchPatterns(filter.search);
      if (patterns === null) return [];
      // lower() under "C" folds ASCII letters only, as SQLite's LIKE does: the same search, the same keys.
      const prefix = param(patterns.prefix);
      where.push(
        `(lower(id COLLATE "C") LIKE ${prefix} ESCAPE '\\' OR lower(account COLLATE "C") LIKE ${prefix} ESCAPE '\\' OR lower(label COLLATE "C") LIKE ${param(patterns.infix)} ESCAPE '\\')`,
      );
      // A search few keys match looks at every key: the inner query reads only keys_search (an
      // index-only scan in id order, every column it tests included), the outer fetches the rows
      // it chose. Selecting * in one query would fetch every row it looks at (7 s for 1,000,000
      // keys against about 1 s).
      sql = `SELECT * FROM keys WHERE id IN (SELECT id FROM keys WHERE ${where.join(" AND ")} ORDER BY id LIMIT ${param(filter.limit)}) ORDER BY id`;
    } else {
      sql = `SELECT * FROM keys ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY id LIMIT ${param(filter.limit)}`;
    }
    const { rows } = await this.pool.query<KeyRowSql>(sql, params);
    return rows.map(fromSql);
  }

  transition(id: string, from: readonly KeyStatus[], to: KeyStatus, reason: string | null, change: KeyChange): Promise<TransitionResult> {
    return this.change(id, change, async (client) => {
      const { rows } = await client.query<KeyRowSql>(
        `UPDATE keys SET status = $1, status_reason = $2, updated_at = $3, revision = revision + 1, session_epoch = session_epoch + 1
         WHERE id = $4 AND status = ANY($5::text[]) RETURNING *`,
        [to, reason, change.at, id, [...from]],
      );
      const row = rows[0];
      // Revoking or suspending a key cancels its held operations in the key change's transaction:
      // once it commits, none of them can be claimed for release (docs/approvals.md). (`update`
      // never changes a status, so only this path cancels, as on SQLite.)
      if (row !== undefined && (to === "revoked" || to === "suspended")) await this.holds.cancelForKey(client, id, to, change.at, change.actor);
      return row;
    });
  }

  update(id: string, from: readonly KeyStatus[], patch: KeyPatch, change: KeyChange): Promise<TransitionResult> {
    const values: unknown[] = [change.at];
    const sets = ["updated_at = $1", "revision = revision + 1"];
    for (const [column, value] of patchColumns(patch, asFlag)) {
      values.push(value);
      sets.push(`${column} = $${values.length}`);
    }
    if (patch.endSessions === true) sets.push("session_epoch = session_epoch + 1");
    values.push(id, [...from]);
    const sql = `UPDATE keys SET ${sets.join(", ")} WHERE id = $${values.length - 1} AND status = ANY($${values.length}::text[]) RETURNING *`;
    return this.change(id, change, async (client) => (await client.query<KeyRowSql>(sql, values)).rows[0]);
  }

  /**
   * One conditional change of a key, in one transaction with its change record: `apply` runs the
   * UPDATE … RETURNING; when it matched nothing, the answer says why (and nothing is written).
   */
  private async change(id: string, change: KeyChange, apply: (client: PoolClient) => Promise<KeyRowSql | undefined>): Promise<TransitionResult> {
    return this.feedTx(async (client, seqs): Promise<TransitionResult> => {
      const updated = await apply(client);
      if (updated === undefined) return this.whyNot(client, id);
      await this.recordChange(client, id, change, updated.status as KeyStatus, seqs);
      return { ok: true, row: fromSql(updated) };
    });
  }

  private async whyNot(client: PoolClient, id: string): Promise<TransitionResult> {
    const { rows } = await client.query<{ status: string }>("SELECT status FROM keys WHERE id = $1", [id]);
    const current = rows[0];
    if (current === undefined) return { ok: false, reason: "not-found" };
    return { ok: false, reason: "conflict", current: current.status as KeyStatus };
  }

  // --- wallet owners and agents (migration 9; docs/wallets.md) -----------------------------------

  async wallets(address: string): Promise<KeyRow[]> {
    const { rows } = await this.pool.query<KeyRowSql>("SELECT * FROM keys WHERE algorithm = 'ethereum' AND public_key = $1 ORDER BY created_at, id", [address]);
    return rows.map(fromSql);
  }

  async children(id: string): Promise<KeyRow[]> {
    const { rows } = await this.pool.query<KeyRowSql>(`SELECT * FROM keys WHERE agent IS NOT NULL AND ${AGENT_ABOVE_SQL} = $1 ORDER BY id`, [id]);
    return rows.map(fromSql);
  }

  async insertAgents(rows: readonly AgentInsert[], active: readonly string[]): Promise<AgentInsertResult> {
    try {
      return await this.feedTx(async (client, seqs): Promise<AgentInsertResult> => {
        // The links above, locked: a revoke of one waits for this registration, or this sees it.
        for (const id of active) {
          const { rows: found } = await client.query<{ status: string }>("SELECT status FROM keys WHERE id = $1 FOR SHARE", [id]);
          if (found[0]?.status !== "active") return { ok: false, reason: "inactive", id };
        }
        for (const { row } of rows) {
          const { rows: found } = await client.query("SELECT 1 FROM keys WHERE id = $1", [row.id]);
          if (found.length > 0) return { ok: false, reason: "exists", id: row.id };
        }
        for (const { row, change } of rows) await this.insertRow(client, row, change, seqs);
        return { ok: true };
      });
    } catch (err) {
      // A registration of the same id that committed meanwhile: its primary key refused this one
      // (and rolled it all back). Single use, as if it had been seen above.
      const { code, constraint } = err as { code?: unknown; constraint?: unknown };
      if (code === "23505" && constraint === "keys_pkey") {
        for (const { row } of rows) if ((await this.get(row.id)) !== undefined) return { ok: false, reason: "exists", id: row.id };
      }
      throw err;
    }
  }

  async revokeTree(id: string, from: readonly KeyStatus[], reason: string | null, change: KeyChange): Promise<TreeRevokeResult> {
    return this.feedTx(async (client, seqs): Promise<TreeRevokeResult> => {
      const revoke = async (keyId: string, states: readonly KeyStatus[], record: KeyChange): Promise<KeyRowSql | undefined> => {
        const { rows } = await client.query<KeyRowSql>(
          `UPDATE keys SET status = 'revoked', status_reason = $1, updated_at = $2, revision = revision + 1, session_epoch = session_epoch + 1
           WHERE id = $3 AND status = ANY($4::text[]) RETURNING *`,
          [reason, record.at, keyId, [...states]],
        );
        const row = rows[0];
        if (row === undefined) return undefined;
        await this.holds.cancelForKey(client, keyId, "revoked", record.at, record.actor);
        await this.recordChange(client, keyId, record, "revoked", seqs);
        return row;
      };
      const top = await revoke(id, from, change);
      if (top === undefined) {
        const why = await this.whyNot(client, id);
        return why.ok ? { ok: false, reason: "conflict" } : why;
      }
      const below: KeyRow[] = [];
      const cascade: KeyChange = { ...change, detail: { ...change.detail, cascade: id } };
      const queue = [id];
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
        const { rows } = await client.query<{ id: string }>(`SELECT id FROM keys WHERE agent IS NOT NULL AND ${AGENT_ABOVE_SQL} = $1 ORDER BY id`, [next]);
        for (const child of rows) {
          queue.push(child.id);
          const row = await revoke(child.id, ["active", "suspended"], cascade);
          if (row !== undefined) below.push(fromSql(row));
        }
      }
      return { ok: true, row: fromSql(top), below };
    });
  }

  async rotate(id: string, successor: KeyRow, predecessorExpiresAt: number, change: KeyChange, created: KeyChange): Promise<RotationResult> {
    return this.feedTx(async (client, seqs): Promise<RotationResult> => {
      const { rows } = await client.query<KeyRowSql>(
        `UPDATE keys SET rotated_to = $1, expires_at = $2, updated_at = $3, revision = revision + 1
         WHERE id = $4 AND status IN ('active', 'suspended') AND rotated_to IS NULL RETURNING *`,
        [successor.id, predecessorExpiresAt, change.at, id],
      );
      const predecessor = rows[0];
      if (predecessor === undefined) {
        const current = (await client.query<{ status: string; rotated_to: string | null }>("SELECT status, rotated_to FROM keys WHERE id = $1", [id])).rows[0];
        if (current === undefined) return { ok: false, reason: "not-found" };
        return { ok: false, reason: "conflict", current: current.status as KeyStatus, rotatedTo: current.rotated_to };
      }
      await this.recordChange(client, id, change, predecessor.status as KeyStatus, seqs);
      await this.insertRow(client, successor, created, seqs);
      return { ok: true, predecessor: fromSql(predecessor), successor };
    });
  }

  async touch(lastUsed: ReadonlyMap<string, number>): Promise<void> {
    if (lastUsed.size === 0) return;
    // In id order, so two batches never lock the same rows in opposite orders.
    const entries = [...lastUsed].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    await this.tx(async (client) => {
      for (const [id, at] of entries) {
        await client.query("UPDATE keys SET last_used_at = GREATEST(COALESCE(last_used_at, 0), $1) WHERE id = $2", [at, id]);
      }
    });
  }

  // --- meta --------------------------------------------------------------------------------------

  async getMeta(key: string): Promise<string | undefined> {
    const { rows } = await this.pool.query<{ value: string }>("SELECT value FROM meta WHERE key = $1", [key]);
    return rows[0]?.value;
  }

  async setMeta(key: string, value: string): Promise<void> {
    await this.tx(async (client) => {
      await this.checkKekFloor(client, [metaEnvelopeKekVersion(key, value)], `meta ${key}`);
      await client.query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value", [key, value]);
    });
  }

  async initMeta(key: string, value: string): Promise<string> {
    const version = metaEnvelopeKekVersion(key, value);
    const init = async (q: PgQueryable): Promise<string> => {
      const { rows } = await q.query<{ value: string }>(
        "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = meta.value RETURNING value",
        [key, value],
      );
      return rows[0]?.value ?? value;
    };
    if (version === null) return init(this.pool);
    // An envelope: refused under a version below the floor, unless the entry is already there
    // (then nothing is written and the stored value is the answer).
    return this.tx(async (client) => {
      const existing = (await client.query<{ value: string }>("SELECT value FROM meta WHERE key = $1", [key])).rows[0];
      if (existing !== undefined) return existing.value;
      await this.checkKekFloor(client, [version], `meta ${key}`);
      return init(client);
    });
  }

  // --- the KEK floor (storage/kek-floor.ts) ------------------------------------------------------

  async kekFloor(): Promise<number> {
    return parseKekFloor(await this.getMeta(KEK_FLOOR_META));
  }

  /**
   * As SqliteStore's: the envelopes counted are the key rows', the held operations' (request and
   * answer, in every state: a released operation's answer is read later) and the envelope meta
   * entries'.
   */
  async raiseKekFloor(floor: number): Promise<{ readonly raised: boolean; readonly floor: number; readonly below: number }> {
    if (!Number.isSafeInteger(floor) || floor < 1 || floor > 0xffffffff) throw new RangeError("a KEK floor is a version number");
    const header = Buffer.alloc(4);
    header.writeUInt32BE(floor, 0);
    return this.tx(async (client) => {
      // Exclusive: every envelope write in flight commits first (and is counted), none starts meanwhile.
      await client.query("SELECT pg_advisory_xact_lock($1, $2)", [LOCK_KEK_FLOOR, this.lockKey]);
      const counted = await client.query<{ n: string }>(
        `SELECT (SELECT COUNT(*) FROM keys WHERE secret_envelope IS NOT NULL AND substring(secret_envelope FROM 1 FOR 1) = '\\x01'::bytea AND substring(secret_envelope FROM 2 FOR 4) < $1)
              + (SELECT COUNT(*) FROM keys WHERE passphrase_envelope IS NOT NULL AND substring(passphrase_envelope FROM 1 FOR 1) = '\\x01'::bytea AND substring(passphrase_envelope FROM 2 FOR 4) < $1)
              + (SELECT COUNT(*) FROM held_operations WHERE substring(held FROM 1 FOR 1) = '\\x01'::bytea AND substring(held FROM 2 FOR 4) < $1)
              + (SELECT COUNT(*) FROM held_operations WHERE outcome IS NOT NULL AND substring(outcome FROM 1 FOR 1) = '\\x01'::bytea AND substring(outcome FROM 2 FOR 4) < $1)
              + (SELECT COUNT(*) FROM hpke_keys WHERE private_envelope IS NOT NULL AND substring(private_envelope FROM 1 FOR 1) = '\\x01'::bytea AND substring(private_envelope FROM 2 FOR 4) < $1) AS n`,
        [header],
      );
      let below = Number(counted.rows[0]?.n ?? 0);
      for (const prefix of ENVELOPE_META_PREFIXES) {
        const { rows } = await client.query<{ key: string; value: string }>("SELECT key, value FROM meta WHERE starts_with(key, $1)", [prefix]);
        for (const { key, value } of rows) {
          const version = metaEnvelopeKekVersion(key, value);
          if (version !== null && version < floor) below++;
        }
      }
      const current = parseKekFloor((await client.query<{ value: string }>("SELECT value FROM meta WHERE key = $1", [KEK_FLOOR_META])).rows[0]?.value);
      if (below > 0) return { raised: false, floor: current, below };
      const next = Math.max(current, floor);
      await client.query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value", [KEK_FLOOR_META, String(next)]);
      return { raised: true, floor: next, below: 0 };
    });
  }

  // --- custody: envelopes for KEK rotation (never written to the change feed) --------------------

  async keyEnvelopes(after: string, limit: number): Promise<KeyEnvelopes[]> {
    const { rows } = await this.pool.query<{ id: string; secret_envelope: Buffer | null; passphrase_envelope: Buffer | null; passphrase_hash: string | null }>(
      `SELECT id, secret_envelope, passphrase_envelope, passphrase_hash FROM keys
       WHERE id > $1 AND (secret_envelope IS NOT NULL OR passphrase_envelope IS NOT NULL OR passphrase_hash IS NOT NULL)
       ORDER BY id LIMIT $2`,
      [after, limit],
    );
    return rows.map((r) => ({ id: r.id, secretEnvelope: r.secret_envelope, passphraseEnvelope: r.passphrase_envelope, legacyPassphraseHash: r.passphrase_hash }));
  }

  async replaceKeyEnvelopes(replacements: readonly EnvelopeReplacement[]): Promise<number> {
    if (replacements.length === 0) return 0;
    return this.tx(async (client) => {
      await this.checkKekFloor(client, replacements.map((r) => r.next), "a rewrap batch");
      let n = 0;
      for (const r of replacements) {
        const column = r.column === "secret" ? "secret_envelope" : "passphrase_envelope";
        const result = await client.query(`UPDATE keys SET ${column} = $1 WHERE id = $2 AND ${column} = $3`, [r.next, r.id, r.expected]);
        n += result.rowCount ?? 0;
      }
      return n;
    });
  }

  heldEnvelopes(after: string, limit: number): Promise<HeldEnvelopes[]> {
    return this.holds.heldEnvelopes(after, limit);
  }

  replaceHeldEnvelopes(replacements: readonly EnvelopeReplacement<HeldEnvelopeColumn>[]): Promise<number> {
    return this.holds.replaceHeldEnvelopes(replacements);
  }

  async sealLegacyPassphrase(id: string, expectedHash: string, envelope: Buffer): Promise<boolean> {
    return this.tx(async (client) => {
      await this.checkKekFloor(client, [envelope], `key ${id}'s passphrase`);
      const result = await client.query("UPDATE keys SET passphrase_envelope = $1, passphrase_hash = NULL WHERE id = $2 AND passphrase_hash = $3", [envelope, id, expectedHash]);
      return result.rowCount === 1;
    });
  }

  async metaEntries(prefix: string): Promise<{ key: string; value: string }[]> {
    const { rows } = await this.pool.query<{ key: string; value: string }>("SELECT key, value FROM meta WHERE starts_with(key, $1) ORDER BY key", [prefix]);
    return rows.map((r) => ({ key: r.key, value: r.value }));
  }

  async replaceMeta(key: string, expected: string, next: string): Promise<boolean> {
    return this.tx(async (client) => {
      await this.checkKekFloor(client, [metaEnvelopeKekVersion(key, next)], `meta ${key}`);
      const result = await client.query("UPDATE meta SET value = $1 WHERE key = $2 AND value = $3", [next, key, expected]);
      return result.rowCount === 1;
    });
  }

  // --- increasing-nonce reservations (replay/reservations.ts) ------------------------------------

  async reservations(): Promise<ReadonlyMap<string, bigint>> {
    const { rows } = await this.pool.query<{ key_id: string; ceiling: string }>("SELECT key_id, ceiling::text AS ceiling FROM sequence_reservations");
    return new Map(rows.map((r) => [r.key_id, BigInt(r.ceiling)]));
  }

  async reserve(keyId: string, ceiling: bigint): Promise<void> {
    if (typeof ceiling !== "bigint" || ceiling < 0n) throw new RangeError("a reservation is a non-negative integer");
    // Only ever raised: a lower (or equal) ceiling leaves the row as it is.
    await this.pool.query(
      `INSERT INTO sequence_reservations (key_id, ceiling) VALUES ($1, $2::numeric)
       ON CONFLICT (key_id) DO UPDATE SET ceiling = excluded.ceiling WHERE excluded.ceiling > sequence_reservations.ceiling`,
      [keyId, ceiling.toString()],
    );
  }

  // --- sessions ended by logout ------------------------------------------------------------------

  async endSession(sessionId: string, until: number, now: number): Promise<void> {
    if (!Number.isSafeInteger(until) || !Number.isSafeInteger(now)) throw new RangeError("session end times must be integers (ms)");
    await this.tx(async (client) => {
      // The ones that have expired anyway are forgotten as new ones arrive.
      await client.query("DELETE FROM ended_sessions WHERE until <= $1", [now]);
      if (until > now) {
        await client.query(
          "INSERT INTO ended_sessions (session_id, until) VALUES ($1, $2) ON CONFLICT (session_id) DO UPDATE SET until = GREATEST(ended_sessions.until, excluded.until)",
          [sessionId, until],
        );
      }
    });
  }

  async endedSessions(now: number): Promise<ReadonlyMap<string, number>> {
    const { rows } = await this.pool.query<{ session_id: string; until: string }>("SELECT session_id, until FROM ended_sessions WHERE until > $1", [now]);
    return new Map(rows.map((r) => [r.session_id, Number(r.until)]));
  }

  // --- the change feed ---------------------------------------------------------------------------

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    if (this.listeners.size === 1 && !this.closed) this.listen();
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.unlisten();
    };
  }

  /**
   * Opens the listening connection; on its loss, opens it again after `reconnectDelayMs`. Losing it
   * is an outage (the feed no longer reaches this process: cached keys may be stale); having it
   * back, LISTENing and caught up with the feed, ends the outage.
   */
  private listen(): void {
    if (this.listener !== null || this.reconnectTimer !== null || this.closed) return;
    this.stopProbe();
    const client = new pg.Client({ ...this.clientConfig, application_name: `portcullis-feed:${this.schema}` });
    this.listener = client;
    let lost = false;
    const onLost = (err: Error | null): void => {
      if (lost) return;
      lost = true;
      if (err !== null) this.onError(err);
      if (this.listener === client) {
        this.listener = null;
        this.listenerReady = false;
        this.stopHeartbeat();
      }
      client.removeAllListeners("notification");
      client.end().catch(() => undefined);
      if (this.closed) return;
      this.lose(err ?? new Error("the change feed's connection closed"));
      if (this.listeners.size === 0) {
        this.startProbe();
        return;
      }
      this.reconnectTimer = setTimeout(() => {
        this.reconnectTimer = null;
        if (this.listeners.size > 0) this.listen();
        else this.startProbe();
      }, this.reconnectDelayMs);
      this.reconnectTimer.unref();
    };
    client.on("error", (err) => {
      onLost(err);
    });
    client.on("end", () => {
      onLost(null);
    });
    client.on("notification", (message: Notification) => {
      if (message.channel === this.channel) void this.deliver();
    });
    client
      .connect()
      .then(() => client.query(`LISTEN ${this.channel}`))
      // Catch up: whatever committed while nobody listened (evicted before the store counts as back).
      .then(() => this.deliver(true))
      .then(() => {
        if (lost || this.listener !== client) return;
        this.listenerReady = true;
        this.startHeartbeat(client, onLost);
        this.state.regained();
      })
      .catch((err: unknown) => {
        onLost(asError(err));
      });
  }

  /** `SELECT 1` on the listening connection every `heartbeatMs`: a silent connection is a lost one. */
  private startHeartbeat(client: pg.Client, onLost: (err: Error | null) => void): void {
    this.stopHeartbeat();
    let beating = false;
    this.heartbeatTimer = setInterval(() => {
      if (beating) return;
      beating = true;
      this.ping(client)
        .catch((err: unknown) => {
          onLost(asError(err));
        })
        .finally(() => {
          beating = false;
        });
    }, this.heartbeatMs);
    this.heartbeatTimer.unref();
  }

  private stopHeartbeat(): void {
    if (this.heartbeatTimer !== null) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
  }

  /** `SELECT 1` on `client`, failing after `heartbeatTimeoutMs`. */
  private async ping(client: pg.Client): Promise<void> {
    await client.query({ text: "SELECT 1", query_timeout: this.heartbeatTimeoutMs } as pg.QueryConfig);
  }

  /**
   * A statement failed with a connection error (`unavailable`): is the server gone, or only that
   * connection (killed by an administrator, dropped by a firewall)? The listening connection
   * answers for the server; without one, a pooled `SELECT 1` does. Only a failed check begins an
   * outage, so one dropped connection does not refuse uncached keys.
   */
  private suspect(err: Error): void {
    if (this.closed || this.checking || this.state.outageSince !== null) return;
    this.checking = true;
    const listener = this.listenerReady ? this.listener : null;
    const check = listener !== null ? this.ping(listener) : this.pool.query({ text: "SELECT 1", query_timeout: this.heartbeatTimeoutMs } as pg.QueryConfig).then(() => undefined);
    check
      .then(
        () => undefined,
        (checkErr: unknown) => {
          if (listener !== null && this.listener === listener) {
            // Closing it starts the reconnect cycle (listen's onLost), which ends the outage.
            this.lose(err);
            listener.end().catch(() => undefined);
          } else {
            this.lose(asError(checkErr));
          }
        },
      )
      .finally(() => {
        this.checking = false;
      });
  }

  /** Begins an outage (if none is under way); the reconnect cycle or the probe ends it. */
  private lose(err: Error): void {
    if (this.closed) return;
    if (this.state.lost()) this.onError(new Error(`PostgreSQL at ${this.server} lost: ${err.message}`));
    if (this.listener === null && this.reconnectTimer === null && this.listeners.size === 0) this.startProbe();
  }

  /** Without a change feed to reconnect: a pooled `SELECT 1` every `reconnectDelayMs` until one answers. */
  private startProbe(): void {
    if (this.closed || this.probeTimer !== null || this.state.outageSince === null) return;
    this.probeTimer = setTimeout(() => {
      this.pool
        .query({ text: "SELECT 1", query_timeout: this.heartbeatTimeoutMs } as pg.QueryConfig)
        .then(
          () => {
            this.probeTimer = null;
            // A subscriber that came meanwhile reconnects the feed, which ends the outage itself.
            if (this.listeners.size === 0) this.state.regained();
          },
          () => {
            this.probeTimer = null;
            this.startProbe();
          },
        );
    }, this.reconnectDelayMs);
    this.probeTimer.unref();
  }

  private stopProbe(): void {
    if (this.probeTimer !== null) clearTimeout(this.probeTimer);
    this.probeTimer = null;
  }

  /** The pool's connection errors: reported as DURABLE_STORE_UNAVAILABLE, and checked (`suspect`). */
  private unavailable(err: unknown, connecting = false): unknown {
    if (err instanceof DurableStoreUnavailable || (!connecting && !isConnectionError(err))) return err;
    const error = asError(err);
    this.suspect(error);
    return new DurableStoreUnavailable(`PostgreSQL at ${this.server} cannot be reached: ${error.message}`, { cause: err });
  }

  private unlisten(): void {
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.stopHeartbeat();
    this.listenerReady = false;
    const client = this.listener;
    this.listener = null;
    if (client !== null) {
      client.removeAllListeners();
      client.on("error", () => undefined);
      client.end().catch(() => undefined);
    }
    // Nothing will reconnect the feed: if the store is out, the probe finds it back.
    this.startProbe();
  }

  /** Reads and delivers the feed rows after the last seq delivered; one read at a time, in order. */
  private deliver(strict = false): Promise<void> {
    const run = this.delivering.then(() => this.readFeed());
    const next = run.catch((err: unknown) => {
      // The rows stay after lastSeq: the next notification or write delivers them.
      if (!strict) this.onError(asError(err));
    });
    this.delivering = next;
    // Strict (the catch-up after a reconnection): the caller must know it failed.
    return strict ? run : next;
  }

  private async readFeed(): Promise<void> {
    if (this.closed) return;
    for (;;) {
      const { rows } = await this.pool.query<{ seq: string; key_id: string }>("SELECT seq, key_id FROM key_changes WHERE seq > $1 ORDER BY seq LIMIT 10000", [this.lastSeq]);
      if (rows.length === 0) return;
      const local: string[] = [];
      const remote: string[] = [];
      for (const r of rows) {
        const seq = Number(r.seq);
        if (this.localSeqs.delete(seq)) local.push(r.key_id);
        else remote.push(r.key_id);
        this.lastSeq = seq;
      }
      if (remote.length > 0) this.emit([...new Set(remote)], false);
      if (local.length > 0) this.emit([...new Set(local)], true);
      if (rows.length < 10000) return;
    }
  }

  private emit(ids: readonly string[], local: boolean): void {
    for (const listener of this.listeners) {
      try {
        listener(ids, local);
      } catch {
        // A listener's fault must not stop the others from hearing about the change.
      }
    }
  }

  // --- the custody lock (custody/rotation.ts) -----------------------------------------------------

  /**
   * KEK rotations exclude each other through the schema's custody lock, a session-level advisory
   * lock (`pg_try_advisory_lock(LOCK_CUSTODY, <schema hash>)`) on a connection of its own, outside
   * the pool, held for the whole rotation: a rotation on another host sharing this store waits
   * `waitMs` and is then refused with CUSTODY_ROTATION_IN_PROGRESS. PostgreSQL releases it when the
   * connection ends, however the holder ends (killed, host lost): nothing to clean up. A transaction
   * lock would not do: a rotation is many transactions over seconds or minutes.
   */
  readonly custodyLock: CustodyLock = {
    withLock: <T>(what: string, fn: (stillHeld: () => Promise<boolean>) => Promise<T>, waitMs = 5_000): Promise<T> => this.withCustodyLock(what, fn, waitMs),
  };

  private async withCustodyLock<T>(what: string, fn: (stillHeld: () => Promise<boolean>) => Promise<T>, waitMs: number): Promise<T> {
    const client = new pg.Client({ ...this.clientConfig, application_name: `portcullis-custody:${this.schema}` });
    const connection = { lost: false };
    client.on("error", (err) => {
      connection.lost = true;
      this.onError(err);
    });
    try {
      await client.connect();
    } catch (err) {
      await client.end().catch(() => undefined);
      throw new OperatorError("DURABLE_STORE_UNREACHABLE", `cannot connect to PostgreSQL for the custody lock: ${asError(err).message}`, { cause: err });
    }
    try {
      const deadline = Date.now() + waitMs;
      for (;;) {
        const { rows } = await client.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1, $2) AS ok", [LOCK_CUSTODY, this.lockKey]);
        if (rows[0]?.ok === true) break;
        if (Date.now() >= deadline) {
          throw new OperatorError("CUSTODY_ROTATION_IN_PROGRESS", `${what} is locked by another process, on this host or another sharing schema ${this.schema}; retry when it is done`);
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      // A session lock lasts as long as its session: the connection answering is the lock held.
      const stillHeld = async (): Promise<boolean> => {
        if (connection.lost) return false;
        try {
          await client.query("SELECT 1");
          return true;
        } catch {
          return false;
        }
      };
      return await fn(stillHeld);
    } finally {
      // Ending the session releases the lock; unlocked explicitly first all the same.
      if (!connection.lost) await client.query("SELECT pg_advisory_unlock($1, $2)", [LOCK_CUSTODY, this.lockKey]).catch(() => undefined);
      await client.end().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    this.unlisten();
    this.stopProbe();
    await this.delivering;
    await this.pool.end();
  }
}
