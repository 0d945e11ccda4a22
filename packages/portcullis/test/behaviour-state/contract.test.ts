/**
 * The behaviour-state stores (storage/types.ts BehaviourStateStore), one contract against every
 * backend: SQLite (a temporary file), PostgreSQL (the machine's PostgreSQL, a new schema for each
 * pair, dropped after the file), Redis (the machine's Redis, a unique prefix, cleaned up) and
 * the snapshotting pair (Redis, copied to SQLite). Each backend is opened as two "processes" (two
 * SQLite handles on one file, two Redis connections), so the suite also shows what one process
 * sees of the other's writes, and that concurrent updates of one id lose none.
 *
 * Then what is particular to each: SQLite's version and clock columns and its all-or-nothing
 * transaction; Redis's compare-and-set giving up with BEHAVIOUR_STATE_CONFLICT, its refusal of
 * values it did not write (BEHAVIOUR_STATE_MALFORMED) and of an unreachable server
 * (BEHAVIOUR_STATE_UNAVAILABLE); the snapshotting pair's timer, flush and restore of a state Redis
 * lost; PostgreSQL's sequence of versions, its compare-and-set against another process that moved a
 * state on (held by a row lock, so the interleaving is certain), BEHAVIOUR_STATE_CONFLICT and
 * BEHAVIOUR_STATE_UNAVAILABLE. Skipped loudly without a Redis or a PostgreSQL; never in CI.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { BehaviourStateError, SnapshottingBehaviourStore } from "../../src/storage/behaviour-state.js";
import { RedisBehaviourStore } from "../../src/storage/redis/behaviour.js";
import { SqliteBehaviourStore } from "../../src/storage/sqlite/behaviour.js";
import { SqliteStore } from "../../src/storage/sqlite/store.js";
import { BEHAVIOUR_STATE_MAX_BYTES, type BehaviourStateStore } from "../../src/storage/types.js";
import { IN_CI, SHARED_REDIS_URL, deleteKeys, keysUnder, loudSkip, redisReachable, uniquePrefix } from "../support/redis.js";
import { SHARED_POSTGRES_URL, adminQuery, dropSchema, postgresReachable, uniqueSchema } from "../support/postgres.js";
import { PostgresBehaviourStore } from "../../src/storage/postgres/behaviour.js";
import { PostgresStore } from "../../src/storage/postgres/store.js";

const up = await redisReachable(SHARED_REDIS_URL);
if (!up && !IN_CI) loudSkip("the Redis behaviour-state stores", `no Redis answers at ${SHARED_REDIS_URL}`);
const pgUp = await postgresReachable(SHARED_POSTGRES_URL);
if (!pgUp && !IN_CI) loudSkip("the PostgreSQL behaviour-state store", `no PostgreSQL answers at ${SHARED_POSTGRES_URL}`);

const dir = mkdtempSync(join(tmpdir(), "portcullis-behaviour-state-"));
let files = 0;
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
/** The PostgreSQL schemas this file made (one a store pair, so each test starts empty), dropped at the end. */
const schemas: string[] = [];
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  for (const schema of schemas) await dropSchema(SHARED_POSTGRES_URL, schema);
});

/** Two PostgresStores ("processes") on one new schema. */
async function postgresPair(): Promise<{ schema: string; one: PostgresStore; two: PostgresStore }> {
  const schema = uniqueSchema("bs");
  schemas.push(schema);
  const one = await PostgresStore.open({ url: SHARED_POSTGRES_URL, schema, poolSize: 4 });
  const two = await PostgresStore.open({ url: SHARED_POSTGRES_URL, schema, poolSize: 4 });
  cleanups.push(async () => {
    await one.close();
    await two.close();
  });
  return { schema, one, two };
}

/** Two SqliteStores ("processes") on one new file (their writes on worker threads with `offThreadWrites`). */
function sqlitePair(offThreadWrites = false): { path: string; one: SqliteStore; two: SqliteStore } {
  const path = join(dir, `store-${++files}.db`);
  const one = new SqliteStore(path, { offThreadWrites });
  const two = new SqliteStore(path, { offThreadWrites });
  cleanups.push(async () => {
    await one.close();
    await two.close();
  });
  return { path, one, two };
}

