import type pg from "pg";
import type { PoolClient } from "pg";
import { BehaviourStateError, checkPage, checkedState, distinctIds } from "../behaviour-state.js";
import type { BehaviourStateStore } from "../types.js";

/**
 * Behaviour states on PostgreSQL (migration 5, table behaviour_state), as
 * storage/sqlite/behaviour.ts keeps them in SQLite.
 *
 * `update` is optimistic, by compare-and-set: one SELECT reads every id of the call with its
 * version, `apply` runs here (outside any transaction), and one transaction writes them all, each
 * only when its version is still the one read (`UPDATE … WHERE version = $read`, or for a state
 * that did not exist `INSERT … ON CONFLICT DO NOTHING`). The rows are written in byte order of
 * their ids, so two calls sharing ids never deadlock. When any id was written by another process
 * meanwhile, the transaction rolls back and the whole call is read and applied again, after a
 * short random pause, at most `maxRetries` times; then it rejects with BEHAVIOUR_STATE_CONFLICT
 * naming the ids that moved on. A call is all or nothing, as SQLite's is: an `apply` that throws,
 * or bytes over BEHAVIOUR_STATE_MAX_BYTES (a TypeError), write nothing of it.
 *
 * Versions come from one sequence (behaviour_state_version), so a version is never reused, not even
 * for a state removed and written again: a compare-and-set never takes a newer state for the one it
 * read. Within one process, updates wait for one another (one at a time), so only other processes
 * conflict. A failure of the database (unreachable, a query refused) is BEHAVIOUR_STATE_UNAVAILABLE.
 */

export interface PostgresBehaviourOptions {
  /** The clock of `updated_at` (epoch ms); default Date.now. */
  readonly now?: () => number;
  /** Tries after the first before BEHAVIOUR_STATE_CONFLICT; default 16. */
  readonly maxRetries?: number;
}

const DEFAULT_RETRIES = 16;

