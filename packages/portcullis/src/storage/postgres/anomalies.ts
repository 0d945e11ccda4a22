import type pg from "pg";
import type { AnomalyAction, AnomalyActionRecord, AnomalyActionState, BehaviourScore } from "../../contract/behaviour.js";
import type { AnomalyActionFilter, AnomalyActionStore } from "../types.js";

/**
 * The anomaly actions on PostgreSQL (migration 5, table anomaly_actions), as
 * storage/sqlite/anomalies.ts keeps them in SQLite. A state change is one conditional
 * `UPDATE … WHERE state = $from RETURNING`: of two processes undoing (or sweeping) the same action,
 * one wins (the row lock orders them; the second finds the state moved on) and the other is told
 * it lost (undefined). Listing is newest first by the insertion sequence, paged by an action id.
 */

/** BIGINT columns arrive as strings (exact); times fit a double. */
type Big = string;

interface ActionSql {
  seq: Big;
  id: string;
  key_id: string;
  account: string;
  action: string;
  score: number;
  explanation: string;
  at: Big;
  state: string;
  due_at: Big | null;
  undone_at: Big | null;
  undone_by: string | null;
}

const num = (x: Big | null): number | null => (x === null ? null : Number(x));

function fromSql(r: ActionSql): AnomalyActionRecord {
  return {
    id: r.id,
    keyId: r.key_id,
    account: r.account,
    action: r.action as AnomalyAction,
    score: r.score,
    explanation: JSON.parse(r.explanation) as BehaviourScore,
    at: Number(r.at),
    state: r.state as AnomalyActionState,
    dueAt: num(r.due_at),
    undoneAt: num(r.undone_at),
    undoneBy: r.undone_by,
  };
}

export class PostgresAnomalies implements AnomalyActionStore {
  constructor(private readonly pool: pg.Pool) {}

  async insert(record: AnomalyActionRecord): Promise<void> {
    await this.pool.query(
      `INSERT INTO anomaly_actions (id, key_id, account, action, score, explanation, at, state, due_at, undone_at, undone_by)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
      [
        record.id,
        record.keyId,
        record.account,
        record.action,
        record.score,
        JSON.stringify(record.explanation),
        record.at,
        record.state,
        record.dueAt,
        record.undoneAt,
        record.undoneBy,
      ],
    );
  }

  async get(id: string): Promise<AnomalyActionRecord | undefined> {
    const { rows } = await this.pool.query<ActionSql>("SELECT * FROM anomaly_actions WHERE id = $1", [id]);
    const row = rows[0];
    return row === undefined ? undefined : fromSql(row);
  }

  async list(filter: AnomalyActionFilter = {}): Promise<AnomalyActionRecord[]> {
    const where: string[] = [];
    const args: (string | number)[] = [];
    const eq = (column: string, value: string | undefined): void => {
      if (value === undefined) return;
      args.push(value);
      where.push(`${column} = $${args.length}`);
    };
    eq("key_id", filter.keyId);
    eq("account", filter.account);
    eq("state", filter.state);
    eq("action", filter.action);
    if (filter.before !== undefined) {
      // An unknown cursor lists nothing (rather than everything again).
      args.push(filter.before);
      where.push(`seq < COALESCE((SELECT seq FROM anomaly_actions WHERE id = $${args.length}), 0)`);
    }
    const limit = Math.min(Math.max(Math.trunc(filter.limit ?? 100), 1), 1000);
    args.push(limit);
    const sql = `SELECT * FROM anomaly_actions${where.length === 0 ? "" : ` WHERE ${where.join(" AND ")}`} ORDER BY seq DESC LIMIT $${args.length}`;
    const { rows } = await this.pool.query<ActionSql>(sql, args);
    return rows.map(fromSql);
  }

  async transition(id: string, from: AnomalyActionState, to: AnomalyActionState, at: number, by: string | null): Promise<AnomalyActionRecord | undefined> {
    const { rows } = await this.pool.query<ActionSql>(
      `UPDATE anomaly_actions SET state = $3,
         undone_at = CASE WHEN $3 = 'undone' THEN $4::bigint ELSE undone_at END,
         undone_by = CASE WHEN $3 = 'undone' THEN $5::text ELSE undone_by END
       WHERE id = $1 AND state = $2 RETURNING *`,
      [id, from, to, at, by],
    );
    const row = rows[0];
    return row === undefined ? undefined : fromSql(row);
  }

  async due(now: number, limit: number): Promise<AnomalyActionRecord[]> {
    const { rows } = await this.pool.query<ActionSql>(
      "SELECT * FROM anomaly_actions WHERE state = 'active' AND due_at IS NOT NULL AND due_at <= $1 ORDER BY due_at, seq LIMIT $2",
      [now, limit],
    );
    return rows.map(fromSql);
  }
}
