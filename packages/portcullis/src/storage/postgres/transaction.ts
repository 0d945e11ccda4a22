import type pg from "pg";
import type { PoolClient } from "pg";

/** An unknown thrown value as an Error. */
export function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * Runs `fn` in one transaction on a connection of `pool`: committed when it resolves, rolled back
 * when it throws. A connection whose ROLLBACK failed is released as broken (the pool discards it).
 */
export async function transaction<T>(pool: pg.Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query("BEGIN");
    const out = await fn(client);
    await client.query("COMMIT");
    return out;
  } catch (err) {
    await client.query("ROLLBACK").catch((e: unknown) => {
      broken = asError(e);
    });
    throw err;
  } finally {
    client.release(broken);
  }
}