/** 0 to 1, 2, 4 … 32 ms: two processes that collided rarely collide again. */
function pause(attempt: number): Promise<void> {
  const ms = Math.random() * Math.min(2 ** attempt, 32);
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Byte order of two ids as UTF-8 (the order of COLLATE "C"). */
function byBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

function buffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** What one read found of an id: its bytes and version, or nothing. */
interface Read {
  readonly state: Buffer;
  readonly version: string;
}

/** A store failure (not an `apply`'s error, nor a caller's TypeError) as BEHAVIOUR_STATE_UNAVAILABLE. */
function unavailable(err: unknown): BehaviourStateError {
  if (err instanceof BehaviourStateError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new BehaviourStateError("BEHAVIOUR_STATE_UNAVAILABLE", `behaviour state: PostgreSQL unavailable: ${message}`, [], { cause: err });
}

export class PostgresBehaviourStore implements BehaviourStateStore {
  readonly kind = "postgres";
  private readonly now: () => number;
  private readonly maxRetries: number;
  /** This process's updates and removals, one after another. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly pool: pg.Pool,
    options: PostgresBehaviourOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.maxRetries = options.maxRetries ?? DEFAULT_RETRIES;
    if (!Number.isSafeInteger(this.maxRetries) || this.maxRetries < 0 || this.maxRetries > 1_000) {
      throw new TypeError("maxRetries must be an integer from 0 to 1,000");
    }
  }

  async load(ids: readonly string[]): Promise<Map<string, Uint8Array>> {
    const wanted = distinctIds(ids);
    const out = new Map<string, Uint8Array>();
    if (wanted.length === 0) return out;
    for (const [id, r] of await this.read(this.pool, wanted)) out.set(id, r.state);
    return out;
  }

  update(ids: readonly string[], apply: (id: string, current: Uint8Array | null) => Uint8Array): Promise<void> {
    let wanted: string[];
    try {
      wanted = distinctIds(ids);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    if (wanted.length === 0) return Promise.resolve();
    return this.serial(() => this.updateAll(wanted, apply));
  }

  remove(ids: readonly string[]): Promise<void> {
    let wanted: string[];
    try {
      wanted = distinctIds(ids);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    if (wanted.length === 0) return Promise.resolve();
    return this.serial(async () => {
      try {
        await this.pool.query("DELETE FROM behaviour_state WHERE id = ANY($1::text[])", [wanted]);
      } catch (err) {
        throw unavailable(err);
      }
    });
  }

  async ids(after: string | null, limit: number): Promise<string[]> {
    checkPage(after, limit);
    try {
      // Every id is non-empty, so "" sorts before all of them.
      const { rows } = await this.pool.query<{ id: string }>("SELECT id FROM behaviour_state WHERE id > $1 ORDER BY id LIMIT $2", [after ?? "", limit]);
      return rows.map((r) => r.id);
    } catch (err) {
      throw unavailable(err);
    }
  }

  /** Runs `fn` after every earlier update and removal of this store; a failure does not stop the next. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async updateAll(ids: readonly string[], apply: (id: string, current: Uint8Array | null) => Uint8Array): Promise<void> {
    const order = [...ids].sort(byBytes);
    let moved: string[] = [];
    for (let attempt = 0; ; attempt++) {
      if (attempt > this.maxRetries) {
        throw new BehaviourStateError(
          "BEHAVIOUR_STATE_CONFLICT",
          `behaviour state: ${moved.length} state(s) changed by another process at each of ${this.maxRetries + 1} tries (${moved.slice(0, 3).join(", ")}${moved.length > 3 ? ", …" : ""})`,
          moved,
        );
      }
      if (attempt > 0) await pause(attempt);
      const read = await this.read(this.pool, ids);
      // apply once per id, in the caller's order; a throw (or a TypeError) writes nothing.
      const next = new Map<string, Buffer>();
      for (const id of ids) next.set(id, buffer(checkedState(id, apply(id, read.get(id)?.state ?? null))));
      moved = await this.write(order, read, next);
      if (moved.length === 0) return;
    }
  }

  /** Writes every id if none moved on since `read` (one transaction); else writes nothing and answers those that moved. */
  private async write(order: readonly string[], read: ReadonlyMap<string, Read>, next: ReadonlyMap<string, Buffer>): Promise<string[]> {
    let client: PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw unavailable(err);
    }
    let broken: Error | undefined;
    try {
      await client.query("BEGIN");
      const at = this.now();
      const moved: string[] = [];
      for (const id of order) {
        const state = next.get(id) as Buffer;
        const seen = read.get(id);
        const r =
          seen === undefined
            ? await client.query(
                `INSERT INTO behaviour_state (id, state, version, updated_at) VALUES ($1, $2, nextval('behaviour_state_version'), $3)
                 ON CONFLICT (id) DO NOTHING`,
                [id, state, at],
              )
            : await client.query(
                "UPDATE behaviour_state SET state = $2, version = nextval('behaviour_state_version'), updated_at = $3 WHERE id = $1 AND version = $4",
                [id, state, at, seen.version],
              );
        if (r.rowCount !== 1) {
          moved.push(id);
          break;
        }
      }
      await client.query(moved.length === 0 ? "COMMIT" : "ROLLBACK");
      return moved;
    } catch (err) {
      await client.query("ROLLBACK").catch((e: unknown) => {
        broken = e instanceof Error ? e : new Error(String(e));
      });
      // A deadlock or serialisation failure is another writer: try again.
      const code = (err as { code?: unknown }).code;
      if (code === "40P01" || code === "40001") return [...order];
      throw unavailable(err);
    } finally {
      client.release(broken);
    }
  }

  private async read(q: pg.Pool, ids: readonly string[]): Promise<Map<string, Read>> {
    try {
      const { rows } = await q.query<{ id: string; state: Buffer; version: string }>(
        "SELECT id, state, version::text AS version FROM behaviour_state WHERE id = ANY($1::text[])",
        [ids],
      );
      return new Map(rows.map((r) => [r.id, { state: r.state, version: r.version }]));
    } catch (err) {
      throw unavailable(err);
    }
  }
}
