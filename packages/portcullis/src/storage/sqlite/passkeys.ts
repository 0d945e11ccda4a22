import type Database from "better-sqlite3";
import type { PasskeyCeremony, PasskeyChallengeRow, PasskeyRow, PasskeyStore } from "../types.js";
import type { SqliteAudit } from "./audit.js";

/**
 * Passkeys in SQLite (migration 18; docs/passkeys.md), on the store's own connection. A
 * registration and a removal write their audit entry in their transaction; a challenge is spent by
 * one `DELETE … RETURNING`, so of two processes presenting it (two handles on one file) one gets it.
 */

interface PasskeySql {
  id: string;
  key_id: string;
  account: string;
  public_key: string;
  counter: number;
  transports: string;
  label: string;
  created_at: number;
  last_used_at: number | null;
}

interface ChallengeSql {
  challenge: string;
  ceremony: string;
  key_id: string | null;
  label: string | null;
  expires_at: number;
}

/** Expired challenges dropped per new one: the table stays bounded without a sweeper. */
const SWEEP_BATCH = 100;

export function passkeyFromSql(r: PasskeySql): PasskeyRow {
  return {
    id: r.id,
    keyId: r.key_id,
    account: r.account,
    publicKey: r.public_key,
    counter: r.counter,
    transports: JSON.parse(r.transports) as string[],
    label: r.label,
    createdAt: r.created_at,
    lastUsedAt: r.last_used_at === null ? null : r.last_used_at,
  };
}

export function challengeFromSql(r: ChallengeSql): PasskeyChallengeRow {
  return { challenge: r.challenge, ceremony: r.ceremony as PasskeyCeremony, keyId: r.key_id, label: r.label, expiresAt: r.expires_at };
}

/** The audit entry of a registration or removal (never the public key: it is no secret, but it is noise). */
export function passkeyAuditDetail(row: PasskeyRow): Record<string, unknown> {
  return { passkey: row.id, label: row.label, transports: row.transports };
}

function rejected(err: unknown): Promise<never> {
  return Promise.reject(err instanceof Error ? err : new Error(String(err)));
}

export class SqlitePasskeys implements PasskeyStore {
  private readonly stmts: {
    handleInsert: Database.Statement;
    handleGet: Database.Statement<[string], { handle: string }>;
    insert: Database.Statement;
    get: Database.Statement<[string], PasskeySql>;
    list: Database.Statement<[string], PasskeySql>;
    remove: Database.Statement<[string, string], PasskeySql>;
    advance: Database.Statement<[number, number, string, number]>;
    sweep: Database.Statement<[number, number]>;
    putChallenge: Database.Statement;
    take: Database.Statement<[string], ChallengeSql>;
  };

  constructor(
    private readonly db: Database.Database,
    private readonly audit: SqliteAudit,
  ) {
    this.stmts = {
      handleInsert: db.prepare("INSERT INTO passkey_users (key_id, handle) VALUES (?, ?) ON CONFLICT (key_id) DO NOTHING"),
      handleGet: db.prepare("SELECT handle FROM passkey_users WHERE key_id = ?"),
      insert: db.prepare(
        `INSERT INTO passkeys (id, key_id, account, public_key, counter, transports, label, created_at, last_used_at)
         VALUES (@id, @keyId, @account, @publicKey, @counter, @transports, @label, @createdAt, @lastUsedAt)
         ON CONFLICT (id) DO NOTHING`,
      ),
      get: db.prepare("SELECT * FROM passkeys WHERE id = ?"),
      list: db.prepare("SELECT * FROM passkeys WHERE key_id = ? ORDER BY created_at, id"),
      remove: db.prepare("DELETE FROM passkeys WHERE id = ? AND key_id = ? RETURNING *"),
      advance: db.prepare("UPDATE passkeys SET counter = ?, last_used_at = ? WHERE id = ? AND counter = ?"),
      sweep: db.prepare("DELETE FROM passkey_challenges WHERE challenge IN (SELECT challenge FROM passkey_challenges WHERE expires_at <= ? LIMIT ?)"),
      putChallenge: db.prepare("INSERT INTO passkey_challenges (challenge, ceremony, key_id, label, expires_at) VALUES (@challenge, @ceremony, @keyId, @label, @expiresAt)"),
      take: db.prepare("DELETE FROM passkey_challenges WHERE challenge = ? RETURNING *"),
    };
  }

  userHandle(keyId: string, candidate: string): Promise<string> {
    try {
      this.stmts.handleInsert.run(keyId, candidate);
      const row = this.stmts.handleGet.get(keyId);
      if (row === undefined) throw new Error("passkey user handle missing after insert");
      return Promise.resolve(row.handle);
    } catch (err) {
      return rejected(err);
    }
  }

  insert(row: PasskeyRow, actor: string): Promise<boolean> {
    try {
      const inserted = this.db
        .transaction((): boolean => {
          const changes = this.stmts.insert.run({ ...row, transports: JSON.stringify(row.transports) }).changes;
          if (changes === 0) return false;
          this.audit.appendWithin([{ event: "passkey.register", at: row.createdAt, actor, key: row.keyId, account: row.account, detail: passkeyAuditDetail(row) }]);
          return true;
        })
        .immediate();
      return Promise.resolve(inserted);
    } catch (err) {
      return rejected(err);
    }
  }

  get(id: string): Promise<PasskeyRow | undefined> {
    try {
      const r = this.stmts.get.get(id);
      return Promise.resolve(r === undefined ? undefined : passkeyFromSql(r));
    } catch (err) {
      return rejected(err);
    }
  }

  list(keyId: string): Promise<PasskeyRow[]> {
    try {
      return Promise.resolve(this.stmts.list.all(keyId).map(passkeyFromSql));
    } catch (err) {
      return rejected(err);
    }
  }

  remove(id: string, keyId: string, actor: string, at: number): Promise<PasskeyRow | undefined> {
    try {
      const removed = this.db
        .transaction((): PasskeyRow | undefined => {
          const r = this.stmts.remove.get(id, keyId);
          if (r === undefined) return undefined;
          const row = passkeyFromSql(r);
          this.audit.appendWithin([{ event: "passkey.remove", at, actor, key: row.keyId, account: row.account, detail: passkeyAuditDetail(row) }]);
          return row;
        })
        .immediate();
      return Promise.resolve(removed);
    } catch (err) {
      return rejected(err);
    }
  }

  advance(id: string, from: number, to: number, at: number): Promise<boolean> {
    try {
      return Promise.resolve(this.stmts.advance.run(to, at, id, from).changes === 1);
    } catch (err) {
      return rejected(err);
    }
  }

  putChallenge(row: PasskeyChallengeRow, now: number): Promise<void> {
    try {
      this.stmts.sweep.run(now, SWEEP_BATCH);
      this.stmts.putChallenge.run(row);
      return Promise.resolve();
    } catch (err) {
      return rejected(err);
    }
  }

  takeChallenge(challenge: string, now: number): Promise<PasskeyChallengeRow | undefined> {
    try {
      const r = this.stmts.take.get(challenge);
      // Taken either way: an expired challenge is gone as surely as a spent one.
      return Promise.resolve(r === undefined || r.expires_at <= now ? undefined : challengeFromSql(r));
    } catch (err) {
      return rejected(err);
    }
  }
}