/** A raw client on the shared Redis, and the keys under `prefix` deleted after the test. */
function rawRedis(prefix: string): Redis {
  const raw = new Redis(SHARED_REDIS_URL, { maxRetriesPerRequest: 1 });
  cleanups.push(async () => {
    await deleteKeys(raw, prefix);
    await raw.quit();
  });
  return raw;
}

function redisStore(prefix: string, options: { maxRetries?: number; client?: Redis } = {}): RedisBehaviourStore {
  const store = new RedisBehaviourStore({ url: SHARED_REDIS_URL, prefix, ...options });
  cleanups.push(() => store.close());
  return store;
}

interface Opened {
  readonly a: BehaviourStateStore;
  readonly b: BehaviourStateStore;
}

const BACKENDS: { readonly name: string; readonly redis: boolean; readonly postgres?: boolean; readonly open: () => Opened | Promise<Opened> }[] = [
  {
    name: "sqlite",
    redis: false,
    open: () => {
      const { one, two } = sqlitePair();
      return { a: one.behaviour, b: two.behaviour };
    },
  },
  {
    name: "sqlite, written by the worker thread",
    redis: false,
    open: () => {
      const { one, two } = sqlitePair(true);
      return { a: one.behaviour, b: two.behaviour };
    },
  },
  {
    name: "postgres",
    redis: false,
    postgres: true,
    open: async () => {
      const { one, two } = await postgresPair();
      return { a: one.behaviour, b: two.behaviour };
    },
  },
  {
    name: "redis",
    redis: true,
    open: () => {
      const prefix = uniquePrefix("bs");
      rawRedis(prefix);
      return { a: redisStore(prefix), b: redisStore(prefix) };
    },
  },
  {
    name: "redis snapshotted to sqlite",
    redis: true,
    open: () => {
      const prefix = uniquePrefix("bs-snap");
      rawRedis(prefix);
      const { one, two } = sqlitePair();
      const a = new SnapshottingBehaviourStore(redisStore(prefix), one.behaviour);
      const b = new SnapshottingBehaviourStore(redisStore(prefix), two.behaviour);
      cleanups.push(async () => {
        await a.close();
        await b.close();
      });
      return { a, b };
    },
  },
];

const bytes = (...values: number[]): Uint8Array => Uint8Array.from(values);
const list = (x: Uint8Array | null | undefined): number[] | null => (x === null || x === undefined ? null : Array.from(x));

/** A state holding one counter (a big-endian u32), and the apply that adds one. */
function counter(x: Uint8Array | null | undefined): number {
  return x === null || x === undefined || x.byteLength < 4 ? 0 : new DataView(x.buffer, x.byteOffset, x.byteLength).getUint32(0);
}
function increment(_id: string, current: Uint8Array | null): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, counter(current) + 1);
  return out;
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

