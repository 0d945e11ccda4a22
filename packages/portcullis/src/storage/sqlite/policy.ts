import type Database from "better-sqlite3";
import type { AuditFields } from "../../audit/events.js";
import type { Decimal } from "../../contract/operations.js";
import type { AddressListFilter, AddressRow, AddressStore, PolicyStore, PolicyVersionRow, PolicyVersionSummary, SpendEntry, SpendQuery, SpendStore } from "../types.js";

/**
 * The policy's durable state in SQLite (migration 11): versioned policy documents, the withdrawal
 * address books and the velocity ledger, on the store's own connection so that every change and
 * its audit entry share one transaction.
 */

/** Writes audit entries inside the caller's transaction (SqliteAudit.appendWithin). */
export interface AuditWithin {
  appendWithin(entries: readonly AuditFields[]): unknown;
}

/** The ledger forgets what is older than the longest window a policy may read (30 days), and a day more. */
const LEDGER_KEEP_MS = 31 * 86_400_000;

interface AddressSql {
  id: string;
  account: string;
  asset: string;
  address: string;
  network: string | null;
  tag: string | null;
  label: string;
  added_at: number;
  added_by: string;
  usable_from: number;
  removed_at: number | null;
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
    addedAt: r.added_at,
    addedBy: r.added_by,
    usableFrom: r.usable_from,
    removedAt: r.removed_at,
    removedBy: r.removed_by,
  };
}

interface VersionSql {
  version: number;
  document: string;
  digest: string;
  rules: number;
  created_at: number;
  created_by: string;
}

function versionFromSql(r: Omit<VersionSql, "document">): PolicyVersionSummary {
  return { version: r.version, digest: r.digest, rules: r.rules, createdAt: r.created_at, createdBy: r.created_by };
}

function rejected(err: unknown): Promise<never> {
  return Promise.reject(err instanceof Error ? err : new Error(String(err)));
}

/** Sums exact decimals (coefficient text and scale); null when one is unknown. */
function sum(rows: readonly { coefficient: string | null; scale: number | null }[]): Decimal | null {
  let scale = 0;
  for (const r of rows) {
    if (r.coefficient === null || r.scale === null) return null;
    if (r.scale > scale) scale = r.scale;
  }
  let total = 0n;
  for (const r of rows) total += BigInt(r.coefficient ?? "0") * 10n ** BigInt(scale - (r.scale ?? 0));
  return Object.freeze({ coefficient: total, scale });
}

export class SqlitePolicyStore implements PolicyStore {
  private readonly latestStmt: Database.Statement<[], { version: number; digest: string }>;
  private readonly getStmt: Database.Statement<[number], VersionSql>;

  constructor(
    private readonly db: Database.Database,
    private readonly audit: AuditWithin,
  ) {
    this.latestStmt = db.prepare("SELECT version, digest FROM policy_versions ORDER BY version DESC LIMIT 1");
    this.getStmt = db.prepare("SELECT * FROM policy_versions WHERE version = ?");
  }

  latest(): Promise<{ version: number; digest: string } | null> {
    return Promise.resolve(this.latestStmt.get() ?? null);
  }

  get(version: number): Promise<PolicyVersionRow | undefined> {
    const r = this.getStmt.get(version);
    return Promise.resolve(r === undefined ? undefined : { ...versionFromSql(r), document: r.document });
  }

  versions(limit: number): Promise<PolicyVersionSummary[]> {
    const rows = this.db
      .prepare<[number], Omit<VersionSql, "document">>("SELECT version, digest, rules, created_at, created_by FROM policy_versions ORDER BY version DESC LIMIT ?")
      .all(limit);
    return Promise.resolve(rows.map(versionFromSql));
  }

  insert(row: PolicyVersionRow, detail: Readonly<Record<string, unknown>>): Promise<{ ok: true } | { ok: false; latest: number }> {
    const insert = this.db.prepare("INSERT INTO policy_versions (version, document, digest, rules, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)");
    try {
      const result = this.db
        .transaction((): { ok: true } | { ok: false; latest: number } => {
          const latest = this.latestStmt.get()?.version ?? 0;
          if (latest !== row.version - 1) return { ok: false, latest };
          insert.run(row.version, row.document, row.digest, row.rules, row.createdAt, row.createdBy);
          this.audit.appendWithin([
            { event: "policy.change", at: row.createdAt, actor: row.createdBy, detail: { ...detail, version: row.version, digest: row.digest, rules: row.rules, previous: latest } },
          ]);
          return { ok: true };
        })
        .immediate();
      return Promise.resolve(result);
    } catch (err) {
      return rejected(err);
    }
  }
}

export class SqliteAddressStore implements AddressStore {
  private readonly getStmt: Database.Statement<[string], AddressSql>;
  private readonly lookupStmt: Database.Statement<[string, string, string], AddressSql>;

  constructor(
    private readonly db: Database.Database,
    private readonly audit: AuditWithin,
  ) {
    this.getStmt = db.prepare("SELECT * FROM address_book WHERE id = ?");
    this.lookupStmt = db.prepare("SELECT * FROM address_book WHERE account = ? AND asset = ? AND address = ? AND removed_at IS NULL ORDER BY added_at, id");
  }

