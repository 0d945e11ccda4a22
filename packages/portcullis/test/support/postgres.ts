import { randomBytes } from "node:crypto";
import pg from "pg";

/** The shared PostgreSQL of the contract suite (trust authentication, database `test`). */
export const SHARED_POSTGRES_URL = process.env.PORTCULLIS_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/** True when a PostgreSQL answers `SELECT 1` at `url` within two seconds. */
export async function postgresReachable(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
  client.on("error", () => undefined);
  try {
    await client.connect();
    await client.query("SELECT 1");
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** A schema name no other test uses (`pctest_<tag>_<hex>`). */
export function uniqueSchema(tag = "t"): string {
  return `pctest_${tag}_${randomBytes(6).toString("hex")}`;
}

/** Runs `sql` on a connection of its own (administration: dropping schemas, looking at sessions). */
export async function adminQuery<R extends pg.QueryResultRow = pg.QueryResultRow>(url: string, sql: string, values: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  client.on("error", () => undefined);
  await client.connect();
  try {
    return (await client.query<R>(sql, values)).rows;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Drops `schema` and everything in it. */
export async function dropSchema(url: string, schema: string): Promise<void> {
  if (!/^pctest_[a-z0-9_]+$/.test(schema)) throw new TypeError(`not a test schema: ${schema}`);
  await adminQuery(url, `DROP SCHEMA IF EXISTS ${schema} CASCADE`);
}