describe.each(BACKENDS)("behaviour-state store contract: $name", (backend) => {
  const runs = (!backend.redis || up || IN_CI) && (backend.postgres !== true || pgUp || IN_CI);

  it.runIf(runs)("has its server (Redis and PostgreSQL are required in CI)", () => {
    expect(!backend.redis || up, `no Redis at ${SHARED_REDIS_URL}`).toBe(true);
    expect(backend.postgres !== true || pgUp, `no PostgreSQL at ${SHARED_POSTGRES_URL}`).toBe(true);
  });

  it.runIf(runs)("update creates, applies on the current bytes, and load answers what exists", async () => {
    const { a } = await backend.open();
    expect((await a.load(["pck_test_v1_k1", "account:acme"])).size).toBe(0);
    const seen: [string, number[] | null][] = [];
    await a.update(["pck_test_v1_k1", "account:acme", "pck_test_v1_k1"], (id, current) => {
      seen.push([id, list(current)]);
      return id === "account:acme" ? bytes(9) : bytes(1, 2, 3);
    });
    // Once per id, repeats ignored, current null for a new state.
    expect(seen).toEqual([
      ["pck_test_v1_k1", null],
      ["account:acme", null],
    ]);
    await a.update(["pck_test_v1_k1"], (_id, current) => {
      expect(list(current)).toEqual([1, 2, 3]);
      return bytes(4, 5);
    });
    const loaded = await a.load(["pck_test_v1_k1", "account:acme", "pck_test_v1_nothing"]);
    expect([...loaded.keys()].sort()).toEqual(["account:acme", "pck_test_v1_k1"]);
    expect(list(loaded.get("pck_test_v1_k1"))).toEqual([4, 5]);
    expect(list(loaded.get("account:acme"))).toEqual([9]);
    // An empty state is a state.
    await a.update(["empty"], () => new Uint8Array(0));
    expect(list((await a.load(["empty"])).get("empty"))).toEqual([]);
    // Nothing to do is nothing done.
    await a.update([], () => {
      throw new Error("not called");
    });
    await a.remove([]);
  });

  it.runIf(runs)("one process sees the other's writes and removals", async () => {
    const { a, b } = await backend.open();
    await a.update(["shared"], () => bytes(7));
    expect(list((await b.load(["shared"])).get("shared"))).toEqual([7]);
    await b.update(["shared"], (_id, current) => bytes(...Array.from(current ?? []), 8));
    expect(list((await a.load(["shared"])).get("shared"))).toEqual([7, 8]);
    await b.remove(["shared"]);
    expect((await a.load(["shared"])).has("shared")).toBe(false);
    expect(await a.ids(null, 10)).toEqual([]);
  });

  it.runIf(runs)("remove forgets (a state written again starts from none), and ignores ids without a state", async () => {
    const { a } = await backend.open();
    await a.update(["k1", "k2"], () => bytes(1));
    await a.remove(["k1", "never-written"]);
    expect([...(await a.load(["k1", "k2"])).keys()]).toEqual(["k2"]);
    expect(await a.ids(null, 10)).toEqual(["k2"]);
    await a.update(["k1"], (_id, current) => {
      expect(current).toBeNull();
      return bytes(2);
    });
    expect(await a.ids(null, 10)).toEqual(["k1", "k2"]);
  });

  it.runIf(runs)("ids pages through every id with a state, in byte order, each once", async () => {
    const { a } = await backend.open();
    const all = Array.from({ length: 25 }, (_, i) => `pck_test_v1_${String(i).padStart(2, "0")}`).concat(["account:acme", "account:zeta"]);
    await a.update(all, () => bytes(1));
    const pages: string[][] = [];
    let after: string | null = null;
    for (;;) {
      const page: string[] = await a.ids(after, 10);
      if (page.length === 0) break;
      pages.push(page);
      after = page[page.length - 1] ?? null;
    }
    expect(pages.map((p) => p.length)).toEqual([10, 10, 7]);
    expect(pages.flat()).toEqual([...all].sort());
    expect(await a.ids("pck_test_v1_23", 10)).toEqual(["pck_test_v1_24"]);
    expect(await a.ids("pck_test_v1_24", 10)).toEqual([]);
  });

  it.runIf(runs)("keeps a state of 2,048 bytes and refuses a larger one (TypeError), writing nothing of that call", async () => {
    const { a } = await backend.open();
    const full = new Uint8Array(BEHAVIOUR_STATE_MAX_BYTES).fill(0xab);
    await a.update(["big"], () => full);
    expect((await a.load(["big"])).get("big")?.byteLength).toBe(2_048);
    const err = await rejection(a.update(["other", "big"], (id) => (id === "big" ? new Uint8Array(BEHAVIOUR_STATE_MAX_BYTES + 1) : bytes(1))));
    expect(err).toBeInstanceOf(TypeError);
    expect(String(err)).toMatch(/2049 bytes, more than the 2048/);
    const after = await a.load(["big", "other"]);
    expect(after.get("big")?.every((x) => x === 0xab)).toBe(true);
    expect(after.has("other")).toBe(false);
  });

  it.runIf(runs)("refuses a caller's mistakes with a TypeError and changes nothing", async () => {
    const { a } = await backend.open();
    await a.update(["k"], () => bytes(1));
    const wrong = (): Uint8Array => [1, 2] as unknown as Uint8Array;
    expect(await rejection(a.update(["k"], wrong))).toBeInstanceOf(TypeError);
    expect(await rejection(a.update([""], () => bytes(1)))).toBeInstanceOf(TypeError);
    expect(await rejection(a.update(["x".repeat(257)], () => bytes(1)))).toBeInstanceOf(TypeError);
    expect(await rejection(a.load([42 as unknown as string]))).toBeInstanceOf(TypeError);
    expect(await rejection(a.remove("k" as unknown as string[]))).toBeInstanceOf(TypeError);
    expect(await rejection(a.ids(null, 0))).toBeInstanceOf(TypeError);
    expect(await rejection(a.ids(null, 10_001))).toBeInstanceOf(TypeError);
    expect(await rejection(a.ids(null, 1.5))).toBeInstanceOf(TypeError);
    // An apply that throws: its error, and nothing written.
    const boom = new Error("the model's own fault");
    expect(
      await rejection(
        a.update(["k"], () => {
          throw boom;
        }),
      ),
    ).toBe(boom);
    expect(list((await a.load(["k"])).get("k"))).toEqual([1]);
    expect(await a.ids(null, 10)).toEqual(["k"]);
  });

  it.runIf(runs)("two processes updating the same ids concurrently, N times each, lose no update (2N)", async () => {
    const { a, b } = await backend.open();
    const N = 60;
    const ids = ["pck_test_v1_hot", "account:acme"];
    const calls: Promise<void>[] = [];
    for (let i = 0; i < N; i++) {
      calls.push(a.update(ids, increment));
      calls.push(b.update(ids, increment));
    }
    await Promise.all(calls);
    const fromA = await a.load(ids);
    const fromB = await b.load(ids);
    for (const id of ids) {
      expect(counter(fromA.get(id))).toBe(2 * N);
      expect(counter(fromB.get(id))).toBe(2 * N);
    }
  });
});

