import type pg from "pg";
import type { PoolClient } from "pg";
import { transaction } from "./transaction.js";
import type { AppendResult } from "../../audit/store.js";
import type { AuditFields } from "../../audit/events.js";
import type { Decimal } from "../../contract/operations.js";
import type { AddressListFilter, AddressRow, AddressStore, PolicyStore, PolicyVersionRow, PolicyVersionSummary, SpendEntry, SpendQuery, SpendStore } from "../types.js";
import { LOCK_POLICY, nameLockKey, schemaLockKey } from "./locks.js";

/**
 * The policy's durable state on PostgreSQL (migration 4), as storage/sqlite/policy.ts keeps it in
 * SQLite: versioned policy documents, the withdrawal address books and the velocity ledger. Every
 * audited change (`policy.change`, `address.add`, `address.remove`) writes its entry through the
 * store's PostgresAudit in the change's own transaction.
 *
 * Where SQLite serialises every write with its immediate transactions, these take advisory locks
 * held to the end of the transaction (`pg_advisory_xact_lock`) before they read:
 * - a new policy version: the schema's policy lock (LOCK_POLICY), so two processes cannot both
 *   see version n as the latest and both write n + 1;
 * - a new address: the account's address lock, so two processes cannot both add the same entry;
 * - a spend decision: the lock of every (kind, key) and (kind, account) window it reads, taken in
 *   one order (by lock key) so that decisions never deadlock; see PostgresSpendStore.
 */

/** Writes audit entries inside the caller's transaction (PostgresAudit.appendWithin). */
export interface PgAuditWithin {
  appendWithin(tx: PoolClient, entries: readonly AuditFields[]): Promise<AppendResult>;
}

/** The ledger forgets what is older than the longest window a policy may read (30 days), and a day more. */
const LEDGER_KEEP_MS = 31 * 86_400_000;

/** BIGINT columns arrive as strings (exact); times fit a double. */
type Big = string;

interface AddressSql {
  id: string;
  account: string;
  asset: string;
  address: string;
  network: string | null;
  tag: string | null;
  label: string;
  added_at: Big;
  added_by: string;
  usable_from: Big;
  removed_at: Big | null;
  removed_by: string | null;
}

function addressFromSql(r: AddressSql): AddressRow {
  return {
    id: r.id,
    account: r.account,
    asset: r.asset,
    address: r.address,
    network: r.network,
    tag: r.tag,
    label: r.label,
    addedAt: Number(r.added_at),
    addedBy: r.added_by,
    usableFrom: Number(r.usable_from),
    removedAt: r.removed_at === null ? null : Number(r.removed_at),
    removedBy: r.removed_by,
  };
}

interface VersionSummarySql {
  version: number;
  digest: string;
  rules: number;
  created_at: Big;
  created_by: string;
}

function versionFromSql(r: VersionSummarySql): PolicyVersionSummary {
  return { version: r.version, digest: r.digest, rules: r.rules, createdAt: Number(r.created_at), createdBy: r.created_by };
}

/** A Decimal as NUMERIC text, its scale kept ("1.50" for 150 at scale 2). */
export function decimalToNumeric(d: Decimal): string {
  if (typeof d.coefficient !== "bigint" || !Number.isSafeInteger(d.scale) || d.scale < 0) throw new RangeError("a decimal is a bigint coefficient and a non-negative integer scale");
  const negative = d.coefficient < 0n;
  const digits = (negative ? -d.coefficient : d.coefficient).toString().padStart(d.scale + 1, "0");
  const text = d.scale === 0 ? digits : `${digits.slice(0, digits.length - d.scale)}.${digits.slice(digits.length - d.scale)}`;
  return negative ? `-${text}` : text;
}

/** NUMERIC text back to a Decimal: "3.50" is 350 at scale 2 (the scale PostgreSQL gives a sum: its terms' largest). */
export function numericToDecimal(text: string): Decimal {
  const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(text);
  if (m === null) throw new RangeError(`not a decimal: ${text}`);
  const fraction = m[3] ?? "";
  const coefficient = BigInt(`${m[2] ?? "0"}${fraction}`);
  return Object.freeze({ coefficient: m[1] === "-" ? -coefficient : coefficient, scale: fraction.length });
}

export class PostgresPolicyStore implements PolicyStore {
  private readonly lockKey: number;

  constructor(
    private readonly pool: pg.Pool,
    schema: string,
    private readonly audit: PgAuditWithin,
  ) {
    this.lockKey = schemaLockKey(schema);
  }

  async latest(): Promise<{ version: number; digest: string } | null> {
    const { rows } = await this.pool.query<{ version: number; digest: string }>("SELECT version, digest FROM policy_versions ORDER BY version DESC LIMIT 1");
    const r = rows[0];
    return r === undefined ? null : { version: r.version, digest: r.digest };
  }

