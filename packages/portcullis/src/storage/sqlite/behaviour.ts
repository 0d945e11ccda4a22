import type Database from "better-sqlite3";
import { checkPage, checkedState, distinctIds } from "../behaviour-state.js";
import type { BehaviourStateStore } from "../types.js";

/**
 * Behaviour states in SQLite (migration 15, table behaviour_state), on the store's own connection.
 *
 * `update` is one immediate transaction per call: it takes the database's write lock first, then
 * reads every id, applies, and writes them all, so no other process (another handle on the file)
 * writes in between and `apply` runs once per id. A failure of `apply` (or bytes over the bound)
 * rolls the whole call back. `version` counts the writes of each id; `updated_at` is when the last
 * one happened (the store's clock).
 *
 * The in-memory deployment uses this store directly: the caller batches its updates (one
 * transaction per batch, one fsync).
 */

/** Ids per statement (SQLite's default limit of bound parameters is 32,766). */
const CHUNK = 500;

export interface SqliteBehaviourOptions {
  /** The clock of `updated_at` (epoch ms); default Date.now. */
  readonly now?: () => number;
}

function rejected(err: unknown): Promise<never> {
  return Promise.reject(err instanceof Error ? err : new Error(String(err)));
}

/** A view of `bytes` as a Buffer (what better-sqlite3 binds as a BLOB), without a copy. */
function blob(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export class SqliteBehaviourStore implements BehaviourStateStore {
  readonly kind = "sqlite";
  private readonly now: () => number;
  private readonly stmts: {
    upsert: Database.Statement<[string, Buffer, number]>;
    remove: Database.Statement<[string]>;
    page: Database.Statement<[string, number], { id: string }>;
  };
  /** SELECT … WHERE id IN (?, ?, …) by the number of ids. */
  private readonly selects = new Map<number, Database.Statement<string[], { id: string; state: Buffer }>>();

  constructor(
    private readonly db: Database.Database,
    options: SqliteBehaviourOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.stmts = {
      upsert: db.prepare(
        `INSERT INTO behaviour_state (id, state, version, updated_at) VALUES (?, ?, 1, ?)
         ON CONFLICT (id) DO UPDATE SET state = excluded.state, version = version + 1, updated_at = excluded.updated_at`,
      ),
      remove: db.prepare("DELETE FROM behaviour_state WHERE id = ?"),
      page: db.prepare("SELECT id FROM behaviour_state WHERE id > ? ORDER BY id LIMIT ?"),
    };
  }

  load(ids: readonly string[]): Promise<Map<string, Uint8Array>> {
    try {
      return Promise.resolve(this.read(distinctIds(ids)));
    } catch (err) {
      return rejected(err);
    }
  }

  update(ids: readonly string[], apply: (id: string, current: Uint8Array | null) => Uint8Array): Promise<void> {
    try {
      const wanted = distinctIds(ids);
      if (wanted.length === 0) return Promise.resolve();
      this.db.transaction(() => {
        const current = this.read(wanted);
        const at = this.now();
        for (const id of wanted) {
          const next = checkedState(id, apply(id, current.get(id) ?? null));
          this.stmts.upsert.run(id, blob(next), at);
        }
      }).immediate();
      return Promise.resolve();
    } catch (err) {
      return rejected(err);
    }
  }

  remove(ids: readonly string[]): Promise<void> {
    try {
      const wanted = distinctIds(ids);
      if (wanted.length === 0) return Promise.resolve();
      this.db.transaction(() => {
        for (const id of wanted) this.stmts.remove.run(id);
      }).immediate();
      return Promise.resolve();
    } catch (err) {
      return rejected(err);
    }
  }

  ids(after: string | null, limit: number): Promise<string[]> {
    try {
      checkPage(after, limit);
      // Every id is non-empty, so "" sorts before all of them.
      return Promise.resolve(this.stmts.page.all(after ?? "", limit).map((r) => r.id));
    } catch (err) {
      return rejected(err);
    }
  }

  private read(ids: readonly string[]): Map<string, Uint8Array> {
    const out = new Map<string, Uint8Array>();
    for (let i = 0; i < ids.length; i += CHUNK) {
      const chunk = ids.slice(i, i + CHUNK);
      for (const r of this.select(chunk.length).all(...chunk)) out.set(r.id, r.state);
    }
    return out;
  }

  private select(n: number): Database.Statement<string[], { id: string; state: Buffer }> {
    let stmt = this.selects.get(n);
    if (stmt === undefined) {
      stmt = this.db.prepare(`SELECT id, state FROM behaviour_state WHERE id IN (${new Array<string>(n).fill("?").join(", ")})`);
      this.selects.set(n, stmt);
    }
    return stmt;
  }
}