describe("the SQLite behaviour store", () => {
  it("is migration 15's table: each write counts a version and stamps the store's clock", async () => {
    const { path, one } = sqlitePair();
    const raw = new Database(path, { readonly: true });
    cleanups.push(() => {
      raw.close();
    });
    expect(raw.prepare("SELECT name FROM schema_migrations WHERE version = 15").get()).toEqual({ name: "behaviour state" });
    let now = 1_700_000_000_000;
    // A second store over the same connection's file, with a frozen clock.
    const db = new Database(path);
    cleanups.push(() => {
      db.close();
    });
    const store = new SqliteBehaviourStore(db, { now: () => now });
    await store.update(["k"], () => bytes(1));
    now += 5_000;
    await store.update(["k"], () => bytes(2));
    await one.behaviour.update(["k2"], () => bytes(3));
    expect(raw.prepare("SELECT id, hex(state) AS state, version, updated_at FROM behaviour_state WHERE id = 'k'").get()).toEqual({
      id: "k",
      state: "02",
      version: 2,
      updated_at: 1_700_000_005_000,
    });
    expect(list((await one.behaviour.load(["k"])).get("k"))).toEqual([2]);
  });

  it("written by the worker, reads back only what another writer moved on: one round trip an update in the steady state", async () => {
    const { one, two } = sqlitePair(true);
    const writer = one.writer;
    if (writer === null) throw new Error("offThreadWrites: a writer");
    await one.behaviour.update(["k"], increment);
    let before = writer.stats.answered;
    await one.behaviour.update(["k"], increment);
    // The write alone: the state it last wrote is not read back.
    expect(writer.stats.answered - before).toBe(1);
    await two.behaviour.update(["k"], increment);
    before = writer.stats.answered;
    await one.behaviour.update(["k"], increment);
    // The write that found the row moved on, the read, the write again.
    expect(writer.stats.answered - before).toBe(3);
    expect(counter((await two.behaviour.load(["k"])).get("k"))).toBe(4);
  });

  it("written by the worker, never takes a state removed and written again by another connection (same version) for its own", async () => {
    const { one, two } = sqlitePair(true);
    await one.behaviour.update(["k"], () => bytes(0, 0, 0, 5));
    await two.behaviour.remove(["k"]);
    // Version 1 again, other bytes.
    await two.behaviour.update(["k"], () => bytes(0, 0, 0, 40));
    const seen: number[] = [];
    await one.behaviour.update(["k"], (id, current) => {
      seen.push(counter(current));
      return increment(id, current);
    });
    // First from the state it wrote, then, the row having moved on, from the stored one.
    expect(seen).toEqual([5, 40]);
    expect(counter((await two.behaviour.load(["k"])).get("k"))).toBe(41);
  });

  it("rolls a whole call back when one id's apply fails", async () => {
    const { one } = sqlitePair();
    await one.behaviour.update(["a", "b"], () => bytes(1));
    const err = await rejection(
      one.behaviour.update(["a", "b"], (id) => {
        if (id === "b") throw new Error("fails on b");
        return bytes(2);
      }),
    );
    expect(String(err)).toMatch(/fails on b/);
    expect(list((await one.behaviour.load(["a"])).get("a"))).toEqual([1]);
  });
});

