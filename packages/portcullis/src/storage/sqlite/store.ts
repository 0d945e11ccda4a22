import Database from "better-sqlite3";
import { OperatorError } from "../../errors/catalogue.js";
import { chmodSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import type { ReservationStore } from "../../replay/reservations.js";
import type { AgentInsert, AgentInsertResult, TreeRevokeResult, ChangeFeed, DurableStore, EndedSessionStore, EnvelopeReplacement, EnvelopeStore, HeldEnvelopeColumn, HeldEnvelopes, KeyChange, KeyEnvelopes, KeyListFilter, KeyPatch, KeyRow, KeyStore, MetaStore, RotationResult, TransitionResult } from "../types.js";
// The policy's stores (migration 11): a line of its own, so the wiring stays apart from the keys'.
import type { AddressStore, PolicyStore, SpendStore } from "../types.js";
import { ENVELOPE_META_PREFIXES, KEK_FLOOR_META, envelopeKekVersion, metaEnvelopeKekVersion, parseKekFloor } from "../kek-floor.js";
import type { KeyStatus } from "../../contract/keys.js";
import { type ColumnTypes, type KeyRowColumns, keyRowFromColumns, patchColumns, searchPatterns } from "../key-rows.js";
import { SqliteAudit } from "./audit.js";
import { SqliteAddressStore, SqlitePolicyStore, SqliteSpendStore } from "./policy.js";
import { SqliteHolds } from "./holds.js";
// Behaviour states (migration 15): a line of its own.
import { SqliteBehaviourStore } from "./behaviour.js";
import { migrations } from "./migrations.js";
import { SqliteAnomalies } from "./anomalies.js";
import { SqlitePasskeys } from "./passkeys.js";
import { SqliteHpkeKeys } from "./hpke.js";
import { SqliteWriter } from "./writer.js";
import { RESERVE_SQL } from "./writer-protocol.js";
import type { AuditStore } from "../../audit/store.js";
import type { BehaviourStateStore } from "../types.js";

/** A `keys` row as better-sqlite3 returns it: integers as numbers, flags as 0/1. */
type KeyRowSql = KeyRowColumns<number, number>;

const SQLITE_TYPES: ColumnTypes<number, number> = { int: (v) => v, flag: (v) => v === 1 };

/** The key directly above an agent (contract/keys.ts agentAbove), as migration 19's index has it. */
const AGENT_ABOVE_SQL = "COALESCE(json_extract(agent, '$.parent'), json_extract(agent, '$.ownerKey'))";

function fromSql(r: KeyRowSql): KeyRow {
  return keyRowFromColumns(r, SQLITE_TYPES);
}

const flagBit = (v: boolean): number => (v ? 1 : 0);

/**
 * Keys a filtered list (a search, a status, the operator flag) looks at per synchronous step: a step
 * reads this many entries of the keys_search index (about 2 ms; 1,000,000 keys are 245 steps,
 * 0.4-0.6 s in all), then yields to the event loop.
 */
const SEARCH_STEP = 4096;

export interface SqliteStoreOptions {
  /** How often other processes' commits are looked for (ms). Default 200. */
  readonly pollIntervalMs?: number;
  /**
   * Writes the audit log's group commits and spill files, last-use batches and behaviour states
   * on a worker thread with its own connection (writer.ts), off the request thread. Default false
   * (everything on this connection); `portcullis start` sets it.
   */
  readonly offThreadWrites?: boolean;
  /** Told when the worker thread of `offThreadWrites` dies (it is started again on the next write). */
  readonly onWriterDeath?: (err: Error) => void;
}

/**
 * The embedded durable store: one SQLite file in WAL mode, shared safely by the gateway and any
 * number of CLI processes. Changes made by another process are noticed through
 * `PRAGMA data_version` (a cheap in-memory counter) and read from the `key_changes` feed.
 */
export class SqliteStore implements DurableStore, KeyStore, ChangeFeed, MetaStore, EnvelopeStore, ReservationStore, EndedSessionStore {
  readonly kind = "sqlite";
  readonly keys: KeyStore = this;
  readonly replay: ReservationStore = this;
  readonly logouts: EndedSessionStore = this;
  readonly changes: ChangeFeed = this;
  readonly meta: MetaStore = this;
  readonly envelopes: EnvelopeStore = this;
  /** The audit log (migration 6); every recorded KeyChange is also an audit entry, in its transaction. */
  readonly audit: SqliteAudit;
  readonly policies: PolicyStore;
  readonly addresses: AddressStore;
  readonly spend: SpendStore;
  /** Approvers and held operations (migration 12; docs/approvals.md). */
  readonly holds: SqliteHolds;
  /** Each key's and account's behaviour state (migration 15; docs/behaviour.md). */
  readonly behaviour: BehaviourStateStore;
  /** Behaviour states on this connection (behaviour: the same, or the worker's when writes are off-thread). */
  readonly localBehaviour: SqliteBehaviourStore;
  /** The worker thread's writer (offThreadWrites), or null. */
  readonly writer: SqliteWriter | null;
  /** Where the audit log's decision batches go: the worker's writer, or `audit`. */
  readonly decisions: AuditStore;
  /** The behaviour stage's anomaly actions (migration 14; docs/behaviour.md). */
  readonly anomalies: SqliteAnomalies;
  /** Passkeys and their challenges (migration 18; docs/passkeys.md). */
  readonly passkeys: SqlitePasskeys;
  /** The gateway's HPKE keys (migration 20; docs/sealed-orders.md). */
  readonly hpke: SqliteHpkeKeys;
  private readonly db: Database.Database;
  private readonly listeners = new Set<(ids: readonly string[], local: boolean) => void>();
  private timer: NodeJS.Timeout | null = null;
  private lastSeq: number;
  private lastDataVersion: number;
  private readonly pollIntervalMs: number;
  private closed = false;
  private reserveStatement: Database.Statement<[string, string]> | null = null;

  private readonly stmts: {
    insert: Database.Statement;
    /** Records a KeyChange: its change-feed row and its audit entry (call inside the change's transaction). */
    insertChange: { run(keyId: string, action: string, actor: string, at: number, detail: string): void };
    get: Database.Statement<[string], KeyRowSql>;
    transition: Database.Statement;
    touch: Database.Statement;
    changesSince: Database.Statement<[number], { seq: number; key_id: string }>;
    maxSeq: Database.Statement<[], { seq: number | null }>;
    getMeta: Database.Statement<[string], { value: string }>;
  };

  constructor(path: string, options: SqliteStoreOptions = {}) {
    const fresh = path !== ":memory:" && !existsSync(path);
    this.db = new Database(path);
    if (fresh) chmodSync(path, 0o600);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = FULL");
    this.db.pragma("busy_timeout = 5000");
    this.db.pragma("foreign_keys = ON");
    this.migrate();
    this.pollIntervalMs = options.pollIntervalMs ?? 200;
    const here = path === ":memory:" ? null : dirname(path);
    this.audit = new SqliteAudit(this.db, { spillDir: here === null ? null : join(here, "audit-spill"), archiveDir: here === null ? null : join(here, "audit-archive") });
    this.policies = new SqlitePolicyStore(this.db, this.audit);
    this.addresses = new SqliteAddressStore(this.db, this.audit);
    this.spend = new SqliteSpendStore(this.db);
    this.holds = new SqliteHolds(this.db, this.audit, (envelopes, what) => {
      this.checkKekFloor(envelopes, what);
    });
    this.localBehaviour = new SqliteBehaviourStore(this.db);
    this.writer =
      options.offThreadWrites === true && path !== ":memory:"
        ? new SqliteWriter({ path, audit: this.audit, behaviour: this.localBehaviour, ...(options.onWriterDeath === undefined ? {} : { onDeath: options.onWriterDeath }) })
        : null;
    this.writer?.open();
    this.behaviour = this.writer?.behaviour ?? this.localBehaviour;
    this.decisions = this.writer ?? this.audit;
    this.anomalies = new SqliteAnomalies(this.db);
    this.passkeys = new SqlitePasskeys(this.db, this.audit);
    this.hpke = new SqliteHpkeKeys(this.db, (envelopes, what) => {
      this.checkKekFloor(envelopes, what);
    });
    const insertChange = this.db.prepare("INSERT INTO key_changes (key_id, action, actor, at, detail) VALUES (?, ?, ?, ?, ?)");
    this.stmts = {
      insert: this.db.prepare(
        `INSERT INTO keys (id, environment, account, sub_account, label, algorithm, public_key, secret_envelope,
           scopes, ip_allowlist, dialects, expires_at, window_ms, status, status_reason, created_at, updated_at,
           last_used_at, revision, passphrase_hash, limits, session_epoch, session_ttl_ms, session_bind_address,
           rotated_from, rotated_to, max_age_ms, passphrase_envelope, operator, owner, guardrails, risk, cert_thumbprint, agent)
         VALUES (@id, @environment, @account, @subAccount, @label, @algorithm, @publicKey, @secretEnvelope,
           @scopes, @ipAllowlist, @dialects, @expiresAt, @windowMs, @status, @statusReason, @createdAt, @updatedAt,
           @lastUsedAt, @revision, @passphraseHash, @limits, @sessionEpoch, @sessionTtlMs, @sessionBindAddress,
           @rotatedFrom, @rotatedTo, @maxAgeMs, @passphraseEnvelope, @operator, @owner, @guardrails, @risk, @certThumbprint, @agent)`,
      ),
      insertChange: {
        run: (keyId, action, actor, at, detail) => {
          insertChange.run(keyId, action, actor, at, detail);
          this.audit.keyChange(keyId, action, actor, at, detail);
        },
      },
      get: this.db.prepare("SELECT * FROM keys WHERE id = ?"),
      transition: this.db.prepare(
        `UPDATE keys SET status = @to, status_reason = @reason, updated_at = @at, revision = revision + 1,
           session_epoch = session_epoch + 1
         WHERE id = @id AND status IN (SELECT value FROM json_each(@from))
         RETURNING *`,
      ),
      touch: this.db.prepare(
        "UPDATE keys SET last_used_at = MAX(COALESCE(last_used_at, 0), ?) WHERE id = ?",
      ),
      changesSince: this.db.prepare("SELECT seq, key_id FROM key_changes WHERE seq > ? ORDER BY seq LIMIT 10000"),
      maxSeq: this.db.prepare("SELECT MAX(seq) AS seq FROM key_changes"),
      getMeta: this.db.prepare("SELECT value FROM meta WHERE key = ?"),
    };
    this.lastSeq = this.stmts.maxSeq.get()?.seq ?? 0;
    this.lastDataVersion = this.dataVersion();
  }

  private migrate(): void {
    this.db.exec(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT",
    );
    const applied = new Set(
      (this.db.prepare("SELECT version FROM schema_migrations").all() as { version: number }[]).map((r) => r.version),
    );
    const newest = Math.max(0, ...applied);
    const known = Math.max(...migrations.map((m) => m.version));
    if (newest > known) {
      throw new OperatorError("DATABASE_TOO_NEW", `database schema version ${newest} is newer than this Portcullis (${known}); upgrade Portcullis`);
    }
    for (const m of migrations) {
      if (applied.has(m.version)) continue;
      this.db.transaction(() => {
        this.db.exec(m.sql);
        m.after?.(this.db);
        this.db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)").run(m.version, m.name, Date.now());
      }).immediate();
    }
  }

  private dataVersion(): number {
    return this.db.pragma("data_version", { simple: true }) as number;
  }

  insert(row: KeyRow, change: KeyChange): Promise<void> {
    this.db.transaction(() => {
      this.insertRow(row, change);
    }).immediate();
    this.deliverChanges();
    return Promise.resolve();
  }

  private insertRow(row: KeyRow, change: KeyChange): void {
    this.checkKekFloor([row.secretEnvelope, row.passphraseEnvelope], `key ${row.id}`);
    this.stmts.insert.run({
      ...row,
      scopes: JSON.stringify(row.scopes),
      ipAllowlist: JSON.stringify(row.ipAllowlist),
      dialects: JSON.stringify(row.dialects),
      limits: JSON.stringify(row.limits),
      sessionBindAddress: row.sessionBindAddress ? 1 : 0,
      operator: row.operator ? 1 : 0,
      guardrails: row.guardrails === null ? null : JSON.stringify(row.guardrails),
      risk: row.risk === null ? null : JSON.stringify(row.risk),
      agent: row.agent === null ? null : JSON.stringify(row.agent),
    });
    this.recordChange(row.id, change);
  }

  // --- wallet owners and agents (migration 19; docs/wallets.md) ----------------------------------

  wallets(address: string): Promise<KeyRow[]> {
    const rows = this.db.prepare<[string], KeyRowSql>("SELECT * FROM keys WHERE algorithm = 'ethereum' AND public_key = ? ORDER BY created_at, id").all(address);
    return Promise.resolve(rows.map(fromSql));
  }

  children(id: string): Promise<KeyRow[]> {
    return Promise.resolve(this.childRows(id).map(fromSql));
  }

  private childRows(id: string): KeyRowSql[] {
    return this.db.prepare<[string], KeyRowSql>(`SELECT * FROM keys WHERE agent IS NOT NULL AND ${AGENT_ABOVE_SQL} = ? ORDER BY id`).all(id);
  }

  insertAgents(rows: readonly AgentInsert[], active: readonly string[]): Promise<AgentInsertResult> {
    const result = this.db.transaction((): AgentInsertResult => {
      for (const id of active) {
        if (this.stmts.get.get(id)?.status !== "active") return { ok: false, reason: "inactive", id };
      }
      for (const { row } of rows) {
        if (this.stmts.get.get(row.id) !== undefined) return { ok: false, reason: "exists", id: row.id };
      }
      for (const { row, change } of rows) this.insertRow(row, change);
      return { ok: true };
    }).immediate();
    if (result.ok) this.deliverChanges();
    return Promise.resolve(result);
  }

  revokeTree(id: string, from: readonly KeyStatus[], reason: string | null, change: KeyChange): Promise<TreeRevokeResult> {
    const result = this.db.transaction((): TreeRevokeResult => {
      const revoke = (keyId: string, states: readonly KeyStatus[], record: KeyChange): KeyRowSql | undefined => {
        const row = this.stmts.transition.get({ id: keyId, from: JSON.stringify(states), to: "revoked", reason, at: record.at }) as KeyRowSql | undefined;
        if (row === undefined) return undefined;
        this.holds.cancelForKey(keyId, "revoked", record.at, record.actor);
        this.recordChange(keyId, record);
        return row;
      };
      const top = revoke(id, from, change);
      if (top === undefined) {
        const why = this.whyNot(id);
        return why.ok ? { ok: false, reason: "conflict" } : why;
      }
      const below: KeyRow[] = [];
      const cascade: KeyChange = { ...change, detail: { ...change.detail, cascade: id } };
      // Breadth first down the index; a key already revoked is passed through (its children were
      // revoked with it, unless written before this walk existed).
      const queue = [id];
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
        for (const child of this.childRows(next)) {
          queue.push(child.id);
          const row = revoke(child.id, ["active", "suspended"], cascade);
          if (row !== undefined) below.push(fromSql(row));
        }
      }
      return { ok: true, row: fromSql(top), below };
    }).immediate();
    if (result.ok) this.deliverChanges();
    return Promise.resolve(result);
  }

  private recordChange(id: string, change: KeyChange): void {
    this.stmts.insertChange.run(id, change.action, change.actor, change.at, JSON.stringify(change.detail));
  }

  get(id: string): Promise<KeyRow | undefined> {
    const row = this.stmts.get.get(id);
    return Promise.resolve(row === undefined ? undefined : fromSql(row));
  }

  list(filter: KeyListFilter): Promise<KeyRow[]> {
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (filter.account !== undefined) {
      where.push("account = ?");
      params.push(filter.account);
    }
    if (filter.operator !== undefined) {
      where.push("operator = ?");
      params.push(filter.operator ? 1 : 0);
    }
    if (filter.status !== undefined) {
      where.push("status = ?");
      params.push(filter.status);
    }
    if (filter.search !== undefined) {
      const patterns = searchPatterns(filter.search);
      if (patterns === null) return Promise.resolve([]);
      // SQLite's LIKE ignores the case of ASCII letters (case_sensitive_like is never set).
      where.push("(id LIKE ? ESCAPE '\\' OR account LIKE ? ESCAPE '\\' OR label LIKE ? ESCAPE '\\')");
      params.push(patterns.prefix, patterns.prefix, patterns.infix);
    }
    // A filter no index answers (a search, a status, the operator flag) may have to look at every
    // key, of the table or of one account: in steps, off the event loop's back. (Only account and
    // the id cursor are index ranges; a status nobody has made one statement read every key.)
    if (filter.search !== undefined || filter.status !== undefined || filter.operator !== undefined) return this.walk(where, params, filter.account, filter.after, filter.limit);
    if (filter.after !== undefined) {
      where.push("id > ?");
      params.push(filter.after);
    }
    params.push(filter.limit);
    const sql = `SELECT * FROM keys ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY id LIMIT ?`;
    const rows = this.db.prepare<(string | number)[], KeyRowSql>(sql).all(...params);
    return Promise.resolve(rows.map(fromSql));
  }

  /**
   * A filtered list, `SEARCH_STEP` keys at a time in id order (of the whole table, or of `account`
   * by its index), yielding to the event loop between steps: a filter few keys match looks at
   * every key, which with a million keys takes hundreds of milliseconds that must not stall the
   * gateway sharing this thread. Across accounts each step reads the keys_search index (every
   * column the conditions need) and the table only for its matches. The steps are separate reads:
   * a key changed during the walk may be seen before or after its change, as across the pages of
   * any list.
   */
  private async walk(where: readonly string[], params: readonly (string | number)[], account: string | undefined, after: string | undefined, limit: number): Promise<KeyRow[]> {
    const found: KeyRow[] = [];
    const scope = account === undefined ? [] : ["account = ?"];
    const scoped = account === undefined ? [] : [account];
    let from = after;
    for (;;) {
      // The last id of this step (none: the step reaches the end of the table, or of the account).
      const bounds = [...scope, ...(from === undefined ? [] : ["id > ?"])];
      const end = this.db
        .prepare<(string | number)[], { id: string }>(`SELECT id FROM keys ${bounds.length === 0 ? "" : `WHERE ${bounds.join(" AND ")}`} ORDER BY id LIMIT 1 OFFSET ?`)
        .get(...scoped, ...(from === undefined ? [] : [from]), SEARCH_STEP - 1);
      const range = [...(from === undefined ? [] : ["id > ?"]), ...(end === undefined ? [] : ["id <= ?"])];
      const index = account === undefined ? "keys_search" : "keys_by_account";
      const sql = `SELECT * FROM keys INDEXED BY ${index} WHERE ${[...range, ...where].join(" AND ")} ORDER BY id LIMIT ?`;
      const values = [...(from === undefined ? [] : [from]), ...(end === undefined ? [] : [end.id]), ...params, limit - found.length];
      for (const row of this.db.prepare<(string | number)[], KeyRowSql>(sql).all(...values)) found.push(fromSql(row));
      if (found.length >= limit || end === undefined) return found;
      from = end.id;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  transition(id: string, from: readonly KeyStatus[], to: KeyStatus, reason: string | null, change: KeyChange): Promise<TransitionResult> {
    return this.change(id, change, () => {
      const row = this.stmts.transition.get({ id, from: JSON.stringify(from), to, reason, at: change.at }) as KeyRowSql | undefined;
      // Revoking or suspending a key cancels its held operations in the key change's transaction:
      // once it commits, none of them can be claimed for release (docs/approvals.md).
      if (row !== undefined && (to === "revoked" || to === "suspended")) this.holds.cancelForKey(id, to, change.at, change.actor);
      return row;
    });
  }

  update(id: string, from: readonly KeyStatus[], patch: KeyPatch, change: KeyChange): Promise<TransitionResult> {
    const sets = ["updated_at = ?", "revision = revision + 1"];
    const values: (string | number | null)[] = [change.at];
    for (const [column, value] of patchColumns(patch, flagBit)) {
      sets.push(`${column} = ?`);
      values.push(value);
    }
    if (patch.endSessions === true) sets.push("session_epoch = session_epoch + 1");
    const statement = this.db.prepare<(string | number | null)[], KeyRowSql>(
      `UPDATE keys SET ${sets.join(", ")} WHERE id = ? AND status IN (SELECT value FROM json_each(?)) RETURNING *`,
    );
    return this.change(id, change, () => statement.get(...values, id, JSON.stringify(from)));
  }

  /**
   * One conditional change of a key, in one transaction with its change record: `apply` runs the
   * UPDATE … RETURNING; when it matched nothing, the answer says why.
   */
  private change(id: string, change: KeyChange, apply: () => KeyRowSql | undefined): Promise<TransitionResult> {
    const result = this.db.transaction((): TransitionResult => {
      const updated = apply();
      if (updated === undefined) return this.whyNot(id);
      this.recordChange(id, change);
      return { ok: true, row: fromSql(updated) };
    }).immediate();
    if (result.ok) this.deliverChanges();
    return Promise.resolve(result);
  }

  rotate(id: string, successor: KeyRow, predecessorExpiresAt: number, change: KeyChange, created: KeyChange): Promise<RotationResult> {
    const link = this.db.prepare<[string, number, number, string], KeyRowSql>(
      `UPDATE keys SET rotated_to = ?, expires_at = ?, updated_at = ?, revision = revision + 1
       WHERE id = ? AND status IN ('active', 'suspended') AND rotated_to IS NULL RETURNING *`,
    );
    const result = this.db.transaction((): RotationResult => {
      const predecessor = link.get(successor.id, predecessorExpiresAt, change.at, id);
      if (predecessor === undefined) {
        const current = this.stmts.get.get(id);
        if (current === undefined) return { ok: false, reason: "not-found" };
        return { ok: false, reason: "conflict", current: current.status as KeyStatus, rotatedTo: current.rotated_to };
      }
      this.recordChange(id, change);
      this.insertRow(successor, created);
      return { ok: true, predecessor: fromSql(predecessor), successor };
    }).immediate();
    if (result.ok) this.deliverChanges();
    return Promise.resolve(result);
  }

  /** Why a conditional update matched nothing: no such key, or a key in another state. */
  private whyNot(id: string): TransitionResult {
    const current = this.stmts.get.get(id);
    if (current === undefined) return { ok: false, reason: "not-found" };
    return { ok: false, reason: "conflict", current: current.status as KeyStatus };
  }

  touch(lastUsed: ReadonlyMap<string, number>): Promise<void> {
    if (lastUsed.size === 0) return Promise.resolve();
    if (this.writer !== null) return this.writer.touch(lastUsed);
    this.db.transaction(() => {
      for (const [id, at] of lastUsed) this.stmts.touch.run(at, id);
    })();
    return Promise.resolve();
  }

  getMeta(key: string): Promise<string | undefined> {
    return Promise.resolve(this.stmts.getMeta.get(key)?.value);
  }

  // --- the KEK floor (storage/kek-floor.ts) ------------------------------------------------------

  /**
   * Refuses (CUSTODY_KEK_RETIRED) an envelope under a KEK version below the floor. Call inside the
   * write's transaction: the floor read and the write then commit together, so a rotation that
   * raises the floor either sees this write (and rewraps it) or refuses it.
   */
  private checkKekFloor(versions: readonly (Buffer | number | null)[], what: string): void {
    const floor = parseKekFloor(this.stmts.getMeta.get(KEK_FLOOR_META)?.value);
    if (floor === 0) return;
    for (const item of versions) {
      const version = item === null ? null : typeof item === "number" ? item : envelopeKekVersion(item);
      if (version !== null && version < floor) {
        throw new OperatorError("CUSTODY_KEK_RETIRED", `the envelope of ${what} is under KEK version ${version}, below the floor ${floor}: wrap it under the active version`);
      }
    }
  }

  kekFloor(): Promise<number> {
    return Promise.resolve(parseKekFloor(this.stmts.getMeta.get(KEK_FLOOR_META)?.value));
  }

  raiseKekFloor(floor: number): Promise<{ readonly raised: boolean; readonly floor: number; readonly below: number }> {
    if (!Number.isSafeInteger(floor) || floor < 1 || floor > 0xffffffff) return Promise.reject(new RangeError("a KEK floor is a version number"));
    const header = Buffer.alloc(4);
    header.writeUInt32BE(floor, 0);
    // Envelope headers compare as bytes: format 0x01, then the version as a big-endian u32.
    const rowsBelow = this.db.prepare<[Buffer, Buffer, Buffer, Buffer, Buffer], { n: number }>(
      `SELECT (SELECT COUNT(*) FROM keys WHERE secret_envelope IS NOT NULL AND substr(secret_envelope, 1, 1) = x'01' AND substr(secret_envelope, 2, 4) < ?)
            + (SELECT COUNT(*) FROM keys WHERE passphrase_envelope IS NOT NULL AND substr(passphrase_envelope, 1, 1) = x'01' AND substr(passphrase_envelope, 2, 4) < ?)
            + (SELECT COUNT(*) FROM held_operations WHERE substr(held, 1, 1) = x'01' AND substr(held, 2, 4) < ?)
            + (SELECT COUNT(*) FROM held_operations WHERE outcome IS NOT NULL AND substr(outcome, 1, 1) = x'01' AND substr(outcome, 2, 4) < ?)
            + (SELECT COUNT(*) FROM hpke_keys WHERE private_envelope IS NOT NULL AND substr(private_envelope, 1, 1) = x'01' AND substr(private_envelope, 2, 4) < ?) AS n`,
    );
    const metaRows = this.db.prepare<[number, string], { key: string; value: string }>("SELECT key, value FROM meta WHERE substr(key, 1, ?) = ?");
    const result = this.db.transaction(() => {
      let below = rowsBelow.get(header, header, header, header, header)?.n ?? 0;
      for (const prefix of ENVELOPE_META_PREFIXES) {
        for (const { key, value } of metaRows.all(prefix.length, prefix)) {
          const version = metaEnvelopeKekVersion(key, value);
          if (version !== null && version < floor) below++;
        }
      }
      const current = parseKekFloor(this.stmts.getMeta.get(KEK_FLOOR_META)?.value);
      if (below > 0) return { raised: false, floor: current, below };
      const next = Math.max(current, floor);
      this.db.prepare("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value").run(KEK_FLOOR_META, String(next));
      return { raised: true, floor: next, below: 0 };
    }).immediate();
    return Promise.resolve(result);
  }

  // --- increasing-nonce reservations (replay/reservations.ts) ----------------------------------

  reservations(): Promise<ReadonlyMap<string, bigint>> {
    const rows = this.db.prepare<[], { key_id: string; ceiling: string }>("SELECT key_id, ceiling FROM sequence_reservations").all();
    return Promise.resolve(new Map(rows.map((r) => [r.key_id, BigInt(r.ceiling)])));
  }

  reserve(keyId: string, ceiling: bigint): Promise<void> {
    if (ceiling < 0n) return Promise.reject(new RangeError("a reservation is a non-negative integer"));
    // A request waits for it: on the worker, the event loop does not wait for the write lock.
    if (this.writer !== null) return this.writer.reserve(keyId, ceiling);
    try {
      // Decimal strings without leading zeros order as numbers by (length, bytes): only ever raised.
      this.reserveStatement ??= this.db.prepare(RESERVE_SQL);
      this.reserveStatement.run(keyId, ceiling.toString());
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  // --- sessions ended by logout ----------------------------------------------------------------

  endSession(sessionId: string, until: number, now: number): Promise<void> {
    if (!Number.isSafeInteger(until) || !Number.isSafeInteger(now)) return Promise.reject(new RangeError("session end times must be integers (ms)"));
    try {
      this.db.transaction(() => {
        // The ones that have expired anyway are forgotten as new ones arrive.
        this.db.prepare("DELETE FROM ended_sessions WHERE until <= ?").run(now);
        if (until > now) {
          this.db
            .prepare("INSERT INTO ended_sessions (session_id, until) VALUES (?, ?) ON CONFLICT (session_id) DO UPDATE SET until = MAX(until, excluded.until)")
            .run(sessionId, until);
        }
      })();
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  endedSessions(now: number): Promise<ReadonlyMap<string, number>> {
    const rows = this.db.prepare<[number], { session_id: string; until: number }>("SELECT session_id, until FROM ended_sessions WHERE until > ?").all(now);
    return Promise.resolve(new Map(rows.map((r) => [r.session_id, r.until])));
  }

  setMeta(key: string, value: string): Promise<void> {
    try {
      this.db.transaction(() => {
        this.checkKekFloor([metaEnvelopeKekVersion(key, value)], `meta ${key}`);
        this.db.prepare("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value").run(key, value);
      }).immediate();
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  initMeta(key: string, value: string): Promise<string> {
    const version = metaEnvelopeKekVersion(key, value);
    const init = (): string => {
      const row = this.db
        .prepare<[string, string], { value: string }>(
          "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = value RETURNING value",
        )
        .get(key, value);
      return row?.value ?? value;
    };
    if (version === null) return Promise.resolve(init());
    try {
      // An envelope: refused under a version below the floor, unless the entry is already there
      // (then nothing is written and the stored value is the answer).
      return Promise.resolve(
        this.db.transaction(() => {
          const existing = this.stmts.getMeta.get(key);
          if (existing !== undefined) return existing.value;
          this.checkKekFloor([version], `meta ${key}`);
          return init();
        }).immediate(),
      );
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  // --- custody: envelopes for KEK rotation (never written to the change feed) ----------------

  keyEnvelopes(after: string, limit: number): Promise<KeyEnvelopes[]> {
    const rows = this.db
      .prepare<[string, number], { id: string; secret_envelope: Buffer | null; passphrase_envelope: Buffer | null; passphrase_hash: string | null }>(
        `SELECT id, secret_envelope, passphrase_envelope, passphrase_hash FROM keys
         WHERE id > ? AND (secret_envelope IS NOT NULL OR passphrase_envelope IS NOT NULL OR passphrase_hash IS NOT NULL)
         ORDER BY id LIMIT ?`,
      )
      .all(after, limit);
    return Promise.resolve(
      rows.map((r) => ({ id: r.id, secretEnvelope: r.secret_envelope, passphraseEnvelope: r.passphrase_envelope, legacyPassphraseHash: r.passphrase_hash })),
    );
  }

  replaceKeyEnvelopes(replacements: readonly EnvelopeReplacement[]): Promise<number> {
    if (replacements.length === 0) return Promise.resolve(0);
    const secret = this.db.prepare("UPDATE keys SET secret_envelope = ? WHERE id = ? AND secret_envelope = ?");
    const passphrase = this.db.prepare("UPDATE keys SET passphrase_envelope = ? WHERE id = ? AND passphrase_envelope = ?");
    try {
      const replaced = this.db.transaction(() => {
        this.checkKekFloor(replacements.map((r) => r.next), "a rewrap batch");
        let n = 0;
        for (const r of replacements) n += (r.column === "secret" ? secret : passphrase).run(r.next, r.id, r.expected).changes;
        return n;
      }).immediate();
      return Promise.resolve(replaced);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  heldEnvelopes(after: string, limit: number): Promise<HeldEnvelopes[]> {
    return this.holds.heldEnvelopes(after, limit);
  }

  replaceHeldEnvelopes(replacements: readonly EnvelopeReplacement<HeldEnvelopeColumn>[]): Promise<number> {
    return this.holds.replaceHeldEnvelopes(replacements);
  }

  sealLegacyPassphrase(id: string, expectedHash: string, envelope: Buffer): Promise<boolean> {
    const seal = this.db.prepare("UPDATE keys SET passphrase_envelope = ?, passphrase_hash = NULL WHERE id = ? AND passphrase_hash = ?");
    try {
      const changed = this.db.transaction(() => {
        this.checkKekFloor([envelope], `key ${id}'s passphrase`);
        return seal.run(envelope, id, expectedHash).changes;
      }).immediate();
      return Promise.resolve(changed === 1);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  metaEntries(prefix: string): Promise<{ key: string; value: string }[]> {
    const rows = this.db
      .prepare<[number, string], { key: string; value: string }>("SELECT key, value FROM meta WHERE substr(key, 1, ?) = ? ORDER BY key")
      .all(prefix.length, prefix);
    return Promise.resolve(rows);
  }

  replaceMeta(key: string, expected: string, next: string): Promise<boolean> {
    const replace = this.db.prepare("UPDATE meta SET value = ? WHERE key = ? AND value = ?");
    try {
      const changed = this.db.transaction(() => {
        this.checkKekFloor([metaEnvelopeKekVersion(key, next)], `meta ${key}`);
        return replace.run(next, key, expected).changes;
      }).immediate();
      return Promise.resolve(changed === 1);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /**
   * Writes a consistent copy of the whole database to `path` with SQLite's online backup API
   * (readers and writers carry on meanwhile); the copy gets mode 0600. Put `path` in a private
   * (0700) directory: the copy is the plaintext database.
   */
  async backupTo(path: string): Promise<void> {
    await this.db.backup(path);
    chmodSync(path, 0o600);
  }

  subscribe(listener: (keyIds: readonly string[], local: boolean) => void): () => void {
    this.listeners.add(listener);
    if (this.timer === null && !this.closed) {
      this.timer = setInterval(() => {
        this.poll();
      }, this.pollIntervalMs);
      this.timer.unref();
    }
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0 && this.timer !== null) {
        clearInterval(this.timer);
        this.timer = null;
      }
    };
  }

  /** Checks for commits by other processes; cheap when nothing changed. */
  poll(): void {
    if (this.closed) return;
    const version = this.dataVersion();
    if (version === this.lastDataVersion) return;
    this.lastDataVersion = version;
    this.deliverChanges(false);
  }

  private deliverChanges(local = true): void {
    const rows = this.stmts.changesSince.all(this.lastSeq);
    if (rows.length === 0) return;
    const last = rows[rows.length - 1];
    if (last !== undefined) this.lastSeq = last.seq;
    const ids = [...new Set(rows.map((r) => r.key_id))];
    for (const listener of this.listeners) {
      try {
        listener(ids, local);
      } catch {
        // A listener's fault must not stop the others from hearing about the change.
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.listeners.clear();
    // The worker's writes in flight finish (or are recovered) before this connection goes.
    await this.writer?.close();
    this.db.close();
  }
}
