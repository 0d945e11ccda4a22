import type Database from "better-sqlite3";
import type { AnomalyAction, AnomalyActionRecord, AnomalyActionState, BehaviourScore } from "../../contract/behaviour.js";
import type { AnomalyActionFilter, AnomalyActionStore } from "../types.js";

/**
 * The anomaly actions in SQLite (migration 14), on the store's own connection. A state change is
 * one conditional UPDATE … RETURNING: of two processes undoing (or sweeping) the same action, one
 * wins and the other is told it lost.
 */

interface ActionSql {
  seq: number;
  id: string;
  key_id: string;
  account: string;
  action: string;
  score: number;
  explanation: string;
  at: number;
  state: string;
  due_at: number | null;
  undone_at: number | null;
  undone_by: string | null;
}

function fromSql(r: ActionSql): AnomalyActionRecord {
  return {
    id: r.id,
    keyId: r.key_id,
    account: r.account,
    action: r.action as AnomalyAction,
    score: r.score,
    explanation: JSON.parse(r.explanation) as BehaviourScore,
    at: r.at,
    state: r.state as AnomalyActionState,
    dueAt: r.due_at,
    undoneAt: r.undone_at,
    undoneBy: r.undone_by,
  };
}

function rejected(err: unknown): Promise<never> {
  return Promise.reject(err instanceof Error ? err : new Error(String(err)));
}

export class SqliteAnomalies implements AnomalyActionStore {
  private readonly stmts: {
    insert: Database.Statement;
    get: Database.Statement<[string], ActionSql>;
    seqOf: Database.Statement<[string], { seq: number }>;
    transition: Database.Statement;
    due: Database.Statement<[number, number], ActionSql>;
  };

  constructor(private readonly db: Database.Database) {
    this.stmts = {
      insert: db.prepare(
        `INSERT INTO anomaly_actions (id, key_id, account, action, score, explanation, at, state, due_at, undone_at, undone_by)
         VALUES (@id, @keyId, @account, @action, @score, @explanation, @at, @state, @dueAt, @undoneAt, @undoneBy)`,
      ),
      get: db.prepare("SELECT * FROM anomaly_actions WHERE id = ?"),
      seqOf: db.prepare("SELECT seq FROM anomaly_actions WHERE id = ?"),
      transition: db.prepare(
        `UPDATE anomaly_actions SET state = @to,
           undone_at = CASE WHEN @to = 'undone' THEN @at ELSE undone_at END,
           undone_by = CASE WHEN @to = 'undone' THEN @by ELSE undone_by END
         WHERE id = @id AND state = @from RETURNING *`,
      ),
      due: db.prepare("SELECT * FROM anomaly_actions WHERE state = 'active' AND due_at IS NOT NULL AND due_at <= ? ORDER BY due_at, seq LIMIT ?"),
    };
  }

  insert(record: AnomalyActionRecord): Promise<void> {
    try {
      this.stmts.insert.run({ ...record, explanation: JSON.stringify(record.explanation) });
      return Promise.resolve();
    } catch (err) {
      return rejected(err);
    }
  }

  get(id: string): Promise<AnomalyActionRecord | undefined> {
    try {
      const row = this.stmts.get.get(id);
      return Promise.resolve(row === undefined ? undefined : fromSql(row));
    } catch (err) {
      return rejected(err);
    }
  }

  list(filter: AnomalyActionFilter = {}): Promise<AnomalyActionRecord[]> {
    try {
      const where: string[] = [];
      const args: (string | number)[] = [];
      const eq = (column: string, value: string | undefined): void => {
        if (value === undefined) return;
        where.push(`${column} = ?`);
        args.push(value);
      };
      eq("key_id", filter.keyId);
      eq("account", filter.account);
      eq("state", filter.state);
      eq("action", filter.action);
      if (filter.before !== undefined) {
        // An unknown cursor lists nothing (rather than everything again).
        where.push("seq < ?");
        args.push(this.stmts.seqOf.get(filter.before)?.seq ?? 0);
      }
      const limit = Math.min(Math.max(Math.trunc(filter.limit ?? 100), 1), 1000);
      args.push(limit);
      const sql = `SELECT * FROM anomaly_actions${where.length === 0 ? "" : ` WHERE ${where.join(" AND ")}`} ORDER BY seq DESC LIMIT ?`;
      return Promise.resolve((this.db.prepare(sql).all(...args) as ActionSql[]).map(fromSql));
    } catch (err) {
      return rejected(err);
    }
  }

  transition(id: string, from: AnomalyActionState, to: AnomalyActionState, at: number, by: string | null): Promise<AnomalyActionRecord | undefined> {
    try {
      const row = this.stmts.transition.get({ id, from, to, at, by }) as ActionSql | undefined;
      return Promise.resolve(row === undefined ? undefined : fromSql(row));
    } catch (err) {
      return rejected(err);
    }
  }

  due(now: number, limit: number): Promise<AnomalyActionRecord[]> {
    try {
      return Promise.resolve(this.stmts.due.all(now, limit).map(fromSql));
    } catch (err) {
      return rejected(err);
    }
  }
}