describe.runIf(up || IN_CI)("the Redis behaviour store", () => {
  it("gives up an id with BEHAVIOUR_STATE_CONFLICT after maxRetries when another writer moves it every time, writing the others", async () => {
    const prefix = uniquePrefix("bs-conflict");
    const raw = rawRedis(prefix);
    // The interfering writes go over the store's own connection, so they reach Redis between
    // this store's read and its compare-and-set, every time.
    const client = new Redis(SHARED_REDIS_URL, { maxRetriesPerRequest: 1 });
    cleanups.push(async () => {
      await client.quit();
    });
    const store = redisStore(prefix, { client, maxRetries: 2 });
    let calls = 0;
    const err = await rejection(
      store.update(["contested", "quiet"], (id, current) => {
        if (id === "contested") {
          calls++;
          void client.set(`${prefix}bs:contested`, `${900_000 + calls}:x`);
        }
        return increment(id, current);
      }),
    );
    expect(err).toBeInstanceOf(BehaviourStateError);
    expect((err as BehaviourStateError).code).toBe("BEHAVIOUR_STATE_CONFLICT");
    expect((err as BehaviourStateError).ids).toEqual(["contested"]);
    expect(calls).toBe(3);
    // The other writer's value stands; the quiet id was written once.
    expect(await raw.get(`${prefix}bs:contested`)).toBe("900003:x");
    expect(counter((await store.load(["quiet"])).get("quiet"))).toBe(1);
  });

  it("never reuses a version: not for a state removed and written again, not after Redis lost its counter", async () => {
    const prefix = uniquePrefix("bs-version");
    const raw = rawRedis(prefix);
    let clock = 1_700_000_000_000;
    const store = new RedisBehaviourStore({ url: SHARED_REDIS_URL, prefix, now: () => clock });
    cleanups.push(() => store.close());
    const version = async (): Promise<string | undefined> => (await raw.get(`${prefix}bs:k`))?.split(":")[0];
    await store.update(["k"], () => bytes(1));
    expect(await version()).toBe("1700000000000001");
    await store.update(["k"], () => bytes(2));
    expect(await version()).toBe("1700000000000002");
    await store.remove(["k"]);
    expect(await raw.exists(`${prefix}bs:k`)).toBe(0);
    await store.update(["k"], () => bytes(3));
    expect(await version()).toBe("1700000000000003");
    expect(await keysUnder(raw, prefix)).toEqual([`${prefix}bs-ids`, `${prefix}bs-seq`, `${prefix}bs:k`]);
    // A counter gone (Redis restarted without it, a second later) starts again above the versions it gave.
    await raw.del(`${prefix}bs-seq`);
    clock += 1_000;
    await store.update(["k"], () => bytes(4));
    expect(await version()).toBe("1700000001000001");
    expect(list((await store.load(["k"])).get("k"))).toEqual([4]);
  });

  it("refuses values it did not write with BEHAVIOUR_STATE_MALFORMED and never overwrites them", async () => {
    const prefix = uniquePrefix("bs-malformed");
    const raw = rawRedis(prefix);
    const store = redisStore(prefix);
    await raw.set(`${prefix}bs:junk`, "no version here");
    await raw.set(`${prefix}bs:huge`, `1:${"x".repeat(BEHAVIOUR_STATE_MAX_BYTES + 1)}`);
    await raw.hset(`${prefix}bs:hash`, "v", "1");
    const loadErr = await rejection(store.load(["junk", "fine"]));
    expect((loadErr as BehaviourStateError).code).toBe("BEHAVIOUR_STATE_MALFORMED");
    expect((loadErr as BehaviourStateError).ids).toEqual(["junk"]);
    expect(((await rejection(store.load(["huge"]))) as BehaviourStateError).code).toBe("BEHAVIOUR_STATE_MALFORMED");
    const applied: string[] = [];
    const updateErr = await rejection(
      store.update(["junk", "hash", "fine"], (id) => {
        applied.push(id);
        return bytes(1);
      }),
    );
    expect((updateErr as BehaviourStateError).code).toBe("BEHAVIOUR_STATE_MALFORMED");
    expect([...(updateErr as BehaviourStateError).ids].sort()).toEqual(["hash", "junk"]);
    // The hash reads as no string (MGET): apply ran, the script refused to overwrite it.
    expect(applied).toEqual(["hash", "fine"]);
    expect(await raw.get(`${prefix}bs:junk`)).toBe("no version here");
    expect(await raw.hget(`${prefix}bs:hash`, "v")).toBe("1");
    expect(list((await store.load(["fine"])).get("fine"))).toEqual([1]);
  });

  it("rejects with BEHAVIOUR_STATE_UNAVAILABLE when Redis cannot be reached", async () => {
    const errors: Error[] = [];
    const store = new RedisBehaviourStore({ url: "redis://127.0.0.1:1", prefix: uniquePrefix("bs-down"), commandTimeoutMs: 100, onError: (e) => errors.push(e) });
    cleanups.push(() => store.close());
    for (const attempt of [store.load(["k"]), store.update(["k"], () => bytes(1)), store.remove(["k"]), store.ids(null, 10)]) {
      const err = await rejection(attempt);
      expect(err).toBeInstanceOf(BehaviourStateError);
      expect((err as BehaviourStateError).code).toBe("BEHAVIOUR_STATE_UNAVAILABLE");
    }
  });
});