  async get(version: number): Promise<PolicyVersionRow | undefined> {
    if (!Number.isSafeInteger(version) || version < 1 || version > 0x7fffffff) return undefined;
    const { rows } = await this.pool.query<VersionSummarySql & { document: string }>("SELECT * FROM policy_versions WHERE version = $1", [version]);
    const r = rows[0];
    return r === undefined ? undefined : { ...versionFromSql(r), document: r.document };
  }

  async versions(limit: number): Promise<PolicyVersionSummary[]> {
    const { rows } = await this.pool.query<VersionSummarySql>("SELECT version, digest, rules, created_at, created_by FROM policy_versions ORDER BY version DESC LIMIT $1", [limit]);
    return rows.map(versionFromSql);
  }

  insert(row: PolicyVersionRow, detail: Readonly<Record<string, unknown>>): Promise<{ ok: true } | { ok: false; latest: number }> {
    return transaction(this.pool, async (client): Promise<{ ok: true } | { ok: false; latest: number }> => {
      // One new version at a time: the latest read below is still the latest at the commit.
      await client.query("SELECT pg_advisory_xact_lock($1, $2)", [LOCK_POLICY, this.lockKey]);
      const latest = (await client.query<{ version: number }>("SELECT version FROM policy_versions ORDER BY version DESC LIMIT 1")).rows[0]?.version ?? 0;
      if (latest !== row.version - 1) return { ok: false, latest };
      await client.query("INSERT INTO policy_versions (version, document, digest, rules, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6)", [
        row.version,
        row.document,
        row.digest,
        row.rules,
        row.createdAt,
        row.createdBy,
      ]);
      await this.audit.appendWithin(client, [
        { event: "policy.change", at: row.createdAt, actor: row.createdBy, detail: { ...detail, version: row.version, digest: row.digest, rules: row.rules, previous: latest } },
      ]);
      return { ok: true };
    });
  }
}

export class PostgresAddressStore implements AddressStore {
  constructor(
    private readonly pool: pg.Pool,
    private readonly schema: string,
    private readonly audit: PgAuditWithin,
  ) {}

