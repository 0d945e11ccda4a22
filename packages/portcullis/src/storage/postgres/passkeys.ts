import type pg from "pg";
import type { PasskeyCeremony, PasskeyChallengeRow, PasskeyRow, PasskeyStore } from "../types.js";
import type { PgAuditWithin } from "./policy.js";
import { transaction } from "./transaction.js";

/**
 * Passkeys on PostgreSQL (migration 8, tables passkeys, passkey_users, passkey_challenges), as
 * storage/sqlite/passkeys.ts keeps them in SQLite. A registration and a removal write their audit
 * entry in their transaction; a challenge is spent by one `DELETE … RETURNING` (the row lock
 * orders two processes: the second deletes nothing); the counter moves by compare-and-set.
 */

/** BIGINT columns arrive as strings (exact); counters and times fit a double. */
type Big = string;

interface PasskeySql {
  id: string;
  key_id: string;
  account: string;
  public_key: string;
  counter: Big;
  transports: string;
  label: string;
  created_at: Big;
  last_used_at: Big | null;
}

interface ChallengeSql {
  challenge: string;
  ceremony: string;
  key_id: string | null;
  label: string | null;
  expires_at: Big;
}

/** Expired challenges dropped per new one: the table stays bounded without a sweeper. */
const SWEEP_BATCH = 100;

function fromSql(r: PasskeySql): PasskeyRow {
  return {
    id: r.id,
    keyId: r.key_id,
    account: r.account,
    publicKey: r.public_key,
    counter: Number(r.counter),
    transports: JSON.parse(r.transports) as string[],
    label: r.label,
    createdAt: Number(r.created_at),
    lastUsedAt: r.last_used_at === null ? null : Number(r.last_used_at),
  };
}

function detail(row: PasskeyRow): Record<string, unknown> {
  return { passkey: row.id, label: row.label, transports: row.transports };
}

export class PostgresPasskeys implements PasskeyStore {
  constructor(
    private readonly pool: pg.Pool,
    private readonly audit: PgAuditWithin,
  ) {}

  async userHandle(keyId: string, candidate: string): Promise<string> {
    // One statement: the inserted handle, or (on conflict) nothing; then the stored one.
    await this.pool.query("INSERT INTO passkey_users (key_id, handle) VALUES ($1, $2) ON CONFLICT (key_id) DO NOTHING", [keyId, candidate]);
    const row = (await this.pool.query<{ handle: string }>("SELECT handle FROM passkey_users WHERE key_id = $1", [keyId])).rows[0];
    if (row === undefined) throw new Error("passkey user handle missing after insert");
    return row.handle;
  }

  insert(row: PasskeyRow, actor: string): Promise<boolean> {
    return transaction(this.pool, async (client): Promise<boolean> => {
      const inserted = await client.query(
        `INSERT INTO passkeys (id, key_id, account, public_key, counter, transports, label, created_at, last_used_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING`,
        [row.id, row.keyId, row.account, row.publicKey, row.counter, JSON.stringify(row.transports), row.label, row.createdAt, row.lastUsedAt],
      );
      if (inserted.rowCount !== 1) return false;
      await this.audit.appendWithin(client, [{ event: "passkey.register", at: row.createdAt, actor, key: row.keyId, account: row.account, detail: detail(row) }]);
      return true;
    });
  }

  async get(id: string): Promise<PasskeyRow | undefined> {
    const r = (await this.pool.query<PasskeySql>("SELECT * FROM passkeys WHERE id = $1", [id])).rows[0];
    return r === undefined ? undefined : fromSql(r);
  }

  async list(keyId: string): Promise<PasskeyRow[]> {
    return (await this.pool.query<PasskeySql>("SELECT * FROM passkeys WHERE key_id = $1 ORDER BY created_at, id", [keyId])).rows.map(fromSql);
  }

  remove(id: string, keyId: string, actor: string, at: number): Promise<PasskeyRow | undefined> {
    return transaction(this.pool, async (client): Promise<PasskeyRow | undefined> => {
      const r = (await client.query<PasskeySql>("DELETE FROM passkeys WHERE id = $1 AND key_id = $2 RETURNING *", [id, keyId])).rows[0];
      if (r === undefined) return undefined;
      const row = fromSql(r);
      await this.audit.appendWithin(client, [{ event: "passkey.remove", at, actor, key: row.keyId, account: row.account, detail: detail(row) }]);
      return row;
    });
  }

  async advance(id: string, from: number, to: number, at: number): Promise<boolean> {
    const result = await this.pool.query("UPDATE passkeys SET counter = $1, last_used_at = $2 WHERE id = $3 AND counter = $4", [to, at, id, from]);
    return result.rowCount === 1;
  }

  async putChallenge(row: PasskeyChallengeRow, now: number): Promise<void> {
    await this.pool.query(
      "DELETE FROM passkey_challenges WHERE challenge IN (SELECT challenge FROM passkey_challenges WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
      [now, SWEEP_BATCH],
    );
    await this.pool.query("INSERT INTO passkey_challenges (challenge, ceremony, key_id, label, expires_at) VALUES ($1, $2, $3, $4, $5)", [
      row.challenge,
      row.ceremony,
      row.keyId,
      row.label,
      row.expiresAt,
    ]);
  }

  async takeChallenge(challenge: string, now: number): Promise<PasskeyChallengeRow | undefined> {
    const r = (await this.pool.query<ChallengeSql>("DELETE FROM passkey_challenges WHERE challenge = $1 RETURNING *", [challenge])).rows[0];
    // Taken either way: an expired challenge is gone as surely as a spent one.
    if (r === undefined || Number(r.expires_at) <= now) return undefined;
    return { challenge: r.challenge, ceremony: r.ceremony as PasskeyCeremony, keyId: r.key_id, label: r.label, expiresAt: Number(r.expires_at) };
  }
}