describe.runIf(up || IN_CI)("the snapshotting pair (Redis, copied to SQLite)", () => {
  function pair(options: { snapshotMs?: number; onSnapshot?: (n: number) => void; onError?: (err: Error) => void } = {}) {
    const prefix = uniquePrefix("bs-pair");
    const raw = rawRedis(prefix);
    const { one } = sqlitePair();
    const redis = redisStore(prefix);
    const store = new SnapshottingBehaviourStore(redis, one.behaviour, options);
    cleanups.push(() => store.close().catch(() => undefined));
    return { prefix, raw, sqlite: one, redis, store };
  }

  it("restores a state Redis lost from the SQLite copy, and updates on top of it", async () => {
    const { prefix, raw, sqlite, store } = pair();
    for (let i = 0; i < 3; i++) await store.update(["pck_test_v1_k", "account:acme"], increment);
    await store.flush();
    expect(counter((await sqlite.behaviour.load(["pck_test_v1_k"])).get("pck_test_v1_k"))).toBe(3);
    // Redis loses the key's state (a restart without its data, as far as this id goes).
    expect(await raw.del(`${prefix}bs:pck_test_v1_k`)).toBe(1);
    expect(counter((await store.load(["pck_test_v1_k"])).get("pck_test_v1_k"))).toBe(3);
    await store.update(["pck_test_v1_k"], increment);
    expect(counter((await store.load(["pck_test_v1_k"])).get("pck_test_v1_k"))).toBe(4);
    // Back in Redis, for every process.
    expect((await raw.get(`${prefix}bs:pck_test_v1_k`))?.endsWith(":\u0000\u0000\u0000\u0004")).toBe(true);
    // Every id of either store is listed.
    await raw.del(`${prefix}bs:account:acme`, `${prefix}bs-ids`);
    expect(await store.ids(null, 10)).toEqual(["account:acme", "pck_test_v1_k"]);
  });

  it("copies changed states every snapshotMs off the request path, not before", async () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
    cleanups.push(() => {
      vi.useRealTimers();
    });
    let announce: (n: number) => void = () => undefined;
    const { sqlite, store } = pair({
      snapshotMs: 10_000,
      onSnapshot: (n) => {
        announce(n);
      },
    });
    await store.update(["k1", "k2"], increment);
    expect(store.pending).toBe(2);
    vi.advanceTimersByTime(9_999);
    expect(store.pending).toBe(2);
    expect((await sqlite.behaviour.load(["k1", "k2"])).size).toBe(0);
    const snapshot = new Promise<number>((resolve) => {
      announce = resolve;
    });
    vi.advanceTimersByTime(1);
    expect(await snapshot).toBe(2);
    expect(store.pending).toBe(0);
    const copied = await sqlite.behaviour.load(["k1", "k2"]);
    expect([counter(copied.get("k1")), counter(copied.get("k2"))]).toEqual([1, 1]);
    // Nothing changed, nothing copied.
    await store.update(["k1"], increment);
    await store.close();
    expect(counter((await sqlite.behaviour.load(["k1"])).get("k1"))).toBe(2);
    expect(await rejection(store.update(["k1"], increment))).toBeInstanceOf(TypeError);
  });

  it("keeps the states pending when a snapshot fails, reports it, and removes from both stores", async () => {
    const errors: Error[] = [];
    const { raw, prefix, sqlite, store } = pair({ onError: (e) => errors.push(e) });
    await store.update(["k"], increment);
    await store.flush();
    await store.update(["k", "k2"], increment);
    await sqlite.close();
    expect(await rejection(store.flush())).toBeInstanceOf(Error);
    expect(errors).toHaveLength(1);
    expect(store.pending).toBe(2);
    // Removal reaches Redis first, then the (closed) SQLite store refuses.
    expect(await rejection(store.remove(["k"]))).toBeInstanceOf(Error);
    expect(await raw.exists(`${prefix}bs:k`)).toBe(0);
  });

  it("remove forgets a state in Redis and in the SQLite copy", async () => {
    const { raw, prefix, sqlite, store } = pair();
    await store.update(["k"], increment);
    await store.flush();
    await store.remove(["k"]);
    expect(await raw.exists(`${prefix}bs:k`)).toBe(0);
    expect((await sqlite.behaviour.load(["k"])).size).toBe(0);
    expect((await store.load(["k"])).size).toBe(0);
    expect(store.pending).toBe(0);
  });

  it("refuses bad options with a TypeError", () => {
    const { one } = sqlitePair();
    expect(() => new SnapshottingBehaviourStore(one.behaviour, one.behaviour, { snapshotMs: 0 })).toThrow(TypeError);
    expect(() => new SnapshottingBehaviourStore(one.behaviour, one.behaviour, { batchSize: 1.5 })).toThrow(TypeError);
    expect(() => new RedisBehaviourStore({ maxRetries: -1 })).toThrow(TypeError);
  });
});