  add(row: AddressRow): Promise<{ ok: true } | { ok: false; existing: AddressRow }> {
    return transaction(this.pool, async (client): Promise<{ ok: true } | { ok: false; existing: AddressRow }> => {
      // The account's address lock: of two processes adding the same entry, the second finds the first's.
      await client.query("SELECT pg_advisory_xact_lock($1::bigint)", [nameLockKey(this.schema, "address", row.account).toString()]);
      const existing = (
        await client.query<AddressSql>(
          `SELECT * FROM address_book WHERE account = $1 AND asset = $2 AND address = $3 AND network IS NOT DISTINCT FROM $4::text
             AND tag IS NOT DISTINCT FROM $5::text AND removed_at IS NULL LIMIT 1`,
          [row.account, row.asset, row.address, row.network, row.tag],
        )
      ).rows[0];
      if (existing !== undefined) return { ok: false, existing: addressFromSql(existing) };
      await client.query(
        `INSERT INTO address_book (id, account, asset, address, network, tag, label, added_at, added_by, usable_from)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
        [row.id, row.account, row.asset, row.address, row.network, row.tag, row.label, row.addedAt, row.addedBy, row.usableFrom],
      );
      await this.audit.appendWithin(client, [
        {
          event: "address.add",
          at: row.addedAt,
          actor: row.addedBy,
          account: row.account,
          detail: { id: row.id, asset: row.asset, address: row.address, network: row.network, tag: row.tag, label: row.label, usableFrom: row.usableFrom },
        },
      ]);
      return { ok: true };
    });
  }

  remove(id: string, account: string | null, actor: string, at: number): Promise<AddressRow | undefined> {
    return transaction(this.pool, async (client): Promise<AddressRow | undefined> => {
      // Of two processes removing the same entry, the second waits for the row and then matches nothing.
      const r = (
        await client.query<AddressSql>(
          "UPDATE address_book SET removed_at = $1, removed_by = $2 WHERE id = $3 AND removed_at IS NULL AND ($4::text IS NULL OR account = $4::text) RETURNING *",
          [at, actor, id, account],
        )
      ).rows[0];
      if (r === undefined) return undefined;
      await this.audit.appendWithin(client, [{ event: "address.remove", at, actor, account: r.account, detail: { id: r.id, asset: r.asset, address: r.address, network: r.network, tag: r.tag } }]);
      return addressFromSql(r);
    });
  }

  async get(id: string): Promise<AddressRow | undefined> {
    const r = (await this.pool.query<AddressSql>("SELECT * FROM address_book WHERE id = $1", [id])).rows[0];
    return r === undefined ? undefined : addressFromSql(r);
  }

  async list(filter: AddressListFilter): Promise<AddressRow[]> {
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (filter.account !== undefined) {
      params.push(filter.account);
      where.push(`account = $${params.length}`);
    }
    if (filter.asset !== undefined) {
      params.push(filter.asset);
      where.push(`asset = $${params.length}`);
    }
    if (filter.removed !== true) where.push("removed_at IS NULL");
    params.push(filter.limit);
    const sql = `SELECT * FROM address_book ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY account, asset, added_at, id LIMIT $${params.length}`;
    return (await this.pool.query<AddressSql>(sql, params)).rows.map(addressFromSql);
  }

  async lookup(account: string, asset: string, address: string): Promise<AddressRow[]> {
    const { rows } = await this.pool.query<AddressSql>("SELECT * FROM address_book WHERE account = $1 AND asset = $2 AND address = $3 AND removed_at IS NULL ORDER BY added_at, id", [
      account,
      asset,
      address,
    ]);
    return rows.map(addressFromSql);
  }
}

const ZERO: Decimal = Object.freeze({ coefficient: 0n, scale: 0 });

/**
 * The velocity ledger. `decide` is one READ COMMITTED transaction that first takes a
 * transaction-scoped advisory lock (`pg_advisory_xact_lock(bigint)`) for each window it reads —
 * (kind, key) for a per-key window, (kind, account) for a per-account one — in ascending lock-key
 * order, then reads the sums, calls `choose`, and records its entry. Every statement after the
 * locks sees whatever a previous holder committed, and the locks are held to the commit: two
 * decisions that read a common window, in one process or many, run one after the other, so they
 * can never both pass a cap only one fits under. Decisions on other keys and accounts do not wait.
 * Row locks would not do: a window with no entry yet has no row to lock.
 *
 * The recorded entry is the query's (its kind, key and account: the policy engine records the
 * operation it decided on); one for another key or account would not be covered by the locks.
 */
export class PostgresSpendStore implements SpendStore {
  constructor(
    private readonly pool: pg.Pool,
    private readonly schema: string,
  ) {}

  /** The sums of the query's windows (inside the transaction, after the locks). */
  private async read(q: pg.PoolClient | pg.Pool, query: SpendQuery): Promise<(Decimal | null)[]> {
    const out: (Decimal | null)[] = [];
    for (const w of query.windows) {
      const who = w.per === "key" ? query.keyId : query.account;
      if (who === null) {
        out.push(ZERO);
        continue;
      }
      const column = w.per === "key" ? "key_id" : "account";
      const { rows } = await q.query<{ total: string | null; unknown: string }>(
        `SELECT SUM(value)::text AS total, COUNT(*) FILTER (WHERE value IS NULL) AS unknown FROM policy_spend WHERE ${column} = $1 AND kind = $2 AND at > $3`,
        [who, query.kind, query.at - w.windowMs],
      );
      const r = rows[0];
      if (r === undefined || r.total === null) out.push(r !== undefined && Number(r.unknown) > 0 ? null : ZERO);
      else out.push(Number(r.unknown) > 0 ? null : numericToDecimal(r.total));
    }
    return out;
  }

  /** The advisory lock keys of the windows `query` reads, ascending, without repeats. */
  private lockKeys(query: SpendQuery): bigint[] {
    const keys = new Set<bigint>();
    for (const w of query.windows) {
      const who = w.per === "key" ? query.keyId : query.account;
      if (who !== null) keys.add(nameLockKey(this.schema, `spend:${w.per}`, `${query.kind}\u0000${who}`));
    }
    return [...keys].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  decide<T>(query: SpendQuery, choose: (sums: readonly (Decimal | null)[]) => { readonly record: SpendEntry | null; readonly result: T }): Promise<T> {
    return transaction(this.pool, async (client): Promise<T> => {
      for (const key of this.lockKeys(query)) await client.query("SELECT pg_advisory_xact_lock($1::bigint)", [key.toString()]);
      const chosen = choose(await this.read(client, query));
      const e = chosen.record;
      if (e !== null) {
        const value = e.value === null ? null : decimalToNumeric(e.value);
        // Old entries go as new ones arrive; rows another decision is pruning are left to it (no waiting, no deadlock).
        await client.query("DELETE FROM policy_spend WHERE seq IN (SELECT seq FROM policy_spend WHERE at <= $1 FOR UPDATE SKIP LOCKED)", [e.at - LEDGER_KEEP_MS]);
        await client.query("INSERT INTO policy_spend (ref, kind, key_id, account, asset, value, at) VALUES ($1, $2, $3, $4, $5, $6::numeric, $7)", [
          e.ref,
          e.kind,
          e.keyId,
          e.account,
          e.asset,
          value,
          e.at,
        ]);
      }
      return chosen.result;
    });
  }

  sums(query: SpendQuery): Promise<readonly (Decimal | null)[]> {
    // One snapshot for every window (as SQLite's read transaction).
    return transaction(this.pool, async (client) => {
      await client.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
      return this.read(client, query);
    });
  }

  async forget(ref: string): Promise<number> {
    const result = await this.pool.query("DELETE FROM policy_spend WHERE ref = $1", [ref]);
    return result.rowCount ?? 0;
  }
}
