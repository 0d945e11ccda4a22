import type pg from "pg";
import type { EnvelopeReplacement, HpkeEnvelopes, HpkeKeyRow, HpkeKeyStore } from "../types.js";
import type { PgKekFloorCheck } from "./holds.js";
import { transaction } from "./transaction.js";

/**
 * The gateway's HPKE keys on PostgreSQL (migration 10, table hpke_keys), as storage/sqlite/hpke.ts
 * keeps them in SQLite. A generation is held by one row (UNIQUE): of several gateway processes
 * rotating at once, one `INSERT … ON CONFLICT (generation) DO NOTHING` inserts and every one
 * reads back the winner's row. Every envelope written checks the KEK floor in its transaction.
 */

/** BIGINT columns arrive as strings (exact); times fit a double. */
type Big = string;

interface HpkeSql {
  id: string;
  generation: number;
  public_key: string;
  private_envelope: Buffer | null;
  created_at: Big;
  not_after: Big;
  retired_at: Big | null;
}

function fromSql(r: HpkeSql): HpkeKeyRow {
  return {
    id: r.id,
    generation: r.generation,
    publicKey: r.public_key,
    privateEnvelope: r.private_envelope,
    createdAt: Number(r.created_at),
    notAfter: Number(r.not_after),
    retiredAt: r.retired_at === null ? null : Number(r.retired_at),
  };
}

export class PostgresHpkeKeys implements HpkeKeyStore {
  constructor(
    private readonly pool: pg.Pool,
    private readonly checkKekFloor: PgKekFloorCheck,
  ) {}

  async live(): Promise<HpkeKeyRow[]> {
    const { rows } = await this.pool.query<HpkeSql>("SELECT * FROM hpke_keys WHERE retired_at IS NULL ORDER BY generation DESC");
    return rows.map(fromSql);
  }

  insert(row: HpkeKeyRow): Promise<HpkeKeyRow> {
    return transaction(this.pool, async (client) => {
      await this.checkKekFloor(client, [row.privateEnvelope], `HPKE key ${row.id}`);
      await client.query(
        `INSERT INTO hpke_keys (id, generation, public_key, private_envelope, created_at, not_after, retired_at)
         VALUES ($1, $2, $3, $4, $5, $6, NULL) ON CONFLICT (generation) DO NOTHING`,
        [row.id, row.generation, row.publicKey, row.privateEnvelope, row.createdAt, row.notAfter],
      );
      const held = (await client.query<HpkeSql>("SELECT * FROM hpke_keys WHERE generation = $1", [row.generation])).rows[0];
      if (held === undefined) throw new Error("the HPKE key's generation is held by no row");
      return fromSql(held);
    });
  }

  async retire(before: number, now: number): Promise<number> {
    const result = await this.pool.query("UPDATE hpke_keys SET private_envelope = NULL, retired_at = $1 WHERE retired_at IS NULL AND not_after <= $2", [now, before]);
    return result.rowCount ?? 0;
  }

  async envelopes(after: string, limit: number): Promise<HpkeEnvelopes[]> {
    const { rows } = await this.pool.query<{ id: string; private_envelope: Buffer }>(
      "SELECT id, private_envelope FROM hpke_keys WHERE private_envelope IS NOT NULL AND id > $1 ORDER BY id LIMIT $2",
      [after, limit],
    );
    return rows.map((r) => ({ id: r.id, private: r.private_envelope }));
  }

  replaceEnvelopes(replacements: readonly EnvelopeReplacement<"private">[]): Promise<number> {
    if (replacements.length === 0) return Promise.resolve(0);
    const ordered = [...replacements].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return transaction(this.pool, async (client) => {
      await this.checkKekFloor(
        client,
        ordered.map((r) => r.next),
        "a rewrap batch of HPKE keys",
      );
      let n = 0;
      for (const r of ordered) n += (await client.query("UPDATE hpke_keys SET private_envelope = $1 WHERE id = $2 AND private_envelope = $3", [r.next, r.id, r.expected])).rowCount ?? 0;
      return n;
    });
  }
}