describe.runIf(pgUp || IN_CI)("the PostgreSQL behaviour store", () => {
  /** A pool of its own on `schema` (search_path), closed after the test. */
  function poolOn(schema: string, url = SHARED_POSTGRES_URL): pg.Pool {
    const pool = new pg.Pool({ connectionString: url, options: `-c search_path=${schema}`, application_name: `portcullis:${schema}`, max: 2, connectionTimeoutMillis: 2_000 });
    pool.on("error", () => undefined);
    cleanups.push(() => pool.end());
    return pool;
  }

  /** Resolves once a connection of `schema`'s stores waits for a row lock (the update's write is blocked). */
  async function blockedOnLock(schema: string): Promise<void> {
    for (let i = 0; i < 500; i++) {
      const rows = await adminQuery<{ n: string }>(
        SHARED_POSTGRES_URL,
        "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
        [`portcullis:${schema}`],
      );
      if (Number(rows[0]?.n) > 0) return;
    }
    throw new Error("the update never waited for the row lock");
  }

  it("is migration 5's table: each write takes a new version from one sequence (never reused after a removal) and stamps the store's clock", async () => {
    const { schema, one } = await postgresPair();
    expect(await adminQuery(SHARED_POSTGRES_URL, `SELECT name FROM ${schema}.schema_migrations WHERE version = 5`)).toEqual([{ name: "behaviour state, anomaly actions" }]);
    let now = 1_700_000_000_000;
    const store = new PostgresBehaviourStore(poolOn(schema), { now: () => now });
    const row = async (): Promise<{ state: string; version: string; updated_at: string } | undefined> =>
      (await adminQuery<{ state: string; version: string; updated_at: string }>(
        SHARED_POSTGRES_URL,
        `SELECT encode(state, 'hex') AS state, version::text AS version, updated_at::text AS updated_at FROM ${schema}.behaviour_state WHERE id = 'k'`,
      ))[0];
    await store.update(["k"], () => bytes(1));
    const first = await row();
    now += 5_000;
    await store.update(["k"], () => bytes(2));
    const second = await row();
    expect(second).toMatchObject({ state: "02", updated_at: "1700000005000" });
    expect(BigInt(second?.version ?? 0)).toBeGreaterThan(BigInt(first?.version ?? 0));
    await one.behaviour.remove(["k"]);
    expect(await row()).toBeUndefined();
    await store.update(["k"], () => bytes(3));
    const third = await row();
    // Written again after its removal: a version above every earlier one, not the first again.
    expect(BigInt(third?.version ?? 0)).toBeGreaterThan(BigInt(second?.version ?? 0));
    expect(list((await one.behaviour.load(["k"])).get("k"))).toEqual([3]);
    // The table itself refuses more than 2,048 bytes, whoever writes.
    await expect(adminQuery(SHARED_POSTGRES_URL, `UPDATE ${schema}.behaviour_state SET state = decode(repeat('ab', 2049), 'hex')`)).rejects.toThrow(/check constraint/);
  });

  it("never takes a state removed and written again by another process meanwhile for the one it read: applies again on the new bytes", async () => {
    const { schema, one } = await postgresPair();
    await one.behaviour.update(["k"], () => bytes(0, 0, 0, 5));
    const other = await poolOn(schema).connect();
    cleanups.push(() => { other.release(); });
    await other.query("BEGIN");
    await other.query("SELECT 1 FROM behaviour_state WHERE id = 'k' FOR UPDATE");
    const seen: number[] = [];
    const pending = one.behaviour.update(["k"], (id, current) => {
      seen.push(counter(current));
      return increment(id, current);
    });
    await blockedOnLock(schema);
    // The other process removes the state and writes it again (other bytes), then commits.
    await other.query("DELETE FROM behaviour_state WHERE id = 'k'");
    await other.query("INSERT INTO behaviour_state (id, state, version, updated_at) VALUES ('k', '\\x00000028', nextval('behaviour_state_version'), 0)");
    await other.query("COMMIT");
    await pending;
    expect(seen).toEqual([5, 40]);
    expect(counter((await one.behaviour.load(["k"])).get("k"))).toBe(41);
  });

  it("gives up with BEHAVIOUR_STATE_CONFLICT after maxRetries when another process moved a state on, writing nothing of the call", async () => {
    const { schema, one } = await postgresPair();
    await one.behaviour.update(["k"], () => bytes(0, 0, 0, 1));
    const store = new PostgresBehaviourStore(poolOn(schema), { maxRetries: 0 });
    const other = await poolOn(schema).connect();
    cleanups.push(() => { other.release(); });
    await other.query("BEGIN");
    await other.query("UPDATE behaviour_state SET state = '\\x00000009', version = nextval('behaviour_state_version') WHERE id = 'k'");
    const pending = rejection(store.update(["a-new-one", "k"], increment));
    await blockedOnLock(schema);
    await other.query("COMMIT");
    const err = await pending;
    expect(err).toBeInstanceOf(BehaviourStateError);
    expect((err as BehaviourStateError).code).toBe("BEHAVIOUR_STATE_CONFLICT");
    expect((err as BehaviourStateError).ids).toEqual(["k"]);
    const after = await one.behaviour.load(["k", "a-new-one"]);
    expect(counter(after.get("k"))).toBe(9);
    expect(after.has("a-new-one")).toBe(false);
    expect(() => new PostgresBehaviourStore(poolOn(schema), { maxRetries: 1.5 })).toThrow(TypeError);
  });

  it("rejects with BEHAVIOUR_STATE_UNAVAILABLE when PostgreSQL cannot be reached", async () => {
    const store = new PostgresBehaviourStore(poolOn("pctest_none", "postgres://postgres@127.0.0.1:1/test"));
    for (const call of [() => store.load(["k"]), () => store.update(["k"], increment), () => store.remove(["k"]), () => store.ids(null, 10)]) {
      const err = await rejection(call());
      expect(err).toBeInstanceOf(BehaviourStateError);
      expect((err as BehaviourStateError).code).toBe("BEHAVIOUR_STATE_UNAVAILABLE");
    }
  });
});
