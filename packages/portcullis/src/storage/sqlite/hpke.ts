import type Database from "better-sqlite3";
import type { EnvelopeReplacement, HpkeEnvelopes, HpkeKeyRow, HpkeKeyStore } from "../types.js";

/**
 * The gateway's HPKE keys in SQLite (migration 20; docs/sealed-orders.md), on the store's own
 * connection. A generation is held by one row (UNIQUE): `insert` is `INSERT … ON CONFLICT DO
 * NOTHING` and reads back the row that holds the generation, so two handles rotating at once make
 * one key. Every envelope written checks the KEK floor in its transaction.
 */

interface HpkeSql {
  id: string;
  generation: number;
  public_key: string;
  private_envelope: Buffer | null;
  created_at: number;
  not_after: number;
  retired_at: number | null;
}

function fromSql(r: HpkeSql): HpkeKeyRow {
  return { id: r.id, generation: r.generation, publicKey: r.public_key, privateEnvelope: r.private_envelope, createdAt: r.created_at, notAfter: r.not_after, retiredAt: r.retired_at };
}

export class SqliteHpkeKeys implements HpkeKeyStore {
  constructor(
    private readonly db: Database.Database,
    private readonly checkKekFloor: (envelopes: readonly (Buffer | null)[], what: string) => void,
  ) {}

  live(): Promise<HpkeKeyRow[]> {
    const rows = this.db.prepare<[], HpkeSql>("SELECT * FROM hpke_keys WHERE retired_at IS NULL ORDER BY generation DESC").all();
    return Promise.resolve(rows.map(fromSql));
  }

  insert(row: HpkeKeyRow): Promise<HpkeKeyRow> {
    const insert = this.db.prepare(
      `INSERT INTO hpke_keys (id, generation, public_key, private_envelope, created_at, not_after, retired_at)
       VALUES (?, ?, ?, ?, ?, ?, NULL) ON CONFLICT (generation) DO NOTHING`,
    );
    const read = this.db.prepare<[number], HpkeSql>("SELECT * FROM hpke_keys WHERE generation = ?");
    try {
      const held = this.db
        .transaction(() => {
          this.checkKekFloor([row.privateEnvelope], `HPKE key ${row.id}`);
          insert.run(row.id, row.generation, row.publicKey, row.privateEnvelope, row.createdAt, row.notAfter);
          return read.get(row.generation);
        })
        .immediate();
      if (held === undefined) return Promise.reject(new Error("the HPKE key's generation is held by no row"));
      return Promise.resolve(fromSql(held));
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  retire(before: number, now: number): Promise<number> {
    const n = this.db.prepare("UPDATE hpke_keys SET private_envelope = NULL, retired_at = ? WHERE retired_at IS NULL AND not_after <= ?").run(now, before).changes;
    return Promise.resolve(n);
  }

  envelopes(after: string, limit: number): Promise<HpkeEnvelopes[]> {
    const rows = this.db
      .prepare<[string, number], { id: string; private_envelope: Buffer }>("SELECT id, private_envelope FROM hpke_keys WHERE private_envelope IS NOT NULL AND id > ? ORDER BY id LIMIT ?")
      .all(after, limit);
    return Promise.resolve(rows.map((r) => ({ id: r.id, private: r.private_envelope })));
  }

  replaceEnvelopes(replacements: readonly EnvelopeReplacement<"private">[]): Promise<number> {
    if (replacements.length === 0) return Promise.resolve(0);
    const replace = this.db.prepare("UPDATE hpke_keys SET private_envelope = ? WHERE id = ? AND private_envelope = ?");
    try {
      const n = this.db
        .transaction(() => {
          this.checkKekFloor(
            replacements.map((r) => r.next),
            "a rewrap batch of HPKE keys",
          );
          let changed = 0;
          for (const r of replacements) changed += replace.run(r.next, r.id, r.expected).changes;
          return changed;
        })
        .immediate();
      return Promise.resolve(n);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }
}
