/**
 * Increasing-nonce reservations (replay/reservations.ts) over the real SQLite store: what is
 * written, when a request must wait for a write, how far ahead a key reserves, and the floors a
 * new epoch starts from.
 */
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { SequenceReservations } from "../../src/replay/reservations.js";
import { SqliteStore } from "../../src/storage/sqlite/store.js";
import { rmSync } from "node:fs";
import { oldDatabase } from "../support/old-database.js";

const T0 = 1_700_000_000_000;
const opened: SqliteStore[] = [];

function store(): SqliteStore {
  const s = new SqliteStore(":memory:");
  opened.push(s);
  return s;
}

afterEach(async () => {
  for (const s of opened.splice(0)) await s.close();
});

async function ceiling(s: SqliteStore, keyId: string): Promise<bigint | undefined> {
  return (await s.reservations()).get(keyId);
}

describe("the SQLite reservation store", () => {
  it("only ever raises a key's reservation, exactly, up to 2^64 - 1 and beyond", async () => {
    const s = store();
    await s.reserve("k", 100n);
    await s.reserve("k", 99n);
    expect(await ceiling(s, "k")).toBe(100n);
    await s.reserve("k", 1000n);
    await s.reserve("k", 999n);
    expect(await ceiling(s, "k")).toBe(1000n);
    await s.reserve("k", 2n ** 64n - 1n);
    await s.reserve("k", 2n ** 63n);
    expect(await ceiling(s, "k")).toBe(2n ** 64n - 1n);
    await s.reserve("k", 10n ** 30n);
    expect(await ceiling(s, "k")).toBe(10n ** 30n);
    await expect(s.reserve("k", -1n)).rejects.toThrow(/non-negative/);
    expect(await ceiling(s, "other")).toBeUndefined();
  });

  it("keeps the maximum of any sequence of reservations (fast-check)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.bigInt({ min: 0n, max: 2n ** 70n }), { minLength: 1, maxLength: 30 }), async (values) => {
        const s = new SqliteStore(":memory:");
        try {
          for (const v of values) await s.reserve("k", v);
          expect(await ceiling(s, "k")).toBe(values.reduce((a, b) => (a > b ? a : b)));
        } finally {
          await s.close();
        }
      }),
      { numRuns: 100 },
    );
  });
});

describe("migration 8", () => {
  it("gives a database an earlier Portcullis left the reservation and logout tables, empty", async () => {
    const old = await oldDatabase("portcullis-migration-8-", 7);
    old.db.close();
    const s = new SqliteStore(old.path);
    try {
      expect((await s.reservations()).size).toBe(0);
      expect((await s.endedSessions(T0)).size).toBe(0);
      await s.reserve("k", 5n);
      await s.endSession("sid", T0 + 1_000, T0);
      expect(await ceiling(s, "k")).toBe(5n);
      expect([...(await s.endedSessions(T0))]).toEqual([["sid", T0 + 1_000]]);
      // Expired ones are not answered, and are forgotten as new ones arrive.
      expect((await s.endedSessions(T0 + 1_000)).size).toBe(0);
    } finally {
      await s.close();
      rmSync(old.dir, { recursive: true, force: true });
    }
  });
});

describe("sequence reservations", () => {
  it("makes the first value durable before the request may go on, then covers later values without writing", async () => {
    const s = store();
    const r = new SequenceReservations(s);
    await r.begin();
    const first = r.reserve("k", 1_000n, T0);
    expect(first).toBeInstanceOf(Promise);
    await first;
    expect(await ceiling(s, "k")).toBe(1_000n);
    // At or below the reservation: no write, nothing to wait for.
    expect(r.reserve("k", 1_000n, T0)).toBeUndefined();
    expect(r.reserve("k", 999n, T0)).toBeUndefined();
    // Above it: a write, reserving ahead at the (capped) rate: 10 a second to start with.
    await r.reserve("k", 1_001n, T0 + 1);
    expect(await ceiling(s, "k")).toBe(1_001n + 10n);
    for (let v = 1_002n; v <= 1_011n; v++) expect(r.reserve("k", v, T0 + 2)).toBeUndefined();
  });

  it("learns a millisecond clock's rate by doubling, then writes about once a second, and reserves about a second ahead", async () => {
    const s = store();
    const r = new SequenceReservations(s);
    await r.begin();
    let writes = 0;
    // A bot sending 50 requests a second, its nonce the time in milliseconds, for 20 seconds.
    for (let t = 0; t <= 20_000; t += 20) {
      const pending = r.reserve("k", BigInt(T0 + t), T0 + t);
      if (pending !== undefined) {
        writes++;
        await pending;
      }
    }
    expect(writes).toBeGreaterThan(20);
    expect(writes).toBeLessThan(40);
    const reserved = (await ceiling(s, "k")) ?? 0n;
    const ahead = reserved - BigInt(T0 + 20_000);
    expect(ahead).toBeGreaterThanOrEqual(0n);
    expect(ahead).toBeLessThanOrEqual(1_000n);
  });

  it("does not reserve a huge range when a counter jumps once (a counter-based client is not locked out)", async () => {
    const s = store();
    const r = new SequenceReservations(s);
    await r.begin();
    // A counter at 2 a second…
    for (let i = 0; i < 20; i++) await r.reserve("k", BigInt(i), T0 + i * 500);
    // …that jumps by a million once.
    await r.reserve("k", 1_000_020n, T0 + 10_000);
    const reserved = (await ceiling(s, "k")) ?? 0n;
    // At most double the learnt rate (2 a second): a few values ahead, not a million.
    expect(reserved - 1_000_020n).toBeLessThanOrEqual(10n);
  });

  it("concurrent values of one key share one write; a value above it waits for its own", async () => {
    const s = store();
    const r = new SequenceReservations(s);
    await r.begin();
    const a = r.reserve("k", 500n, T0);
    const b = r.reserve("k", 500n, T0);
    expect(b).toBe(a);
    const c = r.reserve("k", 501n, T0);
    expect(c).not.toBe(a);
    await Promise.all([a, b, c]);
    expect(await ceiling(s, "k")).toBeGreaterThanOrEqual(501n);
  });

  it("a failed write rejects (the request is refused) and the next value tries again", async () => {
    const s = store();
    const r = new SequenceReservations(s);
    await r.begin();
    await s.close();
    opened.splice(opened.indexOf(s), 1);
    const failed = r.reserve("k", 7n, T0);
    await expect(failed).rejects.toThrow();
    // Not covered: the next value (the same one, retried) asks for a write again.
    const again = r.reserve("k", 7n, T0 + 1);
    expect(again).toBeInstanceOf(Promise);
    await expect(again).rejects.toThrow();
  });

  it("a new epoch's floors are the reservations as they were when it began", async () => {
    const s = store();
    const before = new SequenceReservations(s);
    await before.begin();
    await before.reserve("k", 42n, T0);
    expect(before.floor("k")).toBeUndefined(); // this epoch began before it was reserved
    const after = new SequenceReservations(s);
    expect(() => after.floor("k")).toThrow(/begin/);
    await after.begin();
    expect(after.floor("k")).toBe(42n);
    expect(after.floor("other")).toBeUndefined();
    // Values at or below the floor need no write (they are refused as too low by the hot store).
    expect(after.reserve("k", 42n, T0 + 1)).toBeUndefined();
  });
});
