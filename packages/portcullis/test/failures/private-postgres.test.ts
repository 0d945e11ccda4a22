import { existsSync } from "node:fs";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PrivatePostgres } from "../support/private-postgres.js";
import { IN_CI, loudSkip } from "../support/redis.js";

/**
 * The private PostgreSQL the failure drills run on (test/support/private-postgres.ts): it must
 * really stop, die and come back with the same data on the same port, or the drills prove nothing.
 */

const installed = PrivatePostgres.available();
const run = installed || IN_CI;
if (!run) loudSkip("the private PostgreSQL tests", "no initdb / pg_ctl on PATH or in /usr/lib/postgresql/*/bin");

async function query(url: string, sql: string, timeoutMs = 2_000): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs, query_timeout: timeoutMs });
  client.on("error", () => undefined);
  try {
    await client.connect();
    return await client.query(sql);
  } finally {
    await client.end().catch(() => undefined);
  }
}

describe.runIf(run)("a private PostgreSQL for failure drills", () => {
  let server: PrivatePostgres;

  beforeAll(async () => {
    server = await PrivatePostgres.create();
  }, 120_000);

  afterAll(async () => {
    await server.cleanup();
    expect(existsSync(server.dir)).toBe(false);
  });

  it("runs on its own port and keeps its data across a fast stop and a kill -9, on the same port", async () => {
    expect(server.port).not.toBe(5432);
    await query(server.url, "CREATE TABLE drill (n int); INSERT INTO drill VALUES (1)");
    const held = new pg.Client({ connectionString: server.url });
    const lost = new Promise<Error>((resolve) => held.on("error", resolve));
    await held.connect();

    await server.stop();
    expect(server.isRunning).toBe(false);
    // A held connection is terminated; a new one is refused at once.
    expect((await lost).message).toMatch(/terminat/i);
    const started = performance.now();
    await expect(query(server.url, "SELECT 1")).rejects.toMatchObject({ code: "ECONNREFUSED" });
    expect(performance.now() - started).toBeLessThan(1_000);
    await held.end().catch(() => undefined);

    await server.start();
    expect((await query(server.url, "SELECT n FROM drill")).rows).toEqual([{ n: 1 }]);
    await query(server.url, "INSERT INTO drill VALUES (2)");

    await server.kill();
    await expect(query(server.url, "SELECT 1")).rejects.toMatchObject({ code: "ECONNREFUSED" });
    await server.start();
    expect((await query(server.url, "SELECT n FROM drill ORDER BY n")).rows).toEqual([{ n: 1 }, { n: 2 }]);
  }, 120_000);

  it("freezes (answers nothing, connections stay open) and thaws", async () => {
    server.freeze();
    try {
      await expect(query(server.url, "SELECT 1", 500)).rejects.toThrow(/timeout/i);
    } finally {
      server.thaw();
    }
    expect((await query(server.url, "SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
  }, 60_000);
});
