/**
 * Real processes sharing behaviour states: three child processes each increment the same counters
 * N times, all at once, through their own store: each its own SQLite handle on one file, or its
 * own Redis connection (with its own SQLite copy beside it, as a gateway runs). Every update
 * lands: 3N. (Runs the built package: `npm run build` first, as the CLI tests do.)
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { SqliteStore } from "../../src/storage/sqlite/store.js";
import { RedisBehaviourStore } from "../../src/storage/redis/behaviour.js";
import { IN_CI, SHARED_REDIS_URL, deleteKeys, redisReachable, uniquePrefix } from "../support/redis.js";

const DIST = fileURLToPath(new URL("../../dist/", import.meta.url));
const up = await redisReachable(SHARED_REDIS_URL);

/** A child: `n` increments of each id, 8 in flight at a time; prints how many calls resolved. */
const CHILD = `
import { SqliteStore } from "${DIST}storage/sqlite/store.js";
import { RedisBehaviourStore } from "${DIST}storage/redis/behaviour.js";
import { SnapshottingBehaviourStore } from "${DIST}storage/behaviour-state.js";
const [db, prefix, n] = process.argv.slice(1);
const sqlite = new SqliteStore(db);
const redis = prefix === "" ? null : new RedisBehaviourStore({ url: "${SHARED_REDIS_URL}", prefix });
const store = redis === null ? sqlite.behaviour : new SnapshottingBehaviourStore(redis, sqlite.behaviour);
const inc = (_id, cur) => {
  const out = new Uint8Array(4);
  const before = cur === null ? 0 : new DataView(cur.buffer, cur.byteOffset, cur.byteLength).getUint32(0);
  new DataView(out.buffer).setUint32(0, before + 1);
  return out;
};
let done = 0;
let next = 0;
async function worker() {
  while (next < Number(n)) {
    next++;
    await store.update(["pck_test_v1_shared", "account:acme"], inc);
    done++;
  }
}
await Promise.all(Array.from({ length: 8 }, worker));
if (redis !== null) {
  await store.close();
  await redis.close();
}
await sqlite.close();
process.stdout.write(String(done));
`;

function child(db: string, prefix: string, n: number): Promise<number> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ["--input-type=module", "-e", CHILD, db, prefix, String(n)], { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`${err.message}\n${stderr}`));
      else resolve(Number(stdout));
    });
  });
}

const dir = mkdtempSync(join(tmpdir(), "portcullis-behaviour-procs-"));
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function count(x: Uint8Array | undefined): number {
  return x === undefined ? -1 : new DataView(x.buffer, x.byteOffset, x.byteLength).getUint32(0);
}

const N = 100;
const IDS = ["pck_test_v1_shared", "account:acme"];

describe("behaviour states across processes", () => {
  it("three processes on one SQLite file lose no update", async () => {
    const db = join(dir, "sqlite.db");
    await new SqliteStore(db).close();
    expect(await Promise.all([child(db, "", N), child(db, "", N), child(db, "", N)])).toEqual([N, N, N]);
    const store = new SqliteStore(db);
    const states = await store.behaviour.load(IDS);
    expect(IDS.map((id) => count(states.get(id)))).toEqual([3 * N, 3 * N]);
    await store.close();
  });

  it.runIf(up || IN_CI)("three processes on one Redis (each with its own SQLite copy) lose no update", async () => {
    const prefix = uniquePrefix("bs-procs");
    const raw = new Redis(SHARED_REDIS_URL);
    try {
      const dbs = [join(dir, "p1.db"), join(dir, "p2.db"), join(dir, "p3.db")];
      expect(await Promise.all(dbs.map((db) => child(db, prefix, N)))).toEqual([N, N, N]);
      const redis = new RedisBehaviourStore({ url: SHARED_REDIS_URL, prefix });
      const states = await redis.load(IDS);
      expect(IDS.map((id) => count(states.get(id)))).toEqual([3 * N, 3 * N]);
      await redis.close();
      // Each process's copy holds the state as it last copied it: some count up to 3N.
      const copies = dbs.map((db) => new SqliteStore(db));
      const copied = await Promise.all(copies.map((s) => s.behaviour.load(IDS)));
      for (const c of copied) expect(count(c.get("account:acme"))).toBeGreaterThanOrEqual(N);
      await Promise.all(copies.map((s) => s.close()));
    } finally {
      await deleteKeys(raw, prefix);
      await raw.quit();
    }
  });
});