  add(row: AddressRow): Promise<{ ok: true } | { ok: false; existing: AddressRow }> {
    const same = this.db.prepare<[string, string, string, string | null, string | null], AddressSql>(
      "SELECT * FROM address_book WHERE account = ? AND asset = ? AND address = ? AND network IS ? AND tag IS ? AND removed_at IS NULL LIMIT 1",
    );
    const insert = this.db.prepare(
      `INSERT INTO address_book (id, account, asset, address, network, tag, label, added_at, added_by, usable_from)
       VALUES (@id, @account, @asset, @address, @network, @tag, @label, @addedAt, @addedBy, @usableFrom)`,
    );
    try {
      const result = this.db
        .transaction((): { ok: true } | { ok: false; existing: AddressRow } => {
          const existing = same.get(row.account, row.asset, row.address, row.network, row.tag);
          if (existing !== undefined) return { ok: false, existing: addressFromSql(existing) };
          insert.run({ id: row.id, account: row.account, asset: row.asset, address: row.address, network: row.network, tag: row.tag, label: row.label, addedAt: row.addedAt, addedBy: row.addedBy, usableFrom: row.usableFrom });
          this.audit.appendWithin([
            {
              event: "address.add",
              at: row.addedAt,
              actor: row.addedBy,
              account: row.account,
              detail: { id: row.id, asset: row.asset, address: row.address, network: row.network, tag: row.tag, label: row.label, usableFrom: row.usableFrom },
            },
          ]);
          return { ok: true };
        })
        .immediate();
      return Promise.resolve(result);
    } catch (err) {
      return rejected(err);
    }
  }

  remove(id: string, account: string | null, actor: string, at: number): Promise<AddressRow | undefined> {
    const update = this.db.prepare<[number, string, string, string | null, string | null], AddressSql>(
      "UPDATE address_book SET removed_at = ?, removed_by = ? WHERE id = ? AND removed_at IS NULL AND (? IS NULL OR account = ?) RETURNING *",
    );
    try {
      const removed = this.db
        .transaction((): AddressRow | undefined => {
          const r = update.get(at, actor, id, account, account);
          if (r === undefined) return undefined;
          this.audit.appendWithin([{ event: "address.remove", at, actor, account: r.account, detail: { id: r.id, asset: r.asset, address: r.address, network: r.network, tag: r.tag } }]);
          return addressFromSql(r);
        })
        .immediate();
      return Promise.resolve(removed);
    } catch (err) {
      return rejected(err);
    }
  }

  get(id: string): Promise<AddressRow | undefined> {
    const r = this.getStmt.get(id);
    return Promise.resolve(r === undefined ? undefined : addressFromSql(r));
  }

  list(filter: AddressListFilter): Promise<AddressRow[]> {
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (filter.account !== undefined) {
      where.push("account = ?");
      params.push(filter.account);
    }
    if (filter.asset !== undefined) {
      where.push("asset = ?");
      params.push(filter.asset);
    }
    if (filter.removed !== true) where.push("removed_at IS NULL");
    params.push(filter.limit);
    const sql = `SELECT * FROM address_book ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY account, asset, added_at, id LIMIT ?`;
    return Promise.resolve(this.db.prepare<(string | number)[], AddressSql>(sql).all(...params).map(addressFromSql));
  }

  lookup(account: string, asset: string, address: string): Promise<AddressRow[]> {
    return Promise.resolve(this.lookupStmt.all(account, asset, address).map(addressFromSql));
  }
}

type SumRow = { coefficient: string | null; scale: number | null };

export class SqliteSpendStore implements SpendStore {
  private readonly byKey: Database.Statement<[string, string, number], SumRow>;
  private readonly byAccount: Database.Statement<[string, string, number], SumRow>;
  private readonly insert: Database.Statement<[string, string, string | null, string | null, string, string | null, number | null, number]>;
  private readonly prune: Database.Statement<[number]>;
  private readonly forgetStmt: Database.Statement<[string]>;

  constructor(private readonly db: Database.Database) {
    this.byKey = db.prepare("SELECT coefficient, scale FROM policy_spend WHERE key_id = ? AND kind = ? AND at > ?");
    this.byAccount = db.prepare("SELECT coefficient, scale FROM policy_spend WHERE account = ? AND kind = ? AND at > ?");
    this.insert = db.prepare("INSERT INTO policy_spend (ref, kind, key_id, account, asset, coefficient, scale, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    this.prune = db.prepare("DELETE FROM policy_spend WHERE at <= ?");
    this.forgetStmt = db.prepare("DELETE FROM policy_spend WHERE ref = ?");
  }

  /** The sums of the query's windows (call inside a transaction for a consistent read). */
  private read(q: SpendQuery): (Decimal | null)[] {
    return q.windows.map((w) => {
      const who = w.per === "key" ? q.keyId : q.account;
      if (who === null) return Object.freeze({ coefficient: 0n, scale: 0 });
      return sum((w.per === "key" ? this.byKey : this.byAccount).all(who, q.kind, q.at - w.windowMs));
    });
  }

  decide<T>(query: SpendQuery, choose: (sums: readonly (Decimal | null)[]) => { readonly record: SpendEntry | null; readonly result: T }): Promise<T> {
    try {
      const result = this.db
        .transaction((): T => {
          const chosen = choose(this.read(query));
          const e = chosen.record;
          if (e !== null) {
            this.prune.run(e.at - LEDGER_KEEP_MS);
            this.insert.run(e.ref, e.kind, e.keyId, e.account, e.asset, e.value === null ? null : e.value.coefficient.toString(), e.value === null ? null : e.value.scale, e.at);
          }
          return chosen.result;
        })
        .immediate();
      return Promise.resolve(result);
    } catch (err) {
      return rejected(err);
    }
  }

  sums(query: SpendQuery): Promise<readonly (Decimal | null)[]> {
    try {
      return Promise.resolve(this.db.transaction(() => this.read(query))());
    } catch (err) {
      return rejected(err);
    }
  }

  forget(ref: string): Promise<number> {
    try {
      return Promise.resolve(this.forgetStmt.run(ref).changes);
    } catch (err) {
      return rejected(err);
    }
  }
}
