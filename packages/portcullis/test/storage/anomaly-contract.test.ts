/**
 * The anomaly action stores (storage/types.ts AnomalyActionStore), one contract over SQLite
 * (migration 14, a temporary file) and PostgreSQL (migration 5, a new schema for each pair of
 * stores, every one dropped after the file). Each backend is opened as two "processes" (two
 * SQLite handles on one file, two PostgresStores on one schema): filters, newest first, paging by
 * an action id, the atomic state change (of many processes undoing at once, exactly one wins),
 * and the due revokes. Without a PostgreSQL the PostgreSQL half is skipped loudly, except in CI
 * (CI=true), where it fails.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { newActionId } from "../../src/anomaly/responder.js";
import type { AnomalyAction, AnomalyActionRecord } from "../../src/contract/behaviour.js";
import { PostgresStore } from "../../src/storage/postgres/store.js";
import { SqliteStore } from "../../src/storage/sqlite/store.js";
import type { AnomalyActionStore } from "../../src/storage/types.js";
import { score } from "../anomaly/support.js";
import { SHARED_POSTGRES_URL, adminQuery, dropSchema, postgresReachable, uniqueSchema } from "../support/postgres.js";
import { IN_CI, loudSkip } from "../support/redis.js";

const pgUp = await postgresReachable(SHARED_POSTGRES_URL);
if (!pgUp && !IN_CI) loudSkip("the PostgreSQL anomaly action store", `no PostgreSQL answers at ${SHARED_POSTGRES_URL}`);

const dir = mkdtempSync(join(tmpdir(), "portcullis-anomaly-contract-"));
let files = 0;
const schemas: string[] = [];
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  for (const s of schemas) await dropSchema(SHARED_POSTGRES_URL, s);
});

interface Opened {
  readonly a: AnomalyActionStore;
  readonly b: AnomalyActionStore;
}

const BACKENDS: { readonly name: string; readonly postgres: boolean; readonly open: () => Promise<Opened> }[] = [
  {
    name: "sqlite",
    postgres: false,
    open: () => {
      const path = join(dir, `store-${++files}.db`);
      const one = new SqliteStore(path);
      const two = new SqliteStore(path);
      cleanups.push(async () => {
        await one.close();
        await two.close();
      });
      return Promise.resolve({ a: one.anomalies, b: two.anomalies });
    },
  },
  {
    name: "postgres",
    postgres: true,
    open: async () => {
      const schema = uniqueSchema("an");
      schemas.push(schema);
      const one = await PostgresStore.open({ url: SHARED_POSTGRES_URL, schema, poolSize: 4 });
      const two = await PostgresStore.open({ url: SHARED_POSTGRES_URL, schema, poolSize: 4 });
      cleanups.push(async () => {
        await one.close();
        await two.close();
      });
      return { a: one.anomalies, b: two.anomalies };
    },
  },
];

function row(keyId: string, account: string, action: AnomalyAction, at: number, dueAt: number | null = null): AnomalyActionRecord {
  return { id: newActionId(), keyId, account, action, score: 80.25, explanation: score(keyId, 80.25, at, account), at, state: "active", dueAt, undoneAt: null, undoneBy: null };
}

const ids = (list: AnomalyActionRecord[]): string[] => list.map((r) => r.id);

describe.each(BACKENDS)("anomaly action store contract: $name", (backend) => {
  const runs = !backend.postgres || pgUp || IN_CI;

  it.runIf(runs)("has its server (PostgreSQL is required in CI)", () => {
    expect(!backend.postgres || pgUp, `no PostgreSQL at ${SHARED_POSTGRES_URL}`).toBe(true);
  });

  it.runIf(runs)("inserts and reads back exactly, in either process; an id stored twice is refused and the first kept", async () => {
    const { a, b } = await backend.open();
    const r = row("k1", "a1", "throttle", 1_700_000_000_123);
    await a.insert(r);
    expect(await a.get(r.id)).toEqual(r);
    expect(await b.get(r.id)).toEqual(r);
    expect(await a.get("an_nope")).toBeUndefined();
    await expect(b.insert({ ...r, keyId: "k2" })).rejects.toThrow(/UNIQUE|duplicate key/);
    expect(await a.get(r.id)).toEqual(r);
  });

  it.runIf(runs)("lists newest first with filters, paged by the last id seen; an unknown cursor lists nothing", async () => {
    const { a: store, b } = await backend.open();
    const rows = [row("k1", "a1", "alert", 1), row("k2", "a1", "throttle", 2), row("k1", "a1", "suspend", 3), row("k3", "a2", "alert", 4)];
    for (const r of rows) await store.insert(r);
    expect(ids(await store.list())).toEqual([rows[3], rows[2], rows[1], rows[0]].map((r) => r?.id));
    expect(ids(await b.list({ keyId: "k1" }))).toEqual([rows[2]?.id, rows[0]?.id]);
    expect(ids(await store.list({ account: "a2" }))).toEqual([rows[3]?.id]);
    expect(ids(await store.list({ action: "alert" }))).toEqual([rows[3]?.id, rows[0]?.id]);
    expect(ids(await store.list({ account: "a1", action: "alert" }))).toEqual([rows[0]?.id]);
    const first = await store.list({ limit: 2 });
    expect(ids(first)).toEqual([rows[3]?.id, rows[2]?.id]);
    expect(ids(await store.list({ limit: 2, before: first[1]?.id ?? "" }))).toEqual([rows[1]?.id, rows[0]?.id]);
    expect(await store.list({ before: "an_unknown" })).toEqual([]);
    // The limit is clamped to 1 … 1000.
    expect(ids(await store.list({ limit: 0 }))).toEqual([rows[3]?.id]);
    await store.transition(rows[1]?.id ?? "", "active", "undone", 9, "cli:x");
    expect(ids(await b.list({ state: "undone" }))).toEqual([rows[1]?.id]);
    expect(ids(await b.list({ state: "undone", keyId: "k1" }))).toEqual([]);
  });

  it.runIf(runs)("a state change is atomic across processes: of eight undoing at once, exactly one wins", async () => {
    const { a, b } = await backend.open();
    const r = row("k1", "a1", "suspend", 5);
    await a.insert(r);
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? a : b).transition(r.id, "active", "undone", 10 + i, `cli:${i}`)),
    );
    const winners = results.filter((x) => x !== undefined);
    expect(winners).toHaveLength(1);
    const won = winners[0];
    expect(won?.state).toBe("undone");
    expect(await b.get(r.id)).toEqual(won);
    expect(await a.transition(r.id, "active", "done", 20, null)).toBeUndefined();
    expect(await a.transition("an_nope", "active", "done", 20, null)).toBeUndefined();
    // done leaves undoneAt/undoneBy alone.
    const rev = row("k2", "a1", "revoke", 5, 100);
    await a.insert(rev);
    expect(await b.transition(rev.id, "active", "done", 100, null)).toEqual({ ...rev, state: "done" });
  });

  it.runIf(runs)("due: active revokes whose grace passed, oldest due first", async () => {
    const { a: store, b } = await backend.open();
    const late = row("k1", "a1", "revoke", 1, 300);
    const early = row("k2", "a1", "revoke", 2, 200);
    const future = row("k3", "a1", "revoke", 3, 900);
    const undone = row("k4", "a1", "revoke", 4, 100);
    const suspend = row("k5", "a1", "suspend", 5);
    for (const r of [late, early, future, undone, suspend]) await store.insert(r);
    await store.transition(undone.id, "active", "undone", 6, "cli:x");
    expect(ids(await b.due(300, 10))).toEqual([early.id, late.id]);
    expect(ids(await store.due(300, 1))).toEqual([early.id]);
    expect(await store.due(199, 10)).toEqual([]);
    await b.transition(early.id, "active", "done", 300, null);
    expect(ids(await store.due(1_000, 10))).toEqual([late.id, future.id]);
  });
});

describe.runIf(pgUp || IN_CI)("the PostgreSQL anomaly action store", () => {
  it("is migration 5's table, refusing an action or state outside the catalogue", async () => {
    const postgres = BACKENDS.find((b) => b.postgres);
    if (postgres === undefined) throw new Error("the PostgreSQL backend");
    const { a } = await postgres.open();
    const schema = schemas[schemas.length - 1] ?? "";
    expect(await adminQuery(SHARED_POSTGRES_URL, `SELECT name FROM ${schema}.schema_migrations WHERE version = 5`)).toEqual([{ name: "behaviour state, anomaly actions" }]);
    await expect(a.insert({ ...row("k1", "a1", "alert", 1), action: "explode" as AnomalyAction })).rejects.toThrow(/check constraint/);
    const r = row("k1", "a1", "alert", 1);
    await a.insert(r);
    await expect(a.transition(r.id, "active", "gone" as "done", 2, null)).rejects.toThrow(/check constraint/);
    expect((await a.get(r.id))?.state).toBe("active");
  });
});
